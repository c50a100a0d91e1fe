//! Restoring trees to disk with their metadata, files in parallel.
//!
//! The restore plans first (walking the trees, applying include and exclude
//! patterns), creates the directories, writes files, links and special
//! files in parallel, recreates hard links, and sets directory metadata
//! last, deepest first, since writing into a directory changes its times.
//! Holes and all-zero chunks become holes, so sparse files stay sparse.
//! Existing files are replaced, kept, or replaced only when they differ, as
//! asked; a symlink in the way is never followed. Small files are read in
//! batches planned by pack (one request for many files of a pack, each
//! group of small blobs decompressed once).
//!
//! A file whose data is damaged or missing is reported with its path and
//! the restore goes on with the others; a store that cannot be reached, or
//! a target that is full, ends the restore at once with what was done so
//! far counted. Object nodes (Kubernetes resources, records) are restored
//! as files holding their bytes, block devices read as data
//! (`--read-special`) as sparse image files.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use globset::GlobSet;
use rayon::prelude::*;

use super::archive::{Progress, Warnings};
use super::device::device_with_data;
use super::meta::{
    ApplyOptions, Created, NameCache, Warning, apply, make_special, set_times, umask,
};
use crate::error::{Error, Result};
use crate::glob::compile_patterns;
use crate::id::{BlobType, TreeId};
use crate::pipeline::{BlobReader, ChunkWrite};
use crate::tree::{Node, NodeKind, Tree};

/// What to do with a file that already exists at the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Replace it (restic's default).
    #[default]
    Always,
    /// Replace it unless it has the snapshot's size and modification time
    /// (then only its metadata is brought to the snapshot's).
    IfChanged,
    /// Keep it.
    Never,
}

/// Restore settings.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Restore only paths matching one of these patterns (or inside a
    /// matching directory); empty: everything. Patterns match the path in
    /// the snapshot, as backup excludes do.
    pub include: Vec<String>,
    /// Leave out paths matching these patterns.
    pub exclude: Vec<String>,
    /// Existing files.
    pub overwrite: Overwrite,
    /// Read every restored file back and check it against its chunk ids.
    pub verify: bool,
    /// Restore owners (needs root).
    pub owners: bool,
    /// Write all-zero chunks as holes.
    pub sparse: bool,
}

/// Figures about a restore.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Entries other than directories restored.
    pub files: u64,
    /// Directories restored.
    pub dirs: u64,
    /// File bytes written (holes included).
    pub bytes: u64,
    /// Existing files left as they were.
    pub skipped: u64,
    /// Files read back and found identical.
    pub verified: u64,
    /// Files that did not read back identical.
    pub verify_failures: u64,
    /// Entries that could not be restored (their data damaged or missing,
    /// or the target refused them); each is among the warnings.
    pub failed: u64,
    /// Problems reported.
    pub warnings: u64,
}

/// The outcome of a restore.
#[derive(Clone, Debug)]
pub struct Restored {
    /// Figures.
    pub summary: RestoreSummary,
    /// Every problem reported.
    pub warnings: Vec<Warning>,
}

struct Item {
    /// Its parent directory was created by this restore, so nothing is in
    /// the way and no existence check is needed.
    fresh: bool,
    /// Where it goes.
    dest: PathBuf,
    node: Node,
}

/// Restores trees through a [`BlobReader`]; see the module documentation.
pub struct Restorer<'a> {
    reader: &'a BlobReader<'a>,
    options: RestoreOptions,
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    progress: &'a dyn Progress,
    names: NameCache,
    warnings: Warnings,
    bytes: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    umask: u32,
}

/// Files of at most one chunk are read in batches of about this many bytes,
/// planned by pack.
const SMALL_BATCH_BYTES: u64 = 16 << 20;
/// ... and at most this many files.
const SMALL_BATCH_FILES: usize = 1024;

/// The least a thread restores of small files in one stretch of the tree.
const STRETCH_BYTES: u64 = 32 << 20;

