//! `hokan k8s volumes backup|restore`: pod volumes, file by file, one
//! snapshot per volume (hokan-k8s's `volumes`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;
use hokan_core::fs::Excludes;
use hokan_k8s::volumes::{self, UidShift};
use hokan_repo::SourceKind;
use hokan_repo::snapshot::counts;
use serde_json::json;

use super::{ClusterArgs, k8s_error, runtime};
use crate::Global;
use crate::cmd::FilterArgs;
use crate::output;
use crate::progress::CliProgress;

#[derive(Subcommand, Debug)]
pub enum VolumesCommand {
    /// Back up the volumes of a node's pods, one snapshot per volume, as
    /// Velero's file-system backup picks them
    Backup(BackupArgs),
    /// Restore a volume snapshot into a directory, moving owners between
    /// OpenShift UID ranges
    Restore(RestoreArgs),
    /// Back up a claim's data from a copy of it (a claim made from a CSI
    /// VolumeSnapshot, mounted by the operator's copy Job) as the claim's
    /// own snapshot
    Copy(CopyArgs),
}

pub fn run(g: &Global, c: VolumesCommand) -> Result<ExitCode> {
    match c {
        VolumesCommand::Backup(a) => backup(g, a),
        VolumesCommand::Restore(a) => restore(g, a),
        VolumesCommand::Copy(a) => copy(g, a),
    }
}

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// The node whose pods' volumes to back up (in the operator's Job: the
    /// node it is pinned to)
    #[arg(long, value_name = "NAME")]
    pub node: String,
    /// The kubelet's directory, where pods' volumes are mounted
    #[arg(long, value_name = "DIR", default_value = volumes::DEFAULT_KUBELET_DIR)]
    pub kubelet_dir: PathBuf,
    /// Back up every volume of every pod except those in the pod's
    /// backup.velero.io/backup-volumes-excludes annotation (default: only
    /// those in backup.velero.io/backup-volumes)
    #[arg(long)]
    pub default_volumes_to_fs_backup: bool,
    /// Only pods in these namespaces (globs, repeatable or comma-separated;
    /// default: all)
    #[arg(
        long = "include-namespaces",
        value_delimiter = ',',
        value_name = "GLOBS"
    )]
    pub namespaces: Vec<String>,
    /// Only pods whose labels match this selector (app=db,tier in (a,b))
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Never back up volumes of these names (repeatable, or comma-separated)
    #[arg(long = "exclude-volume", value_delimiter = ',', value_name = "NAME")]
    pub exclude_volumes: Vec<String>,
    /// Never back up these claims, NAMESPACE/NAME (repeatable, or
    /// comma-separated): the operator copies them from CSI snapshots
    #[arg(long = "exclude-claim", value_delimiter = ',', value_name = "NS/NAME")]
    pub exclude_claims: Vec<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Tag the snapshots (repeatable, or comma-separated)
    #[arg(long = "tag", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Volumes backed up at the same time (default: the machine's cores)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: Option<u16>,
}

