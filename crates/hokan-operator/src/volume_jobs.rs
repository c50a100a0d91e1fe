//! The Jobs pod volumes are backed up and restored with.
//!
//! **Backup**: one Job per node and run (`hokan k8s volumes backup --node
//! <node>`), pinned to the node (`nodeName`, every taint tolerated), as
//! the service account `hokan-node-agent`, reading the kubelet's directory
//! by hostPath (read-only, `HostToContainer` so volumes mounted later are
//! seen) as root with `DAC_READ_SEARCH` only: enough to read every pod's
//! files, nothing to change them. It takes only the namespaces the
//! operator chose pods in and the policy's label selector, and tags its
//! snapshots with the run, so the run finds them in the repository. A Job
//! made for a run rather than a DaemonSet: nothing runs between backups,
//! and a node's work is a Job the run owns, with its own log and outcome.
//!
//! **Restore**: a Job in the claim's namespace that mounts the claim
//! (`persistentVolumeClaim`) and runs `hokan k8s volumes restore` into
//! it, owners moved by the UID shift the operator computed (so the Job
//! needs no API access: its token is not mounted), as root with the
//! capabilities writing files of any owner takes.
//!
//! Both reuse [`crate::jobs`]: the repository's environment and volumes,
//! the naming, the owner reference.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Container, HostPathVolumeSource, PersistentVolumeClaimVolumeSource, PodSpec, Toleration,
    Volume, VolumeDevice, VolumeMount,
};
use kube::ResourceExt;

use crate::api::backup::Backup;
use crate::api::common::selector_string;
use crate::api::policy::VolumeSource;
use crate::api::repository::Repository;
use crate::api::restore::Restore;
use crate::jobs::{container, pod_security, run_job, volumes};

/// The service account volume backup Jobs run as (in `hokan-system`).
pub const NODE_AGENT_SERVICE_ACCOUNT: &str = "hokan-node-agent";
/// The work label of a node's volume backup Job.
pub const VOLUME_BACKUP: &str = "volume-backup";
/// The work label of a volume restore Job.
pub const VOLUME_RESTORE: &str = "volume-restore";
/// The annotation naming the node a volume backup Job runs on.
pub const NODE_ANNOTATION: &str = "hokan.dev/node";
/// The annotation listing the pods (`namespace/name`, comma-separated) a
/// volume backup Job was made for: their volumes are the errors when the
/// Job fails.
pub const PODS_ANNOTATION: &str = "hokan.dev/pods";
/// The kubelet's directory on the node.
pub const KUBELET_DIR: &str = "/var/lib/kubelet";
/// Where a restore Job mounts the claim.
pub const RESTORE_TARGET: &str = "/restore";
/// Where a volume restore Job sees a Block-mode target claim's device.
pub const RESTORE_DEVICE: &str = "/dev/hokan-target";

/// A pod chosen for a run: namespace and name.
pub type PodName = (String, String);

/// The Job suffix for `node`: its name when short, else a hash of it.
fn node_suffix(node: &str) -> String {
    if node.len() <= 24 {
        return format!("vol-{node}");
    }
    let mut h: u32 = 0x811c9dc5;
    for b in node.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x01000193);
    }
    format!("vol-{h:08x}")
}

/// The arguments of `hokan k8s volumes backup` on `node` for run `run`:
/// every volume of the chosen pods (their namespaces, the policy's
/// selector) but the excluded ones, tagged with the run.
pub fn volume_backup_args(
    run: &str,
    node: &str,
    source: &VolumeSource,
    namespaces: &BTreeSet<String>,
) -> Vec<String> {
    let mut args = vec![
        "k8s".to_string(),
        "volumes".into(),
        "backup".into(),
        format!("--node={node}"),
        "--kubelet-dir".into(),
        KUBELET_DIR.into(),
        "--default-volumes-to-fs-backup".into(),
        format!(
            "--include-namespaces={}",
            namespaces.iter().cloned().collect::<Vec<_>>().join(",")
        ),
        format!("--tag={}", crate::work::run_tag(run)),
        "--json".into(),
    ];
    if let Some(s) = source.selection.pod_selector.as_ref().map(selector_string)
        && !s.is_empty()
    {
        args.push(format!("--selector={s}"));
    }
    if !source.exclude_volumes.is_empty() {
        args.push(format!(
            "--exclude-volume={}",
            source.exclude_volumes.join(",")
        ));
    }
    if !source.exclude_claims.is_empty() {
        args.push(format!(
            "--exclude-claim={}",
            source.exclude_claims.join(",")
        ));
    }
    args
}

