//! Check's survey: the index files, lock objects, the store's listing and
//! every snapshot's trees, read once. Nothing here changes anything.
//!
//! Like prune's, it holds no entry a blob: the copies and the used blobs go
//! through [`Resolver`]'s external sorts, and what is left is one summary a
//! pack, the tree packs (the walk reads trees through them) and what is
//! wrong.

use std::collections::{HashMap, HashSet};

use hokan_core::index::IdSorter;
use hokan_core::{BlobReader, BlobType, Id, Index, PackId};

use super::super::resolve::{PackDetail, PackEntries, PackSummary, Resolver};
use super::super::walk::{self, BadTree};
use super::super::{FILES_AT_ONCE, PhaseProgress, Unit, readable_index};
use super::CheckOptions;
use crate::error::{Result, from_core};
use crate::index_file::IndexedPack;
use crate::layout;
use crate::locks::MarkedPack;
use crate::objects::Unreadable;
use crate::repository::Repository;
use crate::snapshot::SnapshotEntry;

/// A pack the index lists, as check's plan needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CheckPack {
    pub id: PackId,
    /// Its size as the index says.
    pub size: u64,
    /// Copies it lists.
    pub blobs: usize,
    /// Its copies whose bytes are gone (all of them if the pack is not in
    /// the store; those past its end if it is shorter than the index
    /// says), in its order, each with whether readers read that blob from
    /// another pack (it is healed).
    pub absent: Vec<(Id, bool)>,
}

/// What check read. [`plan`](super::plan::plan) finds the structural
/// problems in it, and chooses the packs to read, from this alone.
pub(crate) struct Survey {
    /// Index files that cannot be read.
    pub bad_index_files: Vec<Unreadable>,
    /// Lock objects that cannot be read.
    pub bad_locks: Vec<Unreadable>,
    /// Packs the index lists, by id.
    pub active: Vec<CheckPack>,
    /// Packs marked for deletion, as the markers list them.
    pub marked: Vec<MarkedPack>,
    /// Marked packs (not indexed, in the store) a snapshot reads from.
    pub marked_live: HashSet<PackId>,
    /// Copies recorded as damaged.
    pub damaged: HashSet<(PackId, Id)>,
    /// For each blob a damage record names, the pack readers read it from
    /// (none: no pack holds it).
    pub read_at: HashMap<Id, PackId>,
    /// The packs in the store and their sizes.
    pub stored: HashMap<PackId, u64>,
    /// Temporary files left by interrupted writes: (directory, count, bytes).
    pub temporary: Vec<(&'static str, usize, u64)>,
    /// Blobs snapshots need that no pack holds, ascending.
    pub missing: Vec<Id>,
    /// The trees, resolved as readers resolve them (an intact copy wins
    /// over a damaged one, and one with bytes over one without).
    pub trees_index: Index,
    /// Every copy of the packs that may be read in full (when asked).
    pub entries: Option<PackEntries>,
    /// Snapshot files that cannot be read.
    pub bad_snapshots: Vec<Unreadable>,
    /// The snapshots read.
    pub snapshots: Vec<SnapshotEntry>,
    /// Distinct trees read.
    pub trees: usize,
    /// Distinct data blobs referenced.
    pub data: usize,
    /// Trees that cannot be read.
    pub bad_trees: Vec<BadTree>,
}

impl Survey {
    /// Whether `blob`, which `pack` holds, is read from another pack.
    pub fn healed(&self, pack: &PackId, blob: &Id) -> bool {
        self.read_at.get(blob).is_some_and(|p| p != pack)
    }
}

/// The copies whose bytes are gone: every blob of a pack that is not in
/// the store, and every blob lying past the end of a pack shorter than the
/// index says.
pub(crate) fn absent<'a>(
    packs: impl IntoIterator<Item = &'a IndexedPack>,
    stored: &HashMap<PackId, u64>,
) -> HashSet<(PackId, Id)> {
    let mut out = HashSet::new();
    for p in packs {
        let size = stored.get(&p.id).copied();
        for b in &p.blobs {
            if size.is_none_or(|size| b.offset as u64 + b.length as u64 > size) {
                out.insert((p.id, b.id));
            }
        }
    }
    out
}

/// Marked packs as readers take them: those in the store that the index
/// does not list, the first listing of each, by pack id.
pub(crate) fn marked_in_order<'a>(
    marked: &'a [MarkedPack],
    stored: &HashMap<PackId, u64>,
    indexed: &HashSet<PackId>,
) -> Vec<&'a MarkedPack> {
    let mut seen = HashSet::new();
    let mut out: Vec<&MarkedPack> = marked
        .iter()
        .filter(|m| stored.contains_key(&m.pack.id) && !indexed.contains(&m.pack.id))
        .filter(|m| seen.insert(m.pack.id))
        .collect();
    out.sort_by_key(|m| m.pack.id);
    out
}

