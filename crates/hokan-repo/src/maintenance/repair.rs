//! Repairs.
//!
//! * `repair index` rebuilds the index from the packs themselves. Every
//!   pack describes itself in its header, so a lost or damaged index is
//!   rebuilt by reading only each pack's trailer and header (two small
//!   range reads per pack). The new index files replace all old ones;
//!   deletion markers are dropped, so a later prune judges every pack
//!   afresh; damage records stay, so damaged copies stay distrusted.
//! * `repair packs` reads packs in full, as restic's `repair packs` does:
//!   the intact blobs of a damaged pack are copied into new packs, the
//!   damaged pack leaves the index (marked for deletion, so prune removes
//!   it after the grace period), and the blobs that could not be saved are
//!   recorded as damaged. The next backup of the same data stores them
//!   again, which heals every snapshot that needs them.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use hokan_core::pack::{TRAILER_LEN, decode_header, header_len_from_trailer};
use hokan_core::{Id, IndexBuilder, PackId, PackReader};

use super::check::{Problem, ProblemKind};
use super::{PhaseProgress, Unit};
use crate::error::{Result, from_core};
use crate::index_file::{IndexFile, IndexedPack, live_packs};
use crate::index_load::IndexedRepository;
use crate::layout;
use crate::locks::{LockObject, MarkedPack, PruneLock};
use crate::object::Kind;
use crate::repository::Repository;

