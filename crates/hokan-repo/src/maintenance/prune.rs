//! Prune: remove data no snapshot needs, in two phases, without stopping
//! backups.
//!
//! Phase one marks: packs no snapshot uses are listed in a deletion marker
//! (`locks/`) and left out of the rewritten index files. Marked packs stay
//! readable (a backup that loaded the index before the prune may have
//! used them) but new backups do not dedup against them. Phase two, in a
//! later prune once the grace period has passed, deletes marked packs that
//! are still unused, and puts back into the index any that a snapshot
//! written meanwhile uses. Packs that are mostly unused are repacked: their
//! live blobs are copied into new packs and the old ones are marked.
//! `instant_delete` skips the wait, for when nothing else writes.
//!
//! Every step leaves a repository that `check` accepts: objects are only
//! ever added before the objects that replace them are removed.
//!
//! In an immutable repository an object is deleted only once its
//! last-modified time plus the configured retention has passed (and the
//! store agrees); everything else is kept and counted in
//! [`PruneReport::kept`]. Packs are then deleted before the deletion marker
//! is rewritten, so a pack the lock keeps is marked again, never left in
//! neither index nor marker. Index files a new one supersedes may stay:
//! the loader ignores superseded files, and a later prune deletes them,
//! then the superseding file once everything it names is gone. Packs are
//! never newly unused and deleted in the same prune there.

use std::time::Duration;

use crate::error::Result;
use crate::locks::PruneLock;
use crate::repository::Repository;

use super::PhaseProgress;

mod execute;
mod plan;
mod survey;

pub use plan::PrunePlan;

/// Temporary files older than this were left by writes that died.
const TEMPORARY_AFTER: i64 = 3600;

/// Prune settings.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// How long a pack stays marked before it is deleted; must exceed the
    /// longest backup that may run during a prune.
    pub grace: Duration,
    /// Delete unused packs now, without the grace period: only when no
    /// backup runs.
    pub instant_delete: bool,
    /// How much dead weight may stay, as a share of the live data (0.0 to
    /// 1.0): mostly unused packs are repacked, most wasteful first, until
    /// what is left unused is at most this (restic's `--max-unused`).
    pub max_unused: f64,
    /// Decide and report, change nothing.
    pub dry_run: bool,
    /// About how much memory the survey's sorts may hold (bytes); beyond
    /// it they spill sorted runs to temporary files. Prune's memory then
    /// grows with the packs and the trees, not with the blobs.
    pub max_memory: usize,
    /// Where those temporary files go (never the repository): by default
    /// the repository's cache directory, or the system's temporary one.
    pub temp_dir: Option<std::path::PathBuf>,
}

/// The default of [`PruneOptions::max_memory`] (and check's).
pub const DEFAULT_MAX_MEMORY: usize = 128 << 20;

impl PruneOptions {
    /// The directory spill files go to.
    pub(crate) fn spill_dir(&self, repo: &Repository) -> std::path::PathBuf {
        spill_dir(self.temp_dir.as_deref(), repo)
    }
}

/// `chosen`, or the repository's cache directory, or the system's
/// temporary directory.
pub(crate) fn spill_dir(chosen: Option<&std::path::Path>, repo: &Repository) -> std::path::PathBuf {
    match (chosen, repo.cache()) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(c)) => c.dir().to_path_buf(),
        (None, None) => std::env::temp_dir(),
    }
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            grace: Duration::from_secs(24 * 3600),
            instant_delete: false,
            max_unused: 0.05,
            dry_run: false,
            max_memory: DEFAULT_MAX_MEMORY,
            temp_dir: None,
        }
    }
}

