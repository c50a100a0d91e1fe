//! Pack files: sealed blobs back to back, then a sealed header that lists
//! them, then a fixed trailer. Byte layout (format version 1):
//!
//! ```text
//! offset        bytes  field
//! 0             6      magic "HKPACK"
//! 6             2      format version, u16 little-endian (1)
//! 8             ...    blob records back to back (see `blob`)
//! H             ...    header record: nonce (24) || encrypt(header) || tag (16),
//!                      associated data "hokan pack header\0" || version (u16 LE)
//! end - 8       4      length of the header record, u32 little-endian
//! end - 4       4      trailer magic "HKPT"
//!
//! header = count (u32 LE) || count × entry
//! entry  = type (u8: 0 data, 1 tree) || stored length (u32 LE)
//!          || plaintext length (u32 LE) || id (32)          = 41 bytes
//! ```
//!
//! Blob offsets are implicit: the first blob starts at 8, each next one where
//! the previous ended, and the blobs end exactly where the header starts.
//! A pack is self-describing, so a lost index is rebuilt from packs alone,
//! and it is named by the BLAKE3 of its bytes, so it is verified without a key.

use std::ops::Range;

use crate::blob::{self, EncodedBlob};
use crate::crypto::{NONCE_LEN, OVERHEAD, pack_header_aad};
use crate::error::{Error, Result};
use crate::id::{BlobType, Id, PackId};
use crate::keys::MasterKey;

/// The pack format version this build writes.
pub const PACK_VERSION: u16 = 1;
/// Pack versions this build reads, for messages.
pub const PACK_VERSIONS_READ: &str = "1";
/// First six bytes of every pack.
pub const PACK_MAGIC: &[u8; 6] = b"HKPACK";
/// Last four bytes of every pack.
pub const TRAILER_MAGIC: &[u8; 4] = b"HKPT";
/// Length of the prefix (magic and version).
pub const PREFIX_LEN: usize = 8;
/// Length of the trailer (header length and magic).
pub const TRAILER_LEN: usize = 8;
/// Length of one header entry.
pub const HEADER_ENTRY_LEN: usize = 41;
/// Default target size of a pack: 16 MiB, few enough objects for any store,
/// small enough to upload with a few retries.
pub const DEFAULT_PACK_SIZE: u32 = 16 << 20;
/// Packs address blobs with u32 offsets.
pub const MAX_PACK_LEN: u64 = u32::MAX as u64;
/// Smallest possible pack: prefix, a header for zero blobs, trailer.
pub const MIN_PACK_LEN: usize = PREFIX_LEN + OVERHEAD + 4 + TRAILER_LEN;

/// Where a blob sits in a pack, and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PackedBlob {
    /// Data or tree.
    pub kind: BlobType,
    /// The blob's id.
    pub id: Id,
    /// Offset of the sealed record from the start of the pack.
    pub offset: u32,
    /// Length of the sealed record.
    pub length: u32,
    /// Length of the plaintext.
    pub raw_len: u32,
}

/// A complete pack, ready to store under its id.
#[derive(Clone, Debug)]
pub struct FinishedPack {
    /// BLAKE3 of `bytes`.
    pub id: PackId,
    /// What its blobs hold.
    pub kind: BlobType,
    /// The file.
    pub bytes: Vec<u8>,
    /// Its blobs, in order.
    pub blobs: Vec<PackedBlob>,
}

impl FinishedPack {
    /// Sum of the blobs' plaintext lengths.
    pub fn raw_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.raw_len as u64).sum()
    }
}

/// Builds one pack in memory.
#[derive(Debug)]
pub struct PackWriter {
    kind: BlobType,
    buf: Vec<u8>,
    blobs: Vec<PackedBlob>,
}

impl PackWriter {
    /// An empty pack for blobs of `kind`; `capacity` is a hint in bytes.
    pub fn new(kind: BlobType, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.extend_from_slice(PACK_MAGIC);
        buf.extend_from_slice(&PACK_VERSION.to_le_bytes());
        PackWriter {
            kind,
            buf,
            blobs: Vec::new(),
        }
    }

    /// The type of blob this pack holds.
    pub fn kind(&self) -> BlobType {
        self.kind
    }

    /// Bytes written so far (without header and trailer).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// The size the pack will have once finished: blobs, header, trailer.
    pub fn finished_len(&self) -> usize {
        self.buf.len() + 4 + self.blobs.len() * HEADER_ENTRY_LEN + OVERHEAD + TRAILER_LEN
    }

