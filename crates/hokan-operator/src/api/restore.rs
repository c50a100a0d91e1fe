//! `Restore`: bring back resources, an etcd snapshot or a volume.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Figures, JobRef, KubeconfigRef, Phase, ResourceFilter, RunError, SnapshotRef};

/// A restore from a `Backup` (its snapshots) or from a snapshot id in a
/// repository. Exactly one of `resources`, `etcd` and `volume` says what
/// is restored and where to.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hokan.dev",
    version = "v1alpha1",
    kind = "Restore",
    plural = "restores",
    shortname = "hrestore",
    category = "hokan",
    namespaced,
    status = "RestoreStatus",
    doc = "A restore of resources, an etcd snapshot or a volume from a Backup or a snapshot id.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Backup", type_ = "string", json_path = ".spec.backupName"),
    printcolumn(name = "Snapshot", type_ = "string", json_path = ".status.snapshot"),
    printcolumn(
        name = "Started",
        type_ = "date",
        json_path = ".status.startTimestamp",
        priority = 1
    ),
    printcolumn(
        name = "Completed",
        type_ = "date",
        json_path = ".status.completionTimestamp",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSpec {
    /// The `Backup` (in this namespace) to restore from: its snapshot of the
    /// kind restored, in its repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_name: Option<String>,
    /// A snapshot id (or a unique prefix, or `latest`) to restore from
    /// instead of a Backup; needs `repository`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// The `Repository` holding `snapshotId`; default: the Backup's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Restore Kubernetes resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRestore>,
    /// Write an etcd snapshot out on a control-plane node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdRestore>,
    /// Restore a pod volume into a claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeRestore>,
}

/// Resources restored in Velero's order (CRDs and namespaces first, then
/// what depends on them), into this cluster or another.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRestore {
    /// Which of the stored objects to restore (Velero's filters).
    #[serde(flatten)]
    pub filter: ResourceFilter,
    /// Stored namespace → namespace to restore into (`app: app-copy`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_mapping: BTreeMap<String, String>,
    /// What to do with an object that already exists: `None` (default,
    /// leave it and warn) or `Update` (patch it to the stored version) —
    /// Velero's `existingResourcePolicy`.
    #[serde(default)]
    pub existing_resource_policy: ExistingResourcePolicy,
    /// Restore into another cluster, reached with this kubeconfig; default:
    /// this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cluster: Option<KubeconfigRef>,
}

/// Velero's `existingResourcePolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ExistingResourcePolicy {
    /// Leave existing objects as they are (a warning names each).
    #[default]
    None,
    /// Update existing objects to the stored version.
    Update,
}

/// An etcd snapshot written out as a file on a control-plane node, for
/// `etcdctl snapshot restore` (or the platform's restore script); the
/// linked static pod resources are written beside it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdRestore {
    /// The node to write the file on.
    pub node_name: String,
    /// The directory on the node (default `/var/lib/etcd-backup`, where
    /// OpenShift's restore script looks). Created if missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// Write the linked static pod resources too (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_pods: Option<bool>,
}

/// A pod volume's snapshot restored into a claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRestore {
    /// The claim to restore into, in `namespace`.
    pub claim_name: String,
    /// The claim's namespace (default: the Restore's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// With a Backup of several claims: the stored claim to take,
    /// `namespace/name` (default: the one named `claimName`). With
    /// `snapshotId`: the claim whose snapshots the id (or `latest`) is
    /// looked up among.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_claim: Option<String>,
    /// Restore from this CSI `VolumeSnapshot` (`namespace/name`, or a name
    /// in the Restore's namespace) instead of a repository snapshot: a new
    /// claim `claimName` is made with it as its data source, in any
    /// namespace (the fastest restore; files keep their owners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot: Option<String>,
    /// Move file owners into the target namespace's UID range when it
    /// differs from the source's (OpenShift's
    /// `openshift.io/sa.scc.uid-range` annotations); default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_uids: Option<bool>,
    /// Restore into a claim in use: the Deployments and StatefulSets whose
    /// pods mount it are scaled to zero first, the restore waits for their
    /// pods to end, and they are scaled back to their replicas once it has
    /// ended (whatever its outcome). Default false: a claim in use is
    /// written under its running pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<bool>,
}

/// A workload a restore scaled to zero, and the replicas it had.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaledWorkload {
    /// `Deployment` or `StatefulSet`.
    pub kind: String,
    /// Its name, in the claim's namespace.
    pub name: String,
    /// Its replicas before the restore.
    pub replicas: i32,
    /// Scaled back to `replicas`.
    #[serde(default)]
    pub scaled_back: bool,
}

/// What the restore did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// New, InProgress, Completed, PartiallyFailed or Failed.
    #[serde(default)]
    pub phase: Phase,
    /// When the work started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Time>,
    /// The snapshot restored from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SnapshotRef>,
    /// Its short id, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// What was written: bytes and files for volumes and etcd, objects for resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<Figures>,
    /// Objects left as they were (existing, with `existingResourcePolicy: None`).
    #[serde(default)]
    pub warning_count: u64,
    /// What could not be restored, with the object or file each concerns
    /// (at most 100; `errorCount` counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<RunError>,
    /// How many errors there were in all.
    #[serde(default)]
    pub error_count: u64,
    /// Why the restore failed, in words, with what to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Where an etcd snapshot was written (`node:/path/snapshot.db`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_to: Option<String>,
    /// The workloads scaled to zero for the restore (`volume.scaleDown`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scaled_down: Vec<ScaledWorkload>,
    /// The Job that does the work (etcd and volume restores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobRef>,
    /// The generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Complete` (reason: the phase).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
