//! `etcdctl snapshot status`, computed the same way.
//!
//! etcd 3.4 (`clientv3/snapshot/v3_snapshot.go`, `Status`) checks the file
//! with bbolt's `tx.Check`, then walks the root bucket in key order: for each
//! bucket it feeds the bucket's name to a CRC-32 (Castagnoli), then each key
//! and value of the bucket in order (a nested bucket's value is nil); every
//! key counts toward the total, and the revision is the main revision of the
//! last key of the `key` bucket. The total size is `tx.Size()`, the high-water
//! mark times the page size (a saved file's SHA-256 trailer is not counted).

use std::path::Path;

use serde::Serialize;

use hokan_repo::IndexedRepository;

use crate::bbolt::{Db, key_revision};
use crate::error::{Error, Result};
use crate::stored::EtcdSnapshot;

/// The four figures `etcdctl snapshot status -w json` prints, with its
/// field names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// CRC-32C over bucket names, keys and values in order.
    pub hash: u32,
    /// Main revision of the last key in the `key` bucket (0 if empty).
    pub revision: i64,
    /// Keys in all buckets.
    pub total_key: u64,
    /// Size of the database in bytes.
    pub total_size: u64,
}

/// The status of the database in `data` (a whole snapshot file), named
/// `what` in errors.
pub fn status(data: &[u8], what: &str) -> Result<Status> {
    let db = Db::open(data, what)?;
    db.check()?;
    let mut crc = 0u32;
    let mut revision = 0;
    let mut total_key = 0u64;
    for (name, bucket) in db.buckets()? {
        crc = crc32c::crc32c_append(crc, name);
        let is_key = name == b"key";
        for entry in db.entries(bucket) {
            let entry = entry?;
            crc = crc32c::crc32c_append(crc, entry.key);
            if !entry.is_bucket {
                crc = crc32c::crc32c_append(crc, entry.value);
            }
            if is_key {
                // etcd slices key[0:8] here and would panic on a shorter key.
                revision = key_revision(entry.key).ok_or_else(|| {
                    Error::corrupted(
                        what,
                        format!(
                            "a key of the `key` bucket is {} bytes, not a revision",
                            entry.key.len()
                        ),
                    )
                })?;
            }
            total_key += 1;
        }
    }
    Ok(Status {
        hash: crc,
        revision,
        total_key,
        total_size: db.meta().db_size(),
    })
}

/// The status of a snapshot file on disk.
pub fn status_file(path: &Path) -> Result<Status> {
    let what = path.display().to_string();
    let data = std::fs::read(path).map_err(|e| Error::io(format!("reading {what}"), e))?;
    status(&data, &what)
}

/// The status of a stored snapshot: the one recorded when it was stored,
/// or, for a snapshot stored without it (a page ran past the read-ahead),
/// the status of the snapshot rebuilt in memory, as [`status_file`] reads
/// a file. Nothing is written to disk: the database holds Secrets.
pub fn stored_status(repo: &IndexedRepository, snap: &EtcdSnapshot) -> Result<Status> {
    if let Some(st) = snap.facts.status {
        return Ok(st);
    }
    let mut data = Vec::with_capacity(usize::try_from(snap.facts.size).unwrap_or(0));
    crate::restore::restore_to(repo, snap, &mut data, &hokan_core::fs::NoProgress)?;
    status(&data, &format!("etcd snapshot {}", snap.short_id()))
}
