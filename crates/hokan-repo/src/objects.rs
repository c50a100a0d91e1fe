//! Reading and writing the repository's small objects: snapshots and index
//! files, through the local cache where there is one.
//!
//! A damaged object never blocks the others: listings return what they
//! could read and say which objects they could not, so one bad snapshot
//! file does not stop backups, restores of other snapshots, or `forget`.

use std::collections::HashMap;

use bytes::Bytes;
use rayon::prelude::*;

use hokan_core::{Id, PackId};

use crate::error::{Error, Result};
use crate::index_file::IndexFile;
use crate::layout;
use crate::object::{self, Kind};
use crate::repository::Repository;
use crate::snapshot::{self, Snapshot, SnapshotEntry, SnapshotFilter, SnapshotV1, SourceKind};
use crate::store::{Listed, Removal};

/// An object that could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// Its id.
    pub id: Id,
    /// Where it is in the store.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Refuses `latest` while a snapshot file cannot be read. Its time is
/// unknown, so it may be the newest: resolving past it would silently give
/// an older snapshot than asked for (a restore of yesterday's data that
/// looks like today's). The caller names the snapshot by id instead.
fn latest_is_known(list: &SnapshotList, query: &str, filter: &SnapshotFilter) -> Result<()> {
    if query != "latest" || list.unreadable.is_empty() {
        return Ok(());
    }
    Err(Error::LatestUnreadable {
        unreadable: list.unreadable.clone(),
        newest_readable: snapshot::find(&list.entries, query, filter)
            .ok()
            .map(|e| e.id),
    })
}

/// Every index file, and the ones that could not be read.
#[derive(Clone, Debug, Default)]
pub struct IndexFiles {
    /// Readable index files with their ids (superseded ones included).
    pub files: Vec<(Id, IndexFile)>,
    /// Damaged ones.
    pub unreadable: Vec<Unreadable>,
}

/// Every snapshot, and the snapshot files that could not be read.
#[derive(Clone, Debug, Default)]
pub struct SnapshotList {
    /// Readable snapshots, oldest first.
    pub entries: Vec<SnapshotEntry>,
    /// Snapshot files that are damaged (or of a newer format).
    pub unreadable: Vec<Unreadable>,
}

impl Repository {
    /// Reads objects of one kind by id, from the cache where possible.
    /// `None` for objects that vanished meanwhile; an error for an object
    /// that could not be fetched or does not match its name.
    pub(crate) fn fetch(&self, kind: Kind, ids: &[Id]) -> Result<Vec<Option<Result<Bytes>>>> {
        self.fetch_from(kind, ids, true)
    }

