//! Pack files: sealed records back to back, then a sealed header that lists
//! them, then a fixed trailer. Byte layout:
//!
//! ```text
//! offset        bytes  field
//! 0             6      magic "HKPACK"
//! 6             2      format version, u16 little-endian (1 or 2)
//! 8             ...    records back to back (see `blob`)
//! H             ...    header record: nonce (24) || encrypt(header) || tag (16),
//!                      associated data "hokan pack header\0" || version (u16 LE)
//! end - 8       4      length of the header record, u32 little-endian
//! end - 4       4      trailer magic "HKPT"
//!
//! version 1: every record is one blob
//! header = count (u32 LE) || count × entry
//! entry  = type (u8: 0 data, 1 tree) || stored length (u32 LE)
//!          || plaintext length (u32 LE) || id (32)          = 41 bytes
//!
//! version 2: a record is one blob, or a group of small blobs
//! header = records (u32 LE) || records × record
//! record = type (u8) || stored length (u32 LE) || members (u16 LE)
//!          || members × (plaintext length (u32 LE) || id (32))
//! ```
//!
//! Record offsets are implicit: the first starts at 8, each next one where
//! the previous ended, and the records end exactly where the header starts.
//! A version-2 record with one member is a blob sealed alone; with two or
//! more it is a group ([`blob::encode_group`]). A pack is self-describing,
//! so a lost index is rebuilt from packs alone, and it is named by the
//! BLAKE3 of its bytes, so it is verified without a key.

use std::ops::Range;

mod scan;
pub use scan::{Listed, Scanned, scan};

use crate::blob::{self, EncodedBlob, EncodedGroup, Group};
use crate::crypto::{NONCE_LEN, OVERHEAD, pack_header_aad};
use crate::error::{Error, Result};
use crate::id::{BlobType, Id, PackId};
use crate::keys::MasterKey;

/// The newest pack format version this build writes.
pub const PACK_VERSION: u16 = 2;
/// Pack versions this build reads, for messages.
pub const PACK_VERSIONS_READ: &str = "1 and 2";
/// First six bytes of every pack.
pub const PACK_MAGIC: &[u8; 6] = b"HKPACK";
/// Last four bytes of every pack.
pub const TRAILER_MAGIC: &[u8; 4] = b"HKPT";
/// Length of the prefix (magic and version).
pub const PREFIX_LEN: usize = 8;
/// Length of the trailer (header length and magic).
pub const TRAILER_LEN: usize = 8;
/// Length of one version-1 header entry.
pub const HEADER_ENTRY_LEN: usize = 41;
/// Length of a version-2 record's fixed part (type, length, members).
const RECORD_LEN: usize = 7;
/// Length of a version-2 member entry (plaintext length, id).
const MEMBER_LEN: usize = 36;
/// Default target size of a pack: 16 MiB, few enough objects for any store,
/// small enough to upload with a few retries.
pub const DEFAULT_PACK_SIZE: u32 = 16 << 20;
/// Packs address blobs with u32 offsets.
pub const MAX_PACK_LEN: u64 = u32::MAX as u64;
/// Smallest possible pack: prefix, a header for zero blobs, trailer.
pub const MIN_PACK_LEN: usize = PREFIX_LEN + OVERHEAD + 4 + TRAILER_LEN;

/// Where a blob sits in a pack, and what it is. Members of one group record
/// share `offset` and `length` (the record's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PackedBlob {
    /// Data or tree.
    pub kind: BlobType,
    /// The blob's id.
    pub id: Id,
    /// Offset of its sealed record from the start of the pack.
    pub offset: u32,
    /// Length of its sealed record.
    pub length: u32,
    /// Length of the plaintext.
    pub raw_len: u32,
}

/// For each blob of a pack's list (in header order), whether it is a member
/// of a group record: members of one record are listed together and share
/// its offset, and a record alone never shares it.
pub fn group_members(blobs: &[PackedBlob]) -> impl Iterator<Item = bool> + '_ {
    (0..blobs.len()).map(move |i| {
        let at = blobs[i].offset;
        (i > 0 && blobs[i - 1].offset == at) || blobs.get(i + 1).is_some_and(|b| b.offset == at)
    })
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
    version: u16,
    buf: Vec<u8>,
    blobs: Vec<PackedBlob>,
    /// Records written (version 2 lists records, not blobs).
    records: usize,
}

impl PackWriter {
    /// An empty pack of the newest version for blobs of `kind`; `capacity`
    /// is a hint in bytes.
    pub fn new(kind: BlobType, capacity: usize) -> Self {
        Self::with_version(kind, capacity, PACK_VERSION)
    }

