//! A set of ids within a memory bound: an external sort.
//!
//! Prune and check must know every blob the snapshots use. A hash set of
//! them grows with the repository (about 50 bytes an id); an [`IdSorter`]
//! holds at most its limit of ids (32 bytes each), sorts and spills them to
//! unnamed temporary files, and hands back every id once, in order, by
//! merging the spilled runs ([`SortedIds`]). Sorted streams are what the
//! rest of a bounded prune consumes: merged with the index run (sorted by
//! id too) they say where each used blob lives without a lookup per blob.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::id::Id;

/// An unnamed temporary file in `dir` (gone when closed, even after a
/// crash), for spilling what memory should not hold.
pub fn spill_file(dir: &Path) -> Result<File> {
    tempfile::tempfile_in(dir).map_err(|e| Error::io_path("creating a spill file in", dir, e))
}

/// Gathers ids, spilling sorted runs to disk beyond a memory limit.
#[derive(Debug)]
pub struct IdSorter(RecordSorter<32>);

impl IdSorter {
    /// A sorter holding at most `memory_ids` ids (at least 1024) before it
    /// spills a sorted run to an unnamed temporary file in `dir`.
    pub fn new(dir: &Path, memory_ids: usize) -> Self {
        IdSorter(RecordSorter::new(dir, memory_ids))
    }

    /// Adds an id (duplicates are dropped by the merge).
    pub fn push(&mut self, id: Id) -> Result<()> {
        self.0.push(id.0)
    }

    /// Runs spilled so far.
    pub fn spilled_runs(&self) -> usize {
        self.0.spilled_runs()
    }

    /// Every id pushed, once each, in ascending order.
    pub fn finish(self) -> Result<SortedIds> {
        Ok(SortedIds(self.0.finish()?))
    }
}

/// The merge of an [`IdSorter`]'s runs: each id once, ascending. Holds one
/// read buffer per spilled run.
pub struct SortedIds(SortedRecords<32>);

impl Iterator for SortedIds {
    type Item = Result<Id>;

    fn next(&mut self) -> Option<Result<Id>> {
        self.0.next().map(|r| r.map(Id))
    }
}

/// An external sort of fixed-size records, ordered by their bytes (callers
/// encode keys big-endian, most significant field first, so that byte
/// order is the order they want). Identical records come back once.
#[derive(Debug)]
pub struct RecordSorter<const N: usize> {
    dir: PathBuf,
    limit: usize,
    buffer: Vec<[u8; N]>,
    spilled: Vec<File>,
}

impl<const N: usize> RecordSorter<N> {
    /// A sorter holding at most `memory_records` records (at least 1024)
    /// before it spills a sorted run to an unnamed temporary file in `dir`.
    pub fn new(dir: &Path, memory_records: usize) -> Self {
        RecordSorter {
            dir: dir.to_path_buf(),
            limit: memory_records.max(1024),
            buffer: Vec::new(),
            spilled: Vec::new(),
        }
    }

    /// A sorter within `bytes` of memory (its buffer; each spilled run
    /// costs a read buffer more while merging).
    pub fn within(dir: &Path, bytes: usize) -> Self {
        Self::new(dir, bytes / N)
    }

    /// Adds a record.
    pub fn push(&mut self, record: [u8; N]) -> Result<()> {
        if self.buffer.capacity() == 0 {
            // Grown once to the limit: doubling past it would briefly hold
            // one and a half times the bound.
            self.buffer.reserve_exact(self.limit);
        }
        self.buffer.push(record);
        if self.buffer.len() >= self.limit {
            self.spill()?;
        }
        Ok(())
    }

    /// Runs spilled so far.
    pub fn spilled_runs(&self) -> usize {
        self.spilled.len()
    }

    fn sort_buffer(&mut self) {
        self.buffer.sort_unstable();
        self.buffer.dedup();
    }

    fn spill(&mut self) -> Result<()> {
        self.sort_buffer();
        let file = spill_file(&self.dir)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        for r in &self.buffer {
            w.write_all(r)
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

    /// Every record pushed, once each, in ascending order.
    pub fn finish(mut self) -> Result<SortedRecords<N>> {
        self.sort_buffer();
        let mut sources: Vec<Source<N>> = self
            .spilled
            .drain(..)
            .map(|f| Source::Spilled(BufReader::with_capacity(256 << 10, f)))
            .collect();
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.shrink_to_fit();
        sources.push(Source::Memory(buffer.into_iter()));
        let mut heap = BinaryHeap::new();
        for (s, src) in sources.iter_mut().enumerate() {
            if let Some(r) = src.next_record()? {
                heap.push(Reverse((r, s)));
            }
        }
        Ok(SortedRecords {
            sources,
            heap,
            last: None,
        })
    }
}

enum Source<const N: usize> {
    Spilled(BufReader<File>),
    Memory(std::vec::IntoIter<[u8; N]>),
}

impl<const N: usize> Source<N> {
    fn next_record(&mut self) -> Result<Option<[u8; N]>> {
        match self {
            Source::Spilled(r) => {
                let mut b = [0u8; N];
                match r.read_exact(&mut b) {
                    Ok(()) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
                    Err(e) => Err(Error::io("reading a spill file", e)),
                }
            }
            Source::Memory(it) => Ok(it.next()),
        }
    }
}

/// The merge of a [`RecordSorter`]'s runs: each record once, ascending.
/// Holds one read buffer per spilled run.
pub struct SortedRecords<const N: usize> {
    sources: Vec<Source<N>>,
    heap: BinaryHeap<Reverse<([u8; N], usize)>>,
    last: Option<[u8; N]>,
}

impl<const N: usize> Iterator for SortedRecords<N> {
    type Item = Result<[u8; N]>;

    fn next(&mut self) -> Option<Result<[u8; N]>> {
        while let Some(Reverse((r, s))) = self.heap.pop() {
            match self.sources[s].next_record() {
                Ok(Some(next)) => self.heap.push(Reverse((next, s))),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            if self.last != Some(r) {
                self.last = Some(r);
                return Some(Ok(r));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the order, the duplicates and the limit, the ids come
        /// back as the sorted set of what was pushed.
        #[test]
        fn the_merge_is_the_sorted_set(
            ids in prop::collection::vec(0u16..3000, 0..6000),
            limit in 0usize..3000,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut s = IdSorter::new(dir.path(), limit);
            let as_id = |n: u16| {
                let mut b = [0u8; 32];
                b[..2].copy_from_slice(&n.to_be_bytes());
                b[31] = n as u8;
                Id(b)
            };
            for &n in &ids {
                s.push(as_id(n)).unwrap();
            }
            let spilled = s.spilled_runs();
            prop_assert_eq!(spilled, ids.len() / limit.max(1024));
            let got: Vec<Id> = s.finish().unwrap().map(|r| r.unwrap()).collect();
            let want: Vec<Id> = ids.iter().copied().collect::<std::collections::BTreeSet<u16>>()
                .into_iter().map(as_id).collect();
            prop_assert_eq!(got, want);
        }
    }
}