fn backup(g: &Global, a: BackupArgs) -> Result<ExitCode> {
    let rt = runtime()?;
    let found = rt.block_on(async {
        let cluster = a.cluster.connect().await?;
        let filter = volumes::PodFilter {
            namespaces: a.namespaces.clone(),
            selector: a.selector.clone(),
            exclude_volumes: a.exclude_volumes.clone(),
            exclude_claims: a.exclude_claims.clone(),
        };
        volumes::node_volumes_of(
            &cluster,
            &a.node,
            &a.kubelet_dir,
            a.default_volumes_to_fs_backup,
            &filter,
        )
        .await
        .map_err(k8s_error)
    })?;
    let mut repo = super::super::open(g)?.load_index()?;
    let tags = &a.tags;
    let threads = a
        .parallel
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let progress = CliProgress::start(super::super::progress_mode(g));
    let dirs: Vec<PathBuf> = found.found.iter().map(|f| f.path.clone()).collect();
    let outcomes = progress.with_totals(&dirs, &Excludes::default(), false, || {
        volumes::backup_volumes(&mut repo, &found.found, &a.node, tags, &progress, threads)
    });
    progress.finish();
    let outcomes = outcomes.map_err(k8s_error)?;
    let mut results = Vec::new();
    let mut failed = 0;
    for (f, done) in found.found.iter().zip(outcomes) {
        let v = &f.volume;
        let mut row = json!({
            "namespace": v.namespace, "pod": v.pod, "volume": v.volume, "pvc": v.pvc(),
            "identity": v.identity(), "path": f.path,
        });
        match done {
            Ok(done) => {
                let e = &done.entry;
                let s = &e.snapshot.summary;
                crate::metrics::record_backup(e);
                row["snapshot_id"] = e.id.to_hex().into();
                row["parent"] = e.snapshot.parent.map(|p| p.to_hex()).into();
                row["files_new"] = s.count(counts::FILES_NEW).into();
                row["files_changed"] = s.count(counts::FILES_CHANGED).into();
                row["files_unmodified"] = s.count(counts::FILES_UNMODIFIED).into();
                row["total_bytes"] = s.bytes.into();
                row["data_added"] = s.bytes_added.into();
                row["blobs_added"] = s.blobs_added.into();
                row["warnings"] = done
                    .warnings
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .into();
                if !g.json && !g.quiet {
                    println!(
                        "{} (pod {}, volume {}): snapshot {}, {} files ({} new, {} changed, {} unmodified), {} added",
                        v.identity(),
                        v.pod,
                        v.volume,
                        e.id.short(),
                        s.count(counts::FILES),
                        s.count(counts::FILES_NEW),
                        s.count(counts::FILES_CHANGED),
                        s.count(counts::FILES_UNMODIFIED),
                        output::size(s.bytes_added)
                    );
                }
                if !g.json {
                    for w in &done.warnings {
                        eprintln!("warning: {}: {w}", v.identity());
                    }
                }
            }
            Err(e) => {
                failed += 1;
                let e = k8s_error(e);
                if !g.json {
                    eprintln!("error: {} (pod {}): {e:#}", v.identity(), v.pod);
                }
                row["error"] = format!("{e:#}").into();
            }
        }
        results.push(row);
    }
    if g.json {
        output::json(&json!({
            "message_type": "summary",
            "node": found.node,
            "pods": found.pods,
            "volumes": results,
            "skipped": found.skipped,
            "failed": failed,
        }))?;
    } else if !g.quiet {
        for s in &found.skipped {
            println!(
                "skipped {}/{} volume {}: {}",
                s.namespace, s.pod, s.volume, s.reason
            );
        }
        println!(
            "node {}: {} pods, {} volumes backed up, {} skipped, {} failed",
            found.node,
            found.pods,
            results.len() - failed,
            found.skipped.len(),
            failed
        );
    }
    if failed > 0 {
        if !g.json {
            eprintln!(
                "warning: {failed} volume(s) could not be backed up (named above); the others were"
            );
        }
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// Volume snapshot id, unique prefix, or "latest" (with --tag, --host... to narrow it)
    pub snapshot: String,
    /// Directory to restore into (a PVC's mount in a restore Job)
    #[arg(short, long)]
    pub target: PathBuf,
    /// Move owners from one OpenShift UID range to another, FROM:TO, each
    /// start/size as in the namespaces' openshift.io/sa.scc.uid-range
    /// annotation (1000650000/10000:1000780000/10000); needs root
    #[arg(long, value_name = "FROM:TO", conflicts_with = "target_namespace")]
    pub uid_range: Option<String>,
    /// Move owners into this namespace's UID range, read from its
    /// openshift.io/sa.scc.uid-range annotation (needs a cluster: --kubeconfig,
    /// --context or the pod's service account); needs root
    #[arg(long, value_name = "NS")]
    pub target_namespace: Option<String>,
    /// With --target-namespace: the namespace whose UID range the files have
    /// (default: the snapshot's namespace label)
    #[arg(long, value_name = "NS", requires = "target_namespace")]
    pub source_namespace: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
}

fn restore(g: &Global, a: RestoreArgs) -> Result<ExitCode> {
    let mut shift = a
        .uid_range
        .as_deref()
        .map(UidShift::parse)
        .transpose()
        .map_err(k8s_error)?;
    if shift.is_some() || a.target_namespace.is_some() {
        volumes::can_shift_owners().map_err(k8s_error)?;
    }
    let repo = super::super::open(g)?;
    let entry = repo.find_snapshot_of(&SourceKind::VOLUME, &a.snapshot, &a.filter.filter())?;
    if let Some(target) = &a.target_namespace {
        let source = match a.source_namespace.as_deref() {
            Some(s) => s,
            None => volumes::snapshot_namespace(&entry.snapshot).ok_or_else(|| {
                anyhow::anyhow!(
                    "snapshot {} has no namespace label; name the namespace its files came from with --source-namespace",
                    entry.id.short()
                )
            })?,
        };
        let rt = runtime()?;
        shift = Some(rt.block_on(async {
            let cluster = a.cluster.connect().await?;
            UidShift::between_namespaces(&cluster, source, target)
                .await
                .map_err(k8s_error)
        })?);
    }
    let repo = repo.load_index()?;
    let progress = CliProgress::start(super::super::progress_mode(g));
    let done = volumes::restore_volume(&repo, &entry, &a.target, shift, &progress);
    progress.finish();
    let done = done.map_err(k8s_error)?;
    let s = done.restored.summary;
    let shifted = done.shifted.map(|sh| (shift.expect("asked for"), sh));
    if g.json {
        output::json(&json!({
            "message_type": "summary",
            "snapshot_id": entry.id.to_hex(),
            "identity": entry.snapshot.identity,
            "target": a.target,
            "files_restored": s.files, "dirs_restored": s.dirs, "bytes_restored": s.bytes,
            "files_failed": s.failed, "warnings": s.warnings,
            "uid_shift": shifted.as_ref().map(|(m, sh)| json!({
                "from": m.from, "to": m.to,
                "shifted": sh.shifted, "outside": sh.outside, "entries": sh.entries,
            })),
        }))?;
    } else if !g.quiet {
        println!(
            "restored {} ({}) into {}: {} files, {} directories, {}",
            entry.snapshot.identity,
            entry.id.short(),
            a.target.display(),
            s.files,
            s.dirs,
            output::size(s.bytes)
        );
        if let Some((UidShift { from, to }, sh)) = &shifted {
            println!(
                "owners: {} entries moved from {}/{} to {}/{}, {} owned outside {}/{} left as they were",
                sh.shifted,
                from.start,
                from.size,
                to.start,
                to.size,
                sh.outside,
                from.start,
                from.size
            );
        }
    }
    if s.failed > 0 {
        bail!(
            "{} file(s) could not be restored (each is named above); the others were. \
             `hokan check --read-data` names every damaged file of every snapshot",
            s.failed
        );
    }
    Ok(if s.warnings > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(clap::Args, Debug)]
pub struct CopyArgs {
    /// Where the data is: the mounted directory, or with --block the device
    pub from: PathBuf,
    /// The claim's namespace
    #[arg(long, value_name = "NS")]
    pub namespace: String,
    /// The claim the data is a copy of: the snapshot's identity is
    /// NAMESPACE/CLAIM, as the node agent's backups of it
    #[arg(long, value_name = "NAME")]
    pub claim: String,
    /// The claim is a raw device (volumeMode: Block): read it whole, zero
    /// regions stored once and restored as holes
    #[arg(long)]
    pub block: bool,
    /// The VolumeSnapshot the data was read from (recorded as a label)
    #[arg(long, value_name = "NAME")]
    pub volume_snapshot: Option<String>,
    /// Tag the snapshot (repeatable, or comma-separated)
    #[arg(long = "tag", value_delimiter = ',')]
    pub tags: Vec<String>,
}

fn copy(g: &Global, a: CopyArgs) -> Result<ExitCode> {
    let copy = volumes::ClaimCopy {
        namespace: a.namespace,
        claim: a.claim,
        path: a.from,
        block: a.block,
        volume_snapshot: a.volume_snapshot,
    };
    let mut repo = super::super::open(g)?.load_index()?;
    let progress = CliProgress::start(super::super::progress_mode(g));
    let dirs = if copy.block {
        Vec::new()
    } else {
        vec![copy.path.clone()]
    };
    let done = progress.with_totals(&dirs, &Excludes::default(), false, || {
        volumes::backup_claim(&mut repo, &copy, &a.tags, &progress)
    });
    progress.finish();
    let done = done.map_err(k8s_error)?;
    let e = &done.entry;
    let s = &e.snapshot.summary;
    crate::metrics::record_backup(e);
    if g.json {
        output::json(&json!({
            "message_type": "summary",
            "namespace": copy.namespace, "pvc": copy.claim, "identity": copy.identity(),
            "block": copy.block, "snapshot_id": e.id.to_hex(),
            "parent": e.snapshot.parent.map(|p| p.to_hex()),
            "files_new": s.count(counts::FILES_NEW),
            "files_changed": s.count(counts::FILES_CHANGED),
            "files_unmodified": s.count(counts::FILES_UNMODIFIED),
            "total_bytes": s.bytes, "data_added": s.bytes_added, "blobs_added": s.blobs_added,
            "warnings": done.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        }))?;
    } else if !g.quiet {
        for w in &done.warnings {
            eprintln!("warning: {}: {w}", copy.identity());
        }
        println!(
            "{}: snapshot {}, {} files ({} new, {} changed, {} unmodified), {} of {} added",
            copy.identity(),
            e.id.short(),
            s.count(counts::FILES),
            s.count(counts::FILES_NEW),
            s.count(counts::FILES_CHANGED),
            s.count(counts::FILES_UNMODIFIED),
            output::size(s.bytes_added),
            output::size(s.bytes)
        );
    }
    Ok(if done.warnings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
