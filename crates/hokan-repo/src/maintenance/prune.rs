//! Prune: remove data no snapshot needs, in two phases, without stopping
//! backups.
//!
//! Phase one marks: packs no snapshot uses are listed in a deletion marker
//! (`locks/`) and left out of the rewritten index files. Marked packs stay
//! readable (a backup that loaded the index before the prune may have
//! used them) but new backups do not dedup against them. Phase two, in a
//! later prune once the grace period has passed, deletes marked packs that
//! are still unused, and puts back into the index any that a snapshot
//! written meanwhile uses. Packs that are mostly unused are repacked: their
//! live blobs are copied into new packs and the old ones are marked.
//! `instant_delete` skips the wait, for when nothing else writes.
//!
//! Every step leaves a repository that `check` accepts: objects are only
//! ever added before the objects that replace them are removed.
//!
//! In an immutable repository an object is deleted only once its
//! last-modified time plus the configured retention has passed (and the
//! store agrees); everything else is kept and counted in
//! [`PruneReport::kept`]. Packs are then deleted before the deletion marker
//! is rewritten, so a pack the lock keeps is marked again, never left in
//! neither index nor marker. Index files a new one supersedes may stay:
//! the loader ignores superseded files, and a later prune deletes them,
//! then the superseding file once everything it names is gone. Packs are
//! never newly unused and deleted in the same prune there.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hokan_core::{BlobReader, Id, IndexBuilder, PackId};

use super::walk;
use super::{PhaseProgress, Unit, readable_index};
use crate::error::{Error, Result, from_core};
use crate::index_file::{IndexFile, IndexedPack, live_packs};
use crate::index_load::IndexedRepository;
use crate::layout;
use crate::locks::{LockObject, MarkedPack, PruneLock};
use crate::repository::Repository;

/// Temporary files older than this were left by writes that died.
const TEMPORARY_AFTER: i64 = 3600;

/// Prune settings.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// How long a pack stays marked before it is deleted; must exceed the
    /// longest backup that may run during a prune.
    pub grace: Duration,
    /// Delete unused packs now, without the grace period: only when no
    /// backup runs.
    pub instant_delete: bool,
    /// How much dead weight may stay, as a share of the live data (0.0 to
    /// 1.0): mostly unused packs are repacked, most wasteful first, until
    /// what is left unused is at most this (restic's `--max-unused`).
    pub max_unused: f64,
    /// Decide and report, change nothing.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            grace: Duration::from_secs(24 * 3600),
            instant_delete: false,
            max_unused: 0.05,
            dry_run: false,
        }
    }
}

/// What a prune did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Snapshots whose data was kept.
    pub snapshots: usize,
    /// Blobs those snapshots use.
    pub used_blobs: usize,
    /// Packs in the index before.
    pub packs_before: usize,
    /// Bytes in packs before (indexed, marked and unindexed).
    pub bytes_before: u64,
    /// Packs newly marked for deletion.
    pub marked: usize,
    /// Packs whose live blobs were copied to new packs (and then marked).
    pub repacked: usize,
    /// New packs written by repacking.
    pub packs_written: usize,
    /// Marked packs a snapshot uses again, put back into the index.
    pub resurrected: usize,
    /// Packs deleted.
    pub deleted: usize,
    /// Bytes deleted.
    pub bytes_deleted: u64,
    /// Packs still marked, waiting for their grace period.
    pub waiting: usize,
    /// Bytes in packs still marked.
    pub bytes_waiting: u64,
    /// Packs in no index (an interrupted or running backup's) deleted.
    pub orphans_deleted: usize,
    /// Packs in no index left alone because they are recent.
    pub orphans_kept: usize,
    /// Temporary files of interrupted writes removed.
    pub temporary_deleted: usize,
    /// Index files written.
    pub index_files_written: usize,
    /// Index files removed.
    pub index_files_removed: usize,
    /// Immutable mode: objects the object lock did not let this prune
    /// delete (packs with their sizes, and small objects: index files,
    /// markers, locks, snapshots).
    pub kept: crate::immutable::Kept,
    /// Lock objects of finished or crashed processes removed (immutable
    /// mode).
    pub locks_removed: usize,
    /// Packs the index lists that are not in the store, whose blobs
    /// snapshots need and no other pack holds: kept in the index (see
    /// `check`).
    pub missing: Vec<PackId>,
    /// Bytes of the packs in the store when prune finished (packs waiting
    /// for their grace period included: they still take space; after a
    /// dry run, the size as it is).
    pub repository_bytes: u64,
    /// Packs deleted by this run (internal bookkeeping, empty at the end).
    gone: Vec<PackId>,
}

