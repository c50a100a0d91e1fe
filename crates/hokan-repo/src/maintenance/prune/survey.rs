//! Prune's survey: everything its plan depends on, read from the
//! repository once. Nothing here changes anything.

use std::collections::{HashMap, HashSet};

use hokan_core::{BlobReader, Id, Index, PackId, PackedBlob};

use super::super::{PhaseProgress, readable_index, walk};
use super::PruneOptions;
use crate::error::{Error, Result};
use crate::index_file::{IndexedPack, take_live_packs};
use crate::locks::{LockList, LockObject, MarkedPack};
use crate::repository::Repository;
use crate::store::Listed;

/// What prune read: the index, the lock objects, the store's packs and the
/// blobs the snapshots use. [`plan`](super::plan::plan) decides from this
/// alone.
pub(crate) struct Survey {
    /// Unix seconds when the survey began.
    pub now: i64,
    /// The index files read, without their packs (those are in `active`).
    pub files: Vec<FileHead>,
    /// Packs the index lists.
    pub active: Vec<IndexedPack>,
    /// Packs marked for deletion that the index does not list, each with
    /// its earliest mark, by id.
    pub marked: HashMap<PackId, MarkedPack>,
    /// The deletion markers (lock objects) that hold them.
    pub markers: Vec<Id>,
    /// Damage records (lock objects) and the copies each names.
    pub damage_records: Vec<(Id, Vec<(PackId, Id)>)>,
    /// Copies recorded as damaged.
    pub damaged: HashSet<(PackId, Id)>,
    /// Copies not to be trusted: damaged ones, and those of indexed packs
    /// that are not in the store.
    pub distrusted: HashSet<(PackId, Id)>,
    /// The packs in the store.
    pub stored: HashMap<PackId, Listed>,
    /// Everything readable (live packs first, then marked ones that still
    /// exist; distrusted copies lose to any other): where each blob
    /// resolves, as readers resolve it.
    pub full: Index,
    /// Blobs the snapshots use.
    pub used: HashSet<Id>,
    /// Snapshots read.
    pub snapshots: usize,
    /// When the oldest running backup started (`i64::MAX`: none runs).
    pub oldest_writer: i64,
    /// Immutable mode: the object lock's retention, in seconds.
    pub retention: Option<u64>,
    /// The lock objects, for expiring those of finished processes.
    pub locks: LockList,
}

/// An index file as the prune's last steps need it: its packs are moved
/// into [`Survey::active`], so every pack is held once.
pub(crate) struct FileHead {
    /// The file's id.
    pub id: Id,
    /// The files it replaces.
    pub supersedes: Vec<Id>,
    /// Whether it listed any pack.
    pub lists_packs: bool,
}

impl Survey {
    /// A survey of what is already known, with the index built from it as
    /// readers build theirs (for the plan's tests).
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        now: i64,
        active: Vec<IndexedPack>,
        marked: Vec<MarkedPack>,
        damaged: HashSet<(PackId, Id)>,
        stored: HashMap<PackId, Listed>,
        used: HashSet<Id>,
        oldest_writer: i64,
    ) -> Survey {
        let marked: HashMap<PackId, MarkedPack> =
            marked.into_iter().map(|m| (m.pack.id, m)).collect();
        let absent = absent(&active, &stored);
        let distrusted = damaged.union(&absent).copied().collect();
        let full = readable_index(
            &active,
            marked.values().filter(|m| stored.contains_key(&m.pack.id)),
            &distrusted,
            &absent,
        );
        Survey {
            now,
            files: Vec::new(),
            active,
            marked,
            markers: Vec::new(),
            damage_records: Vec::new(),
            damaged,
            distrusted,
            stored,
            full,
            used,
            snapshots: 0,
            oldest_writer,
            retention: None,
            locks: LockList::default(),
        }
    }

    /// Whether blob `b` of pack `p` is one a snapshot reads: used, and
    /// resolved to this pack. Other copies (two writers stored it, or a
    /// damaged copy beside an intact one) are dead weight. A damaged copy
    /// with no intact one elsewhere is what the index resolves to: it keeps
    /// its pack, which holds every byte of that blob that is left, until
    /// the data is stored again or no snapshot needs it.
    pub fn live_in(&self, p: &IndexedPack, b: &PackedBlob) -> bool {
        self.used.contains(&b.id) && self.full.get(&b.id).is_some_and(|l| l.pack == p.id)
    }

    /// Whether a pack holds a copy recorded as damaged.
    pub fn has_damage(&self, p: &IndexedPack) -> bool {
        p.blobs.iter().any(|b| self.damaged.contains(&(p.id, b.id)))
    }

    /// The size of a stored pack (0 if it is not in the store).
    pub fn size_of(&self, id: &PackId) -> u64 {
        self.stored.get(id).map_or(0, |l| l.size)
    }
}

/// The copies of every indexed pack that is not in the store.
fn absent(active: &[IndexedPack], stored: &HashMap<PackId, Listed>) -> HashSet<(PackId, Id)> {
    active
        .iter()
        .filter(|p| !stored.contains_key(&p.id))
        .flat_map(|p| p.blobs.iter().map(|b| (p.id, b.id)))
        .collect()
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
    let crate::objects::IndexFiles {
        mut files,
        unreadable: bad_files,
    } = repo.index_files()?;
    if let Some(u) = bad_files.first() {
        return refuse(format!(
            "index file {} ({}: {})",
            u.id.short(),
            u.path,
            u.reason
        ));
    }
    let heads = files
        .iter()
        .map(|(id, f)| FileHead {
            id: *id,
            supersedes: f.supersedes.clone(),
            lists_packs: !f.packs.is_empty(),
        })
        .collect();
    let active = take_live_packs(&mut files);
    drop(files);
    let seen: HashSet<PackId> = active.iter().map(|p| p.id).collect();
    let locks = repo.locks()?;
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
    let damaged: HashSet<(PackId, Id)> = locks.damaged().copied().collect();
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
    let stored = repo.pack_files()?;
    let absent = absent(&active, &stored);
    let distrusted = damaged.union(&absent).copied().collect();
    let full = readable_index(
        &active,
        marked.values().filter(|m| stored.contains_key(&m.pack.id)),
        &distrusted,
        &absent,
    );
    let list = repo.snapshot_list()?;
    if let Some(u) = list.unreadable.first() {
        return refuse(format!(
            "snapshot {} ({}: {})",
            u.id.short(),
            u.path,
            u.reason
        ));
    }
    let reader = BlobReader::new(repo.master_key(), &full, repo.store());
    let used = walk::used_blobs(&reader, &list.entries, progress, false)?.blobs;
    // Packs in no index are deleted: if a snapshot needs a blob the index
    // does not know, its pack may be one of them. Stop instead.
    if let Some(missing) = used.iter().find(|id| !full.contains(id)) {
        return Err(Error::NotIndexed {
            what: format!("blob {}, which a snapshot needs,", missing.short()),
        });
    }
    Ok(Survey {
        now,
        files: heads,
        active,
        marked,
        markers,
        damage_records,
        damaged,
        distrusted,
        stored,
        full,
        used,
        snapshots: list.entries.len(),
        oldest_writer,
        retention: repo.store().immutable(),
        locks,
    })
}
