//! `hokan -r TARGET copy --from-repo SOURCE [SNAPSHOT...]`: copy snapshots
//! from another repository, re-encrypted with this one's keys and
//! deduplicated against what it holds (see `hokan_repo::copy`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hokan_repo::copy::CopyReport;
use hokan_repo::{Repository, SnapshotEntry};

use crate::Global;
use crate::cmd::FilterArgs;
use crate::output;
use crate::progress::PhaseBar;

#[derive(clap::Args, Debug)]
pub struct CopyArgs {
    /// The repository to copy snapshots from
    #[arg(long, value_name = "REPO", env = "HOKAN_FROM_REPOSITORY")]
    pub from_repo: String,
    /// Read the source repository's password from this file (else
    /// $HOKAN_FROM_PASSWORD, else a prompt)
    #[arg(long, value_name = "FILE", env = "HOKAN_FROM_PASSWORD_FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Snapshots of the source (ids, unique prefixes or "latest"); none:
    /// every snapshot the filters admit
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &Global, a: CopyArgs) -> Result<ExitCode> {
    let start = Instant::now();
    // Both passwords are checked before anything is written.
    let target = super::open(g)?;
    let from_password = crate::password::source(a.from_password_file.as_deref())?;
    let source = from_password
        .open(|pw| Repository::open(&a.from_repo, pw, super::open_options(g)))
        .with_context(|| {
            format!(
                "opening the source repository {} (--from-repo)",
                a.from_repo
            )
        })?;
    if source.config().repo_id == target.config().repo_id {
        bail!(
            "--from-repo {} is the target repository itself; nothing was copied",
            a.from_repo
        );
    }
    let selected = select(g, &source, &a)?;
    let source = source
        .load_index()
        .context("loading the source repository's index")?;
    warn_problems(g, "source", source.problems());
    let mut target = target.load_index()?;
    warn_problems(g, "target", target.problems());
    let bar = PhaseBar::start(super::progress_mode(g));
    let report = target
        .copy_from(&source, &selected, &bar)
        .map_err(|e| source_damage(e, &a.from_repo))?;
    bar.finish();
    let seconds = start.elapsed().as_secs_f64();
    if g.json {
        output::json(&summary_json(&report, selected.len(), seconds))?;
    } else if !g.quiet {
        print_summary(&report, &a.from_repo, seconds);
    }
    Ok(ExitCode::SUCCESS)
}

/// The source snapshots to copy: those named, or every one the filters admit.
fn select(g: &Global, source: &Repository, a: &CopyArgs) -> Result<Vec<SnapshotEntry>> {
    let filter = a.filter.filter();
    if a.snapshots.is_empty() {
        let all = source.snapshot_list()?;
        super::warn_unreadable(g, "source snapshot", &all.unreadable);
        return Ok(all
            .entries
            .into_iter()
            .filter(|e| filter.matches(&e.snapshot))
            .collect());
    }
    let mut out: Vec<SnapshotEntry> = Vec::new();
    for q in &a.snapshots {
        let e = source
            .find_snapshot(q, &filter)
            .with_context(|| format!("finding snapshot {q:?} in the source repository"))?;
        if !out.iter().any(|x| x.id == e.id) {
            out.push(e);
        }
    }
    Ok(out)
}

fn warn_problems(g: &Global, which: &str, list: &[hokan_repo::Unreadable]) {
    if g.quiet {
        return;
    }
    for u in list {
        eprintln!(
            "warning: the {which} repository's {} cannot be read and is left out: {}",
            u.path, u.reason
        );
    }
}

fn summary_json(r: &CopyReport, selected: usize, seconds: f64) -> serde_json::Value {
    serde_json::json!({
        "message_type": "summary",
        "snapshots_selected": selected,
        "snapshots_copied": r.copied.len(),
        "snapshots_skipped": r.skipped.len(),
        "copied": r.copied.iter().map(|c| serde_json::json!({
            "source": c.source.to_hex(),
            "id": c.entry.id.to_hex(),
            "tree": c.entry.snapshot.tree.0.to_hex(),
            "blobs": c.blobs,
            "bytes": c.bytes,
        })).collect::<Vec<_>>(),
        "skipped": r.skipped.iter().map(|(s, t)| serde_json::json!({
            "source": s.to_hex(), "id": t.to_hex(),
        })).collect::<Vec<_>>(),
        "same_ids": r.same_ids,
        "blobs_copied": r.blobs_copied,
        "bytes_copied": r.bytes_copied,
        "blobs_added": r.blobs_added,
        "bytes_added": r.bytes_added,
        "bytes_stored": r.bytes_stored,
        "packs_added": r.packs_added,
        "seconds": seconds,
    })
}

fn print_summary(r: &CopyReport, from: &str, seconds: f64) {
    for (s, t) in &r.skipped {
        println!(
            "skipped snapshot {}: already copied as {}",
            s.short(),
            t.short()
        );
    }
    for c in &r.copied {
        let s = &c.entry.snapshot;
        println!(
            "copied snapshot {} ({} of {} {}) as {}: {} blobs, {}",
            c.source.short(),
            output::local_time(s.time.secs),
            s.source,
            if s.identity.is_empty() {
                format!("{}:{}", s.hostname, s.paths.join(","))
            } else {
                s.identity.clone()
            },
            c.entry.id.short(),
            c.blobs,
            output::size(c.bytes)
        );
    }
    if r.copied.is_empty() && r.skipped.is_empty() {
        println!("no snapshot of {from} is selected; nothing to copy");
        return;
    }
    if r.copied.is_empty() {
        println!(
            "nothing to copy from {from}: the target already holds all {} selected snapshot(s)",
            r.skipped.len()
        );
        return;
    }
    let rate = r.bytes_copied as f64 / seconds.max(0.001);
    println!(
        "copied {} snapshot(s), skipped {}: read {} blobs ({}) from {from}, added {} blobs ({}), \
         {} stored in {} pack(s), in {:.1} s ({}/s){}",
        r.copied.len(),
        r.skipped.len(),
        r.blobs_copied,
        output::size(r.bytes_copied),
        r.blobs_added,
        output::size(r.bytes_added),
        output::size(r.bytes_stored),
        r.packs_added,
        seconds,
        output::size(rate as u64),
        if r.same_ids {
            "; ids shared with the source, trees kept their ids"
        } else {
            "; blobs re-identified with this repository's id key"
        }
    );
}

/// Damage met while copying is the source's (the target is only written):
/// say which repository to check, since the generic hint names none.
fn source_damage(e: hokan_repo::Error, from_repo: &str) -> anyhow::Error {
    use hokan_core::Error as Core;
    use hokan_repo::Error as E;
    let damaged = matches!(
        &e,
        E::Corrupted { .. }
            | E::Missing { .. }
            | E::Core(
                Core::Corrupted { .. }
                    | Core::Truncated { .. }
                    | Core::MissingPack { .. }
                    | Core::BlobNotFound { .. }
            )
    );
    let e = anyhow::Error::new(e);
    match damaged {
        true => e.context(format!(
            "the source repository {from_repo} is damaged: \
             `hokan -r {from_repo} check --read-data` names what is affected there"
        )),
        false => e,
    }
}
