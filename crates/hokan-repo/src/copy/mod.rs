//! `copy`: snapshots of one repository stored into another (local → S3 for
//! an off-site copy, S3 → local), re-encrypted under the target's keys and
//! deduplicated against what the target holds.
//!
//! Each snapshot is one write session of the target, committed by the
//! commit every backup goes through ([`crate::session`]): packs, then
//! index files, then the dependencies checked and damage recorded, then
//! the snapshot object, so a copy that fails leaves the snapshots it finished
//! and no snapshot whose blobs are not all stored. The blobs move as
//! [`transfer`] describes.
//!
//! A snapshot already copied is recognised by what it says about the
//! backup ([`CopyKey`]: time to the nanosecond, host, user, paths, tags,
//! source kind, identity, labels), as restic's `copy` does, because tree
//! ids differ between repositories with different id keys. The copy keeps
//! all of that, adds the label `original` (the id of the snapshot it was
//! first taken as, kept through chains of copies) and points its parent
//! at the copy of the source's parent where there is one.

mod memo;
mod transfer;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use hokan_core::{Id, Timestamp};

use crate::error::Result;
use crate::index_load::IndexedRepository;
use crate::locks::WriterLock;
use crate::maintenance::PhaseProgress;
use crate::snapshot::{Snapshot, SnapshotEntry};

pub use memo::CopyBounds;
use memo::Memo;
use transfer::{Moved, Transfer};

/// The label a copy carries: the id of the snapshot it copies (or of the
/// first snapshot of a chain of copies).
pub const ORIGINAL_LABEL: &str = "original";

/// What identifies a backup across repositories: everything its snapshot
/// says except its tree (ids depend on the repository's id key), parent,
/// figures and the `original` label.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CopyKey {
    time: Timestamp,
    hostname: String,
    username: String,
    paths: Vec<String>,
    tags: Vec<String>,
    source: String,
    identity: String,
    labels: Vec<(String, String)>,
}

impl CopyKey {
    /// The key of a snapshot.
    pub fn of(s: &Snapshot) -> Self {
        CopyKey {
            time: s.time,
            hostname: s.hostname.clone(),
            username: s.username.clone(),
            paths: s.paths.clone(),
            tags: s.tags.clone(),
            source: s.source.name().to_string(),
            identity: s.identity.clone(),
            labels: s
                .labels
                .iter()
                .filter(|(k, _)| k != ORIGINAL_LABEL)
                .cloned()
                .collect(),
        }
    }
}

/// One snapshot copied.
#[derive(Clone, Debug)]
pub struct CopiedSnapshot {
    /// Its id in the source.
    pub source: Id,
    /// The copy in the target.
    pub entry: SnapshotEntry,
    /// Blobs read from the source for it (data and trees).
    pub blobs: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
}

/// What a copy did.
#[derive(Clone, Debug, Default)]
pub struct CopyReport {
    /// Whether the two repositories identify data the same way (no
    /// re-identification, trees keep their ids).
    pub same_ids: bool,
    /// Snapshots copied, oldest first.
    pub copied: Vec<CopiedSnapshot>,
    /// Snapshots the target already held a copy of: (source id, target id).
    pub skipped: Vec<(Id, Id)>,
    /// Blobs read from the source and handed to the target.
    pub blobs_copied: u64,
    /// Their plaintext bytes.
    pub bytes_copied: u64,
    /// Blobs the target did not have and stored.
    pub blobs_added: u64,
    /// Their plaintext bytes.
    pub bytes_added: u64,
    /// Bytes the target's store grew by (compressed, sealed, packed).
    pub bytes_stored: u64,
    /// Packs written.
    pub packs_added: u64,
}

impl IndexedRepository {
    /// Copies `selected` snapshots of `source` into this repository,
    /// oldest first, skipping those it already holds a copy of. Stops at
    /// the first error: the snapshots copied before it stay, the one that
    /// failed is not saved. Memory stays within [`CopyBounds::default`].
    pub fn copy_from(
        &mut self,
        source: &IndexedRepository,
        selected: &[SnapshotEntry],
        progress: &dyn PhaseProgress,
    ) -> Result<CopyReport> {
        self.copy_within(source, selected, progress, &CopyBounds::default())
    }

