//! Restoring trees to disk with their metadata, files in parallel.
//!
//! The restore walks the trees (applying include and exclude patterns) and
//! works through what it meets window by window: each window's directories
//! are created, its files, links and special files written in parallel,
//! its hard links recreated and, with `--verify`, its files read back;
//! then its files are forgotten, so memory does not grow with the number
//! of files. Directories (and the first file of each set of hard links)
//! are kept to the end, when directory metadata is set, deepest first,
//! since writing into a directory changes its times.
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
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use globset::GlobSet;
use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::archive::{Progress, Warnings};
use super::beneath::{create_new_at, make_dir_at, remove_at};
use super::device::device_with_data;
use super::meta::{
    ApplyOptions, At, Created, NameCache, Warning, WarningKind, apply, make_special, set_times,
    umask,
};
use super::restore_dirs::{DirCache, Dirs, Leader, Lost, Run};
use super::restore_walk::{Item, Walked};
use super::sparse::SparseWriter;
use crate::error::{Error, Result};
use crate::glob::compile_patterns;
use crate::id::{BlobType, TreeId};
use crate::pipeline::{BlobReader, ChunkRef, ChunkWrite};
use crate::tree::{Node, NodeKind};

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

/// Restores trees through a [`BlobReader`]; see the module documentation.
pub struct Restorer<'a> {
    pub(super) reader: &'a BlobReader<'a>,
    options: RestoreOptions,
    pub(super) include: Option<GlobSet>,
    pub(super) exclude: Option<GlobSet>,
    progress: &'a dyn Progress,
    names: NameCache,
    warnings: Warnings,
    bytes: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    umask: u32,
    /// Entries a window holds at most.
    window: usize,
}

/// Files of at most one chunk are read in batches of about this many bytes,
/// planned by pack.
const SMALL_BATCH_BYTES: u64 = 4 << 20;
/// ... and at most this many files.
const SMALL_BATCH_FILES: usize = 1024;

/// The least a thread restores of small files in one stretch of the tree.
const STRETCH_BYTES: u64 = 32 << 20;

