//! `BackupPolicy`: what to back up, when, where to, and how long to keep it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::common::{Phase, PodSelection, ResourceFilter, Retention};
use super::snapshots::{ClaimStatus, CopyRhythm, SnapshotRhythm};

/// A schedule of backups: at each tick of `schedule` (cron, in `timeZone`)
/// the operator creates a `Backup` named `<policy>-<yyyyMMddHHmmss>` (the
/// tick's time, UTC), which takes what the policy names into its
/// repository and then applies each kind's retention. A tick missed while
/// the operator was down is run once when it comes back, unless
/// `startingDeadlineSeconds` has passed. `suspend` pauses the schedule
/// (SPP's Pause/Resume) without touching existing backups.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hokan.dev",
    version = "v1alpha1",
    kind = "BackupPolicy",
    plural = "backuppolicies",
    shortname = "hpolicy",
    category = "hokan",
    namespaced,
    status = "BackupPolicyStatus",
    doc = "What to back up (etcd, resources, pod volumes), when (cron and time zone), where to and how long to keep it.",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(
        name = "Time Zone",
        type_ = "string",
        json_path = ".spec.timeZone",
        priority = 1
    ),
    printcolumn(name = "Suspend", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(
        name = "Repository",
        type_ = "string",
        json_path = ".spec.repository",
        priority = 1
    ),
    printcolumn(
        name = "Last Schedule",
        type_ = "date",
        json_path = ".status.lastScheduleTime"
    ),
    printcolumn(
        name = "Last Success",
        type_ = "date",
        json_path = ".status.lastSuccessfulTime"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicySpec {
    /// The `Repository` (in this namespace) the backups go to.
    pub repository: String,
    /// When to run, a five-field cron expression as CronJobs take it
    /// (`0 */4 * * *`, `30 2 * * 1-5`, `@daily`).
    pub schedule: String,
    /// The IANA time zone `schedule` is read in (`Europe/Berlin`); default UTC.
    /// Daylight-saving changes are handled as cron does: a skipped local
    /// time does not run, a repeated one runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// A tick not started within this many seconds of its time is skipped
    /// (and recorded as skipped) rather than run late; unset: a missed tick
    /// is always run once. As CronJob's field of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,
    /// Pause the schedule: no new backups until it is false again (SPP's
    /// Pause and Resume). Running backups finish; existing ones are kept.
    #[serde(default)]
    pub suspend: bool,
    /// What to back up. At least one of `etcd`, `resources` and `volumes`.
    #[serde(flatten)]
    pub what: BackupSources,
}

/// The sources of a backup: each present section is backed up, into its
/// own snapshot(s), with its own retention.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSources {
    /// The control plane's etcd, as OpenShift's `cluster-backup.sh` takes
    /// it: a snapshot from a member, with the static pod resources beside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdSource>,
    /// Kubernetes resources, selected with Velero's filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceSource>,
    /// The volumes of pods selected by labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<VolumeSource>,
}

impl BackupSources {
    /// Whether no source is named.
    pub fn is_empty(&self) -> bool {
        self.etcd.is_none() && self.resources.is_none() && self.volumes.is_none()
    }
}

/// An etcd backup, run as a Job on a control-plane node with host network
/// and the etcd client certificates (read from the node by hostPath).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdSource {
    /// The member to snapshot, seen from the node (default
    /// `https://localhost:2379`, the node's own member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The client certificates, paths on the node.
    #[serde(default)]
    pub certificates: EtcdCertificates,
    /// Store the control plane's static pod resources beside the snapshot
    /// and link them to it (default true), as `cluster-backup.sh` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_pods: Option<bool>,
    /// The node's static pod resources directory (default
    /// `/etc/kubernetes/static-pod-resources`, OpenShift's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_pod_resources_dir: Option<String>,
    /// Nodes the Job may run on (default: `node-role.kubernetes.io/control-plane`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations for the Job (default: the control-plane and master
    /// `NoSchedule` taints).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Which etcd snapshots to keep (per etcd cluster); their static pod
    /// resources go with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// etcd client certificate paths on the node (kubeadm's by default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdCertificates {
    /// The CA that signed the member's certificate (default
    /// `/etc/kubernetes/pki/etcd/ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The client certificate (default
    /// `/etc/kubernetes/pki/etcd/healthcheck-client.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// The client key (default `/etc/kubernetes/pki/etcd/healthcheck-client.key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

/// A Kubernetes resource backup, done with the operator's own API access.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSource {
    /// Which namespaces and resources (Velero's filters).
    #[serde(flatten)]
    pub filter: ResourceFilter,
    /// Leave OLM's operators out (`*.operators.coreos.com`, the CSVs OLM
    /// copies into every namespace, the operators' deployments and RBAC).
    #[serde(default)]
    pub exclude_operators: bool,
    /// Every served version of each resource, not only the preferred one.
    #[serde(default)]
    pub all_api_versions: bool,
    /// Which resource snapshots to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// Pod volumes and claims. Without `snapshots`, pod volumes are read from
/// the kubelet's directory by a Job on each node where a selected pod
/// runs, on the policy's `schedule`. With `snapshots`, each selected
/// claim gets CSI `VolumeSnapshot`s on their own rhythm, and with `copies`
/// the newest is copied into the repository on another; a claim whose
/// storage class has no snapshot class falls back to the node agent (its
/// status says so). Each claim is its own snapshot series in the
/// repository whichever way it is read, so an unchanged file is not read
/// again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSource {
    /// Which pods' volumes (and, with `snapshots`, the claims they mount,
    /// as Velero's annotations pick them).
    #[serde(flatten)]
    pub selection: PodSelection,
    /// With `snapshots`: claims taken by their own labels, in `namespaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_selector: Option<LabelSelector>,
    /// Volume names to leave out (Velero's
    /// `backup.velero.io/backup-volumes-excludes` is honoured as well).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_volumes: Vec<String>,
    /// Claims (`namespace/name`) the node agent never reads. A policy's
    /// Backups list its claims in `Snapshot` mode here, so a node Job run
    /// for the claims that fall back to the node agent does not read
    /// them a second time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_claims: Vec<String>,
    /// Which copies in the repository to keep, per claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// CSI snapshots of the claims, kept in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotRhythm>,
    /// Copies of the snapshots into the repository (needs `snapshots`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<CopyRhythm>,
}

/// A backup run the policy made, for `kubectl describe` (SPP lists restore
/// points there).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecentBackup {
    /// The Backup's name.
    pub name: String,
    /// Its phase when last seen.
    pub phase: Phase,
    /// The tick it ran for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_timestamp: Option<Time>,
    /// The snapshots it saved (short ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<String>,
}

/// The schedule's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicyStatus {
    /// The last tick a Backup was created for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the last successful (Completed) backup of this policy finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// The newest Backup the policy created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<String>,
    /// The last tick skipped because its starting deadline had passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_skipped_time: Option<Time>,
    /// The next tick, in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// Backups of this policy not finished yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
    /// The newest backups of this policy, newest first (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_backups: Vec<RecentBackup>,
    /// The generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Valid`: the schedule, time zone, retention and repository are usable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// With `spec.volumes.snapshots`: each claim, its restore points and
    /// its last failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimStatus>,
}
