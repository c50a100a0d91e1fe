//! The merged index kept in the local cache as one run file
//! ([`hokan_core::index::mapped`]): sorted, immutable, memory-mapped and
//! searched in place, so opening a repository with a warm cache reads only
//! the index files written since the run was, and a process holds in
//! memory only what is new, whatever the repository's size.
//!
//! * The run is `<cache>/index.run`. It records the repository id, the
//!   index files merged into it and those they superseded, and a digest of
//!   the damage records in force when it was written (its entries leave
//!   damaged copies out, so other damage records need another run).
//! * Opening checks the file whole (length, version, checksum) and its
//!   records: a torn file, another repository's, other damage records, or
//!   a merged index file that is gone (a prune or repair replaced it), and
//!   the run is built again from every index file. New index files are
//!   loaded into memory above the run; once they hold [`MERGE_AT`]
//!   entries the run is rewritten with them.
//! * Without a usable run, it is built streaming: index files are fetched
//!   and decoded a batch at a time, their entries sorted in runs of at most
//!   [`SORT_MEMORY`] entries spilled to disk, then merged.
//! * Files are written under a temporary name and renamed, never changed in
//!   place: processes sharing a cache directory each map a whole file, old
//!   or new; the last rename wins, and any run is correct for what it
//!   records, so a loser's work costs only time.
//! * Packs marked for deletion and damaged copies stay in memory above the
//!   run, as they were: they change with the lock objects, not the index.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use hokan_core::index::{MappedRun, RunBuilder, RunMeta};
use hokan_core::{BlobType, Id, Index, IndexBuilder, PackId, PackedBlob};

use crate::cache::Cache;
use crate::error::Result;
use crate::index_file::{IndexFile, IndexedPack};
use crate::index_load::{Built, add_damaged_copies};
use crate::layout;
use crate::locks::LockList;
use crate::object::{self, Kind};
use crate::objects::Unreadable;
use crate::repository::Repository;

/// The run file's name in a repository's cache directory.
pub const RUN_FILE: &str = "index.run";
/// Entries the external sort holds in memory (44 bytes each: 44 MiB).
pub const SORT_MEMORY: usize = 1 << 20;
/// Entries of new index files beyond which opening rewrites the run.
pub const MERGE_AT: usize = 1 << 18;
/// Index files fetched and decoded at a time, at most ...
const BATCH: usize = 64;
/// ... and as many as hold about this many stored bytes (a file is
/// decoded whole, at about twice its stored size; files are at most
/// 256 Ki blobs since writers cap them, older ones may be larger).
const BATCH_BYTES: usize = 16 << 20;

type DamagedAt = HashMap<Id, (PackId, BlobType, PackedBlob, bool)>;

/// What every load needs: the damage records and where they leave copies.
struct Damage {
    records: HashSet<(PackId, Id)>,
    at: DamagedAt,
}

impl Damage {
    /// Notes a pack's damaged copies; returns whether it has any.
    fn note(&mut self, p: &IndexedPack) -> bool {
        if self.records.is_empty() {
            return false;
        }
        let mut any = false;
        for (b, group) in p
            .blobs
            .iter()
            .zip(hokan_core::pack::group_members(&p.blobs))
        {
            if self.records.contains(&(p.id, b.id)) {
                any = true;
                self.at.entry(b.id).or_insert((p.id, p.kind, *b, group));
            }
        }
        any
    }

    fn intact<'a>(&'a self, p: &'a IndexedPack) -> impl Fn(&PackedBlob) -> bool + 'a {
        move |b| !self.records.contains(&(p.id, b.id))
    }

    /// A digest of the records, sorted: the run's `inputs`.
    fn digest(&self) -> [u8; 32] {
        let mut all: Vec<&(PackId, Id)> = self.records.iter().collect();
        all.sort();
        let mut h = blake3::Hasher::new();
        for (p, b) in all {
            h.update(&p.0.0);
            h.update(&b.0);
        }
        *h.finalize().as_bytes()
    }
}

impl Repository {
    /// Loads the index through the cache's run (see the module
    /// documentation).
    pub(crate) fn build_index_cached(
        &self,
        cache: &Cache,
        ids: &[Id],
        locks: &LockList,
    ) -> Result<Built> {
        let path = cache.dir().join(RUN_FILE);
        let mut damage = Damage {
            records: locks.damaged().copied().collect(),
            at: DamagedAt::new(),
        };
        let mut built = match self.reuse_run(&path, ids, &mut damage)? {
            Some(b) => b,
            None => {
                damage.at.clear();
                self.write_whole_run(&path, ids, &mut damage)?
            }
        };
        // Packs marked for deletion: readable, hidden from dedup, added
        // last so a live copy of a blob wins (as in the in-memory load).
        let mut builder = IndexBuilder::from_index(std::mem::take(&mut built.index));
        for m in locks.marked() {
            damage.note(&m.pack);
            builder.add_hidden_pack_filtered(
                m.pack.id,
                m.pack.kind,
                &m.pack.blobs,
                damage.intact(&m.pack),
            );
        }
        let mut index = builder.build();
        add_damaged_copies(&mut index, damage.at.into_values());
        built.index = index;
        Ok(built)
    }

