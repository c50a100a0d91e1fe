//! The write path: chunks in, sealed records in packs out.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

use super::{ChunkRef, PackSink, WriterConfig};
use crate::blob::{self, MAX_GROUP_MEMBERS};
use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::id::{BlobType, ChunkId, Id, PackId};
use crate::index::{IdSet, Index};
use crate::keys::MasterKey;
use crate::pack::PackWriter;
use crate::tree::{CARRY_MAX, Tree};

/// Bytes of chunks waiting for a worker before the reader pauses to help.
const IN_FLIGHT_LIMIT: usize = 64 << 20;

/// The longest hole one chunk reference stands for.
const MAX_HOLE: u32 = 1 << 30;

/// A batch's bytes: borrowed from the caller, or read from a stream and
/// shared by the tasks that process its chunks.
#[derive(Clone)]
enum Bytes<'d> {
    Borrowed(&'d [u8]),
    Shared(Arc<Vec<u8>>),
}

impl Bytes<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Borrowed(b) => b,
            Bytes::Shared(v) => v,
        }
    }
}

/// What a [`BlobWriter`] did, for summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Blobs seen (every chunk of every stream, every tree).
    pub blobs: u64,
    /// Their plaintext bytes (holes included).
    pub bytes: u64,
    /// Blobs that were new and stored.
    pub new_blobs: u64,
    /// Plaintext bytes of the new blobs.
    pub new_bytes: u64,
    /// Bytes the new blobs take in packs (compressed and sealed).
    pub stored_bytes: u64,
    /// Packs finished.
    pub packs: u64,
}

#[derive(Default)]
struct Counters {
    blobs: AtomicU64,
    bytes: AtomicU64,
    new_blobs: AtomicU64,
    new_bytes: AtomicU64,
    stored_bytes: AtomicU64,
    packs: AtomicU64,
}

/// Small blobs waiting to be compressed together.
#[derive(Default)]
struct GroupBuf {
    members: Vec<(Id, Vec<u8>)>,
    bytes: usize,
}

/// The packs of the index a writer deduplicated against, one bit each:
/// what a snapshot of this session depends on beyond its own new packs.
struct UsedPacks(Vec<AtomicU64>);

impl UsedPacks {
    fn new(packs: usize) -> Self {
        UsedPacks((0..packs.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }

    fn set(&self, n: u32) {
        if let Some(w) = self.0.get(n as usize / 64) {
            w.fetch_or(1 << (n % 64), Relaxed);
        }
    }

    fn numbers(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(w, bits)| {
            let bits = bits.load(Relaxed);
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| (w * 64 + b) as u32)
        })
    }
}

/// The write path; see the module documentation. Shareable across threads:
/// several files can be written through one writer at once.
pub struct BlobWriter<'a> {
    key: &'a MasterKey,
    chunker: Chunker,
    config: WriterConfig,
    known: &'a Index,
    /// Ids stored (or being stored) by this writer: dedup within a session.
    claimed: Mutex<IdSet>,
    packers: [Mutex<PackWriter>; 2],
    groups: [Mutex<GroupBuf>; 2],
    sink: &'a dyn PackSink,
    counters: Counters,
    failed: AtomicBool,
    used: UsedPacks,
    /// Small trees written in this session, waiting for the tree that
    /// names them to carry them (tree version 3).
    small_trees: Mutex<std::collections::HashMap<Id, SmallTree>>,
}

/// A small tree's plaintext, whether a tree carries it yet, and whether
/// a tree names it without carrying it (it must then be stored too).
struct SmallTree {
    bytes: Vec<u8>,
    carried: bool,
    named: bool,
}

