//! The split layout format (version 1): what is left of a bbolt file once the
//! key/value records are cut out, and enough to put them back.
//!
//! ```text
//! layout  = magic "HKBL" | version u8 (1) | page_size u32 LE | entry* | end
//! entry   = 0x01 Raw  | len varint | len bytes, copied as they are
//!         | 0x02 Leaf | the leaf page run (page + overflow pages) with its
//!                       records removed, in file order
//! end     = 0x00 | total_len u64 LE | records u64 LE | sha256 [32]
//! ```
//!
//! A Leaf entry is sized by its own first bytes: the 16-byte page header
//! gives `count` and `overflow` (the run is `(overflow + 1) × page_size`
//! bytes), the `16 × count` element table that follows gives each element's
//! position and lengths, and [`record_ranges`] turns header and table into
//! the byte ranges of the records. The rebuild reads header and table from
//! the layout, computes the same ranges, and interleaves the layout's
//! remaining bytes (the gaps) with the records, so it never has to guess.
//! `docs/FORMAT.md` (§13) has the
//! byte-level description.

use std::ops::Range;

use crate::bbolt::{
    BUCKET_LEAF_FLAG, ELEMENT_LEN, LEAF_PAGE, PAGE_HEADER_LEN, PageHeader, leaf_elements,
};

/// First bytes of every layout.
pub const MAGIC: [u8; 4] = *b"HKBL";
/// The layout version this build writes and reads.
pub const VERSION: u8 = 1;
/// Length of the layout header (magic, version, page size).
pub const HEADER_LEN: usize = 9;
/// Entry tag: end of the layout.
pub const TAG_END: u8 = 0x00;
/// Entry tag: bytes copied as they are.
pub const TAG_RAW: u8 = 0x01;
/// Entry tag: a leaf page run with its records cut out.
pub const TAG_LEAF: u8 = 0x02;
/// Length of the end entry after its tag.
pub const END_LEN: usize = 8 + 8 + 32;
/// The largest record cut out (4 MiB, hokan's default largest chunk): larger
/// key/values stay in the layout and are chunked with it.
pub const MAX_RECORD: u64 = 4 << 20;
/// The longest leaf run (page and overflow pages) split; a longer one is
/// kept raw, which bounds the splitter's memory.
pub const MAX_RUN: u64 = 32 << 20;

/// The byte ranges of the records in a leaf run of `run_len` bytes, computed
/// from its header and element table alone (`head` holds at least those).
///
/// An element is a record when it is not a bucket and its key plus value is
/// 1 byte to [`MAX_RECORD`]; its range is `[pos, pos + ksize + vsize)` from
/// the page start. `None` (keep the run raw) unless the page is a leaf
/// (flags exactly 0x02) whose records lie after the element table, inside
/// the run, in increasing order without overlap. `Some(empty)` is possible.
pub fn record_ranges(head: &[u8], run_len: u64) -> Option<Vec<Range<u64>>> {
    let header = PageHeader::parse(head)?;
    if header.flags != LEAF_PAGE || header.count == 0 {
        return None;
    }
    let table_end = (PAGE_HEADER_LEN + ELEMENT_LEN * usize::from(header.count)) as u64;
    if table_end > run_len {
        return None;
    }
    let mut ranges = Vec::with_capacity(usize::from(header.count));
    let mut prev_end = table_end;
    for e in leaf_elements(head, header.count)? {
        let len = u64::from(e.key_len) + u64::from(e.value_len);
        if e.flags & BUCKET_LEAF_FLAG != 0 || len == 0 || len > MAX_RECORD {
            continue;
        }
        if e.key_at < prev_end || e.end() > run_len {
            return None;
        }
        ranges.push(e.key_at..e.end());
        prev_end = e.end();
    }
    Some(ranges)
}

/// Length of the header and element table of a leaf page with `count`
/// elements.
pub fn table_len(count: u16) -> usize {
    PAGE_HEADER_LEN + ELEMENT_LEN * usize::from(count)
}

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(count: u16, elements: &[(u32, u32, u32, u32)], run: usize) -> Vec<u8> {
        let mut p = vec![0u8; run];
        p[8..10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
        p[10..12].copy_from_slice(&count.to_le_bytes());
        for (i, &(flags, pos, k, v)) in elements.iter().enumerate() {
            let e = 16 + 16 * i;
            p[e..e + 4].copy_from_slice(&flags.to_le_bytes());
            p[e + 4..e + 8].copy_from_slice(&pos.to_le_bytes());
            p[e + 8..e + 12].copy_from_slice(&k.to_le_bytes());
            p[e + 12..e + 16].copy_from_slice(&v.to_le_bytes());
        }
        p
    }

    #[test]
    fn ranges_follow_the_element_table() {
        // Two elements: payloads right after the table (48 bytes), as bbolt lays them out.
        let p = leaf(2, &[(0, 32, 3, 5), (0, 16 + 8, 2, 2)], 4096);
        assert_eq!(record_ranges(&p, 4096), Some(vec![48..56, 56..60]));
    }

    #[test]
    fn buckets_and_empty_elements_are_not_records() {
        let p = leaf(
            3,
            &[(1, 48, 3, 16), (0, 32 + 19, 0, 0), (0, 16 + 19, 2, 2)],
            4096,
        );
        let expected = vec![std::ops::Range { start: 83, end: 87 }];
        assert_eq!(record_ranges(&p, 4096), Some(expected));
    }

    #[test]
    fn overlapping_or_outside_records_keep_the_page_raw() {
        // Second record starts inside the first.
        let p = leaf(2, &[(0, 32, 8, 0), (0, 16, 8, 0)], 4096);
        assert_eq!(record_ranges(&p, 4096), None);
        // Runs past the page end.
        let p = leaf(1, &[(0, 16, 4090, 0)], 4096);
        assert_eq!(record_ranges(&p, 4096), None);
        // Inside the element table.
        let p = leaf(1, &[(0, 0, 4, 0)], 4096);
        assert_eq!(record_ranges(&p, 4096), None);
        // Not a leaf.
        let mut p = leaf(1, &[(0, 16, 4, 0)], 4096);
        p[8] = 1;
        assert_eq!(record_ranges(&p, 4096), None);
    }

    #[test]
    fn varints_are_leb128() {
        let mut out = Vec::new();
        put_varint(&mut out, 0);
        put_varint(&mut out, 127);
        put_varint(&mut out, 128);
        put_varint(&mut out, 4096);
        assert_eq!(out, [0, 127, 0x80, 1, 0x80, 0x20]);
    }
}
