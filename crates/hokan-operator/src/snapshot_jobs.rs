//! The objects a policy's CSI snapshots and copies are made of.
//!
//! **Snapshot**: a `VolumeSnapshot` of the claim in the claim's namespace,
//! labelled with the policy's uid and the claim, annotated with the time
//! the operator took it (its clock, which tests move).
//!
//! **Copy**, as Velero's data mover exposes a snapshot: the snapshot's
//! handle is bound to a new `VolumeSnapshotContent` (`Retain`: deleting it
//! deletes no data) and a `VolumeSnapshot` in the policy's namespace; a
//! temporary claim is made from that; a Job there mounts it read-only (a
//! Block-mode claim as a device) and runs `hokan k8s volumes copy` with the
//! source claim's identity; then the three are deleted. The Job runs where
//! the repository's Secrets are, so they never leave the policy's
//! namespace, and it calls no API (its token is not mounted).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaimVolumeSource, PodSpec, Volume, VolumeDevice, VolumeMount,
};
use kube::ResourceExt;
use kube::api::ApiResource;
use serde_json::{Value, json};

use crate::api::policy::BackupPolicy;
use crate::api::repository::Repository;
use crate::jobs::{container, job_name, pod_security, run_job, volumes};

/// The label holding the policy's uid on its snapshots and copy objects.
pub const POLICY_UID_LABEL: &str = "hokan.dev/policy-uid";
/// The label naming the claim (its name, or a hash of a long one).
pub const CLAIM_LABEL: &str = "hokan.dev/claim";
/// The annotation naming the claim in full, `namespace/name`.
pub const CLAIM_ANNOTATION: &str = "hokan.dev/claim";
/// The annotation holding when the operator took a snapshot (RFC 3339).
pub const TAKEN_ANNOTATION: &str = "hokan.dev/taken-at";
/// The annotation naming the snapshot a copy reads, `namespace/name`.
pub const SOURCE_ANNOTATION: &str = "hokan.dev/source-snapshot";
/// The work label of a copy Job.
pub const VOLUME_COPY: &str = "volume-copy";
/// Where a copy Job finds the data: the mount, or the device.
pub const COPY_MOUNT: &str = "/source";
/// The device path of a Block-mode copy.
pub const COPY_DEVICE: &str = "/dev/hokan-source";
/// The snapshot API's group.
pub const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";

/// The API resource of a snapshot kind (`VolumeSnapshot`,
/// `VolumeSnapshotContent`, `VolumeSnapshotClass`): not in k8s-openapi, so
/// read as dynamic objects.
pub fn snapshot_resource(kind: &str) -> ApiResource {
    ApiResource {
        group: SNAPSHOT_GROUP.into(),
        version: "v1".into(),
        api_version: format!("{SNAPSHOT_GROUP}/v1"),
        kind: kind.into(),
        plural: match kind {
            "VolumeSnapshotClass" => "volumesnapshotclasses".into(),
            _ => format!("{}s", kind.to_ascii_lowercase()),
        },
    }
}

/// FNV-1a, stable across releases (names made from it must not change).
fn fnv(text: &str) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in text.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x01000193);
    }
    h
}

/// The claim label's value: the name when it fits a label, else a hash.
pub fn claim_label(claim: &str) -> String {
    if claim.len() <= 63 {
        claim.to_string()
    } else {
        format!("h-{:08x}", fnv(claim))
    }
}

/// The name of the copy objects of claim `ns/claim` for `policy` (one copy
/// of a claim runs at a time): `<policy>-copy-<hash>`.
pub fn copy_name(policy: &str, ns: &str, claim: &str) -> String {
    job_name(policy, &copy_suffix(ns, claim))
}

fn copy_suffix(ns: &str, claim: &str) -> String {
    format!("copy-{:08x}", fnv(&format!("{ns}/{claim}")))
}

/// The cluster-wide content of a copy: its namespace in the name.
pub fn copy_content_name(policy_ns: &str, copy: &str) -> String {
    let name = format!("hokan-{policy_ns}-{copy}");
    name.chars().take(253).collect()
}