    /// [`fetch`](Self::fetch), from the store itself when `cached` is
    /// false (a check must see what is stored, not a cached copy).
    fn fetch_from(
        &self,
        kind: Kind,
        ids: &[Id],
        cached: bool,
    ) -> Result<Vec<Option<Result<Bytes>>>> {
        let dir = layout::dir(kind);
        let cache = self.cache.as_ref().filter(|_| cached);
        let mut out: Vec<Option<Result<Bytes>>> = (0..ids.len()).map(|_| None).collect();
        let mut missing = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match cache.and_then(|c| c.get(dir, id)) {
                Some(b) => out[i] = Some(Ok(Bytes::from(b))),
                None => missing.push(i),
            }
        }
        let paths: Vec<String> = missing
            .iter()
            .map(|&i| layout::object(kind, &ids[i]))
            .collect();
        let fetched = self
            .store
            .get_many(&paths, self.options.download_concurrency);
        for ((&i, got), path) in missing.iter().zip(fetched).zip(&paths) {
            match got {
                // An unreachable store is everyone's problem, not one object's.
                Err(e) if !e.is_damage() => return Err(e),
                Err(e) => out[i] = Some(Err(e)),
                Ok(None) => {}
                Ok(Some(bytes)) if object::object_id(&bytes) != ids[i] => {
                    out[i] = Some(Err(Error::corrupted(
                        path.clone(),
                        "its content does not match its name",
                    )));
                }
                Ok(Some(bytes)) => {
                    if let Some(c) = &self.cache {
                        c.put(dir, &ids[i], &bytes);
                    }
                    out[i] = Some(Ok(bytes));
                }
            }
        }
        if let Some(c) = &self.cache {
            c.retain(dir, &ids.iter().copied().collect());
        }
        Ok(out)
    }

    /// The ids of the objects of `kind` in the store.
    pub(crate) fn list_ids(&self, kind: Kind) -> Result<Vec<Id>> {
        Ok(self
            .store
            .list(layout::dir(kind))?
            .iter()
            .filter_map(|l| Id::from_hex(&l.name))
            .collect())
    }

    /// Every pack file in the store, by pack id, with its size and time.
    pub fn pack_files(&self) -> Result<HashMap<PackId, Listed>> {
        Ok(self
            .store
            .list(layout::DATA)?
            .into_iter()
            .filter_map(|l| Some((layout::pack_of_listed(&l.name)?, l)))
            .collect())
    }

    /// Every readable snapshot, oldest first. Damaged snapshot files are
    /// left out; [`snapshot_list`](Self::snapshot_list) names them.
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        Ok(self.snapshot_list()?.entries)
    }

    /// Every snapshot, and every snapshot file that could not be read.
    pub fn snapshot_list(&self) -> Result<SnapshotList> {
        self.snapshot_list_from(true)
    }

    /// [`snapshot_list`](Self::snapshot_list) read from the store itself,
    /// bypassing the cache, when `cached` is false.
    pub fn snapshot_list_from(&self, cached: bool) -> Result<SnapshotList> {
        let ids = self.list_ids(Kind::Snapshot)?;
        let fetched = self.fetch_from(Kind::Snapshot, &ids, cached)?;
        let results: Vec<(Id, Result<Snapshot>)> = ids
            .par_iter()
            .zip(fetched.into_par_iter())
            .filter_map(|(id, got)| {
                let what = format!("snapshot {}", id.short());
                Some((*id, got?.and_then(|b| decode_snapshot(self, &b, &what))))
            })
            .collect();
        let mut list = SnapshotList::default();
        for (id, r) in results {
            match r {
                Ok(snapshot) => list.entries.push(SnapshotEntry { id, snapshot }),
                Err(e) => list.unreadable.push(Unreadable {
                    id,
                    path: layout::object(Kind::Snapshot, &id),
                    reason: e.to_string(),
                }),
            }
        }
        list.entries.sort_by_key(|e| (e.snapshot.time, e.id));
        Ok(list)
    }

    /// The snapshot named by `latest`, an id or a unique id prefix.
    /// `latest` is refused ([`Error::LatestUnreadable`]) while a snapshot
    /// file cannot be read: that one may be the newest.
    pub fn find_snapshot(&self, query: &str, filter: &SnapshotFilter) -> Result<SnapshotEntry> {
        let list = self.snapshot_list()?;
        latest_is_known(&list, query, filter)?;
        match snapshot::find(&list.entries, query, filter) {
            Ok(e) => Ok(e.clone()),
            Err(Error::SnapshotNotFound { .. }) => {
                // Asked for by id, and damaged: say so rather than "not found".
                let q = query.to_ascii_lowercase();
                match list
                    .unreadable
                    .iter()
                    .find(|u| q.len() >= 4 && u.id.to_hex().starts_with(&q))
                {
                    Some(u) => Err(Error::corrupted(u.path.clone(), u.reason.clone())),
                    None => Err(Error::SnapshotNotFound {
                        query: query.to_string(),
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The snapshot `query` names among the snapshots of one source kind:
    /// `latest` is the newest of `kind` the filter admits (narrowed to one
    /// identity by [`SnapshotFilter::identity`]), not the newest of any
    /// kind; an id or prefix naming a snapshot of another kind is refused
    /// ([`Error::OtherKind`]). What every source's "latest" goes through.
    pub fn find_snapshot_of(
        &self,
        kind: &SourceKind,
        query: &str,
        filter: &SnapshotFilter,
    ) -> Result<SnapshotEntry> {
        let mut filter = filter.clone();
        if query == "latest" {
            filter.sources = vec![kind.clone()];
        }
        let entry = self.find_snapshot(query, &filter).map_err(|e| match e {
            Error::SnapshotNotFound { query } if query == "latest" => Error::NoSnapshotOfKind {
                kind: kind.name().to_string(),
                query,
            },
            other => other,
        })?;
        if entry.snapshot.source != *kind {
            return Err(Error::OtherKind {
                snapshot: entry.id.short(),
                found: entry.snapshot.source.name().to_string(),
                wanted: kind.name().to_string(),
            });
        }
        Ok(entry)
    }

    /// The id of the snapshot `query` names (`latest`, an id or a unique
    /// prefix), damaged snapshot files included: for removing them.
    pub fn find_snapshot_id(&self, query: &str) -> Result<Id> {
        let list = self.snapshot_list()?;
        if query == "latest" {
            latest_is_known(&list, query, &Default::default())?;
            return Ok(snapshot::find(&list.entries, query, &Default::default())?.id);
        }
        let q = query.to_ascii_lowercase();
        let mut ids: Vec<Id> = list
            .entries
            .iter()
            .map(|e| e.id)
            .chain(list.unreadable.iter().map(|u| u.id))
            .filter(|id| !q.is_empty() && id.to_hex().starts_with(&q))
            .collect();
        ids.dedup();
        match ids.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::SnapshotNotFound {
                query: query.to_string(),
            }),
            many => Err(Error::AmbiguousSnapshot {
                prefix: query.to_string(),
                count: many.len(),
            }),
        }
    }

    /// Stores a snapshot in this repository's format; returns its id. Call
    /// only after the data it names is stored and indexed: new snapshots
    /// go through the session's commit ([`crate::session`]), which checks
    /// that.
    pub(crate) fn save_snapshot(&self, s: &Snapshot) -> Result<Id> {
        let version = self.object_version(Kind::Snapshot);
        let bytes = match version {
            1 => object::seal(&self.key, Kind::Snapshot, 1, &s.to_v1()?)?,
            v => object::seal(&self.key, Kind::Snapshot, v, s)?,
        };
        let id = object::object_id(&bytes);
        self.store.put(
            &layout::object(Kind::Snapshot, &id),
            Bytes::from(bytes.clone()),
        )?;
        if let Some(c) = &self.cache {
            c.put(layout::dir(Kind::Snapshot), &id, &bytes);
        }
        Ok(id)
    }

    /// Changes a snapshot's tags. Snapshot objects are named by their
    /// bytes, so this stores a new snapshot with the changed tags and only
    /// then deletes the old one: a crash in between leaves both (the same
    /// backup listed twice), never neither. Returns the new entry, or the
    /// old one unchanged when the change changes nothing. In an immutable
    /// repository the old one stays while the object lock holds it: the
    /// returned [`Removal`] says so.
    pub fn retag_snapshot(
        &self,
        entry: &SnapshotEntry,
        change: &snapshot::TagChange,
    ) -> Result<(SnapshotEntry, bool, Removal)> {
        let mut s = entry.snapshot.clone();
        if !change.apply(&mut s.tags) {
            return Ok((entry.clone(), false, Removal::Deleted));
        }
        let id = self.save_snapshot(&s)?;
        let mut old = Removal::Deleted;
        if id != entry.id {
            old = self.delete_snapshot(&entry.id)?;
        }
        Ok((SnapshotEntry { id, snapshot: s }, true, old))
    }

    /// Deletes a snapshot (its data stays until prune); in an immutable
    /// repository only once the object lock allows.
    pub fn delete_snapshot(&self, id: &Id) -> Result<Removal> {
        self.store.remove(&layout::object(Kind::Snapshot, id), None)
    }

    /// Every index file that could be read, with its id (superseded ones
    /// included), and the ones that could not.
    pub fn index_files(&self) -> Result<IndexFiles> {
        self.index_files_from(true)
    }

    /// [`index_files`](Self::index_files) read from the store itself,
    /// bypassing the cache, when `cached` is false.
    pub fn index_files_from(&self, cached: bool) -> Result<IndexFiles> {
        let ids = self.list_ids(Kind::Index)?;
        self.read_index_files(&ids, cached)
    }

    /// The ids of the index files in the store, as listed.
    pub(crate) fn index_file_ids(&self) -> Result<Vec<Id>> {
        self.list_ids(Kind::Index)
    }

    /// The index files `ids` names, in that order (those that vanished
    /// since they were listed left out): maintenance reads them a batch at
    /// a time, so memory holds one batch, not the whole index.
    pub(crate) fn read_index_files(&self, ids: &[Id], cached: bool) -> Result<IndexFiles> {
        let fetched = self.fetch_from(Kind::Index, ids, cached)?;
        let results: Vec<(Id, Result<IndexFile>)> = ids
            .par_iter()
            .zip(fetched.into_par_iter())
            .filter_map(|(id, got)| {
                let what = format!("index file {}", id.short());
                Some((
                    *id,
                    got?.and_then(|b| object::open(&self.key, Kind::Index, &b, &what)),
                ))
            })
            .collect();
        let mut out = IndexFiles::default();
        for (id, r) in results {
            match r {
                Ok(f) => out.files.push((id, f)),
                Err(e) => out.unreadable.push(Unreadable {
                    id,
                    path: layout::object(Kind::Index, &id),
                    reason: e.to_string(),
                }),
            }
        }
        Ok(out)
    }

    /// Writes an index file for packs already stored; returns its id.
    /// Writers index their own packs ([`crate::session`]); maintenance
    /// rewrites index files.
    pub(crate) fn write_index_file(&self, file: &IndexFile) -> Result<Id> {
        let bytes = object::seal(&self.key, Kind::Index, 1, file)?;
        let id = object::object_id(&bytes);
        self.store.put(
            &layout::object(Kind::Index, &id),
            Bytes::from(bytes.clone()),
        )?;
        if let Some(c) = &self.cache {
            c.put(layout::dir(Kind::Index), &id, &bytes);
        }
        Ok(id)
    }

    /// Deletes an index file (after another supersedes it).
    pub(crate) fn delete_index_file(&self, id: &Id) -> Result<Removal> {
        self.store.remove(&layout::object(Kind::Index, id), None)
    }
}

/// Decodes a snapshot object of either version.
fn decode_snapshot(repo: &Repository, bytes: &[u8], what: &str) -> Result<Snapshot> {
    let (version, plain) = object::open_raw(&repo.key, Kind::Snapshot, bytes, what)?;
    match version {
        1 => Ok(object::decode::<SnapshotV1>(&plain, what)?.into()),
        _ => object::decode(&plain, what),
    }
}
