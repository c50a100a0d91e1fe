//! The Jobs runs are made of. An etcd backup runs `hokan etcd backup` as
//! OpenShift's `cluster-backup.sh` runs: on a control-plane node, on the
//! host network, with the etcd client certificates and the static pod
//! resources read from the node by hostPath (read-only). The repository's
//! password arrives as a mounted Secret file, the store's credentials as
//! environment from their Secret: never in the Job's spec.
//!
//! A Job is owned by its run (ownerReference with `controller: true`), so
//! deleting the run deletes the Job, and is named after the run so a
//! reconcile that runs twice finds the Job it made. It runs in the run's
//! namespace (a pod can only mount Secrets of its own namespace), as the
//! service account `hokan-etcd`, which exists in `hokan-system`: etcd
//! policies live there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, HostPathVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, ProjectedVolumeSource, SeccompProfile,
    SecretEnvSource, SecretVolumeSource, SecurityContext, ServiceAccountTokenProjection,
    Toleration, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use crate::api::backup::Backup;
use crate::api::common::Retention;
use crate::api::policy::EtcdSource;
use crate::api::repository::Repository;

/// The label naming a Job's run.
pub const RUN_LABEL: &str = "hokan.dev/run";
/// The label naming what a Job does (`etcd-backup`, ...).
pub const WORK_LABEL: &str = "hokan.dev/work";
/// The service account etcd Jobs run as.
pub const ETCD_SERVICE_ACCOUNT: &str = "hokan-etcd";
/// Where the password file is mounted.
pub const PASSWORD_DIR: &str = "/etc/hokan/password";
/// Where a web identity's projected token is mounted.
pub const TOKEN_DIR: &str = "/var/run/secrets/hokan/web-identity";

/// kubeadm's etcd client certificate paths, the defaults.
pub const DEFAULT_CA: &str = "/etc/kubernetes/pki/etcd/ca.crt";
/// The client certificate.
pub const DEFAULT_CERT: &str = "/etc/kubernetes/pki/etcd/healthcheck-client.crt";
/// The client key.
pub const DEFAULT_KEY: &str = "/etc/kubernetes/pki/etcd/healthcheck-client.key";
/// OpenShift's static pod resources directory.
pub const DEFAULT_STATIC_PODS: &str = "/etc/kubernetes/static-pod-resources";
/// The member seen from its node.
pub const DEFAULT_ENDPOINT: &str = "https://localhost:2379";

/// A Job name from a run name and a suffix: at most 63 characters (it
/// becomes a pod label value); a longer one is cut and made unique by a
/// hash of the whole.
pub fn job_name(run: &str, suffix: &str) -> String {
    let full = format!("{run}-{suffix}");
    if full.len() <= 63 {
        return full;
    }
    // FNV-1a: stable across releases, unlike std's hasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in full.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    let tail = format!("-{:08x}-{suffix}", h as u32);
    let mut head: String = run.chars().take(63 - tail.len()).collect();
    while head.ends_with(['-', '.']) {
        head.pop();
    }
    format!("{head}{tail}")
}

/// The `--keep-*` flags of a retention section, as the command takes them.
pub fn retention_args(r: &Retention) -> Vec<String> {
    let mut a = Vec::new();
    let mut count = |flag: &str, n: Option<u32>| {
        if let Some(n) = n {
            a.push(format!("--{flag}={n}"));
        }
    };
    count("keep-last", r.keep_last);
    count("keep-hourly", r.keep_hourly);
    count("keep-daily", r.keep_daily);
    count("keep-weekly", r.keep_weekly);
    count("keep-monthly", r.keep_monthly);
    count("keep-yearly", r.keep_yearly);
    if let Some(w) = &r.keep_within {
        a.push(format!("--keep-within={w}"));
    }
    if let Some(s) = &r.keep_size {
        a.push(format!("--keep-size={s}"));
    }
    a
}

