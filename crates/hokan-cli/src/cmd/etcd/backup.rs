//! `hokan etcd backup` and `hokan etcd import`, with the static pod
//! resources beside them and retention after the snapshot is saved.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hokan_etcd::static_pods;
use hokan_etcd::{
    BackupOptions, ClusterBackup, EtcdEndpoint, EtcdSnapshot, EtcdSource, StaticPods,
    cluster_backup,
};
use hokan_repo::IndexedRepository;
use hokan_repo::retention::GroupDecisions;

use super::err;
use crate::Global;
use crate::cmd::forget::{PolicyArgs, group_json, print_group};
use crate::output;
use crate::progress::CliProgress;

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// The etcd member's client URL (exactly one, as etcdctl snapshot save requires)
    #[arg(long, env = "ETCDCTL_ENDPOINTS", value_name = "URL")]
    pub endpoints: String,
    /// CA certificate that signed etcd's server certificate (PEM)
    #[arg(long, env = "ETCDCTL_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM)
    #[arg(long, env = "ETCDCTL_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Client certificate's key (PEM)
    #[arg(long, env = "ETCDCTL_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// A file written by `etcdctl snapshot save`, or a stopped member's member/snap/db
    pub file: PathBuf,
    /// The cluster id (hex) to record and group by, instead of the one derived from the
    /// members stored in the file (which differs once members were replaced)
    #[arg(long, value_name = "HEX")]
    pub cluster_id: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(clap::Args, Debug)]
pub struct CommonArgs {
    /// Tag the snapshot (repeatable, or comma-separated)
    #[arg(long = "tag", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Record this host name in the snapshot
    #[arg(long)]
    pub host: Option<String>,
    /// Also store the latest revision of each control-plane component's static pod
    /// resources from this directory (/etc/kubernetes/static-pod-resources), as
    /// cluster-backup.sh does, as a snapshot of their own linked to this one
    #[arg(long, value_name = "DIR")]
    pub static_pod_resources: Option<PathBuf>,
    /// Pick the revisions the static pod manifests in this directory name
    /// (/etc/kubernetes/manifests) instead of the highest present
    #[arg(long, value_name = "DIR", requires = "static_pod_resources")]
    pub static_pod_manifests: Option<PathBuf>,
    /// Store the static pod resources (which hold the encryption keys when etcd
    /// encryption is on) in this other repository
    #[arg(long, value_name = "REPO", requires = "static_pod_resources")]
    pub static_pod_repo: Option<String>,
    /// Password file of --static-pod-repo (default: the same password as the main repository)
    #[arg(long, value_name = "FILE", requires = "static_pod_repo")]
    pub static_pod_password_file: Option<PathBuf>,
    /// Retention for this cluster's etcd snapshots, applied once the snapshot is
    /// saved (--keep-last N leaves exactly N); data goes at the next prune
    #[command(flatten, next_help_heading = "Retention (after the snapshot is saved)")]
    pub retention: PolicyArgs,
}

pub fn backup(g: &Global, a: BackupArgs) -> Result<ExitCode> {
    let mut endpoint = EtcdEndpoint::new(&a.endpoints).map_err(err)?;
    if let Some(ca) = &a.cacert {
        endpoint = endpoint.with_ca_cert(ca);
    }
    match (&a.cert, &a.key) {
        (Some(c), Some(k)) => endpoint = endpoint.with_client_cert(c, k),
        (None, None) => {}
        _ => bail!("--cert and --key go together: give both or neither"),
    }
    run(g, &a.common, EtcdSource::Live(&endpoint), None)
}

pub fn import(g: &Global, a: ImportArgs) -> Result<ExitCode> {
    if let Some(id) = &a.cluster_id
        && u64::from_str_radix(id, 16).is_err()
    {
        bail!("--cluster-id {id:?} is not a hex number (etcdctl prints cluster ids in hex)");
    }
    run(
        g,
        &a.common,
        EtcdSource::File(&a.file),
        a.cluster_id.clone(),
    )
}

fn run(
    g: &Global,
    a: &CommonArgs,
    source: EtcdSource<'_>,
    cluster_id: Option<String>,
) -> Result<ExitCode> {
    // Everything that can be refused is refused before anything is stored.
    let policy = a.retention.policy()?;
    let chosen = match &a.static_pod_resources {
        Some(dir) => Some((
            dir.clone(),
            static_pods::latest_static_pod_resources(dir, a.static_pod_manifests.as_deref())
                .map_err(err)?,
        )),
        None => None,
    };
    let mut repo = super::super::open(g)?.load_index()?;
    let mut pod_repo = match &a.static_pod_repo {
        Some(loc) => {
            let pw = crate::password::repository(
                a.static_pod_password_file
                    .as_deref()
                    .or(g.password_file.as_deref()),
            )?;
            let r = pw
                .open(|pw| hokan_repo::Repository::open(loc, pw, super::super::open_options(g)))
                .with_context(|| format!("opening the static pod repository {loc}"))?;
            Some((loc.clone(), r.load_index()?))
        }
        None => None,
    };
    let pods = chosen.map(|(resources, chosen)| StaticPods {
        resources,
        chosen,
        elsewhere: pod_repo.as_mut().map(|(l, r)| (l.clone(), r)),
    });
    // As given: the snapshot spec normalises them for every source.
    let tags = a.tags.clone();
    let options = BackupOptions {
        tags,
        hostname: a.host.clone(),
        cluster_id,
        ..Default::default()
    };
    let progress = CliProgress::start(super::super::progress_mode(g));
    let done = cluster_backup(&mut repo, source, &options, pods, &policy, &progress);
    progress.finish();
    let mut done = done.map_err(err)?;
    let retained = done.retention.take().transpose().context(
        "the snapshot is saved, but applying the retention policy failed; run `hokan forget` \
         with the same --keep flags",
    );
    let pods_in = a.static_pod_repo.as_deref();
    report(
        g,
        &done,
        pods_in,
        progress.elapsed(),
        retained.as_ref().ok().and_then(Option::as_ref),
    )?;
    retained.map(|_| ExitCode::SUCCESS)
}

