//! Repair index: rebuild the index from the packs themselves.
//!
//! Every pack describes itself in its header, so a lost or damaged index is
//! rebuilt by reading only each pack's trailer and header (two small range
//! reads per pack). The new index files replace all old ones; deletion
//! markers are dropped, so a later prune judges every pack afresh.

use rayon::prelude::*;

use hokan_core::pack::{TRAILER_LEN, decode_header, header_len_from_trailer};
use hokan_core::{PackId, PackReader};

use super::check::Problem;
use super::locks::{LockObject, PruneLock};
use crate::error::Result;
use crate::index_file::{IndexFile, IndexedPack};
use crate::repo::{Repository, pack_path};

/// What a repair did.
#[derive(Clone, Debug, Default)]
pub struct RepairReport {
    /// Packs indexed.
    pub packs: usize,
    /// Blobs indexed.
    pub blobs: usize,
    /// Packs that could not be read (their blobs are lost).
    pub unreadable: Vec<Problem>,
    /// Index files written.
    pub index_files_written: usize,
    /// Index files replaced.
    pub index_files_removed: usize,
}

/// Lists one pack from its header, reading only its end; on failure the
/// whole pack is read to say precisely what is wrong.
fn list_pack(
    repo: &Repository,
    id: &PackId,
    size: u64,
) -> std::result::Result<IndexedPack, Problem> {
    let path = pack_path(id);
    let name = format!("pack {}", id.short());
    let fail = |message: String| Problem {
        object: name.clone(),
        message,
    };
    let store = repo.store();
    let from_tail = || -> crate::Result<IndexedPack> {
        let trailer = store.get_range(&path, size.saturating_sub(TRAILER_LEN as u64)..size)?;
        let header_len = header_len_from_trailer(&trailer, &name)? as u64;
        let start = size
            .checked_sub(TRAILER_LEN as u64 + header_len)
            .ok_or_else(|| hokan_core::Error::Corrupted {
                what: name.clone(),
                reason: "header longer than the pack".into(),
            })?;
        let sealed = store.get_range(&path, start..size - TRAILER_LEN as u64)?;
        let blobs = decode_header(repo.master_key(), &sealed, start as usize, &name, false)?;
        Ok(IndexedPack::from_blobs(*id, size, blobs))
    };
    match from_tail() {
        Ok(p) => Ok(p),
        Err(_) => {
            let bytes = store.get(&path).map_err(|e| fail(e.to_string()))?;
            match PackReader::open(&bytes, Some(id), repo.master_key()) {
                Ok(r) => Ok(IndexedPack::from_blobs(*id, size, r.blobs().to_vec())),
                Err(e) => Err(fail(e.to_string())),
            }
        }
    }
}

/// Rebuilds the index from every pack in the store.
pub fn repair_index(repo: &Repository) -> Result<RepairReport> {
    let _lock = PruneLock::acquire(repo)?;
    let listed: Vec<(PackId, u64)> = repo
        .pack_files()?
        .into_iter()
        .map(|(id, l)| (id, l.size))
        .collect();
    let results: Vec<_> = listed
        .par_iter()
        .map(|(id, size)| list_pack(repo, id, *size))
        .collect();
    let mut report = RepairReport::default();
    let mut packs = Vec::new();
    for r in results {
        match r {
            Ok(p) => {
                report.blobs += p.blobs.len();
                packs.push(p);
            }
            Err(problem) => report.unreadable.push(problem),
        }
    }
    report.packs = packs.len();
    let old = repo.list_ids("index")?;
    for batch in packs.chunks(256) {
        repo.write_index_file(&IndexFile {
            supersedes: Vec::new(),
            packs: batch.to_vec(),
        })?;
        report.index_files_written += 1;
    }
    repo.write_index_file(&IndexFile {
        supersedes: old.clone(),
        packs: Vec::new(),
    })?;
    report.index_files_written += 1;
    for id in &old {
        repo.store().delete(&format!("index/{}", id.to_hex()))?;
    }
    report.index_files_removed = old.len();
    for (id, obj) in repo.locks()? {
        if matches!(obj, LockObject::Deletion { .. }) {
            repo.delete_lock(&id)?;
        }
    }
    Ok(report)
}
