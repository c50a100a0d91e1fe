//! The crate's one public error type.

/// Everything that can go wrong reading, splitting, rebuilding or streaming an
/// etcd snapshot.
///
/// Variants name what happened; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not a bbolt database at all (wrong magic, unknown
    /// version, no meta page with a valid checksum, too short to hold one).
    #[error(
        "{what} is not a bbolt database: {reason}; give the file written by \
         `etcdctl snapshot save` or an etcd data directory's member/snap/db"
    )]
    NotBbolt {
        /// The input that was read (a path, "the snapshot stream").
        what: String,
        /// What was found instead.
        reason: String,
    },

    /// A bbolt database whose pages contradict each other: a page out of
    /// bounds, a cycle, an element pointing outside its page.
    #[error(
        "{what} is a damaged bbolt database: {reason}; take a new snapshot \
         (`etcdctl snapshot save`) or use an older copy"
    )]
    Corrupted {
        /// The database that was read.
        what: String,
        /// The first contradiction found.
        reason: String,
    },

    /// The input ends before the database does: an interrupted copy or an
    /// interrupted stream.
    #[error(
        "{what} is truncated: {reason}; the copy or stream was cut short, \
         nothing from it should be kept"
    )]
    Truncated {
        /// The short input.
        what: String,
        /// What was missing.
        reason: String,
    },

    /// The SHA-256 that etcd appends (to a saved file, or as the last message
    /// of a live stream) does not match the bytes before it.
    #[error(
        "{what}: SHA-256 mismatch (etcd sent {expected}, the data hashes to \
         {actual}); the snapshot was damaged in transit or on disk, take it again"
    )]
    HashMismatch {
        /// The snapshot that was checked.
        what: String,
        /// The hash etcd sent, hex.
        expected: String,
        /// The hash of the bytes received, hex.
        actual: String,
    },

    /// A split layout (hokan's description of the page structure) that
    /// cannot be rebuilt: damaged, or a record of the wrong length.
    #[error(
        "the stored etcd page layout is damaged: {reason}; a check that reads the repository's \
         data finds the damaged object"
    )]
    BadLayout {
        /// What did not fit.
        reason: String,
    },

    /// A layout written by a newer hokan.
    #[error(
        "unsupported etcd layout version {found}: this build reads version \
         {supported}; upgrade hokan to restore it"
    )]
    UnsupportedVersion {
        /// The version found.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },

    /// A setting the caller gave cannot work (several endpoints, a TLS file
    /// that is not PEM, a key without a certificate).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The setting.
        what: String,
        /// Why it is refused and what would work.
        reason: String,
    },

    /// etcd could not be reached or refused the request (connection
    /// refused, timeout, RPC error).
    #[error("etcd at {endpoint}: {reason}")]
    Etcd {
        /// The endpoint that was asked.
        endpoint: String,
        /// What went wrong, with the fix when known.
        reason: String,
    },

    /// The TLS connection to etcd failed: a CA that did not sign etcd's
    /// certificate, a certificate for another host, or a client
    /// certificate etcd does not trust or was not given.
    #[error(
        "etcd at {endpoint}: {reason}; {}",
        if *client_certificate {
            "check that the CA certificate is the one that signed etcd's server certificate, \
             that this certificate names the host, and that etcd trusts the client certificate"
        } else {
            "check that the CA certificate is the one that signed etcd's server certificate \
             and that this certificate names the host; etcd may also require a client \
             certificate and key (etcd's --client-cert-auth)"
        }
    )]
    Tls {
        /// The endpoint that was asked.
        endpoint: String,
        /// What went wrong.
        reason: String,
        /// Whether a client certificate was given.
        client_certificate: bool,
    },

    /// Reading input or writing output failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A record sink or source (the repository side of the seam) failed.
    #[error("storing or fetching etcd records failed: {0}")]
    Sink(String),

    /// The repository failed (unreachable, damaged, locked, wrong format).
    #[error(transparent)]
    Repo(#[from] hokan_repo::Error),

    /// A snapshot that is not an etcd snapshot was named.
    #[error("snapshot {snapshot} is a {source_kind} snapshot, not an etcd one")]
    NotEtcd {
        /// The snapshot's short id.
        snapshot: String,
        /// Its source kind.
        source_kind: String,
    },

    /// An etcd snapshot's tree lacks a part this build needs.
    #[error("etcd snapshot {snapshot} cannot be read: {reason}")]
    Incomplete {
        /// The snapshot's short id.
        snapshot: String,
        /// What is missing, and what helps.
        reason: String,
    },

    /// An etcd snapshot stored without its object catalog (the inventory
    /// failed while it was stored): its objects cannot be listed or read
    /// from the repository, but the snapshot restores whole.
    #[error(
        "etcd snapshot {snapshot} has no object catalog: {reason}; restore it to a database \
         file and read that with etcd's tools"
    )]
    NoCatalog {
        /// The snapshot's short id.
        snapshot: String,
        /// Why it has none.
        reason: String,
    },

    /// The stored object catalog cannot be read.
    #[error(
        "the stored etcd object catalog is damaged: {reason}; a check that reads the \
         repository's data finds the damaged object"
    )]
    BadCatalog {
        /// What did not fit.
        reason: String,
    },

    /// No object or key of that name in the snapshot.
    #[error("{what} is not in snapshot {snapshot}")]
    NotFound {
        /// What was looked for.
        what: String,
        /// The snapshot's short id.
        snapshot: String,
        /// The resource it was looked for among, when it was named by
        /// resource and name: listing that resource shows what is there.
        resource: Option<String>,
    },

    /// A name that matches objects of several resources (`pods` of two
    /// API groups, say).
    #[error(
        "{spec} names {} objects ({}); give the resource with its group, or name the object \
         by its etcd key",
        keys.len(),
        keys.join(", ")
    )]
    AmbiguousObject {
        /// The name given.
        spec: String,
        /// The etcd keys it matches.
        keys: Vec<String>,
    },

    /// A value could not be decoded or decrypted as a Kubernetes object.
    #[error("{key}: {source}")]
    Kubernetes {
        /// The etcd key of the value.
        key: String,
        /// The decoder's error.
        #[source]
        source: hokan_k8s_codec::Error,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn corrupted(what: &str, reason: impl Into<String>) -> Self {
        Error::Corrupted {
            what: what.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn layout(reason: impl Into<String>) -> Self {
        Error::BadLayout {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

impl From<hokan_core::Error> for Error {
    /// A data-path error, as the repository reports it (a repository error
    /// it carried comes back as itself).
    fn from(e: hokan_core::Error) -> Self {
        Error::Repo(e.into())
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
