//! `hokan check`: verify structure, and with --read-data the data itself;
//! name every snapshot file the problems affect, and the one command that
//! helps with each kind of problem.

use std::process::ExitCode;

use anyhow::{Result, bail};
use hokan_repo::maintenance::{self, CheckOptions, CheckReport, ProblemKind, ReadData};

use crate::Global;
use crate::output;
use crate::progress::PhaseBar;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Read and authenticate every pack
    #[arg(long)]
    pub read_data: bool,
    /// Read a subset: n/t (group n of t), a percentage (10%), or a size (2G)
    #[arg(long, value_name = "SUBSET", conflicts_with = "read_data")]
    pub read_data_subset: Option<String>,
    /// Memory the survey's sorts may hold before they spill to temporary
    /// files (in the cache directory, or the system's temporary one):
    /// check's memory then grows with packs and trees, not with blobs
    #[arg(long, default_value = "128MiB", value_name = "SIZE")]
    pub max_memory: String,
}

/// What helps, for the kinds of problem found; each line names one
/// command, or says that nothing will and what is kept.
pub fn advice(r: &CheckReport) -> Vec<String> {
    let mut out = Vec::new();
    let lost_index = r.has(ProblemKind::BlobMissing) && r.unindexed_packs > 0;
    if r.has(ProblemKind::IndexFile) || r.has(ProblemKind::PackMismatch) || lost_index {
        out.push(format!(
            "`hokan repair index` rebuilds the index from the packs themselves{}",
            if lost_index {
                format!(" ({} pack(s) are in no index)", r.unindexed_packs)
            } else {
                String::new()
            }
        ));
    }
    if r.has(ProblemKind::PackDamaged) || r.has(ProblemKind::BlobDamaged) {
        out.push(
            "`hokan repair packs` copies the intact blobs of damaged packs into new packs and \
             records the rest as lost; back the affected files up again (their data is stored \
             afresh, which heals the older snapshots too)"
                .into(),
        );
    }
    if r.has(ProblemKind::PackMissing) {
        out.push(
            "packs are missing: if they were moved, put them back; otherwise back the affected \
             files up again (their data is recorded as lost, so the backup stores it afresh, \
             which heals the older snapshots too), and `hokan forget` the snapshots that cannot \
             be healed; prune then drops the missing packs from the index"
                .into(),
        );
    }
    if r.has(ProblemKind::BlobMissing) && !lost_index {
        out.push(
            "data is in no index and in no pack: back the affected files up again, and `hokan \
             forget` the snapshots that cannot be healed"
                .into(),
        );
    }
    if r.has(ProblemKind::TreeUnreadable) {
        out.push(
            "a directory listing is damaged: back the same paths up again to store it afresh"
                .into(),
        );
    }
    if r.has(ProblemKind::Snapshot) {
        out.push(
            "a snapshot file is damaged: nothing can rebuild it; `hokan forget ID` removes it \
             (its data goes at the next prune), the other snapshots are unaffected"
                .into(),
        );
    }
    if r.has(ProblemKind::Lock) {
        out.push("a lock object is damaged: `hokan unlock` removes it".into());
    }
    if !out.is_empty() && r.packs_read == 0 {
        out.push(
            "`hokan check --read-data` also reads every pack and names all damaged data".into(),
        );
    }
    out
}

pub fn run(g: &Global, a: CheckArgs) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let read = match (&a.read_data_subset, a.read_data) {
        (Some(s), _) => ReadData::parse_subset(s)?,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let options = CheckOptions {
        read_data: read,
        max_memory: super::prune::parse_memory(&a.max_memory)?,
        temp_dir: None,
    };
    let start = std::time::Instant::now();
    let progress = PhaseBar::start(super::progress_mode(g));
    let report = maintenance::check_with(&repo, &options, &progress)?;
    progress.finish();
    let advice = advice(&report);
    if g.json {
        output::json(&serde_json::json!({
            "message_type": "summary", "ok": report.is_ok(),
            "problems": report.problems.iter().map(|p| serde_json::json!({
                "kind": format!("{:?}", p.kind), "object": p.object, "message": p.message,
            })).collect::<Vec<_>>(),
            "affected": report.affected.iter().map(|a| serde_json::json!({
                "snapshot": a.snapshot.to_hex(), "path": a.path.to_string_lossy(),
                "blob": a.blob.to_hex(), "problem": a.why,
            })).collect::<Vec<_>>(),
            "advice": advice,
            "notes": report.notes, "snapshots": report.snapshots, "trees": report.trees,
            "data_blobs": report.data_blobs, "packs": report.packs,
            "packs_read": report.packs_read, "bytes_read": report.bytes_read,
            "seconds_elapsed": start.elapsed().as_secs_f64(),
        }))?;
    } else if !g.quiet {
        for n in &report.notes {
            println!("note: {n}");
        }
        for p in &report.problems {
            println!("error: {p}");
        }
        if !report.affected.is_empty() {
            println!("affected:");
            for a in &report.affected {
                println!(
                    "  snapshot {} {}: {}",
                    a.snapshot.short(),
                    a.path.display(),
                    a.why
                );
            }
        }
        println!(
            "checked {} snapshots, {} trees, {} data blobs, {} packs; read {} packs ({}) in {:.1} s",
            report.snapshots,
            report.trees,
            report.data_blobs,
            report.packs,
            report.packs_read,
            output::size(report.bytes_read),
            start.elapsed().as_secs_f64()
        );
        for line in &advice {
            eprintln!("hint: {line}");
        }
    }
    if !report.is_ok() {
        let snapshots: std::collections::HashSet<_> =
            report.affected.iter().map(|a| a.snapshot).collect();
        bail!(
            "{} problem(s) found, affecting {} file(s) in {} snapshot(s)",
            report.problems.len(),
            report.affected.len(),
            snapshots.len()
        );
    }
    if !g.json && !g.quiet {
        println!("no errors were found");
    }
    Ok(ExitCode::SUCCESS)
}
