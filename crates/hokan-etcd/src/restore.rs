//! Restoring a stored etcd snapshot: the exact bytes that were saved,
//! rebuilt from the layout stream and the records, verified by SHA-256,
//! streamed to a file.
//!
//! Three threads: one reads the layout's chunks into a pipe, one fetches
//! the records ahead in batches (`read_blobs`, planned by pack, groups
//! decompressed once), and the caller's thread rebuilds and writes. Memory
//! is a few batches, never the database.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use hokan_core::fs::Progress;
use hokan_core::{BlobType, ChunkRef};
use hokan_repo::IndexedRepository;

use crate::error::{Error, Result};
use crate::rebuild::{RebuildSummary, RecordSource, rebuild};
use crate::stored::{EtcdSnapshot, hex_of};

/// Records fetched per request batch, at most (and at most this many bytes).
const PREFETCH_RECORDS: usize = 16 << 10;
const PREFETCH_BYTES: u64 = 16 << 20;
/// Batches (and layout pieces) waiting for the rebuild.
const QUEUED: usize = 4;

/// Rebuilds the snapshot into `out`, checking the SHA-256 of every byte
/// against the one recorded when it was stored. `out` gets garbage on
/// error: write to a temporary file (as [`restore_file`] does).
pub fn restore_to(
    repo: &IndexedRepository,
    snap: &EtcdSnapshot,
    out: impl Write,
    progress: &dyn Progress,
) -> Result<RebuildSummary> {
    let records = snap.records(repo)?;
    let reader = repo.reader();
    let reader = &reader;
    let (layout_tx, layout_rx) = sync_channel::<Vec<u8>>(QUEUED * 4);
    let (rec_tx, rec_rx) = sync_channel::<Result<Vec<Vec<u8>>>>(QUEUED);
    let (rebuilt, layout_side, record_side) = std::thread::scope(|s| {
        let layout = s.spawn(move || {
            let mut pipe = PipeWriter {
                tx: layout_tx,
                closed: false,
            };
            let read = reader.read_chunks(snap.layout(), &mut pipe);
            match read {
                _ if pipe.closed => Err(Error::Sink(CLOSED.into())),
                Ok(_) => Ok(()),
                Err(e) => Err(Error::from(e)),
            }
        });
        let prefetch = s.spawn(move || prefetch(reader, &records, rec_tx));
        let mut source = Prefetched {
            rx: rec_rx,
            batch: VecDeque::new(),
        };
        let rebuilt = rebuild(
            PipeReader {
                rx: layout_rx,
                buf: Vec::new(),
                at: 0,
            },
            &mut source,
            Counting(out, progress),
        );
        drop(source);
        let join = |r: std::thread::Result<Result<()>>| {
            r.unwrap_or_else(|_| Err(Error::Sink("a restore thread panicked".into())))
        };
        (rebuilt, join(layout.join()), join(prefetch.join()))
    });
    // A helper's failure (a missing pack, a damaged blob) is the cause of
    // the rebuild's; a helper that stopped because the rebuild did is not.
    for side in [layout_side, record_side] {
        match side {
            Err(Error::Sink(msg)) if msg == CLOSED => {}
            Err(e) => return Err(e),
            Ok(()) => {}
        }
    }
    let done = rebuilt?;
    let sha = hex_of(&done.sha256);
    if sha != snap.facts.sha256 {
        return Err(Error::HashMismatch {
            what: format!("snapshot {}", snap.short_id()),
            expected: snap.facts.sha256.clone(),
            actual: sha,
        });
    }
    Ok(done)
}

