//! bbolt (boltdb) database files, as etcd writes them.
//!
//! A bbolt file is an array of fixed-size pages (the size is in the meta
//! page, 4096 on Linux/amd64). Every page starts with a 16-byte header:
//!
//! | offset | size | field                                              |
//! |--------|------|----------------------------------------------------|
//! | 0      | 8    | page id (u64 LE), its index in the file            |
//! | 8      | 2    | flags (u16 LE): 0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist |
//! | 10     | 2    | count (u16 LE): elements (freelist: ids, 0xFFFF = count in the first u64) |
//! | 12     | 4    | overflow (u32 LE): pages that follow and belong to this one |
//!
//! Pages 0 and 1 are meta pages; the one with a valid checksum and the
//! higher transaction id is current. A tree of branch and leaf pages holds
//! the root bucket, whose leaf elements name the buckets; a small bucket is
//! stored inline in its parent's leaf element. The freelist page lists the
//! pages that are free.
//!
//! This module reads pages one at a time ([`PageHeader`], [`Meta`],
//! [`leaf_elements`]); [`Db`] walks a whole file.

mod db;

pub use db::{Bucket, Db, Entries, Entry};

use crate::error::{Error, Result};

/// Size of a page header.
pub const PAGE_HEADER_LEN: usize = 16;
/// Size of a branch or leaf element.
pub const ELEMENT_LEN: usize = 16;
/// Size of a bucket header (root page id u64, sequence u64) in a leaf value.
pub const BUCKET_HEADER_LEN: usize = 16;
/// bbolt's magic number, first field of the meta.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The only data file version bbolt writes.
pub const VERSION: u32 = 2;
/// Branch page flag.
pub const BRANCH_PAGE: u16 = 0x01;
/// Leaf page flag.
pub const LEAF_PAGE: u16 = 0x02;
/// Meta page flag.
pub const META_PAGE: u16 = 0x04;
/// Freelist page flag.
pub const FREELIST_PAGE: u16 = 0x10;
/// Leaf element flag: the value is a bucket header (and maybe an inline page).
pub const BUCKET_LEAF_FLAG: u32 = 0x01;
/// Freelist page id meaning "the freelist is not stored" (NoFreelistSync).
pub const NO_FREELIST: u64 = u64::MAX;
/// Smallest and largest page size accepted: bbolt uses the OS page size.
pub const PAGE_SIZES: std::ops::RangeInclusive<u32> = 512..=(1 << 20);
/// Bytes of a meta page that must be present to read the meta: header + meta.
pub const META_END: usize = PAGE_HEADER_LEN + META_LEN;
const META_LEN: usize = 64;
const META_CHECKSUM_AT: usize = 56;

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The 16-byte header at the start of every page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHeader {
    /// The page's id (its index in the file for pages that are in use).
    pub id: u64,
    /// Page type flags.
    pub flags: u16,
    /// Number of elements.
    pub count: u16,
    /// Number of pages after this one that belong to it.
    pub overflow: u32,
}

impl PageHeader {
    /// Reads a header from the first 16 bytes of `page`; `None` if shorter.
    pub fn parse(page: &[u8]) -> Option<PageHeader> {
        if page.len() < PAGE_HEADER_LEN {
            return None;
        }
        Some(PageHeader {
            id: u64_at(page, 0),
            flags: u16_at(page, 8),
            count: u16_at(page, 10),
            overflow: u32_at(page, 12),
        })
    }

    /// Length in bytes of the page and its overflow pages.
    pub fn run_len(&self, page_size: u32) -> u64 {
        (u64::from(self.overflow) + 1) * u64::from(page_size)
    }
}

/// The meta: bbolt's superblock, stored twice (pages 0 and 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Always [`MAGIC`] for a valid meta.
    pub magic: u32,
    /// Always [`VERSION`] for a valid meta.
    pub version: u32,
    /// Size of every page in the file.
    pub page_size: u32,
    /// Unused by bbolt; kept for completeness.
    pub flags: u32,
    /// Page id of the root bucket's tree.
    pub root: u64,
    /// The root bucket's sequence.
    pub sequence: u64,
    /// Page id of the freelist, or [`NO_FREELIST`].
    pub freelist: u64,
    /// High-water mark: number of pages in use; the database is `pgid × page_size` bytes.
    pub pgid: u64,
    /// Transaction id that wrote this meta.
    pub txid: u64,
    /// FNV-64a of the 56 bytes before it.
    pub checksum: u64,
}

