//! A policy's CSI snapshots and copies ("snapshot + copy", SPP's SLA
//! tiers): the two rhythms in `spec.volumes`, and the claims' restore
//! points in status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Retention;

/// `VolumeSnapshot`s of each selected claim, kept in the cluster: fast to
/// take and to restore from, gone with the storage system.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRhythm {
    /// How often each claim is snapshotted (`15m`, `4h`, `1d`).
    pub interval: String,
    /// Which snapshots stay in the cluster: the newest `keepLast`, and
    /// every one younger than `maxAge`; at least one must be given.
    #[serde(default)]
    pub retention: SnapshotRetention,
    /// The `VolumeSnapshotClass` to use (default: the class of the claim's
    /// CSI driver marked `snapshot.storage.kubernetes.io/is-default-class`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_class_name: Option<String>,
    /// How long a snapshot may take to become `readyToUse` before it is
    /// given up and deleted (default `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_timeout: Option<String>,
}

/// Which `VolumeSnapshot`s a claim keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRetention {
    /// Keep the newest N ready snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<u32>,
    /// Keep every snapshot taken less than this long ago (`1h`, `1d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
}

/// Copies of the newest snapshot of each claim into the repository: kept
/// long, off the storage system. A copy is read by a Job from a temporary
/// claim made from the snapshot, as Velero's data mover does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyRhythm {
    /// How often each claim is copied (`1h`, `1d`).
    pub interval: String,
    /// Which copies the repository keeps, per claim (default: the
    /// section's `retention`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Copy Jobs of this policy running at once (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub parallel: Option<u32>,
    /// The StorageClass of the temporary claims (default: the source
    /// claim's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// How a claim is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ClaimMode {
    /// CSI snapshots, copied into the repository.
    #[default]
    Snapshot,
    /// Its storage class has no snapshot class: its pods' volumes are
    /// read by the node agent on the policy's schedule.
    NodeAgent,
}

/// A `VolumeSnapshot` of a claim: a restore point in the cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotPoint {
    /// The `VolumeSnapshot`, in the claim's namespace.
    pub name: String,
    /// When it was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// Whether it can be restored from.
    pub ready_to_use: bool,
}

/// A copy of a claim in the repository: a restore point off the cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyPoint {
    /// The repository snapshot's id.
    pub snapshot_id: String,
    /// When the copied `VolumeSnapshot` was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// The `VolumeSnapshot` it was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot: Option<String>,
}

/// One claim of the policy: how it is protected, its restore points, and
/// the last failure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimStatus {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim.
    pub name: String,
    /// Snapshots and copies, or the node agent.
    pub mode: ClaimMode,
    /// Why the mode (the snapshot class used, or why there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the last snapshot was started (the next is due an interval
    /// later, whether it succeeded or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot_time: Option<Time>,
    /// When the last copy was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_copy_time: Option<Time>,
    /// The `VolumeSnapshot`s kept, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SnapshotPoint>,
    /// The copies in the repository, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopyPoint>,
    /// The last snapshot or copy that failed, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_time: Option<Time>,
}
