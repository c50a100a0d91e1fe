//! Walking every snapshot's trees: what blobs they use (prune, check), and
//! which files need blobs that are missing or damaged (check).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use hokan_core::{BlobReader, Id, TreeId};

use super::{PhaseProgress, Unit};
use crate::error::{Error, Result, from_core};
use crate::snapshot::SnapshotEntry;

/// A tree that could not be read during a walk.
pub(crate) struct BadTree {
    pub tree: TreeId,
    /// Where the first snapshot that reached it has it.
    pub path: PathBuf,
    pub snapshot: Id,
    pub error: String,
}

/// What the snapshots use.
#[derive(Default)]
pub(crate) struct Used {
    /// Every tree and data blob (holes excluded).
    pub blobs: HashSet<Id>,
    /// Distinct trees read, carried ones (version 3) too: those are in
    /// `trees` but not in `blobs`.
    pub trees: HashSet<Id>,
    /// Distinct data blobs.
    pub data: usize,
    /// Trees given to the sink (a sorting sink cannot tell data blobs
    /// apart from them: its distinct ids less these are the data blobs).
    pub tree_blobs: usize,
    /// Trees that could not be read.
    pub bad_trees: Vec<BadTree>,
}

/// Walks every snapshot's trees once (shared subtrees once in all).
/// Unreadable trees are collected, not fatal, when `tolerate` is set (a
/// check, which counts snapshots as it goes); otherwise the first one ends
/// the walk with an error that says nothing was changed (a prune, which
/// counts trees).
pub(crate) fn used_blobs(
    reader: &BlobReader<'_>,
    snapshots: &[SnapshotEntry],
    progress: &dyn PhaseProgress,
    tolerate: bool,
) -> Result<Used> {
    let mut blobs = HashSet::new();
    let mut used = used_blobs_into(reader, snapshots, progress, tolerate, &mut blobs)?;
    used.blobs = blobs;
    Ok(used)
}

/// Where a walk puts the blobs it finds.
pub(crate) trait UsedSink {
    /// Adds a blob; whether it is new (a sink that cannot tell says yes).
    fn add(&mut self, id: Id) -> Result<bool>;
}

impl UsedSink for HashSet<Id> {
    fn add(&mut self, id: Id) -> Result<bool> {
        Ok(self.insert(id))
    }
}

impl UsedSink for hokan_core::index::IdSorter {
    fn add(&mut self, id: Id) -> Result<bool> {
        self.push(id).map_err(from_core)?;
        Ok(true)
    }
}

/// [`used_blobs`] into `sink` (`Used::blobs` stays empty, and `data`
/// counts what the sink said was new).
pub(crate) fn used_blobs_into(
    reader: &BlobReader<'_>,
    snapshots: &[SnapshotEntry],
    progress: &dyn PhaseProgress,
    tolerate: bool,
    sink: &mut dyn UsedSink,
) -> Result<Used> {
    let mut used = Used::default();
    let mut data = 0usize;
    if tolerate {
        progress.phase("snapshots", snapshots.len() as u64, Unit::Items);
    } else {
        progress.phase("trees of every snapshot", 0, Unit::Items);
    }
    // Trees carried inside other trees (version 3) are read like any tree
    // but are no blobs of their own: they go in `used.trees` only.
    for s in snapshots {
        if tolerate {
            progress.advance(1);
        }
        let mut todo = vec![(s.snapshot.tree, PathBuf::from("/"))];
        while let Some((t, path)) = todo.pop() {
            if !used.trees.insert(t.0) {
                continue;
            }
            if !tolerate {
                progress.advance(1);
            }
            let tree = match hokan_core::browse::read_tree(reader, &t) {
                Ok(tree) => tree,
                Err(e) if tolerate => {
                    sink.add(t.0)?;
                    used.tree_blobs += 1;
                    used.bad_trees.push(BadTree {
                        tree: t,
                        path,
                        snapshot: s.id,
                        error: e.to_string(),
                    });
                    continue;
                }
                Err(hokan_core::Error::BlobNotFound { .. }) => {
                    return Err(Error::NotIndexed {
                        what: format!(
                            "tree {} ({} in snapshot {})",
                            t.short(),
                            path.display(),
                            s.id.short()
                        ),
                    });
                }
                Err(e) => {
                    return Err(Error::corrupted(
                        format!(
                            "tree {} ({} in snapshot {})",
                            t.short(),
                            path.display(),
                            s.id.short()
                        ),
                        format!(
                            "a snapshot needs it and it cannot be read ({}); nothing was deleted",
                            from_core(e)
                        ),
                    ));
                }
            };
            // A tree both stored and carried (stored before its parent
            // carried it) keeps its blob: older parents name it.
            if reader.index().contains(&t.0) || !reader.is_carried(&t.0) {
                sink.add(t.0)?;
                used.tree_blobs += 1;
            }
            for n in tree.nodes {
                let p = path.join(&*n.name_lossy());
                for c in n.content.iter().filter(|c| !c.is_hole()) {
                    if sink.add(c.id.0)? {
                        data += 1;
                    }
                }
                if let Some(sub) = n.subtree {
                    todo.push((sub, p));
                }
            }
        }
    }
    used.data = data;
    Ok(used)
}

/// A file (or directory) of a snapshot that needs a blob that is missing
/// or damaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Affected {
    /// The snapshot.
    pub snapshot: Id,
    /// The path in it.
    pub path: PathBuf,
    /// The blob it needs.
    pub blob: Id,
    /// What is wrong with the blob.
    pub why: String,
}

/// Every file and directory of `snapshots` that needs one of `bad` (blob
/// id → what is wrong with it). Trees that cannot be read count against
/// their directory.
pub(crate) fn affected(
    reader: &BlobReader<'_>,
    snapshots: &[SnapshotEntry],
    bad: &HashMap<Id, String>,
) -> Vec<Affected> {
    let mut out = Vec::new();
    for s in snapshots {
        let mut seen: HashSet<TreeId> = HashSet::new();
        let mut todo = vec![(s.snapshot.tree, PathBuf::from("/"))];
        while let Some((t, path)) = todo.pop() {
            if !seen.insert(t) {
                continue;
            }
            if let Some(why) = bad.get(&t.0) {
                out.push(Affected {
                    snapshot: s.id,
                    path: path.clone(),
                    blob: t.0,
                    why: why.clone(),
                });
                continue;
            }
            let Ok(tree) = hokan_core::browse::read_tree(reader, &t) else {
                continue;
            };
            for n in tree.nodes {
                let p = path.join(&*n.name_lossy());
                if let Some(c) = n.content.iter().find(|c| bad.contains_key(&c.id.0)) {
                    out.push(Affected {
                        snapshot: s.id,
                        path: p.clone(),
                        blob: c.id.0,
                        why: bad[&c.id.0].clone(),
                    });
                }
                if let Some(sub) = n.subtree {
                    todo.push((sub, p));
                }
            }
        }
    }
    out.sort_by(|a, b| (a.snapshot, &a.path).cmp(&(b.snapshot, &b.path)));
    out
}
