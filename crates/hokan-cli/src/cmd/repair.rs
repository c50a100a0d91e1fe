//! `hokan repair index|packs|config`, `hokan unlock` and `hokan migrate`.

use std::process::ExitCode;

use anyhow::Result;
use hokan_core::PackId;
use hokan_repo::{Repository, maintenance};

use crate::Global;
use crate::output;
use crate::progress::PhaseBar;

#[derive(clap::Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild the index from the packs themselves
    Index,
    /// Read packs in full; copy the intact blobs of damaged ones into new
    /// packs and record the rest as lost (the next backup stores them again)
    Packs(RepairPacksArgs),
    /// Write a new config for a repository whose config was lost, after
    /// checking that the password opens one of its key files
    Config(crate::cmd::init::InitArgs),
}

#[derive(clap::Args, Debug)]
pub struct RepairPacksArgs {
    /// Only these packs (ids as `hokan check` names them); default: all
    pub packs: Vec<String>,
}

pub fn run(g: &Global, c: RepairCommand) -> Result<ExitCode> {
    match c {
        RepairCommand::Index => index(g),
        RepairCommand::Packs(a) => packs(g, a),
        RepairCommand::Config(a) => config(g, a),
    }
}

fn index(g: &Global) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let r = maintenance::repair_index(&repo)?;
    if g.json {
        output::json(&serde_json::json!({
            "message_type": "summary", "packs": r.packs, "blobs": r.blobs,
            "unreadable": r.unreadable.iter().map(|p| serde_json::json!({"object": p.object, "message": p.message})).collect::<Vec<_>>(),
            "index_files_written": r.index_files_written, "index_files_removed": r.index_files_removed,
            "kept_entries": r.kept_entries,
        }))?;
    } else if !g.quiet {
        for p in &r.unreadable {
            println!("error: {p}");
        }
        println!(
            "indexed {} blobs in {} packs: {} index files written, {} replaced",
            r.blobs, r.packs, r.index_files_written, r.index_files_removed
        );
        if !r.unreadable.is_empty() {
            println!("hint: `hokan repair packs` salvages what can be read of the damaged packs");
        }
    }
    Ok(if r.unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn packs(g: &Global, a: RepairPacksArgs) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let wanted: Option<Vec<PackId>> = if a.packs.is_empty() {
        None
    } else {
        // Short ids as check prints them, matched against the store.
        let stored = repo.pack_files()?;
        let mut out = Vec::new();
        for p in &a.packs {
            let q = p.to_ascii_lowercase();
            let m: Vec<PackId> = stored
                .keys()
                .filter(|id| id.to_hex().starts_with(&q))
                .copied()
                .collect();
            match m.as_slice() {
                [one] => out.push(*one),
                [] => anyhow::bail!("no pack matches {p:?}"),
                _ => anyhow::bail!("{p:?} matches {} packs; give more characters", m.len()),
            }
        }
        Some(out)
    };
    let progress = PhaseBar::start(super::progress_mode(g));
    let r = maintenance::repair_packs(repo, wanted.as_deref(), &progress)?;
    progress.finish();
    if g.json {
        output::json(&serde_json::json!({
            "message_type": "summary", "packs_read": r.packs_read,
            "damaged": r.damaged.iter().map(|p| serde_json::json!({"object": p.object, "message": p.message})).collect::<Vec<_>>(),
            "salvaged": r.salvaged, "packs_written": r.packs_written,
            "lost": r.lost.iter().map(|(p, b)| serde_json::json!({"pack": p.to_hex(), "blob": b.to_hex()})).collect::<Vec<_>>(),
        }))?;
    } else if !g.quiet {
        for p in &r.damaged {
            println!("damaged: {p}");
        }
        println!(
            "read {} packs: {} damaged; {} blobs salvaged into {} new packs, {} lost",
            r.packs_read,
            r.damaged.len(),
            r.salvaged,
            r.packs_written,
            r.lost.len()
        );
        if !r.lost.is_empty() {
            println!(
                "hint: `hokan check` names the files that need the lost blobs; back them up \
                 again to store their data afresh"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn config(g: &Global, a: crate::cmd::init::InitArgs) -> Result<ExitCode> {
    let location = super::location(g)?;
    let options = crate::cmd::init::init_options(&a)?;
    let password = crate::password::repository(g.password_file.as_deref())?;
    let repo = password.open(|pw| {
        Repository::recreate_config(&location, pw, options.clone(), super::open_options(g))
    })?;
    if g.json {
        output::json(
            &serde_json::json!({"message_type": "summary", "id": repo.config().repo_id.to_hex()}),
        )?;
    } else if !g.quiet {
        println!(
            "wrote a new config for the repository at {location}; its data is readable with the \
             same passwords. If the lost config had other chunk sizes, new backups dedup less \
             against old data until the old data is pruned"
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct UnlockArgs {
    /// Remove every prune and backup lock, not only those of processes that
    /// died
    #[arg(long)]
    pub remove_all: bool,
}

pub fn unlock(g: &Global, a: UnlockArgs) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let n = repo.remove_locks(!a.remove_all)?;
    if g.json {
        output::json(&serde_json::json!({"removed": n}))?;
    } else if !g.quiet {
        println!("removed {n} lock(s)");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {}

/// `hokan migrate`: upgrade the repository to the current format.
pub fn migrate(g: &Global, _a: MigrateArgs) -> Result<ExitCode> {
    let mut repo = super::open(g)?;
    let was = repo.upgrade()?;
    let now = repo.format();
    if g.json {
        output::json(
            &serde_json::json!({"message_type": "summary", "from": was.number(), "to": now.number()}),
        )?;
    } else if !g.quiet {
        if was == now {
            println!("the repository already uses format {now}");
        } else {
            println!(
                "upgraded the repository from format {was} to {now}: everything stored stays \
                 readable; hokan releases that read only format {was} can no longer open it"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