/// Restores the snapshot into a new file at `path`: written beside it
/// under a temporary name, synced, and renamed only once every byte is
/// verified, so a failed restore leaves nothing that looks like a snapshot.
/// An existing file is not replaced.
pub fn restore_file(
    repo: &IndexedRepository,
    snap: &EtcdSnapshot,
    path: &Path,
    progress: &dyn Progress,
) -> Result<RebuildSummary> {
    let shown = path.display().to_string();
    if path.exists() {
        return Err(Error::invalid(
            "output",
            format!("{shown} exists; remove it or choose another file"),
        ));
    }
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("output", format!("{shown} names no file")))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".hokan-partial");
    let tmp: PathBuf = path.with_file_name(tmp_name);
    // Readable by its owner only, as etcdctl writes a snapshot: the
    // database holds every Secret of the cluster.
    let file = hokan_core::fs::beneath::create_private(&tmp)
        .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    let result = (|| {
        progress.totals(1, snap.facts.size);
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
        let done = restore_to(repo, snap, &mut w, progress)?;
        w.flush()
            .map_err(|e| Error::io(format!("writing {shown}"), e))?;
        drop(w);
        file.sync_all()
            .map_err(|e| Error::io(format!("syncing {shown}"), e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming to {shown}"), e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename is durable once the directory is.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(done)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `len` bytes at `offset` of the snapshot file, by rebuilding up to them:
/// for the rare values that are not in a record of their own.
pub fn read_file_range(
    repo: &IndexedRepository,
    snap: &EtcdSnapshot,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>> {
    let mut cap = Capture {
        at: 0,
        offset,
        want: len,
        got: Vec::with_capacity(len),
    };
    match restore_to(repo, snap, &mut cap, &hokan_core::fs::NoProgress) {
        Ok(_) => {}
        // The capture stops the rebuild once it has its bytes.
        Err(Error::Io { .. }) if cap.got.len() == len => {}
        Err(e) => return Err(e),
    }
    if cap.got.len() != len {
        return Err(Error::layout(format!(
            "the file ends before {len} bytes at offset {offset}"
        )));
    }
    Ok(cap.got)
}

struct Capture {
    at: u64,
    offset: u64,
    want: usize,
    got: Vec<u8>,
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.got.len() == self.want {
            return Err(std::io::Error::other("captured"));
        }
        let start = self.at;
        let end = start + buf.len() as u64;
        let want_end = self.offset + self.want as u64;
        if end > self.offset && start < want_end {
            let from = self.offset.max(start) - start;
            let to = want_end.min(end) - start;
            self.got.extend_from_slice(&buf[from as usize..to as usize]);
        }
        self.at = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The message of a helper that stopped because its reader went away.
const CLOSED: &str = "the rebuild stopped reading";

/// Fetches the records in order, a batch ahead of the rebuild.
fn prefetch(
    reader: &hokan_core::BlobReader<'_>,
    records: &[ChunkRef],
    tx: SyncSender<Result<Vec<Vec<u8>>>>,
) -> Result<()> {
    let mut at = 0;
    while at < records.len() {
        let mut end = at;
        let mut bytes = 0u64;
        while end < records.len() && end - at < PREFETCH_RECORDS && bytes < PREFETCH_BYTES {
            bytes += u64::from(records[end].len);
            end += 1;
        }
        let ids: Vec<_> = records[at..end].iter().map(|c| c.id.0).collect();
        let batch = reader
            .read_blobs(BlobType::Data, &ids)
            .map_err(Error::from)
            .and_then(|blobs| {
                blobs
                    .into_iter()
                    .map(|b| b.map_err(Error::from))
                    .collect::<Result<Vec<_>>>()
            });
        let failed = batch.is_err();
        if tx.send(batch).is_err() {
            return Err(Error::Sink(CLOSED.into()));
        }
        if failed {
            // Sent to the rebuild, which reports it.
            return Ok(());
        }
        at = end;
    }
    Ok(())
}

/// The rebuild's record source over the prefetched batches.
struct Prefetched {
    rx: Receiver<Result<Vec<Vec<u8>>>>,
    batch: VecDeque<Vec<u8>>,
}

impl RecordSource for Prefetched {
    fn next_record(&mut self, _len: usize, out: &mut Vec<u8>) -> Result<()> {
        while self.batch.is_empty() {
            match self.rx.recv() {
                Ok(batch) => self.batch = batch?.into(),
                Err(_) => {
                    return Err(Error::layout(
                        "the layout asks for more records than the snapshot lists",
                    ));
                }
            }
        }
        *out = self.batch.pop_front().expect("not empty");
        Ok(())
    }
}

/// The writing end of a pipe between threads.
struct PipeWriter {
    tx: SyncSender<Vec<u8>>,
    /// The reader went away.
    closed: bool,
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.tx.send(buf.to_vec()).is_err() {
            self.closed = true;
            return Err(std::io::Error::other(CLOSED));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The reading end.
struct PipeReader {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    at: usize,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.at = 0;
                }
                // The writer is done (or failed: its thread says so).
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A writer that reports bytes written to a progress display.
struct Counting<'p, W>(W, &'p dyn Progress);

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.bytes(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
