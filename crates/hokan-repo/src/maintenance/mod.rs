//! Keeping a repository healthy: `forget` (retention), `prune` (removing
//! what no snapshot needs, in two phases, safe beside running backups),
//! `check` (finding every problem) and `repair index`.

mod check;
mod locks;
mod prune;
mod repair;

pub use check::{CheckReport, Problem, ReadData, check};
pub use locks::{LockObject, MarkedPack, PruneLock, STALE_AFTER};
pub use prune::{PruneOptions, PruneReport, prune, prune_with};
pub use repair::{RepairReport, repair_index};

use hokan_core::{Index, IndexBuilder};

use crate::error::Result;
use crate::index_file::IndexedPack;
use crate::repo::Repository;
use crate::retention::{GroupBy, GroupDecisions, GroupKey, Policy, apply};
use crate::snapshot::{SnapshotEntry, SnapshotFilter};

/// What a step of a phase counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Objects: files, snapshots, trees, packs.
    Items,
    /// Bytes.
    Bytes,
}

/// Progress of a maintenance command, phase by phase (`check` and `prune`
/// run several: reading index files, walking snapshots, reading packs,
/// repacking, deleting). `()` shows nothing. Calls may come from several
/// threads at once.
pub trait PhaseProgress: Sync {
    /// A phase starts; `total` is its number of steps, 0 when unknown.
    fn phase(&self, name: &str, total: u64, unit: Unit) {
        let _ = (name, total, unit);
    }
    /// `n` more steps of the current phase are done.
    fn advance(&self, n: u64) {
        let _ = n;
    }
}

impl PhaseProgress for () {}

/// Everything a maintenance command may read: live packs first (they win
/// among duplicates), then `marked` packs, hidden from dedup.
fn readable_index<'a>(
    live: impl IntoIterator<Item = &'a IndexedPack>,
    marked: impl IntoIterator<Item = &'a MarkedPack>,
) -> Index {
    let mut builder = IndexBuilder::default();
    for p in live {
        builder.add_pack(p.id, p.kind, &p.blobs);
    }
    for m in marked {
        builder.add_hidden_pack(m.pack.id, m.pack.kind, &m.pack.blobs);
    }
    builder.build()
}

impl Repository {
    /// Applies a retention policy to the snapshots the filter admits and,
    /// unless `dry_run`, deletes the snapshots it does not keep. Their data
    /// stays until [`prune`] removes it. Returns every decision with its
    /// reasons.
    pub fn forget(
        &self,
        policy: &Policy,
        by: GroupBy,
        filter: &SnapshotFilter,
        dry_run: bool,
    ) -> Result<Vec<GroupDecisions>> {
        let snapshots: Vec<_> = self
            .snapshots()?
            .into_iter()
            .filter(|e| filter.matches(&e.snapshot))
            .collect();
        let decisions = apply(&snapshots, policy, by)?;
        if !dry_run {
            for d in decisions
                .iter()
                .flat_map(|g| &g.decisions)
                .filter(|d| !d.keep())
            {
                self.delete_snapshot(&d.entry.id)?;
            }
        }
        Ok(decisions)
    }

    /// Applies a retention policy right after a backup, to the snapshots of
    /// the same host, paths and kind of source as `saved` (the one just
    /// stored), and deletes the ones it does not keep. Because `saved` is
    /// already in the repository, "keep the last N" leaves exactly N, as an
    /// `etcdctl snapshot save` rotation would. `saved` itself is always
    /// kept, even if no rule keeps it (a tag rule it lacks, say).
    pub fn forget_after_backup(
        &self,
        saved: &SnapshotEntry,
        policy: &Policy,
    ) -> Result<GroupDecisions> {
        let mut paths = saved.snapshot.paths.clone();
        paths.sort();
        let same: Vec<_> = self
            .snapshots()?
            .into_iter()
            .filter(|e| {
                let s = &e.snapshot;
                let mut p = s.paths.clone();
                p.sort();
                s.hostname == saved.snapshot.hostname
                    && s.source == saved.snapshot.source
                    && p == paths
            })
            .collect();
        let one_group = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        // One group, unless the listing missed `saved` and found nothing.
        let mut group = apply(&same, policy, one_group)?
            .pop()
            .unwrap_or(GroupDecisions {
                key: Default::default(),
                decisions: Vec::new(),
            });
        group.key = GroupKey {
            host: Some(saved.snapshot.hostname.clone()),
            paths: Some(paths),
            tags: None,
        };
        for d in &mut group.decisions {
            if d.entry.id == saved.id && !d.keep() {
                d.reasons.push("the snapshot just saved".to_string());
            }
        }
        for d in group.decisions.iter().filter(|d| !d.keep()) {
            self.delete_snapshot(&d.entry.id)?;
        }
        Ok(group)
    }
}
