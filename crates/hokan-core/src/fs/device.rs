//! Block devices as data (`backup --read-special`, `restore --to-device`):
//! a device is read like a file, its all-zero chunks stored as holes, and
//! written back whole onto another device.
//!
//! A device has no `SEEK_DATA`, so zeros are found after cutting: the
//! writer stores any all-zero chunk as a hole (format version 2), which is
//! what an unused region of a disk image cuts into.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use super::archive::{Archiver, Counting, Progress};
use crate::error::{Error, Result};
use crate::pipeline::{BlobReader, ChunkRef, ChunkWrite};
use crate::tree::{Node, NodeKind};

/// Whether a node holds a block device's content (read with
/// `--read-special`) rather than only the device node.
pub fn device_with_data(node: &Node) -> bool {
    node.kind == NodeKind::BlockDevice && (node.size > 0 || !node.content.is_empty())
}

/// The size of the block device at `path`, for progress totals; `None`
/// when it cannot be opened.
pub(crate) fn device_size_at(path: &Path) -> Option<u64> {
    device_size(&mut File::open(path).ok()?).ok()
}

/// The size of an open block device: seeking to its end works on every
/// block device, where `metadata().len()` says 0.
fn device_size(file: &mut File) -> std::io::Result<u64> {
    let size = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    Ok(size)
}

impl Archiver<'_> {
    /// A block device's content and size, read whole; `None` (reported)
    /// when it cannot be read. Read every time: a device has no mtime that
    /// tells it changed, and unchanged content dedups to nothing new.
    /// Counted as unmodified when `parent` holds the same content.
    pub(super) fn device_content(
        &self,
        path: &Path,
        parent: Option<&Node>,
    ) -> Result<Option<(Vec<ChunkRef>, u64)>> {
        let file = super::noatime::open(path);
        let mut file = match file {
            Ok(f) => f,
            Err(e) => {
                self.warn(path, format!("cannot open the device, skipped: {e}"));
                return Ok(None);
            }
        };
        let size = match device_size(&mut file) {
            Ok(s) => s,
            Err(e) => {
                self.warn(path, format!("cannot find the device's size, skipped: {e}"));
                return Ok(None);
            }
        };
        self.counters.bytes_seen.fetch_add(size, Relaxed);
        // Chunks are cut, hashed, compressed and stored on every core while
        // the next batch is read.
        let stored = self.writer.write_stream(Counting {
            inner: &mut file,
            progress: self.progress,
        });
        let Some(content) = self.read_or_skip(path, stored)? else {
            return Ok(None);
        };
        let read: u64 = content.iter().map(|c| c.len as u64).sum();
        self.counters.bytes_read.fetch_add(read, Relaxed);
        if read != size {
            self.warn(
                path,
                format!("{size} bytes in the device, {read} read; stored as read"),
            );
        }
        let c = &self.counters;
        match parent.filter(|p| device_with_data(p)) {
            Some(p) if p.content == content => c.files_unmodified.fetch_add(1, Relaxed),
            Some(_) => c.files_changed.fetch_add(1, Relaxed),
            None => c.files_new.fetch_add(1, Relaxed),
        };
        Ok(Some((content, read)))
    }
}

