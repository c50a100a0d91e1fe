//! Index runs: the merged index as one sorted, immutable file that is
//! memory-mapped and searched in place, so an index of any size costs a
//! process only the pages its lookups touch.
//!
//! A [`MappedRun`] is the read side: opened, checked (length, magic,
//! version, checksum: a torn or foreign file is refused, never trusted),
//! then searched through a table of bucket starts keyed by the id's
//! leading bits, as the in-memory array is. A [`RunBuilder`] is the write
//! side, an external sort: entries are gathered up to a memory bound,
//! sorted and spilled to temporary runs, then merged (with the run being
//! extended, if any) into a new file written under a temporary name and
//! renamed into place, so a reader sees the old file or the new one,
//! never half of one. The layout is in `docs/FORMAT.md`, "Local cache
//! files".

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::{Entry, PackInfo};
use crate::error::{Error, Result};
use crate::id::{BlobType, Id, PackId};
use crate::pack::{PackedBlob, group_members};

/// The first bytes of a run file.
pub const RUN_MAGIC: &[u8; 8] = b"HOKANIXR";
/// The run file format version this build writes and reads.
pub const RUN_VERSION: u32 = 1;
const HEADER: usize = 160;
const CHECKSUMMED_HEADER: usize = 128;
const PACK_RECORD: usize = 40;
const ENTRY: usize = 44;
/// At most 2^20 buckets (4 MiB of table): beyond that a bucket's binary
/// search is a few steps longer, which costs less than the table's pages.
const MAX_BUCKET_BITS: u32 = 20;

/// What a run file records beside its entries, for its owner to decide
/// whether the file still describes the repository.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunMeta {
    /// The repository it indexes.
    pub repo: Id,
    /// A digest of whatever else the entries depend on (the owner's
    /// choice: hokan-repo puts the damage records there).
    pub inputs: [u8; 32],
    /// The index files merged into it, sorted.
    pub covered: Vec<Id>,
    /// The index files those superseded, sorted.
    pub superseded: Vec<Id>,
}

/// A run file, mapped and checked.
#[derive(Debug)]
pub struct MappedRun {
    map: Mmap,
    meta_counts: (usize, usize),
    repo: Id,
    inputs: [u8; 32],
    entries: usize,
    packs: usize,
    bits: u32,
    covered_at: usize,
    entries_at: usize,
    buckets_at: usize,
}

