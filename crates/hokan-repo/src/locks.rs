//! Objects under `locks/`: who is working on the repository, which packs
//! wait to be deleted, and which blobs are known to be damaged.
//!
//! * A **prune lock** keeps two prunes (or repairs) from running at once: a
//!   prune writes its lock, then lists `locks/`; if an older live prune
//!   lock exists it removes its own and gives up.
//! * A **writer lock** says a backup is running. It blocks nobody but an
//!   instant deletion, which would remove packs the backup may depend on,
//!   and a delayed deletion of packs marked while the backup ran. A
//!   running backup refreshes its lock every [`WRITER_REFRESH`]; a lock
//!   not refreshed for [`WRITER_STALE_AFTER`] belongs to a backup that
//!   died.
//! * A **deletion marker** lists packs no snapshot used when a prune
//!   looked; a later prune deletes them once the grace period has passed.
//! * A **damage record** lists blobs found damaged in a pack, so that no
//!   writer deduplicates against them again and the next backup of the
//!   same data stores it afresh, until a repair salvages the pack.
//!
//! A lock of this host whose process no longer runs is stale at once.
//!
//! In immutable mode no lock object is deleted when its holder is done:
//! the holder writes a **release** naming it (and a refreshed writer lock
//! is a new object, its predecessors left behind), and a released or
//! stale lock counts for nothing. Prune removes them once the object lock
//! lets it ([`expire_locks`]).

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use hokan_core::{Id, MasterKey, PackId};

use crate::error::{Error, Result};
use crate::index_file::IndexedPack;
use crate::layout;
use crate::object::{self, Kind};
use crate::objects::Unreadable;
use crate::repository::Repository;
use crate::store::{Removal, Store};

/// A prune lock this old is taken to be left behind by a crashed prune.
pub const STALE_AFTER: i64 = 12 * 3600;
/// How often a running backup refreshes its writer lock.
pub const WRITER_REFRESH: Duration = Duration::from_secs(5 * 60);
/// A writer lock not refreshed for this long belongs to a backup that died.
pub const WRITER_STALE_AFTER: i64 = 30 * 60;

/// A pack marked for deletion, with its blob list so readers still find
/// its blobs until it is really gone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MarkedPack {
    /// When it was found unused (Unix seconds).
    pub marked_at: i64,
    /// The pack and its blobs, as its index entry said.
    pub pack: IndexedPack,
}

/// What a `locks/<id>` object holds. Variants 0 and 1 exist in lock object
/// version 1; 2 and 3 need version 2.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum LockObject {
    /// A prune is running.
    Prune {
        /// Its host.
        hostname: String,
        /// Its process id.
        pid: u32,
        /// When it started (Unix seconds).
        created: i64,
        /// ... and nanoseconds, to order locks taken in the same second.
        nanos: u32,
        /// Makes every lock object distinct.
        nonce: [u8; 16],
    },
    /// Packs no snapshot used when a prune looked, to be deleted once the
    /// grace period has passed if they are still unused.
    Deletion {
        /// The packs.
        marked: Vec<MarkedPack>,
    },
    /// A backup is running.
    Writer {
        /// Its host.
        hostname: String,
        /// Its process id.
        pid: u32,
        /// When it loaded the index it deduplicates against (Unix seconds).
        started: i64,
        /// When it last refreshed this lock.
        refreshed: i64,
        /// Makes every lock object distinct.
        nonce: [u8; 16],
    },
    /// Blobs found damaged, by pack.
    Damaged {
        /// When the damage was found (Unix seconds).
        found_at: i64,
        /// The damaged copies: the pack holding each, and the blob.
        blobs: Vec<(PackId, Id)>,
    },
    /// Prune and writer locks whose holders are done, in an immutable
    /// repository where they cannot be deleted yet (lock version 3).
    Released {
        /// When (Unix seconds).
        released_at: i64,
        /// The lock objects.
        locks: Vec<Id>,
    },
}

impl LockObject {
    /// The object version this variant needs.
    fn min_version(&self) -> u16 {
        match self {
            LockObject::Prune { .. } | LockObject::Deletion { .. } => 1,
            LockObject::Released { .. } => 3,
            _ => 2,
        }
    }
}

/// A running backup, as its writer lock tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningWriter {
    /// Its host.
    pub hostname: String,
    /// Its process id.
    pub pid: u32,
    /// When it loaded its index.
    pub started: i64,
}

impl std::fmt::Display for RunningWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a backup on host {} (pid {}) running since {}",
            self.hostname,
            self.pid,
            chrono::DateTime::from_timestamp(self.started, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        )
    }
}

