//! `hokan stats [SNAPSHOT...] [--mode ...]`: how big snapshots are, in
//! restic's three senses (see `hokan_repo::stats`).

use std::process::ExitCode;

use anyhow::Result;
use hokan_repo::{SnapshotEntry, StatsMode};

use crate::Global;
use crate::cmd::FilterArgs;
use crate::output;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Size of the files as restored, every file of every snapshot counted
    #[default]
    RestoreSize,
    /// Unique blobs referenced: stored (compressed, encrypted) and plaintext size
    RawData,
    /// Files with distinct contents, each counted once
    FilesByContents,
}

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Snapshots (ids, unique prefixes or "latest"); none: every snapshot
    /// the filters admit
    pub snapshots: Vec<String>,
    /// What to count
    #[arg(long, value_enum, default_value_t = Mode::RestoreSize)]
    pub mode: Mode,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &Global, a: StatsArgs) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let filter = a.filter.filter();
    let mut selected: Vec<SnapshotEntry> = Vec::new();
    if a.snapshots.is_empty() {
        let all = repo.snapshot_list()?;
        super::warn_unreadable(g, "snapshot", &all.unreadable);
        selected.extend(
            all.entries
                .into_iter()
                .filter(|e| filter.matches(&e.snapshot)),
        );
    } else {
        for q in &a.snapshots {
            let e = repo.find_snapshot(q, &filter)?;
            if !selected.iter().any(|x| x.id == e.id) {
                selected.push(e);
            }
        }
    }
    let mode = match a.mode {
        Mode::RestoreSize => StatsMode::RestoreSize,
        Mode::RawData => StatsMode::RawData,
        Mode::FilesByContents => StatsMode::FilesByContents,
    };
    let repo = repo.load_index()?;
    let s = repo.stats(&selected, mode)?;
    if g.json {
        // restic's field names, so its dashboards' queries carry over.
        let mut v = serde_json::json!({
            "snapshots_count": s.snapshots, "total_size": s.bytes,
        });
        if mode == StatsMode::RawData {
            v["total_size"] = s.stored_bytes.into();
            v["total_uncompressed_size"] = s.bytes.into();
            v["total_blob_count"] = s.blobs.into();
            v["compression_ratio"] = s.compression_ratio().into();
            v["compression_space_saving"] = space_saving(&s).into();
        } else {
            v["total_file_count"] = s.files.into();
        }
        output::json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("Stats in {} mode:", a_mode_name(a.mode));
    println!("     Snapshots processed:  {}", s.snapshots);
    if mode == StatsMode::RawData {
        println!("        Total Blob Count:  {}", s.blobs);
        println!(" Total Uncompressed Size:  {}", output::size(s.bytes));
        println!(
            "              Total Size:  {}",
            output::size(s.stored_bytes)
        );
        println!(
            "    Compression Ratio:     {:.2}x  ({:.1}% space saving)",
            s.compression_ratio(),
            space_saving(&s)
        );
    } else {
        println!("        Total File Count:  {}", s.files);
        println!("              Total Size:  {}", output::size(s.bytes));
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent of the plaintext the store does not take.
fn space_saving(s: &hokan_repo::Stats) -> f64 {
    if s.bytes == 0 {
        0.0
    } else {
        100.0 * (1.0 - s.stored_bytes as f64 / s.bytes as f64)
    }
}

fn a_mode_name(m: Mode) -> &'static str {
    match m {
        Mode::RestoreSize => "restore-size",
        Mode::RawData => "raw-data",
        Mode::FilesByContents => "files-by-contents",
    }
}