/// The repository's environment for a Job: where it is, the password
/// file, the store's settings and credentials.
pub(crate) fn repository_env(repo: &Repository) -> (Vec<EnvVar>, Vec<EnvFromSource>) {
    let mut env = vec![
        EnvVar {
            name: "HOKAN_REPOSITORY".into(),
            value: Some(repo.spec.location.clone()),
            ..Default::default()
        },
        EnvVar {
            name: "HOKAN_PASSWORD_FILE".into(),
            value: Some(format!(
                "{PASSWORD_DIR}/{}",
                repo.spec.password_secret_ref.key
            )),
            ..Default::default()
        },
        EnvVar {
            name: "XDG_CACHE_HOME".into(),
            value: Some("/var/cache/hokan".into()),
            ..Default::default()
        },
    ];
    let identity = repo
        .spec
        .credentials
        .as_ref()
        .and_then(|c| c.web_identity.as_ref());
    let web = identity.map(|w| {
        [
            ("AWS_ROLE_ARN", w.role_arn.clone()),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", format!("{TOKEN_DIR}/token")),
            ("AWS_ROLE_SESSION_NAME", "hokan".into()),
        ]
    });
    let settings = repo
        .spec
        .config
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()));
    for (k, v) in web.into_iter().flatten().chain(settings) {
        env.push(EnvVar {
            name: k.to_string(),
            value: Some(v),
            ..Default::default()
        });
    }
    let from = repo
        .spec
        .credentials
        .as_ref()
        .and_then(|c| c.secret_name.clone())
        .map(|name| EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name,
                optional: Some(false),
            }),
            ..Default::default()
        })
        .into_iter()
        .collect();
    (env, from)
}

/// The owner reference that ties a Job to its run.
pub fn owned_by<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone()?,
        uid: owner.meta().uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The arguments of `hokan etcd backup` for run `run`, and the host
/// directories it reads (each mounted read-only at its own path).
fn etcd_args(run: &str, source: &EtcdSource) -> (Vec<String>, BTreeSet<String>) {
    let certs = &source.certificates;
    let ca = certs.ca_file.clone().unwrap_or_else(|| DEFAULT_CA.into());
    let cert = certs
        .cert_file
        .clone()
        .unwrap_or_else(|| DEFAULT_CERT.into());
    let key = certs.key_file.clone().unwrap_or_else(|| DEFAULT_KEY.into());
    let static_pods = source.static_pods.unwrap_or(true);
    let pods_dir = source
        .static_pod_resources_dir
        .clone()
        .unwrap_or_else(|| DEFAULT_STATIC_PODS.into());
    let mut args = vec![
        "etcd".to_string(),
        "backup".into(),
        format!(
            "--endpoints={}",
            source.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT)
        ),
        format!("--cacert={ca}"),
        format!("--cert={cert}"),
        format!("--key={key}"),
        format!("--tag={}", crate::work::run_tag(run)),
        "--json".into(),
    ];
    if static_pods {
        args.push(format!("--static-pod-resources={pods_dir}"));
    }
    if let Some(r) = &source.retention {
        args.extend(retention_args(r));
    }
    let mut host_dirs: BTreeSet<String> = [&ca, &cert, &key]
        .iter()
        .filter_map(|p| Path::new(p.as_str()).parent())
        .map(|p| p.display().to_string())
        .collect();
    if static_pods {
        host_dirs.insert(pods_dir);
    }
    (args, host_dirs)
}

