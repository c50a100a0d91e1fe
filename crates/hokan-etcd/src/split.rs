//! The format-aware split: a bbolt file in, page layout and records out,
//! one page run at a time.
//!
//! Why: a record (one key and value, e.g. one revision of one etcd key)
//! never changes once written, but compaction removes old ones all over the
//! `key` bucket and defragmentation lays the survivors out in new pages, so
//! any cut of the file by position or content changes nearly everywhere.
//! Stored one by one, records dedup across snapshots whatever the layout;
//! the layout itself is small and compresses well.

use std::io::Read;
use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::bbolt::{META_END, Meta, PageHeader, current_meta};
use crate::error::{Error, Result};
use crate::layout::{
    HEADER_LEN, MAGIC, MAX_RUN, TAG_END, TAG_LEAF, TAG_RAW, VERSION, put_varint, record_ranges,
    table_len,
};

/// Where a split goes: the repository side of the seam.
///
/// Calls arrive in file order. The layout bytes, concatenated, form one
/// stream (cut it with the repository's chunker); each record is one whole
/// key/value, to be stored as its own blob and listed in order. A split that
/// ends in an error leaves everything sent so far useless: the caller must
/// discard it (not commit the snapshot).
pub trait RecordSink {
    /// The next bytes of the layout stream.
    fn layout(&mut self, bytes: &[u8]) -> Result<()>;
    /// The next record.
    fn record(&mut self, record: &[u8]) -> Result<()>;
    /// A branch or leaf page passing by, for sinks that learn the
    /// database's structure while it streams (the default ignores it).
    ///
    /// Called in file order for every page whose header names its own
    /// position (`id × page size == offset`, as bbolt writes every page in
    /// use) and whose flags say branch or leaf, before any record cut from
    /// it is sent. `bytes` start at the page: its whole run (page and
    /// overflow pages) when the input holds it and it is at most
    /// [`MAX_RUN`](crate::layout::MAX_RUN), else what there is.
    /// `first_record` is `Some(n)` when this page starts a leaf run whose
    /// records are cut out next, numbered from `n` (0 for the first record
    /// of the input), in the order [`crate::layout::record_ranges`] gives.
    fn page(&mut self, offset: u64, bytes: &[u8], first_record: Option<u64>) -> Result<()> {
        let _ = (offset, bytes, first_record);
        Ok(())
    }
}

/// A sink that keeps everything in memory: for tests and small files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemorySink {
    /// The layout stream.
    pub layout: Vec<u8>,
    /// The records, in order.
    pub records: Vec<Vec<u8>>,
}

impl RecordSink for MemorySink {
    fn layout(&mut self, bytes: &[u8]) -> Result<()> {
        self.layout.extend_from_slice(bytes);
        Ok(())
    }

    fn record(&mut self, record: &[u8]) -> Result<()> {
        self.records.push(record.to_vec());
        Ok(())
    }
}

/// How strict a split is.
#[derive(Clone, Debug)]
pub struct SplitOptions {
    /// Refuse input that is not a complete bbolt database (no valid meta,
    /// fewer bytes than the meta counts, a bad SHA-256 trailer) before or
    /// instead of finishing. Off, any bytes at all are split (non-bbolt
    /// pages go whole into the layout) and rebuilt exactly.
    pub require_bbolt: bool,
    /// The input's name in errors ("snapshot.db", "the snapshot stream").
    pub what: String,
}

impl SplitOptions {
    /// Strict options for the input named `what`.
    pub fn bbolt(what: impl Into<String>) -> Self {
        SplitOptions {
            require_bbolt: true,
            what: what.into(),
        }
    }

    /// Options that split any input.
    pub fn any(what: impl Into<String>) -> Self {
        SplitOptions {
            require_bbolt: false,
            what: what.into(),
        }
    }
}

/// The SHA-256 trailer `etcdctl snapshot save` appends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trailer {
    /// The input does not end in 32 bytes past a whole page.
    Absent,
    /// The last 32 bytes are the SHA-256 of everything before them.
    Valid,
    /// 32 bytes past a whole page that are not the SHA-256 of the rest.
    Mismatch,
}

/// What a split saw.
#[derive(Clone, Debug)]
pub struct SplitSummary {
    /// Page size the layout is cut at.
    pub page_size: u32,
    /// The current meta, if the input has a valid one.
    pub meta: Option<Meta>,
    /// Bytes read.
    pub total_bytes: u64,
    /// SHA-256 of all bytes read.
    pub sha256: [u8; 32],
    /// Leaf runs whose records were cut out.
    pub leaf_runs: u64,
    /// Records sent to the sink.
    pub records: u64,
    /// Their bytes.
    pub record_bytes: u64,
    /// Bytes of layout sent to the sink.
    pub layout_bytes: u64,
    /// The trailer found at the end.
    pub trailer: Trailer,
}

/// Raw bytes are gathered into entries of up to this many bytes.
const RAW_BATCH: usize = 256 << 10;
/// Bytes asked of the reader at a time.
const READ_BATCH: usize = 256 << 10;

