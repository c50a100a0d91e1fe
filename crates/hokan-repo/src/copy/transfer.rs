//! Moving one snapshot's blobs from a source repository into a write
//! session of the target, in three steps:
//!
//! 1. **walk**: read every tree of the snapshot from the source (a level
//!    at a time, so each level is one batch of parallel range reads), each
//!    checked against its id; note the data blobs the target still lacks;
//! 2. **data**: read those blobs from the source in batches sorted by
//!    their place in the source's packs (a reader thread fetches the next
//!    batch while this one is compressed, sealed and packed for the
//!    target), each checked against its id, and store them under the
//!    target's keys;
//! 3. **trees**: store the trees bottom-up, with chunk and subtree ids
//!    mapped to the target's. When both repositories share their id key
//!    (`init --copy-chunker-params-from`) nothing maps: trees are stored
//!    byte for byte and keep their ids.
//!
//! Trees are stored last, after everything they name: a copy interrupted
//! half-way never leaves the target a tree whose contents it lacks.
//! What was stored is remembered ([`Memo`]) for the snapshots that follow
//! in the same run, so shared data is read once.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;

use rayon::prelude::*;

use hokan_core::{BlobReader, BlobType, BlobWriter, ChunkId, ChunkRef, Id, Node, Tree, TreeId};

use crate::error::{Error, Result, from_core};
use crate::maintenance::{PhaseProgress, Unit};

/// Data read from the source at a time: large enough to keep every core
/// busy and a round trip hidden, small enough to bound memory (two
/// batches are in memory at once).
const BATCH_BYTES: u64 = 32 << 20;
/// Blobs per batch at most (many small files).
const BATCH_BLOBS: usize = 4096;
/// Trees read from the source in one request batch.
const TREE_BATCH: usize = 1024;

/// What earlier snapshots of this run stored: source id → target id.
#[derive(Default)]
pub(crate) struct Memo {
    pub data: HashMap<ChunkId, ChunkId>,
    pub trees: HashMap<TreeId, TreeId>,
}

/// Blobs moved by one snapshot's transfer.
#[derive(Default)]
pub(crate) struct Moved {
    /// Blobs read from the source and handed to the target's writer.
    pub blobs: AtomicU64,
    /// Their plaintext bytes.
    pub bytes: AtomicU64,
}

/// The trees of one snapshot, as read from the source.
struct Walked {
    /// Plaintext of each tree not stored by an earlier snapshot, and the
    /// path the walk first reached it at (for messages).
    trees: HashMap<TreeId, (Vec<u8>, PathBuf)>,
    /// Data blobs to read from the source, each once.
    data: Vec<ChunkRef>,
}

/// One snapshot's transfer; see the module documentation.
pub(crate) struct Transfer<'a> {
    pub source: &'a BlobReader<'a>,
    pub writer: &'a BlobWriter<'a>,
    /// Both repositories identify data the same way.
    pub same_ids: bool,
    /// The source snapshot, for messages.
    pub snapshot: Id,
    pub progress: &'a dyn PhaseProgress,
    pub moved: &'a Moved,
}

