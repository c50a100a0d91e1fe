//! The crate's one public error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading, storing or restoring
/// Kubernetes resources.
///
/// Variants name what happened and carry what a person needs to act: which
/// resource, which status, which file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No usable cluster configuration: no kubeconfig, an unknown context,
    /// or not running inside a pod.
    #[error("cannot configure a Kubernetes client: {reason}; {fix}")]
    Config {
        /// What was wrong.
        reason: String,
        /// What to do about it.
        fix: &'static str,
    },

    /// The API server could not be reached at all (connection refused, TLS,
    /// timeout). Retrying may help.
    #[error(
        "cannot reach the Kubernetes API server for {what}: {reason}; check the server address and network, then retry"
    )]
    Unreachable {
        /// The request, e.g. `list apps/deployments in shop`.
        what: String,
        /// The transport error.
        reason: String,
    },

    /// The API server answered with an error status.
    #[error("the API server refused to {what}: {code} {reason}: {message}{hint}")]
    Api {
        /// The request, e.g. `create configmaps shop/web`.
        what: String,
        /// The HTTP status code.
        code: u16,
        /// The Status reason (`NotFound`, `Forbidden`, `Conflict`, …).
        reason: String,
        /// The server's message.
        message: String,
        /// What to do, with a leading `; ` (empty when there is nothing to add).
        hint: String,
    },

    /// A custom resource definition did not become Established in time, so
    /// its custom resources cannot be restored.
    #[error(
        "custom resource definition {name} was not Established after {seconds} s; check `kubectl describe crd {name}` (a conversion webhook or invalid schema) and retry with a longer timeout"
    )]
    CrdNotEstablished {
        /// The CRD's name (`plural.group`).
        name: String,
        /// How long the restore waited.
        seconds: u64,
    },

    /// Bytes that should be a Kubernetes object (or a discovery document)
    /// are not.
    #[error("{what} is not a valid Kubernetes object: {reason}")]
    BadObject {
        /// Where the bytes came from (a path, a request).
        what: String,
        /// The parse error.
        reason: String,
    },

    /// A filter, selector, mapping or other option given by the user is
    /// malformed.
    #[error("invalid {option} {value:?}: {reason}")]
    InvalidOption {
        /// The option, in words (`namespace mapping`, `label selector`).
        option: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused and what form is expected.
        reason: String,
    },

    /// A stored object asked for does not exist in the source.
    #[error("object {path} is not in the backup")]
    NotFound {
        /// The object's path in the tree layout.
        path: String,
    },

    /// A Velero backup tarball does not have the expected layout.
    #[error("{path} is not a Velero backup tarball: {reason}")]
    NotVelero {
        /// The archive.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },

    /// Reading or writing a local file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`write`, `read`, `create directory`).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The repository failed (a store error, a wrong format, a lock).
    #[error(transparent)]
    Repository(#[from] hokan_repo::Error),

    /// A stored object could not be read back from the repository.
    #[error("object {path} cannot be read from the repository: {source}")]
    Unreadable {
        /// The object's path in the snapshot's tree.
        path: String,
        /// What the repository found.
        #[source]
        source: hokan_repo::Error,
    },

    /// A snapshot of another source was given where a Kubernetes resource
    /// snapshot belongs.
    #[error(
        "snapshot {snapshot} is a {source_kind} snapshot, not a Kubernetes resource (k8s) snapshot"
    )]
    NotK8s {
        /// The snapshot's short id.
        snapshot: String,
        /// Its source kind.
        source_kind: String,
    },

    /// A namespace without OpenShift's UID range annotation, so the range
    /// its volumes' owners should be shifted into is unknown.
    #[error(
        "namespace {namespace} has no openshift.io/sa.scc.uid-range annotation (not an OpenShift \
         cluster?), so the UID range to shift owners into is unknown; give the source and \
         target ranges explicitly"
    )]
    NoUidRange {
        /// The namespace.
        namespace: String,
    },

    /// A resource snapshot's tree is not laid out as [`crate::layout`]
    /// says.
    #[error("snapshot {snapshot} {reason}")]
    NotResources {
        /// The snapshot's short id.
        snapshot: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A function was called on a runtime it cannot work on.
    #[error(
        "{what} needs tokio's multi-threaded runtime (the repository blocks while the API is read); build it with `tokio::runtime::Builder::new_multi_thread()` or `#[tokio::main]`"
    )]
    Runtime {
        /// The function.
        what: &'static str,
    },

    /// An [`ObjectSink`](crate::ObjectSink) or
    /// [`ObjectSource`](crate::ObjectSource) implementation failed (a
    /// repository error when the sink is a hokan session).
    #[error("object store: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<hokan_core::Error> for Error {
    /// The data path's error, as the repository reports it (a repository
    /// error it carried comes back as itself).
    fn from(e: hokan_core::Error) -> Self {
        Error::Repository(e.into())
    }
}

impl Error {
    /// The HTTP status of an [`Error::Api`], if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the server answered 404 (the object or the resource is not there).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether trying again later may succeed (transport errors, 429, 5xx
    /// other than 501).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Api { code, .. } => *code == 429 || (*code >= 500 && *code != 501),
            _ => false,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad_object(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::BadObject {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