    /// True when no blob was added.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Number of blobs added.
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// Appends a sealed blob.
    pub fn add(&mut self, blob: &EncodedBlob) -> Result<()> {
        if blob.kind != self.kind {
            return Err(Error::invalid(
                "pack",
                format!("a {} blob cannot go into a {} pack", blob.kind, self.kind),
            ));
        }
        let end = (self.buf.len() + blob.sealed.len()) as u64
            + ((self.blobs.len() + 1) * HEADER_ENTRY_LEN + OVERHEAD + 4 + TRAILER_LEN) as u64;
        if end > MAX_PACK_LEN {
            return Err(Error::PackTooLarge {
                limit: MAX_PACK_LEN,
            });
        }
        self.blobs.push(PackedBlob {
            kind: blob.kind,
            id: blob.id,
            offset: self.buf.len() as u32,
            length: blob.sealed.len() as u32,
            raw_len: blob.raw_len,
        });
        self.buf.extend_from_slice(&blob.sealed);
        Ok(())
    }

    /// Seals the header, appends it and the trailer, and names the pack.
    pub fn finish(self, key: &MasterKey) -> Result<FinishedPack> {
        let mut nonce = [0u8; NONCE_LEN];
        crate::error::random_fill(&mut nonce)?;
        Ok(self.finish_with_nonce(key, &nonce))
    }

    /// [`finish`](Self::finish) with a caller-chosen header nonce: only for
    /// reproducing known packs in golden tests.
    pub fn finish_with_nonce(mut self, key: &MasterKey, nonce: &[u8; NONCE_LEN]) -> FinishedPack {
        let header = encode_header(&self.blobs);
        let start = self.buf.len();
        key.cipher().seal_into_with_nonce(
            &mut self.buf,
            nonce,
            &pack_header_aad(PACK_VERSION),
            &header,
        );
        let header_len = (self.buf.len() - start) as u32;
        self.buf.extend_from_slice(&header_len.to_le_bytes());
        self.buf.extend_from_slice(TRAILER_MAGIC);
        FinishedPack {
            id: PackId::of(&self.buf),
            kind: self.kind,
            bytes: self.buf,
            blobs: self.blobs,
        }
    }
}

fn encode_header(blobs: &[PackedBlob]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + blobs.len() * HEADER_ENTRY_LEN);
    out.extend_from_slice(&(blobs.len() as u32).to_le_bytes());
    for b in blobs {
        out.push(b.kind.to_byte());
        out.extend_from_slice(&b.length.to_le_bytes());
        out.extend_from_slice(&b.raw_len.to_le_bytes());
        out.extend_from_slice(b.id.as_bytes());
    }
    out
}

fn pack_name(id: Option<&PackId>) -> String {
    match id {
        Some(id) => format!("pack {}", id.short()),
        None => "pack".to_string(),
    }
}

/// Checks the prefix and trailer of a whole pack and returns the byte range
/// of its sealed header.
pub fn header_range(bytes: &[u8], name: &str) -> Result<Range<usize>> {
    let len = bytes.len();
    if len < PREFIX_LEN {
        return if PACK_MAGIC.starts_with(&bytes[..len.min(6)]) {
            Err(Error::truncated(name, format!("only {len} bytes")))
        } else {
            Err(not_a_pack(name))
        };
    }
    if &bytes[..6] != PACK_MAGIC {
        return Err(not_a_pack(name));
    }
    let version = u16::from_le_bytes([bytes[6], bytes[7]]);
    if version != PACK_VERSION {
        return Err(Error::UnsupportedVersion {
            what: name.to_string(),
            found: version as u32,
            supported: PACK_VERSIONS_READ,
        });
    }
    let trailer = trailer_of(bytes, name)?;
    let header_len = trailer as usize;
    if header_len < OVERHEAD + 4 || header_len > len - PREFIX_LEN - TRAILER_LEN {
        return Err(Error::corrupted(
            name,
            format!("header length {header_len} does not fit a {len}-byte pack"),
        ));
    }
    let end = len - TRAILER_LEN;
    Ok(end - header_len..end)
}