/// A window is restored once it holds this many entries other than
/// directories (a few MiB: about 540 bytes an entry)...
const WINDOW_ENTRIES: usize = 16_384;
/// ... or its files' chunk lists this many bytes (a few large files).
const WINDOW_CHUNK_BYTES: usize = 16 << 20;

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
pub(super) fn is_fatal(e: &Error) -> bool {
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
            window: WINDOW_ENTRIES,
        })
    }

    /// Restores in windows of at most `entries` entries other than
    /// directories, for tests that need many windows from a small tree.
    #[doc(hidden)]
    pub fn with_window(mut self, entries: usize) -> Self {
        self.window = entries.max(1);
        self
    }

    pub(super) fn warn(&self, path: &Path, message: impl Into<String>) {
        self.warnings.warn(self.progress, path, message);
    }

    /// Restores the entries of tree `root` into `target`. `snap_root` is
    /// the path of `root` in the snapshot (`/` for a whole snapshot), which
    /// patterns are matched against.
    ///
    /// `target` is opened once; nothing below it is reached through a
    /// symlink or a path that can change underneath (see
    /// [`Beneath`](super::beneath::Beneath)): a directory found replaced while the restore runs is
    /// reported and nothing more is written into it.
    pub fn restore(&self, root: &TreeId, snap_root: &Path, target: &Path) -> Result<Restored> {
        let mut run = Run {
            target,
            dirs: None,
            dir_nodes: Vec::new(),
            new_dirs: Vec::new(),
            window: Vec::new(),
            chunk_bytes: 0,
            leaders: HashMap::new(),
            files: 0,
            verified: 0,
            verify_failures: 0,
        };
        self.walk(root, snap_root, target, &mut |w| self.take(&mut run, w))?;
        // The last window (or, for an empty tree, only the target).
        self.restore_window(&mut run)?;
        let dirs = run.dirs.as_ref().expect("made by the last window");
        // Directory metadata last, deepest first (walk order reversed).
        for (d, (dest, node)) in run.dir_nodes.iter().enumerate().rev() {
            self.finish_dir(dirs, d, dest, node);
        }
        let mut summary = RestoreSummary {
            files: run.files,
            dirs: run.dir_nodes.len() as u64,
            bytes: self.bytes.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            verified: run.verified,
            verify_failures: run.verify_failures,
            ..Default::default()
        };
        summary.failed = self.failed.load(Relaxed);
        let warnings = self.warnings.take();
        summary.warnings = warnings.len() as u64;
        Ok(Restored { summary, warnings })
    }

    /// Takes one thing the walk met into the run; restores the window once
    /// it is full.
    fn take(&self, run: &mut Run<'_>, walked: Walked) -> Result<()> {
        match walked {
            // A directory whose tree cannot be read is damage like a file's.
            Walked::Unreadable(dir, e) => {
                self.failed.fetch_add(1, Relaxed);
                self.warn(&dir, format!("directory not restored: {e}"));
            }
            Walked::Dir { dest, parent, node } => {
                let rel = dest.strip_prefix(run.target).unwrap_or(&dest).to_path_buf();
                let d = run.dirs()?.push(rel, parent);
                debug_assert_eq!(d, run.dir_nodes.len(), "directories come in walk order");
                run.dir_nodes.push((dest, node));
                run.new_dirs.push(d);
            }
            Walked::Entry(item) => {
                run.chunk_bytes += item.node.content.len() * std::mem::size_of::<ChunkRef>();
                run.window.push(item);
                if run.window.len() >= self.window || run.chunk_bytes >= WINDOW_CHUNK_BYTES {
                    self.restore_window(run)?;
                }
            }
        }
        Ok(())
    }

    /// Restores the window: its directories first, in walk order (parents
    /// before children), only ours until their own metadata is set at the
    /// end; then its entries, its hard links, and with `--verify` reads
    /// them back.
    fn restore_window(&self, run: &mut Run<'_>) -> Result<()> {
        let window = std::mem::take(&mut run.window);
        let new_dirs = std::mem::take(&mut run.new_dirs);
        run.chunk_bytes = 0;
        run.dirs()?;
        let dirs = run.dirs.as_ref().expect("made above");
        self.make_dirs(dirs, &run.dir_nodes, &new_dirs)?;
        // The first of each set of hard links is written; the rest link to it.
        let mut links: Vec<(&Item, (u64, u64))> = Vec::new();
        let mut writes: Vec<&Item> = Vec::new();
        for item in &window {
            if let Some(key) = item.node.hard_link_key() {
                if run.leaders.contains_key(&key) {
                    links.push((item, key));
                    continue;
                }
                let leader = Leader {
                    parent: item.parent,
                    name: item.node.name.clone(),
                    dest: item.dest.clone(),
                };
                run.leaders.insert(key, leader);
            }
            writes.push(item);
        }
        let written = self.write_all(dirs, &writes)?;
        let mut cache = DirCache::default();
        for (item, key) in &links {
            self.link(dirs, &mut cache, item, &run.leaders[key]);
        }
        drop(cache);
        run.files += (written.iter().filter(|w| **w).count() + links.len()) as u64;
        if self.options.verify {
            let checked: Vec<bool> = writes
                .par_iter()
                .zip(written.par_iter())
                .filter(|(i, w)| **w && i.node.kind.has_content())
                .map_init(DirCache::default, |cache, (i, _)| {
                    self.verify(dirs, cache, i)
                })
                .collect();
            run.verified += checked.iter().filter(|ok| **ok).count() as u64;
            run.verify_failures += checked.iter().filter(|ok| !**ok).count() as u64;
        }
        // The window's lookups touched pages all over a mapped index; left
        // mapped, they would make the restore's resident size grow with
        // the share of the index the snapshot uses.
        if let Some(index) = self.reader.index().run() {
            index.release_pages();
        }
        Ok(())
    }

    fn apply_options(&self) -> ApplyOptions {
        ApplyOptions {
            owners: self.options.owners,
        }
    }

    /// Reports a directory found replaced (the first time it is met);
    /// false, for the entry that needed it.
    fn report(&self, lost: Lost) -> bool {
        if let Lost::Report(dir, e) = lost {
            self.failed.fetch_add(1, Relaxed);
            self.warn(
                &dir,
                format!(
                    "directory replaced or removed while the restore ran ({e}); \
                     nothing more was restored into it"
                ),
            );
        }
        false
    }

    /// Makes or finds directories `new` (indices into `nodes`), in walk
    /// order.
    fn make_dirs(&self, dirs: &Dirs, nodes: &[(PathBuf, Node)], new: &[usize]) -> Result<()> {
        let mut cache = DirCache::default();
        for &d in new {
            let (dest, node) = &nodes[d];
            let parent = match dirs.handle(&mut cache, dirs.parent(d)) {
                Ok(fd) => fd,
                Err(lost) => {
                    self.report(lost);
                    continue;
                }
            };
            // Only ours (0700) until the end: nobody else can add or swap
            // anything inside while the restore runs.
            let name = OsStr::from_bytes(&node.name);
            let (fd, made) = make_dir_at(parent, name, 0o700)
                .map_err(|e| Error::io_path("creating directory", dest, e))?;
            dirs.record(&mut cache, d, fd, made)
                .map_err(|e| Error::io_path("opening directory", dest, e))?;
        }
        Ok(())
    }

    /// Writes every non-directory entry: single-chunk files in batches read
    /// by pack, the others each on their own, all in parallel. Returns for
    /// each entry whether it was written.
    fn write_all(&self, dirs: &Dirs, writes: &[&Item]) -> Result<Vec<bool>> {
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
        // share (read by both) stay a small part of what is read. In tree
        // order, consecutive files share their directory's handle.
        let size = |i: usize| writes[i].node.size;
        let total: u64 = batched.iter().map(|&i| size(i)).sum();
        let per = (total / (rayon::current_num_threads() as u64 * 4)).max(STRETCH_BYTES);
        let done = runs(&batched, usize::MAX, per, size)
            .par_iter()
            .map(|part| -> Result<Vec<(usize, bool)>> {
                let mut cache = DirCache::default();
                let mut out = Vec::with_capacity(part.len());
                for batch in runs(part, SMALL_BATCH_FILES, SMALL_BATCH_BYTES, size) {
                    let ids: Vec<_> = batch
                        .iter()
                        .map(|&i| writes[i].node.content[0].id.0)
                        .collect();
                    let data = self.reader.read_blobs(BlobType::Data, &ids)?;
                    for (&i, d) in batch.iter().zip(data) {
                        out.push((i, self.restore_entry(dirs, &mut cache, writes[i], Some(d))?));
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
            .map_init(DirCache::default, |cache, &i| {
                self.restore_entry(dirs, cache, writes[i], None)
            })
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

    /// Restores one non-directory entry into its directory (from `cache`);
    /// false if it was skipped or failed. `prefetched` is the content of a
    /// single-chunk file, already read.
    fn restore_entry(
        &self,
        dirs: &Dirs,
        cache: &mut DirCache,
        item: &Item,
        prefetched: Option<Result<Vec<u8>>>,
    ) -> Result<bool> {
        let (path, node) = (&item.dest, &item.node);
        // In a directory this restore made nothing is in the way.
        let fresh = dirs.made(item.parent);
        let dir = match dirs.handle(cache, item.parent) {
            Ok(fd) => fd,
            Err(lost) => return Ok(self.report(lost)),
        };
        let name = OsStr::from_bytes(&node.name);
        let existing = if fresh {
            None
        } else {
            rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()
        };
        if let Some(md) = &existing {
            let kind = FileType::from_raw_mode(md.st_mode);
            let keep = match self.options.overwrite {
                Overwrite::Always => false,
                Overwrite::Never => true,
                Overwrite::IfChanged => {
                    node.kind == NodeKind::File
                        && kind == FileType::RegularFile
                        && md.st_size as u64 == node.size
                        && md.st_mtime == node.mtime.secs
                        && md.st_mtime_nsec as u32 == node.mtime.nanos
                }
            };
            if keep {
                self.skipped.fetch_add(1, Relaxed);
                self.progress.bytes(node.size);
                // Same content: bring its metadata to the snapshot's.
                if self.options.overwrite == Overwrite::IfChanged {
                    let at = At::Name(dir, name);
                    for w in apply(at, path, node, self.apply_options(), &self.names, None) {
                        self.warn(&w.path, w.message);
                    }
                }
                return Ok(false);
            }
            // A live device node is not replaced by an image of a device
            // (a restore with --target / would otherwise swap /dev/sdb for
            // a file): the content goes onto a device with --to-device.
            if device_with_data(node) && kind == FileType::BlockDevice {
                self.skipped.fetch_add(1, Relaxed);
                self.warnings.warn_as(
                    self.progress,
                    path,
                    WarningKind::DeviceKept,
                    "not restored: a block device is there, and an image file will not \
                     replace it; restoring this file to the device itself writes its content \
                     onto it",
                );
                return Ok(false);
            }
            // Never write through what is there: remove it first.
            if kind != FileType::Directory {
                let _ = remove_at(dir, name);
            }
        }
        // A block device read as data becomes an image file: the data is
        // what was backed up, and a device node cannot hold it.
        let kind = if device_with_data(node) {
            NodeKind::File
        } else {
            node.kind
        };
        let warnings = match kind {
            NodeKind::File | NodeKind::Object => {
                let created = Some(Created {
                    mode: node.mode & 0o777 & !self.umask,
                });
                match self.write_file(dir, name, path, node, prefetched) {
                    Ok(file) => apply(
                        At::Fd(file.as_fd()),
                        path,
                        node,
                        self.apply_options(),
                        &self.names,
                        created,
                    ),
                    Err(e) => {
                        // A half-written file must not pass for a restored one.
                        if !matches!(&e, Error::Io { source, .. }
                            if source.kind() == std::io::ErrorKind::AlreadyExists)
                        {
                            let _ = remove_at(dir, name);
                        }
                        return self.failed(path, e);
                    }
                }
            }
            NodeKind::Symlink => {
                if let Err(e) = rustix::fs::symlinkat(OsStr::from_bytes(&node.target), dir, name) {
                    self.warn(path, format!("creating symlink: {e}"));
                    return Ok(false);
                }
                let created = Some(Created { mode: 0o777 });
                let at = At::Name(dir, name);
                apply(at, path, node, self.apply_options(), &self.names, created)
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                if let Err(e) = make_special(dir, name, node) {
                    self.warn(path, format!("creating {}: {e}", node.kind.name()));
                    return Ok(false);
                }
                let at = At::Name(dir, name);
                apply(at, path, node, self.apply_options(), &self.names, None)
            }
            NodeKind::Socket => {
                // A socket belongs to the process that listened on it.
                return Ok(false);
            }
            NodeKind::Dir => unreachable!("directories are made separately"),
        };
        for w in warnings {
            self.warn(&w.path, w.message);
        }
        self.progress.entry_done(path, node.kind);
        Ok(true)
    }

    /// Creates file `name` in `dir` and writes its content; returns it
    /// open, for its metadata.
    fn write_file(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        node: &Node,
        prefetched: Option<Result<Vec<u8>>>,
    ) -> Result<File> {
        // Read first: a file whose data is lost is not created at all.
        let data = prefetched.transpose()?;
        // Created with its final permission bits (the umask permitting):
        // the open descriptor may write whatever the mode says. An object
        // node has no mode; it is readable by its owner only.
        let mode = match node.mode & 0o777 {
            0 => 0o600,
            m => m,
        };
        let file =
            create_new_at(dir, name, mode).map_err(|e| Error::io_path("creating", path, e))?;
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
        Ok(out.file)
    }

    /// Links `item` to the file written for `leader`, both reached from
    /// their directories' handles.
    fn link(&self, dirs: &Dirs, cache: &mut DirCache, item: &Item, leader: &Leader) {
        let path = &item.dest;
        let from = match dirs.owned(leader.parent) {
            Ok(fd) => fd,
            Err(lost) => {
                self.report(lost);
                return;
            }
        };
        let dir = match dirs.handle(cache, item.parent) {
            Ok(fd) => fd,
            Err(lost) => {
                self.report(lost);
                return;
            }
        };
        let name = OsStr::from_bytes(&item.node.name);
        if rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            if self.options.overwrite == Overwrite::Never {
                self.skipped.fetch_add(1, Relaxed);
                return;
            }
            let _ = remove_at(dir, name);
        }
        let leader_name = OsStr::from_bytes(&leader.name);
        if let Err(e) = rustix::fs::linkat(&from, leader_name, dir, name, AtFlags::empty()) {
            self.warn(path, format!("linking to {}: {e}", leader.dest.display()));
            return;
        }
        if let Err(e) = set_times(At::Name(dir, name), &item.node) {
            self.warn(path, format!("setting times: {e}"));
        }
        self.progress.entry_done(path, NodeKind::File);
    }

    /// Sets directory `d`'s own metadata, once everything inside is written.
    fn finish_dir(&self, dirs: &Dirs, d: usize, dest: &Path, node: &Node) {
        let fd = match dirs.owned(d) {
            Ok(fd) => fd,
            Err(lost) => {
                self.report(lost);
                return;
            }
        };
        let at = At::Fd(fd.as_fd());
        for w in apply(at, dest, node, self.apply_options(), &self.names, None) {
            self.warn(&w.path, w.message);
        }
        self.progress.entry_done(dest, NodeKind::Dir);
    }

    /// Reads a restored file back and checks every chunk against its id.
    fn verify(&self, dirs: &Dirs, cache: &mut DirCache, item: &Item) -> bool {
        use std::io::Read;
        let key = self.reader.key();
        let result = (|| -> std::io::Result<bool> {
            let dir = match dirs.handle(cache, item.parent) {
                Ok(fd) => fd,
                Err(_) => return Err(std::io::Error::other("its directory was replaced")),
            };
            let mut f = open_to_read(dir, OsStr::from_bytes(&item.node.name))?;
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

/// Opens file `name` of `dir` for reading, not through a symlink, and
/// without moving its access time (just restored) where the kernel allows.
fn open_to_read(dir: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(rustix::io::Errno::PERM) => rustix::fs::openat(dir, name, flags, Mode::empty())?,
        other => other?,
    };
    Ok(File::from(fd))
}
