//! `Repository`: where backups go, and how to open it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::SecretKeyRef;

/// A hokan repository: a location (a directory, or a bucket and prefix of
/// an object store), the Secret holding its password, and the store's
/// credentials. The operator opens it as `hokan --repo LOCATION` does and
/// reports whether it is reachable, its format and its snapshots. Policies,
/// backups and restores refer to it by name, in the same namespace.
/// Deleting a Repository never deletes data.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hokan.dev",
    version = "v1alpha1",
    kind = "Repository",
    plural = "repositories",
    shortname = "hrepo",
    category = "hokan",
    namespaced,
    status = "RepositoryStatus",
    doc = "A hokan repository: location, password Secret, store credentials; status says whether it opens.",
    printcolumn(name = "Location", type_ = "string", json_path = ".spec.location"),
    printcolumn(name = "Reachable", type_ = "boolean", json_path = ".status.reachable"),
    printcolumn(
        name = "Snapshots",
        type_ = "integer",
        json_path = ".status.snapshotCount"
    ),
    printcolumn(
        name = "Last Check",
        type_ = "date",
        json_path = ".status.lastCheckTime"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RepositorySpec {
    /// Where the repository lives, as `hokan --repo` takes it: a path
    /// (`/backups/repo`, on a volume the Jobs mount), `s3://bucket/prefix`,
    /// `s3:https://host:port/bucket/prefix` (an S3-compatible endpoint),
    /// `gs://bucket/prefix`, `az://container/prefix`.
    pub location: String,
    /// The Secret key holding the repository's password. The password
    /// reaches Jobs as a mounted file, never in a resource or a log.
    pub password_secret_ref: SecretKeyRef,
    /// How to reach the object store; not needed for a path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<StoreCredentials>,
    /// Object-store settings passed as the store's environment
    /// (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ALLOW_HTTP`, ...), for settings
    /// that are not secret.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub config: std::collections::BTreeMap<String, String>,
    /// The repository's immutable mode, as it was made with `hokan init
    /// --immutable`: backups add objects under the store's object lock and
    /// nothing is deleted before the lock's retention passes. The operator
    /// reports a mismatch with the repository's own setting; it never
    /// changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<Immutability>,
    /// `ReadWrite` (default) or `ReadOnly`: a read-only repository is used
    /// for restores and listing only (Velero's `accessMode`), so a cluster
    /// pointed at another cluster's repository cannot change it.
    #[serde(default)]
    pub access_mode: AccessMode,
    /// How often the operator opens the repository to check it and count
    /// its snapshots, in seconds (default 300; Velero's `validationFrequency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10))]
    pub check_interval_seconds: Option<u32>,
}

/// How Jobs and the operator authenticate to the object store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreCredentials {
    /// A Secret whose keys become the store's environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `GOOGLE_SERVICE_ACCOUNT_KEY`, `AZURE_STORAGE_ACCOUNT_KEY`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// A service account's web identity instead of keys: Jobs run as this
    /// service account and the store's client exchanges its projected token
    /// (IRSA on EKS, workload identity, OpenShift's STS mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_identity: Option<WebIdentity>,
}

/// A role the store's STS gives credentials for in exchange for a Job's
/// service account token (EKS's IRSA, OpenShift's STS mode): each Job gets
/// a projected token of its own account (`hokan-etcd`, `hokan-restore`,
/// `hokan-node-agent`) with this audience, refreshed by the kubelet, and
/// the client exchanges it as `AWS_ROLE_ARN` and
/// `AWS_WEB_IDENTITY_TOKEN_FILE` say. The role's trust policy names those
/// accounts (`system:serviceaccount:hokan-system:hokan-etcd`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebIdentity {
    /// The role to assume (`AWS_ROLE_ARN`).
    pub role_arn: String,
    /// The token's audience (default `sts.amazonaws.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// The object lock a repository was made with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Immutability {
    /// How long each stored object stays locked, in days.
    #[schemars(range(min = 1))]
    pub retention_days: u32,
}

/// Who may change the repository.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AccessMode {
    /// Backups, retention and restores.
    #[default]
    ReadWrite,
    /// Restores and listing only.
    ReadOnly,
}

/// What the operator found when it last opened the repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryStatus {
    /// Whether the last check opened the repository with its password and
    /// listed its snapshots.
    #[serde(default)]
    pub reachable: bool,
    /// The repository's format version (`hokan version` names the newest
    /// this build writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<u32>,
    /// Snapshots in the repository, of every kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_count: Option<u64>,
    /// Snapshots per source kind (`etcd`, `k8s`, `fs`, ...).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub snapshots_by_kind: std::collections::BTreeMap<String, u64>,
    /// The immutable retention the repository itself was made with, in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable_retention_days: Option<u32>,
    /// When the repository was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<Time>,
    /// Why the last check failed, and what to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: opened and listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
