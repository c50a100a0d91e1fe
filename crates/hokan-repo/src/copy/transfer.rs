//! Moving one snapshot's blobs from a source repository into a write
//! session of the target, in windows, so that memory does not grow with
//! the snapshot:
//!
//! - **walk**: the snapshot's trees are walked depth first, each checked
//!   against its id. The subtrees of a directory are read together, in one
//!   batch of parallel range reads. Each tree's data blobs that the target
//!   lacks join the current window.
//! - **flush**, when the window holds [`CopyBounds::window_blobs`] blobs or
//!   [`CopyBounds::window_bytes`] of data, when the trees finished in it
//!   hold [`CopyBounds::tree_bytes`], and at the end:
//!   1. **data**: the window's blobs are read from the source in batches
//!      sorted by their place in the source's packs (a reader thread fetches
//!      the next batch while this one is compressed, sealed and packed for
//!      the target), each checked against its id, and stored under the
//!      target's keys;
//!   2. **trees**: the trees finished since the last flush are stored,
//!      children first, with chunk and subtree ids mapped to the target's.
//!      When both repositories share their id key
//!      (`init --copy-chunker-params-from`) nothing maps: trees are stored
//!      byte for byte and keep their ids;
//!   3. the directories still open on the walk's path take the target's ids
//!      of what was stored, so nothing of the window is needed after it.
//!
//! Trees are stored after everything they name: a copy interrupted
//! half-way never leaves the target a tree whose contents it lacks. What
//! was stored is remembered within a bound ([`Memo`]) for the windows and
//! snapshots that follow in the same run, so shared data is read once.
//!
//! Memory: the window, two read batches, the directories on the path (each
//! with up to [`TREE_BATCH`] subtrees read ahead) and the memo.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;

use rayon::prelude::*;

use hokan_core::{BlobReader, BlobType, BlobWriter, ChunkId, ChunkRef, Id, Node, Tree, TreeId};

use super::memo::{CopyBounds, Memo};
use crate::error::{Error, Result, from_core};
use crate::maintenance::{PhaseProgress, Unit};

/// Data read from the source at a time: large enough to keep every core
/// busy and a round trip hidden, small enough to bound memory (two
/// batches are in memory at once).
const BATCH_BYTES: u64 = 32 << 20;
/// Blobs per batch at most (many small files).
const BATCH_BLOBS: usize = 4096;
/// Subtrees of one directory read from the source in one request batch.
const TREE_BATCH: usize = 256;

/// A tree as read from the source: its bytes, or why they could not be
/// read (said with the path where the walk met it).
type ReadTree = hokan_core::Result<Vec<u8>>;

/// Blobs moved by one snapshot's transfer.
#[derive(Default)]
pub(crate) struct Moved {
    /// Blobs read from the source and handed to the target's writer.
    pub blobs: AtomicU64,
    /// Their plaintext bytes.
    pub bytes: AtomicU64,
}

/// A tree read from the source, its nodes being mapped to the target's ids.
struct Walked {
    id: TreeId,
    /// Where the walk reached it, for messages.
    path: PathBuf,
    /// The source's encoding (stored as it is when nothing changes).
    bytes: Vec<u8>,
    nodes: Vec<Node>,
    /// Whether an id in `nodes` was mapped to a different one.
    changed: bool,
    /// Chunk references still naming the source's ids: (node, chunk).
    pending_chunks: Vec<(u32, u32)>,
    /// Nodes whose subtree still names the source's id. A tree is stored
    /// only when nothing is pending.
    sub_pending: Vec<bool>,
    /// The next node to consider descending into.
    next: usize,
    /// Subtrees read ahead, by id.
    ahead: HashMap<TreeId, ReadTree>,
}

impl Walked {
    /// Node `i`'s pending subtree is `new` in the target.
    fn map_subtree(&mut self, i: usize, new: TreeId) {
        let n = &mut self.nodes[i];
        self.changed |= n.subtree != Some(new);
        n.subtree = Some(new);
        self.sub_pending[i] = false;
    }
}

/// Data and finished trees not yet stored.
#[derive(Default)]
struct Window {
    data: Vec<ChunkRef>,
    ids: HashSet<ChunkId>,
    data_bytes: u64,
    /// Finished trees, children before parents.
    done: Vec<Walked>,
    done_ids: HashSet<TreeId>,
    done_bytes: usize,
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
    pub bounds: &'a CopyBounds,
}