fn trailer_of(bytes: &[u8], name: &str) -> Result<u32> {
    let len = bytes.len();
    if len < MIN_PACK_LEN || &bytes[len - 4..] != TRAILER_MAGIC {
        return Err(Error::truncated(
            name,
            format!(
                "its {len} bytes end without the pack trailer: it was cut short, \
                 or its last bytes are damaged"
            ),
        ));
    }
    Ok(u32::from_le_bytes(
        bytes[len - 8..len - 4].try_into().expect("4 bytes"),
    ))
}

fn not_a_pack(name: &str) -> Error {
    Error::NotHokan {
        what: name.to_string(),
        expected: "pack",
        reason: "it does not start with \"HKPACK\"".to_string(),
    }
}

/// The trailer's header length, from the last [`TRAILER_LEN`] bytes of a
/// pack: lets a remote reader fetch only the header.
pub fn header_len_from_trailer(tail: &[u8], name: &str) -> Result<u32> {
    if tail.len() < TRAILER_LEN || &tail[tail.len() - 4..] != TRAILER_MAGIC {
        return Err(Error::truncated(
            name,
            "it ends without the pack trailer: it was cut short, or its last bytes are damaged",
        ));
    }
    let t = &tail[tail.len() - 8..];
    Ok(u32::from_le_bytes(t[..4].try_into().expect("4 bytes")))
}

/// Opens and parses a sealed header that starts at `header_offset`.
///
/// `intact` says the pack's bytes were verified against its id, so a header
/// that fails authentication means a wrong key rather than damage.
pub fn decode_header(
    key: &MasterKey,
    sealed: &[u8],
    header_offset: usize,
    name: &str,
    intact: bool,
) -> Result<Vec<PackedBlob>> {
    let plain = key
        .cipher()
        .open(&pack_header_aad(PACK_VERSION), sealed)
        .map_err(|_| {
            if intact {
                Error::WrongKey {
                    what: name.to_string(),
                }
            } else {
                Error::corrupted(
                    name,
                    "its header failed authentication (damaged pack, or a key of another repository)",
                )
            }
        })?;
    let bad = |why: String| Error::corrupted(name, why);
    if plain.len() < 4 {
        return Err(bad("header shorter than its count".into()));
    }
    let count = u32::from_le_bytes(plain[..4].try_into().expect("4 bytes")) as usize;
    if plain.len() != 4 + count * HEADER_ENTRY_LEN {
        return Err(bad(format!(
            "header of {} bytes cannot list {count} blobs",
            plain.len()
        )));
    }
    let mut blobs = Vec::with_capacity(count);
    let mut offset = PREFIX_LEN as u64;
    for e in plain[4..].chunks_exact(HEADER_ENTRY_LEN) {
        let kind = BlobType::from_byte(e[0]).ok_or_else(|| bad(format!("blob type {}", e[0])))?;
        let length = u32::from_le_bytes(e[1..5].try_into().expect("4 bytes"));
        let raw_len = u32::from_le_bytes(e[5..9].try_into().expect("4 bytes"));
        let id = Id(e[9..41].try_into().expect("32 bytes"));
        if (length as usize) < OVERHEAD + 1 {
            return Err(bad(format!("blob {} is {length} bytes", id.short())));
        }
        blobs.push(PackedBlob {
            kind,
            id,
            offset: offset as u32,
            length,
            raw_len,
        });
        offset += length as u64;
    }
    if offset != header_offset as u64 {
        return Err(bad(format!(
            "header lists blobs up to byte {offset}, but the header starts at {header_offset}"
        )));
    }
    Ok(blobs)
}

/// A whole pack in memory, listed from its own header (no index needed).
#[derive(Debug)]
pub struct PackReader<'a> {
    name: String,
    bytes: &'a [u8],
    blobs: Vec<PackedBlob>,
}

impl<'a> PackReader<'a> {
    /// Checks and lists a pack. With `expected`, first verifies that the
    /// bytes hash to that id, which tells damage apart from a wrong key.
    pub fn open(bytes: &'a [u8], expected: Option<&PackId>, key: &MasterKey) -> Result<Self> {
        let name = pack_name(expected);
        let structure = header_range(bytes, &name);
        let intact = match expected {
            Some(id) if PackId::of(bytes) != *id => {
                return Err(match structure {
                    Err(e @ (Error::Truncated { .. } | Error::NotHokan { .. })) => e,
                    _ => Error::corrupted(
                        &name,
                        format!(
                            "its content hashes to {}, not to its name",
                            PackId::of(bytes).short()
                        ),
                    ),
                });
            }
            Some(_) => true,
            None => false,
        };
        let range = structure?;
        let blobs = decode_header(key, &bytes[range.clone()], range.start, &name, intact)?;
        Ok(PackReader { name, bytes, blobs })
    }

