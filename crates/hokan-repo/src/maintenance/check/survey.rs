//! Check's survey: the index files, lock objects, the store's listing and
//! every snapshot's trees, read once. Nothing here changes anything.

use std::collections::{HashMap, HashSet};

use hokan_core::{BlobReader, Id, Index, PackId};

use super::super::walk::{self, Used};
use super::super::{PhaseProgress, Unit, readable_index};
use crate::error::Result;
use crate::index_file::{IndexedPack, take_live_packs};
use crate::layout;
use crate::locks::MarkedPack;
use crate::objects::Unreadable;
use crate::repository::Repository;
use crate::snapshot::SnapshotEntry;

/// What check read. [`plan`](super::plan::plan) finds the structural
/// problems in it, and chooses the packs to read, from this alone.
pub(crate) struct Survey {
    /// Index files that cannot be read.
    pub bad_index_files: Vec<Unreadable>,
    /// Lock objects that cannot be read.
    pub bad_locks: Vec<Unreadable>,
    /// Packs the index lists, by id.
    pub active: Vec<IndexedPack>,
    /// Packs marked for deletion.
    pub marked: Vec<MarkedPack>,
    /// Copies recorded as damaged.
    pub damaged: HashSet<(PackId, Id)>,
    /// Copies whose bytes are gone: those of indexed packs not in the
    /// store, and those past the end of a pack shorter than the index says.
    pub absent: HashSet<(PackId, Id)>,
    /// The packs in the store and their sizes.
    pub stored: HashMap<PackId, u64>,
    /// Temporary files left by interrupted writes: (directory, count, bytes).
    pub temporary: Vec<(&'static str, usize, u64)>,
    /// Everything readable, resolved as readers resolve it (an intact copy
    /// wins over a damaged one, and one with bytes over one without).
    pub index: Index,
    /// Snapshot files that cannot be read.
    pub bad_snapshots: Vec<Unreadable>,
    /// The snapshots read.
    pub snapshots: Vec<SnapshotEntry>,
    /// What they use, and the trees that cannot be read.
    pub used: Used,
}

impl Survey {
    /// Whether the copy of `blob` in `pack` is not what readers use: some
    /// other copy is.
    pub fn healed(&self, pack: &PackId, blob: &Id) -> bool {
        self.index.get(blob).is_some_and(|l| l.pack != *pack)
    }

    /// Whether snapshots read `blob` from `pack`.
    pub fn read_from(&self, pack: &PackId, blob: &Id) -> bool {
        self.used.blobs.contains(blob) && self.index.get(blob).is_some_and(|l| l.pack == *pack)
    }
}

/// The copies whose bytes are gone: every blob of an indexed pack that is
/// not in the store, and every blob lying past the end of a pack shorter
/// than the index says.
fn absent(active: &[IndexedPack], stored: &HashMap<PackId, u64>) -> HashSet<(PackId, Id)> {
    let mut out = HashSet::new();
    for p in active {
        let size = stored.get(&p.id).copied();
        for b in &p.blobs {
            if size.is_none_or(|size| b.offset as u64 + b.length as u64 > size) {
                out.insert((p.id, b.id));
            }
        }
    }
    out
}

/// Reads what check needs: what is stored, not what a cache remembers.
pub(crate) fn survey(repo: &Repository, progress: &dyn PhaseProgress) -> Result<Survey> {
    let crate::objects::IndexFiles {
        mut files,
        unreadable,
    } = repo.index_files_from(false)?;
    let read = files.len() + unreadable.len();
    progress.phase("index files", read as u64, Unit::Items);
    progress.advance(read as u64);
    let mut active = take_live_packs(&mut files);
    drop(files);
    active.sort_by_key(|p| p.id);
    let locks = repo.locks()?;
    let stored: HashMap<PackId, u64> = repo
        .pack_files()?
        .into_iter()
        .map(|(id, l)| (id, l.size))
        .collect();
    let mut temporary = Vec::new();
    for dir in layout::DIRS {
        let t = repo.store().temporary_files(dir)?;
        if !t.is_empty() {
            temporary.push((dir, t.len(), t.iter().map(|t| t.size).sum()));
        }
    }
    let marked: Vec<MarkedPack> = locks.marked().cloned().collect();
    let damaged: HashSet<(PackId, Id)> = locks.damaged().copied().collect();
    let absent = absent(&active, &stored);
    let distrusted: HashSet<(PackId, Id)> = damaged.union(&absent).copied().collect();
    let index = readable_index(
        &active,
        marked.iter().filter(|m| stored.contains_key(&m.pack.id)),
        &distrusted,
        &absent,
    );
    let list = repo.snapshot_list_from(false)?;
    let reader = BlobReader::new(repo.master_key(), &index, repo.store());
    let used = walk::used_blobs(&reader, &list.entries, progress, true)?;
    Ok(Survey {
        bad_index_files: unreadable,
        bad_locks: locks.unreadable,
        active,
        marked,
        damaged,
        absent,
        stored,
        temporary,
        index,
        bad_snapshots: list.unreadable,
        snapshots: list.entries,
        used,
    })
}
