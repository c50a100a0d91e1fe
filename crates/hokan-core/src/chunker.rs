//! Content-defined chunking: FastCDC (2020) with a secret-seeded gear table.
//!
//! Boundaries depend only on the bytes, the sizes and the seed, so an edit in
//! the middle of a file moves only the chunks around it and the rest dedup.
//! Cut points come from `fastcdc::v2020::cut_gear`; this module only feeds it:
//! from a slice (a memory-mapped file, a buffer) or from any [`Read`] in
//! large batches, both giving identical boundaries.

use std::borrow::Cow;
use std::io::Read;
use std::ops::Range;

use fastcdc::v2020::{self, Normalization};

use crate::error::{Error, Result};

/// Minimum, average and maximum chunk sizes: a repository setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkerParams {
    /// No chunk is shorter, except the last of a stream.
    pub min: u32,
    /// The size cut points aim for.
    pub avg: u32,
    /// No chunk is longer.
    pub max: u32,
}

impl Default for ChunkerParams {
    /// 256 KiB / 512 KiB / 4 MiB: on series of page files and shifted images
    /// this dedups about 1.5 times better than restic's 512 KiB / 1 MiB /
    /// 8 MiB, for twice the index entries (about 92 MB of memory per TB of
    /// unique data). `docs/DECISIONS.md` has the measurements.
    fn default() -> Self {
        ChunkerParams {
            min: 256 * 1024,
            avg: 512 * 1024,
            max: 4 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    /// Checked sizes: even, `min < avg < max`, within fastcdc's ranges
    /// (min 64 B..1 MiB, avg 256 B..4 MiB, max 1 KiB..16 MiB).
    pub fn new(min: u32, avg: u32, max: u32) -> Result<Self> {
        let p = ChunkerParams { min, avg, max };
        p.validate()?;
        Ok(p)
    }

    /// Checks sizes read from configuration.
    pub fn validate(&self) -> Result<()> {
        let (min, avg, max) = (self.min as usize, self.avg as usize, self.max as usize);
        let check = |ok: bool, why: String| {
            if ok {
                Ok(())
            } else {
                Err(Error::invalid("chunk sizes", why))
            }
        };
        check(
            (v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&min),
            format!(
                "min {min} is outside {}..={}",
                v2020::MINIMUM_MIN,
                v2020::MINIMUM_MAX
            ),
        )?;
        check(
            (v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&avg),
            format!(
                "avg {avg} is outside {}..={}",
                v2020::AVERAGE_MIN,
                v2020::AVERAGE_MAX
            ),
        )?;
        check(
            (v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&max),
            format!(
                "max {max} is outside {}..={}",
                v2020::MAXIMUM_MIN,
                v2020::MAXIMUM_MAX
            ),
        )?;
        check(
            min < avg && avg < max,
            format!("need min < avg < max, got {min} / {avg} / {max}"),
        )?;
        check(
            min % 2 == 0 && avg % 2 == 0 && max % 2 == 0,
            format!("sizes must be even, got {min} / {avg} / {max}"),
        )
    }
}

/// A FastCDC 2020 chunker with fixed sizes and seed. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
}

/// Normalization level 1: fastcdc's default, part of the format.
const NORMALIZATION: Normalization = Normalization::Level1;

impl Chunker {
    /// A chunker for checked sizes and a seed (0 selects fastcdc's unseeded
    /// table, which repositories never use).
    pub fn new(params: ChunkerParams, seed: u64) -> Result<Self> {
        params.validate()?;
        let (mask_s, mask_l) = v2020::select_masks(params.avg as usize, NORMALIZATION);
        let (gear, gear_ls) = v2020::get_gear_with_seed(seed);
        Ok(Chunker {
            min: params.min as usize,
            avg: params.avg as usize,
            max: params.max as usize,
            mask_s,
            mask_l,
            gear,
            gear_ls,
        })
    }

    /// The sizes this chunker cuts to.
    pub fn params(&self) -> ChunkerParams {
        ChunkerParams {
            min: self.min as u32,
            avg: self.avg as u32,
            max: self.max as u32,
        }
    }

    /// The length of the chunk that starts at `data[0]`, or `None` when the
    /// boundary cannot be known yet: fewer than `max` bytes are available
    /// and more may follow (`at_end` false). Returns `Some(0)` only for
    /// empty `data` at the end.
    pub fn next_cut(&self, data: &[u8], at_end: bool) -> Option<usize> {
        if data.len() < self.max && !at_end {
            return None;
        }
        let (_, len) = v2020::cut_gear(
            data,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        Some(len)
    }

    /// The chunks of a whole slice, as byte ranges, in order.
    pub fn chunks<'a>(&'a self, data: &'a [u8]) -> SliceChunks<'a> {
        SliceChunks {
            chunker: self,
            data,
            pos: 0,
        }
    }

    /// Chunks from a reader, in batches of about `batch_size` bytes (at
    /// least twice the maximum chunk size).
    pub fn stream<R: Read>(&self, reader: R, batch_size: usize) -> StreamChunker<R> {
        StreamChunker {
            chunker: self.clone(),
            reader,
            carry: Vec::new(),
            offset: 0,
            batch_size: batch_size.max(2 * self.max),
            at_end: false,
        }
    }
}

/// Iterator over the chunk ranges of a slice; see [`Chunker::chunks`].
#[derive(Debug)]
pub struct SliceChunks<'a> {
    chunker: &'a Chunker,
    data: &'a [u8],
    pos: usize,
}

impl Iterator for SliceChunks<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        if self.pos >= self.data.len() {
            return None;
        }
        let len = self
            .chunker
            .next_cut(&self.data[self.pos..], true)
            .expect("a cut is always found at the end");
        let range = self.pos..self.pos + len;
        self.pos += len;
        Some(range)
    }
}

