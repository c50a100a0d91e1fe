//! The parallel data path: bytes in, chunk list and packs out, and back.
//!
//! [`BlobWriter`] takes a stream (any [`Read`](std::io::Read)), a slice, a
//! memory-mapped file, or chunks a source cut itself along its own format
//! ([`BlobWriter::write_cut`]), and on rayon's threads hashes each chunk,
//! skips the ones already stored, compresses and seals the rest (small ones
//! together, in groups) and appends them to packs. Full packs go to a
//! [`PackSink`] (the repository uploads them); the caller gets the chunk
//! list. Reading the next batch of a stream overlaps with processing the
//! current one.
//!
//! [`BlobReader`] is the reverse path: chunk ids → index → byte ranges of
//! packs from a [`PackSource`] → authenticated, decompressed, id-checked
//! plaintext, decoded in parallel and written out in order.
//!
//! The core knows storage only through these two small traits.

mod reader;
mod writer;

pub use reader::{BlobReader, ChunkWrite};
pub(crate) use writer::is_zero;
pub use writer::{BlobWriter, WriteStats};

use crate::chunker::ChunkerParams;
use crate::compress::Compression;
use crate::error::Result;
use crate::format::FormatVersion;
use crate::id::{ChunkId, Id, PackId};
use crate::pack::{DEFAULT_PACK_SIZE, FinishedPack};

/// Where finished packs go. The repository layer implements it to upload;
/// [`Mutex<Vec<FinishedPack>>`](std::sync::Mutex) collects them in memory.
///
/// Contract: `put_pack` takes a pack; it may store it at once or queue it.
/// `flush` is a write barrier: when it returns `Ok`, every pack taken
/// before is stored durably (or, for in-memory sinks, kept), and when it
/// returns an error, some may not be. Both are called from several threads
/// at once; blocking in `put_pack` is how a slow store applies
/// backpressure.
pub trait PackSink: Sync {
    /// Takes one finished pack.
    fn put_pack(&self, pack: FinishedPack) -> Result<()>;

    /// Waits until every pack taken so far is stored durably.
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

impl PackSink for std::sync::Mutex<Vec<FinishedPack>> {
    fn put_pack(&self, pack: FinishedPack) -> Result<()> {
        self.lock().expect("sink lock").push(pack);
        Ok(())
    }
}

/// Where the reverse path reads packs from.
///
/// A pack the source does not have is reported as
/// [`Error::MissingPack`](crate::Error::MissingPack), so readers can tell
/// lost data from an unreachable store.
pub trait PackSource: Sync {
    /// Returns exactly `length` bytes at `offset` of pack `pack`.
    fn read_range(&self, pack: &PackId, offset: u32, length: u32) -> Result<Vec<u8>>;
}

impl PackSource for std::collections::HashMap<PackId, Vec<u8>> {
    fn read_range(&self, pack: &PackId, offset: u32, length: u32) -> Result<Vec<u8>> {
        let bytes = self.get(pack).ok_or_else(|| crate::Error::MissingPack {
            what: format!("pack {}", pack.short()),
        })?;
        bytes
            .get(offset as usize..offset as usize + length as usize)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                crate::Error::truncated(
                    format!("pack {}", pack.short()),
                    format!("{} bytes, wanted {length} at {offset}", bytes.len()),
                )
            })
    }
}

/// One chunk of a stream: its id and plaintext length. A chunk whose id is
/// all zeros is a *hole*: `len` zero bytes that are not stored (format
/// version 2). No keyed hash is all zeros, so holes cannot collide with
/// data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ChunkRef {
    /// The chunk's id.
    pub id: ChunkId,
    /// Its length in bytes.
    pub len: u32,
}

impl ChunkRef {
    /// The id a hole carries.
    pub const HOLE_ID: ChunkId = ChunkId(Id([0; 32]));

    /// A hole of `len` zero bytes.
    pub fn hole(len: u32) -> Self {
        ChunkRef {
            id: Self::HOLE_ID,
            len,
        }
    }

    /// Whether this stands for zeros that are not stored.
    pub fn is_hole(&self) -> bool {
        self.id == Self::HOLE_ID
    }
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
    /// The repository's format: what the writer may use (groups, holes).
    pub format: FormatVersion,
    /// Blobs shorter than this are compressed together in groups (format
    /// version 2); 0 turns groups off.
    pub small_blob: u32,
    /// A group is sealed once its members add up to this many bytes.
    pub group_size: u32,
}

/// Default [`WriterConfig::small_blob`]: files and trees below 64 KiB are
/// most of a source tree by count and gain most from shared context; see
/// `docs/DECISIONS.md`.
pub const DEFAULT_SMALL_BLOB: u32 = 64 << 10;
/// Default [`WriterConfig::group_size`]: a restore of one small file reads
/// and decompresses at most this much.
pub const DEFAULT_GROUP_SIZE: u32 = 512 << 10;

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            chunker: ChunkerParams::default(),
            compression: Compression::default(),
            pack_size: DEFAULT_PACK_SIZE,
            batch_size: 16 << 20,
            format: FormatVersion::CURRENT,
            small_blob: DEFAULT_SMALL_BLOB,
            group_size: DEFAULT_GROUP_SIZE,
        }
    }
}
