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

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hokan_core::{BlobReader, BlobType, Id, IndexBuilder, PackId, Tree, TreeId};

use super::locks::{LockObject, MarkedPack, PruneLock};
use super::{PhaseProgress, Unit, readable_index};
use crate::error::{Error, Result, from_core};
use crate::index_file::{IndexFile, IndexedPack, live_packs};
use crate::repo::{IndexedRepository, Repository, pack_path};

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
    /// Index files written.
    pub index_files_written: usize,
    /// Index files removed.
    pub index_files_removed: usize,
}

/// Every blob id the snapshots use: trees and chunks, walked from roots.
pub(crate) fn used_blobs(
    reader: &BlobReader<'_>,
    roots: &[TreeId],
    progress: &dyn PhaseProgress,
) -> Result<HashSet<Id>> {
    let mut used = HashSet::new();
    let mut todo: Vec<TreeId> = roots.to_vec();
    progress.phase("trees of every snapshot", 0, Unit::Items);
    while let Some(t) = todo.pop() {
        if !used.insert(t.0) {
            continue;
        }
        progress.advance(1);
        let bytes = reader.read_blob(BlobType::Tree, &t.0).map_err(|e| {
            Error::corrupted(
                format!("tree {}", t.short()),
                format!("a snapshot needs it and it cannot be read ({e}); nothing was deleted, run `hokan check`"),
            )
        })?;
        let tree = Tree::decode(&bytes, &t)?;
        for n in tree.nodes {
            used.extend(n.content.iter().map(|c| c.id.0));
            if let Some(sub) = n.subtree {
                todo.push(sub);
            }
        }
    }
    Ok(used)
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
    let _lock = PruneLock::acquire(&repo)?;
    let now = chrono::Utc::now().timestamp();
    let grace = options.grace.as_secs() as i64;
    let mut report = PruneReport::default();

    // The repository as it is now.
    let files = repo.index_files()?;
    let active = live_packs(&files);
    let seen: HashSet<PackId> = active.iter().map(|p| p.id).collect();
    let lock_objects = repo.locks()?;
    let markers: Vec<(Id, Vec<MarkedPack>)> = lock_objects
        .into_iter()
        .filter_map(|(id, o)| match o {
            LockObject::Deletion { marked } => Some((id, marked)),
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
    // then marked ones that still exist.
    let full = readable_index(
        &active,
        marked.values().filter(|m| stored.contains_key(&m.pack.id)),
    );
    let snapshots = repo.snapshots()?;
    report.snapshots = snapshots.len();
    let (key, store) = (repo.master_key().clone(), repo.store().clone());
    let reader = BlobReader::new(&key, &full, &store);
    let roots: Vec<TreeId> = snapshots.iter().map(|s| s.snapshot.tree).collect();
    let used = used_blobs(&reader, &roots, progress)?;
    report.used_blobs = used.len();
    // Packs in no index are deleted below: if a snapshot needs a blob the
    // index does not know, its pack may be one of them. Stop instead.
    if let Some(missing) = used.iter().find(|id| !full.contains(id)) {
        return Err(Error::Missing {
            what: format!(
                "blob {} that a snapshot needs is in no index; run `hokan repair index` before pruning (nothing was deleted)",
                missing.short()
            ),
        });
    }

    // A blob counts for the pack the index resolves it to; other copies
    // (two writers stored it) are dead weight.
    let live_in = |p: &IndexedPack, b: &hokan_core::PackedBlob| {
        used.contains(&b.id) && full.get(&b.id).is_some_and(|l| l.pack == p.id)
    };

    let mut fates: Vec<(usize, Fate)> = Vec::new();
    // Packs with both live and dead blobs: (position, live bytes, dead bytes).
    let mut partly: Vec<(usize, u64, u64)> = Vec::new();
    for (i, p) in active.iter().enumerate() {
        let live: u64 = p
            .blobs
            .iter()
            .filter(|b| live_in(p, b))
            .map(|b| b.length as u64)
            .sum();
        let total: u64 = p.blobs.iter().map(|b| b.length as u64).sum();
        if !stored.contains_key(&p.id) {
            if live > 0 {
                return Err(Error::Missing {
                    what: format!(
                        "pack {} (its blobs are in use; nothing was deleted)",
                        p.id.short()
                    ),
                });
            }
            // Gone already and unused: the rewritten index simply omits it.
            fates.push((i, Fate::Mark));
            continue;
        }
        let fate = if live == 0 { Fate::Mark } else { Fate::Keep };
        fates.push((i, fate));
        if live > 0 && live < total {
            partly.push((i, live, total - live));
        }
    }
    // Repack the packs with the largest unused share until the dead weight
    // left is within the allowance: bounded rewriting, most space freed.
    let live_total: u64 = partly.iter().map(|(_, l, _)| l).sum::<u64>()
        + fates
            .iter()
            .filter(|(_, f)| matches!(f, Fate::Keep))
            .map(|(i, _)| {
                active[*i]
                    .blobs
                    .iter()
                    .map(|b| b.length as u64)
                    .sum::<u64>()
            })
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
        } else if options.instant_delete || now - m.marked_at >= grace {
            delete.push(m.pack.id);
        } else {
            still_marked.push(m.clone());
        }
    }
    for (id, l) in &stored {
        if seen.contains(id) || marked.contains_key(id) {
            continue;
        }
        if options.instant_delete || now - l.modified >= grace {
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
    if options.dry_run {
        report.deleted = delete.len();
        report.bytes_deleted = delete.iter().map(size_of).sum();
        report.waiting = still_marked.len() + report.marked + report.repacked;
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
                .map(|b| b.length as u64)
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
                    progress.advance(b.length as u64);
                }
            }
            Ok(())
        })?;
        report.packs_written = summary.packs.len();
        new_packs = summary.packs;
        session_files = summary.index_files;
        writable.into_inner()
    };
    // 2. Mark: one marker with every pack waiting, written before the index
    //    stops listing them.
    let mut now_marked: Vec<MarkedPack> = still_marked;
    let newly: Vec<&IndexedPack> = fates
        .iter()
        .filter(|(_, f)| matches!(f, Fate::Mark | Fate::Repack))
        .map(|(i, _)| &active[*i])
        .filter(|p| stored.contains_key(&p.id))
        .collect();
    if options.instant_delete {
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
    let changed = report.marked + report.repacked + report.resurrected > 0
        || files.iter().any(|(_, f)| !f.supersedes.is_empty());
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
            repo.store().delete(&format!("index/{}", id.to_hex()))?;
        }
        report.index_files_removed = old.len();
    }
    for (id, _) in &markers {
        repo.delete_lock(id)?;
    }

    // 4. Delete packs whose time has come.
    if !delete.is_empty() {
        progress.phase("deleting packs", delete.len() as u64, Unit::Items);
    }
    for id in &delete {
        report.bytes_deleted += size_of(id);
        repo.store().delete(&pack_path(id))?;
        progress.advance(1);
    }
    report.deleted = delete.len();
    Ok(report)
}