/// The password Secret, a cache, and each host directory read-only.
pub(crate) fn volumes(
    repo: &Repository,
    host_dirs: &BTreeSet<String>,
) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = vec![
        Volume {
            name: "password".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(repo.spec.password_secret_ref.name.clone()),
                default_mode: Some(0o400),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "cache".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "password".into(),
            mount_path: PASSWORD_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "cache".into(),
            mount_path: "/var/cache/hokan".into(),
            ..Default::default()
        },
    ];
    // A web identity: the Job's own account token for the store's STS,
    // projected with its audience and renewed by the kubelet.
    if let Some(w) = repo
        .spec
        .credentials
        .as_ref()
        .and_then(|c| c.web_identity.as_ref())
    {
        volumes.push(Volume {
            name: "web-identity".into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(
                            w.audience
                                .clone()
                                .unwrap_or_else(|| "sts.amazonaws.com".into()),
                        ),
                        expiration_seconds: Some(3600),
                        path: "token".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "web-identity".into(),
            mount_path: TOKEN_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    // A path repository is a directory on the node (a local disk, or a
    // shared file system mounted at the same path on every node and in the
    // operator's pod): mounted read-write at its own path.
    if repo.spec.location.starts_with('/') {
        volumes.push(Volume {
            name: "repository".into(),
            host_path: Some(HostPathVolumeSource {
                path: repo.spec.location.clone(),
                type_: Some("Directory".into()),
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "repository".into(),
            mount_path: repo.spec.location.clone(),
            ..Default::default()
        });
    }
    for (i, dir) in host_dirs.iter().enumerate() {
        let vname = format!("host-{i}");
        volumes.push(Volume {
            name: vname.clone(),
            host_path: Some(HostPathVolumeSource {
                path: dir.clone(),
                type_: Some("Directory".into()),
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: vname,
            mount_path: dir.clone(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    (volumes, mounts)
}

/// Where an etcd Job may run: control-plane nodes unless told otherwise.
fn placement(source: &EtcdSource) -> (BTreeMap<String, String>, Vec<Toleration>) {
    let node_selector = if source.node_selector.is_empty() {
        BTreeMap::from([(
            "node-role.kubernetes.io/control-plane".to_string(),
            String::new(),
        )])
    } else {
        source.node_selector.clone()
    };
    let tolerations = if source.tolerations.is_empty() {
        [
            "node-role.kubernetes.io/control-plane",
            "node-role.kubernetes.io/master",
        ]
        .iter()
        .map(|k| Toleration {
            key: Some(k.to_string()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        })
        .collect()
    } else {
        source.tolerations.clone()
    };
    (node_selector, tolerations)
}

/// The etcd backup Job for `backup`, into `repo`, as `source` says.
pub fn etcd_backup_job(
    backup: &Backup,
    repo: &Repository,
    source: &EtcdSource,
    image: &str,
    retries: i32,
) -> Job {
    let run = backup.name_any();
    let (args, host_dirs) = etcd_args(&run, source);
    let (volumes, mounts) = volumes(repo, &host_dirs);
    let (node_selector, tolerations) = placement(source);
    // Root owns the files it reads: no capability needed.
    let container = container("etcd-backup", image, args, repo, mounts, None);
    let pod = PodSpec {
        service_account_name: Some(ETCD_SERVICE_ACCOUNT.into()),
        automount_service_account_token: Some(false),
        host_network: Some(true),
        dns_policy: Some("ClusterFirstWithHostNet".into()),
        node_selector: Some(node_selector),
        tolerations: Some(tolerations),
        // The certificates and static pod files are root's, mode 0600.
        security_context: Some(pod_security(Some(0))),
        containers: vec![container],
        volumes: Some(volumes),
        ..Default::default()
    };
    // A second pod after a failed one takes a new snapshot (etcd was
    // briefly away, a node drained); what fails every time ends the run
    // with its reason, and the next tick runs again.
    run_job(backup, "etcd", "etcd-backup", pod, retries)
}

/// A Job container running `hokan ARGS` against `repo` (its environment),
/// with `mounts`: no privilege escalation, a read-only root, every
/// capability dropped but `add`.
pub(crate) fn container(
    name: &str,
    image: &str,
    args: Vec<String>,
    repo: &Repository,
    mounts: Vec<VolumeMount>,
    add: Option<Vec<String>>,
) -> Container {
    let (env, env_from) = repository_env(repo);
    Container {
        name: name.into(),
        image: Some(image.into()),
        command: Some(vec!["hokan".into()]),
        args: Some(args),
        env: Some(env),
        env_from: Some(env_from).filter(|v: &Vec<_>| !v.is_empty()),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pod security context of a Job: the runtime's seccomp profile, and
/// the user when the work needs one (root for root's files).
pub(crate) fn pod_security(run_as_user: Option<i64>) -> PodSecurityContext {
    PodSecurityContext {
        run_as_user,
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Job doing `work` for run `owner` (a Backup or a Restore): named
/// `<run>-<suffix>`, in the run's namespace, owned by it, labelled with
/// both, never restarted in place, at most an hour, kept a day after it
/// ends; `backoff_limit` more pods after a failed one.
pub(crate) fn run_job<K: Resource<DynamicType = ()>>(
    owner: &K,
    suffix: &str,
    work: &str,
    mut pod: PodSpec,
    backoff_limit: i32,
) -> Job {
    let run = owner.meta().name.clone().unwrap_or_default();
    let labels = BTreeMap::from([
        (RUN_LABEL.to_string(), run.clone()),
        (WORK_LABEL.to_string(), work.to_string()),
        ("app.kubernetes.io/part-of".to_string(), "hokan".to_string()),
    ]);
    pod.restart_policy = Some("Never".into());
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&run, suffix)),
            namespace: owner.meta().namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: owned_by(owner).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(backoff_limit),
            active_deadline_seconds: Some(3600),
            ttl_seconds_after_finished: Some(86_400),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::backup::BackupSpec;
    use crate::api::common::SecretKeyRef;
    use crate::api::repository::{RepositorySpec, StoreCredentials};

    fn backup(name: &str) -> Backup {
        let mut b = Backup::new(name, BackupSpec::default());
        b.metadata.namespace = Some("hokan-system".into());
        b.metadata.uid = Some("uid-1".into());
        b
    }

    fn repo() -> Repository {
        Repository::new(
            "main",
            RepositorySpec {
                location: "s3://backups/a".into(),
                password_secret_ref: SecretKeyRef {
                    name: "hokan-repository".into(),
                    key: "password".into(),
                },
                credentials: Some(StoreCredentials {
                    secret_name: Some("hokan-s3".into()),
                    web_identity: None,
                }),
                config: BTreeMap::from([("AWS_REGION".to_string(), "us-east-1".to_string())]),
                ..Default::default()
            },
        )
    }

    #[test]
    fn a_web_identity_projects_the_jobs_own_token_for_the_role() {
        let mut r = repo();
        r.spec.credentials = Some(StoreCredentials {
            secret_name: None,
            web_identity: Some(crate::api::repository::WebIdentity {
                role_arn: "arn:aws:iam::1:role/hokan".into(),
                audience: None,
            }),
        });
        let job = etcd_backup_job(&backup("etcd-1"), &r, &EtcdSource::default(), "i", 0);
        let pod = job.spec.unwrap().template.spec.unwrap();
        let c = &pod.containers[0];
        let env: BTreeMap<_, _> = c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.clone().unwrap_or_default()))
            .collect();
        assert_eq!(env["AWS_ROLE_ARN"], "arn:aws:iam::1:role/hokan");
        assert_eq!(
            env["AWS_WEB_IDENTITY_TOKEN_FILE"],
            "/var/run/secrets/hokan/web-identity/token"
        );
        assert!(c.env_from.is_none(), "no Secret named");
        let v = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "web-identity")
            .unwrap();
        let token = v.projected.as_ref().unwrap().sources.as_ref().unwrap()[0]
            .service_account_token
            .clone()
            .unwrap();
        assert_eq!(token.audience.as_deref(), Some("sts.amazonaws.com"));
        assert_eq!(token.path, "token");
        // The token is the Job's own account's: the role trusts hokan-etcd.
        assert_eq!(pod.service_account_name.as_deref(), Some("hokan-etcd"));
        let m = c.volume_mounts.iter().flatten();
        assert!(
            m.clone()
                .any(|m| m.mount_path == TOKEN_DIR && m.read_only == Some(true))
        );
    }

    #[test]
    fn job_names_fit_a_label() {
        assert_eq!(
            job_name("etcd-20261207042000", "etcd"),
            "etcd-20261207042000-etcd"
        );
        let long = format!("{}-20261207042000", "p".repeat(80));
        let a = job_name(&long, "etcd");
        assert!(a.len() <= 63 && a.ends_with("-etcd"), "{a}");
        let other = format!("{}-20261207043000", "p".repeat(80));
        assert_ne!(a, job_name(&other, "etcd"), "cut names stay unique");
    }

    #[test]
    fn the_etcd_job_runs_as_cluster_backup_sh_does() {
        let source = EtcdSource {
            retention: Some(Retention {
                keep_last: Some(5),
                ..Default::default()
            }),
            ..Default::default()
        };
        let job = etcd_backup_job(
            &backup("etcd-20261207042000"),
            &repo(),
            &source,
            "localhost/hokan:0.1.0",
            2,
        );
        assert_eq!(
            job.metadata.name.as_deref(),
            Some("etcd-20261207042000-etcd")
        );
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Backup", "uid-1")
        );
        assert_eq!(owner.controller, Some(true));
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(2));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.host_network, Some(true));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.service_account_name.as_deref(), Some("hokan-etcd"));
        assert!(
            pod.node_selector
                .unwrap()
                .contains_key("node-role.kubernetes.io/control-plane")
        );
        assert_eq!(pod.tolerations.unwrap().len(), 2);
        let c = &pod.containers[0];
        assert_eq!(c.command.as_deref(), Some(&["hokan".to_string()][..]));
        let args = c.args.clone().unwrap();
        for want in [
            "etcd",
            "backup",
            "--endpoints=https://localhost:2379",
            "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
            "--static-pod-resources=/etc/kubernetes/static-pod-resources",
            "--keep-last=5",
            "--json",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
        }
        // Host directories read-only, the password as a file, nothing secret in the spec.
        let mounts = c.volume_mounts.clone().unwrap();
        for dir in [
            "/etc/kubernetes/pki/etcd",
            "/etc/kubernetes/static-pod-resources",
            PASSWORD_DIR,
        ] {
            let m = mounts.iter().find(|m| m.mount_path == dir).unwrap();
            assert_eq!(m.read_only, Some(true), "{dir}");
        }
        let env = c.env.clone().unwrap();
        let val = |k: &str| {
            env.iter()
                .find(|e| e.name == k)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(val("HOKAN_REPOSITORY").as_deref(), Some("s3://backups/a"));
        assert_eq!(
            val("HOKAN_PASSWORD_FILE").as_deref(),
            Some("/etc/hokan/password/password")
        );
        assert_eq!(val("AWS_REGION").as_deref(), Some("us-east-1"));
        let from = c.env_from.clone().unwrap();
        assert_eq!(from[0].secret_ref.as_ref().unwrap().name, "hokan-s3");
        let text = serde_json::to_string(&pod.volumes).unwrap();
        assert!(!text.contains("change-me"));
        let sc = c.security_context.clone().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
    }

    #[test]
    fn a_path_repository_is_mounted_read_write_at_its_path() {
        let mut local = repo();
        local.spec.location = "/backups/repo".into();
        let source = EtcdSource::default();
        let pod = |r: &Repository| {
            etcd_backup_job(&backup("etcd-1"), r, &source, "i", 0)
                .spec
                .unwrap()
                .template
                .spec
                .unwrap()
        };
        let p = pod(&local);
        let v = p.volumes.unwrap();
        let v = v.iter().find(|v| v.name == "repository").unwrap();
        let host = v.host_path.as_ref().unwrap();
        assert_eq!(
            (host.path.as_str(), host.type_.as_deref()),
            ("/backups/repo", Some("Directory"))
        );
        let mounts = p.containers[0].volume_mounts.clone().unwrap();
        let m = mounts.iter().find(|m| m.name == "repository").unwrap();
        assert_eq!(m.mount_path, "/backups/repo");
        assert_ne!(m.read_only, Some(true));
        // An object store needs no volume.
        let remote = pod(&repo());
        assert!(
            remote
                .volumes
                .unwrap()
                .iter()
                .all(|v| v.name != "repository")
        );
    }

    #[test]
    fn retention_becomes_the_commands_flags() {
        let r = Retention {
            keep_daily: Some(7),
            keep_size: Some("50G".into()),
            keep_within: Some("1m".into()),
            ..Default::default()
        };
        assert_eq!(
            retention_args(&r),
            ["--keep-daily=7", "--keep-within=1m", "--keep-size=50G"]
        );
    }
}
