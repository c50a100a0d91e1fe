//! Writing restored content to a file, turning holes and all-zero blocks
//! into holes so sparse files stay sparse.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

use super::archive::Progress;
use crate::pipeline::ChunkWrite;

/// Writes chunks to a file, turning holes and all-zero chunks into holes.
pub(super) struct SparseWriter<'a> {
    pub(super) file: File,
    pub(super) sparse: bool,
    pub(super) progress: &'a dyn Progress,
    /// Bytes written so far, holes included.
    pub(super) written: u64,
    /// The last bytes were a hole: the file's length must still be set.
    pub(super) ends_in_hole: bool,
}

/// The block size holes are made at: the page size, and the block size of
/// every common Linux file system.
const BLOCK: usize = 4096;

impl SparseWriter<'_> {
    fn run(&mut self, buf: &[u8], zero: bool) -> std::io::Result<()> {
        match zero {
            true => self.skip(buf.len() as u64),
            false => self.write_run(buf),
        }
    }

    fn write_run(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.file.write_all(buf)?;
        self.ends_in_hole = false;
        self.written += buf.len() as u64;
        self.progress.bytes(buf.len() as u64);
        Ok(())
    }

    fn skip(&mut self, len: u64) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Current(len as i64))?;
        self.ends_in_hole = true;
        self.written += len;
        self.progress.bytes(len);
        Ok(())
    }
}

impl ChunkWrite for SparseWriter<'_> {
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if !self.sparse {
            return self.write_run(buf);
        }
        // Holes at the file system's block size, not only whole chunks: a
        // chunk of a disk image or a database file often mixes data with
        // unused blocks. Blocks are aligned to the file's offset, as the
        // file system allocates them; only whole blocks of zeros are left
        // out. A block that is not all zeros is usually told by its first
        // bytes, so real data costs little.
        let start = self.written;
        let mut run = 0; // start of the current run in `buf`
        let mut run_zero = false;
        let mut i = 0;
        while i < buf.len() {
            let end = (i + BLOCK - ((start + i as u64) % BLOCK as u64) as usize).min(buf.len());
            let zero = end - i == BLOCK && crate::pipeline::is_zero(&buf[i..end]);
            if zero != run_zero && i > run {
                self.run(&buf[run..i], run_zero)?;
                run = i;
            }
            run_zero = zero;
            i = end;
        }
        if run < buf.len() {
            self.run(&buf[run..], run_zero)?;
        }
        Ok(())
    }

    fn hole(&mut self, len: u64) -> std::io::Result<()> {
        if self.sparse {
            return self.skip(len);
        }
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        let mut left = len;
        while left > 0 {
            let n = left.min(ZEROS.len() as u64) as usize;
            self.file.write_all(&ZEROS[..n])?;
            left -= n as u64;
        }
        self.ends_in_hole = false;
        self.written += len;
        self.progress.bytes(len);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::pipeline::ChunkWrite;

    struct Quiet;
    impl Progress for Quiet {}

    /// Zero blocks inside one chunk become holes; partial blocks and data
    /// are written; the content reads back the same.
    #[test]
    fn zero_blocks_inside_a_chunk_become_holes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut data = vec![7u8; 100]; // a partial first block
        data.resize(100 + 64 * BLOCK, 0); // 64 blocks of zeros, misaligned
        data.extend(std::iter::repeat_n(9u8, 3 * BLOCK));
        data.resize(data.len() + 32 * BLOCK + 5, 0); // a zero tail
        let mut w = SparseWriter {
            file: File::create(&path).unwrap(),
            sparse: true,
            progress: &Quiet,
            written: 0,
            ends_in_hole: false,
        };
        // In two calls, the second starting inside a block.
        w.data(&data[..1000]).unwrap();
        w.data(&data[1000..]).unwrap();
        assert_eq!(w.written, data.len() as u64);
        w.file.set_len(data.len() as u64).unwrap();
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
        // The first block, the three data blocks, the block the data's
        // end straddles and the partial last one: at most seven, of 101.
        assert!(allocated <= 7 * BLOCK as u64, "{allocated} bytes allocated");
    }
}
