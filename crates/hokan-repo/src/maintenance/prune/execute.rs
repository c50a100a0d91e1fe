//! Carrying out prune's plan, in an order that leaves a repository `check`
//! accepts at every step: objects are only ever added before the objects
//! that replace them are removed.

use std::collections::HashSet;

use hokan_core::{BlobReader, Id, Index, IndexBuilder, PackId};

use super::super::{PhaseProgress, Unit};
use super::plan::PrunePlan;
use super::survey::{FileHead, Survey, for_each_live_pack};
use super::{PruneOptions, PruneReport, TEMPORARY_AFTER};
use crate::error::{Result, from_core};
use crate::index_file::{IndexFile, IndexedPack};
use crate::index_load::IndexedRepository;
use crate::layout;
use crate::locks::{LockObject, MarkedPack, PruneLock};
use crate::repository::Repository;

/// Does what `plan` says; fills in what `report` learns only by doing it.
pub(crate) fn execute(
    repo: Repository,
    s: &Survey,
    plan: &PrunePlan,
    options: &PruneOptions,
    lock: &PruneLock,
    report: &mut PruneReport,
    progress: &dyn PhaseProgress,
) -> Result<()> {
    let mut delete = plan.delete.clone();
    let mut still_marked: Vec<MarkedPack> =
        plan.wait.iter().map(|id| s.marked[id].clone()).collect();

    // The packs that leave the index, whole (the marker lists their
    // blobs), and what repacking needs, read again from the index files.
    let leaving = Leaving::read(&repo, s, plan)?;
    // 1. Repack: copy the live blobs of mostly unused packs.
    let (repo, new_packs, session_files) = repack_live(repo, &leaving, report, progress)?;
    // Immutable: delete what may go first; a pack the lock keeps goes into
    // the new marker (if it was marked) instead of out of sight.
    if s.retention.is_some() {
        delete_packs(&repo, &delete, s, report, progress, |id| {
            if let Some(m) = s.marked.get(id) {
                still_marked.push(m.clone());
            }
        })?;
        delete.clear();
    }
    // 2. Mark: one marker with every pack waiting, written before the index
    //    stops listing them.
    let newly: Vec<IndexedPack> = leaving
        .marked
        .into_iter()
        .chain(leaving.repacked)
        .filter(|p| s.stored.contains_key(&p.id))
        .collect();
    let mut now_marked = still_marked;
    if options.instant_delete && s.retention.is_none() {
        delete.extend(newly.iter().map(|p| p.id));
    } else {
        now_marked.extend(newly.into_iter().map(|pack| MarkedPack {
            marked_at: s.now,
            pack,
        }));
    }
    report.waiting = now_marked.len();
    report.bytes_waiting = now_marked.iter().map(|m| s.size_of(&m.pack.id)).sum();
    if !now_marked.is_empty() {
        repo.save_lock(&LockObject::Deletion { marked: now_marked })?;
    }

    // 3. Index: the packs that stay, in new files; then one file naming
    //    every old file as superseded; then the old files and markers go
    //    (markers last: a pack taken back into the index must be listed
    //    somewhere at every moment).
    let mut indexed_after: HashSet<PackId> = plan.keep.iter().copied().collect();
    indexed_after.extend(plan.resurrect.iter().copied());
    indexed_after.extend(new_packs.iter().map(|p| p.id));
    // Blobs of a missing pack that snapshots still need are recorded as
    // damaged (as check records them), so the next backup of the same data
    // stores it afresh instead of deduplicating against what is gone.
    if !plan.record_damage.is_empty() {
        repo.save_lock(&LockObject::Damaged {
            found_at: s.now,
            blobs: plan.record_damage.clone(),
        })?;
    }
    rewrite_index(&repo, s, plan, new_packs, session_files, report)?;
    for id in &s.markers {
        let r = repo.delete_lock(id)?;
        report.kept.add(0, r);
    }

    // 4. Delete packs whose time has come.
    delete_packs(&repo, &delete, s, report, progress, |_| {})?;

    // 5. Damage records of packs now gone from both the store and the
    //    index say nothing any more. A record of a pack the index still
    //    lists (one that is missing but needed) stays: it keeps backups
    //    from trusting the pack's blobs.
    let gone: HashSet<PackId> = report.gone.iter().copied().collect();
    for (id, blobs) in &s.damage_records {
        if blobs.iter().all(|(p, _)| {
            (gone.contains(p) || !s.stored.contains_key(p)) && !indexed_after.contains(p)
        }) {
            let r = repo.delete_lock(id)?;
            report.kept.add(0, r);
        }
    }

    // 6. Temporary files of writes that died.
    for dir in layout::DIRS {
        for t in repo.store().temporary_files(dir)? {
            if options.instant_delete || s.now - t.modified >= TEMPORARY_AFTER {
                let r = repo
                    .store()
                    .remove(&format!("{dir}/{}", t.name), Some(t.modified))?;
                report.kept.add(t.size, r);
                report.temporary_deleted += r.deleted() as usize;
            }
        }
    }

    // 7. Immutable: locks of finished or crashed processes, which nothing
    //    deleted when they ended.
    if s.retention.is_some() {
        report.locks_removed =
            crate::locks::expire_locks(&repo, &s.locks, lock.id(), &mut report.kept)?;
    }
    // The size the repository is left with, for the report.
    report.repository_bytes = repo
        .store()
        .list(layout::DATA)?
        .iter()
        .map(|l| l.size)
        .sum();
    Ok(())
}