/// Splits the bbolt file read from `reader` into `sink`, page by page, with
/// memory bounded by the longest leaf run split (at most [`MAX_RUN`]).
pub fn split<R: Read, S: RecordSink + ?Sized>(
    reader: R,
    sink: &mut S,
    options: &SplitOptions,
) -> Result<SplitSummary> {
    Splitter {
        input: Input {
            reader,
            buf: Vec::new(),
            start: 0,
            eof: false,
            what: &options.what,
        },
        sink,
        raw: Vec::new(),
        hash: Sha256::new(),
        summary: SplitSummary {
            page_size: 4096,
            meta: None,
            total_bytes: 0,
            sha256: [0; 32],
            leaf_runs: 0,
            records: 0,
            record_bytes: 0,
            layout_bytes: 0,
            trailer: Trailer::Absent,
        },
    }
    .run(options)
}

/// The reader with its look-ahead buffer: `buf[start..]` is not yet used.
struct Input<'o, R> {
    reader: R,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    what: &'o str,
}

impl<R: Read> Input<'_, R> {
    fn avail(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// Reads until `n` bytes are available or the input ends.
    fn fill(&mut self, n: usize) -> Result<()> {
        if self.avail().len() >= n || self.eof {
            return Ok(());
        }
        // Move the unread bytes to the front once, not on every page.
        self.buf.drain(..self.start);
        self.start = 0;
        while self.buf.len() < n && !self.eof {
            let old = self.buf.len();
            self.buf.resize(old + (n - old).max(READ_BATCH), 0);
            match self.reader.read(&mut self.buf[old..]) {
                Ok(0) => {
                    self.buf.truncate(old);
                    self.eof = true;
                }
                Ok(got) => self.buf.truncate(old + got),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.buf.truncate(old),
                Err(e) => {
                    self.buf.truncate(old);
                    // A reader of ours (a live snapshot) says what happened
                    // in its own words: pass them on as they are.
                    if e.get_ref().is_some_and(|i| i.is::<Error>()) {
                        let inner = e.into_inner().expect("checked").downcast::<Error>();
                        return Err(*inner.expect("checked"));
                    }
                    return Err(Error::io(format!("reading {}", self.what), e));
                }
            }
        }
        Ok(())
    }
}

struct Splitter<'o, 's, R, S: ?Sized> {
    input: Input<'o, R>,
    sink: &'s mut S,
    raw: Vec<u8>,
    hash: Sha256,
    summary: SplitSummary,
}

impl<R: Read, S: RecordSink + ?Sized> Splitter<'_, '_, R, S> {
    fn run(mut self, options: &SplitOptions) -> Result<SplitSummary> {
        // The page size comes from meta page 0; page 1 is needed as well to
        // know which meta is current, so read two pages before anything.
        self.input.fill(META_END)?;
        let p0 = Meta::parse(self.input.avail())
            .map(|m| m.page_size)
            .unwrap_or(4096);
        self.input.fill(2 * p0 as usize + META_END)?;
        match current_meta(self.input.avail(), self.input.what) {
            Ok(meta) => {
                self.summary.meta = Some(meta);
                self.summary.page_size = meta.page_size;
            }
            Err(e) if options.require_bbolt => return Err(e),
            Err(_) => self.summary.page_size = p0,
        }
        let page = self.summary.page_size as usize;
        let mut head = Vec::with_capacity(HEADER_LEN);
        head.extend_from_slice(&MAGIC);
        head.push(VERSION);
        head.extend_from_slice(&self.summary.page_size.to_le_bytes());
        self.emit_layout(&head)?;

        loop {
            self.input.fill(page)?;
            if self.input.avail().len() < page {
                break;
            }
            let plan = self.leaf_plan(page)?;
            let n = plan.as_ref().map_or(page, |(run, _)| *run);
            self.observe(n, page, plan.is_some())?;
            if let Some((run, ranges)) = &plan {
                self.emit_leaf(*run, ranges)?;
            }
            let run = plan.map(|(run, _)| run);
            let bytes = &self.input.buf[self.input.start..self.input.start + n];
            self.hash.update(bytes);
            if run.is_none() {
                self.raw.extend_from_slice(bytes);
                if self.raw.len() >= RAW_BATCH {
                    self.flush_raw()?;
                }
            }
            self.summary.total_bytes += n as u64;
            self.input.consume(n);
        }

        // What is left is shorter than a page: etcdctl's trailer, or the end
        // of a file that is not page-aligned.
        let tail = self.input.avail().to_vec();
        let before_tail: [u8; 32] = self.hash.clone().finalize().into();
        if tail.len() == 32 {
            self.summary.trailer = if tail[..] == before_tail {
                Trailer::Valid
            } else {
                Trailer::Mismatch
            };
        }
        self.raw.extend_from_slice(&tail);
        self.flush_raw()?;
        self.hash.update(&tail);
        self.summary.total_bytes += tail.len() as u64;
        self.summary.sha256 = self.hash.clone().finalize().into();

        let mut end = vec![TAG_END];
        end.extend_from_slice(&self.summary.total_bytes.to_le_bytes());
        end.extend_from_slice(&self.summary.records.to_le_bytes());
        end.extend_from_slice(&self.summary.sha256);
        self.emit_layout(&end)?;
        if options.require_bbolt {
            self.check_complete(&before_tail, &tail)?;
        }
        Ok(self.summary)
    }

