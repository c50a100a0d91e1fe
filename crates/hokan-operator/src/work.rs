//! The work a run does in the operator's own process: a resource backup
//! with the operator's API access (the calls `hokan k8s backup` makes),
//! retention after it (the calls `backup --keep-*` makes), and reading a
//! run's snapshots back from the repository, which is the source of truth:
//! a Job's run is found there by the tag it was given.

use hokan_k8s::repository::SnapshotOptions;
use hokan_k8s::{Cluster, backup_to_repository};
use hokan_repo::{IndexedRepository, SnapshotEntry};

use crate::api::common::{Figures, Retention, RunError, SnapshotRef};
use crate::api::policy::ResourceSource;
use crate::convert::{backup_options, retention_policy};

/// The tag every snapshot of a run carries: `hokan.dev/run=<name>`.
pub fn run_tag(run: &str) -> String {
    format!("hokan.dev/run={run}")
}

/// What a run saved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Saved {
    /// Its snapshots.
    pub snapshots: Vec<SnapshotRef>,
    /// Their figures, added up.
    pub figures: Figures,
    /// What could not be read.
    pub errors: Vec<RunError>,
    /// Snapshots retention forgot after it.
    pub forgotten: u64,
}

impl Saved {
    /// Adds one snapshot and its figures.
    pub fn add(&mut self, e: &SnapshotEntry) {
        let s = &e.snapshot;
        self.snapshots.push(SnapshotRef {
            id: e.id.to_hex(),
            kind: s.source.name().to_string(),
            identity: Some(s.identity.clone()).filter(|i| !i.is_empty()),
        });
        let f = &mut self.figures;
        f.bytes_read += s.summary.bytes;
        f.bytes_added += s.summary.bytes_added;
        f.bytes_stored += s.summary.bytes_stored;
        f.files += s.summary.count(hokan_repo::snapshot::counts::FILES);
        f.objects += s.summary.count(hokan_k8s::repository::counts::OBJECTS);
    }
}

/// The snapshots of run `run` in `repo` (found by their tag), oldest first.
pub fn saved_by(repo: &IndexedRepository, run: &str) -> Result<Saved, String> {
    let tag = run_tag(run);
    let mut saved = Saved::default();
    let mut entries = repo.snapshots().map_err(|e| e.to_string())?;
    entries.retain(|e| e.snapshot.tags.contains(&tag));
    entries.sort_by_key(|e| e.snapshot.time);
    for e in &entries {
        saved.add(e);
    }
    Ok(saved)
}

/// Applies `retention` (when it has a rule) to the series `saved` belongs
/// to; returns how many snapshots it forgot. Blocking.
pub fn apply_retention(
    repo: &IndexedRepository,
    saved: &SnapshotEntry,
    retention: Option<&Retention>,
    at: &str,
) -> Result<u64, String> {
    let Some(r) = retention else {
        return Ok(0);
    };
    let policy = retention_policy(r, at).map_err(|e| e.to_string())?;
    if policy.is_empty() {
        return Ok(0);
    }
    let group = repo
        .forget_after_backup(saved, &policy)
        .map_err(|e| format!("retention ({at}): {e}"))?;
    Ok(group.decisions.iter().filter(|d| !d.keep()).count() as u64)
}

/// Backs up the resources `source` selects from `cluster` into `repo` as
/// run `run`, then applies the section's retention. Resources the server
/// refused are errors of a snapshot that is still saved (Velero's
/// PartiallyFailed). Needs tokio's multi-threaded runtime.
pub async fn backup_resources(
    cluster: &Cluster,
    repo: &mut IndexedRepository,
    source: &ResourceSource,
    run: &str,
) -> Result<Saved, String> {
    // Checked before anything is stored, as the command checks its flags.
    if let Some(r) = &source.retention {
        retention_policy(r, "spec.resources.retention").map_err(|e| e.to_string())?;
    }
    let options = backup_options(source);
    let snapshot = SnapshotOptions {
        tags: vec![run_tag(run)],
        ..Default::default()
    };
    let committed = backup_to_repository(
        cluster,
        &options,
        repo,
        &snapshot,
        &hokan_core::fs::NoProgress,
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut saved = Saved::default();
    saved.add(&committed.entry);
    saved.errors = committed
        .value
        .errors
        .iter()
        .map(|message| RunError {
            object: message.split_whitespace().next().map(str::to_string),
            file: None,
            message: message.clone(),
        })
        .collect();
    let entry = committed.entry.clone();
    saved.forgotten = tokio::task::block_in_place(|| {
        apply_retention(
            repo,
            &entry,
            source.retention.as_ref(),
            "spec.resources.retention",
        )
    })?;
    Ok(saved)
}
