//! The exact rebuild: layout and records in, the original bytes out.
//!
//! The layout says where every record goes (see [`crate::layout`]); the
//! rebuild checks each record's length, the total length, the record count
//! and the SHA-256 of everything written against the layout's end entry, so
//! a damaged layout or a wrong record is an error, never a silently
//! different file.

use std::io::{BufReader, Read, Write};

use sha2::{Digest, Sha256};

use crate::bbolt::{PAGE_HEADER_LEN, PAGE_SIZES, PageHeader};
use crate::error::{Error, Result};
use crate::layout::{
    END_LEN, HEADER_LEN, MAGIC, MAX_RUN, TAG_END, TAG_LEAF, TAG_RAW, VERSION, record_ranges,
    table_len,
};
use crate::split::hex;

/// Where a rebuild takes records from: the repository side of the seam.
pub trait RecordSource {
    /// Puts the next record into `out` (cleared first). The layout knows its
    /// length, `len`; a record of another length is an error.
    fn next_record(&mut self, len: usize, out: &mut Vec<u8>) -> Result<()>;
}

/// Records from any iterator of byte strings (a [`crate::MemorySink`]'s
/// records, blobs fetched ahead).
#[derive(Debug)]
pub struct IterSource<I>(pub I);

impl<I, T> RecordSource for IterSource<I>
where
    I: Iterator<Item = T>,
    T: AsRef<[u8]>,
{
    fn next_record(&mut self, _len: usize, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        let r = self
            .0
            .next()
            .ok_or_else(|| Error::layout("the layout asks for more records than there are"))?;
        out.extend_from_slice(r.as_ref());
        Ok(())
    }
}

/// What a rebuild wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RebuildSummary {
    /// Bytes written.
    pub total_bytes: u64,
    /// Records placed.
    pub records: u64,
    /// SHA-256 of the bytes written (checked against the layout's).
    pub sha256: [u8; 32],
}

/// Rebuilds the file that was split into `layout` and `records`, writing it
/// to `out`. Memory is bounded by the longest leaf run.
pub fn rebuild<L, S, W>(layout: L, records: &mut S, out: W) -> Result<RebuildSummary>
where
    L: Read,
    S: RecordSource + ?Sized,
    W: Write,
{
    let mut r = Rebuilder {
        layout: BufReader::with_capacity(256 << 10, layout),
        out: HashingWriter {
            inner: out,
            hash: Sha256::new(),
            written: 0,
        },
        records,
        record: Vec::new(),
        placed: 0,
    };
    r.run()
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hash.update(bytes);
        self.written += bytes.len() as u64;
        self.inner
            .write_all(bytes)
            .map_err(|e| Error::io("writing the rebuilt snapshot", e))
    }
}

struct Rebuilder<'s, L, S: ?Sized, W> {
    layout: BufReader<L>,
    out: HashingWriter<W>,
    records: &'s mut S,
    record: Vec<u8>,
    placed: u64,
}

