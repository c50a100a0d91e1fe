//! `hokan k8s backup`: a cluster's resources into a snapshot.

use std::process::ExitCode;

use anyhow::Result;
use hokan_k8s::repository::counts;
use hokan_k8s::{BackupOptions, BackupSummary, SnapshotOptions, backup_to_repository};
use hokan_repo::Committed;

use super::{ClusterArgs, ScopeArgs, k8s_error, runtime};
use crate::Global;
use crate::output;
use crate::progress::CliProgress;

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub filter: ScopeArgs,
    /// Only objects whose labels match this selector (app=web,tier!=db)
    #[arg(long, value_name = "LABELS")]
    pub selector: Option<String>,
    /// Cluster-scoped resources: true (all the filters pass), false (none
    /// but the namespaces of backed-up objects), auto (all when backing up
    /// everything, else only those the objects need: CRDs, PVs)
    #[arg(
        long,
        value_name = "true|false|auto",
        default_value = "auto",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = ["true", "false", "auto"]
    )]
    pub include_cluster_resources: String,
    /// Every version the server serves of each resource, not only the
    /// preferred one (so a restore can pick what the target serves)
    #[arg(long)]
    pub all_api_versions: bool,
    /// Leave out OLM operators (*.operators.coreos.com and what OLM makes),
    /// for restores into clusters with operators of their own
    #[arg(long)]
    pub exclude_operators: bool,
    /// Objects per list request
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub page_size: u32,
    /// Tag the snapshot (repeatable, or comma-separated)
    #[arg(long = "tag", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Record this host name in the snapshot
    #[arg(long)]
    pub host: Option<String>,
}

pub fn run(g: &Global, a: BackupArgs) -> Result<ExitCode> {
    let options = BackupOptions {
        include_namespaces: a.filter.include_namespaces.clone(),
        exclude_namespaces: a.filter.exclude_namespaces.clone(),
        include_resources: a.filter.include_resources.clone(),
        exclude_resources: a.filter.exclude_resources.clone(),
        selector: a.selector.clone().filter(|s| !s.trim().is_empty()),
        cluster_resources: a.include_cluster_resources.parse().map_err(k8s_error)?,
        all_api_versions: a.all_api_versions,
        exclude_operators: a.exclude_operators,
        page_size: a.page_size.clamp(1, 10_000),
    };
    let snapshot = SnapshotOptions {
        tags: a.tags.clone(),
        hostname: a.host.clone(),
        ..Default::default()
    };
    let mut repo = super::super::open(g)?.load_index()?;
    let rt = runtime()?;
    let progress = CliProgress::start_counting(super::super::progress_mode(g), "objects");
    let result = rt.block_on(async {
        let cluster = a.cluster.connect().await?;
        backup_to_repository(&cluster, &options, &mut repo, &snapshot, &progress)
            .await
            .map_err(k8s_error)
    });
    progress.finish();
    let saved = result?;
    report(g, &saved, progress.elapsed())?;
    if !saved.value.errors.is_empty() {
        if !g.json {
            eprintln!(
                "warning: {} resource(s) could not be read (named above); the snapshot holds everything else",
                saved.value.errors.len()
            );
        }
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what a resource backup (or a Velero import) saved: the figures,
/// what was left out and why, and every resource that could not be read.
pub fn report(g: &Global, saved: &Committed<BackupSummary>, seconds: f64) -> Result<()> {
    let summary = &saved.value;
    let entry = &saved.entry;
    let s = &entry.snapshot.summary;
    crate::metrics::record_backup(entry);
    if g.json {
        let mut v = crate::cmd::snapshots::snapshot_json(entry);
        v["message_type"] = "summary".into();
        v["snapshot_id"] = entry.id.to_hex().into();
        v["seconds_elapsed"] = seconds.into();
        v["k8s"] = serde_json::json!({
            "cluster": summary.cluster,
            "resources": summary.resources,
            "skipped": summary.skipped,
            "errors": summary.errors,
        });
        return output::json(&v);
    }
    for e in &summary.errors {
        eprintln!("warning: {e}");
    }
    if g.quiet {
        return Ok(());
    }
    // New, changed... count stored entries: with --all-api-versions an
    // object has one per version.
    let versions = if summary.entries != summary.objects {
        format!(
            ", {} entries with their other API versions",
            summary.entries
        )
    } else {
        String::new()
    };
    println!(
        "Objects:     {} in {} resources{versions} ({} new, {} changed, {} unmodified, {} removed)",
        summary.objects,
        summary.resources.len(),
        s.count(counts::NEW),
        s.count(counts::CHANGED),
        s.count(counts::UNMODIFIED),
        s.count(counts::REMOVED)
    );
    if !summary.skipped.is_empty() {
        let reasons: Vec<String> = summary
            .skipped
            .iter()
            .map(|(why, n)| format!("{n} {why}"))
            .collect();
        println!("Left out:    {}", reasons.join("; "));
    }
    println!(
        "Added:       {} ({} stored, {} blobs in {} packs)",
        output::size(s.bytes_added),
        output::size(s.bytes_stored),
        s.blobs_added,
        s.packs_added
    );
    println!(
        "processed {} objects, {} of JSON from {} in {:.1} s ({} list requests)",
        summary.objects,
        output::size(summary.bytes),
        summary.cluster,
        seconds,
        summary.pages
    );
    println!("snapshot {} saved", entry.id.short());
    Ok(())
}
