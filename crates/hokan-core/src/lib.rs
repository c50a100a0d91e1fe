//! hokan's data path: bytes in, encrypted and deduplicated pack files out,
//! and back.
//!
//! Data flows one way, one module per step:
//!
//! | step      | module          | main types                                   |
//! |-----------|-----------------|----------------------------------------------|
//! | chunk     | [`chunker`]     | [`Chunker`], [`ChunkerParams`]               |
//! | id        | [`keys`], [`id`]| [`MasterKey`], [`ChunkId`], [`TreeId`]       |
//! | dedup     | [`index`]       | [`Index`], [`Location`]                      |
//! | compress  | [`compress`]    | [`Compression`]                              |
//! | encrypt   | [`crypto`]      | [`Cipher`]                                   |
//! | blob      | [`blob`]        | [`EncodedBlob`]                              |
//! | pack      | [`pack`]        | [`PackWriter`], [`PackReader`], [`PackId`]   |
//! | all steps | [`pipeline`]    | [`BlobWriter`], [`BlobReader`]               |
//! | trees     | [`tree`]        | [`Tree`], [`Node`], [`Attr`]                 |
//! | browse    | [`browse`]      | walk, find a path, diff two trees            |
//! | formats   | [`format`]      | [`FormatVersion`]: what a repository may hold |
//!
//! The crate is synchronous and CPU-parallel (rayon); it never touches the
//! network. It knows storage only through two traits: a [`PackSink`] takes
//! finished packs, a [`PackSource`] returns byte ranges of stored packs. The
//! repository crate implements both over local disk and object stores.
//!
//! The bytes it writes are specified in `docs/FORMAT.md`, pinned by golden
//! tests, and versioned ([`pack::PACK_VERSION`]).
//!
//! # Example
//!
//! Store a stream, get its chunk list and the packs, and read it back:
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use hokan_core::{BlobReader, BlobWriter, Index, MasterKey, WriterConfig};
//!
//! # fn main() -> hokan_core::Result<()> {
//! let key = MasterKey::generate()?;
//! let mut index = Index::new();
//! let input = b"an etcd snapshot, a database dump, any stream at all ".repeat(50_000);
//!
//! // Write: chunk, id, dedup, compress, encrypt, pack.
//! let sink = Mutex::new(Vec::new());
//! let writer = BlobWriter::new(&key, WriterConfig::default(), &index, &sink)?;
//! let chunks = writer.write_stream(&input[..])?;
//! let stats = writer.finish()?;
//! assert!(stats.stored_bytes < input.len() as u64 / 10); // it compresses
//!
//! // The packs list themselves; index them and keep their bytes.
//! let mut store = HashMap::new();
//! for pack in sink.into_inner().unwrap() {
//!     index.insert_pack(pack.id, pack.kind, &pack.blobs);
//!     store.insert(pack.id, pack.bytes);
//! }
//!
//! // Read: locate, fetch, decrypt, decompress, verify, reassemble.
//! let mut restored = Vec::new();
//! BlobReader::new(&key, &index, &store).read_chunks(&chunks, &mut restored)?;
//! assert_eq!(restored, input);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod blob;
pub mod browse;
pub mod chunker;
pub mod compress;
pub mod crypto;
pub mod dump;
mod error;
pub mod format;
pub mod fs;
pub mod glob;
pub mod id;
pub mod index;
pub mod keys;
pub mod pack;
pub mod pipeline;
pub mod sample;
pub mod text;
pub mod tree;

pub use blob::EncodedBlob;
pub use chunker::{Chunker, ChunkerParams};
pub use compress::Compression;
pub use crypto::Cipher;
pub use error::{Error, Result};
pub use format::FormatVersion;
pub use id::{BlobType, ChunkId, Id, PackId, TreeId};
pub use index::{Index, IndexBuilder, Location, MappedRun, RunBuilder, RunMeta};
pub use keys::MasterKey;
pub use pack::{FinishedPack, PackReader, PackWriter, PackedBlob};
pub use pipeline::{
    BlobReader, BlobWriter, ChunkRef, ChunkWrite, PackSink, PackSource, WriteStats, WriterConfig,
};
pub use tree::{Attr, AttrValue, Node, NodeKind, Timestamp, Tree, Xattr};
