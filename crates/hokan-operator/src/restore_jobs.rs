//! The Job of an etcd restore: `hokan etcd restore <id> -o <file>` on the
//! chosen control-plane node, writing the snapshot file (and the linked
//! static pod resources beside it) into a host directory, where
//! `etcdctl snapshot restore` or OpenShift's `cluster-restore.sh` takes
//! it. The names follow `cluster-backup.sh`'s (`snapshot_*.db`,
//! `static_kuberesources_*`), so the restore script finds them.
//!
//! The Job runs like an etcd backup Job ([`crate::jobs`]): as
//! `hokan-etcd`, no API token, the password as a mounted Secret file, the
//! store's credentials as environment. It needs no host network (it does
//! not talk to etcd) and mounts only the target directory, read-write,
//! created if missing. It is pinned to the node by `nodeName`, so it runs
//! there or not at all, and tolerates the control-plane taints.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{HostPathVolumeSource, PodSpec, Toleration, Volume, VolumeMount};
use kube::ResourceExt;

use crate::api::repository::Repository;
use crate::api::restore::{EtcdRestore, ExistingResourcePolicy, ResourceRestore, Restore};
use crate::jobs::{ETCD_SERVICE_ACCOUNT, container, pod_security, run_job, volumes};

/// The service account resource restores into this cluster run as: the
/// one allowed to create and update what they bring back.
pub const RESTORE_SERVICE_ACCOUNT: &str = "hokan-restore";

/// Where the files go unless the Restore says (OpenShift's restore script
/// looks there).
pub const DEFAULT_RESTORE_DIR: &str = "/var/lib/etcd-backup";

/// The files an etcd restore writes on its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOutput {
    /// The host directory.
    pub directory: String,
    /// The snapshot file, for `etcdctl snapshot restore`.
    pub file: String,
    /// The static pod resources' directory, when they are written.
    pub static_pods: Option<String>,
}

/// The files restore `run` writes, as `etcd` says. A file that exists
/// already is never overwritten (the command refuses): each Restore
/// writes its own names.
pub fn etcd_output(run: &str, etcd: &EtcdRestore) -> EtcdOutput {
    let directory = etcd
        .directory
        .clone()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_RESTORE_DIR.into());
    let dir = directory.trim_end_matches('/');
    EtcdOutput {
        file: format!("{dir}/snapshot_{run}.db"),
        static_pods: etcd
            .static_pods
            .unwrap_or(true)
            .then(|| format!("{dir}/static_kuberesources_{run}")),
        directory,
    }
}

/// The etcd restore Job of `restore`: snapshot `snapshot_id` of `repo`
/// written out on `etcd.node_name`.
pub fn etcd_restore_job(
    restore: &Restore,
    repo: &Repository,
    etcd: &EtcdRestore,
    snapshot_id: &str,
    image: &str,
) -> Job {
    let run = restore.name_any();
    let out = etcd_output(&run, etcd);
    let mut args = vec![
        "etcd".to_string(),
        "restore".into(),
        snapshot_id.to_string(),
        "-o".into(),
        out.file.clone(),
        "--json".into(),
    ];
    if let Some(dir) = &out.static_pods {
        args.push(format!("--static-pods-to={dir}"));
    }
    let (mut volumes, mut mounts) = volumes(repo, &BTreeSet::new());
    volumes.push(Volume {
        name: "target".into(),
        host_path: Some(HostPathVolumeSource {
            path: out.directory.clone(),
            type_: Some("DirectoryOrCreate".into()),
        }),
        ..Default::default()
    });
    mounts.push(VolumeMount {
        name: "target".into(),
        mount_path: out.directory.clone(),
        read_only: Some(false),
        ..Default::default()
    });
    let container = container("etcd-restore", image, args, repo, mounts, None);
    let pod = PodSpec {
        service_account_name: Some(ETCD_SERVICE_ACCOUNT.into()),
        automount_service_account_token: Some(false),
        node_name: Some(etcd.node_name.clone()),
        tolerations: Some(control_plane_tolerations()),
        // The directory is root's, as etcd's data directory is.
        security_context: Some(pod_security(Some(0))),
        containers: vec![container],
        volumes: Some(volumes),
        ..Default::default()
    };
    // One attempt: a second would find the file written and refuse.
    run_job(restore, "etcd-restore", "etcd-restore", pod, 0)
}