/// The distinct subtrees a tree names.
fn subtrees_of(tree: &Tree) -> Vec<Id> {
    let mut ids: Vec<Id> = tree
        .nodes
        .iter()
        .filter_map(|n| n.subtree.map(|t| t.0))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Whether every byte of `data` is zero, compared 16 at a time (the
/// writer's test for a hole, and the restorer's for a block to skip).
pub(crate) fn is_zero(data: &[u8]) -> bool {
    let (words, rest) = data.split_at(data.len() / 16 * 16);
    words
        .chunks_exact(16)
        .all(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")) == 0)
        && rest.iter().all(|&b| b == 0)
}

/// Zeros to hash once, for repositories that store zero runs as chunks.
fn zeros(len: usize) -> &'static [u8] {
    // The chunker's largest possible chunk; allocated only by version-1
    // repositories that meet a hole.
    static ZEROS: OnceLock<Vec<u8>> = OnceLock::new();
    &ZEROS.get_or_init(|| vec![0; fastcdc::v2020::MAXIMUM_MAX])[..len]
}

impl<'a> BlobWriter<'a> {
    /// A writer that skips blobs in `known` and sends packs to `sink`.
    pub fn new(
        key: &'a MasterKey,
        config: WriterConfig,
        known: &'a Index,
        sink: &'a dyn PackSink,
    ) -> Result<Self> {
        if config.pack_size < 4096 {
            return Err(Error::invalid("pack size", "must be at least 4096 bytes"));
        }
        let version = config.format.pack_version();
        let capacity = config.pack_size as usize + (1 << 20);
        Ok(BlobWriter {
            key,
            chunker: Chunker::new(config.chunker, key.chunker_seed())?,
            config,
            known,
            claimed: Mutex::new(IdSet::default()),
            packers: [
                Mutex::new(PackWriter::with_version(BlobType::Data, capacity, version)),
                Mutex::new(PackWriter::with_version(BlobType::Tree, 0, version)),
            ],
            groups: Default::default(),
            sink,
            counters: Counters::default(),
            failed: AtomicBool::new(false),
            used: UsedPacks::new(known.pack_count()),
            small_trees: Default::default(),
        })
    }

    /// The chunker this writer cuts with.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// The settings.
    pub fn config(&self) -> &WriterConfig {
        &self.config
    }

    /// Chunks and stores a stream; returns its chunk list.
    pub fn write_stream<R: Read + Send>(&self, reader: R) -> Result<Vec<ChunkRef>> {
        let mut stream = self.chunker.stream(reader, self.config.batch_size);
        self.store_batches(false, move || {
            Ok(stream
                .next_batch(Vec::new())?
                .map(|b| (Bytes::Shared(Arc::new(b.data)), b.chunks)))
        })
    }

    /// Chunks and stores bytes already in memory.
    pub fn write_slice(&self, data: &[u8]) -> Result<Vec<ChunkRef>> {
        self.write_windows(data, false)
    }

    /// Stores chunks a source cut itself along its own format (records of
    /// a database, one object each): `cuts` are ranges of `data`, stored in
    /// parallel, each as its own blob; small ones are compressed together.
    /// Returns one chunk reference per cut, in order.
    pub fn write_cut(&self, data: &[u8], cuts: &[Range<usize>]) -> Result<Vec<ChunkRef>> {
        let mut batch = Some(self.checked_cuts(data, cuts)?);
        self.store_batches(false, move || {
            Ok(batch.take().map(|r| (Bytes::Borrowed(data), r)))
        })
    }

    /// [`write_cut`](Self::write_cut) for a source that produces its data
    /// in batches (a stream it parses as it arrives): `next` returns a
    /// batch's bytes and the cuts in it, or `None` at the end. Batches are
    /// processed while the next is produced, with memory bounded as for
    /// [`write_stream`](Self::write_stream).
    pub fn write_cut_batches<F>(&self, mut next: F) -> Result<Vec<ChunkRef>>
    where
        F: FnMut() -> Result<Option<(Vec<u8>, Vec<Range<usize>>)>> + Send,
    {
        self.store_batches(false, move || match next()? {
            None => Ok(None),
            Some((data, cuts)) => {
                let cuts = self.checked_cuts(&data, &cuts)?;
                Ok(Some((Bytes::Shared(Arc::new(data)), cuts)))
            }
        })
    }

    fn checked_cuts(&self, data: &[u8], cuts: &[Range<usize>]) -> Result<Vec<Range<usize>>> {
        if let Some(r) = cuts
            .iter()
            .find(|r| r.start > r.end || r.end > data.len() || r.len() > blob::MAX_BLOB_LEN)
        {
            return Err(Error::invalid(
                "chunk cuts",
                format!("{r:?} does not fit {} bytes of data", data.len()),
            ));
        }
        Ok(cuts.to_vec())
    }

    /// Chunks and stores a file through a memory map, without reading it
    /// into memory as a whole. Each chunk is copied once before it is hashed,
    /// so a concurrent writer to the file cannot make a stored blob differ
    /// from its id. A file truncated by another process while mapped raises
    /// SIGBUS: map only files that are not being shrunk (the repository's own
    /// temporary files, snapshots written by hokan), read others as streams.
    pub fn write_mmap(&self, file: &File) -> Result<Vec<ChunkRef>> {
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading file metadata", e))?
            .len();
        if len == 0 {
            return Ok(Vec::new());
        }
        // SAFETY: the map is only read, and each chunk is copied out before
        // use (see above); truncation by another process is documented.
        let map = unsafe { memmap2::Mmap::map(file) }.map_err(|e| Error::io("mapping file", e))?;
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        self.write_windows(&map, true)
    }

    /// The chunk list of `len` zero bytes, without reading or storing them:
    /// holes in format version 2, else chunks of zeros (stored once).
    pub fn write_zeros(&self, mut len: u64) -> Result<Vec<ChunkRef>> {
        let mut out = Vec::new();
        if self.config.format.has_holes() {
            while len > 0 {
                let n = len.min(MAX_HOLE as u64) as u32;
                self.count(n as u64);
                out.push(ChunkRef::hole(n));
                len -= n as u64;
            }
            return Ok(out);
        }
        let max = self.chunker.params().max as u64;
        while len > 0 {
            let n = len.min(max) as usize;
            let data = zeros(n);
            let id = self.key.chunk_id(data);
            self.guard(self.store_one(BlobType::Data, id.0, data))?;
            out.push(ChunkRef { id, len: n as u32 });
            len -= n as u64;
        }
        Ok(out)
    }

    /// Stores one blob (a tree, or a chunk cut elsewhere) and returns its id.
    pub fn write_blob(&self, kind: BlobType, data: &[u8]) -> Result<Id> {
        self.check_usable()?;
        let id = self.key.blob_id(kind, data);
        self.guard(self.store_one(kind, id, data))?;
        Ok(id)
    }

    /// Encodes a tree in the repository's format and stores it.
    ///
    /// In format 2 a tree of at most [`CARRY_MAX`] bytes is not stored
    /// yet: the tree written later that names it carries it (tree version
    /// 3), and [`finish`](Self::finish) stores the ones no tree carried
    /// (a snapshot's root). So every subtree a tree names must be written
    /// through this writer first, or already be stored; anything else is
    /// refused rather than written as a dangling reference.
    pub fn write_tree(&self, tree: &Tree) -> Result<crate::TreeId> {
        if !self.config.format.has_groups() {
            let bytes = tree.encode(self.config.format)?;
            return Ok(crate::TreeId(self.write_blob(BlobType::Tree, &bytes)?));
        }
        self.check_usable()?;
        let subtrees = subtrees_of(tree);
        // Copied out (each at most CARRY_MAX bytes) so that trees of other
        // directories encode beside this one.
        let (inside, carried): (Vec<Id>, Vec<Vec<u8>>) = {
            let small = self.small_trees.lock().expect("small trees");
            subtrees
                .iter()
                .filter_map(|t| small.get(t).map(|s| (*t, s.bytes.clone())))
                .unzip()
        };
        let carried: Vec<&[u8]> = carried.iter().map(Vec::as_slice).collect();
        let bytes = tree.encode_carrying(self.config.format, &carried)?;
        self.keep_tree(self.key.tree_id(&bytes), &subtrees, &inside, bytes)
    }

    /// Stores a tree already encoded (`bytes`, a tree blob plaintext this
    /// repository's format may hold, carrying trees or not), like
    /// [`write_tree`](Self::write_tree): small, it waits for a tree to
    /// carry it. What it names without carrying must be stored.
    pub fn write_tree_encoded(&self, bytes: &[u8]) -> Result<crate::TreeId> {
        if !self.config.format.has_groups() {
            return Ok(crate::TreeId(self.write_blob(BlobType::Tree, bytes)?));
        }
        self.check_usable()?;
        let id = self.key.tree_id(bytes);
        let tree = Tree::decode(bytes, &id)?;
        let inside: Vec<Id> = crate::tree::carried_trees(bytes, &id)?
            .iter()
            .map(|t| self.key.blob_id(BlobType::Tree, t))
            .collect();
        self.keep_tree(id, &subtrees_of(&tree), &inside, bytes.to_vec())
    }

    /// The common end of [`write_tree`](Self::write_tree) and
    /// [`write_tree_encoded`](Self::write_tree_encoded): `bytes` is tree
    /// `id`, naming `subtrees` and carrying those of them in `inside`.
    fn keep_tree(
        &self,
        id: crate::TreeId,
        subtrees: &[Id],
        inside: &[Id],
        bytes: Vec<u8>,
    ) -> Result<crate::TreeId> {
        let mut small = self.small_trees.lock().expect("small trees");
        for sub in subtrees {
            match small.get_mut(sub) {
                Some(s) if inside.contains(sub) => s.carried = true,
                Some(s) => s.named = true,
                None if inside.contains(sub) || self.contains(sub) => {}
                None => {
                    return Err(Error::invalid(
                        "tree",
                        format!(
                            "it names subtree {} that is neither stored nor written by this \
                             session (a bug in the source)",
                            sub.short()
                        ),
                    ));
                }
            }
        }
        if bytes.len() <= CARRY_MAX && !self.contains(&id.0) {
            small.entry(id.0).or_insert(SmallTree {
                bytes,
                carried: false,
                named: false,
            });
            return Ok(id);
        }
        drop(small);
        self.guard(self.store_one(BlobType::Tree, id.0, &bytes))?;
        Ok(id)
    }

    /// Whether a blob is stored (in a pack not marked for deletion, and not
    /// known to be damaged) or was stored by this writer: whether new data
    /// may refer to it. Holes are always there. A blob found in the index
    /// counts its pack as used by this session.
    pub fn contains(&self, id: &Id) -> bool {
        if *id == ChunkRef::HOLE_ID.0 {
            return true;
        }
        if let Some(pack) = self.known.visible_pack(id) {
            self.used.set(pack);
            return true;
        }
        self.claimed.lock().expect("claim lock").contains(id)
    }

    /// Packs of the index this writer deduplicated against: a snapshot of
    /// this session needs them to still exist when it is saved.
    pub fn used_packs(&self) -> Vec<PackId> {
        self.used
            .numbers()
            .filter_map(|n| self.known.pack_id(n))
            .collect()
    }

    /// Finishes the partly filled groups and packs, sends them to the sink,
    /// waits until the sink has stored everything durably and returns the
    /// statistics. Until this returns, the last blobs are not stored.
    pub fn finish(self) -> Result<WriteStats> {
        self.check_usable()?;
        // Small trees no tree carries (roots), or that a tree names
        // without carrying, are stored as blobs.
        let small = std::mem::take(&mut *self.small_trees.lock().expect("small trees"));
        for (id, s) in small.into_iter().filter(|(_, s)| !s.carried || s.named) {
            self.guard(self.store_one(BlobType::Tree, id, &s.bytes))?;
        }
        for kind in [BlobType::Data, BlobType::Tree] {
            let group = std::mem::take(&mut *self.groups[kind as usize].lock().expect("group"));
            self.seal_group(kind, group)?;
        }
        for packer in &self.packers {
            let pack = std::mem::replace(
                &mut *packer.lock().expect("packer lock"),
                PackWriter::new(BlobType::Data, 0),
            );
            if !pack.is_empty() {
                self.seal_and_send(pack)?;
            }
        }
        self.sink.flush()?;
        Ok(self.stats())
    }

    /// Statistics so far.
    pub fn stats(&self) -> WriteStats {
        let c = &self.counters;
        WriteStats {
            blobs: c.blobs.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            new_blobs: c.new_blobs.load(Relaxed),
            new_bytes: c.new_bytes.load(Relaxed),
            stored_bytes: c.stored_bytes.load(Relaxed),
            packs: c.packs.load(Relaxed),
        }
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed.load(Relaxed) {
            return Err(Self::failed_earlier());
        }
        Ok(())
    }

    fn failed_earlier() -> Error {
        Error::invalid(
            "blob writer",
            "an earlier write failed; blobs it claimed may be missing, start a new writer",
        )
    }

    /// A failed store may leave claimed ids unstored, so the writer refuses
    /// further work rather than dedup against blobs that never landed.
    fn guard<T>(&self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.failed.store(true, Relaxed);
        }
        r
    }

    fn write_windows(&self, data: &[u8], copy: bool) -> Result<Vec<ChunkRef>> {
        let window = self
            .config
            .batch_size
            .max(2 * self.chunker.params().max as usize);
        let mut pos = 0;
        self.store_batches(copy, move || {
            let start = pos;
            let mut ranges = Vec::new();
            while pos < data.len() && pos - start < window {
                let len = self.chunker.next_cut(&data[pos..], true).expect("at end");
                ranges.push(pos..pos + len);
                pos += len;
            }
            Ok((!ranges.is_empty()).then_some((Bytes::Borrowed(data), ranges)))
        })
    }

    /// Runs `next` (reading and cutting) on the calling thread and one task
    /// per chunk on rayon's pool, with no barrier between batches. When more
    /// than [`IN_FLIGHT_LIMIT`] bytes wait, the producer runs queued tasks
    /// itself instead of reading on: memory stays bounded and no thread of
    /// the pool ever blocks.
    fn store_batches<'d, F>(&self, copy: bool, mut next: F) -> Result<Vec<ChunkRef>>
    where
        F: FnMut() -> Result<Option<(Bytes<'d>, Vec<Range<usize>>)>> + Send,
    {
        self.check_usable()?;
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        let in_flight = AtomicUsize::new(0);
        let limit = IN_FLIGHT_LIMIT.max(2 * self.config.batch_size);
        let mut batches: Vec<Arc<[OnceLock<ChunkRef>]>> = Vec::new();
        let fail = |e: Error| {
            self.failed.store(true, Relaxed);
            first_error.lock().expect("error lock").get_or_insert(e);
        };
        rayon::scope(|s| {
            while !self.failed.load(Relaxed) {
                let (bytes, ranges) = match next() {
                    Ok(Some(batch)) => batch,
                    Ok(None) => break,
                    Err(e) => {
                        // A source error is the caller's to handle (skip a
                        // file, report it); the writer itself is still sound.
                        first_error.lock().expect("error lock").get_or_insert(e);
                        break;
                    }
                };
                let slots: Arc<[OnceLock<ChunkRef>]> =
                    ranges.iter().map(|_| OnceLock::new()).collect();
                batches.push(slots.clone());
                for (i, range) in ranges.into_iter().enumerate() {
                    let len = range.len();
                    in_flight.fetch_add(len, Relaxed);
                    let (bytes, slots, in_flight, fail) =
                        (bytes.clone(), slots.clone(), &in_flight, &fail);
                    s.spawn(move |_| {
                        if !self.failed.load(Relaxed) {
                            match self.store_chunk(&bytes.as_slice()[range], copy) {
                                Ok(c) => {
                                    let _ = slots[i].set(c);
                                }
                                Err(e) => fail(e),
                            }
                        }
                        in_flight.fetch_sub(len, Relaxed);
                    });
                }
                while in_flight.load(Relaxed) > limit && !self.failed.load(Relaxed) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::thread::yield_now();
                    }
                }
            }
        });
        if let Some(e) = first_error.into_inner().expect("error lock") {
            return Err(e);
        }
        // Another stream through this writer may have failed meanwhile and
        // stopped our tasks: its error is reported by its own call.
        batches
            .iter()
            .flat_map(|b| b.iter().map(|slot| slot.get().copied()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(Self::failed_earlier)
    }

    fn store_chunk(&self, data: &[u8], copy: bool) -> Result<ChunkRef> {
        if self.config.format.has_holes() && !data.is_empty() && is_zero(data) {
            self.count(data.len() as u64);
            return Ok(ChunkRef::hole(data.len() as u32));
        }
        // A memory map can change under us: hash and compress one private
        // copy so the stored blob always matches its id.
        let owned;
        let bytes = if copy {
            owned = data.to_vec();
            &owned[..]
        } else {
            data
        };
        let id = self.key.chunk_id(bytes);
        self.store_one(BlobType::Data, id.0, bytes)?;
        Ok(ChunkRef {
            id: ChunkId(id.0),
            len: bytes.len() as u32,
        })
    }

    fn count(&self, bytes: u64) {
        self.counters.blobs.fetch_add(1, Relaxed);
        self.counters.bytes.fetch_add(bytes, Relaxed);
    }

    fn store_one(&self, kind: BlobType, id: Id, data: &[u8]) -> Result<()> {
        self.count(data.len() as u64);
        // Blobs only in packs marked for deletion, or found damaged, are
        // stored again: new snapshots must not depend on them.
        if self.contains_known(&id) || !self.claimed.lock().expect("claim lock").insert(id) {
            return Ok(());
        }
        let c = &self.counters;
        c.new_blobs.fetch_add(1, Relaxed);
        c.new_bytes.fetch_add(data.len() as u64, Relaxed);
        let groups = self.config.format.has_groups() && self.config.small_blob > 0;
        if groups && (data.len() as u64) < self.config.small_blob as u64 {
            return self.add_to_group(kind, id, data);
        }
        let encoded = blob::encode(self.key, kind, id, data, self.config.compression)?;
        c.stored_bytes
            .fetch_add(encoded.sealed.len() as u64, Relaxed);
        self.append(kind, |p| p.add(&encoded))
    }

    fn contains_known(&self, id: &Id) -> bool {
        match self.known.visible_pack(id) {
            Some(pack) => {
                self.used.set(pack);
                true
            }
            None => false,
        }
    }

    fn add_to_group(&self, kind: BlobType, id: Id, data: &[u8]) -> Result<()> {
        let full = {
            let mut g = self.groups[kind as usize].lock().expect("group");
            g.members.push((id, data.to_vec()));
            g.bytes += data.len();
            if g.bytes < self.config.group_size as usize && g.members.len() < MAX_GROUP_MEMBERS {
                return Ok(());
            }
            std::mem::take(&mut *g)
        };
        // Compressing happens outside the lock: other threads fill the
        // next group meanwhile.
        self.seal_group(kind, full)
    }

    fn seal_group(&self, kind: BlobType, group: GroupBuf) -> Result<()> {
        match group.members.as_slice() {
            [] => Ok(()),
            [(id, data)] => {
                let encoded = blob::encode(self.key, kind, *id, data, self.config.compression)?;
                self.counters
                    .stored_bytes
                    .fetch_add(encoded.sealed.len() as u64, Relaxed);
                self.append(kind, |p| p.add(&encoded))
            }
            members => {
                let refs: Vec<(Id, &[u8])> = members.iter().map(|(i, d)| (*i, &d[..])).collect();
                let encoded = blob::encode_group(self.key, kind, &refs, self.config.compression)?;
                self.counters
                    .stored_bytes
                    .fetch_add(encoded.sealed.len() as u64, Relaxed);
                self.append(kind, |p| p.add_group(&encoded))
            }
        }
    }

    fn append(
        &self,
        kind: BlobType,
        add: impl FnOnce(&mut PackWriter) -> Result<()>,
    ) -> Result<()> {
        let slot = &self.packers[kind as usize];
        let full = {
            let mut packer = slot.lock().expect("packer lock");
            add(&mut packer)?;
            if packer.finished_len() < self.config.pack_size as usize {
                return Ok(());
            }
            let capacity = match kind {
                BlobType::Data => self.config.pack_size as usize + (1 << 20),
                BlobType::Tree => 0,
            };
            let version = self.config.format.pack_version();
            std::mem::replace(
                &mut *packer,
                PackWriter::with_version(kind, capacity, version),
            )
        };
        // Sealing and sending happen outside the lock, so other threads keep
        // filling the next pack meanwhile.
        self.seal_and_send(full)
    }

    fn seal_and_send(&self, pack: PackWriter) -> Result<()> {
        let finished = pack.finish(self.key)?;
        self.counters.packs.fetch_add(1, Relaxed);
        self.sink.put_pack(finished)
    }
}