impl Meta {
    /// Reads the meta of a meta page (`page` starts at the page header),
    /// checking magic, version, checksum and page size.
    pub fn parse(page: &[u8]) -> Result<Meta, String> {
        if page.len() < META_END {
            return Err(format!(
                "{} bytes, a meta page needs {META_END}",
                page.len()
            ));
        }
        let m = &page[PAGE_HEADER_LEN..META_END];
        let meta = Meta {
            magic: u32_at(m, 0),
            version: u32_at(m, 4),
            page_size: u32_at(m, 8),
            flags: u32_at(m, 12),
            root: u64_at(m, 16),
            sequence: u64_at(m, 24),
            freelist: u64_at(m, 32),
            pgid: u64_at(m, 40),
            txid: u64_at(m, 48),
            checksum: u64_at(m, 56),
        };
        if meta.magic != MAGIC {
            return Err(format!(
                "magic is {:#010x}, bbolt's is {MAGIC:#010x}",
                meta.magic
            ));
        }
        if meta.version != VERSION {
            return Err(format!(
                "version is {}, bbolt writes {VERSION}",
                meta.version
            ));
        }
        let sum = fnv64a(&m[..META_CHECKSUM_AT]);
        if sum != meta.checksum {
            return Err(format!(
                "meta checksum is {:#018x}, its FNV-64a is {sum:#018x}",
                meta.checksum
            ));
        }
        if !PAGE_SIZES.contains(&meta.page_size) || !meta.page_size.is_power_of_two() {
            return Err(format!(
                "page size {} is not a power of two in {PAGE_SIZES:?}",
                meta.page_size
            ));
        }
        if meta.pgid < 2 {
            return Err(format!(
                "high-water mark {} leaves no room for the meta pages",
                meta.pgid
            ));
        }
        Ok(meta)
    }

    /// Size of the database in bytes (`pgid × page_size`), what `tx.Size()`
    /// and `etcdctl snapshot status` report as the total size.
    pub fn db_size(&self) -> u64 {
        self.pgid.saturating_mul(u64::from(self.page_size))
    }
}

/// FNV-1a, 64 bits: bbolt's meta checksum.
pub fn fnv64a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Picks the current meta from the first bytes of a file (at least page 0's
/// meta; page 1 is read if `head` reaches it): the valid one with the higher
/// transaction id, as bbolt does. Page 1 is looked for at page 0's page size,
/// or at 4096 when page 0 is invalid (bbolt uses the OS page size then).
pub fn current_meta(head: &[u8], what: &str) -> Result<Meta> {
    let m0 = Meta::parse(head);
    let at1 = m0.as_ref().map(|m| m.page_size as usize).unwrap_or(4096);
    let m1 = if head.len() > at1 {
        Meta::parse(&head[at1..])
    } else {
        Err("the input ends before page 1".to_string())
    };
    match (m0, m1) {
        (Ok(a), Ok(b)) => Ok(if b.txid > a.txid { b } else { a }),
        (Ok(a), Err(_)) => Ok(a),
        (Err(_), Ok(b)) => Ok(b),
        (Err(e0), Err(e1)) => Err(Error::NotBbolt {
            what: what.to_string(),
            reason: format!("meta page 0: {e0}; meta page 1: {e1}"),
        }),
    }
}

/// One element of a leaf page, with positions relative to the page start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafElement {
    /// Element flags ([`BUCKET_LEAF_FLAG`] for a bucket).
    pub flags: u32,
    /// Offset of the key from the start of the page.
    pub key_at: u64,
    /// Key length.
    pub key_len: u32,
    /// Value length; the value follows the key.
    pub value_len: u32,
}

impl LeafElement {
    /// Offset just past the value.
    pub fn end(&self) -> u64 {
        self.key_at + u64::from(self.key_len) + u64::from(self.value_len)
    }
}

/// The elements of a leaf page whose header and element table are in
/// `page`; `None` if the table does not fit. Positions are not checked
/// against the page end: callers do.
pub fn leaf_elements(page: &[u8], count: u16) -> Option<impl Iterator<Item = LeafElement> + '_> {
    let table_end = PAGE_HEADER_LEN + ELEMENT_LEN * usize::from(count);
    if page.len() < table_end {
        return None;
    }
    Some((0..usize::from(count)).map(move |i| element_at(page, i)))
}

/// Element `i` of a leaf page whose table holds at least `i + 1` elements.
fn element_at(page: &[u8], i: usize) -> LeafElement {
    let e = PAGE_HEADER_LEN + ELEMENT_LEN * i;
    LeafElement {
        flags: u32_at(page, e),
        // pos is relative to the element itself.
        key_at: e as u64 + u64::from(u32_at(page, e + 4)),
        key_len: u32_at(page, e + 8),
        value_len: u32_at(page, e + 12),
    }
}

/// Element `i` of a leaf page, in constant time; `None` if the table of
/// `count` elements does not fit in `page` or `i` is past it.
pub fn leaf_element(page: &[u8], count: u16, i: usize) -> Option<LeafElement> {
    let fits = page.len() >= PAGE_HEADER_LEN + ELEMENT_LEN * usize::from(count);
    (fits && i < usize::from(count)).then(|| element_at(page, i))
}

/// The revision in a key of etcd's `key` bucket: 8-byte main revision (big
/// endian), `_`, 8-byte sub revision, and a `t` when the key was deleted.
/// `None` when the key is shorter than 8 bytes.
pub fn key_revision(key: &[u8]) -> Option<i64> {
    key.get(..8)
        .map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv64a_matches_the_reference_vectors() {
        // From the FNV reference (draft-eastlake-fnv): "" and "a".
        assert_eq!(fnv64a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv64a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv64a(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn key_revision_reads_the_main_revision() {
        let mut k = 42u64.to_be_bytes().to_vec();
        k.push(b'_');
        k.extend(7u64.to_be_bytes());
        assert_eq!(key_revision(&k), Some(42));
        assert_eq!(key_revision(b"short"), None);
    }
}
