//! `hokan repair index` and `hokan unlock`.

use std::process::ExitCode;

use anyhow::Result;
use hokan_repo::maintenance;

use crate::Global;
use crate::output;

#[derive(clap::Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild the index from the packs themselves
    Index,
}

pub fn run(g: &Global, c: RepairCommand) -> Result<ExitCode> {
    let repo = super::open(g)?;
    match c {
        RepairCommand::Index => {
            let r = maintenance::repair_index(&repo)?;
            if g.json {
                output::json(&serde_json::json!({
                    "message_type": "summary", "packs": r.packs, "blobs": r.blobs,
                    "unreadable": r.unreadable.iter().map(|p| serde_json::json!({"object": p.object, "message": p.message})).collect::<Vec<_>>(),
                    "index_files_written": r.index_files_written, "index_files_removed": r.index_files_removed,
                }))?;
            } else if !g.quiet {
                for p in &r.unreadable {
                    println!("error: {p}");
                }
                println!(
                    "indexed {} blobs in {} packs: {} index files written, {} replaced",
                    r.blobs, r.packs, r.index_files_written, r.index_files_removed
                );
            }
            Ok(if r.unreadable.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct UnlockArgs {
    /// Remove every prune lock, not only stale ones
    #[arg(long)]
    pub remove_all: bool,
}

pub fn unlock(g: &Global, a: UnlockArgs) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let n = repo.remove_locks(!a.remove_all)?;
    if g.json {
        output::json(&serde_json::json!({"removed": n}))?;
    } else if !g.quiet {
        println!("removed {n} prune lock(s)");
    }
    Ok(ExitCode::SUCCESS)
}