    /// If the page at the front of the buffer starts a leaf run whose
    /// records can be cut out, the run's length and the records' ranges.
    fn leaf_plan(&mut self, page: usize) -> Result<Option<(usize, Vec<Range<u64>>)>> {
        let Some(header) = PageHeader::parse(self.input.avail()) else {
            return Ok(None);
        };
        let run = header.run_len(page as u32);
        if header.flags != crate::bbolt::LEAF_PAGE || run > MAX_RUN {
            return Ok(None);
        }
        let run = run as usize;
        self.input.fill(run)?;
        if self.input.avail().len() < run {
            return Ok(None);
        }
        let table = table_len(header.count).min(run);
        Ok(
            match record_ranges(&self.input.avail()[..table], run as u64) {
                Some(r) if !r.is_empty() => Some((run, r)),
                _ => None,
            },
        )
    }

    /// Shows the sink every page that starts in the next `n` bytes (one
    /// raw page, or a leaf run and the pages inside it: a free page's stale
    /// header can claim pages that are in use again).
    fn observe(&mut self, n: usize, page: usize, cut: bool) -> Result<()> {
        let base = self.summary.total_bytes;
        for at in (0..n).step_by(page) {
            let offset = base + at as u64;
            let Some(h) = PageHeader::parse(&self.input.avail()[at..]) else {
                continue;
            };
            let is_tree =
                h.flags == crate::bbolt::BRANCH_PAGE || h.flags == crate::bbolt::LEAF_PAGE;
            if !is_tree || h.id.checked_mul(page as u64) != Some(offset) {
                continue;
            }
            let want = h.run_len(page as u32).min(MAX_RUN) as usize;
            self.input.fill(at + want)?;
            let avail = &self.input.avail()[at..];
            let bytes = &avail[..want.min(avail.len())];
            let first = (cut && at == 0).then_some(self.summary.records);
            self.sink.page(offset, bytes, first)?;
        }
        Ok(())
    }

    /// Sends the leaf run at the front of the buffer to the sink as a Leaf
    /// entry, its records cut out at `ranges`.
    fn emit_leaf(&mut self, run: usize, ranges: &[Range<u64>]) -> Result<()> {
        self.flush_raw()?;
        let bytes = &self.input.buf[self.input.start..self.input.start + run];
        let mut at = 0usize;
        self.sink.layout(&[TAG_LEAF])?;
        self.summary.layout_bytes += 1;
        for r in ranges {
            let (start, end) = (r.start as usize, r.end as usize);
            self.sink.layout(&bytes[at..start])?;
            self.sink.record(&bytes[start..end])?;
            self.summary.layout_bytes += (start - at) as u64;
            self.summary.records += 1;
            self.summary.record_bytes += (end - start) as u64;
            at = end;
        }
        self.sink.layout(&bytes[at..])?;
        self.summary.layout_bytes += (run - at) as u64;
        self.summary.leaf_runs += 1;
        Ok(())
    }

    fn emit_layout(&mut self, bytes: &[u8]) -> Result<()> {
        self.summary.layout_bytes += bytes.len() as u64;
        self.sink.layout(bytes)
    }

    fn flush_raw(&mut self) -> Result<()> {
        if self.raw.is_empty() {
            return Ok(());
        }
        let mut head = vec![TAG_RAW];
        put_varint(&mut head, self.raw.len() as u64);
        self.emit_layout(&head)?;
        let raw = std::mem::take(&mut self.raw);
        self.emit_layout(&raw)?;
        self.raw = raw;
        self.raw.clear();
        Ok(())
    }

    /// Refuses a database cut short or a trailer that does not match.
    fn check_complete(&self, before_tail: &[u8; 32], tail: &[u8]) -> Result<()> {
        let what = self.input.what;
        let Some(meta) = self.summary.meta else {
            return Ok(());
        };
        if self.summary.total_bytes < meta.db_size() {
            return Err(Error::Truncated {
                what: what.to_string(),
                reason: format!(
                    "{} bytes, but its meta counts {} pages of {} bytes ({} bytes)",
                    self.summary.total_bytes,
                    meta.pgid,
                    meta.page_size,
                    meta.db_size()
                ),
            });
        }
        if self.summary.trailer == Trailer::Mismatch {
            return Err(Error::HashMismatch {
                what: format!("{what} (its 32-byte trailer)"),
                expected: hex(tail),
                actual: hex(before_tail),
            });
        }
        Ok(())
    }
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