    /// The blobs, in order, as the header lists them.
    pub fn blobs(&self) -> &[PackedBlob] {
        &self.blobs
    }

    /// Reads, authenticates, decompresses and id-checks one blob.
    pub fn read(&self, key: &MasterKey, blob: &PackedBlob) -> Result<Vec<u8>> {
        let range = blob.offset as usize..blob.offset as usize + blob.length as usize;
        let sealed = self.bytes.get(range).ok_or_else(|| {
            Error::corrupted(
                &self.name,
                format!("blob {} lies outside the pack", blob.id.short()),
            )
        })?;
        let plain = blob::decode(key, blob.kind, &blob.id, sealed, &|| {
            format!("{} at offset {}", self.name, blob.offset)
        })?;
        if plain.len() != blob.raw_len as usize {
            return Err(Error::corrupted(
                &self.name,
                format!(
                    "blob {} is {} bytes, its header says {}",
                    blob.id.short(),
                    plain.len(),
                    blob.raw_len
                ),
            ));
        }
        Ok(plain)
    }

    /// Reads every blob, returning the first error.
    pub fn verify(&self, key: &MasterKey) -> Result<()> {
        for b in &self.blobs {
            self.read(key, b)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Compression;

    fn pack_of(key: &MasterKey, items: &[&[u8]]) -> FinishedPack {
        let mut w = PackWriter::new(BlobType::Data, 0);
        for d in items {
            w.add(&blob::encode_new(key, BlobType::Data, d, Compression::default()).unwrap())
                .unwrap();
        }
        w.finish(key).unwrap()
    }

    #[test]
    fn write_list_read() {
        let key = MasterKey::generate().unwrap();
        let p = pack_of(&key, &[b"one", b"two two two two two two", b""]);
        let r = PackReader::open(&p.bytes, Some(&p.id), &key).unwrap();
        assert_eq!(r.blobs(), &p.blobs[..]);
        assert_eq!(
            r.read(&key, &r.blobs()[1]).unwrap(),
            b"two two two two two two"
        );
        assert_eq!(r.read(&key, &r.blobs()[2]).unwrap(), b"");
        r.verify(&key).unwrap();
    }

    #[test]
    fn empty_pack_is_valid() {
        let key = MasterKey::generate().unwrap();
        let p = PackWriter::new(BlobType::Tree, 0).finish(&key).unwrap();
        assert_eq!(p.bytes.len(), MIN_PACK_LEN);
        assert!(
            PackReader::open(&p.bytes, Some(&p.id), &key)
                .unwrap()
                .blobs()
                .is_empty()
        );
    }

    #[test]
    fn distinct_errors() {
        let key = MasterKey::generate().unwrap();
        let p = pack_of(&key, &[b"hello", b"world"]);

        let other = MasterKey::generate().unwrap();
        let e = PackReader::open(&p.bytes, Some(&p.id), &other).unwrap_err();
        assert!(matches!(e, Error::WrongKey { .. }), "{e}");

        let mut flipped = p.bytes.clone();
        flipped[12] ^= 1;
        let e = PackReader::open(&flipped, Some(&p.id), &key).unwrap_err();
        assert!(matches!(e, Error::Corrupted { .. }), "{e}");

        let e = PackReader::open(&p.bytes[..p.bytes.len() - 5], Some(&p.id), &key).unwrap_err();
        assert!(matches!(e, Error::Truncated { .. }), "{e}");

        let mut newer = p.bytes.clone();
        newer[6] = 2;
        let e = PackReader::open(&newer, None, &key).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedVersion { found: 2, .. }),
            "{e}"
        );

        let e = PackReader::open(b"PK\x03\x04 a zip file", None, &key).unwrap_err();
        assert!(matches!(e, Error::NotHokan { .. }), "{e}");

        let e = PackReader::open(b"HKP", None, &key).unwrap_err();
        assert!(matches!(e, Error::Truncated { .. }), "{e}");
    }

    #[test]
    fn wrong_kind_refused() {
        let key = MasterKey::generate().unwrap();
        let mut w = PackWriter::new(BlobType::Tree, 0);
        let b = blob::encode_new(&key, BlobType::Data, b"x", Compression::Off).unwrap();
        assert!(w.add(&b).is_err());
    }
}