/// A snapshot's name: `<claim>-<yyyyMMddHHmmss>`, cut to fit.
pub fn snapshot_name(claim: &str, taken: chrono::DateTime<chrono::Utc>) -> String {
    let stamp = taken.format("%Y%m%d%H%M%S").to_string();
    let head: String = claim.chars().take(253 - stamp.len() - 1).collect();
    format!("{head}-{stamp}")
}

/// The `VolumeSnapshot` of claim `ns/claim` taken at `taken`.
pub fn volume_snapshot(
    policy: &BackupPolicy,
    ns: &str,
    claim: &str,
    class: Option<&str>,
    taken: chrono::DateTime<chrono::Utc>,
) -> Value {
    let mut spec = json!({"source": {"persistentVolumeClaimName": claim}});
    if let Some(c) = class {
        spec["volumeSnapshotClassName"] = json!(c);
    }
    json!({
        "apiVersion": format!("{SNAPSHOT_GROUP}/v1"), "kind": "VolumeSnapshot",
        "metadata": {
            "name": snapshot_name(claim, taken), "namespace": ns,
            "labels": labels(policy, claim),
            "annotations": {
                TAKEN_ANNOTATION: taken.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                CLAIM_ANNOTATION: format!("{ns}/{claim}"),
                "hokan.dev/policy": format!("{}/{}", policy.namespace().unwrap_or_default(), policy.name_any()),
            },
        },
        "spec": spec,
    })
}

fn labels(policy: &BackupPolicy, claim: &str) -> Value {
    json!({
        POLICY_UID_LABEL: policy.uid().unwrap_or_default(),
        CLAIM_LABEL: claim_label(claim),
        "app.kubernetes.io/part-of": "hokan",
    })
}

/// What a copy reads: the source snapshot and its claim.
#[derive(Clone, Debug)]
pub struct CopySource {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim.
    pub claim: String,
    /// The `VolumeSnapshot` copied, in the claim's namespace.
    pub snapshot: String,
    /// Its content's snapshot handle.
    pub handle: String,
    /// The CSI driver.
    pub driver: String,
    /// The snapshot class, if the content names one.
    pub class: Option<String>,
    /// The claim's volume mode is Block.
    pub block: bool,
    /// The temporary claim's StorageClass.
    pub storage_class: Option<String>,
    /// The temporary claim's size (at least the snapshot's restore size).
    pub size: String,
}

impl CopySource {
    fn annotations(&self) -> Value {
        json!({
            CLAIM_ANNOTATION: format!("{}/{}", self.namespace, self.claim),
            SOURCE_ANNOTATION: format!("{}/{}", self.namespace, self.snapshot),
        })
    }
}

/// The `VolumeSnapshotContent` binding the source's handle to the copy's
/// snapshot in the policy's namespace; `Retain`, so deleting it after the
/// copy leaves the claim's own snapshot whole.
pub fn copy_content(policy: &BackupPolicy, copy: &str, source: &CopySource) -> Value {
    let ns = policy.namespace().unwrap_or_default();
    bound_content(&ns, copy, source, labels(policy, &source.claim))
}

/// A content binding `source`'s snapshot handle to snapshot `ns/name`
/// (named [`copy_content_name`]): how a snapshot is exposed in another
/// namespace, as Velero's data mover does. `Retain`: deleting it deletes
/// no data.
pub fn bound_content(ns: &str, name: &str, source: &CopySource, labels: Value) -> Value {
    let mut spec = json!({
        "driver": source.driver,
        "deletionPolicy": "Retain",
        "source": {"snapshotHandle": source.handle},
        "volumeSnapshotRef": {"kind": "VolumeSnapshot", "namespace": ns, "name": name},
    });
    if let Some(c) = &source.class {
        spec["volumeSnapshotClassName"] = json!(c);
    }
    json!({
        "apiVersion": format!("{SNAPSHOT_GROUP}/v1"), "kind": "VolumeSnapshotContent",
        "metadata": {"name": copy_content_name(ns, name), "labels": labels,
                     "annotations": source.annotations()},
        "spec": spec,
    })
}