impl Transfer<'_> {
    /// Stores the tree `root` of the source and everything below it in the
    /// target; returns its id there.
    pub fn run(&self, root: TreeId, memo: &mut Memo) -> Result<TreeId> {
        if let Some(t) = memo.trees.get(&root) {
            return Ok(t);
        }
        self.progress.phase(
            &format!("snapshot {}: copying", self.snapshot.short()),
            0,
            Unit::Bytes,
        );
        let mut window = Window::default();
        let bytes = self.read_trees(&[root])?.remove(&root);
        let mut path = vec![self.open(root, PathBuf::from("/"), bytes, memo, &mut window)?];
        let mut last = None;
        while let Some(top) = path.last_mut() {
            match self.next_subtree(top, memo, &window)? {
                Some((sub, at, bytes)) => {
                    let open = self.open(sub, at, bytes, memo, &mut window)?;
                    path.push(open);
                }
                None => {
                    let done = path.pop().expect("a tree on the path");
                    window.done_bytes += done.bytes.len();
                    window.done_ids.insert(done.id);
                    window.done.push(done);
                    if window.data.len() >= self.bounds.window_blobs
                        || window.data_bytes >= self.bounds.window_bytes
                        || window.done_bytes >= self.bounds.tree_bytes
                    {
                        last = self.flush(&mut window, &mut path, memo)?.or(last);
                    }
                }
            }
        }
        last = self.flush(&mut window, &mut path, memo)?.or(last);
        // The root is the last tree the walk finishes, so the last stored.
        last.ok_or_else(|| unmapped(&root.0))
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

    /// Reads trees from the source in one batch; a tree that cannot be read
    /// is kept as its error, for the message naming its path.
    fn read_trees(&self, ids: &[TreeId]) -> Result<HashMap<TreeId, ReadTree>> {
        let raw: Vec<Id> = ids.iter().map(|t| t.0).collect();
        let read = self
            .source
            .read_blobs(BlobType::Tree, &raw)
            .map_err(from_core)?;
        Ok(ids.iter().copied().zip(read).collect())
    }

    /// Decodes a tree read from the source and gathers what it names: data
    /// the target lacks joins the window, data and subtrees the memo knows
    /// take their target ids at once.
    fn open(
        &self,
        id: TreeId,
        path: PathBuf,
        bytes: Option<ReadTree>,
        memo: &mut Memo,
        window: &mut Window,
    ) -> Result<Walked> {
        let bytes = bytes
            .ok_or_else(|| unmapped(&id.0))?
            .map_err(|e| self.damaged("tree", &id.0, &path, e))?;
        let tree = Tree::decode(&bytes, &id).map_err(|e| self.damaged("tree", &id.0, &path, e))?;
        let mut walked = Walked {
            id,
            path,
            bytes,
            sub_pending: vec![false; tree.nodes.len()],
            nodes: tree.nodes,
            changed: false,
            pending_chunks: Vec::new(),
            next: 0,
            ahead: HashMap::new(),
        };
        for (i, n) in walked.nodes.iter_mut().enumerate() {
            for (j, c) in n.content.iter_mut().enumerate() {
                if c.is_hole() {
                    continue;
                }
                if self.same_ids {
                    // What the target holds (or this session stored) needs
                    // no reading, and counts its pack as used.
                    if self.writer.contains(&c.id.0) {
                        continue;
                    }
                } else if let Some(new) = memo.data.get(&c.id) {
                    walked.changed |= new != c.id;
                    c.id = new;
                    continue;
                }
                walked.pending_chunks.push((i as u32, j as u32));
                if window.ids.insert(c.id) {
                    window.data.push(*c);
                    window.data_bytes += c.len as u64;
                }
            }
            if let Some(sub) = n.subtree.as_mut() {
                match memo.trees.get(sub) {
                    Some(new) => {
                        walked.changed |= new != *sub;
                        *sub = new;
                    }
                    None => walked.sub_pending[i] = true,
                }
            }
        }
        Ok(walked)
    }

    /// The next subtree of `top` to walk, read (with the following ones, in
    /// one batch) if it was not read ahead; `None` once every subtree is
    /// walked, stored, or waiting in the window.
    fn next_subtree(
        &self,
        top: &mut Walked,
        memo: &mut Memo,
        window: &Window,
    ) -> Result<Option<(TreeId, PathBuf, Option<ReadTree>)>> {
        while top.next < top.nodes.len() {
            let i = top.next;
            top.next += 1;
            if !top.sub_pending[i] {
                continue;
            }
            let Some(sub) = top.nodes[i].subtree else {
                continue;
            };
            // Finished in this window: mapped when the window is stored.
            if window.done_ids.contains(&sub) {
                continue;
            }
            // Stored since `open` looked (the same subtree elsewhere).
            if let Some(new) = memo.trees.get(&sub) {
                top.map_subtree(i, new);
                continue;
            }
            let at = top.path.join(&*top.nodes[i].name_lossy());
            if !top.ahead.contains_key(&sub) {
                let mut batch = vec![sub];
                for (j, n) in top.nodes.iter().enumerate().skip(top.next) {
                    if batch.len() >= TREE_BATCH {
                        break;
                    }
                    if let Some(s) = n.subtree
                        && top.sub_pending[j]
                        && !window.done_ids.contains(&s)
                        && !batch.contains(&s)
                    {
                        batch.push(s);
                    }
                }
                top.ahead = self.read_trees(&batch)?;
            }
            return Ok(Some((sub, at, top.ahead.remove(&sub))));
        }
        top.ahead = HashMap::new();
        Ok(None)
    }

    /// Stores the window: its data, then its finished trees, then maps the
    /// open trees' references to what was stored. Returns the id of the
    /// last tree stored.
    fn flush(
        &self,
        window: &mut Window,
        path: &mut [Walked],
        memo: &mut Memo,
    ) -> Result<Option<TreeId>> {
        let w = std::mem::take(window);
        let data = self.copy_data(&w.data, path, &w.done)?;
        if !self.same_ids {
            for (old, new) in &data {
                memo.data.insert(*old, *new);
            }
        }
        let mut stored: HashMap<TreeId, TreeId> = HashMap::new();
        let mut last = None;
        for mut t in w.done {
            map_refs(&mut t, &data, &stored);
            let old = t.id;
            let new = self.store_tree(t)?;
            memo.trees.insert(old, new);
            stored.insert(old, new);
            last = Some(new);
        }
        for t in path.iter_mut() {
            map_refs(t, &data, &stored);
        }
        Ok(last)
    }

    /// Where a data blob is used among the trees not yet stored, for
    /// messages.
    fn path_of(id: &ChunkId, path: &[Walked], done: &[Walked]) -> PathBuf {
        path.iter()
            .chain(done)
            .find_map(|t| {
                let n = t
                    .nodes
                    .iter()
                    .find(|n| n.content.iter().any(|c| c.id == *id))?;
                Some(t.path.join(&*n.name_lossy()))
            })
            .unwrap_or_else(|| PathBuf::from("?"))
    }

    /// Copies a window's data; returns source id → target id for each blob.
    fn copy_data(
        &self,
        wanted: &[ChunkRef],
        path: &[Walked],
        done: &[Walked],
    ) -> Result<HashMap<ChunkId, ChunkId>> {
        // In the order of the source's packs: neighbours share a request.
        let index = self.source.index();
        let mut todo: Vec<_> = wanted
            .iter()
            .map(|c| (index.get(&c.id.0).map(|l| (l.pack, l.offset)), *c))
            .collect();
        todo.sort_by_key(|(at, _)| *at);
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
        let mut map = HashMap::with_capacity(wanted.len());
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
                            let at = Self::path_of(&c.id, path, done);
                            self.damaged("data blob", &c.id.0, &at, e)
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
                    map.insert(old, new);
                }
            }
            Ok(())
        })?;
        Ok(map)
    }

    /// Stores one finished tree whose references all name the target's ids.
    fn store_tree(&self, t: Walked) -> Result<TreeId> {
        if !t.pending_chunks.is_empty() || t.sub_pending.contains(&true) {
            return Err(unmapped(&t.id.0));
        }
        let format = self.writer.config().format;
        // Unchanged and already in the target's encoding: the same bytes,
        // so (with shared ids) the same id.
        let new = if !t.changed && t.bytes.first().is_some_and(|&v| format.writes_tree(v)) {
            self.writer.write_tree_encoded(&t.bytes)
        } else {
            self.writer.write_tree(&Tree { nodes: t.nodes })
        }
        .map_err(from_core)?;
        self.moved.blobs.fetch_add(1, Relaxed);
        self.moved.bytes.fetch_add(t.bytes.len() as u64, Relaxed);
        self.progress.advance(t.bytes.len() as u64);
        Ok(new)
    }
}

/// Maps a tree's references still naming the source's ids to what a flush
/// stored: `data` for chunks, `trees` for subtrees.
fn map_refs(t: &mut Walked, data: &HashMap<ChunkId, ChunkId>, trees: &HashMap<TreeId, TreeId>) {
    if !data.is_empty() {
        let Walked {
            nodes,
            changed,
            pending_chunks,
            ..
        } = t;
        pending_chunks.retain(|&(n, c)| {
            let r = &mut nodes[n as usize].content[c as usize];
            let Some(new) = data.get(&r.id) else {
                return true;
            };
            *changed |= *new != r.id;
            r.id = *new;
            false
        });
    }
    if trees.is_empty() {
        return;
    }
    for i in 0..t.nodes.len() {
        if t.sub_pending[i]
            && let Some(new) = t.nodes[i].subtree.and_then(|s| trees.get(&s))
        {
            t.map_subtree(i, *new);
        }
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
