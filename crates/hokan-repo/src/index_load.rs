//! Loading the index: every index file merged into one in-memory
//! [`Index`], with what the lock objects say about packs and blobs.
//!
//! * Index files another file supersedes (a prune or repair replaced them
//!   and was interrupted before deleting them) are left out.
//! * Packs marked for deletion stay readable, hidden from dedup: a backup
//!   that ran during the prune may use them.
//! * Blobs with a damage record are left out of the pack that holds the
//!   damaged copy; where no other copy exists they stay readable (a read
//!   reports the damage) but are never deduped against, so the next backup
//!   of the same data stores it again.
//! * An index file that cannot be read is skipped and reported: its packs
//!   look unindexed, so backups store their data again and `check` and
//!   `prune` say what to repair.
//! * With a local cache the merged index is not loaded but mapped: a run
//!   file in the cache, searched in place (see [`crate::index_cache`]).

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use hokan_core::pack::group_members;
use hokan_core::{BlobReader, BlobType, Id, Index, IndexBuilder, PackId, PackedBlob, Tree, TreeId};

use crate::cache::Cache;
use crate::error::{Result, from_core};
use crate::index_file::IndexFile;
use crate::layout;
use crate::locks::LockList;
use crate::object::{self, Kind};
use crate::objects::Unreadable;
use crate::repository::{CacheMode, Repository};

/// A repository with its index loaded: ready to back up and restore.
pub struct IndexedRepository {
    pub(crate) repo: Repository,
    pub(crate) index: Index,
    /// The live index files it was loaded from (and written since).
    pub(crate) index_files: Vec<Id>,
    /// When the index was loaded (Unix seconds).
    pub(crate) loaded_at: i64,
    pub(crate) problems: Vec<Unreadable>,
    /// The damage the index knew when loaded (recorded already): a session
    /// records only what it finds beyond it.
    pub(crate) recorded: HashSet<(PackId, Id)>,
}

impl std::fmt::Debug for IndexedRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexedRepository")
            .field("repo", &self.repo)
            .field("blobs", &self.index.len())
            .finish()
    }
}

impl std::ops::Deref for IndexedRepository {
    type Target = Repository;
    fn deref(&self) -> &Repository {
        &self.repo
    }
}

/// What one pass over the index files found.
pub(crate) struct Built {
    pub(crate) index: Index,
    pub(crate) present: Vec<Id>,
    pub(crate) superseded: HashSet<Id>,
    pub(crate) unreadable: Vec<Unreadable>,
}

impl Repository {
    /// Loads every index file, ready to read and write data.
    pub fn load_index(self) -> Result<IndexedRepository> {
        let loaded_at = chrono::Utc::now().timestamp();
        let locks = self.locks()?;
        let ids = self.list_ids(Kind::Index)?;
        // With a cache, the index is a mapped run there (crate::index_cache).
        // Without one (`--no-cache`, or none could be made) the run is built
        // in a temporary directory all the same, so memory stays bounded
        // whatever the repository's size. Memory is the last resort.
        let cached = match &self.cache {
            Some(cache) => self.build_index_cached(cache, &ids, &locks).ok(),
            None if self.options.cache == CacheMode::Memory => None,
            None => self.build_index_temporary(&ids, &locks),
        };
        let mut built = match cached {
            Some(built) => built,
            None => self.build_index(&ids, &HashSet::new(), &locks)?,
        };
        if built.superseded.iter().any(|id| built.present.contains(id)) {
            // A prune or repair replaced some files but was interrupted
            // before deleting them: load again without the replaced ones.
            let skip = built.superseded.clone();
            built = self.build_index(&ids, &skip, &locks)?;
            built.superseded = skip;
        }
        let mut problems = built.unreadable;
        problems.extend(locks.unreadable);
        Ok(IndexedRepository {
            recorded: built.index.damaged().into_iter().collect(),
            index_files: built
                .present
                .into_iter()
                .filter(|id| !built.superseded.contains(id))
                .collect(),
            repo: self,
            index: built.index,
            loaded_at,
            problems,
        })
    }

    /// The index as a run in a temporary directory, which is removed as
    /// soon as the run is mapped: the mapping keeps the file readable, and
    /// its disk space is freed when the process ends. None if it cannot be
    /// written (a full or read-only temporary directory).
    fn build_index_temporary(&self, ids: &[Id], locks: &LockList) -> Option<Built> {
        let dir = tempfile::Builder::new()
            .prefix("hokan-index-")
            .tempdir()
            .ok()?;
        let cache = Cache::index_only(dir.path(), &self.config().repo_id).ok()?;
        self.build_index_cached(&cache, ids, locks).ok()
    }