/// The copy's `VolumeSnapshot` in the policy's namespace, bound to
/// [`copy_content`].
pub fn copy_snapshot(policy: &BackupPolicy, copy: &str, source: &CopySource) -> Value {
    let ns = policy.namespace().unwrap_or_default();
    bound_snapshot(&ns, copy, source, labels(policy, &source.claim))
}

/// Snapshot `ns/name` bound to [`bound_content`].
pub fn bound_snapshot(ns: &str, name: &str, source: &CopySource, labels: Value) -> Value {
    json!({
        "apiVersion": format!("{SNAPSHOT_GROUP}/v1"), "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
                     "annotations": source.annotations()},
        "spec": {"source": {"volumeSnapshotContentName": copy_content_name(ns, name)}},
    })
}

/// The temporary claim made from the copy's snapshot: the source's volume
/// mode, read by one pod.
pub fn copy_claim(policy: &BackupPolicy, copy: &str, source: &CopySource) -> Value {
    let ns = policy.namespace().unwrap_or_default();
    claim_from(&ns, copy, copy, source, labels(policy, &source.claim))
}

/// Claim `ns/name` made from snapshot `snapshot` (in `ns`): the source
/// claim's volume mode, size and storage class.
pub fn claim_from(
    ns: &str,
    name: &str,
    snapshot: &str,
    source: &CopySource,
    labels: Value,
) -> Value {
    let mut spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": if source.block { "Block" } else { "Filesystem" },
        "resources": {"requests": {"storage": source.size}},
        "dataSource": {"apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": snapshot},
    });
    if let Some(c) = &source.storage_class {
        spec["storageClassName"] = json!(c);
    }
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
                     "annotations": source.annotations()},
        "spec": spec,
    })
}