fn report(
    g: &Global,
    done: &ClusterBackup,
    pods_in: Option<&str>,
    seconds: f64,
    retained: Option<&GroupDecisions>,
) -> Result<()> {
    let backed = &done.backed;
    let pods = done.static_pods.as_ref();
    let saved = &backed.entry;
    let s = &saved.snapshot.summary;
    crate::metrics::record_backup(saved);
    let f = &backed.facts;
    if g.json {
        let mut v = crate::cmd::snapshots::snapshot_json(saved);
        v["message_type"] = "summary".into();
        v["snapshot_id"] = saved.id.to_hex().into();
        v["seconds_elapsed"] = seconds.into();
        v["etcd"] = serde_json::to_value(f)?;
        v["etcd"]["keys"] = backed.keys.into();
        if let Some(p) = pods {
            v["static_pods"] = serde_json::json!({
                "snapshot_id": p.id.to_hex(),
                "repository": pods_in,
                "paths": p.snapshot.paths,
            });
        }
        if let Some(gr) = retained {
            v["forget"] = group_json(gr, false);
        }
        return output::json(&v);
    }
    if g.quiet {
        return Ok(());
    }
    let cluster = f.cluster_id.as_deref().unwrap_or("unknown");
    let member = match (&f.member_name, &f.etcd_version) {
        (Some(m), Some(v)) => format!(" (member {m}, etcd {v})"),
        _ => String::new(),
    };
    println!("Cluster:     {cluster}{member}");
    match &f.status {
        Some(st) => println!(
            "Database:    revision {}, {} keys ({} objects), hash {:x}",
            st.revision, st.total_key, backed.keys, st.hash
        ),
        None => println!(
            "Database:    no status or object catalog: {}",
            f.inventory_error.as_deref().unwrap_or("unknown")
        ),
    }
    println!(
        "Size:        {}{}",
        output::size(f.size),
        if f.trailer {
            " (with etcd's SHA-256, verified)"
        } else {
            ""
        }
    );
    println!(
        "Added:       {} ({} stored, {} blobs in {} packs)",
        output::size(s.bytes_added),
        output::size(s.bytes_stored),
        s.blobs_added,
        s.packs_added
    );
    if let Some(p) = pods {
        println!(
            "Static pods: snapshot {}{} ({})",
            p.id.short(),
            pods_in.map(|l| format!(" in {l}")).unwrap_or_default(),
            p.snapshot.paths.join(", ")
        );
    }
    println!(
        "processed {} in {seconds:.1} s ({}/s)",
        output::size(f.size),
        output::size((f.size as f64 / seconds.max(1e-3)) as u64)
    );
    println!("snapshot {} saved", saved.id.short());
    if let Some(gr) = retained {
        println!();
        print_group(gr, false);
    }
    Ok(())
}

/// Restores the static pod resources linked to `snap` into `dir`;
/// returns their snapshot id and the files restored.
pub fn restore_static_pods(
    g: &Global,
    repo: &IndexedRepository,
    snap: &EtcdSnapshot,
    dir: &Path,
    password_file: Option<&Path>,
) -> Result<(String, u64)> {
    let Some(link) = static_pods::static_pods_link(&snap.entry.snapshot) else {
        bail!(
            "snapshot {} has no static pod resources (it was taken without --static-pod-resources)",
            snap.short_id()
        );
    };
    let other;
    let holder = match &link.repository {
        Some(loc) => {
            let pw = crate::password::repository(password_file.or(g.password_file.as_deref()))?;
            other = pw
                .open(|pw| hokan_repo::Repository::open(loc, pw, super::super::open_options(g)))
                .with_context(|| format!("opening the static pod repository {loc}"))?
                .load_index()?;
            &other
        }
        None => repo,
    };
    let (entry, restored) =
        static_pods::restore_linked_static_pods(holder, &link, dir, &hokan_core::fs::NoProgress)
            .map_err(err)
            .with_context(|| format!("restoring the static pod resources {}", link.snapshot))?;
    if restored.summary.failed > 0 {
        bail!(
            "{} static pod resource file(s) could not be restored; `hokan check --read-data` names them",
            restored.summary.failed
        );
    }
    Ok((entry.id.to_hex(), restored.summary.files))
}
