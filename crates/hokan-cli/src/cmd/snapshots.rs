//! `hokan snapshots`: list snapshots.

use std::process::ExitCode;

use anyhow::Result;
use hokan_repo::SnapshotEntry;

use crate::Global;
use crate::cmd::FilterArgs;
use crate::output;

#[derive(clap::Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only the newest N snapshots (after filtering)
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
}

/// A snapshot as JSON, with restic's field names where they exist.
pub fn snapshot_json(e: &SnapshotEntry) -> serde_json::Value {
    let s = &e.snapshot;
    let sum = &s.summary;
    let mut summary = serde_json::json!({
        "total_bytes": sum.bytes, "blobs_added": sum.blobs_added,
        "data_added": sum.bytes_added, "data_added_packed": sum.bytes_stored,
        "packs_added": sum.packs_added, "errors": sum.errors, "duration_ms": sum.duration_ms,
    });
    // The source's own figures (files_new, dirs, ... for file systems;
    // objects for Kubernetes; keys, revision for etcd) under their names.
    for (k, v) in &sum.counts {
        summary[k] = (*v).into();
    }
    serde_json::json!({
        "id": e.id.to_hex(),
        "short_id": e.id.short(),
        "time": s.time_rfc3339(),
        "hostname": s.hostname,
        "username": s.username,
        "paths": s.paths,
        "tags": s.tags,
        "source": s.source.name(),
        "identity": s.identity,
        "parent": s.parent.map(|p| p.to_hex()),
        "tree": s.tree.to_hex(),
        "program_version": s.program_version,
        "labels": s.labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "summary": summary,
    })
}

pub fn run(g: &Global, a: SnapshotsArgs) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let filter = a.filter.filter();
    let all = repo.snapshot_list()?;
    super::warn_unreadable(g, "snapshot", &all.unreadable);
    let mut list: Vec<SnapshotEntry> = all
        .entries
        .into_iter()
        .filter(|e| filter.matches(&e.snapshot))
        .collect();
    if let Some(n) = a.latest {
        let skip = list.len().saturating_sub(n);
        list.drain(..skip);
    }
    if g.json {
        return output::json(&list.iter().map(snapshot_json).collect::<Vec<_>>())
            .map(|_| ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            let s = &e.snapshot;
            vec![
                e.id.short(),
                output::local_time(s.time.secs),
                s.hostname.clone(),
                s.source.name().to_string(),
                s.tags.join(","),
                output::size(s.summary.bytes),
                s.paths.join(" "),
            ]
        })
        .collect();
    output::table(
        &["ID", "Time", "Host", "Source", "Tags", "Size", "Paths"],
        &rows,
    );
    println!(
        "{} snapshot{}",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    );
    Ok(if all.unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
