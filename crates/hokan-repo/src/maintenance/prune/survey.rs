//! Prune's survey: everything its plan depends on, read from the
//! repository once. Nothing here changes anything.

use std::collections::{HashMap, HashSet};

use hokan_core::index::IdSorter;
use hokan_core::{BlobReader, BlobType, Id, PackId};

use super::super::resolve::{PackSummary, Resolved, Resolver};
use super::super::{FILES_AT_ONCE, PhaseProgress, readable_index, walk};
use super::PruneOptions;
use crate::error::{Error, Result, from_core};
use crate::index_file::IndexedPack;
use crate::locks::{LockList, LockObject, MarkedPack};
use crate::repository::Repository;
use crate::store::Listed;

/// What prune read: the index, the lock objects, the store's packs and,
/// for every pack, what the blobs the snapshots use make of it.
/// [`plan`](super::plan::plan) decides from this alone. Nothing here holds
/// one entry a blob: the packs' blob lists are read again, a file at a
/// time, when they are rewritten.
pub(crate) struct Survey {
    /// Unix seconds when the survey began.
    pub now: i64,
    /// The index files read, in order.
    pub files: Vec<FileHead>,
    /// The packs the index lists, in order, and how much of each is live.
    pub resolved: Resolved,
    /// Packs marked for deletion that the index does not list, each with
    /// its earliest mark, by id.
    pub marked: HashMap<PackId, MarkedPack>,
    /// The deletion markers (lock objects) that hold them.
    pub markers: Vec<Id>,
    /// Damage records (lock objects) and the copies each names.
    pub damage_records: Vec<(Id, Vec<(PackId, Id)>)>,
    /// Copies recorded as damaged.
    pub damaged: HashSet<(PackId, Id)>,
    /// The packs in the store.
    pub stored: HashMap<PackId, Listed>,
    /// Snapshots read.
    pub snapshots: usize,
    /// When the oldest running backup started (`i64::MAX`: none runs).
    pub oldest_writer: i64,
    /// Immutable mode: the object lock's retention, in seconds.
    pub retention: Option<u64>,
    /// The lock objects, for expiring those of finished processes.
    pub locks: LockList,
}

/// An index file as the prune's last steps need it: its packs are read
/// again when the index is rewritten.
pub(crate) struct FileHead {
    /// The file's id.
    pub id: Id,
    /// The files it replaces.
    pub supersedes: Vec<Id>,
    /// Whether it listed any pack.
    pub lists_packs: bool,
}

impl Survey {
    /// The packs the index lists, in order.
    pub fn active(&self) -> &[PackSummary] {
        &self.resolved.active
    }

    /// Whether a copy is not to be trusted: recorded as damaged, or in a
    /// pack that is not in the store.
    pub fn distrusted(&self, pack: &PackId, blob: &Id) -> bool {
        !self.stored.contains_key(pack) || self.damaged.contains(&(*pack, *blob))
    }

    /// The size of a stored pack (0 if it is not in the store).
    pub fn size_of(&self, id: &PackId) -> u64 {
        self.stored.get(id).map_or(0, |l| l.size)
    }
}

/// Calls `f` with every pack the index lists, in the survey's order (files
/// in order, superseded ones skipped, each pack's first listing), reading
/// the files again a batch at a time.
pub(crate) fn for_each_live_pack(
    repo: &Repository,
    files: &[FileHead],
    mut f: impl FnMut(IndexedPack) -> Result<()>,
) -> Result<()> {
    let superseded: HashSet<Id> = files
        .iter()
        .flat_map(|f| f.supersedes.iter().copied())
        .collect();
    let ids: Vec<Id> = files
        .iter()
        .filter(|h| h.lists_packs && !superseded.contains(&h.id))
        .map(|h| h.id)
        .collect();
    let mut seen = HashSet::new();
    for batch in ids.chunks(FILES_AT_ONCE) {
        let got = repo.read_index_files(batch, true)?;
        if let Some(u) = got.unreadable.first() {
            return Err(Error::corrupted(
                format!("index file {} ({})", u.id.short(), u.path),
                format!("it could be read a moment ago and now cannot: {}", u.reason),
            ));
        }
        if got.files.len() != batch.len() {
            return Err(Error::corrupted(
                "an index file".to_string(),
                "it was deleted while prune ran".to_string(),
            ));
        }
        for (_, file) in got.files {
            for p in file.packs {
                if seen.insert(p.id) {
                    f(p)?;
                }
            }
        }
    }
    Ok(())
}