    /// [`IndexedRepository::copy_from`] within other bounds.
    pub fn copy_within(
        &mut self,
        source: &IndexedRepository,
        selected: &[SnapshotEntry],
        progress: &dyn PhaseProgress,
        bounds: &CopyBounds,
    ) -> Result<CopyReport> {
        let mut report = CopyReport {
            same_ids: self.repo.key.same_ids(&source.repo.key),
            ..Default::default()
        };
        let mut selected: Vec<&SnapshotEntry> = selected.iter().collect();
        selected.sort_by_key(|e| (e.snapshot.time, e.id));
        selected.dedup_by_key(|e| e.id);
        let mut held: HashMap<CopyKey, Id> = self
            .snapshots()?
            .into_iter()
            .map(|e| (CopyKey::of(&e.snapshot), e.id))
            .collect();
        // Source snapshot → its copy here, for parents.
        let mut copies: HashMap<Id, Id> = HashMap::new();
        let mut todo = Vec::new();
        for e in selected {
            match held.get(&CopyKey::of(&e.snapshot)) {
                Some(t) => {
                    copies.insert(e.id, *t);
                    report.skipped.push((e.id, *t));
                }
                None => todo.push(e),
            }
        }
        if todo.is_empty() {
            return Ok(report);
        }
        let lock = WriterLock::acquire(&self.repo, self.loaded_at)?;
        let mut memo = Memo::new(bounds);
        let reader = source.reader();
        for e in todo {
            let moved = Moved::default();
            let (tree, summary) = self.write(|writer, _| {
                Transfer {
                    source: &reader,
                    writer,
                    same_ids: report.same_ids,
                    snapshot: e.id,
                    progress,
                    moved: &moved,
                    bounds,
                }
                .run(e.snapshot.tree, &mut memo)
            })?;
            let mut copy = e.snapshot.clone();
            copy.tree = tree;
            copy.parent = copy.parent.and_then(|p| copies.get(&p).copied());
            if copy.label(ORIGINAL_LABEL).is_none() {
                copy.labels
                    .push((ORIGINAL_LABEL.to_string(), e.id.to_hex()));
                copy.labels.sort();
            }
            let entry = self.commit(copy, &summary, &lock)?;
            // A tree carried inside another exists only there: the next
            // snapshot's writer stores it again rather than naming it.
            let index = self.index();
            memo.trees.retain(|_, t| index.contains(&t.0));
            let id = entry.id;
            held.insert(CopyKey::of(&entry.snapshot), id);
            copies.insert(e.id, id);
            let s = &summary.stats;
            report.blobs_added += s.new_blobs;
            report.bytes_added += s.new_bytes;
            report.bytes_stored += s.stored_bytes;
            report.packs_added += summary.packs.len() as u64;
            let (blobs, bytes) = (moved.blobs.load(Relaxed), moved.bytes.load(Relaxed));
            report.blobs_copied += blobs;
            report.bytes_copied += bytes;
            report.copied.push(CopiedSnapshot {
                source: e.id,
                entry,
                blobs,
                bytes,
            });
        }
        drop(lock);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SourceKind;
    use hokan_core::TreeId;

    #[test]
    fn a_copy_has_the_key_of_its_original_and_a_retagged_snapshot_does_not() {
        let mut s = Snapshot::new(SourceKind::FS, vec!["/data".into()], TreeId(Id([1; 32])));
        s.labels = vec![("pvc".into(), "shop/data".into())];
        let mut copy = s.clone();
        copy.tree = TreeId(Id([2; 32]));
        copy.parent = Some(Id([3; 32]));
        copy.summary.bytes_added = 99;
        copy.labels.push((ORIGINAL_LABEL.into(), "ab".repeat(32)));
        copy.labels.sort();
        assert_eq!(CopyKey::of(&s), CopyKey::of(&copy));
        let mut retagged = s.clone();
        retagged.tags = vec!["weekly".into()];
        assert_ne!(CopyKey::of(&s), CopyKey::of(&retagged));
        let mut later = s.clone();
        later.time.nanos += 1;
        assert_ne!(CopyKey::of(&s), CopyKey::of(&later));
        let mut other = s;
        other.identity = "cluster-b".into();
        assert_ne!(CopyKey::of(&other), CopyKey::of(&copy));
    }
}
