//! Objects under `locks/`: prune's lock, and the markers of packs waiting
//! to be deleted.
//!
//! Backups take no lock. Prune takes one so two prunes never run at once:
//! it writes its lock object, then lists `locks/`; if an older live prune
//! lock exists it removes its own and gives up. A lock older than
//! [`STALE_AFTER`] is considered left by a crashed prune and ignored.

use serde::{Deserialize, Serialize};

use hokan_core::Id;

use crate::error::{Error, Result};
use crate::index_file::IndexedPack;
use crate::object::Kind;
use crate::repo::Repository;

/// A prune lock this old is taken to be left behind by a crashed prune.
pub const STALE_AFTER: i64 = 12 * 3600;

/// A pack marked for deletion, with its blob list so readers still find
/// its blobs until it is really gone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MarkedPack {
    /// When it was found unused (Unix seconds).
    pub marked_at: i64,
    /// The pack and its blobs, as its index entry said.
    pub pack: IndexedPack,
}

/// What a `locks/<id>` object holds.
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
}

impl Repository {
    /// Every object under `locks/`, decoded. Objects that vanish while
    /// listed (a prune finishing) are skipped.
    pub fn locks(&self) -> Result<Vec<(Id, LockObject)>> {
        let ids: Vec<Id> = self
            .store()
            .list("locks")?
            .iter()
            .filter_map(|l| Id::from_hex(&l.name))
            .collect();
        let paths: Vec<String> = ids
            .iter()
            .map(|id| format!("locks/{}", id.to_hex()))
            .collect();
        let mut out = Vec::new();
        for (id, got) in ids.iter().zip(self.store().get_many(&paths, 16)) {
            if let Some(bytes) = got? {
                let obj = crate::object::open(
                    self.master_key(),
                    Kind::Lock,
                    &bytes,
                    &format!("lock {}", id.short()),
                )?;
                out.push((*id, obj));
            }
        }
        Ok(out)
    }

    /// Stores a lock object; returns its id.
    pub fn save_lock(&self, obj: &LockObject) -> Result<Id> {
        let bytes = crate::object::seal(self.master_key(), Kind::Lock, obj)?;
        let id = crate::object::object_id(&bytes);
        self.store()
            .put(&format!("locks/{}", id.to_hex()), bytes.into())?;
        Ok(id)
    }

    /// Removes a lock object.
    pub fn delete_lock(&self, id: &Id) -> Result<()> {
        self.store().delete(&format!("locks/{}", id.to_hex()))
    }

    /// Removes every prune lock (`hokan unlock`): for after a prune crashed.
    /// Deletion markers stay. Returns how many were removed.
    pub fn remove_prune_locks(&self, only_stale: bool) -> Result<usize> {
        let now = chrono::Utc::now().timestamp();
        let mut n = 0;
        for (id, obj) in self.locks()? {
            if let LockObject::Prune {
                created,
                hostname,
                pid,
                ..
            } = obj
                && (!only_stale || now - created > STALE_AFTER || died_here(&hostname, pid))
            {
                self.delete_lock(&id)?;
                n += 1;
            }
        }
        Ok(n)
    }
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
    store: crate::store::Store,
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
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| hokan_core::Error::Random(e.to_string()))?;
        let now = chrono::Utc::now();
        let (created, nanos) = (now.timestamp(), now.timestamp_subsec_nanos());
        let id = repo.save_lock(&LockObject::Prune {
            hostname: crate::hostname(),
            pid: std::process::id(),
            created,
            nanos,
            nonce,
        })?;
        let lock = PruneLock {
            store: repo.store().clone(),
            id,
        };
        for round in 0..2 {
            if round == 1 {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            for (other, obj) in repo.locks()? {
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
                        "another prune is running (host {hostname}, pid {pid}, since {}); wait for it to finish, \
                         or if it crashed run `hokan unlock`",
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
        let _ = self.store.delete(&format!("locks/{}", self.id.to_hex()));
    }
}
