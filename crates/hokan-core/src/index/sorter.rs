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

/// Gathers ids, spilling sorted runs to disk beyond a memory limit.
#[derive(Debug)]
pub struct IdSorter {
    dir: PathBuf,
    limit: usize,
    buffer: Vec<Id>,
    spilled: Vec<File>,
}

impl IdSorter {
    /// A sorter holding at most `memory_ids` ids (at least 1024) before it
    /// spills a sorted run to an unnamed temporary file in `dir`.
    pub fn new(dir: &Path, memory_ids: usize) -> Self {
        IdSorter {
            dir: dir.to_path_buf(),
            limit: memory_ids.max(1024),
            buffer: Vec::new(),
            spilled: Vec::new(),
        }
    }

    /// Adds an id (duplicates are dropped by the merge).
    pub fn push(&mut self, id: Id) -> Result<()> {
        self.buffer.push(id);
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
        let file = tempfile::tempfile_in(&self.dir)
            .map_err(|e| Error::io_path("creating a spill file in", &self.dir, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        for id in &self.buffer {
            w.write_all(&id.0)
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

    /// Every id pushed, once each, in ascending order.
    pub fn finish(mut self) -> Result<SortedIds> {
        self.sort_buffer();
        let mut sources: Vec<Source> = self
            .spilled
            .drain(..)
            .map(|f| Source::Spilled(BufReader::with_capacity(256 << 10, f)))
            .collect();
        sources.push(Source::Memory(std::mem::take(&mut self.buffer).into_iter()));
        let mut heap = BinaryHeap::new();
        for (s, src) in sources.iter_mut().enumerate() {
            if let Some(id) = src.next_id()? {
                heap.push(Reverse((id, s)));
            }
        }
        Ok(SortedIds {
            sources,
            heap,
            last: None,
        })
    }
}

enum Source {
    Spilled(BufReader<File>),
    Memory(std::vec::IntoIter<Id>),
}

impl Source {
    fn next_id(&mut self) -> Result<Option<Id>> {
        match self {
            Source::Spilled(r) => {
                let mut b = [0u8; 32];
                match r.read_exact(&mut b) {
                    Ok(()) => Ok(Some(Id(b))),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
                    Err(e) => Err(Error::io("reading a spill file", e)),
                }
            }
            Source::Memory(it) => Ok(it.next()),
        }
    }
}

/// The merge of an [`IdSorter`]'s runs: each id once, ascending. Holds one
/// read buffer per spilled run.
pub struct SortedIds {
    sources: Vec<Source>,
    heap: BinaryHeap<Reverse<(Id, usize)>>,
    last: Option<Id>,
}

impl Iterator for SortedIds {
    type Item = Result<Id>;

    fn next(&mut self) -> Option<Result<Id>> {
        while let Some(Reverse((id, s))) = self.heap.pop() {
            match self.sources[s].next_id() {
                Ok(Some(next)) => self.heap.push(Reverse((next, s))),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            if self.last != Some(id) {
                self.last = Some(id);
                return Some(Ok(id));
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