    /// An empty pack of format `version` (1 or 2).
    pub fn with_version(kind: BlobType, capacity: usize, version: u16) -> Self {
        assert!(matches!(version, 1 | 2), "pack version {version}");
        let mut buf = Vec::with_capacity(capacity);
        buf.extend_from_slice(PACK_MAGIC);
        buf.extend_from_slice(&version.to_le_bytes());
        PackWriter {
            kind,
            version,
            buf,
            blobs: Vec::new(),
            records: 0,
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

    fn header_len(&self, records: usize, blobs: usize) -> usize {
        4 + match self.version {
            1 => blobs * HEADER_ENTRY_LEN,
            _ => records * RECORD_LEN + blobs * MEMBER_LEN,
        }
    }

    /// The size the pack will have once finished: records, header, trailer.
    pub fn finished_len(&self) -> usize {
        self.buf.len() + self.header_len(self.records, self.blobs.len()) + OVERHEAD + TRAILER_LEN
    }

    /// True when no blob was added.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Number of blobs added.
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    fn append(&mut self, kind: BlobType, sealed: &[u8], members: &[(Id, u32)]) -> Result<()> {
        if kind != self.kind {
            return Err(Error::invalid(
                "pack",
                format!("a {kind} blob cannot go into a {} pack", self.kind),
            ));
        }
        let end = (self.buf.len()
            + sealed.len()
            + self.header_len(self.records + 1, self.blobs.len() + members.len())
            + OVERHEAD
            + TRAILER_LEN) as u64;
        if end > MAX_PACK_LEN {
            return Err(Error::PackTooLarge {
                limit: MAX_PACK_LEN,
            });
        }
        let offset = self.buf.len() as u32;
        for (id, raw_len) in members {
            self.blobs.push(PackedBlob {
                kind,
                id: *id,
                offset,
                length: sealed.len() as u32,
                raw_len: *raw_len,
            });
        }
        self.records += 1;
        self.buf.extend_from_slice(sealed);
        Ok(())
    }

    /// Appends a blob sealed alone.
    pub fn add(&mut self, blob: &EncodedBlob) -> Result<()> {
        self.append(blob.kind, &blob.sealed, &[(blob.id, blob.raw_len)])
    }

    /// Appends a group record (version 2 only).
    pub fn add_group(&mut self, group: &EncodedGroup) -> Result<()> {
        if self.version < 2 {
            return Err(Error::NeedsFormat {
                what: "a group of small blobs".into(),
                needed: 2,
            });
        }
        self.append(group.kind, &group.sealed, &group.members)
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
        let header = match self.version {
            1 => encode_header_v1(&self.blobs),
            _ => encode_header_v2(&self.blobs),
        };
        let start = self.buf.len();
        key.cipher().seal_into_with_nonce(
            &mut self.buf,
            nonce,
            &pack_header_aad(self.version),
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

fn encode_header_v1(blobs: &[PackedBlob]) -> Vec<u8> {
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

/// The blobs of one record each: consecutive blobs sharing an offset.
fn records(blobs: &[PackedBlob]) -> impl Iterator<Item = &[PackedBlob]> {
    blobs.chunk_by(|a, b| a.offset == b.offset)
}

fn encode_header_v2(blobs: &[PackedBlob]) -> Vec<u8> {
    let count = records(blobs).count();
    let mut out = Vec::with_capacity(4 + count * RECORD_LEN + blobs.len() * MEMBER_LEN);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for r in records(blobs) {
        out.push(r[0].kind.to_byte());
        out.extend_from_slice(&r[0].length.to_le_bytes());
        out.extend_from_slice(&(r.len() as u16).to_le_bytes());
        for b in r {
            out.extend_from_slice(&b.raw_len.to_le_bytes());
            out.extend_from_slice(b.id.as_bytes());
        }
    }
    out
}

fn pack_name(id: Option<&PackId>) -> String {
    match id {
        Some(id) => format!("pack {}", id.short()),
        None => "pack".to_string(),
    }
}

/// Checks the prefix and trailer of a whole pack and returns its version
/// and the byte range of its sealed header.
pub fn header_range(bytes: &[u8], name: &str) -> Result<(u16, Range<usize>)> {
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
    if !matches!(version, 1 | 2) {
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
    Ok((version, end - header_len..end))
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
/// `version` is the pack's version when known; `None` (a reader that
/// fetched only the pack's end) tries each version, since the header's
/// associated data names its version and only the right one opens.
/// `intact` says the pack's bytes were verified against its id, so a header
/// that fails authentication means a wrong key rather than damage.
pub fn decode_header(
    key: &MasterKey,
    sealed: &[u8],
    header_offset: usize,
    name: &str,
    intact: bool,
    version: Option<u16>,
) -> Result<Vec<PackedBlob>> {
    let versions: &[u16] = match version {
        Some(1) => &[1],
        Some(_) => &[2],
        None => &[2, 1],
    };
    let opened = versions.iter().find_map(|&v| {
        key.cipher()
            .open(&pack_header_aad(v), sealed)
            .ok()
            .map(|plain| (v, plain))
    });
    let Some((version, plain)) = opened else {
        return Err(if intact {
            Error::WrongKey {
                what: name.to_string(),
            }
        } else {
            Error::corrupted(
                name,
                "its header failed authentication (damaged pack, or a key of another repository)",
            )
        });
    };
    let blobs = match version {
        1 => parse_header_v1(&plain, name)?,
        _ => parse_header_v2(&plain, name)?,
    };
    let end = blobs
        .last()
        .map_or(PREFIX_LEN as u64, |b| b.offset as u64 + b.length as u64);
    if end != header_offset as u64 {
        return Err(Error::corrupted(
            name,
            format!(
                "header lists blobs up to byte {end}, but the header starts at {header_offset}"
            ),
        ));
    }
    Ok(blobs)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn parse_header_v1(plain: &[u8], name: &str) -> Result<Vec<PackedBlob>> {
    let bad = |why: String| Error::corrupted(name, why);
    if plain.len() < 4 {
        return Err(bad("header shorter than its count".into()));
    }
    let count = u32_at(plain, 0) as usize;
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
        let length = u32_at(e, 1);
        let id = Id(e[9..41].try_into().expect("32 bytes"));
        if (length as usize) < OVERHEAD + 1 || offset + length as u64 > MAX_PACK_LEN {
            return Err(bad(format!("blob {} is {length} bytes", id.short())));
        }
        blobs.push(PackedBlob {
            kind,
            id,
            offset: offset as u32,
            length,
            raw_len: u32_at(e, 5),
        });
        offset += length as u64;
    }
    Ok(blobs)
}

fn parse_header_v2(plain: &[u8], name: &str) -> Result<Vec<PackedBlob>> {
    let bad = |why: String| Error::corrupted(name, why);
    if plain.len() < 4 {
        return Err(bad("header shorter than its count".into()));
    }
    let count = u32_at(plain, 0) as usize;
    let mut blobs = Vec::new();
    let mut offset = PREFIX_LEN as u64;
    let mut at = 4;
    for _ in 0..count {
        let rec = plain
            .get(at..at + RECORD_LEN)
            .ok_or_else(|| bad(format!("header ends inside its {count} records")))?;
        let kind =
            BlobType::from_byte(rec[0]).ok_or_else(|| bad(format!("blob type {}", rec[0])))?;
        let length = u32_at(rec, 1);
        let members = u16::from_le_bytes([rec[5], rec[6]]) as usize;
        at += RECORD_LEN;
        if members == 0 {
            return Err(bad("a record without members".into()));
        }
        if (length as usize) < OVERHEAD + 1 || offset + length as u64 > MAX_PACK_LEN {
            return Err(bad(format!("a record of {length} bytes")));
        }
        let list = plain
            .get(at..at + members * MEMBER_LEN)
            .ok_or_else(|| bad(format!("header ends inside a record of {members} members")))?;
        for m in list.chunks_exact(MEMBER_LEN) {
            blobs.push(PackedBlob {
                kind,
                id: Id(m[4..36].try_into().expect("32 bytes")),
                offset: offset as u32,
                length,
                raw_len: u32_at(m, 0),
            });
        }
        at += members * MEMBER_LEN;
        offset += length as u64;
    }
    if at != plain.len() {
        return Err(bad(format!(
            "{} bytes after the last of {count} records",
            plain.len() - at
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
    /// The last group opened: members of one group are read one after the
    /// other, and opening it once serves them all.
    open_group: std::sync::Mutex<Option<(u32, std::sync::Arc<Group>)>>,
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
        let (version, range) = structure?;
        let blobs = decode_header(
            key,
            &bytes[range.clone()],
            range.start,
            &name,
            intact,
            Some(version),
        )?;
        Ok(PackReader {
            name,
            bytes,
            blobs,
            open_group: std::sync::Mutex::new(None),
        })
    }

    /// A reader that lays a pack's blobs out from `blobs` (an index's
    /// entries for it) instead of from its header: for a pack whose header
    /// or trailer is damaged, or that was cut short. Each blob still
    /// authenticates and is checked against its id, so a wrong entry reads
    /// as damage, never as data; a blob past the end reads as damage too.
    pub fn from_list(bytes: &'a [u8], mut blobs: Vec<PackedBlob>, id: Option<&PackId>) -> Self {
        // `in_group` finds a record's members by offset; the sort is stable,
        // so members keep their order.
        blobs.sort_by_key(|b| b.offset);
        PackReader {
            name: pack_name(id),
            bytes,
            blobs,
            open_group: std::sync::Mutex::new(None),
        }
    }

    /// The blobs, in order, as the header lists them.
    pub fn blobs(&self) -> &[PackedBlob] {
        &self.blobs
    }

    /// Whether `blob` (one of [`blobs`](Self::blobs)) lives in a group record.
    pub fn in_group(&self, blob: &PackedBlob) -> bool {
        // Blobs are listed by offset, the members of a record together.
        let first = self.blobs.partition_point(|b| b.offset < blob.offset);
        self.blobs
            .get(first + 1)
            .is_some_and(|b| b.offset == blob.offset)
    }

    /// Reads, authenticates, decompresses and id-checks one blob.
    pub fn read(&self, key: &MasterKey, blob: &PackedBlob) -> Result<Vec<u8>> {
        let range = blob.offset as usize..blob.offset as usize + blob.length as usize;
        let sealed = self.bytes.get(range).ok_or_else(|| {
            Error::truncated(
                &self.name,
                format!(
                    "blob {} at {}..{} lies past its end ({} bytes)",
                    blob.id.short(),
                    blob.offset,
                    blob.offset as u64 + blob.length as u64,
                    self.bytes.len()
                ),
            )
        })?;
        let here = || format!("{} at offset {}", self.name, blob.offset);
        let plain = if self.in_group(blob) {
            let mut open = self.open_group.lock().expect("open group");
            let group = match &*open {
                Some((at, g)) if *at == blob.offset => g.clone(),
                _ => {
                    let g = std::sync::Arc::new(blob::decode_group(key, blob.kind, sealed, &here)?);
                    *open = Some((blob.offset, g.clone()));
                    g
                }
            };
            drop(open);
            group.member(key, &blob.id, &here)?
        } else {
            blob::decode(key, blob.kind, &blob.id, sealed, &here)?
        };
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
    fn version_1_packs_are_still_written_and_read() {
        let key = MasterKey::generate().unwrap();
        let mut w = PackWriter::with_version(BlobType::Data, 0, 1);
        let b = blob::encode_new(&key, BlobType::Data, b"old", Compression::default()).unwrap();
        w.add(&b).unwrap();
        let g = blob::encode_group(
            &key,
            BlobType::Data,
            &[(Id([1; 32]), b"a"), (Id([2; 32]), b"b")],
            Compression::default(),
        )
        .unwrap();
        assert!(matches!(w.add_group(&g), Err(Error::NeedsFormat { .. })));
        let p = w.finish(&key).unwrap();
        assert_eq!(&p.bytes[6..8], &[1, 0]);
        let r = PackReader::open(&p.bytes, Some(&p.id), &key).unwrap();
        assert_eq!(r.read(&key, &r.blobs()[0]).unwrap(), b"old");
        // A reader that has only the pack's end finds the version itself.
        let (_, range) = header_range(&p.bytes, "p").unwrap();
        let listed = decode_header(&key, &p.bytes[range.clone()], range.start, "p", false, None);
        assert_eq!(listed.unwrap(), p.blobs);
    }

    #[test]
    fn groups_and_single_records_mix() {
        let key = MasterKey::generate().unwrap();
        let small: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 100 + i as usize]).collect();
        let members: Vec<(Id, &[u8])> = small
            .iter()
            .map(|d| (key.blob_id(BlobType::Data, d), &d[..]))
            .collect();
        let mut w = PackWriter::new(BlobType::Data, 0);
        w.add(&blob::encode_new(&key, BlobType::Data, b"alone", Compression::default()).unwrap())
            .unwrap();
        w.add_group(
            &blob::encode_group(&key, BlobType::Data, &members[..3], Compression::default())
                .unwrap(),
        )
        .unwrap();
        w.add_group(
            &blob::encode_group(&key, BlobType::Data, &members[3..], Compression::default())
                .unwrap(),
        )
        .unwrap();
        let finished_len = w.finished_len();
        let p = w.finish(&key).unwrap();
        assert_eq!(p.bytes.len(), finished_len);
        assert_eq!(p.blobs.len(), 6);
        assert_eq!(
            group_members(&p.blobs).collect::<Vec<_>>(),
            [false, true, true, true, true, true]
        );
        let r = PackReader::open(&p.bytes, Some(&p.id), &key).unwrap();
        assert_eq!(r.blobs(), &p.blobs[..]);
        r.verify(&key).unwrap();
        for (b, d) in r.blobs()[1..].iter().zip(&small) {
            assert!(r.in_group(b));
            assert_eq!(&r.read(&key, b).unwrap(), d);
        }
        assert_eq!(r.read(&key, &r.blobs()[0]).unwrap(), b"alone");
        assert!(!r.in_group(&r.blobs()[0]));
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
        newer[6] = 3;
        let e = PackReader::open(&newer, None, &key).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedVersion { found: 3, .. }),
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
