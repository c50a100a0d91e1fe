//! Types every kind shares: Secret references, retention, a run's phase,
//! figures, errors, the Job that ran it, and the conditions helpers.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key of a Secret in the resource's own namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name, in the namespace of the resource that refers to it.
    pub name: String,
    /// The key in the Secret's data whose value is used.
    pub key: String,
}

/// Retention: which snapshots of one kind are kept after each successful
/// run, restic's `forget --keep-*` rules plus OpenShift's etcd rules (a
/// number of backups, a total size). A snapshot is kept if any rule keeps
/// it; snapshots no rule keeps are forgotten (their data goes at the next
/// prune). With no rule set nothing is forgotten.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Keep the newest N snapshots: exactly N remain after a successful run
    /// (OpenShift's `retentionNumber.maxNumberOfBackups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days that have one (UTC days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot taken within this long before the newest one, in
    /// calendar units: `7d`, `1m15d`, `1y6m`, `36h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
    /// Keep the newest snapshots whose sizes add up to at most this (`50G`,
    /// `500M`; units are powers of 1024), OpenShift's
    /// `retentionSize.maxSizeOfBackupsGb`. The newest snapshot is kept even
    /// when it alone is larger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_size: Option<String>,
}

/// The phase of a run (a Backup or a Restore), Velero's names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Accepted, not started yet (waiting for a slot, or for its Job).
    #[default]
    New,
    /// Running.
    InProgress,
    /// Finished; everything was read and stored (or restored).
    Completed,
    /// Finished with a snapshot (or a restore) that lacks some entries; the
    /// errors say which.
    PartiallyFailed,
    /// Nothing usable came of it; the failure reason and the conditions say why.
    Failed,
}

impl Phase {
    /// Whether the run is over: a finished run is never started again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Phase::Completed | Phase::PartiallyFailed | Phase::Failed
        )
    }

    /// The name as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::New => "New",
            Phase::InProgress => "InProgress",
            Phase::Completed => "Completed",
            Phase::PartiallyFailed => "PartiallyFailed",
            Phase::Failed => "Failed",
        }
    }
}

/// What a run read and stored (or restored), added up over its snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// Bytes of content in the snapshots (read, or unchanged since their parents).
    #[serde(default)]
    pub bytes_read: u64,
    /// Plaintext bytes of new data the run added to the repository.
    #[serde(default)]
    pub bytes_added: u64,
    /// Bytes the run added to the store (compressed, encrypted, packed).
    #[serde(default)]
    pub bytes_stored: u64,
    /// Files in the snapshots (volumes, static pod resources).
    #[serde(default)]
    pub files: u64,
    /// Kubernetes objects in the snapshots (resources, or objects restored).
    #[serde(default)]
    pub objects: u64,
}

/// One error of a run, with what it concerns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunError {
    /// The Kubernetes object it concerns, `resource.group/namespace/name`
    /// (or `resource.group` when a whole resource could not be listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The file it concerns, as stored in the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// What went wrong, and what to do about it.
    pub message: String,
}

/// A snapshot a run saved (or restored from).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRef {
    /// The snapshot's id (64 hex digits; `hokan snapshots` shows the first 8).
    pub id: String,
    /// Its source kind: `etcd`, `k8s`, `volume` (a pod volume), `fs` (files:
    /// the static pod resources beside an etcd snapshot).
    pub kind: String,
    /// Whose it is: the etcd cluster, the kube context, the claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// The Job that does (or did) a run's work.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRef {
    /// The Job's name.
    pub name: String,
    /// The Job's namespace (the operator's, for etcd Jobs).
    pub namespace: String,
    /// The Job's uid: a Job of the same name with another uid is not this
    /// run's (it was lost and made again by someone else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// Kubernetes resources selected with Velero's filters (the fields of
/// `velero backup create`, and hokan-k8s's `BackupOptions`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFilter {
    /// Namespaces to include (globs; empty or `*`: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_namespaces: Vec<String>,
    /// Namespaces to leave out (globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_namespaces: Vec<String>,
    /// Resources to include, as `resource.group` or short names (`deploy`,
    /// `configmaps`, `*.apps`; empty or `*`: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_resources: Vec<String>,
    /// Resources to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_resources: Vec<String>,
    /// Only objects whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// Cluster-scoped resources: true takes all the resource filter passes,
    /// false none; unset takes all when every namespace and resource is
    /// included, else only those the namespaced objects pull in (their CRDs,
    /// the volumes of their claims) — Velero's `includeClusterResources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_cluster_resources: Option<bool>,
}

/// A reference to a Secret holding a kubeconfig, for another cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeconfigRef {
    /// The Secret and key holding the kubeconfig.
    pub secret_ref: SecretKeyRef,
    /// The kubeconfig context to use (default: its current context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// Labels that select pods, with the namespaces to look in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSelection {
    /// The pods whose volumes are taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Namespaces to look in (globs; empty: the resource's own namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// Condition types the operator sets.
pub mod condition {
    /// Repository: opened with its password and listed.
    pub const READY: &str = "Ready";
    /// Policy: its spec is valid (schedule, time zone, retention, repository).
    pub const VALID: &str = "Valid";
    /// Run: finished (status True), with the reason `Completed`,
    /// `PartiallyFailed` or `Failed`.
    pub const COMPLETE: &str = "Complete";
    /// Run: retention was applied after it.
    pub const RETENTION_APPLIED: &str = "RetentionApplied";
}

/// Sets condition `kind` in `conditions` as the API conventions ask: the
/// transition time moves only when the status changes; reason, message and
/// the observed generation are always updated.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) {
    let status = if status { "True" } else { "False" }.to_string();
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == kind) {
        if c.status != status {
            c.last_transition_time = now;
        }
        c.status = status;
        c.reason = reason.to_string();
        c.message = message.to_string();
        c.observed_generation = generation;
        return;
    }
    conditions.push(Condition {
        type_: kind.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: now,
    });
}

/// A label selector as the `key=value,key in (a,b)` text hokan-k8s parses.
pub fn selector_string(s: &LabelSelector) -> String {
    let mut parts: Vec<String> = Vec::new();
    let labels: BTreeMap<_, _> = s.match_labels.clone().unwrap_or_default();
    for (k, v) in labels {
        parts.push(format!("{k}={v}"));
    }
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({values})", e.key),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn condition_transition_time_moves_only_on_change() {
        let mut c = Vec::new();
        set_condition(&mut c, "Ready", false, "Unreachable", "no", Some(1), at(10));
        set_condition(
            &mut c,
            "Ready",
            false,
            "Unreachable",
            "still no",
            Some(2),
            at(20),
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, at(10));
        assert_eq!(c[0].message, "still no");
        assert_eq!(c[0].observed_generation, Some(2));
        set_condition(&mut c, "Ready", true, "Opened", "ok", Some(2), at(30));
        assert_eq!(c[0].last_transition_time, at(30));
        assert_eq!(c[0].status, "True");
    }

    #[test]
    fn selector_text() {
        let s = LabelSelector {
            match_labels: Some([("app".to_string(), "db".to_string())].into()),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "skip".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(selector_string(&s), "app=db,tier in (a,b),!skip");
    }

    #[test]
    fn finished_phases() {
        assert!(!Phase::New.is_finished() && !Phase::InProgress.is_finished());
        assert!(Phase::Completed.is_finished() && Phase::Failed.is_finished());
        assert!(Phase::PartiallyFailed.is_finished());
    }
}