/// The index of the trees: tree packs by id, then marked tree packs.
pub(crate) fn trees_index(
    mut trees: Vec<&IndexedPack>,
    marked: &[&MarkedPack],
    damaged: &HashSet<(PackId, Id)>,
    stored: &HashMap<PackId, u64>,
) -> Index {
    trees.sort_by_key(|p| p.id);
    let marked = marked.iter().filter(|m| m.pack.kind == BlobType::Tree);
    let absent = absent(trees.iter().copied(), stored);
    let distrusted = damaged.union(&absent).copied().collect();
    readable_index(trees, marked.copied(), &distrusted, &absent)
}

/// The resolved packs as check's plan takes them: by id.
pub(crate) fn check_packs(active: &[PackSummary], details: Vec<PackDetail>) -> Vec<CheckPack> {
    let mut out: Vec<CheckPack> = active
        .iter()
        .zip(details)
        .map(|(s, d)| CheckPack {
            id: s.id,
            size: d.size,
            blobs: d.blobs,
            absent: d.absent,
        })
        .collect();
    out.sort_by_key(|p| p.id);
    out
}

/// Reads what check needs: what is stored, not what a cache remembers.
pub(crate) fn survey(
    repo: &Repository,
    options: &CheckOptions,
    progress: &dyn PhaseProgress,
) -> Result<Survey> {
    // Index files are listed before the packs: a pack an index file names
    // was stored before that file, so it is in the listing.
    let ids = repo.index_file_ids()?;
    let locks = repo.locks()?;
    let stored: HashMap<PackId, u64> = repo
        .pack_files()?
        .into_iter()
        .map(|(id, l)| (id, l.size))
        .collect();
    let damaged: HashSet<(PackId, Id)> = locks.damaged().copied().collect();
    let dir = options.spill_dir(repo);
    let memory = options.max_memory;
    let reads = !matches!(options.read_data, super::ReadData::None);
    let mut resolver = Resolver::for_check(&dir, memory / 3 * 2, &damaged, reads);
    progress.phase("index files", ids.len() as u64, Unit::Items);
    let mut bad_index_files = Vec::new();
    let mut heads: Vec<(Id, Vec<Id>)> = Vec::new();
    // Tree packs are kept whole: the walk reads trees through them.
    let mut tree_packs: Vec<(u32, IndexedPack)> = Vec::new();
    for batch in ids.chunks(FILES_AT_ONCE) {
        let got = repo.read_index_files(batch, false)?;
        progress.advance(batch.len() as u64);
        bad_index_files.extend(got.unreadable);
        for (id, f) in got.files {
            let file = heads.len() as u32;
            heads.push((id, f.supersedes));
            for p in f.packs {
                let seq = resolver.add_indexed_sized(file, &p, stored.get(&p.id).copied())?;
                if p.kind == BlobType::Tree {
                    tree_packs.push((seq, p));
                }
            }
        }
    }
    let superseded: HashSet<Id> = heads.iter().flat_map(|h| h.1.iter().copied()).collect();
    let superseded: HashSet<u32> = (0..heads.len() as u32)
        .filter(|i| superseded.contains(&heads[*i as usize].0))
        .collect();
    let indexed: HashSet<PackId> = resolver.settle(&superseded).into_iter().collect();
    tree_packs.retain(|(seq, _)| resolver.is_active(*seq));
    let mut temporary = Vec::new();
    for dir in layout::DIRS {
        let t = repo.store().temporary_files(dir)?;
        if !t.is_empty() {
            temporary.push((dir, t.len(), t.iter().map(|t| t.size).sum()));
        }
    }
    let marked: Vec<MarkedPack> = locks.marked().cloned().collect();
    let readable_marked = marked_in_order(&marked, &stored, &indexed);
    for m in &readable_marked {
        resolver.add_marked(&m.pack)?;
    }
    let trees_index = trees_index(
        tree_packs.iter().map(|(_, p)| p).collect(),
        &readable_marked,
        &damaged,
        &stored,
    );
    drop(tree_packs);
    let list = repo.snapshot_list_from(false)?;
    let mut used = IdSorter::new(&dir, memory / 3 / 32);
    let walked = {
        let reader = BlobReader::new(repo.master_key(), &trees_index, repo.store());
        walk::used_blobs_into(&reader, &list.entries, progress, true, &mut used)?
    };
    let used = used.finish().map_err(from_core)?;
    let resolved = resolver.resolve(used.map(|r| r.map_err(from_core)))?;
    // Every distinct used id is a tree the walk added or a data blob.
    let distinct = resolved.used + resolved.missing.len();
    Ok(Survey {
        bad_index_files,
        bad_locks: locks.unreadable,
        active: check_packs(&resolved.active, resolved.details),
        marked,
        marked_live: resolved.marked_live,
        damaged,
        read_at: resolved.winners,
        stored,
        temporary,
        missing: resolved.missing,
        trees_index,
        entries: resolved.entries,
        bad_snapshots: list.unreadable,
        snapshots: list.entries,
        trees: walked.trees.len(),
        data: distinct - walked.tree_blobs,
        bad_trees: walked.bad_trees,
    })
}