/// A batch of whole chunks read from a stream.
#[derive(Debug, Default)]
pub struct Batch {
    /// The bytes: exactly the concatenation of the chunks below.
    pub data: Vec<u8>,
    /// Chunk ranges within `data`, in order, covering it completely.
    pub chunks: Vec<Range<usize>>,
    /// Position of `data[0]` in the stream.
    pub offset: u64,
}

/// Reads a stream and cuts it into [`Batch`]es of whole chunks, keeping at
/// most one batch plus one maximum-size chunk in memory.
#[derive(Debug)]
pub struct StreamChunker<R> {
    chunker: Chunker,
    reader: R,
    carry: Vec<u8>,
    offset: u64,
    batch_size: usize,
    at_end: bool,
}

impl<R: Read> StreamChunker<R> {
    /// The next batch, reusing `buffer`'s allocation; `None` at the end.
    pub fn next_batch(&mut self, buffer: Vec<u8>) -> Result<Option<Batch>> {
        let mut data = buffer;
        data.clear();
        data.reserve(self.batch_size);
        data.extend_from_slice(&self.carry);
        self.carry.clear();
        // Fill to the batch size (or the end of the stream).
        while !self.at_end && data.len() < self.batch_size {
            let start = data.len();
            data.resize(self.batch_size, 0);
            let n = loop {
                match self.reader.read(&mut data[start..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        data.truncate(start);
                        return Err(Error::io("reading the input stream", e));
                    }
                }
            };
            data.truncate(start + n);
            if n == 0 {
                self.at_end = true;
            }
        }
        if data.is_empty() {
            return Ok(None);
        }
        let mut chunks = Vec::with_capacity(data.len() / self.chunker.avg + 2);
        let mut pos = 0;
        while pos < data.len() {
            match self.chunker.next_cut(&data[pos..], self.at_end) {
                Some(len) => {
                    chunks.push(pos..pos + len);
                    pos += len;
                }
                None => break,
            }
        }
        // Bytes past the last boundary wait for more input.
        self.carry.extend_from_slice(&data[pos..]);
        data.truncate(pos);
        let offset = self.offset;
        self.offset += pos as u64;
        Ok(Some(Batch {
            data,
            chunks,
            offset,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, mut s: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    fn small() -> ChunkerParams {
        ChunkerParams::new(1024, 4096, 16384).unwrap()
    }

    #[test]
    fn matches_fastcdc_iterator() {
        let data = pseudo_random(300_000, 1);
        let c = Chunker::new(small(), 0x1234).unwrap();
        let ours: Vec<_> = c.chunks(&data).map(|r| (r.start, r.len())).collect();
        let theirs: Vec<_> =
            v2020::FastCDC::with_level_and_seed(&data, 1024, 4096, 16384, NORMALIZATION, 0x1234)
                .map(|c| (c.offset, c.length))
                .collect();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn stream_matches_slice_for_any_batch_size() {
        let data = pseudo_random(200_000, 7);
        let c = Chunker::new(small(), 99).unwrap();
        let expected: Vec<_> = c.chunks(&data).collect();
        for batch in [1, 32_768, 50_001, 1 << 20] {
            let mut s = c.stream(&data[..], batch);
            let mut got = Vec::new();
            let mut buf = Vec::new();
            while let Some(b) = s.next_batch(std::mem::take(&mut buf)).unwrap() {
                let base = b.offset as usize;
                assert_eq!(b.chunks.last().map(|r| r.end), Some(b.data.len()));
                got.extend(b.chunks.iter().map(|r| base + r.start..base + r.end));
                buf = b.data;
            }
            assert_eq!(got, expected, "batch size {batch}");
        }
    }

    #[test]
    fn seed_changes_boundaries() {
        let data = pseudo_random(300_000, 3);
        let a: Vec<_> = Chunker::new(small(), 1).unwrap().chunks(&data).collect();
        let b: Vec<_> = Chunker::new(small(), 2).unwrap().chunks(&data).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn bad_params_are_refused() {
        assert!(ChunkerParams::new(32, 4096, 16384).is_err());
        assert!(ChunkerParams::new(4096, 4096, 16384).is_err());
        assert!(ChunkerParams::new(1025, 4096, 16384).is_err());
        assert!(ChunkerParams::new(1024, 4096, 32 << 20).is_err());
        ChunkerParams::default().validate().unwrap();
    }

    #[test]
    fn empty_and_tiny_inputs() {
        let c = Chunker::new(small(), 5).unwrap();
        assert_eq!(c.chunks(&[]).count(), 0);
        assert_eq!(c.chunks(&[1, 2, 3]).collect::<Vec<_>>(), vec![0..3]);
        let mut s = c.stream(&[][..], 0);
        assert!(s.next_batch(Vec::new()).unwrap().is_none());
    }
}
