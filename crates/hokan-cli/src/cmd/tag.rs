//! `hokan tag [SNAPSHOT...] --add/--remove/--set TAG`: change snapshots' tags.
//!
//! A snapshot is named by its bytes, so a changed snapshot gets a new id;
//! the old object is deleted only after the new one is stored.

use std::process::ExitCode;

use anyhow::{Result, bail};
use hokan_repo::{SnapshotEntry, TagChange};

use crate::Global;
use crate::cmd::FilterArgs;
use crate::output;

#[derive(clap::Args, Debug)]
pub struct TagArgs {
    /// Snapshots (ids, unique prefixes or "latest"); none: every snapshot
    /// the filters admit
    pub snapshots: Vec<String>,
    /// Add these tags (comma-separated; repeatable)
    #[arg(long, value_name = "TAG[,TAG]")]
    pub add: Vec<String>,
    /// Remove these tags (comma-separated; repeatable)
    #[arg(long, value_name = "TAG[,TAG]")]
    pub remove: Vec<String>,
    /// Replace all tags with these (comma-separated; repeatable; "" clears them)
    #[arg(long, value_name = "TAG[,TAG]", conflicts_with_all = ["add", "remove"])]
    pub set: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `--add a,b --add c` as `[a, b, c]`; [`TagChange`] trims them and drops
/// empty ones, as a backup's snapshot spec does.
fn split(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(String::from)
        .collect()
}

pub fn run(g: &Global, a: TagArgs) -> Result<ExitCode> {
    if a.add.is_empty() && a.remove.is_empty() && a.set.is_empty() {
        bail!("nothing to do: give --add, --remove or --set (--set \"\" removes every tag)");
    }
    let change = TagChange {
        set: (!a.set.is_empty()).then(|| split(&a.set)),
        add: split(&a.add),
        remove: split(&a.remove),
    };
    let repo = super::open(g)?;
    let filter = a.filter.filter();
    let targets: Vec<SnapshotEntry> = if a.snapshots.is_empty() {
        let all = repo.snapshot_list()?;
        super::warn_unreadable(g, "snapshot", &all.unreadable);
        all.entries
            .into_iter()
            .filter(|e| filter.matches(&e.snapshot))
            .collect()
    } else {
        let mut v: Vec<SnapshotEntry> = Vec::new();
        for q in &a.snapshots {
            let e = repo.find_snapshot(q, &filter)?;
            // "latest" and an id may name the same one: tag it once.
            if !v.iter().any(|x| x.id == e.id) {
                v.push(e);
            }
        }
        v
    };
    let mut results = Vec::new();
    for e in &targets {
        let (new, changed, old) = repo.retag_snapshot(e, &change)?;
        let kept = match old {
            hokan_repo::Removal::Kept { until } => Some(until),
            hokan_repo::Removal::Deleted => None,
        };
        results.push((e.id, new, changed, kept));
    }
    let changed = results.iter().filter(|r| r.2).count();
    if g.json {
        let list: Vec<_> = results
            .iter()
            .map(|(old, new, changed, kept)| {
                serde_json::json!({
                    "old_id": old.to_hex(), "new_id": new.id.to_hex(),
                    "changed": changed, "tags": new.snapshot.tags,
                    "old_kept_by_lock": kept.is_some(),
                    "old_deletable_from": kept.flatten(),
                })
            })
            .collect();
        output::json(&serde_json::json!({"snapshots": list, "changed": changed}))?;
    } else if !g.quiet {
        for (old, new, was_changed, kept) in &results {
            if *was_changed {
                println!(
                    "snapshot {} is now {}, tags [{}]",
                    old.short(),
                    new.id.short(),
                    new.snapshot.tags.join(", ")
                );
                if let Some(until) = kept {
                    println!(
                        "  the old snapshot {} stays listed: the repository is immutable and {}",
                        old.short(),
                        super::forget::lock_note(*until)
                    );
                }
            } else {
                println!("snapshot {} unchanged", old.short());
            }
        }
        println!(
            "{changed} snapshot{} changed",
            if changed == 1 { "" } else { "s" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