/// Every lock object that could be read, and the ones that could not.
#[derive(Clone, Debug, Default)]
pub struct LockList {
    /// Readable objects.
    pub objects: Vec<(Id, LockObject)>,
    /// Damaged ones.
    pub unreadable: Vec<Unreadable>,
}

impl LockList {
    /// Packs marked for deletion.
    pub fn marked(&self) -> impl Iterator<Item = &MarkedPack> {
        self.objects.iter().flat_map(|(_, o)| match o {
            LockObject::Deletion { marked } => marked.as_slice(),
            _ => &[],
        })
    }

    /// Damaged blobs, by the pack holding the damaged copy.
    pub fn damaged(&self) -> impl Iterator<Item = &(PackId, Id)> {
        self.objects.iter().flat_map(|(_, o)| match o {
            LockObject::Damaged { blobs, .. } => blobs.as_slice(),
            _ => &[],
        })
    }

    /// Locks whose holders said they are done (immutable mode).
    pub fn released(&self) -> HashSet<Id> {
        self.objects
            .iter()
            .flat_map(|(_, o)| match o {
                LockObject::Released { locks, .. } => locks.as_slice(),
                _ => &[],
            })
            .copied()
            .collect()
    }

    /// Backups still running (their locks are fresh).
    pub fn running_writers(&self, now: i64) -> Vec<RunningWriter> {
        let released = self.released();
        self.objects
            .iter()
            .filter(|(id, _)| !released.contains(id))
            .filter_map(|(_, o)| match o {
                LockObject::Writer {
                    hostname,
                    pid,
                    started,
                    refreshed,
                    ..
                } if now - refreshed <= WRITER_STALE_AFTER && !died_here(hostname, *pid) => {
                    Some(RunningWriter {
                        hostname: hostname.clone(),
                        pid: *pid,
                        started: *started,
                    })
                }
                _ => None,
            })
            .collect()
    }
}

impl Repository {
    /// Every object under `locks/`, decoded; objects that vanish while
    /// listed (a prune finishing) are skipped, damaged ones listed apart.
    pub fn locks(&self) -> Result<LockList> {
        let ids = self.list_ids(Kind::Lock)?;
        let paths: Vec<String> = ids
            .iter()
            .map(|id| layout::object(Kind::Lock, id))
            .collect();
        let mut list = LockList::default();
        for ((id, got), path) in ids.iter().zip(self.store().get_many(&paths, 16)).zip(paths) {
            let what = format!("lock {}", id.short());
            let decoded = match got {
                Ok(None) => continue,
                Ok(Some(bytes)) => object::open(self.master_key(), Kind::Lock, &bytes, &what),
                Err(e) if !e.is_damage() => return Err(e),
                Err(e) => Err(e),
            };
            match decoded {
                Ok(obj) => list.objects.push((*id, obj)),
                Err(e) => list.unreadable.push(Unreadable {
                    id: *id,
                    path,
                    reason: e.to_string(),
                }),
            }
        }
        Ok(list)
    }

    /// Packs marked for deletion by prune and not yet deleted.
    pub fn marked_packs(&self) -> Result<Vec<MarkedPack>> {
        Ok(self.locks()?.marked().cloned().collect())
    }

    /// Stores a lock object; returns its id. Locks, deletion marks and
    /// damage records are written by the operations that hold them.
    /// [`Repository::save_lock`] for the format's golden tests, which pin
    /// each lock object as the library writes it.
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    pub fn save_lock_for_golden_test(&self, obj: &LockObject) -> Result<Id> {
        self.save_lock(obj)
    }

    pub(crate) fn save_lock(&self, obj: &LockObject) -> Result<Id> {
        save_lock(
            self.store(),
            self.master_key(),
            self.object_version(Kind::Lock),
            obj,
        )
    }

    /// Removes a lock object (in immutable mode: once the lock allows).
    pub fn delete_lock(&self, id: &Id) -> Result<Removal> {
        self.store().remove(&layout::object(Kind::Lock, id), None)
    }