impl<L: Read, S: RecordSource + ?Sized, W: Write> Rebuilder<'_, L, S, W> {
    fn run(&mut self) -> Result<RebuildSummary> {
        let mut head = [0u8; HEADER_LEN];
        self.read(&mut head, "its header")?;
        if head[..4] != MAGIC {
            return Err(Error::layout(format!(
                "it starts with {}, not the layout magic \"HKBL\"",
                hex(&head[..4])
            )));
        }
        if head[4] != VERSION {
            return Err(Error::UnsupportedVersion {
                found: head[4],
                supported: VERSION,
            });
        }
        let page_size = u32::from_le_bytes(head[5..9].try_into().expect("4 bytes"));
        if !PAGE_SIZES.contains(&page_size) || !page_size.is_power_of_two() {
            return Err(Error::layout(format!(
                "page size {page_size} is not one bbolt uses"
            )));
        }
        loop {
            let mut tag = [0u8];
            self.read(&mut tag, "an entry tag")?;
            match tag[0] {
                TAG_RAW => self.raw()?,
                TAG_LEAF => self.leaf(page_size)?,
                TAG_END => return self.end(),
                t => return Err(Error::layout(format!("unknown entry tag {t:#04x}"))),
            }
        }
    }

    fn read(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        self.layout.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::layout(format!("it ends inside {what}")),
            _ => Error::io("reading the etcd layout", e),
        })
    }

    /// Copies `n` bytes of layout to the output.
    fn copy(&mut self, mut n: u64, what: &str) -> Result<()> {
        let mut buf = [0u8; 64 << 10];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.read(&mut buf[..k], what)?;
            self.out.write(&buf[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    fn raw(&mut self) -> Result<()> {
        let mut len = 0u64;
        for shift in (0..64).step_by(7) {
            let mut b = [0u8];
            self.read(&mut b, "a raw entry's length")?;
            len |= u64::from(b[0] & 0x7f) << shift;
            if b[0] & 0x80 == 0 {
                return self.copy(len, "a raw entry");
            }
        }
        Err(Error::layout("a raw entry's length is longer than 64 bits"))
    }

    fn leaf(&mut self, page_size: u32) -> Result<()> {
        let mut head = vec![0u8; PAGE_HEADER_LEN];
        self.read(&mut head, "a leaf page header")?;
        let header = PageHeader::parse(&head).expect("16 bytes");
        let run = header.run_len(page_size);
        let table = table_len(header.count);
        if run > MAX_RUN || table as u64 > run {
            return Err(Error::layout(format!(
                "a leaf entry claims {} elements in {run} bytes",
                header.count
            )));
        }
        head.resize(table, 0);
        self.read(&mut head[PAGE_HEADER_LEN..], "a leaf element table")?;
        let ranges = match record_ranges(&head, run) {
            Some(r) if !r.is_empty() => r,
            _ => {
                return Err(Error::layout(
                    "a leaf entry's element table places no records",
                ));
            }
        };
        self.out.write(&head)?;
        let mut at = table as u64;
        for range in ranges {
            self.copy(range.start - at, "a leaf page")?;
            let len = (range.end - range.start) as usize;
            self.records.next_record(len, &mut self.record)?;
            if self.record.len() != len {
                return Err(Error::layout(format!(
                    "record {} is {} bytes, the layout places {len}",
                    self.placed,
                    self.record.len()
                )));
            }
            self.out.write(&self.record)?;
            self.placed += 1;
            at = range.end;
        }
        self.copy(run - at, "a leaf page")
    }

    fn end(&mut self) -> Result<RebuildSummary> {
        let mut end = [0u8; END_LEN];
        self.read(&mut end, "its end entry")?;
        let total = u64::from_le_bytes(end[..8].try_into().expect("8 bytes"));
        let count = u64::from_le_bytes(end[8..16].try_into().expect("8 bytes"));
        let sha: [u8; 32] = end[16..].try_into().expect("32 bytes");
        let mut extra = [0u8];
        let more = self
            .layout
            .read(&mut extra)
            .map_err(|e| Error::io("reading the etcd layout", e))?;
        if more != 0 {
            return Err(Error::layout("bytes follow its end entry"));
        }
        let actual: [u8; 32] = self.out.hash.clone().finalize().into();
        if total != self.out.written || count != self.placed || sha != actual {
            return Err(Error::layout(format!(
                "the rebuilt file does not match the one split: {} bytes, {} records, SHA-256 {} \
                 instead of {total} bytes, {count} records, SHA-256 {}",
                self.out.written,
                self.placed,
                hex(&actual),
                hex(&sha)
            )));
        }
        self.out
            .inner
            .flush()
            .map_err(|e| Error::io("writing the rebuilt snapshot", e))?;
        Ok(RebuildSummary {
            total_bytes: total,
            records: count,
            sha256: sha,
        })
    }
}