/// Reads what prune needs. Prune deletes what nothing needs, so it must be
/// able to read everything that could say what is needed: an unreadable
/// index file, lock object, snapshot or tree stops it with nothing changed.
pub(crate) fn survey(
    repo: &Repository,
    options: &PruneOptions,
    progress: &dyn PhaseProgress,
) -> Result<Survey> {
    let now = chrono::Utc::now().timestamp();
    let refuse = |what: String| {
        Err(Error::corrupted(
            what,
            "it cannot be read, so prune cannot know what it needs; nothing was deleted",
        ))
    };
    // Index files are listed before the packs: a pack an index file names
    // was stored before that file, so it is in the listing.
    let ids = repo.index_file_ids()?;
    let locks = repo.locks()?;
    let stored = repo.pack_files()?;
    let damaged: HashSet<(PackId, Id)> = locks.damaged().copied().collect();
    let dir = options.spill_dir(repo);
    let memory = options.max_memory;
    let mut resolver = Resolver::new(&dir, memory / 3 * 2, &damaged);
    let mut heads: Vec<FileHead> = Vec::new();
    // Tree packs are kept whole: the walk reads trees through them. Trees
    // are a small part of the blobs (a tree lists many).
    let mut tree_packs: Vec<(u32, IndexedPack)> = Vec::new();
    for batch in ids.chunks(FILES_AT_ONCE) {
        let got = repo.read_index_files(batch, true)?;
        if let Some(u) = got.unreadable.first() {
            return refuse(format!(
                "index file {} ({}: {})",
                u.id.short(),
                u.path,
                u.reason
            ));
        }
        for (id, f) in got.files {
            let file = heads.len() as u32;
            heads.push(FileHead {
                id,
                supersedes: f.supersedes,
                lists_packs: !f.packs.is_empty(),
            });
            for p in f.packs {
                let seq = resolver.add_indexed(file, &p, stored.contains_key(&p.id))?;
                if p.kind == BlobType::Tree {
                    tree_packs.push((seq, p));
                }
            }
        }
    }
    let superseded: HashSet<Id> = heads
        .iter()
        .flat_map(|f| f.supersedes.iter().copied())
        .collect();
    let superseded: HashSet<u32> = (0..heads.len() as u32)
        .filter(|i| superseded.contains(&heads[*i as usize].id))
        .collect();
    let seen: HashSet<PackId> = resolver.settle(&superseded).into_iter().collect();
    tree_packs.retain(|(seq, _)| resolver.is_active(*seq));
    if let Some(u) = locks.unreadable.first() {
        return refuse(format!(
            "lock object {} ({}: {})",
            u.id.short(),
            u.path,
            u.reason
        ));
    }
    // Backups running now may depend on any pack that was live when they
    // loaded their index: such packs may be marked, but not deleted.
    let writers = locks.running_writers(now);
    if options.instant_delete && !options.dry_run && !writers.is_empty() {
        return Err(Error::Locked(format!(
            "{} is running (and {} more): deleting packs at once could remove data it \
             depends on; nothing was deleted. Prune without instant deletion (packs are \
             deleted after the grace period), or wait for the backup to finish",
            writers[0],
            writers.len() - 1
        )));
    }
    let oldest_writer = writers.iter().map(|w| w.started).min().unwrap_or(i64::MAX);
    let mut markers = Vec::new();
    let mut damage_records = Vec::new();
    let mut marked: HashMap<PackId, MarkedPack> = HashMap::new();
    for (id, o) in &locks.objects {
        match o {
            LockObject::Deletion { marked: list } => {
                markers.push(*id);
                // A pack both indexed and marked (an interrupted prune)
                // counts as indexed.
                for m in list.iter().filter(|m| !seen.contains(&m.pack.id)) {
                    let e = marked.entry(m.pack.id).or_insert_with(|| m.clone());
                    e.marked_at = e.marked_at.min(m.marked_at);
                }
            }
            LockObject::Damaged { blobs, .. } => damage_records.push((*id, blobs.clone())),
            _ => {}
        }
    }
    drop(seen);
    let readable_marked = marked_in_order(&marked, &stored);
    for m in &readable_marked {
        resolver.add_marked(&m.pack)?;
    }
    let list = repo.snapshot_list()?;
    if let Some(u) = list.unreadable.first() {
        return refuse(format!(
            "snapshot {} ({}: {})",
            u.id.short(),
            u.path,
            u.reason
        ));
    }
    let mut used = IdSorter::new(&dir, memory / 3 / 32);
    {
        let trees: Vec<&IndexedPack> = tree_packs.iter().map(|(_, p)| p).collect();
        let tree_marked = readable_marked
            .iter()
            .filter(|m| m.pack.kind == BlobType::Tree);
        let absent: HashSet<(PackId, Id)> = absent(trees.iter().copied(), &stored);
        let distrusted = damaged.union(&absent).copied().collect();
        let index = readable_index(trees, tree_marked.copied(), &distrusted, &absent);
        let reader = BlobReader::new(repo.master_key(), &index, repo.store());
        walk::used_blobs_into(&reader, &list.entries, progress, false, &mut used)?;
    }
    drop(tree_packs);
    // Packs in no index are deleted: if a snapshot needs a blob the index
    // does not know, its pack may be one of them. `resolve` stops then.
    let used = used.finish().map_err(from_core)?;
    let resolved = resolver.resolve(used.map(|r| r.map_err(from_core)))?;
    Ok(Survey {
        now,
        files: heads,
        resolved,
        marked,
        markers,
        damage_records,
        damaged,
        stored,
        snapshots: list.entries.len(),
        oldest_writer,
        retention: repo.store().immutable(),
        locks,
    })
}