/// `items` cut into consecutive runs of at most `files` items, each ended
/// early by the item that brings its `size` to `bytes`.
fn runs(items: &[usize], files: usize, bytes: u64, size: impl Fn(usize) -> u64) -> Vec<&[usize]> {
    let mut out = Vec::new();
    let (mut from, mut sum) = (0, 0);
    for (n, &i) in items.iter().enumerate() {
        sum += size(i);
        if sum >= bytes || n + 1 - from == files || n + 1 == items.len() {
            out.push(&items[from..=n]);
            (from, sum) = (n + 1, 0);
        }
    }
    out
}

/// Whether a failure ends the whole restore rather than one file: the store
/// is unreachable (every other file would fail alike, each after retries),
/// or the target is full.
fn is_fatal(e: &Error) -> bool {
    match e {
        Error::Storage(_) | Error::WrongKey { .. } => true,
        Error::Io { source, .. } => source.raw_os_error() == Some(libc::ENOSPC),
        _ => false,
    }
}

impl<'a> Restorer<'a> {
    /// A restorer with these options.
    pub fn new(
        reader: &'a BlobReader<'a>,
        options: RestoreOptions,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        Ok(Restorer {
            include: compile_patterns(&options.include)?,
            exclude: compile_patterns(&options.exclude)?,
            reader,
            options,
            progress,
            names: NameCache::default(),
            warnings: Warnings::new(),
            bytes: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            umask: umask(),
        })
    }

    fn warn(&self, path: &Path, message: impl Into<String>) {
        self.warnings.warn(self.progress, path, message);
    }

    fn tree(&self, id: &TreeId) -> Result<Tree> {
        crate::browse::read_tree(self.reader, id)
    }

    /// The bytes and entries a restore of `root` would write, for progress.
    pub fn totals(&self, root: &TreeId, snap_root: &Path) -> Result<(u64, u64)> {
        let mut items = Vec::new();
        self.plan(root, snap_root, Path::new(""), false, &mut items)?;
        let bytes = items
            .iter()
            .filter(|i| i.node.kind.has_content())
            .map(|i| i.node.size)
            .sum();
        Ok((items.len() as u64, bytes))
    }

    /// The entries other than directories that a restore of `root` would
    /// write, with their paths in the snapshot.
    pub fn selected(&self, root: &TreeId, snap_root: &Path) -> Result<Vec<(PathBuf, Node)>> {
        let mut items = Vec::new();
        self.plan(root, snap_root, snap_root, false, &mut items)?;
        Ok(items
            .into_iter()
            .filter(|i| i.node.kind != NodeKind::Dir)
            .map(|i| (i.dest, i.node))
            .collect())
    }

    /// Restores the entries of tree `root` into `target`. `snap_root` is
    /// the path of `root` in the snapshot (`/` for a whole snapshot), which
    /// patterns are matched against.
    pub fn restore(&self, root: &TreeId, snap_root: &Path, target: &Path) -> Result<Restored> {
        let mut items = Vec::new();
        self.plan(root, snap_root, target, false, &mut items)?;
        std::fs::create_dir_all(target)
            .map_err(|e| Error::io_path("creating the target", target, e))?;

        // Directories first, in walk order (parents before children),
        // writable by us until their own metadata is set at the end.
        let mut fresh_dirs = std::collections::HashSet::new();
        for i in items.iter().filter(|i| i.node.kind == NodeKind::Dir) {
            if self.make_dir(&i.dest)? {
                fresh_dirs.insert(i.dest.clone());
            }
        }
        for i in items.iter_mut() {
            i.fresh = i.dest.parent().is_some_and(|p| fresh_dirs.contains(p));
        }
        let (dirs, others): (Vec<&Item>, Vec<&Item>) =
            items.iter().partition(|i| i.node.kind == NodeKind::Dir);
        // The first of each set of hard links is written; the rest link to it.
        let mut leaders: HashMap<(u64, u64), &Path> = HashMap::new();
        let mut links: Vec<(&Item, &Path)> = Vec::new();
        let mut writes: Vec<&Item> = Vec::new();
        for i in others {
            if let Some(key) = i.node.hard_link_key() {
                match leaders.get(&key) {
                    Some(first) => {
                        links.push((i, first));
                        continue;
                    }
                    None => {
                        leaders.insert(key, &i.dest);
                    }
                }
            }
            writes.push(i);
        }
        let written = self.write_all(&writes)?;
        for (item, first) in &links {
            self.link(item, first);
        }
        for d in dirs.iter().rev() {
            for w in apply(&d.dest, &d.node, self.apply_options(), &self.names, None) {
                self.warn(&w.path, w.message);
            }
            self.progress.entry_done(&d.dest, NodeKind::Dir);
        }
        let mut summary = RestoreSummary {
            files: (written.iter().filter(|w| **w).count() + links.len()) as u64,
            dirs: dirs.len() as u64,
            bytes: self.bytes.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            failed: self.failed.load(Relaxed),
            ..Default::default()
        };
        if self.options.verify {
            let checked: Vec<bool> = writes
                .par_iter()
                .zip(written.par_iter())
                .filter(|(i, w)| **w && i.node.kind.has_content())
                .map(|(i, _)| self.verify(i))
                .collect();
            summary.verified = checked.iter().filter(|ok| **ok).count() as u64;
            summary.verify_failures = checked.iter().filter(|ok| !**ok).count() as u64;
        }
        let warnings = self.warnings.take();
        summary.warnings = warnings.len() as u64;
        Ok(Restored { summary, warnings })
    }

