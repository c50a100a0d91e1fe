//! `hokan prune`: remove data no snapshot needs, in two phases.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use hokan_repo::Repository;
use hokan_repo::maintenance::{self, PruneOptions};

use crate::Global;
use crate::output;
use crate::progress::PhaseBar;

#[derive(clap::Args, Debug, Clone)]
pub struct PruneArgs {
    /// Delete unused data now instead of after the grace period; only when
    /// no backup is running
    #[arg(long)]
    pub instant_delete: bool,
    /// How long unused packs stay marked before a later prune deletes them
    /// (longer than any backup): 24h, 7d
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub grace: String,
    /// Repack mostly unused packs until at most this much of the
    /// repository is unused data, e.g. 5%
    #[arg(long, default_value = "5%", value_name = "PERCENT")]
    pub max_unused: String,
    /// Memory the survey's sorts may hold before they spill to temporary
    /// files (in the cache directory, or the system's temporary one):
    /// prune's memory then grows with packs and trees, not with blobs
    #[arg(long, default_value = "128MiB", value_name = "SIZE")]
    pub max_memory: String,
}

#[derive(clap::Args, Debug)]
pub struct PruneCommand {
    #[command(flatten)]
    pub options: PruneArgs,
    /// Show what would be done; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// `24h`, `7d`, `90m`, `30s`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    hokan_repo::parse_duration(s).map_err(anyhow::Error::msg)
}

fn options(a: &PruneArgs, dry_run: bool) -> Result<PruneOptions> {
    let t = a.max_unused.trim().trim_end_matches('%');
    let t: f64 = t
        .parse()
        .map_err(|_| anyhow::anyhow!("--max-unused {:?}: give a percentage", a.max_unused))?;
    if !(0.0..=100.0).contains(&t) {
        bail!("--max-unused must be between 0% and 100%");
    }
    Ok(PruneOptions {
        grace: parse_duration(&a.grace)?,
        instant_delete: a.instant_delete,
        max_unused: t / 100.0,
        dry_run,
        max_memory: parse_memory(&a.max_memory)?,
        temp_dir: None,
    })
}

/// `--max-memory`: a size, at least 1 MiB.
pub fn parse_memory(s: &str) -> Result<usize> {
    let n = hokan_repo::parse_size(s).map_err(|e| anyhow::anyhow!("--max-memory {s:?}: {e}"))?;
    if n < 1 << 20 {
        bail!("--max-memory {s:?}: give at least 1MiB");
    }
    Ok(n.min(usize::MAX as u64) as usize)
}

pub fn run(g: &Global, a: PruneCommand) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let opts = options(&a.options, a.dry_run)?;
    report(g, repo, opts)
}

/// Prune after `forget --prune`.
pub fn run_on(g: &Global, repo: Repository, a: &PruneArgs) -> Result<ExitCode> {
    report(g, repo, options(a, false)?)
}