/// Writes a stored device's (or file's) content onto the block device
/// `device`, which must be at least as large; holes are zeroed on the
/// device (`BLKZEROOUT`, or written zeros where the device cannot), since
/// it may hold old data there. Synced before returning; returns the bytes
/// written, holes included.
pub fn restore_to_device(
    reader: &BlobReader<'_>,
    node: &Node,
    device: &Path,
    progress: &dyn Progress,
) -> Result<u64> {
    let md = std::fs::metadata(device).map_err(|e| Error::io_path("reading", device, e))?;
    if !md.file_type().is_block_device() {
        return Err(Error::NotADevice {
            path: device.to_path_buf(),
        });
    }
    let mut file = File::options()
        .write(true)
        .open(device)
        .map_err(|e| Error::io_path("opening", device, e))?;
    let size = device_size(&mut file).map_err(|e| Error::io_path("sizing", device, e))?;
    if size < node.size {
        return Err(Error::invalid(
            "device",
            format!(
                "{} holds {size} bytes, the stored content is {} bytes; give a device at least that large",
                device.display(),
                node.size
            ),
        ));
    }
    let mut out = DeviceWriter {
        file: &file,
        pos: 0,
        progress,
        hole: 0,
        zeroout: true,
    };
    let written = reader.read_chunks_to(&node.content, &mut out)?;
    out.flush_hole()
        .map_err(|e| Error::io_path("writing", device, e))?;
    if written != node.size {
        return Err(Error::corrupted(
            format!("the content of {}", String::from_utf8_lossy(&node.name)),
            format!("{written} bytes stored, its metadata says {}", node.size),
        ));
    }
    file.sync_all()
        .map_err(|e| Error::io_path("syncing", device, e))?;
    Ok(written)
}

/// Writes chunks at increasing offsets of a device.
struct DeviceWriter<'a> {
    file: &'a File,
    pos: u64,
    progress: &'a dyn Progress,
    /// Zeros still to write at `pos`.
    hole: u64,
    /// `BLKZEROOUT` works here (until it fails once).
    zeroout: bool,
}

/// The sector size `BLKZEROOUT` ranges align to.
const SECTOR: u64 = 512;

impl DeviceWriter<'_> {
    /// Zeroes the pending hole: the unaligned edges are written, the
    /// sectors between zeroed without sending them (a loop device turns
    /// that into a hole of its backing file, a disk into a write-zeroes or
    /// discard command). The kernel drops cached pages of the range, dirty
    /// ones included, so earlier writes cannot land over it.
    fn flush_hole(&mut self) -> std::io::Result<()> {
        let end = self.pos + std::mem::take(&mut self.hole);
        let first = self.pos.div_ceil(SECTOR) * SECTOR;
        let last = end / SECTOR * SECTOR;
        if self.zeroout && last > first {
            self.write_zeros(first - self.pos)?;
            if self.zero_out(first, last - first) {
                self.pos = last;
            } else {
                self.zeroout = false;
            }
        }
        self.write_zeros(end - self.pos)
    }

    fn write_zeros(&mut self, mut len: u64) -> std::io::Result<()> {
        static ZEROS: [u8; 1 << 20] = [0; 1 << 20];
        while len > 0 {
            let n = len.min(ZEROS.len() as u64) as usize;
            self.file.write_all_at(&ZEROS[..n], self.pos)?;
            self.pos += n as u64;
            len -= n as u64;
        }
        Ok(())
    }

    /// Zeroes `len` bytes at `pos` (sector-aligned) with `BLKZEROOUT`.
    fn zero_out(&self, pos: u64, len: u64) -> bool {
        const BLKZEROOUT: libc::c_ulong = 0x127f; // _IO(0x12, 127)
        let range: [u64; 2] = [pos, len];
        // SAFETY: BLKZEROOUT reads two u64 (start, length) from the pointer,
        // which points at such an array that outlives the call.
        let r = unsafe { libc::ioctl(self.file.as_raw_fd(), BLKZEROOUT as _, range.as_ptr()) };
        r == 0
    }
}

impl ChunkWrite for DeviceWriter<'_> {
    fn data(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.flush_hole()?;
        self.file.write_all_at(bytes, self.pos)?;
        self.pos += bytes.len() as u64;
        self.progress.bytes(bytes.len() as u64);
        Ok(())
    }

    fn hole(&mut self, len: u64) -> std::io::Result<()> {
        // Holes come in pieces of at most a chunk's length: zero them as
        // one range, once the data after them (or the end) comes.
        self.hole += len;
        self.progress.bytes(len);
        Ok(())
    }
}