/// The packs leaving the index, whole, and what copying the live blobs of
/// the repacked ones needs. Memory grows with what leaves, not with what
/// stays.
struct Leaving {
    /// Packs marked, in plan order.
    marked: Vec<IndexedPack>,
    /// Packs repacked, in plan order.
    repacked: Vec<IndexedPack>,
    /// The live copies of the repacked packs.
    live: HashSet<(PackId, Id)>,
    /// Intact copies in the packs that stay of the blobs about to be
    /// copied: the writer deduplicates against them (and, as it looks up
    /// only what it writes, needs no other).
    kept: Index,
}

impl Leaving {
    fn read(repo: &Repository, s: &Survey, plan: &PrunePlan) -> Result<Leaving> {
        let mut out = Leaving {
            marked: Vec::new(),
            repacked: Vec::new(),
            live: HashSet::new(),
            kept: Index::default(),
        };
        if plan.mark.is_empty() && plan.repack.is_empty() {
            return Ok(out);
        }
        let mark: HashSet<PackId> = plan.mark.iter().copied().collect();
        let repack: HashSet<PackId> = plan.repack.iter().copied().collect();
        let keep: HashSet<PackId> = plan.keep.iter().copied().collect();
        let positions: HashSet<usize> = (s.active().iter().enumerate())
            .filter(|(_, p)| repack.contains(&p.id))
            .map(|(i, _)| i)
            .collect();
        out.live = s.resolved.live_copies(&positions)?;
        let live_ids: HashSet<Id> = out.live.iter().map(|(_, b)| *b).collect();
        let mut kept = IndexBuilder::default();
        for_each_live_pack(repo, &s.files, |p| {
            if mark.contains(&p.id) {
                out.marked.push(p);
            } else if repack.contains(&p.id) {
                out.repacked.push(p);
            } else if keep.contains(&p.id) && p.blobs.iter().any(|b| live_ids.contains(&b.id)) {
                kept.add_pack_filtered(p.id, p.kind, &p.blobs, |b| {
                    live_ids.contains(&b.id) && !s.distrusted(&p.id, &b.id)
                });
            }
            Ok(())
        })?;
        out.kept = kept.build();
        Ok(out)
    }
}