    /// Removes prune and writer locks left behind by crashed processes
    /// (`hokan unlock`), or all of them with `only_stale` false, and lock
    /// objects that cannot be read. Deletion markers and damage records
    /// stay. Returns how many were removed.
    /// In immutable mode they are released (see the module
    /// documentation), and deleted where the object lock allows.
    pub fn remove_locks(&self, only_stale: bool) -> Result<usize> {
        let now = chrono::Utc::now().timestamp();
        let list = self.locks()?;
        if self.store().immutable().is_some() {
            let released = list.released();
            let ids: Vec<Id> = list
                .objects
                .iter()
                .filter(|(id, o)| {
                    !released.contains(id)
                        && match o {
                            LockObject::Prune { .. } | LockObject::Writer { .. } => {
                                !only_stale || is_stale(o, now)
                            }
                            _ => false,
                        }
                })
                .map(|(id, _)| *id)
                .chain(list.unreadable.iter().map(|u| u.id))
                .collect();
            if !ids.is_empty() {
                self.save_lock(&LockObject::Released {
                    released_at: now,
                    locks: ids.clone(),
                })?;
            }
            return Ok(ids.len());
        }
        let mut n = 0;
        for (id, obj) in &list.objects {
            let stale = match obj {
                LockObject::Prune { .. } | LockObject::Writer { .. } => is_stale(obj, now),
                _ => continue,
            };
            if !only_stale || stale {
                self.delete_lock(id)?;
                n += 1;
            }
        }
        for u in &list.unreadable {
            self.delete_lock(&u.id)?;
            n += 1;
        }
        Ok(n)
    }
}

/// Whether a prune or writer lock belongs to a process that is gone.
fn is_stale(obj: &LockObject, now: i64) -> bool {
    match obj {
        LockObject::Prune {
            created,
            hostname,
            pid,
            ..
        } => now - created > STALE_AFTER || died_here(hostname, *pid),
        LockObject::Writer {
            refreshed,
            hostname,
            pid,
            ..
        } => now - refreshed > WRITER_STALE_AFTER || died_here(hostname, *pid),
        _ => false,
    }
}

/// Immutable mode: deletes, where the object lock allows, the prune and
/// writer locks that are released or stale (but not `own`), and releases
/// whose locks are all gone. Returns what it deleted and what it kept.
pub(crate) fn expire_locks(
    repo: &Repository,
    list: &LockList,
    own: &Id,
    kept: &mut crate::immutable::Kept,
) -> Result<usize> {
    let now = chrono::Utc::now().timestamp();
    let released = list.released();
    let mut gone = HashSet::new();
    let mut deleted = 0;
    for (id, o) in &list.objects {
        let expired = match o {
            LockObject::Prune { .. } | LockObject::Writer { .. } => {
                id != own && (released.contains(id) || is_stale(o, now))
            }
            _ => false,
        };
        if expired {
            let r = repo.delete_lock(id)?;
            kept.add(0, r);
            if r.deleted() {
                gone.insert(*id);
                deleted += 1;
            }
        }
    }
    let present: HashSet<Id> = list.objects.iter().map(|(id, _)| *id).collect();
    for (id, o) in &list.objects {
        if let LockObject::Released { locks, .. } = o
            && locks
                .iter()
                .all(|l| gone.contains(l) || !present.contains(l))
        {
            let r = repo.delete_lock(id)?;
            kept.add(0, r);
            deleted += r.deleted() as usize;
        }
    }
    Ok(deleted)
}

/// Immutable mode: says that a holder is done with these lock objects.
fn release(store: &Store, key: &MasterKey, locks: Vec<Id>) -> Result<Id> {
    save_lock(
        store,
        key,
        3,
        &LockObject::Released {
            released_at: chrono::Utc::now().timestamp(),
            locks,
        },
    )
}

fn save_lock(store: &Store, key: &MasterKey, version: u16, obj: &LockObject) -> Result<Id> {
    let bytes = object::seal(key, Kind::Lock, version.max(obj.min_version()), obj)?;
    let id = object::object_id(&bytes);
    store.put(&layout::object(Kind::Lock, &id), bytes.into())?;
    Ok(id)
}

fn random_nonce() -> Result<[u8; 16]> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| hokan_core::Error::Random(e.to_string()))?;
    Ok(nonce)
}