/// The Job of a resource restore into this cluster: `hokan k8s restore`
/// of snapshot `snapshot_id` with the spec's filters, namespace mapping and
/// existing-object policy, as [`RESTORE_SERVICE_ACCOUNT`] (the operator's
/// own account only reads). It runs on any node as the image's non-root
/// user and mounts nothing of the host. A second pod after a failed one
/// is safe: objects restored by the first exist and are left or updated
/// as the policy says.
pub fn resources_restore_job(
    restore: &Restore,
    repo: &Repository,
    spec: &ResourceRestore,
    snapshot_id: &str,
    image: &str,
    backoff_limit: i32,
) -> Job {
    let mut args = vec![
        "k8s".to_string(),
        "restore".into(),
        snapshot_id.to_string(),
        "--json".into(),
        format!(
            "--existing-resource-policy={}",
            match spec.existing_resource_policy {
                ExistingResourcePolicy::None => "none",
                ExistingResourcePolicy::Update => "update",
            }
        ),
    ];
    let f = &spec.filter;
    for (flag, values) in [
        ("include-namespaces", &f.included_namespaces),
        ("exclude-namespaces", &f.excluded_namespaces),
        ("include-resources", &f.included_resources),
        ("exclude-resources", &f.excluded_resources),
    ] {
        if !values.is_empty() {
            args.push(format!("--{flag}={}", values.join(",")));
        }
    }
    if !spec.namespace_mapping.is_empty() {
        let pairs: Vec<String> = spec
            .namespace_mapping
            .iter()
            .map(|(from, to)| format!("{from}:{to}"))
            .collect();
        args.push(format!("--namespace-mapping={}", pairs.join(",")));
    }
    let (volumes, mounts) = volumes(repo, &BTreeSet::new());
    let container = container("resources-restore", image, args, repo, mounts, None);
    let pod = PodSpec {
        service_account_name: Some(RESTORE_SERVICE_ACCOUNT.into()),
        // It talks to the API server as that account.
        automount_service_account_token: Some(true),
        security_context: Some(pod_security(None)),
        containers: vec![container],
        volumes: Some(volumes),
        ..Default::default()
    };
    run_job(
        restore,
        "resources-restore",
        "resources-restore",
        pod,
        backoff_limit,
    )
}

/// Tolerations of the control-plane taints, whatever their effect.
fn control_plane_tolerations() -> Vec<Toleration> {
    [
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
    ]
    .iter()
    .map(|k| Toleration {
        key: Some(k.to_string()),
        operator: Some("Exists".into()),
        ..Default::default()
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::SecretKeyRef;
    use crate::api::repository::RepositorySpec;
    use crate::api::restore::RestoreSpec;

    #[test]
    fn the_etcd_restore_job_writes_the_file_on_its_node() {
        let mut r = Restore::new("etcd-to-master-0", RestoreSpec::default());
        r.metadata.namespace = Some("hokan-system".into());
        r.metadata.uid = Some("uid-r".into());
        let repo = Repository::new(
            "main",
            RepositorySpec {
                location: "s3://backups/a".into(),
                password_secret_ref: SecretKeyRef {
                    name: "hokan-repository".into(),
                    key: "password".into(),
                },
                ..Default::default()
            },
        );
        let etcd = EtcdRestore {
            node_name: "master-0".into(),
            ..Default::default()
        };
        let job = etcd_restore_job(&r, &repo, &etcd, "0123abcd", "localhost/hokan:1");
        assert_eq!(job.name_any(), "etcd-to-master-0-etcd-restore");
        assert_eq!(job.namespace().as_deref(), Some("hokan-system"));
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Restore", "uid-r")
        );
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.node_name.as_deref(), Some("master-0"));
        assert_eq!(pod.service_account_name.as_deref(), Some("hokan-etcd"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.host_network, None, "it does not talk to etcd");
        let c = &pod.containers[0];
        assert_eq!(c.command.as_deref(), Some(&["hokan".to_string()][..]));
        assert_eq!(
            c.args.as_ref().unwrap(),
            &[
                "etcd",
                "restore",
                "0123abcd",
                "-o",
                "/var/lib/etcd-backup/snapshot_etcd-to-master-0.db",
                "--json",
                "--static-pods-to=/var/lib/etcd-backup/static_kuberesources_etcd-to-master-0",
            ]
        );
        // The target directory is the one writable host path.
        let target = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "target")
            .unwrap();
        let hp = target.host_path.as_ref().unwrap();
        assert_eq!(hp.path, "/var/lib/etcd-backup");
        assert_eq!(hp.type_.as_deref(), Some("DirectoryOrCreate"));
        let mounts = c.volume_mounts.as_ref().unwrap();
        let writable: Vec<_> = mounts
            .iter()
            .filter(|m| m.read_only != Some(true))
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(writable, ["/var/cache/hokan", "/var/lib/etcd-backup"]);
        let env = c.env.as_ref().unwrap();
        assert!(env.iter().any(|e| e.name == "HOKAN_PASSWORD_FILE"
            && e.value.as_deref() == Some("/etc/hokan/password/password")));

        // Without static pods, into another directory.
        let bare = EtcdRestore {
            node_name: "master-1".into(),
            directory: Some("/root/restore/".into()),
            static_pods: Some(false),
        };
        let out = etcd_output("r", &bare);
        assert_eq!(out.file, "/root/restore/snapshot_r.db");
        assert_eq!(out.static_pods, None);
    }
}