/// Copies the live blobs of the repacked packs into new packs. The writer
/// dedups only against intact copies in the packs that stay, so a live
/// blob whose other copy is damaged or gone is copied, not dropped.
/// Returns the repository, the new packs and the index files their
/// session wrote.
fn repack_live(
    repo: Repository,
    leaving: &Leaving,
    report: &mut PruneReport,
    progress: &dyn PhaseProgress,
) -> Result<(Repository, Vec<IndexedPack>, Vec<Id>)> {
    let repack = &leaving.repacked;
    if repack.is_empty() {
        return Ok((repo, Vec::new(), Vec::new()));
    }
    let live = |p: &IndexedPack, b: &hokan_core::PackedBlob| leaving.live.contains(&(p.id, b.id));
    // Where the live blobs are read from: the repacked packs themselves
    // (a live copy is the one readers resolve to).
    let mut sources = IndexBuilder::default();
    for p in repack {
        sources.add_pack_filtered(p.id, p.kind, &p.blobs, |b| live(p, b));
    }
    let sources = sources.build();
    let (key, store) = (repo.master_key().clone(), repo.store().clone());
    let reader = BlobReader::new(&key, &sources, &store);
    let mut writable = IndexedRepository::from_parts(repo, leaving.kept.clone());
    let live_bytes: u64 = repack
        .iter()
        .flat_map(|p| p.blobs.iter().filter(|b| live(p, b)))
        .map(|b| b.raw_len as u64)
        .sum();
    progress.phase("repacking", live_bytes, Unit::Bytes);
    let (_, summary) = writable.write(|w, _| {
        for p in repack {
            for b in p.blobs.iter().filter(|b| live(p, b)) {
                let data = reader.read_blob(b.kind, &b.id).map_err(from_core)?;
                w.write_blob(b.kind, &data).map_err(from_core)?;
                progress.advance(b.raw_len as u64);
            }
        }
        Ok(())
    })?;
    report.packs_written = summary.packs.len();
    Ok((writable.into_inner(), summary.packs, summary.index_files))
}

/// A rewritten index file lists at most this many packs...
const PACKS_PER_FILE: usize = 256;
/// ...and closes once it lists this many blobs: packs of small blobs hold
/// a hundred thousand each, and 256 of them would make one file (and its
/// encoding, in memory) of tens of millions of entries.
const BLOBS_PER_FILE: usize = 1 << 16;

/// Step 3: the index files that list the packs that stay (kept ones read
/// again from the old files, resurrected ones, new ones), a few hundred
/// packs or some 65,000 blobs a file, superseding every old one. Outside immutable mode superseded
/// files left by an interrupted prune are consolidated here; in it they
/// are deleted once the lock allows, as rewriting would only add more
/// files the lock holds.
fn rewrite_index(
    repo: &Repository,
    s: &Survey,
    plan: &PrunePlan,
    new_packs: Vec<IndexedPack>,
    session_files: Vec<Id>,
    report: &mut PruneReport,
) -> Result<()> {
    let changed = !(plan.mark.is_empty() && plan.repack.is_empty() && plan.resurrect.is_empty())
        || (s.retention.is_none() && s.files.iter().any(|f| !f.supersedes.is_empty()));
    if !changed {
        if s.retention.is_some() {
            remove_superseded(repo, &s.files, report)?;
        }
        return Ok(());
    }
    let mut written = Vec::new();
    let mut batch: Vec<IndexedPack> = Vec::with_capacity(PACKS_PER_FILE);
    let mut blobs = 0usize;
    let mut add = |p: IndexedPack, batch: &mut Vec<IndexedPack>| -> Result<()> {
        blobs += p.blobs.len();
        batch.push(p);
        if batch.len() == PACKS_PER_FILE || blobs >= BLOBS_PER_FILE {
            blobs = 0;
            written.push(repo.write_index_file(&IndexFile {
                supersedes: Vec::new(),
                packs: std::mem::take(batch),
            })?);
        }
        Ok(())
    };
    let keep: HashSet<PackId> = plan.keep.iter().copied().collect();
    for_each_live_pack(repo, &s.files, |p| match keep.contains(&p.id) {
        true => add(p, &mut batch),
        false => Ok(()),
    })?;
    for id in &plan.resurrect {
        add(s.marked[id].pack.clone(), &mut batch)?;
    }
    for p in new_packs {
        add(p, &mut batch)?;
    }
    if !batch.is_empty() {
        written.push(repo.write_index_file(&IndexFile {
            supersedes: Vec::new(),
            packs: batch,
        })?);
    }
    let mut old: Vec<Id> = s.files.iter().map(|f| f.id).collect();
    old.extend(session_files);
    written.push(repo.write_index_file(&IndexFile {
        supersedes: old.clone(),
        packs: Vec::new(),
    })?);
    report.index_files_written = written.len();
    for id in &old {
        let r = repo.delete_index_file(id)?;
        report.kept.add(0, r);
        report.index_files_removed += r.deleted() as usize;
    }
    Ok(())
}