/// Marked packs still in the store, in the order readers' indexes take
/// them (by pack id: any fixed order would do, readers choose among
/// marked duplicates arbitrarily).
pub(crate) fn marked_in_order<'a>(
    marked: &'a HashMap<PackId, MarkedPack>,
    stored: &HashMap<PackId, Listed>,
) -> Vec<&'a MarkedPack> {
    let mut out: Vec<&MarkedPack> = marked
        .values()
        .filter(|m| stored.contains_key(&m.pack.id))
        .collect();
    out.sort_by_key(|m| m.pack.id);
    out
}

/// The copies of every indexed pack that is not in the store.
fn absent<'a>(
    active: impl IntoIterator<Item = &'a IndexedPack>,
    stored: &HashMap<PackId, Listed>,
) -> HashSet<(PackId, Id)> {
    active
        .into_iter()
        .filter(|p| !stored.contains_key(&p.id))
        .flat_map(|p| p.blobs.iter().map(|b| (p.id, b.id)))
        .collect()
}

#[cfg(test)]
pub(crate) mod parts {
    //! Surveys of what is already known (for the plan's tests): through
    //! the bounded resolver, as prune runs, and through the in-memory
    //! index it replaced, as the reference.

    use super::*;
    use crate::maintenance::resolve::Resolved;
    use hokan_core::Index;

    /// What a test knows of a repository.
    pub struct Parts {
        pub now: i64,
        pub active: Vec<IndexedPack>,
        pub marked: Vec<MarkedPack>,
        pub damaged: HashSet<(PackId, Id)>,
        pub stored: HashMap<PackId, Listed>,
        pub used: HashSet<Id>,
        pub oldest_writer: i64,
    }

    impl Parts {
        fn marked(&self) -> HashMap<PackId, MarkedPack> {
            self.marked.iter().map(|m| (m.pack.id, m.clone())).collect()
        }

        /// Everything readable, as readers build their index.
        pub fn full(&self) -> Index {
            let marked = self.marked();
            let absent = absent(&self.active, &self.stored);
            let distrusted = self.damaged.union(&absent).copied().collect();
            readable_index(
                &self.active,
                marked_in_order(&marked, &self.stored),
                &distrusted,
                &absent,
            )
        }

        /// The used blobs some copy holds (a survey stops on any other).
        fn used(&self, full: &Index) -> Vec<Id> {
            let mut used: Vec<Id> = self
                .used
                .iter()
                .filter(|b| full.contains(b))
                .copied()
                .collect();
            used.sort();
            used
        }

        fn survey(&self, resolved: Resolved) -> Survey {
            Survey {
                now: self.now,
                files: Vec::new(),
                resolved,
                marked: self.marked(),
                markers: Vec::new(),
                damage_records: Vec::new(),
                damaged: self.damaged.clone(),
                stored: self.stored.clone(),
                snapshots: 0,
                oldest_writer: self.oldest_writer,
                retention: None,
                locks: LockList::default(),
            }
        }

        /// The survey as prune makes it, its sorts within `memory` bytes
        /// (at least 1024 records each).
        pub fn bounded(&self, memory: usize) -> Survey {
            let dir = std::env::temp_dir();
            let mut r = Resolver::new(&dir, memory, &self.damaged);
            for p in &self.active {
                r.add_indexed(0, p, self.stored.contains_key(&p.id))
                    .unwrap();
            }
            r.settle(&HashSet::new());
            let marked = self.marked();
            for m in marked_in_order(&marked, &self.stored) {
                r.add_marked(&m.pack).unwrap();
            }
            let used = self.used(&self.full());
            let resolved = r.resolve(used.into_iter().map(Ok)).unwrap();
            self.survey(resolved)
        }

        /// The survey as prune made it with every copy in memory.
        pub fn reference(&self) -> Survey {
            let full = self.full();
            let used: HashSet<Id> = self.used(&full).into_iter().collect();
            let live_in = |p: &IndexedPack, b: &hokan_core::PackedBlob| {
                used.contains(&b.id) && full.get(&b.id).is_some_and(|l| l.pack == p.id)
            };
            let active = self
                .active
                .iter()
                .map(|p| {
                    let (live, total) = super::super::record_bytes(p, |b| live_in(p, b));
                    let stored = self.stored.contains_key(&p.id);
                    let undamaged = p.blobs.iter().map(|b| b.id);
                    PackSummary {
                        id: p.id,
                        stored,
                        live,
                        total,
                        damaged: p.blobs.iter().any(|b| self.damaged.contains(&(p.id, b.id))),
                        undamaged: match stored {
                            true => Vec::new(),
                            false => undamaged
                                .filter(|b| !self.damaged.contains(&(p.id, *b)))
                                .collect(),
                        },
                    }
                })
                .collect();
            let marked_live = self
                .marked
                .iter()
                .filter(|m| self.stored.contains_key(&m.pack.id))
                .filter(|m| m.pack.blobs.iter().any(|b| live_in(&m.pack, b)))
                .map(|m| m.pack.id)
                .collect();
            self.survey(Resolved::from_summaries(active, marked_live, used.len()))
        }
    }
}