/// The volume backup Job of `backup` on `node`, for `pods` there.
pub fn volume_backup_job(
    backup: &Backup,
    repo: &Repository,
    source: &VolumeSource,
    node: &str,
    pods: &[PodName],
    image: &str,
) -> Job {
    let run = backup.name_any();
    let namespaces: BTreeSet<String> = pods.iter().map(|(ns, _)| ns.clone()).collect();
    let args = volume_backup_args(&run, node, source, &namespaces);
    let (mut volumes, mut mounts) = volumes(repo, &BTreeSet::new());
    volumes.push(Volume {
        name: "kubelet".into(),
        host_path: Some(HostPathVolumeSource {
            path: KUBELET_DIR.into(),
            type_: Some("Directory".into()),
        }),
        ..Default::default()
    });
    mounts.push(VolumeMount {
        name: "kubelet".into(),
        mount_path: KUBELET_DIR.into(),
        read_only: Some(true),
        mount_propagation: Some("HostToContainer".into()),
        ..Default::default()
    });
    // Read every pod's files whatever their owner and mode.
    let container = container(
        "volume-backup",
        image,
        args,
        repo,
        mounts,
        Some(vec!["DAC_READ_SEARCH".into()]),
    );
    let pod = PodSpec {
        service_account_name: Some(NODE_AGENT_SERVICE_ACCOUNT.into()),
        // It lists the node's pods and reads their claims.
        automount_service_account_token: Some(true),
        node_name: Some(node.into()),
        tolerations: Some(vec![Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        }]),
        security_context: Some(pod_security(Some(0))),
        containers: vec![container],
        volumes: Some(volumes),
        ..Default::default()
    };
    let pods_text = pods
        .iter()
        .map(|(ns, p)| format!("{ns}/{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let annotations = BTreeMap::from([
        (NODE_ANNOTATION.to_string(), node.to_string()),
        (PODS_ANNOTATION.to_string(), pods_text),
    ]);
    // One attempt: a second would save a claim twice in one run; a failed
    // node is reported and the next tick runs again.
    let mut job = run_job(backup, &node_suffix(node), VOLUME_BACKUP, pod, 0);
    job.metadata.annotations = Some(annotations);
    long_deadline(&mut job);
    job
}

/// What a volume restore Job restores, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeRestoreTarget {
    /// The claim, in the Restore's namespace.
    pub claim: String,
    /// The snapshot's full id.
    pub snapshot: String,
    /// `FROM:TO` UID ranges to move owners between, if any.
    pub uid_range: Option<String>,
    /// The node of the running pod that mounts a ReadWriteOnce claim.
    pub node: Option<String>,
    /// The claim is a raw device (`volumeMode: Block`): the snapshot's
    /// `device` file is written onto it.
    pub block: bool,
}