/// What a prune did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Snapshots whose data was kept.
    pub snapshots: usize,
    /// Blobs those snapshots use.
    pub used_blobs: usize,
    /// Packs in the index before.
    pub packs_before: usize,
    /// Bytes in packs before (indexed, marked and unindexed).
    pub bytes_before: u64,
    /// Packs newly marked for deletion.
    pub marked: usize,
    /// Packs whose live blobs were copied to new packs (and then marked).
    pub repacked: usize,
    /// New packs written by repacking.
    pub packs_written: usize,
    /// Marked packs a snapshot uses again, put back into the index.
    pub resurrected: usize,
    /// Packs deleted.
    pub deleted: usize,
    /// Bytes deleted.
    pub bytes_deleted: u64,
    /// Packs still marked, waiting for their grace period.
    pub waiting: usize,
    /// Bytes in packs still marked.
    pub bytes_waiting: u64,
    /// Packs in no index (an interrupted or running backup's) deleted.
    pub orphans_deleted: usize,
    /// Packs in no index left alone because they are recent.
    pub orphans_kept: usize,
    /// Temporary files of interrupted writes removed.
    pub temporary_deleted: usize,
    /// Index files written.
    pub index_files_written: usize,
    /// Index files removed.
    pub index_files_removed: usize,
    /// Immutable mode: objects the object lock did not let this prune
    /// delete (packs with their sizes, and small objects: index files,
    /// markers, locks, snapshots).
    pub kept: crate::immutable::Kept,
    /// Lock objects of finished or crashed processes removed (immutable
    /// mode).
    pub locks_removed: usize,
    /// Packs the index lists that are not in the store, whose blobs
    /// snapshots need and no other pack holds: kept in the index (see
    /// `check`).
    pub missing: Vec<hokan_core::PackId>,
    /// What was decided for every pack (in a dry run: what would be
    /// done).
    pub plan: PrunePlan,
    /// Bytes of the packs in the store when prune finished (packs waiting
    /// for their grace period included: they still take space; after a
    /// dry run, the size as it is).
    pub repository_bytes: u64,
    /// Packs deleted by this run (internal bookkeeping, empty at the end).
    gone: Vec<hokan_core::PackId>,
}

/// Stored bytes of a pack's records: (live, total). A group record counts
/// once, and is live in proportion to its live members' plaintext. (The
/// reference the bounded survey's summaries are tested against.)
#[cfg(test)]
fn record_bytes(
    p: &crate::index_file::IndexedPack,
    live: impl Fn(&hokan_core::PackedBlob) -> bool,
) -> (u64, u64) {
    let (mut live_bytes, mut total) = (0u64, 0u64);
    for record in p.blobs.chunk_by(|a, b| a.offset == b.offset) {
        let length = record[0].length as u64;
        total += length;
        let raw: u64 = record.iter().map(|b| b.raw_len as u64).sum();
        let live_raw: u64 = record
            .iter()
            .filter(|b| live(b))
            .map(|b| b.raw_len as u64)
            .sum();
        live_bytes += super::resolve::live_share(length, raw, live_raw, record.iter().any(&live));
    }
    (live_bytes, total)
}

/// Runs a prune; see the module documentation.
pub fn prune(repo: Repository, options: &PruneOptions) -> Result<PruneReport> {
    prune_with(repo, options, &())
}

/// [`prune`], telling `progress` about each phase: survey (read the index,
/// the locks, the store's listing and every snapshot's trees), plan (decide
/// every pack's fate from that alone; a dry run stops here and returns the
/// plan in its report), execute.
pub fn prune_with(
    repo: Repository,
    options: &PruneOptions,
    progress: &dyn PhaseProgress,
) -> Result<PruneReport> {
    let lock = PruneLock::acquire(&repo)?;
    let survey = survey::survey(&repo, options, progress)?;
    let plan = plan::plan(&survey, options);
    let mut report = PruneReport {
        snapshots: survey.snapshots,
        used_blobs: survey.resolved.used,
        packs_before: survey.active().len(),
        bytes_before: survey.stored.values().map(|l| l.size).sum(),
        marked: plan.mark.len(),
        repacked: plan.repack.len(),
        resurrected: plan.resurrect.len(),
        orphans_deleted: plan.orphans_deleted.len(),
        orphans_kept: plan.orphans_kept.len(),
        missing: plan.missing.clone(),
        ..Default::default()
    };
    if options.dry_run {
        let deletable = execute::held_by_lock(&survey, &plan, &mut report);
        report.deleted = deletable.len();
        report.bytes_deleted = deletable.iter().map(|id| survey.size_of(id)).sum();
        report.waiting = plan.wait.len() + plan.mark.len() + plan.repack.len();
        report.repository_bytes = report.bytes_before;
        report.plan = plan;
        return Ok(report);
    }
    execute::execute(repo, &survey, &plan, options, &lock, &mut report, progress)?;
    report.plan = plan;
    report.gone.clear();
    Ok(report)
}