    /// The cached run and the index files new since it was written, if
    /// the run is intact and still describes the repository.
    fn reuse_run(&self, path: &Path, ids: &[Id], damage: &mut Damage) -> Result<Option<Built>> {
        let Ok(run) = MappedRun::open(path) else {
            return Ok(None);
        };
        let meta = run.meta();
        let listed: HashSet<Id> = ids.iter().copied().collect();
        if meta.repo != self.config.repo_id
            || meta.inputs != damage.digest()
            || !meta.covered.iter().all(|id| listed.contains(id))
        {
            return Ok(None);
        }
        let covered: HashSet<Id> = meta.covered.iter().copied().collect();
        let old_superseded: HashSet<Id> = meta.superseded.iter().copied().collect();
        let new: Vec<Id> = ids
            .iter()
            .filter(|id| !covered.contains(id) && !old_superseded.contains(id))
            .copied()
            .collect();
        let run_len = run.len();
        let mut builder = IndexBuilder::from_index(Index::on_run(Arc::new(run)));
        let mut built = Built {
            index: Index::default(),
            present: meta.covered.clone(),
            superseded: old_superseded,
            unreadable: Vec::new(),
        };
        let mut fresh = Vec::new();
        let mut fresh_superseded = HashSet::new();
        self.each_index_file(&new, &mut built.unreadable, |id, file| {
            fresh.push(id);
            fresh_superseded.extend(file.supersedes.iter().copied());
            for p in &file.packs {
                if damage.note(p) {
                    builder.add_pack_filtered(p.id, p.kind, &p.blobs, damage.intact(p));
                } else {
                    builder.add_pack(p.id, p.kind, &p.blobs);
                }
            }
            Ok(())
        })?;
        // A new file that replaced merged or new ones: a prune or repair
        // ran. Build again rather than unpick the run.
        if fresh_superseded
            .iter()
            .any(|id| covered.contains(id) || fresh.contains(id))
        {
            return Ok(None);
        }
        built.present.extend(fresh);
        built.superseded.extend(fresh_superseded);
        let mut index = builder.build();
        if index.len() - run_len >= MERGE_AT {
            let meta = self.run_meta(&built, damage);
            // A run that cannot be written only costs the next open time.
            let _ = index.write_run(&meta, path, SORT_MEMORY);
        }
        built.index = index;
        Ok(Some(built))
    }

    /// Builds the run from every index file, streaming.
    fn write_whole_run(&self, path: &Path, ids: &[Id], damage: &mut Damage) -> Result<Built> {
        let dir = path
            .parent()
            .expect("the run is inside the cache directory");
        let mut skip = HashSet::new();
        loop {
            let keep: Vec<Id> = ids
                .iter()
                .filter(|id| !skip.contains(*id))
                .copied()
                .collect();
            let mut run = RunBuilder::new(dir, SORT_MEMORY);
            let (mut present, mut superseded, mut unreadable) =
                (Vec::new(), HashSet::new(), Vec::new());
            self.each_index_file(&keep, &mut unreadable, |id, file| {
                present.push(id);
                superseded.extend(file.supersedes.iter().copied());
                for p in &file.packs {
                    damage.note(p);
                    run.add_pack_blobs(p.id, p.kind, false, &p.blobs, damage.intact(p))
                        .map_err(crate::error::from_core)?;
                }
                Ok(())
            })?;
            let mut built = Built {
                index: Index::default(),
                present,
                superseded,
                unreadable,
            };
            if skip.is_empty() && built.superseded.iter().any(|id| built.present.contains(id)) {
                // A prune or repair replaced files and was interrupted
                // before deleting them: again without the replaced ones.
                skip = built.superseded;
                damage.at.clear();
                continue;
            }
            built.present.retain(|id| !built.superseded.contains(id));
            let meta = self.run_meta(&built, damage);
            let run = run.finish(&meta, path).map_err(crate::error::from_core)?;
            built.index = Index::on_run(Arc::new(run));
            return Ok(built);
        }
    }

    fn run_meta(&self, built: &Built, damage: &Damage) -> RunMeta {
        let mut covered = built.present.clone();
        covered.sort();
        let mut superseded: Vec<Id> = built.superseded.iter().copied().collect();
        superseded.sort();
        RunMeta {
            repo: self.config.repo_id,
            inputs: damage.digest(),
            covered,
            superseded,
        }
    }

    /// Fetches and decodes index files a batch at a time, in parallel, and
    /// hands each readable one to `each` in order; unreadable ones are
    /// collected. Only a batch of files is ever in memory.
    fn each_index_file(
        &self,
        ids: &[Id],
        unreadable: &mut Vec<Unreadable>,
        mut each: impl FnMut(Id, IndexFile) -> Result<()>,
    ) -> Result<()> {
        // Batches sized by the files seen so far: many small files are
        // fetched and decoded side by side, large ones one at a time.
        let (mut at, mut seen_bytes, mut seen) = (0usize, 0usize, 0usize);
        while at < ids.len() {
            let size = seen_bytes
                .checked_div(seen)
                .map_or(1, |average| BATCH_BYTES / average.max(1));
            let batch = &ids[at..(at + size.clamp(1, BATCH)).min(ids.len())];
            at += batch.len();
            let fetched = self.fetch(Kind::Index, batch)?;
            seen += batch.len();
            seen_bytes += fetched
                .iter()
                .flatten()
                .filter_map(|r| r.as_ref().ok())
                .map(|b| b.len())
                .sum::<usize>();
            let decoded: Vec<(Id, Result<IndexFile>)> = batch
                .par_iter()
                .zip(fetched.into_par_iter())
                .filter_map(|(id, got)| {
                    let what = format!("index file {}", id.short());
                    let r = got?.and_then(|b| object::open(&self.key, Kind::Index, &b, &what));
                    Some((*id, r))
                })
                .collect();
            for (id, file) in decoded {
                match file {
                    Ok(f) => each(id, f)?,
                    Err(e) => unreadable.push(Unreadable {
                        id,
                        path: layout::object(Kind::Index, &id),
                        reason: e.to_string(),
                    }),
                }
            }
        }
        Ok(())
    }
}
