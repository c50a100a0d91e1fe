//! The parallel data path: bytes in, chunk list and packs out, and back.
//!
//! [`BlobWriter`] takes a stream (any [`Read`]), a slice or a memory-mapped
//! file, cuts it into chunks, and on rayon's threads hashes each chunk,
//! skips the ones already stored, compresses and seals the rest and appends
//! them to packs. Full packs go to a [`PackSink`] (the repository uploads
//! them); the caller gets the file's chunk list. Reading the next batch of a
//! stream overlaps with processing the current one.
//!
//! [`BlobReader`] is the reverse path: chunk ids → index → byte ranges of
//! packs from a [`PackSource`] → authenticated, decompressed, id-checked
//! plaintext, decoded in parallel and written out in order.
//!
//! The core knows storage only through these two small traits.

use std::fs::File;
use std::io::{Read, Write};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::blob::{self, EncodedBlob};
use crate::chunker::{Chunker, ChunkerParams};
use crate::compress::Compression;
use crate::error::{Error, Result};
use crate::id::{BlobType, ChunkId, Id, PackId};
use crate::index::{IdSet, Index, Location};
use crate::keys::MasterKey;
use crate::pack::{DEFAULT_PACK_SIZE, FinishedPack, PackWriter};

/// Where finished packs go. The repository layer implements it to upload;
/// [`Mutex<Vec<FinishedPack>>`] collects them in memory.
///
/// Contract: when `put_pack` returns `Ok`, the pack is stored durably (or,
/// for in-memory sinks, kept). It is called from several threads at once;
/// blocking in it is how a slow store applies backpressure.
pub trait PackSink: Sync {
    /// Stores one finished pack.
    fn put_pack(&self, pack: FinishedPack) -> Result<()>;
}

impl PackSink for Mutex<Vec<FinishedPack>> {
    fn put_pack(&self, pack: FinishedPack) -> Result<()> {
        self.lock().expect("sink lock").push(pack);
        Ok(())
    }
}

/// Where the reverse path reads packs from.
pub trait PackSource: Sync {
    /// Returns exactly `length` bytes at `offset` of pack `pack`.
    fn read_range(&self, pack: &PackId, offset: u32, length: u32) -> Result<Vec<u8>>;
}

impl PackSource for std::collections::HashMap<PackId, Vec<u8>> {
    fn read_range(&self, pack: &PackId, offset: u32, length: u32) -> Result<Vec<u8>> {
        let bytes = self.get(pack).ok_or_else(|| {
            Error::Storage(format!("pack {} is not in the store", pack.short()).into())
        })?;
        bytes
            .get(offset as usize..offset as usize + length as usize)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                Error::truncated(
                    format!("pack {}", pack.short()),
                    format!("{} bytes, wanted {length} at {offset}", bytes.len()),
                )
            })
    }
}

/// Bytes of chunks waiting for a worker before the reader pauses to help.
const IN_FLIGHT_LIMIT: usize = 64 << 20;

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

/// One chunk of a stream: its id and plaintext length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ChunkRef {
    /// The chunk's id.
    pub id: ChunkId,
    /// Its length in bytes.
    pub len: u32,
}

/// Settings of the write path.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    /// Chunk sizes (a repository setting).
    pub chunker: ChunkerParams,
    /// Compression (a repository setting).
    pub compression: Compression,
    /// A pack is finished once it reaches this many bytes.
    pub pack_size: u32,
    /// Bytes read from a stream at a time; up to about four batches (at
    /// least 64 MiB) wait in memory for workers.
    pub batch_size: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            chunker: ChunkerParams::default(),
            compression: Compression::default(),
            pack_size: DEFAULT_PACK_SIZE,
            batch_size: 16 << 20,
        }
    }
}