    fn apply_options(&self) -> ApplyOptions {
        ApplyOptions {
            owners: self.options.owners,
        }
    }

    /// Walks trees depth first, collecting what to restore.
    fn plan(
        &self,
        tree_id: &TreeId,
        snap_dir: &Path,
        dest_dir: &Path,
        included: bool,
        out: &mut Vec<Item>,
    ) -> Result<()> {
        let tree = self.tree(tree_id)?;
        for node in tree.nodes {
            let name = std::ffi::OsStr::from_bytes(&node.name);
            let snap = snap_dir.join(name);
            if self.exclude.as_ref().is_some_and(|g| g.is_match(&snap)) {
                continue;
            }
            let inside = included || self.include.as_ref().is_none_or(|g| g.is_match(&snap));
            let dest = dest_dir.join(name);
            if node.kind == NodeKind::Dir {
                let sub = node.subtree;
                let mark = out.len();
                out.push(Item {
                    fresh: false,
                    dest: dest.clone(),
                    node,
                });
                if let Some(sub) = sub {
                    self.plan(&sub, &snap, &dest, inside, out)?;
                }
                // A directory with nothing included below it is left out.
                if !inside && out.len() == mark + 1 {
                    out.pop();
                }
            } else if inside {
                out.push(Item {
                    fresh: false,
                    dest,
                    node,
                });
            }
        }
        Ok(())
    }

    /// Makes a directory; true if it did not exist before.
    fn make_dir(&self, path: &Path) -> Result<bool> {
        match std::fs::symlink_metadata(path) {
            Ok(md) if md.is_dir() => Ok(false),
            Ok(_) => {
                // Something else is in the way: a directory must replace it
                // for anything below to be restored.
                std::fs::remove_file(path).map_err(|e| Error::io_path("replacing", path, e))?;
                std::fs::create_dir(path)
                    .map_err(|e| Error::io_path("creating directory", path, e))?;
                Ok(true)
            }
            Err(_) => {
                std::fs::create_dir(path)
                    .map_err(|e| Error::io_path("creating directory", path, e))?;
                Ok(true)
            }
        }
    }