/// Stored bytes of a pack's records: (live, total). A group record counts
/// once, and is live in proportion to its live members' plaintext.
fn record_bytes(p: &IndexedPack, live: impl Fn(&hokan_core::PackedBlob) -> bool) -> (u64, u64) {
    let (mut live_bytes, mut total) = (0u64, 0u64);
    for record in p.blobs.chunk_by(|a, b| a.offset == b.offset) {
        let length = record[0].length as u64;
        total += length;
        let raw: u64 = record.iter().map(|b| b.raw_len as u64).sum();
        let live_raw: u64 = record
            .iter()
            .filter(|b| live(b))
            .map(|b| b.raw_len as u64)
            .sum();
        live_bytes += match raw {
            0 => length * record.iter().any(&live) as u64,
            raw => length * live_raw / raw,
        };
    }
    (live_bytes, total)
}

enum Fate {
    Keep,
    Mark,
    Repack,
}

/// Runs a prune; see the module documentation.
pub fn prune(repo: Repository, options: &PruneOptions) -> Result<PruneReport> {
    prune_with(repo, options, &())
}

/// [`prune`], telling `progress` about each phase.
pub fn prune_with(
    repo: Repository,
    options: &PruneOptions,
    progress: &dyn PhaseProgress,
) -> Result<PruneReport> {
    let lock = PruneLock::acquire(&repo)?;
    let retention = repo.store().immutable();
    let now = chrono::Utc::now().timestamp();
    let grace = options.grace.as_secs() as i64;
    let mut report = PruneReport::default();

    // The repository as it is now. Prune deletes what nothing needs, so it
    // must be able to read everything that could say what is needed.
    let refuse = |what: String| {
        Err(Error::corrupted(
            what,
            "it cannot be read, so prune cannot know what it needs; nothing was deleted",
        ))
    };
    let crate::objects::IndexFiles {
        files,
        unreadable: bad_files,
    } = repo.index_files()?;
    if let Some(u) = bad_files.first() {
        return refuse(format!(
            "index file {} ({}: {})",
            u.id.short(),
            u.path,
            u.reason
        ));
    }
    let active = live_packs(&files);
    let seen: HashSet<PackId> = active.iter().map(|p| p.id).collect();
    let locks = repo.locks()?;
    if let Some(u) = locks.unreadable.first() {
        return refuse(format!(
            "lock object {} ({}: {})",
            u.id.short(),
            u.path,
            u.reason
        ));
    }
    // Backups running now may depend on any pack that was live when they
    // loaded their index: such packs may be marked, but not deleted.
    let writers = locks.running_writers(now);
    if options.instant_delete && !options.dry_run && !writers.is_empty() {
        return Err(Error::Locked(format!(
            "{} is running (and {} more): deleting packs at once could remove data it \
             depends on; nothing was deleted. Prune without instant deletion (packs are \
             deleted after the grace period), or wait for the backup to finish",
            writers[0],
            writers.len() - 1
        )));
    }
    let oldest_writer = writers.iter().map(|w| w.started).min().unwrap_or(i64::MAX);
    let damaged: HashSet<(PackId, Id)> = locks.damaged().copied().collect();
    let markers: Vec<(Id, Vec<MarkedPack>)> = locks
        .objects
        .iter()
        .filter_map(|(id, o)| match o {
            LockObject::Deletion { marked } => Some((*id, marked.clone())),
            _ => None,
        })
        .collect();
    let damage_records: Vec<(Id, Vec<(PackId, Id)>)> = locks
        .objects
        .iter()
        .filter_map(|(id, o)| match o {
            LockObject::Damaged { blobs, .. } => Some((*id, blobs.clone())),
            _ => None,
        })
        .collect();
    let mut marked: HashMap<PackId, MarkedPack> = HashMap::new();
    for m in markers.iter().flat_map(|(_, m)| m) {
        // A pack both indexed and marked (an interrupted prune) counts as indexed.
        if !seen.contains(&m.pack.id) {
            let e = marked.entry(m.pack.id).or_insert_with(|| m.clone());
            e.marked_at = e.marked_at.min(m.marked_at);
        }
    }
    let stored: HashMap<PackId, crate::store::Listed> = repo.pack_files()?;
    report.packs_before = active.len();
    report.bytes_before = stored.values().map(|l| l.size).sum();

    // Everything readable: live packs first (they win among duplicates),
    // then marked ones that still exist. Blobs of indexed packs that are
    // gone count as damaged copies: another copy wins wherever one exists.
    let distrusted: HashSet<(PackId, Id)> = damaged
        .iter()
        .copied()
        .chain(
            active
                .iter()
                .filter(|p| !stored.contains_key(&p.id))
                .flat_map(|p| p.blobs.iter().map(|b| (p.id, b.id))),
        )
        .collect();
    let full = readable_index(
        &active,
        marked.values().filter(|m| stored.contains_key(&m.pack.id)),
        &distrusted,
    );
    let list = repo.snapshot_list()?;
    if let Some(u) = list.unreadable.first() {
        return refuse(format!(
            "snapshot {} ({}: {})",
            u.id.short(),
            u.path,
            u.reason
        ));
    }
    let snapshots = list.entries;
    report.snapshots = snapshots.len();
    let (key, store) = (repo.master_key().clone(), repo.store().clone());
    let reader = BlobReader::new(&key, &full, &store);
    let used = walk::used_blobs(&reader, &snapshots, progress, false)?.blobs;
    report.used_blobs = used.len();
    // Packs in no index are deleted below: if a snapshot needs a blob the
    // index does not know, its pack may be one of them. Stop instead.
    if let Some(missing) = used.iter().find(|id| !full.contains(id)) {
        return Err(Error::NotIndexed {
            what: format!("blob {}, which a snapshot needs,", missing.short()),
        });
    }

    // A blob counts for the pack the index resolves it to; other copies
    // (two writers stored it, or a damaged copy beside an intact one) are
    // dead weight. A damaged copy with no intact one elsewhere is what
    // the index resolves to: it keeps its pack, which holds every byte of
    // that blob that is left, until the data is stored again or no
    // snapshot needs it.
    let live_in = |p: &IndexedPack, b: &hokan_core::PackedBlob| {
        used.contains(&b.id) && full.get(&b.id).is_some_and(|l| l.pack == p.id)
    };
    let has_damage = |p: &IndexedPack| p.blobs.iter().any(|b| damaged.contains(&(p.id, b.id)));

    let mut fates: Vec<(usize, Fate)> = Vec::new();
    // Packs with both live and dead blobs: (position, live bytes, dead bytes).
    let mut partly: Vec<(usize, u64, u64)> = Vec::new();
    for (i, p) in active.iter().enumerate() {
        let (live, total) = record_bytes(p, |b| live_in(p, b));
        if !stored.contains_key(&p.id) {
            // Gone, and snapshots need blobs no other pack holds: it stays
            // in the index, so check keeps naming what it affects and no
            // backup trusts its blobs (their damage is recorded).
            if live > 0 {
                report.missing.push(p.id);
                fates.push((i, Fate::Keep));
                continue;
            }
            // Gone already and unused: the rewritten index simply omits it.
            fates.push((i, Fate::Mark));
            continue;
        }
        let fate = if live == 0 { Fate::Mark } else { Fate::Keep };
        fates.push((i, fate));
        // A damaged pack is salvaged by repair, not repacked by prune.
        if live > 0 && live < total && !has_damage(p) {
            partly.push((i, live, total - live));
        }
    }
    // Repack the packs with the largest unused share until the dead weight
    // left is within the allowance: bounded rewriting, most space freed.
    let live_total: u64 = partly.iter().map(|(_, l, _)| l).sum::<u64>()
        + fates
            .iter()
            .filter(|(_, f)| matches!(f, Fate::Keep))
            .map(|(i, _)| record_bytes(&active[*i], |_| true).1)
            .sum::<u64>();
    let mut unused_total: u64 = partly.iter().map(|(_, _, u)| u).sum();
    let allowed = (live_total as f64 * options.max_unused) as u64;
    partly.sort_by(|a, b| {
        (b.2 * a.1.max(1))
            .cmp(&(a.2 * b.1.max(1)))
            .then(a.0.cmp(&b.0))
    });
    for (i, _, unused) in &partly {
        if unused_total <= allowed {
            break;
        }
        if let Some(f) = fates.iter_mut().find(|(j, _)| j == i) {
            f.1 = Fate::Repack;
        }
        unused_total -= unused;
    }
    let mut resurrect = Vec::new();
    let mut delete: Vec<PackId> = Vec::new();
    let mut still_marked = Vec::new();
    for m in marked.values() {
        if !stored.contains_key(&m.pack.id) {
            continue;
        }
        if m.pack.blobs.iter().any(|b| live_in(&m.pack, b)) {
            resurrect.push(m.pack.clone());
        } else if options.instant_delete
            || (now - m.marked_at >= grace && m.marked_at < oldest_writer)
        {
            delete.push(m.pack.id);
        } else {
            still_marked.push(m.clone());
        }
    }
    for (id, l) in &stored {
        if seen.contains(id) || marked.contains_key(id) {
            continue;
        }
        // A pack in no index may belong to a backup that is running now.
        if options.instant_delete || (now - l.modified >= grace && l.modified < oldest_writer) {
            delete.push(*id);
            report.orphans_deleted += 1;
        } else {
            report.orphans_kept += 1;
        }
    }
    report.resurrected = resurrect.len();
    report.marked = fates
        .iter()
        .filter(|(_, f)| matches!(f, Fate::Mark))
        .count();
    report.repacked = fates
        .iter()
        .filter(|(_, f)| matches!(f, Fate::Repack))
        .count();
    let size_of = |id: &PackId| stored.get(id).map_or(0, |l| l.size);
    // Immutable: what the lock keeps is known from the listing's dates.
    let held_until = |id: &PackId| -> Option<i64> {
        let until = stored.get(id)?.modified + retention? as i64;
        (until > now).then_some(until)
    };
    if options.dry_run {
        if retention.is_some() {
            for id in delete.iter().filter(|id| held_until(id).is_some()) {
                report.kept.add(
                    size_of(id),
                    crate::store::Removal::Kept {
                        until: held_until(id),
                    },
                );
            }
            delete.retain(|id| held_until(id).is_none());
        }
        report.deleted = delete.len();
        report.bytes_deleted = delete.iter().map(size_of).sum();
        report.waiting = still_marked.len() + report.marked + report.repacked;
        report.repository_bytes = pack_bytes(&repo)?;
        return Ok(report);
    }

    // 1. Repack: copy the live blobs of mostly-unused packs.
    let keep: Vec<&IndexedPack> = fates
        .iter()
        .filter(|(_, f)| matches!(f, Fate::Keep))
        .map(|(i, _)| &active[*i])
        .collect();
    let repack: Vec<&IndexedPack> = fates
        .iter()
        .filter(|(_, f)| matches!(f, Fate::Repack))
        .map(|(i, _)| &active[*i])
        .collect();
    let mut new_packs: Vec<IndexedPack> = Vec::new();
    let mut session_files: Vec<Id> = Vec::new();
    let repo = if repack.is_empty() {
        repo
    } else {
        let mut kept_index = IndexBuilder::default();
        for p in &keep {
            kept_index.add_pack(p.id, p.kind, &p.blobs);
        }
        let mut writable = IndexedRepository::from_parts(repo, kept_index.build());
        let live_bytes = |p: &IndexedPack| -> u64 {
            p.blobs
                .iter()
                .filter(|b| live_in(p, b))
                .map(|b| b.raw_len as u64)
                .sum()
        };
        progress.phase(
            "repacking",
            repack.iter().map(|p| live_bytes(p)).sum(),
            Unit::Bytes,
        );
        let (_, summary) = writable.write(|w, _| {
            for p in &repack {
                for b in p.blobs.iter().filter(|b| live_in(p, b)) {
                    let data = reader.read_blob(b.kind, &b.id).map_err(from_core)?;
                    w.write_blob(b.kind, &data).map_err(from_core)?;
                    progress.advance(b.raw_len as u64);
                }
            }
            Ok(())
        })?;
        report.packs_written = summary.packs.len();
        new_packs = summary.packs;
        session_files = summary.index_files;
        writable.into_inner()
    };
    // Immutable: delete what may go first; a pack the lock keeps goes into
    //    the new marker (if it was marked) instead of out of sight.
    if retention.is_some() {
        delete_packs(&repo, &delete, &stored, &mut report, progress, |id| {
            if let Some(m) = marked.get(id) {
                still_marked.push(m.clone());
            }
        })?;
        delete.clear();
    }
    // 2. Mark: one marker with every pack waiting, written before the index
    //    stops listing them.
    let mut now_marked: Vec<MarkedPack> = still_marked;
    let newly: Vec<&IndexedPack> = fates
        .iter()
        .filter(|(_, f)| matches!(f, Fate::Mark | Fate::Repack))
        .map(|(i, _)| &active[*i])
        .filter(|p| stored.contains_key(&p.id))
        .collect();
    if options.instant_delete && retention.is_none() {
        delete.extend(newly.iter().map(|p| p.id));
    } else {
        now_marked.extend(newly.iter().map(|p| MarkedPack {
            marked_at: now,
            pack: (*p).clone(),
        }));
    }
    if !now_marked.is_empty() {
        repo.save_lock(&LockObject::Deletion {
            marked: now_marked.clone(),
        })?;
    }
    report.waiting = now_marked.len();
    report.bytes_waiting = now_marked.iter().map(|m| size_of(&m.pack.id)).sum();

    // 3. Index: the packs that stay, in new files; then one file naming
    //    every old file as superseded; then the old files and markers go
    //    (markers last: a pack taken back into the index must be listed
    //    somewhere at every moment).
    let mut live: Vec<IndexedPack> = keep.into_iter().cloned().collect();
    live.extend(resurrect);
    live.extend(new_packs);
    let indexed_after: HashSet<PackId> = live.iter().map(|p| p.id).collect();
    // Blobs of a missing pack that snapshots still need are recorded as
    // damaged (as check records them), so the next backup of the same data
    // stores it afresh instead of deduplicating against what is gone.
    let unrecorded: Vec<(PackId, Id)> = active
        .iter()
        .filter(|p| report.missing.contains(&p.id))
        .flat_map(|p| p.blobs.iter().map(|b| (p.id, b.id)))
        .filter(|b| !damaged.contains(b))
        .collect();
    if !unrecorded.is_empty() {
        repo.save_lock(&LockObject::Damaged {
            found_at: now,
            blobs: unrecorded,
        })?;
    }
    // Outside immutable mode superseded files left by an interrupted prune
    // are consolidated here; in it they are deleted once the lock allows
    // (below), as rewriting would only add more files the lock holds.
    let changed = report.marked + report.repacked + report.resurrected > 0
        || (retention.is_none() && files.iter().any(|(_, f)| !f.supersedes.is_empty()));
    if changed {
        let mut written = Vec::new();
        for batch in live.chunks(256) {
            written.push(repo.write_index_file(&IndexFile {
                supersedes: Vec::new(),
                packs: batch.to_vec(),
            })?);
        }
        let mut old: Vec<Id> = files.iter().map(|(id, _)| *id).collect();
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
    } else if retention.is_some() {
        remove_superseded(&repo, &files, &mut report)?;
    }
    for (id, _) in &markers {
        let r = repo.delete_lock(id)?;
        report.kept.add(0, r);
    }

    // 4. Delete packs whose time has come.
    delete_packs(&repo, &delete, &stored, &mut report, progress, |_| {})?;

    // 5. Damage records of packs now gone from both the store and the
    //    index say nothing any more. A record of a pack the index still
    //    lists (one that is missing but needed) stays: it keeps backups
    //    from trusting the pack's blobs.
    let gone: HashSet<PackId> = report.gone.iter().copied().collect();
    for (id, blobs) in &damage_records {
        if blobs.iter().all(|(p, _)| {
            (gone.contains(p) || !stored.contains_key(p)) && !indexed_after.contains(p)
        }) {
            let r = repo.delete_lock(id)?;
            report.kept.add(0, r);
        }
    }

    // 6. Temporary files of writes that died.
    for dir in layout::DIRS {
        for t in repo.store().temporary_files(dir)? {
            if options.instant_delete || now - t.modified >= TEMPORARY_AFTER {
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
    if retention.is_some() {
        report.locks_removed =
            crate::locks::expire_locks(&repo, &locks, lock.id(), &mut report.kept)?;
    }
    report.gone.clear();
    report.repository_bytes = pack_bytes(&repo)?;
    Ok(report)
}

/// Bytes of the packs in the store, as listed.
fn pack_bytes(repo: &Repository) -> Result<u64> {
    Ok(repo
        .store()
        .list(layout::DATA)?
        .iter()
        .map(|l| l.size)
        .sum())
}

/// Deletes packs (in immutable mode: those the lock lets go; `kept` hears
/// of each other one).
fn delete_packs(
    repo: &Repository,
    delete: &[PackId],
    stored: &HashMap<PackId, crate::store::Listed>,
    report: &mut PruneReport,
    progress: &dyn PhaseProgress,
    mut kept: impl FnMut(&PackId),
) -> Result<()> {
    if delete.is_empty() {
        return Ok(());
    }
    progress.phase("deleting packs", delete.len() as u64, Unit::Items);
    for id in delete {
        let listed = stored.get(id);
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
    files: &[(Id, IndexFile)],
    report: &mut PruneReport,
) -> Result<()> {
    let superseded: HashSet<Id> = files
        .iter()
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .collect();
    let present: HashSet<Id> = files.iter().map(|(id, _)| *id).collect();
    let mut gone = HashSet::new();
    for id in present.iter().filter(|id| superseded.contains(id)) {
        let r = repo.delete_index_file(id)?;
        report.kept.add(0, r);
        if r.deleted() {
            gone.insert(*id);
            report.index_files_removed += 1;
        }
    }
    for (id, f) in files {
        if f.packs.is_empty()
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