fn corrupted(path: &Path, reason: impl Into<String>) -> Error {
    Error::Corrupted {
        what: format!("index cache file {}", path.display()),
        reason: reason.into(),
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn bucket_bits(expected: usize) -> u32 {
    if expected < 32 {
        0
    } else {
        (expected / 16).ilog2().min(MAX_BUCKET_BITS)
    }
}

fn bucket_of(bits: u32, id: &[u8]) -> usize {
    if bits == 0 {
        0
    } else {
        (u64::from_be_bytes(id[..8].try_into().expect("8 bytes")) >> (64 - bits)) as usize
    }
}

/// The sections' sizes after the header, given the header's counts.
fn body_len(packs: usize, covered: usize, superseded: usize, entries: usize, bits: u32) -> usize {
    packs * PACK_RECORD + (covered + superseded) * 32 + entries * ENTRY + ((1 << bits) + 1) * 4
}

impl MappedRun {
    /// Opens and checks a run file: its length, magic, version and
    /// checksum (the whole file is read once for that, see
    /// [`body_hash`](Self::body_hash)). Any fault is an error: the caller builds
    /// the file again.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io_path("opening", path, e))?;
        let run = Self::map(&file, path)?;
        let sum = checksum(&run.map[..CHECKSUMMED_HEADER], &run.body_hash());
        if sum[..] != run.map[CHECKSUMMED_HEADER..HEADER] {
            return Err(corrupted(path, "checksum does not match its contents"));
        }
        Ok(run)
    }

    /// The hash of everything after the header. It is read through the
    /// mapping in windows, each hashed on every core and then dropped from
    /// the process (its pages stay in the page cache), so checking costs no
    /// resident memory beyond a window. One thread reading the file took
    /// about a second of every open at 100 M entries (a 4.4 GB file); the
    /// next window is asked for ahead, for a cold page cache.
    fn body_hash(&self) -> [u8; 32] {
        const WINDOW: usize = 16 << 20;
        let len = self.map.len();
        let mut hasher = blake3::Hasher::new();
        let mut at = HEADER;
        while at < len {
            let end = (at + WINDOW).min(len);
            let next = (end + WINDOW).min(len);
            // Advice only: a failure changes nothing but speed.
            #[cfg(unix)]
            let _ = self
                .map
                .advise_range(memmap2::Advice::WillNeed, end, next - end);
            hasher.update_rayon(&self.map[at..end]);
            self.release_range(at, end - at);
            at = end;
        }
        *hasher.finalize().as_bytes()
    }

    /// Maps a file and reads its header, without the checksum.
    fn map(file: &File, path: &Path) -> Result<Self> {
        // SAFETY: run files are never written in place: they are written
        // under a temporary name and renamed, so the mapped inode does not
        // change under us (truncation by another program would, and is
        // outside what a cache can defend against).
        let map = unsafe { Mmap::map(file) }.map_err(|e| Error::io_path("mapping", path, e))?;
        let b = &map[..];
        if b.len() < HEADER {
            return Err(corrupted(
                path,
                format!("{} bytes, shorter than its header", b.len()),
            ));
        }
        if &b[..8] != RUN_MAGIC {
            return Err(corrupted(path, "not an index run file"));
        }
        let version = u32_at(b, 8);
        if version != RUN_VERSION {
            return Err(Error::UnsupportedVersion {
                what: format!("index cache file {}", path.display()),
                found: version,
                supported: "1",
            });
        }
        let bits = u32_at(b, 12);
        let entries = u64::from_le_bytes(b[80..88].try_into().expect("8 bytes")) as usize;
        let (packs, covered, superseded) = (
            u32_at(b, 88) as usize,
            u32_at(b, 92) as usize,
            u32_at(b, 96) as usize,
        );
        if bits > MAX_BUCKET_BITS
            || b.len() != HEADER + body_len(packs, covered, superseded, entries, bits)
        {
            return Err(corrupted(path, "its length does not match its header"));
        }
        let covered_at = HEADER + packs * PACK_RECORD;
        let entries_at = covered_at + (covered + superseded) * 32;
        let buckets_at = entries_at + entries * ENTRY;
        let run = MappedRun {
            repo: Id(b[16..48].try_into().expect("32 bytes")),
            inputs: b[48..80].try_into().expect("32 bytes"),
            meta_counts: (covered, superseded),
            entries,
            packs,
            bits,
            covered_at,
            entries_at,
            buckets_at,
            map,
        };
        #[cfg(unix)]
        let _ = run.map.advise(memmap2::Advice::Random);
        Ok(run)
    }

    /// The repository, inputs digest, covered and superseded files.
    pub fn meta(&self) -> RunMeta {
        let ids = |at: usize, n: usize| -> Vec<Id> {
            self.map[at..at + n * 32]
                .chunks_exact(32)
                .map(|c| Id(c.try_into().expect("32 bytes")))
                .collect()
        };
        let (c, s) = self.meta_counts;
        RunMeta {
            repo: self.repo,
            inputs: self.inputs,
            covered: ids(self.covered_at, c),
            superseded: ids(self.covered_at + c * 32, s),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// True when it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Number of packs in its table.
    pub fn pack_count(&self) -> usize {
        self.packs
    }

    /// Drops the pages read so far from this process's memory: they stay
    /// in the page cache and are mapped again from there when next read.
    /// A long reader (a restore, between its windows) calls it now and
    /// then, so its resident size does not grow with the share of the
    /// index it has touched.
    pub fn release_pages(&self) {
        self.release_range(0, self.map.len());
    }

    /// Drops `len` bytes from `offset` of the mapping from this process's
    /// memory (see [`release_pages`](Self::release_pages)).
    fn release_range(&self, offset: usize, len: usize) {
        // SAFETY: the map is a shared, read-only mapping of a run file,
        // which is written whole and renamed into place, never written or
        // truncated after: once its pages are dropped, the same bytes are
        // read back from the file, so every borrow of the map stays valid.
        #[cfg(unix)]
        let _ = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
        };
    }

    /// Pack number `n`.
    pub(super) fn pack(&self, n: usize) -> PackInfo {
        let r = &self.map[HEADER + n * PACK_RECORD..][..PACK_RECORD];
        PackInfo {
            id: PackId(Id(r[..32].try_into().expect("32 bytes"))),
            kind: if r[32] == 1 {
                BlobType::Tree
            } else {
                BlobType::Data
            },
            hidden: r[33] & 1 != 0,
        }
    }

    /// Entry number `i`.
    pub(super) fn entry(&self, i: usize) -> Entry {
        let r = &self.map[self.entries_at + i * ENTRY..][..ENTRY];
        Entry {
            id: r[..32].try_into().expect("32 bytes"),
            pack: u32_at(r, 32),
            offset: u32_at(r, 36),
            length: u32_at(r, 40),
        }
    }

    fn entry_id(&self, i: usize) -> &[u8] {
        &self.map[self.entries_at + i * ENTRY..][..32]
    }

    /// The entry number of `id`, if present.
    pub(super) fn find(&self, id: &Id) -> Option<usize> {
        if self.entries == 0 {
            return None;
        }
        let b = bucket_of(self.bits, &id.0);
        let start = |b: usize| u32_at(&self.map, self.buckets_at + b * 4) as usize;
        let (mut lo, mut hi) = (start(b), start(b + 1).min(self.entries));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry_id(mid).cmp(&id.0[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }
}

fn checksum(header: &[u8], body: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(header);
    h.update(body);
    *h.finalize().as_bytes()
}

fn entry_bytes(e: &Entry) -> [u8; ENTRY] {
    let mut b = [0u8; ENTRY];
    b[..32].copy_from_slice(&e.id);
    b[32..36].copy_from_slice(&e.pack.to_le_bytes());
    b[36..40].copy_from_slice(&e.offset.to_le_bytes());
    b[40..44].copy_from_slice(&e.length.to_le_bytes());
    b
}

fn entry_from(b: &[u8; ENTRY]) -> Entry {
    Entry {
        id: b[..32].try_into().expect("32 bytes"),
        pack: u32_at(b, 32),
        offset: u32_at(b, 36),
        length: u32_at(b, 40),
    }
}

/// Builds a run file from a stream of packs and entries within a memory
/// bound (an external sort), optionally extending an existing run.
///
/// Among entries with the same id the first added wins, and an extended
/// run's entries come before every added one.
#[derive(Debug)]
pub struct RunBuilder {
    dir: PathBuf,
    limit: usize,
    base: Option<std::sync::Arc<MappedRun>>,
    packs: Vec<PackInfo>,
    buffer: Vec<Entry>,
    spilled: Vec<File>,
    added: usize,
}

impl RunBuilder {
    /// A builder spilling to `dir` (where the file will be written: the
    /// rename must not cross file systems) whenever `memory_entries`
    /// entries (44 bytes each) are gathered.
    pub fn new(dir: &Path, memory_entries: usize) -> Self {
        RunBuilder {
            dir: dir.to_path_buf(),
            limit: memory_entries.max(1024),
            base: None,
            packs: Vec::new(),
            buffer: Vec::new(),
            spilled: Vec::new(),
            added: 0,
        }
    }

    /// A builder whose file will hold `base`'s packs and entries first.
    pub fn extending(base: std::sync::Arc<MappedRun>, dir: &Path, memory_entries: usize) -> Self {
        let mut b = Self::new(dir, memory_entries);
        b.packs = (0..base.pack_count()).map(|n| base.pack(n)).collect();
        b.base = Some(base);
        b
    }

    /// Registers a pack; returns its number.
    pub fn add_pack(&mut self, id: PackId, kind: BlobType, hidden: bool) -> u32 {
        self.packs.push(PackInfo { id, kind, hidden });
        (self.packs.len() - 1) as u32
    }

    /// Registers a pack and adds those of its blobs `keep` accepts, as
    /// [`IndexBuilder::add_pack_filtered`](super::IndexBuilder::add_pack_filtered)
    /// does (group records recognised from the whole list).
    pub fn add_pack_blobs(
        &mut self,
        id: PackId,
        kind: BlobType,
        hidden: bool,
        blobs: &[PackedBlob],
        keep: impl Fn(&PackedBlob) -> bool,
    ) -> Result<()> {
        let pack = self.add_pack(id, kind, hidden);
        for (b, group) in blobs.iter().zip(group_members(blobs)) {
            if keep(b) {
                self.push(b.id, pack, b.offset, super::stored_length(b.length, group))?;
            }
        }
        Ok(())
    }

    /// Adds an entry of pack `pack` (a number [`add_pack`](Self::add_pack)
    /// returned); `length` carries the group bit as the index stores it.
    pub fn push(&mut self, id: Id, pack: u32, offset: u32, length: u32) -> Result<()> {
        self.buffer.push(Entry {
            id: id.0,
            pack,
            offset,
            length,
        });
        self.added += 1;
        if self.buffer.len() >= self.limit {
            self.spill()?;
        }
        Ok(())
    }

    fn sort_buffer(&mut self) {
        // Stable: among duplicates the first added stays first.
        self.buffer.sort_by_key(|e| e.id);
        self.buffer
            .dedup_by(|later, earlier| later.id == earlier.id);
    }

    fn spill(&mut self) -> Result<()> {
        self.sort_buffer();
        let file = tempfile::tempfile_in(&self.dir)
            .map_err(|e| Error::io_path("creating a spill file in", &self.dir, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        for e in &self.buffer {
            w.write_all(&entry_bytes(e))
                .map_err(|e| Error::io("writing a spill file", e))?;
        }
        let mut file = w
            .into_inner()
            .map_err(|e| Error::io("writing a spill file", e.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("rewinding a spill file", e))?;
        self.spilled.push(file);
        self.buffer.clear();
        Ok(())
    }

    /// Merges everything into the run file `dest` (written under a
    /// temporary name in the same directory, synced, then renamed), and
    /// maps it.
    pub fn finish(mut self, meta: &RunMeta, dest: &Path) -> Result<MappedRun> {
        self.sort_buffer();
        let expected = self.base.as_ref().map_or(0, |b| b.len()) + self.added;
        let bits = bucket_bits(expected);
        let dir = dest.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| Error::io_path("creating a file in", dir, e))?;
        let io = |e| Error::io_path("writing", dest, e);
        let handle = tmp.as_file().try_clone().map_err(io)?;
        let mut out = Hashing::new(BufWriter::with_capacity(1 << 20, handle));
        out.inner.write_all(&[0u8; HEADER]).map_err(io)?;
        for p in &self.packs {
            let mut r = [0u8; PACK_RECORD];
            r[..32].copy_from_slice(&p.id.0.0);
            r[32] = p.kind as u8;
            r[33] = p.hidden as u8;
            out.write_all(&r).map_err(io)?;
        }
        for id in meta.covered.iter().chain(&meta.superseded) {
            out.write_all(&id.0).map_err(io)?;
        }
        let mut buckets: Vec<u32> = Vec::with_capacity((1 << bits) + 1);
        let mut count = 0usize;
        let mut last: Option<[u8; 32]> = None;
        let mut sources = self.sources()?;
        let mut heap = BinaryHeap::new();
        for (s, src) in sources.iter_mut().enumerate() {
            if let Some(e) = src.next_entry()? {
                heap.push(Reverse((e.id, s, e.pack, e.offset, e.length)));
            }
        }
        while let Some(Reverse((id, s, pack, offset, length))) = heap.pop() {
            if let Some(e) = sources[s].next_entry()? {
                heap.push(Reverse((e.id, s, e.pack, e.offset, e.length)));
            }
            if last == Some(id) {
                continue;
            }
            last = Some(id);
            let b = bucket_of(bits, &id);
            while buckets.len() <= b {
                buckets.push(count as u32);
            }
            let e = Entry {
                id,
                pack,
                offset,
                length,
            };
            out.write_all(&entry_bytes(&e)).map_err(io)?;
            count += 1;
        }
        while buckets.len() <= 1 << bits {
            buckets.push(count as u32);
        }
        for b in &buckets {
            out.write_all(&b.to_le_bytes()).map_err(io)?;
        }
        let body = *out.hasher.finalize().as_bytes();
        let mut w = out.inner;
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(RUN_MAGIC);
        header[8..12].copy_from_slice(&RUN_VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&bits.to_le_bytes());
        header[16..48].copy_from_slice(&meta.repo.0);
        header[48..80].copy_from_slice(&meta.inputs);
        header[80..88].copy_from_slice(&(count as u64).to_le_bytes());
        header[88..92].copy_from_slice(&(self.packs.len() as u32).to_le_bytes());
        header[92..96].copy_from_slice(&(meta.covered.len() as u32).to_le_bytes());
        header[96..100].copy_from_slice(&(meta.superseded.len() as u32).to_le_bytes());
        let sum = checksum(&header[..CHECKSUMMED_HEADER], &body);
        header[CHECKSUMMED_HEADER..].copy_from_slice(&sum);
        w.flush().map_err(io)?;
        drop(w);
        {
            let mut file = tmp.as_file();
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.write_all(&header).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let file = tmp
            .persist(dest)
            .map_err(|e| Error::io_path("renaming into", dest, e.error))?;
        MappedRun::map(&file, dest)
    }

    /// The sorted sources in precedence order: the base, the spilled
    /// runs in the order written, then what is still in memory.
    fn sources(&mut self) -> Result<Vec<Source<'_>>> {
        let mut out = Vec::new();
        if let Some(b) = &self.base {
            out.push(Source::Base(b, 0));
        }
        for f in self.spilled.drain(..) {
            out.push(Source::Spilled(BufReader::with_capacity(256 << 10, f)));
        }
        out.push(Source::Memory(self.buffer.iter()));
        Ok(out)
    }
}

enum Source<'a> {
    Base(&'a MappedRun, usize),
    Spilled(BufReader<File>),
    Memory(std::slice::Iter<'a, Entry>),
}

impl Source<'_> {
    fn next_entry(&mut self) -> Result<Option<Entry>> {
        match self {
            Source::Base(run, i) => {
                if *i >= run.len() {
                    return Ok(None);
                }
                *i += 1;
                Ok(Some(run.entry(*i - 1)))
            }
            Source::Spilled(r) => {
                let mut b = [0u8; ENTRY];
                match r.read_exact(&mut b) {
                    Ok(()) => Ok(Some(entry_from(&b))),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
                    Err(e) => Err(Error::io("reading a spill file", e)),
                }
            }
            Source::Memory(it) => Ok(it.next().copied()),
        }
    }
}

/// A writer that hashes what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: blake3::Hasher::new(),
        }
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.hasher.update(b);
        self.inner.write_all(b)
    }
}
