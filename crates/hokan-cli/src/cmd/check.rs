//! `hokan check`: verify structure, and with --read-data the data itself.

use std::process::ExitCode;

use anyhow::{Result, bail};
use hokan_repo::maintenance::{self, ReadData};

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
}

pub fn run(g: &Global, a: CheckArgs) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let read = match (&a.read_data_subset, a.read_data) {
        (Some(s), _) => ReadData::parse_subset(s)?,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let start = std::time::Instant::now();
    let progress = PhaseBar::start(super::progress_mode(g));
    let report = maintenance::check(&repo, read, &progress)?;
    progress.finish();
    if g.json {
        output::json(&serde_json::json!({
            "message_type": "summary", "ok": report.is_ok(),
            "problems": report.problems.iter().map(|p| serde_json::json!({"object": p.object, "message": p.message})).collect::<Vec<_>>(),
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
    }
    if !report.is_ok() {
        bail!(
            "{} problem(s) found; `hokan repair index` rebuilds a lost or damaged index from the packs",
            report.problems.len()
        );
    }
    if !g.json && !g.quiet {
        println!("no errors were found");
    }
    Ok(ExitCode::SUCCESS)
}
