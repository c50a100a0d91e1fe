//! `Backup`: one run, made by a policy's schedule or by hand.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Figures, JobRef, Phase, RunError, SnapshotRef};
use super::policy::BackupSources;

/// One backup run. A policy's schedule creates one per tick (named
/// `<policy>-<yyyyMMddHHmmss>`, with the policy's sources copied in, so a
/// later change of the policy does not rewrite history); a person creates
/// one by hand for an on-demand run, naming a policy (whose sources and
/// repository are used) or giving the sources inline. Deleting a Backup
/// does not delete its snapshots: retention or `hokan forget` does.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hokan.dev",
    version = "v1alpha1",
    kind = "Backup",
    plural = "backups",
    shortname = "hbackup",
    category = "hokan",
    namespaced,
    status = "BackupStatus",
    doc = "One backup run of a policy's sources (scheduled or on demand): phase, snapshots, figures, errors.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Policy", type_ = "string", json_path = ".spec.policy"),
    printcolumn(name = "Size", type_ = "string", json_path = ".status.size"),
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
pub struct BackupSpec {
    /// The `BackupPolicy` this run belongs to. Its retention is applied
    /// after a successful run; when no sources are given inline, its
    /// sources and repository are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The `Repository` to back up into; default: the policy's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The schedule tick this run is for (set by the policy; unset for an
    /// on-demand run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<Time>,
    /// What to back up; empty: the policy's sources.
    #[serde(flatten)]
    pub what: BackupSources,
}

/// What the run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// New, InProgress, Completed, PartiallyFailed or Failed.
    #[serde(default)]
    pub phase: Phase,
    /// When the work started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<Time>,
    /// When the run finished (Completed, PartiallyFailed or Failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Time>,
    /// The snapshots saved, one per source (and per claim for volumes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SnapshotRef>,
    /// The first snapshot's short id, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// What was read and stored, over all snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<Figures>,
    /// Bytes read, for people (`1.2 GiB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Entries that could not be read, with the object or file each concerns
    /// (at most 100; `errorCount` counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<RunError>,
    /// How many errors there were in all.
    #[serde(default)]
    pub error_count: u64,
    /// Why the run failed, in words, with what to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Attempts made so far (a failed Job is retried with backoff).
    #[serde(default)]
    pub attempts: u32,
    /// The Job that does the work (etcd and volume backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobRef>,
    /// Snapshots retention forgot after this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgotten: Option<u64>,
    /// The generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Complete` (reason: the phase) and `RetentionApplied`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