/// What a repair did.
#[derive(Clone, Debug, Default)]
pub struct RepairReport {
    /// Packs indexed.
    pub packs: usize,
    /// Blobs indexed.
    pub blobs: usize,
    /// Packs whose header could not be read: their blobs are lost, unless
    /// the index listed them before (see `kept_entries`).
    pub unreadable: Vec<Problem>,
    /// Unreadable packs the index knew: listed by the entries it had.
    pub kept_entries: usize,
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
    let path = layout::pack(id);
    let name = format!("pack {}", id.short());
    let fail = |message: String| Problem {
        kind: ProblemKind::PackDamaged,
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
        let blobs = decode_header(
            repo.master_key(),
            &sealed,
            start as usize,
            &name,
            false,
            None,
        )?;
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
    // A pack whose header cannot be read keeps the entries the index has
    // for it now: its records still authenticate one by one, and dropping
    // them would lose every blob of a pack that lost a few bytes.
    let files = repo.index_files()?.files;
    let known: HashMap<PackId, IndexedPack> = live_packs(&files)
        .into_iter()
        .chain(repo.marked_packs()?.into_iter().map(|m| m.pack))
        .map(|p| (p.id, p))
        .collect();
    let mut report = RepairReport::default();
    let mut packs = Vec::new();
    for (r, (id, size)) in results.into_iter().zip(&listed) {
        let p = match (r, known.get(id)) {
            (Ok(p), _) => p,
            (Err(mut problem), Some(old)) => {
                problem.message.push_str(
                    "; its header cannot be read, so the index keeps the entries it had for it",
                );
                report.unreadable.push(problem);
                report.kept_entries += 1;
                IndexedPack::from_blobs(*id, *size, old.blobs.clone())
            }
            (Err(problem), None) => {
                report.unreadable.push(problem);
                continue;
            }
        };
        report.blobs += p.blobs.len();
        packs.push(p);
    }
    report.packs = packs.len();
    let (written, removed) = replace_index(repo, &packs)?;
    report.index_files_written = written;
    report.index_files_removed = removed;
    for (id, obj) in repo.locks()?.objects {
        // A marker the lock keeps names packs now indexed: they count as
        // indexed, and a later prune deletes the marker.
        if matches!(obj, LockObject::Deletion { .. }) {
            repo.delete_lock(&id)?;
        }
    }
    Ok(report)
}

/// Writes index files listing `packs`, then one superseding every index
/// file there was, then deletes those: at every moment every pack is listed
/// somewhere. Returns (files written, files removed).
fn replace_index(repo: &Repository, packs: &[IndexedPack]) -> Result<(usize, usize)> {
    let old = repo.list_ids(Kind::Index)?;
    let mut written = 0;
    for batch in packs.chunks(256) {
        repo.write_index_file(&IndexFile {
            supersedes: Vec::new(),
            packs: batch.to_vec(),
        })?;
        written += 1;
    }
    repo.write_index_file(&IndexFile {
        supersedes: old.clone(),
        packs: Vec::new(),
    })?;
    // In an immutable repository old files the lock keeps stay: superseded,
    // the loader ignores them, and a later prune deletes them.
    let mut removed = 0;
    for id in &old {
        removed += repo.delete_index_file(id)?.deleted() as usize;
    }
    Ok((written + 1, removed))
}

/// What `repair packs` did.
#[derive(Clone, Debug, Default)]
pub struct RepairPacksReport {
    /// Packs read in full.
    pub packs_read: usize,
    /// Packs found damaged, and what was wrong with each.
    pub damaged: Vec<Problem>,
    /// Blobs of damaged packs copied into new packs.
    pub salvaged: usize,
    /// Blobs that could not be saved, by the pack that held them.
    pub lost: Vec<(PackId, Id)>,
    /// New packs written.
    pub packs_written: usize,
}

/// Reads `packs` (all indexed and marked packs when `None`) in full and
/// salvages the damaged ones; see the module documentation.
pub fn repair_packs(
    repo: Repository,
    packs: Option<&[PackId]>,
    progress: &dyn PhaseProgress,
) -> Result<RepairPacksReport> {
    let lock = PruneLock::acquire(&repo)?;
    let mut report = RepairPacksReport::default();
    let files = repo.index_files()?.files;
    let live = live_packs(&files);
    let marked = repo.marked_packs()?;
    let stored = repo.pack_files()?;
    let listing: HashMap<PackId, &IndexedPack> = live
        .iter()
        .chain(marked.iter().map(|m| &m.pack))
        .map(|p| (p.id, p))
        .collect();
    let entries = |id: &PackId| listing.get(id).map_or(&[][..], |p| &p.blobs[..]);
    let mut candidates: Vec<PackId> = match packs {
        Some(p) => p.to_vec(),
        None => listing.keys().copied().collect(),
    };
    candidates.retain(|p| stored.contains_key(p));
    candidates.sort();
    candidates.dedup();
    let total: u64 = candidates.iter().map(|p| stored[p].size).sum();
    progress.phase("reading packs", total, Unit::Bytes);
    // Pass 1: which packs are damaged (read in parallel, nothing kept).
    let found: Vec<(PackId, Result<Option<String>>)> = candidates
        .par_iter()
        .map(|id| {
            let r = damage_in(&repo, id, entries(id));
            progress.advance(stored[id].size);
            (*id, r)
        })
        .collect();
    report.packs_read = found.len();
    let mut damaged: Vec<PackId> = Vec::new();
    for (id, r) in found {
        if let Some(message) = r? {
            report.damaged.push(Problem {
                kind: ProblemKind::PackDamaged,
                object: format!("pack {}", id.short()),
                message,
            });
            damaged.push(id);
        }
    }
    if damaged.is_empty() {
        return Ok(report);
    }
    // Pass 2: copy every blob of a damaged pack that reads back into new
    // packs. The writer knows only the intact copies in other packs, so it
    // stores each blob that has no such copy; a blob that fails to read and
    // has one is not lost.
    let recorded: HashSet<(PackId, Id)> = repo.locks()?.damaged().copied().collect();
    let mut others = IndexBuilder::default();
    for p in live.iter().filter(|p| !damaged.contains(&p.id)) {
        others.add_pack_filtered(p.id, p.kind, &p.blobs, |b| {
            !recorded.contains(&(p.id, b.id))
        });
    }
    let others = others.build();
    let key = repo.master_key().clone();
    let store = repo.store().clone();
    let mut writable = IndexedRepository::from_parts(repo, others);
    progress.phase("salvaging damaged packs", damaged.len() as u64, Unit::Items);
    let ((salvaged, lost), summary) = writable.write(|w, _| {
        let mut lost: Vec<(PackId, hokan_core::PackedBlob)> = Vec::new();
        let mut salvaged = 0;
        for pack in &damaged {
            let bytes = store.get(&layout::pack(pack))?;
            let mut failed = None;
            hokan_core::pack::scan(&bytes, pack, entries(pack), &key, |b, r| match r {
                Ok(d) if failed.is_none() => match w.write_blob(b.kind, &d) {
                    Ok(_) => salvaged += 1,
                    Err(e) => failed = Some(e),
                },
                Ok(_) => {}
                Err(_) => lost.push((*pack, *b)),
            })
            .map_err(from_core)?;
            if let Some(e) = failed {
                return Err(from_core(e));
            }
            progress.advance(1);
        }
        // A blob that failed here but has an intact copy (in another pack,
        // or salvaged from another damaged one just now) is not lost.
        lost.retain(|(_, b)| !w.contains(&b.id));
        Ok((salvaged, lost))
    })?;
    let repo = writable.into_inner();
    report.packs_written = summary.packs.len();
    report.salvaged = salvaged;
    // A damaged pack that still holds the only copy of some blobs stays in
    // the index with those blobs alone, recorded as damaged: prune keeps it
    // while a snapshot needs them, and the next backup of the same data
    // stores them afresh, after which prune removes it. A pack whose every
    // blob was saved leaves the index and waits for deletion.
    let now = chrono::Utc::now().timestamp();
    let mut new_live: Vec<IndexedPack> = live
        .iter()
        .filter(|p| !damaged.contains(&p.id))
        .cloned()
        .collect();
    for pack in &damaged {
        let kept: Vec<hokan_core::PackedBlob> = lost
            .iter()
            .filter(|(p, _)| p == pack)
            .map(|(_, b)| *b)
            .collect();
        if !kept.is_empty() {
            new_live.push(IndexedPack::from_blobs(*pack, stored[pack].size, kept));
        }
    }
    new_live.extend(summary.packs);
    report.lost = lost.iter().map(|(p, b)| (*p, b.id)).collect();
    if !report.lost.is_empty() {
        repo.save_lock(&LockObject::Damaged {
            found_at: now,
            blobs: report.lost.clone(),
        })?;
    }
    let to_mark: Vec<MarkedPack> = damaged
        .iter()
        .filter(|id| !lost.iter().any(|(p, _)| p == *id))
        .filter_map(|id| listing.get(id))
        .filter(|p| live.iter().any(|l| l.id == p.id))
        .map(|p| MarkedPack {
            marked_at: now,
            pack: (*p).clone(),
        })
        .collect();
    if !to_mark.is_empty() {
        repo.save_lock(&LockObject::Deletion { marked: to_mark })?;
    }
    replace_index(&repo, &new_live)?;
    drop(lock);
    Ok(report)
}

/// Reads a whole pack: `None` if it is intact, else what is wrong with it.
fn damage_in(
    repo: &Repository,
    id: &PackId,
    entries: &[hokan_core::PackedBlob],
) -> Result<Option<String>> {
    let bytes = match repo.store().get(&layout::pack(id)) {
        Ok(b) => b,
        Err(e) if e.is_damage() => return Ok(Some(e.to_string())),
        Err(e) => return Err(e),
    };
    let mut first = None;
    let scanned = hokan_core::pack::scan(&bytes, id, entries, repo.master_key(), |_, r| {
        if let Err(e) = r {
            first.get_or_insert_with(|| e.to_string());
        }
    })
    .map_err(from_core)?;
    if !scanned.is_damaged() {
        return Ok(None);
    }
    let damaged = match scanned.damaged {
        0 => "every blob reads back".to_string(),
        n => format!(
            "{n} of its {} blobs are damaged ({})",
            scanned.blobs.len(),
            first.unwrap_or_default()
        ),
    };
    Ok(Some(match scanned.problem {
        Some(p) => format!("{p}; {damaged}"),
        None => damaged,
    }))
}