    /// Writes every non-directory entry: single-chunk files in batches read
    /// by pack, the others each on their own, all in parallel. Returns for
    /// each entry whether it was written.
    fn write_all(&self, writes: &[&Item]) -> Result<Vec<bool>> {
        let small = |i: &Item| {
            i.node.kind.has_content()
                && i.node.kind != NodeKind::BlockDevice
                && matches!(i.node.content.as_slice(), [c] if !c.is_hole())
        };
        let mut written = vec![false; writes.len()];
        let (batched, single): (Vec<usize>, Vec<usize>) =
            (0..writes.len()).partition(|&i| small(writes[i]));
        // Threads write far-apart stretches of the tree, each in tree order:
        // threads creating files side by side allocate inodes in the same
        // block group, and on ext4 they then contend for it (a Linux-tree
        // restore took 1.5× as long with batches written in pack order).
        // Each stretch reads its files in batches planned by pack, so a
        // remote store still gets one request per span, not per file; a
        // stretch is at least STRETCH_BYTES, so the groups two stretches
        // share (read by both) stay a small part of what is read.
        let size = |i: usize| writes[i].node.size;
        let total: u64 = batched.iter().map(|&i| size(i)).sum();
        let per = (total / (rayon::current_num_threads() as u64 * 4)).max(STRETCH_BYTES);
        let done = runs(&batched, usize::MAX, per, size)
            .par_iter()
            .map(|part| -> Result<Vec<(usize, bool)>> {
                let mut out = Vec::with_capacity(part.len());
                for batch in runs(part, SMALL_BATCH_FILES, SMALL_BATCH_BYTES, size) {
                    let ids: Vec<_> = batch
                        .iter()
                        .map(|&i| writes[i].node.content[0].id.0)
                        .collect();
                    let data = self.reader.read_blobs(BlobType::Data, &ids)?;
                    for (&i, d) in batch.iter().zip(data) {
                        out.push((i, self.restore_entry(writes[i], Some(d))?));
                    }
                }
                Ok(out)
            })
            .collect::<Result<Vec<_>>>()?;
        for (i, w) in done.into_iter().flatten() {
            written[i] = w;
        }
        let done = single
            .par_iter()
            .map(|&i| self.restore_entry(writes[i], None))
            .collect::<Result<Vec<bool>>>()?;
        for (&i, w) in single.iter().zip(done) {
            written[i] = w;
        }
        Ok(written)
    }

    /// Records an entry that could not be restored, or ends the restore if
    /// the failure is one every other entry would share.
    fn failed(&self, path: &Path, e: Error) -> Result<bool> {
        if is_fatal(&e) {
            return Err(e);
        }
        self.failed.fetch_add(1, Relaxed);
        self.warn(path, format!("not restored: {e}"));
        Ok(false)
    }