    fn build_index(&self, ids: &[Id], skip: &HashSet<Id>, locks: &LockList) -> Result<Built> {
        let keep: Vec<Id> = ids
            .iter()
            .filter(|id| !skip.contains(id))
            .copied()
            .collect();
        let mut fetched = self.fetch(Kind::Index, &keep)?;
        // Postcard spends about 45 bytes on an entry: size the array once.
        let stored: usize = fetched
            .iter()
            .flatten()
            .filter_map(|r| r.as_ref().ok())
            .map(|b| b.len())
            .sum();
        let mut builder = IndexBuilder::with_capacity(stored / 42, stored / 42 / 8);
        let damaged: HashSet<(PackId, Id)> = locks.damaged().copied().collect();
        let mut damaged_at: HashMap<Id, (PackId, BlobType, PackedBlob, bool)> = HashMap::new();
        let mut built = Built {
            index: Index::default(),
            present: Vec::new(),
            superseded: HashSet::new(),
            unreadable: Vec::new(),
        };
        // Decode a batch of files in parallel, fold it in, free it: only a
        // batch of decoded files is ever in memory beside the index.
        for (batch_ids, batch) in keep.chunks(32).zip(fetched.chunks_mut(32)) {
            let decoded: Vec<(Id, Result<IndexFile>)> = batch_ids
                .par_iter()
                .zip(batch.par_iter_mut())
                .filter_map(|(id, got)| {
                    let what = format!("index file {}", id.short());
                    let r = got
                        .take()?
                        .and_then(|b| object::open(&self.key, Kind::Index, &b, &what));
                    Some((*id, r))
                })
                .collect();
            for (id, file) in decoded {
                let file = match file {
                    Ok(f) => f,
                    Err(e) => {
                        built.unreadable.push(Unreadable {
                            id,
                            path: layout::object(Kind::Index, &id),
                            reason: e.to_string(),
                        });
                        continue;
                    }
                };
                built.superseded.extend(file.supersedes.iter().copied());
                built.present.push(id);
                for p in &file.packs {
                    if damaged.is_empty()
                        || !p.blobs.iter().any(|b| damaged.contains(&(p.id, b.id)))
                    {
                        builder.add_pack(p.id, p.kind, &p.blobs);
                        continue;
                    }
                    for (b, group) in p.blobs.iter().zip(group_members(&p.blobs)) {
                        if damaged.contains(&(p.id, b.id)) {
                            damaged_at.entry(b.id).or_insert((p.id, p.kind, *b, group));
                        }
                    }
                    builder.add_pack_filtered(p.id, p.kind, &p.blobs, |b| {
                        !damaged.contains(&(p.id, b.id))
                    });
                }
            }
        }
        // Packs marked for deletion stay readable but are not deduped
        // against; added last, so a live copy of a blob wins. Their damaged
        // copies lose to intact ones too.
        for m in locks.marked() {
            let p = &m.pack;
            for (b, group) in p.blobs.iter().zip(group_members(&p.blobs)) {
                if damaged.contains(&(p.id, b.id)) {
                    damaged_at.entry(b.id).or_insert((p.id, p.kind, *b, group));
                }
            }
            builder.add_hidden_pack_filtered(p.id, p.kind, &p.blobs, |b| {
                !damaged.contains(&(p.id, b.id))
            });
        }
        let mut index = builder.build();
        add_damaged_copies(&mut index, damaged_at.into_values());
        built.index = index;
        Ok(built)
    }
}

/// Damaged copies of blobs left out of the index: a blob with another copy
/// resolves to it, and writers dedup against that intact copy; one without
/// stays readable where it is, so a read says it is damaged rather than
/// missing, and is marked damaged, so writers store it afresh. (Marking a
/// blob that resolves to an intact copy would make a session record that
/// intact copy as damaged.)
pub(crate) fn add_damaged_copies(
    index: &mut Index,
    copies: impl IntoIterator<Item = (PackId, BlobType, PackedBlob, bool)>,
) {
    for (pack, kind, b, group) in copies {
        if !index.contains(&b.id) {
            let p = index.add_pack(pack, kind);
            index.insert_record(b.id, p, b.offset, b.length, group);
            index.mark_damaged(&b.id);
        }
    }
}

impl IndexedRepository {
    /// A repository with an index built elsewhere (prune's view of the
    /// packs it keeps).
    pub(crate) fn from_parts(repo: Repository, index: Index) -> Self {
        IndexedRepository {
            repo,
            index,
            index_files: Vec::new(),
            loaded_at: chrono::Utc::now().timestamp(),
            problems: Vec::new(),
            recorded: HashSet::new(),
        }
    }

    /// Gives back the repository.
    pub fn into_inner(self) -> Repository {
        self.repo
    }

    /// The merged index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The live index files it was loaded from (and written since).
    pub fn index_files(&self) -> &[Id] {
        &self.index_files
    }

    /// Index files and lock objects that could not be read while loading:
    /// warnings for the caller to show.
    pub fn problems(&self) -> &[Unreadable] {
        &self.problems
    }

    /// A reader for blobs of this repository.
    pub fn reader(&self) -> BlobReader<'_> {
        BlobReader::new(&self.repo.key, &self.index, &self.repo.store)
    }

    /// Reads and decodes a tree.
    pub fn read_tree(&self, id: &TreeId) -> Result<Tree> {
        hokan_core::browse::read_tree(&self.reader(), id).map_err(from_core)
    }

    /// The trees that only their parents carry (tree version 3), which no
    /// index lists: found by walking every snapshot's trees, so a tool
    /// such as `cat tree` can name one by its id. Once found, each opens
    /// with [`read_tree`](Self::read_tree).
    pub fn carried_trees(&self) -> Result<Vec<TreeId>> {
        let snapshots = self.snapshots()?;
        let walked = crate::maintenance::walk::used_blobs(&self.reader(), &snapshots, &(), false)?;
        Ok(walked
            .trees
            .into_iter()
            .filter(|t| !walked.blobs.contains(t))
            .map(TreeId)
            .collect())
    }
}
