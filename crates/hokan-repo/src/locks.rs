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
use crate::store::Store;

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
}

impl LockObject {
    /// The object version this variant needs.
    fn min_version(&self) -> u16 {
        match self {
            LockObject::Prune { .. } | LockObject::Deletion { .. } => 1,
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

    /// Backups still running (their locks are fresh).
    pub fn running_writers(&self, now: i64) -> Vec<RunningWriter> {
        self.objects
            .iter()
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

    /// Stores a lock object; returns its id.
    pub fn save_lock(&self, obj: &LockObject) -> Result<Id> {
        save_lock(
            self.store(),
            self.master_key(),
            self.object_version(Kind::Lock),
            obj,
        )
    }

    /// Removes a lock object.
    pub fn delete_lock(&self, id: &Id) -> Result<()> {
        self.store().delete(&layout::object(Kind::Lock, id))
    }

    /// Removes prune and writer locks left behind by crashed processes
    /// (`hokan unlock`), or all of them with `only_stale` false, and lock
    /// objects that cannot be read. Deletion markers and damage records
    /// stay. Returns how many were removed.
    pub fn remove_locks(&self, only_stale: bool) -> Result<usize> {
        let now = chrono::Utc::now().timestamp();
        let list = self.locks()?;
        let mut n = 0;
        for (id, obj) in &list.objects {
            let stale = match obj {
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
            id,
        };
        for round in 0..2 {
            if round == 1 {
                std::thread::sleep(Duration::from_millis(200));
            }
            for (other, obj) in repo.locks()?.objects {
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

impl Drop for PruneLock {
    fn drop(&mut self) {
        let _ = self.store.delete(&layout::object(Kind::Lock, &self.id));
    }
}

/// A running backup's writer lock, refreshed by a thread of its own until
/// dropped.
pub struct WriterLock {
    store: Store,
    /// The lock object now in the store.
    current: std::sync::Arc<std::sync::Mutex<Id>>,
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
        let (stop, stopped) = mpsc::channel::<()>();
        let refresher = {
            let (store, current) = (store.clone(), current.clone());
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
                            let _ = store.delete(&layout::object(Kind::Lock, &old));
                        }
                    }
                })
                .map_err(|e| Error::io("starting the lock refresher", e))?
        };
        Ok(WriterLock {
            store,
            current,
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
        let _ = self.store.delete(&layout::object(Kind::Lock, &id));
    }
}