impl Transfer<'_> {
    /// Stores the tree `root` of the source and everything below it in the
    /// target; returns its id there.
    pub fn run(&self, root: TreeId, memo: &mut Memo) -> Result<TreeId> {
        if let Some(t) = memo.trees.get(&root) {
            return Ok(*t);
        }
        let walked = self.walk(root, memo)?;
        self.copy_data(&walked, memo)?;
        self.store_trees(root, &walked, memo)
    }

    /// An error about the source's blob `id` at `path` of this snapshot.
    fn damaged(&self, what: &str, id: &Id, path: &Path, e: hokan_core::Error) -> Error {
        Error::corrupted(
            format!(
                "{what} {} ({} in snapshot {} of the source repository)",
                id.short(),
                path.display(),
                self.snapshot.short()
            ),
            format!(
                "{}; the copy stopped before saving this snapshot (what the target already \
                 holds stays consistent)",
                from_core(e)
            ),
        )
    }

    fn walk(&self, root: TreeId, memo: &mut Memo) -> Result<Walked> {
        self.progress
            .phase(&self.phase_name("reading trees"), 0, Unit::Items);
        let mut walked = Walked {
            trees: HashMap::new(),
            data: Vec::new(),
        };
        let mut wanted: HashSet<ChunkId> = HashSet::new();
        let mut level = vec![(root, PathBuf::from("/"))];
        while !level.is_empty() {
            let mut next = Vec::new();
            for batch in level.chunks(TREE_BATCH) {
                let ids: Vec<Id> = batch.iter().map(|(t, _)| t.0).collect();
                let read = self
                    .source
                    .read_blobs(BlobType::Tree, &ids)
                    .map_err(from_core)?;
                for ((id, path), bytes) in batch.iter().zip(read) {
                    let bytes = bytes.map_err(|e| self.damaged("tree", &id.0, path, e))?;
                    let tree = Tree::decode(&bytes, id)
                        .map_err(|e| self.damaged("tree", &id.0, path, e))?;
                    for n in &tree.nodes {
                        for c in n.content.iter().filter(|c| !c.is_hole()) {
                            if memo.data.contains_key(&c.id) || !wanted.insert(c.id) {
                                continue;
                            }
                            // Shared ids: what the target holds needs no
                            // reading (and counts its pack as used).
                            if self.same_ids && self.writer.contains(&c.id.0) {
                                memo.data.insert(c.id, c.id);
                                continue;
                            }
                            walked.data.push(*c);
                        }
                        if let Some(sub) = n.subtree
                            && !memo.trees.contains_key(&sub)
                            && !walked.trees.contains_key(&sub)
                        {
                            next.push((sub, path.join(&*n.name_lossy())));
                        }
                    }
                    walked.trees.insert(*id, (bytes, path.clone()));
                    self.progress.advance(1);
                }
            }
            // A subtree reached twice on one level is read once.
            let mut seen = HashSet::new();
            next.retain(|(t, _)| !walked.trees.contains_key(t) && seen.insert(*t));
            level = next;
        }
        Ok(walked)
    }

    /// Where a data blob is used in this snapshot, for messages.
    fn path_of(&self, walked: &Walked, id: &ChunkId) -> PathBuf {
        for (tid, (bytes, path)) in &walked.trees {
            let Ok(tree) = Tree::decode(bytes, tid) else {
                continue;
            };
            if let Some(n) = tree
                .nodes
                .iter()
                .find(|n| n.content.iter().any(|c| c.id == *id))
            {
                return path.join(&*n.name_lossy());
            }
        }
        PathBuf::from("?")
    }

    fn copy_data(&self, walked: &Walked, memo: &mut Memo) -> Result<()> {
        // In the order of the source's packs: neighbours share a request.
        let index = self.source.index();
        let mut todo: Vec<_> = walked
            .data
            .iter()
            .map(|c| (index.get(&c.id.0).map(|l| (l.pack, l.offset)), *c))
            .collect();
        todo.sort_by_key(|(at, _)| *at);
        let total: u64 = todo.iter().map(|(_, c)| c.len as u64).sum();
        self.progress
            .phase(&self.phase_name("copying data"), total, Unit::Bytes);
        let mut batches: Vec<Vec<ChunkRef>> = Vec::new();
        let mut bytes = 0;
        for (_, c) in todo {
            match batches.last_mut() {
                Some(b) if bytes + c.len as u64 <= BATCH_BYTES && b.len() < BATCH_BLOBS => {
                    bytes += c.len as u64;
                    b.push(c);
                }
                _ => {
                    bytes = c.len as u64;
                    batches.push(vec![c]);
                }
            }
        }
        std::thread::scope(|s| -> Result<()> {
            let (tx, rx) = mpsc::sync_channel(1);
            let source = self.source;
            s.spawn(move || {
                for batch in batches {
                    let ids: Vec<Id> = batch.iter().map(|c| c.id.0).collect();
                    let read = source.read_blobs(BlobType::Data, &ids);
                    let failed = read.is_err();
                    // A closed channel: the writing side failed and stopped.
                    if tx.send((batch, read)).is_err() || failed {
                        break;
                    }
                }
            });
            for (batch, read) in rx {
                let read = read.map_err(from_core)?;
                let stored: Vec<Result<(ChunkId, ChunkId)>> = batch
                    .par_iter()
                    .zip(read.into_par_iter())
                    .map(|(c, data)| {
                        let data = data.map_err(|e| {
                            self.damaged("data blob", &c.id.0, &self.path_of(walked, &c.id), e)
                        })?;
                        let new = self
                            .writer
                            .write_blob(BlobType::Data, &data)
                            .map_err(from_core)?;
                        self.moved.blobs.fetch_add(1, Relaxed);
                        self.moved.bytes.fetch_add(data.len() as u64, Relaxed);
                        self.progress.advance(data.len() as u64);
                        Ok((c.id, ChunkId(new)))
                    })
                    .collect();
                for r in stored {
                    let (old, new) = r?;
                    memo.data.insert(old, new);
                }
            }
            Ok(())
        })
    }

    /// Stores the walked trees children first.
    fn store_trees(&self, root: TreeId, walked: &Walked, memo: &mut Memo) -> Result<TreeId> {
        self.progress.phase(
            &self.phase_name("storing trees"),
            walked.trees.len() as u64,
            Unit::Items,
        );
        let format = self.writer.config().format;
        let mut stack = vec![(root, false)];
        while let Some((t, children_done)) = stack.pop() {
            if memo.trees.contains_key(&t) {
                continue;
            }
            let Some((bytes, path)) = walked.trees.get(&t) else {
                return Err(unmapped(&t.0));
            };
            let tree = Tree::decode(bytes, &t).map_err(|e| self.damaged("tree", &t.0, path, e))?;
            if !children_done {
                stack.push((t, true));
                stack.extend(
                    tree.nodes
                        .iter()
                        .filter_map(|n| n.subtree)
                        .filter(|s| !memo.trees.contains_key(s))
                        .map(|s| (s, false)),
                );
                continue;
            }
            let mut changed = false;
            let mut nodes: Vec<Node> = tree.nodes;
            for n in &mut nodes {
                for c in n.content.iter_mut().filter(|c| !c.is_hole()) {
                    let new = *memo.data.get(&c.id).ok_or_else(|| unmapped(&c.id.0))?;
                    changed |= new != c.id;
                    c.id = new;
                }
                if let Some(s) = n.subtree.as_mut() {
                    let new = *memo.trees.get(s).ok_or_else(|| unmapped(&s.0))?;
                    changed |= new != *s;
                    *s = new;
                }
            }
            // Unchanged and already in the target's encoding: the same
            // bytes, so (with shared ids) the same id.
            let new = if !changed && bytes.first().is_some_and(|&v| format.writes_tree(v)) {
                self.writer.write_tree_encoded(bytes).map_err(from_core)?
            } else {
                self.writer.write_tree(&Tree { nodes }).map_err(from_core)?
            };
            self.moved.blobs.fetch_add(1, Relaxed);
            self.moved.bytes.fetch_add(bytes.len() as u64, Relaxed);
            self.progress.advance(1);
            memo.trees.insert(t, new);
        }
        memo.trees
            .get(&root)
            .copied()
            .ok_or_else(|| unmapped(&root.0))
    }

    fn phase_name(&self, step: &str) -> String {
        format!("snapshot {}: {step}", self.snapshot.short())
    }
}

/// A blob a tree names that the steps before did not store: a bug, said
/// as an error rather than a panic.
fn unmapped(id: &Id) -> Error {
    Error::corrupted(
        format!("blob {}", id.short()),
        "copy reached a tree naming it before storing it (a bug in copy); this snapshot \
         was not saved",
    )
}