    /// Restores one non-directory entry; false if it was skipped or failed.
    /// `prefetched` is the content of a single-chunk file, already read.
    fn restore_entry(&self, item: &Item, prefetched: Option<Result<Vec<u8>>>) -> Result<bool> {
        let (path, node) = (&item.dest, &item.node);
        let existing = if item.fresh {
            None
        } else {
            std::fs::symlink_metadata(path).ok()
        };
        if let Some(md) = &existing {
            let keep = match self.options.overwrite {
                Overwrite::Always => false,
                Overwrite::Never => true,
                Overwrite::IfChanged => {
                    node.kind == NodeKind::File
                        && md.is_file()
                        && md.size() == node.size
                        && md.mtime() == node.mtime.secs
                        && md.mtime_nsec() as u32 == node.mtime.nanos
                }
            };
            if keep {
                self.skipped.fetch_add(1, Relaxed);
                self.progress.bytes(node.size);
                // Same content: bring its metadata to the snapshot's.
                if self.options.overwrite == Overwrite::IfChanged {
                    for w in apply(path, node, self.apply_options(), &self.names, None) {
                        self.warn(&w.path, w.message);
                    }
                }
                return Ok(false);
            }
            // A live device node is not replaced by an image of a device
            // (a restore with --target / would otherwise swap /dev/sdb for
            // a file): the content goes onto a device with --to-device.
            if device_with_data(node) && md.file_type().is_block_device() {
                self.skipped.fetch_add(1, Relaxed);
                self.warn(
                    path,
                    format!(
                        "not restored: a block device is there, and an image file will not \
                         replace it; to write the content onto it: hokan restore SNAPSHOT \
                         --include PATH --to-device {}",
                        path.display()
                    ),
                );
                return Ok(false);
            }
            // Never write through what is there: remove it first.
            if !md.is_dir() {
                let _ = std::fs::remove_file(path);
            }
        }
        let mut created = None;
        // A block device read as data becomes an image file: the data is
        // what was backed up, and a device node cannot hold it.
        let kind = if device_with_data(node) {
            NodeKind::File
        } else {
            node.kind
        };
        match kind {
            NodeKind::File | NodeKind::Object => {
                created = Some(Created {
                    mode: node.mode & 0o777 & !self.umask,
                });
                if let Err(e) = self.write_file(path, node, prefetched) {
                    // A half-written file must not pass for a restored one.
                    let _ = std::fs::remove_file(path);
                    return self.failed(path, e);
                }
            }
            NodeKind::Symlink => {
                if let Err(e) =
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&node.target), path)
                {
                    self.warn(path, format!("creating symlink: {e}"));
                    return Ok(false);
                }
                created = Some(Created { mode: 0o777 });
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                if let Err(e) = make_special(path, node) {
                    self.warn(path, format!("creating {}: {e}", node.kind.name()));
                    return Ok(false);
                }
            }
            NodeKind::Socket => {
                // A socket belongs to the process that listened on it.
                return Ok(false);
            }
            NodeKind::Dir => unreachable!("directories are made separately"),
        }
        for w in apply(path, node, self.apply_options(), &self.names, created) {
            self.warn(&w.path, w.message);
        }
        self.progress.entry_done(path, node.kind);
        Ok(true)
    }

    fn write_file(
        &self,
        path: &Path,
        node: &Node,
        prefetched: Option<Result<Vec<u8>>>,
    ) -> Result<()> {
        // Read first: a file whose data is lost is not created at all.
        let data = prefetched.transpose()?;
        let file = File::options()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            // Created with its final permission bits (the umask permitting):
            // the open descriptor may write whatever the mode says. An
            // object node has no mode; it is readable by its owner only.
            .mode(match node.mode & 0o777 {
                0 => 0o600,
                m => m,
            })
            .open(path)
            .map_err(|e| Error::io_path("creating", path, e))?;
        let mut out = SparseWriter {
            file,
            sparse: self.options.sparse,
            progress: self.progress,
            written: 0,
            ends_in_hole: false,
        };
        let io = |e| Error::io_path("writing", path, e);
        match data {
            Some(d) => {
                if d.len() as u64 != node.size {
                    return Err(Error::corrupted(
                        format!("chunk {}", node.content[0].id.short()),
                        format!("{} bytes, the file is {}", d.len(), node.size),
                    ));
                }
                out.data(&d).map_err(io)?;
            }
            None => {
                self.reader.read_chunks_to(&node.content, &mut out)?;
            }
        }
        // A trailing hole exists only once the length is set.
        if out.ends_in_hole || out.written != node.size {
            out.file
                .set_len(node.size)
                .map_err(|e| Error::io_path("setting the length of", path, e))?;
        }
        self.bytes.fetch_add(out.written, Relaxed);
        Ok(())
    }

    fn link(&self, item: &Item, first: &Path) {
        let path = &item.dest;
        if std::fs::symlink_metadata(path).is_ok() {
            if self.options.overwrite == Overwrite::Never {
                self.skipped.fetch_add(1, Relaxed);
                return;
            }
            let _ = std::fs::remove_file(path);
        }
        if let Err(e) = std::fs::hard_link(first, path) {
            self.warn(path, format!("linking to {}: {e}", first.display()));
            return;
        }
        if let Err(e) = set_times(path, &item.node) {
            self.warn(path, format!("setting times: {e}"));
        }
        self.progress.entry_done(path, NodeKind::File);
    }

    /// Reads a restored file back and checks every chunk against its id.
    fn verify(&self, item: &Item) -> bool {
        use std::io::Read;
        let key = self.reader.key();
        let result = (|| -> std::io::Result<bool> {
            // Reading back must not disturb the access time just restored.
            let mut f = super::noatime::open(&item.dest)?;
            let mut buf = Vec::new();
            for c in &item.node.content {
                buf.resize(c.len as usize, 0);
                f.read_exact(&mut buf)?;
                let same = if c.is_hole() {
                    buf.iter().all(|&b| b == 0)
                } else {
                    key.chunk_id(&buf) == c.id
                };
                if !same {
                    return Ok(false);
                }
            }
            // Nothing may follow the last chunk.
            Ok(f.read(&mut [0u8; 1])? == 0)
        })();
        match result {
            Ok(true) => true,
            Ok(false) => {
                self.warn(
                    &item.dest,
                    "verification failed: the restored content differs from the snapshot",
                );
                false
            }
            Err(e) => {
                self.warn(&item.dest, format!("verification failed: {e}"));
                false
            }
        }
    }
}

/// Writes chunks to a file, turning holes and all-zero chunks into holes.
struct SparseWriter<'a> {
    file: File,
    sparse: bool,
    progress: &'a dyn Progress,
    written: u64,
    ends_in_hole: bool,
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