/// The volume restore Job of `restore`.
pub fn volume_restore_job(
    restore: &Restore,
    repo: &Repository,
    target: &VolumeRestoreTarget,
    image: &str,
) -> Job {
    let mut args = vec![
        "k8s".to_string(),
        "volumes".into(),
        "restore".into(),
        target.snapshot.clone(),
        "--target".into(),
        RESTORE_TARGET.into(),
        "--json".into(),
    ];
    if let Some(r) = &target.uid_range {
        args.push(format!("--uid-range={r}"));
    }
    if target.block {
        // A device has no owners to move: its copy's one file, written
        // onto it (holes as zeros).
        let device_file = hokan_k8s::volumes::DEVICE_FILE;
        args = vec![
            "restore".to_string(),
            format!("{}:/{device_file}", target.snapshot),
            "--to-device".into(),
            RESTORE_DEVICE.into(),
            "--json".into(),
        ];
    }
    let (mut volumes, mut mounts) = volumes(repo, &BTreeSet::new());
    volumes.push(Volume {
        name: "target".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: target.claim.clone(),
            read_only: Some(false),
        }),
        ..Default::default()
    });
    if !target.block {
        mounts.push(VolumeMount {
            name: "target".into(),
            mount_path: RESTORE_TARGET.into(),
            ..Default::default()
        });
    }
    // Files of any owner, written and given their owners.
    let mut container: Container = container(
        "volume-restore",
        image,
        args,
        repo,
        mounts,
        Some(vec!["CHOWN".into(), "FOWNER".into(), "DAC_OVERRIDE".into()]),
    );
    if target.block {
        container.volume_devices = Some(vec![VolumeDevice {
            name: "target".into(),
            device_path: RESTORE_DEVICE.into(),
        }]);
    }
    let pod = PodSpec {
        // The namespace's own account: the Job calls no API (the operator
        // read the UID ranges), so nothing is granted to it.
        service_account_name: Some("default".into()),
        automount_service_account_token: Some(false),
        node_name: target.node.clone(),
        security_context: Some(pod_security(Some(0))),
        containers: vec![container],
        volumes: Some(volumes),
        ..Default::default()
    };
    let mut job = run_job(restore, "volume", VOLUME_RESTORE, pod, 0);
    long_deadline(&mut job);
    job
}

/// Volumes can be large: six hours before a Job is stopped, not one.
fn long_deadline(job: &mut Job) {
    if let Some(spec) = job.spec.as_mut() {
        spec.active_deadline_seconds = Some(6 * 3600);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::backup::BackupSpec;
    use crate::api::common::{PodSelection, SecretKeyRef};
    use crate::api::repository::RepositorySpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn repo() -> Repository {
        Repository::new(
            "main",
            RepositorySpec {
                location: "/srv/backups".into(),
                password_secret_ref: SecretKeyRef {
                    name: "hokan-repository".into(),
                    key: "password".into(),
                },
                ..Default::default()
            },
        )
    }

    #[test]
    fn a_nodes_job_is_pinned_reads_the_kubelet_dir_and_takes_the_chosen_pods() {
        let mut b = Backup::new("vols-20261207050000", BackupSpec::default());
        b.metadata.namespace = Some("hokan-system".into());
        b.metadata.uid = Some("u1".into());
        let source = VolumeSource {
            selection: PodSelection {
                pod_selector: Some(LabelSelector {
                    match_labels: Some([("app".to_string(), "db".to_string())].into()),
                    ..Default::default()
                }),
                namespaces: vec!["shop*".into()],
            },
            exclude_volumes: vec!["scratch".into()],
            ..Default::default()
        };
        let pods = vec![("shop".to_string(), "db-0".to_string())];
        let j = volume_backup_job(&b, &repo(), &source, "worker-1", &pods, "img");
        assert_eq!(j.name_any(), "vols-20261207050000-vol-worker-1");
        let pod = j.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.node_name.as_deref(), Some("worker-1"));
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some(NODE_AGENT_SERVICE_ACCOUNT)
        );
        let c = &pod.containers[0];
        let args = c.args.clone().unwrap();
        for want in [
            "--node=worker-1",
            "--include-namespaces=shop",
            "--selector=app=db",
            "--exclude-volume=scratch",
            "--tag=hokan.dev/run=vols-20261207050000",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
        }
        let m = c.volume_mounts.as_ref().unwrap();
        let kubelet = m.iter().find(|m| m.mount_path == KUBELET_DIR).unwrap();
        assert_eq!(kubelet.read_only, Some(true));
        assert_eq!(
            kubelet.mount_propagation.as_deref(),
            Some("HostToContainer")
        );
        assert!(m.iter().any(|m| m.mount_path == "/srv/backups"));
        let caps = c.security_context.as_ref().unwrap().capabilities.as_ref();
        assert_eq!(caps.unwrap().add, Some(vec!["DAC_READ_SEARCH".to_string()]));
        assert_eq!(
            j.metadata.annotations.unwrap()[PODS_ANNOTATION],
            "shop/db-0"
        );
        let long = "n".repeat(40);
        assert!(node_suffix(&long).len() == 12 && node_suffix(&long).starts_with("vol-"));
    }
}
