//! `hokan diff SNAPSHOT1 SNAPSHOT2`: what changed between two snapshots.

use std::process::ExitCode;

use anyhow::Result;
use hokan_core::NodeKind;
use hokan_core::browse::{self, ChangeKind};

use crate::Global;
use crate::output;

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The older snapshot
    pub first: String,
    /// The newer snapshot
    pub second: String,
}

pub fn run(g: &Global, a: DiffArgs) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let first = repo.find_snapshot(&a.first, &Default::default())?;
    let second = repo.find_snapshot(&a.second, &Default::default())?;
    let repo = repo.load_index()?;
    let changes = browse::diff(&repo.reader(), &first.snapshot.tree, &second.snapshot.tree)?;
    let count = |k: ChangeKind| {
        changes
            .iter()
            .filter(|c| c.kind == k && c.node_kind != NodeKind::Dir)
            .count()
    };
    let dirs = |k: ChangeKind| {
        changes
            .iter()
            .filter(|c| c.kind == k && c.node_kind == NodeKind::Dir)
            .count()
    };
    let added: u64 = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Added)
        .map(|c| c.size)
        .sum();
    let removed: u64 = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Removed)
        .map(|c| c.size)
        .sum();
    if g.json {
        for c in &changes {
            println!(
                "{}",
                serde_json::json!({"message_type": "change", "path": c.path.to_string_lossy(), "modifier": c.kind.mark().to_string(), "type": c.node_kind.name()})
            );
        }
        output::json(&serde_json::json!({
            "message_type": "statistics",
            "source_snapshot": first.id.to_hex(), "target_snapshot": second.id.to_hex(),
            "changed_files": count(ChangeKind::Modified),
            "added": {"files": count(ChangeKind::Added), "dirs": dirs(ChangeKind::Added), "bytes": added},
            "removed": {"files": count(ChangeKind::Removed), "dirs": dirs(ChangeKind::Removed), "bytes": removed},
            "metadata_changed": count(ChangeKind::Metadata) + dirs(ChangeKind::Metadata),
            "type_changed": count(ChangeKind::TypeChanged),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "comparing snapshot {} to {}:",
        first.id.short(),
        second.id.short()
    );
    for c in &changes {
        let slash = if c.node_kind == NodeKind::Dir {
            "/"
        } else {
            ""
        };
        println!("{}    {}{slash}", c.kind.mark(), c.path.display());
    }
    println!();
    // Resource snapshots hold objects, not files.
    let entries = if [&first, &second]
        .iter()
        .all(|e| e.snapshot.source == hokan_repo::SourceKind::K8S)
    {
        "Objects:    "
    } else {
        "Files:      "
    };
    println!(
        "{entries} {} new, {} removed, {} changed",
        count(ChangeKind::Added),
        count(ChangeKind::Removed),
        count(ChangeKind::Modified)
    );
    println!(
        "Dirs:        {} new, {} removed",
        dirs(ChangeKind::Added),
        dirs(ChangeKind::Removed)
    );
    println!(
        "Others:      {} metadata changes, {} type changes",
        count(ChangeKind::Metadata) + dirs(ChangeKind::Metadata),
        count(ChangeKind::TypeChanged)
    );
    println!("Added:       {}", output::size(added));
    println!("Removed:     {}", output::size(removed));
    Ok(ExitCode::SUCCESS)
}