/// What a [`BlobWriter`] did, for summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Blobs seen (every chunk of every stream, every tree).
    pub blobs: u64,
    /// Their plaintext bytes.
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
    sink: &'a dyn PackSink,
    counters: Counters,
    failed: AtomicBool,
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
        let capacity = config.pack_size as usize + (1 << 20);
        Ok(BlobWriter {
            key,
            chunker: Chunker::new(config.chunker, key.chunker_seed())?,
            config,
            known,
            claimed: Mutex::new(IdSet::default()),
            packers: [
                Mutex::new(PackWriter::new(BlobType::Data, capacity)),
                Mutex::new(PackWriter::new(BlobType::Tree, 0)),
            ],
            sink,
            counters: Counters::default(),
            failed: AtomicBool::new(false),
        })
    }

    /// The chunker this writer cuts with.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
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

    /// Stores one blob (a tree, or a chunk cut elsewhere) and returns its id.
    pub fn write_blob(&self, kind: BlobType, data: &[u8]) -> Result<Id> {
        self.check_usable()?;
        let id = self.key.blob_id(kind, data);
        self.guard(self.store_one(kind, id, data))?;
        Ok(id)
    }

    /// Whether a blob is stored (in a pack not marked for deletion) or was
    /// stored by this writer: whether new data may refer to it.
    pub fn contains(&self, id: &Id) -> bool {
        self.known.contains_visible(id) || self.claimed.lock().expect("claim lock").contains(id)
    }

    /// Finishes the partly filled packs, sends them to the sink and returns
    /// the statistics. Until this returns, the last blobs are not stored.
    pub fn finish(self) -> Result<WriteStats> {
        self.check_usable()?;
        for packer in &self.packers {
            let pack = std::mem::replace(
                &mut *packer.lock().expect("packer lock"),
                PackWriter::new(BlobType::Data, 0),
            );
            if !pack.is_empty() {
                self.seal_and_send(pack)?;
            }
        }
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
            return Err(Error::invalid(
                "blob writer",
                "an earlier write failed; blobs it claimed may be missing, start a new writer",
            ));
        }
        Ok(())
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
        Ok(batches
            .iter()
            .flat_map(|b| b.iter().map(|slot| *slot.get().expect("every task ran")))
            .collect())
    }

    fn store_chunk(&self, data: &[u8], copy: bool) -> Result<ChunkRef> {
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
            id,
            len: bytes.len() as u32,
        })
    }

    fn store_one(&self, kind: BlobType, id: Id, data: &[u8]) -> Result<()> {
        let c = &self.counters;
        c.blobs.fetch_add(1, Relaxed);
        c.bytes.fetch_add(data.len() as u64, Relaxed);
        // Blobs only in packs marked for deletion are stored again: new
        // snapshots must not depend on packs that prune may remove.
        if self.known.contains_visible(&id) || !self.claimed.lock().expect("claim lock").insert(id)
        {
            return Ok(());
        }
        let encoded = blob::encode(self.key, kind, id, data, self.config.compression)?;
        c.new_blobs.fetch_add(1, Relaxed);
        c.new_bytes.fetch_add(data.len() as u64, Relaxed);
        c.stored_bytes
            .fetch_add(encoded.sealed.len() as u64, Relaxed);
        self.append(encoded)
    }

    fn append(&self, blob: EncodedBlob) -> Result<()> {
        let slot = &self.packers[blob.kind as usize];
        let full = {
            let mut packer = slot.lock().expect("packer lock");
            packer.add(&blob)?;
            if packer.finished_len() < self.config.pack_size as usize {
                return Ok(());
            }
            let capacity = match blob.kind {
                BlobType::Data => self.config.pack_size as usize + (1 << 20),
                BlobType::Tree => 0,
            };
            std::mem::replace(&mut *packer, PackWriter::new(blob.kind, capacity))
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

/// One range request: a stretch of a pack holding several chunks of a
/// window (object stores charge a round trip per request).
struct Span {
    pack: PackId,
    offset: u32,
    end: u32,
    /// Positions in the window of the chunks it holds.
    members: Vec<usize>,
}

/// The most bytes one span fetches: enough to hide a round trip, small
/// enough that a window still splits into spans for every core.
const SPAN_LIMIT: u32 = 4 << 20;

/// Unneeded bytes a span may read across to join two chunks: parallel
/// writers interleave the chunks of one file in a pack.
const SPAN_GAP: u32 = 256 << 10;

/// A chunk's data, if it has the length its chunk list records.
fn sized(c: &ChunkRef, data: Vec<u8>) -> Result<Vec<u8>> {
    if data.len() != c.len as usize {
        return Err(Error::corrupted(
            format!("chunk {}", c.id.short()),
            format!("{} bytes, the chunk list says {}", data.len(), c.len),
        ));
    }
    Ok(data)
}

/// The read path; see the module documentation.
pub struct BlobReader<'a> {
    key: &'a MasterKey,
    index: &'a Index,
    source: &'a dyn PackSource,
    window: usize,
}

impl<'a> BlobReader<'a> {
    /// A reader that locates blobs in `index` and fetches them from `source`.
    pub fn new(key: &'a MasterKey, index: &'a Index, source: &'a dyn PackSource) -> Self {
        BlobReader {
            key,
            index,
            source,
            window: 32 << 20,
        }
    }

    /// The repository key this reader decrypts and checks ids with.
    pub fn key(&self) -> &MasterKey {
        self.key
    }

    /// Reads one blob: located, fetched, authenticated, decompressed and
    /// checked against its id.
    pub fn read_blob(&self, kind: BlobType, id: &Id) -> Result<Vec<u8>> {
        let loc = self.index.get(id).ok_or(Error::BlobNotFound { id: *id })?;
        if loc.kind != kind {
            return Err(Error::BlobNotFound { id: *id });
        }
        let sealed = self.source.read_range(&loc.pack, loc.offset, loc.length)?;
        blob::decode(self.key, kind, id, &sealed, &|| {
            format!("pack {} at offset {}", loc.pack.short(), loc.offset)
        })
    }

    /// Reads a window of chunks: located, fetched in spans, then decoded,
    /// authenticated and checked in parallel; returned in order.
    fn read_window(&self, chunks: &[ChunkRef]) -> Result<Vec<Vec<u8>>> {
        if let [c] = chunks {
            // Most files are one chunk: no spans to plan.
            return Ok(vec![sized(c, self.read_blob(BlobType::Data, &c.id.0)?)?]);
        }
        let locs: Vec<Location> = chunks
            .iter()
            .map(|c| {
                self.index
                    .get(&c.id.0)
                    .filter(|l| l.kind == BlobType::Data)
                    .ok_or(Error::BlobNotFound { id: c.id.0 })
            })
            .collect::<Result<_>>()?;
        let mut order: Vec<usize> = (0..chunks.len()).collect();
        order.sort_by_key(|&i| (locs[i].pack, locs[i].offset));
        let mut spans: Vec<Span> = Vec::new();
        for i in order {
            let l = &locs[i];
            let end = l.offset.saturating_add(l.length);
            match spans.last_mut() {
                Some(s)
                    if s.pack == l.pack
                        && l.offset <= s.end.saturating_add(SPAN_GAP)
                        && end.max(s.end) - s.offset <= SPAN_LIMIT =>
                {
                    s.end = s.end.max(end);
                    s.members.push(i);
                }
                _ => spans.push(Span {
                    pack: l.pack,
                    offset: l.offset,
                    end,
                    members: vec![i],
                }),
            }
        }
        // Each span is decoded as soon as it arrives and then dropped: at
        // most one sealed span per thread is held beside the window.
        let decoded: Vec<Vec<(usize, Vec<u8>)>> = spans
            .par_iter()
            .map(|span| {
                let fetched =
                    self.source
                        .read_range(&span.pack, span.offset, span.end - span.offset)?;
                span.members
                    .par_iter()
                    .map(|&i| {
                        let (c, l) = (&chunks[i], &locs[i]);
                        let start = (l.offset - span.offset) as usize;
                        let sealed =
                            fetched
                                .get(start..start + l.length as usize)
                                .ok_or_else(|| {
                                    Error::truncated(
                                        format!("pack {}", span.pack.short()),
                                        format!("wanted {} bytes at {}", l.length, l.offset),
                                    )
                                })?;
                        let data =
                            blob::decode(self.key, BlobType::Data, &c.id.0, sealed, &|| {
                                format!("pack {} at offset {}", l.pack.short(), l.offset)
                            })?;
                        Ok((i, sized(c, data)?))
                    })
                    .collect()
            })
            .collect::<Result<_>>()?;
        let mut out = vec![Vec::new(); chunks.len()];
        for (i, data) in decoded.into_iter().flatten() {
            out[i] = data;
        }
        Ok(out)
    }

    /// Reassembles a chunk list into `out`, decoding in parallel and writing
    /// in order; returns the bytes written.
    pub fn read_chunks(&self, chunks: &[ChunkRef], out: &mut (dyn Write + Send)) -> Result<u64> {
        let mut windows = Vec::new();
        let mut start = 0;
        let mut size = 0usize;
        for (i, c) in chunks.iter().enumerate() {
            size += c.len as usize;
            if size >= self.window {
                windows.push(start..i + 1);
                start = i + 1;
                size = 0;
            }
        }
        if start < chunks.len() {
            windows.push(start..chunks.len());
        }
        let decode = |w: &Range<usize>| self.read_window(&chunks[w.clone()]);
        let mut written = 0u64;
        let mut pending: Option<Vec<Vec<u8>>> = None;
        for w in &windows {
            let (wrote, decoded) = rayon::join(
                || -> Result<u64> {
                    let mut n = 0;
                    for d in pending.take().unwrap_or_default() {
                        out.write_all(&d)
                            .map_err(|e| Error::io("writing restored data", e))?;
                        n += d.len() as u64;
                    }
                    Ok(n)
                },
                || decode(w),
            );
            written += wrote?;
            pending = Some(decoded?);
        }
        for d in pending.unwrap_or_default() {
            out.write_all(&d)
                .map_err(|e| Error::io("writing restored data", e))?;
            written += d.len() as u64;
        }
        Ok(written)
    }
}
