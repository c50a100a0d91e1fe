//! Keeping a repository healthy: `forget` (retention), `prune` (removing
//! what no snapshot needs, in two phases, safe beside running backups),
//! `check` (finding every problem, and naming the snapshots and files each
//! one affects) and `repair` (rebuilding the index, salvaging damaged
//! packs).

mod check;
mod forget;
mod prune;
mod repair;
mod resolve;
pub(crate) mod walk;

pub use crate::locks::{LockObject, MarkedPack, PruneLock, STALE_AFTER};
pub use check::{CheckOptions, CheckReport, Problem, ProblemKind, ReadData, check, check_with};
pub use forget::Forgotten;
pub use prune::{DEFAULT_MAX_MEMORY, PruneOptions, PrunePlan, PruneReport, prune, prune_with};
pub use repair::{RepairPacksReport, RepairReport, repair_index, repair_packs};
pub use walk::Affected;

use std::collections::HashSet;

use hokan_core::pack::group_members;
use hokan_core::{Id, Index, IndexBuilder, PackId};

use crate::index_load::add_damaged_copies;

use crate::index_file::IndexedPack;

/// Index files prune and check read at once: memory holds one batch of
/// them, decoded (a session's index file may list hundreds of thousands of
/// blobs, some 20 MB in memory), so few.
const FILES_AT_ONCE: usize = 2;

/// A reproducible stream of numbers below the bound asked (xorshift), for
/// tests that need thousands of varied copies.
#[cfg(test)]
pub(crate) fn below() -> impl FnMut(u64) -> u64 {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    }
}

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
