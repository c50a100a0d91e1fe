//! Keeping a repository healthy: `forget` (retention), `prune` (removing
//! what no snapshot needs, in two phases, safe beside running backups),
//! `check` (finding every problem, and naming the snapshots and files each
//! one affects) and `repair` (rebuilding the index, salvaging damaged
//! packs).

mod check;
mod prune;
mod repair;
pub(crate) mod walk;

pub use crate::locks::{LockObject, MarkedPack, PruneLock, STALE_AFTER};
pub use check::{CheckReport, Problem, ProblemKind, ReadData, check};
pub use prune::{PruneOptions, PrunePlan, PruneReport, prune, prune_with};
pub use repair::{RepairPacksReport, RepairReport, repair_index, repair_packs};
pub use walk::Affected;

use std::collections::HashSet;

use hokan_core::pack::group_members;
use hokan_core::{Id, Index, IndexBuilder, PackId};

use crate::index_load::add_damaged_copies;

use crate::error::Result;
use crate::index_file::IndexedPack;
use crate::repository::Repository;
use crate::retention::{GroupBy, GroupDecisions, GroupKey, Policy, apply};
use crate::snapshot::{SnapshotEntry, SnapshotFilter};
use crate::store::Removal;

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
/// among duplicates), then `marked` packs, hidden from dedup. Copies known
/// to be damaged lose to any intact copy and are marked damaged; among
/// damaged copies, those `absent` (in a pack that is gone, or past the end
/// of one cut short) lose to those whose bytes are still there.
fn readable_index<'a>(
    live: impl IntoIterator<Item = &'a IndexedPack>,
    marked: impl IntoIterator<Item = &'a MarkedPack>,
    damaged: &HashSet<(PackId, Id)>,
    absent: &HashSet<(PackId, Id)>,
) -> Index {
    let mut builder = IndexBuilder::default();
    let mut copies = Vec::new();
    // Marked packs too: a damaged copy in one must not win over an intact
    // copy in another.
    let packs = live
        .into_iter()
        .map(|p| (p, false))
        .chain(marked.into_iter().map(|m| (&m.pack, true)));
    for (p, hidden) in packs {
        for (b, group) in p.blobs.iter().zip(group_members(&p.blobs)) {
            if damaged.contains(&(p.id, b.id)) {
                copies.push((p.id, p.kind, *b, group));
            }
        }
        let intact = |b: &hokan_core::PackedBlob| !damaged.contains(&(p.id, b.id));
        match hidden {
            false => builder.add_pack_filtered(p.id, p.kind, &p.blobs, intact),
            true => builder.add_hidden_pack_filtered(p.id, p.kind, &p.blobs, intact),
        }
    }
    let mut index = builder.build();
    copies.sort_by_key(|(p, _, b, _)| absent.contains(&(*p, b.id)));
    add_damaged_copies(&mut index, copies);
    index
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
        let mut decisions = apply(&snapshots, policy, by)?;
        if !dry_run {
            for d in decisions
                .iter_mut()
                .flat_map(|g| &mut g.decisions)
                .filter(|d| !d.keep())
            {
                if let Removal::Kept { until } = self.delete_snapshot(&d.entry.id)? {
                    d.kept_by_lock = Some(until);
                }
            }
        }
        Ok(decisions)
    }

    /// Applies a retention policy right after a backup, to the snapshots of
    /// the same source and identity as `saved` (the one just stored; for
    /// file systems: the same host and paths), and deletes the ones it does
    /// not keep. Because `saved` is
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
        let lineage = saved.snapshot.lineage();
        let same: Vec<_> = self
            .snapshots()?
            .into_iter()
            .filter(|e| e.snapshot.lineage() == lineage)
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
        for d in group.decisions.iter_mut().filter(|d| !d.keep()) {
            if let Removal::Kept { until } = self.delete_snapshot(&d.entry.id)? {
                d.kept_by_lock = Some(until);
            }
        }
        Ok(group)
    }
}