fn report(g: &Global, repo: Repository, opts: PruneOptions) -> Result<ExitCode> {
    let start = std::time::Instant::now();
    let dry = opts.dry_run;
    let progress = PhaseBar::start(super::progress_mode(g));
    let r = maintenance::prune_with(repo, &opts, &progress)?;
    progress.finish();
    if crate::metrics::enabled() {
        record(&r);
    }
    if g.json {
        output::json(&serde_json::json!({
            "message_type": "summary", "dry_run": dry, "seconds_elapsed": start.elapsed().as_secs_f64(),
            "snapshots": r.snapshots, "used_blobs": r.used_blobs, "packs_before": r.packs_before,
            "bytes_before": r.bytes_before, "packs_marked": r.marked, "packs_repacked": r.repacked,
            "packs_written": r.packs_written, "packs_resurrected": r.resurrected, "packs_deleted": r.deleted,
            "bytes_deleted": r.bytes_deleted, "packs_waiting": r.waiting, "bytes_waiting": r.bytes_waiting,
            "orphans_deleted": r.orphans_deleted, "orphans_kept": r.orphans_kept,
            "index_files_written": r.index_files_written, "index_files_removed": r.index_files_removed,
            "locks_removed": r.locks_removed, "repository_bytes": r.repository_bytes,
            "packs_missing": r.missing.iter().map(|p| p.to_hex()).collect::<Vec<_>>(),
            "plan": plan_json(&r.plan),
            "kept_by_lock": {
                "objects": r.kept.objects, "bytes": r.kept.bytes, "refused": r.kept.refused,
                "earliest_deletable": r.kept.earliest,
            },
        }))?;
    } else if !g.quiet {
        let verb = if dry { "would be" } else { "were" };
        println!(
            "{} snapshots use {} blobs in {} packs ({})",
            r.snapshots,
            r.used_blobs,
            r.packs_before,
            output::size(r.bytes_before)
        );
        println!(
            "{} unused packs {verb} marked for deletion, {} mostly unused packs {verb} repacked into {} new",
            r.marked, r.repacked, r.packs_written
        );
        if r.resurrected > 0 {
            println!(
                "{} marked packs are used again and {verb} put back into the index",
                r.resurrected
            );
        }
        println!(
            "{} packs ({}) {verb} deleted, {} of them in no index",
            r.deleted,
            output::size(r.bytes_deleted),
            r.orphans_deleted
        );
        if r.waiting > 0 {
            println!(
                "{} packs ({}) wait for the grace period; a later prune deletes them if still unused",
                r.waiting,
                output::size(r.bytes_waiting)
            );
        }
        if r.orphans_kept > 0 {
            println!(
                "{} recent packs in no index were left alone (a backup may be writing them)",
                r.orphans_kept
            );
        }
        if !r.kept.is_empty() {
            println!("immutable repository: {}", r.kept.describe());
        }
        println!("done in {:.1} s", start.elapsed().as_secs_f64());
    }
    if !r.missing.is_empty() && !g.quiet {
        eprintln!(
            "warning: {} pack(s) the index lists are not in the store ({}), and snapshots need \
             blobs only they held; they stay in the index and their blobs are recorded as \
             damaged",
            r.missing.len(),
            r.missing
                .iter()
                .map(|p| p.short())
                .collect::<Vec<_>>()
                .join(", ")
        );
        eprintln!(
            "hint: if the packs were moved, put them back; otherwise back the affected files up \
             again (`hokan check` names them) and the next prune drops the missing packs"
        );
    }
    Ok(if r.missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Prune's figures for `--metrics-file`: what it deleted, and the size of
/// the repository's packs afterwards (packs waiting for their grace period
/// included: they still take space).
fn record(r: &maintenance::PruneReport) {
    use crate::metrics::gauge;
    gauge(
        "hokan_prune_repository_bytes",
        "Bytes of packs in the repository after prune.",
        r.repository_bytes as f64,
    );
    gauge(
        "hokan_prune_bytes_deleted",
        "Bytes of packs prune deleted.",
        r.bytes_deleted as f64,
    );
    gauge(
        "hokan_prune_packs_deleted",
        "Packs prune deleted.",
        r.deleted as f64,
    );
    gauge(
        "hokan_prune_bytes_waiting",
        "Bytes of unused packs waiting for their grace period.",
        r.bytes_waiting as f64,
    );
}

/// The plan's pack lists, by fate (the dry run's answer to "what exactly").
fn plan_json(p: &maintenance::PrunePlan) -> serde_json::Value {
    let ids = |v: &[hokan_core::PackId]| v.iter().map(|p| p.to_hex()).collect::<Vec<_>>();
    serde_json::json!({
        "keep": ids(&p.keep), "mark": ids(&p.mark), "repack": ids(&p.repack),
        "resurrect": ids(&p.resurrect), "delete": ids(&p.delete), "wait": ids(&p.wait),
        "orphans_deleted": ids(&p.orphans_deleted), "orphans_kept": ids(&p.orphans_kept),
        "missing": ids(&p.missing),
    })
}