/// The copy Job: mounts the temporary claim read-only (a device for a
/// Block-mode claim) and saves it as the source claim's snapshot.
pub fn copy_job(policy: &BackupPolicy, repo: &Repository, source: &CopySource, image: &str) -> Job {
    let copy = copy_name(&policy.name_any(), &source.namespace, &source.claim);
    let from = if source.block {
        COPY_DEVICE
    } else {
        COPY_MOUNT
    };
    let mut args = vec![
        "k8s".to_string(),
        "volumes".into(),
        "copy".into(),
        from.into(),
        format!("--namespace={}", source.namespace),
        format!("--claim={}", source.claim),
        format!("--volume-snapshot={}", source.snapshot),
        format!("--tag=hokan.dev/policy={}", policy.name_any()),
        "--json".into(),
    ];
    if source.block {
        args.push("--block".into());
    }
    let (mut vols, mut mounts) = volumes(repo, &BTreeSet::new());
    vols.push(Volume {
        name: "source".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: copy.clone(),
            read_only: Some(true),
        }),
        ..Default::default()
    });
    if !source.block {
        mounts.push(VolumeMount {
            name: "source".into(),
            mount_path: COPY_MOUNT.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    // Every file, whatever its owner and mode; nothing written.
    let mut c = container(
        "volume-copy",
        image,
        args,
        repo,
        mounts,
        Some(vec!["DAC_READ_SEARCH".into()]),
    );
    if source.block {
        c.volume_devices = Some(vec![VolumeDevice {
            name: "source".into(),
            device_path: COPY_DEVICE.into(),
        }]);
    }
    let pod = PodSpec {
        service_account_name: Some("default".into()),
        automount_service_account_token: Some(false),
        security_context: Some(pod_security(Some(0))),
        containers: vec![c],
        volumes: Some(vols),
        ..Default::default()
    };
    // One attempt: a failed copy is reported and the next interval tries
    // again from a newer snapshot.
    let mut job = run_job(
        policy,
        &copy_suffix(&source.namespace, &source.claim),
        VOLUME_COPY,
        pod,
        0,
    );
    let meta = &mut job.metadata;
    meta.annotations = Some(BTreeMap::from([
        (
            CLAIM_ANNOTATION.to_string(),
            format!("{}/{}", source.namespace, source.claim),
        ),
        (
            SOURCE_ANNOTATION.to_string(),
            format!("{}/{}", source.namespace, source.snapshot),
        ),
    ]));
    if let Some(l) = meta.labels.as_mut() {
        l.insert(POLICY_UID_LABEL.into(), policy.uid().unwrap_or_default());
        l.insert(CLAIM_LABEL.into(), claim_label(&source.claim));
    }
    if let Some(spec) = job.spec.as_mut() {
        spec.active_deadline_seconds = Some(6 * 3600);
    }
    job
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::SecretKeyRef;
    use crate::api::policy::BackupPolicySpec;
    use crate::api::repository::RepositorySpec;
    use chrono::TimeZone;

    fn policy() -> BackupPolicy {
        let mut p = BackupPolicy::new("daily", BackupPolicySpec::default());
        p.metadata.namespace = Some("hokan-system".into());
        p.metadata.uid = Some("uid-1".into());
        p
    }

    fn source(block: bool) -> CopySource {
        CopySource {
            namespace: "shop".into(),
            claim: "data".into(),
            snapshot: "data-20261207120000".into(),
            handle: "snapshot-1".into(),
            driver: "hostpath.csi.k8s.io".into(),
            class: Some("csi-hostpath-snapclass".into()),
            block,
            storage_class: Some("csi-hostpath".into()),
            size: "1Gi".into(),
        }
    }

    #[test]
    fn a_copy_binds_the_handle_in_the_policys_namespace_and_reads_it_read_only() {
        let p = policy();
        let copy = copy_name("daily", "shop", "data");
        assert!(copy.starts_with("daily-copy-") && copy.len() == "daily-copy-".len() + 8);
        let content = copy_content(&p, &copy, &source(false));
        assert_eq!(content["spec"]["deletionPolicy"], "Retain");
        assert_eq!(content["spec"]["source"]["snapshotHandle"], "snapshot-1");
        assert_eq!(
            content["spec"]["volumeSnapshotRef"]["namespace"],
            "hokan-system"
        );
        let snap = copy_snapshot(&p, &copy, &source(false));
        assert_eq!(
            snap["spec"]["source"]["volumeSnapshotContentName"],
            content["metadata"]["name"]
        );
        let claim = copy_claim(&p, &copy, &source(true));
        assert_eq!(claim["spec"]["volumeMode"], "Block");
        assert_eq!(claim["spec"]["dataSource"]["name"], json!(copy));

        let repo = Repository::new(
            "main",
            RepositorySpec {
                location: "/srv/backups".into(),
                password_secret_ref: SecretKeyRef {
                    name: "pw".into(),
                    key: "password".into(),
                },
                ..Default::default()
            },
        );
        let job = copy_job(&p, &repo, &source(false), "img");
        assert_eq!(job.name_any(), copy);
        let pod = job.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false));
        let c = &pod.containers[0];
        let args = c.args.clone().unwrap();
        assert!(args.contains(&"--claim=data".to_string()), "{args:?}");
        let m = c.volume_mounts.as_ref().unwrap();
        assert!(
            m.iter()
                .any(|m| m.mount_path == COPY_MOUNT && m.read_only == Some(true))
        );
        let block = copy_job(&p, &repo, &source(true), "img");
        let c = block.spec.unwrap().template.spec.unwrap().containers[0].clone();
        assert_eq!(c.volume_devices.unwrap()[0].device_path, COPY_DEVICE);
        let args = c.args.unwrap();
        assert_eq!(args[3], COPY_DEVICE);
        assert!(args.contains(&"--block".to_string()));
    }

    #[test]
    fn snapshot_names_and_labels_fit() {
        assert_eq!(
            snapshot_resource("VolumeSnapshotClass").plural,
            "volumesnapshotclasses"
        );
        assert_eq!(
            snapshot_resource("VolumeSnapshot").plural,
            "volumesnapshots"
        );
        let t = chrono::Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
        let vs = volume_snapshot(&policy(), "shop", "data", None, t);
        assert_eq!(vs["metadata"]["name"], "data-20261207120000");
        assert_eq!(
            vs["metadata"]["annotations"][TAKEN_ANNOTATION],
            "2026-12-07T12:00:00Z"
        );
        assert!(vs["spec"].get("volumeSnapshotClassName").is_none());
        let long = "c".repeat(100);
        assert!(claim_label(&long).len() <= 63);
        assert!(snapshot_name(&"c".repeat(300), t).len() <= 253);
    }
}