/// Deletes packs (in immutable mode: those the lock lets go; `kept` hears
/// of each other one).
fn delete_packs(
    repo: &Repository,
    delete: &[PackId],
    s: &Survey,
    report: &mut PruneReport,
    progress: &dyn PhaseProgress,
    mut kept: impl FnMut(&PackId),
) -> Result<()> {
    if delete.is_empty() {
        return Ok(());
    }
    progress.phase("deleting packs", delete.len() as u64, Unit::Items);
    for id in delete {
        let listed = s.stored.get(id);
        let size = listed.map_or(0, |l| l.size);
        let r = repo
            .store()
            .remove(&layout::pack(id), listed.map(|l| l.modified))?;
        if r.deleted() {
            report.bytes_deleted += size;
            report.deleted += 1;
            report.gone.push(*id);
        } else {
            report.kept.add(size, r);
            kept(id);
        }
        progress.advance(1);
    }
    Ok(())
}

/// Immutable mode, nothing else changed: deletes the index files another
/// file supersedes, then superseding files (which list no packs) whose
/// every target is gone. The loader ignores superseded files, so each may
/// go whenever the lock lets it.
fn remove_superseded(
    repo: &Repository,
    files: &[FileHead],
    report: &mut PruneReport,
) -> Result<()> {
    let superseded: HashSet<Id> = files
        .iter()
        .flat_map(|f| f.supersedes.iter().copied())
        .collect();
    let present: HashSet<Id> = files.iter().map(|f| f.id).collect();
    let mut gone = HashSet::new();
    for id in present.iter().filter(|id| superseded.contains(id)) {
        let r = repo.delete_index_file(id)?;
        report.kept.add(0, r);
        if r.deleted() {
            gone.insert(*id);
            report.index_files_removed += 1;
        }
    }
    for f in files {
        let id = &f.id;
        if !f.lists_packs
            && !f.supersedes.is_empty()
            && !gone.contains(id)
            && f.supersedes
                .iter()
                .all(|t| gone.contains(t) || !present.contains(t))
        {
            let r = repo.delete_index_file(id)?;
            report.kept.add(0, r);
            report.index_files_removed += r.deleted() as usize;
        }
    }
    Ok(())
}

/// The dry run's figures for what the lock keeps: in immutable mode a pack
/// younger than the retention cannot be deleted yet.
pub(crate) fn held_by_lock(s: &Survey, plan: &PrunePlan, report: &mut PruneReport) -> Vec<PackId> {
    let Some(retention) = s.retention else {
        return plan.delete.clone();
    };
    let mut deletable = Vec::new();
    for id in &plan.delete {
        let until = s.stored.get(id).map(|l| l.modified + retention as i64);
        match until.filter(|u| *u > s.now) {
            Some(until) => report.kept.add(
                s.size_of(id),
                crate::store::Removal::Kept { until: Some(until) },
            ),
            None => deletable.push(*id),
        }
    }
    deletable
}