/// Whether a lock was taken by a process of this host that no longer runs
/// (it crashed or was killed): its lock is stale at once.
fn died_here(hostname: &str, pid: u32) -> bool {
    hostname == crate::hostname()
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A held prune lock; released (its object deleted) on drop.
pub struct PruneLock {
    store: Store,
    key: MasterKey,
    id: Id,
}

impl PruneLock {
    /// Takes the lock, or fails naming the prune that holds it.
    ///
    /// The lock is written, then `locks/` is listed twice, a moment apart:
    /// if any live prune lock is older than ours, ours is removed and the
    /// prune gives up. Two prunes starting together both see each other on
    /// the second listing at the latest, and only the older goes on.
    pub fn acquire(repo: &Repository) -> Result<Self> {
        let now = chrono::Utc::now();
        let (created, nanos) = (now.timestamp(), now.timestamp_subsec_nanos());
        let id = repo.save_lock(&LockObject::Prune {
            hostname: crate::hostname(),
            pid: std::process::id(),
            created,
            nanos,
            nonce: random_nonce()?,
        })?;
        let lock = PruneLock {
            store: repo.store().clone(),
            key: repo.master_key().clone(),
            id,
        };
        for round in 0..2 {
            if round == 1 {
                std::thread::sleep(Duration::from_millis(200));
            }
            let list = repo.locks()?;
            let released = list.released();
            for (other, obj) in list.objects {
                if released.contains(&other) {
                    continue;
                }
                let LockObject::Prune {
                    hostname,
                    pid,
                    created: theirs,
                    nanos: their_nanos,
                    ..
                } = obj
                else {
                    continue;
                };
                if other == id || created - theirs > STALE_AFTER || died_here(&hostname, pid) {
                    continue;
                }
                if (theirs, their_nanos, other) < (created, nanos, id) {
                    drop(lock);
                    return Err(Error::Locked(format!(
                        "another prune or repair is running (host {hostname}, pid {pid}, since {}); \
                         wait for it to finish, or remove its lock if it crashed",
                        chrono::DateTime::from_timestamp(theirs, 0)
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_default()
                    )));
                }
            }
        }
        Ok(lock)
    }
}

impl PruneLock {
    /// The lock object's id.
    pub fn id(&self) -> &Id {
        &self.id
    }
}

impl Drop for PruneLock {
    fn drop(&mut self) {
        if self.store.immutable().is_some() {
            let _ = release(&self.store, &self.key, vec![self.id]);
        } else {
            let _ = self.store.delete(&layout::object(Kind::Lock, &self.id));
        }
    }
}

/// A running backup's writer lock, refreshed by a thread of its own until
/// dropped.
pub struct WriterLock {
    store: Store,
    key: MasterKey,
    /// The lock object now in the store.
    current: std::sync::Arc<std::sync::Mutex<Id>>,
    /// In immutable mode: the earlier ones, left in the store.
    earlier: std::sync::Arc<std::sync::Mutex<Vec<Id>>>,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl WriterLock {
    /// Writes a writer lock for a backup whose index was loaded at
    /// `started`, and keeps it fresh.
    pub fn acquire(repo: &Repository, started: i64) -> Result<Self> {
        let (hostname, pid, nonce) = (crate::hostname(), std::process::id(), random_nonce()?);
        let object = move |refreshed: i64| LockObject::Writer {
            hostname: hostname.clone(),
            pid,
            started,
            refreshed,
            nonce,
        };
        let (store, key) = (repo.store().clone(), repo.master_key().clone());
        let version = repo.object_version(Kind::Lock);
        let first = save_lock(
            &store,
            &key,
            version,
            &object(chrono::Utc::now().timestamp()),
        )?;
        let current = std::sync::Arc::new(std::sync::Mutex::new(first));
        let earlier = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop, stopped) = mpsc::channel::<()>();
        let refresher = {
            let (store, current, earlier) = (store.clone(), current.clone(), earlier.clone());
            let key = key.clone();
            std::thread::Builder::new()
                .name("hokan-lock".into())
                .spawn(move || {
                    while let Err(mpsc::RecvTimeoutError::Timeout) =
                        stopped.recv_timeout(WRITER_REFRESH)
                    {
                        let now = chrono::Utc::now().timestamp();
                        // A failed refresh is retried at the next round; a
                        // lock that goes stale meanwhile is caught when the
                        // backup commits.
                        if let Ok(new) = save_lock(&store, &key, version, &object(now)) {
                            let old =
                                std::mem::replace(&mut *current.lock().expect("lock id"), new);
                            // Immutable: a new object, the old one stays
                            // (stale in 30 minutes, released at the end).
                            if store.immutable().is_some() {
                                earlier.lock().expect("lock ids").push(old);
                            } else {
                                let _ = store.delete(&layout::object(Kind::Lock, &old));
                            }
                        }
                    }
                })
                .map_err(|e| Error::io("starting the lock refresher", e))?
        };
        Ok(WriterLock {
            store,
            key,
            current,
            earlier,
            stop: Some(stop),
            refresher: Some(refresher),
        })
    }

    /// Whether the lock is still in the store (nobody removed it as stale).
    pub fn held(&self) -> Result<bool> {
        let id = *self.current.lock().expect("lock id");
        self.store.exists(&layout::object(Kind::Lock, &id))
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let id = *self.current.lock().expect("lock id");
        if self.store.immutable().is_some() {
            let mut ids = std::mem::take(&mut *self.earlier.lock().expect("lock ids"));
            ids.push(id);
            let _ = release(&self.store, &self.key, ids);
        } else {
            let _ = self.store.delete(&layout::object(Kind::Lock, &id));
        }
    }
}
