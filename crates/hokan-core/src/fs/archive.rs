//! Backing up directory trees: a parallel walk that turns each directory
//! into a tree blob and each file into a chunk list.
//!
//! Directories are walked in parallel (rayon), entries of one directory in
//! parallel, and large files are chunked in parallel inside the
//! [`BlobWriter`]. A parent snapshot lets unchanged files (same size, mtime,
//! ctime and inode, with every chunk still stored) skip reading entirely.
//! Files that cannot be read are reported and skipped; files that change
//! while read are stored as read and reported.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use rayon::prelude::*;

use super::exclude::Excludes;
use super::meta::{NameCache, Warning, WarningKind, kind_of, node_from};
use super::prefetch::Prefetch;
use crate::error::{Error, Result};
use crate::id::{BlobType, TreeId};
use crate::pipeline::{BlobReader, BlobWriter, ChunkRef};
use crate::tree::{Node, NodeKind, Tree};

/// Receives progress from a backup or restore. Called from many threads.
pub trait Progress: Sync {
    /// How much the operation will handle in all, once known (restores
    /// know it after planning).
    fn totals(&self, _entries: u64, _bytes: u64) {}
    /// Bytes of file content processed (read, or skipped as unchanged).
    fn bytes(&self, _n: u64) {}
    /// One entry (file, directory, link...) finished.
    fn entry_done(&self, _path: &Path, _kind: NodeKind) {}
    /// A problem that did not stop the operation.
    fn warning(&self, _w: &Warning) {}
}

/// Problems an operation reports and goes on after: shown by the progress
/// display as they happen, and kept for the result.
pub(crate) struct Warnings {
    list: Mutex<Vec<Warning>>,
}

impl Warnings {
    pub(crate) fn new() -> Self {
        Warnings {
            list: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn warn(&self, progress: &dyn Progress, path: &Path, message: impl Into<String>) {
        self.warn_as(progress, path, WarningKind::Other, message);
    }

    /// [`warn`](Self::warn) of a kind a caller may act on.
    pub(crate) fn warn_as(
        &self,
        progress: &dyn Progress,
        path: &Path,
        kind: WarningKind,
        message: impl Into<String>,
    ) {
        let w = Warning {
            path: path.to_path_buf(),
            message: message.into(),
            kind,
        };
        progress.warning(&w);
        self.list.lock().expect("warnings").push(w);
    }

    /// Every warning so far, leaving none.
    pub(crate) fn take(&self) -> Vec<Warning> {
        std::mem::take(&mut *self.list.lock().expect("warnings"))
    }
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Figures about one backup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files in the parent snapshot that changed.
    pub files_changed: u64,
    /// Files unchanged since the parent snapshot (not read).
    pub files_unmodified: u64,
    /// Directories.
    pub dirs: u64,
    /// Entries other than directories.
    pub files: u64,
    /// Total size of the files.
    pub bytes: u64,
    /// Bytes actually read.
    pub bytes_read: u64,
    /// Problems reported (unreadable, vanished or changing files).
    pub warnings: u64,
}

/// The result of a backup's walk.
#[derive(Clone, Debug)]
pub struct Archived {
    /// The root tree: the given paths under their absolute parents.
    pub tree: TreeId,
    /// The absolute paths backed up.
    pub paths: Vec<PathBuf>,
    /// Figures.
    pub summary: ArchiveSummary,
    /// Every problem with the files backed up, in no particular order.
    pub warnings: Vec<Warning>,
    /// Trees of the parent snapshot that could not be read. Every file
    /// below them was read again, so the new snapshot is complete: this is
    /// damage in the repository, not a file left out.
    pub parent_unreadable: Vec<Warning>,
}

/// Files up to this size are read whole and chunked from memory.
const SMALL_FILE: u64 = 8 << 20;

thread_local! {
    static READ_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

#[derive(Default)]
pub(super) struct Counters {
    /// Bytes of files the walk has dealt with (read, reused or skipped):
    /// the prefetcher stays a bounded distance ahead of it.
    pub(super) bytes_seen: AtomicU64,
    pub(super) files_new: AtomicU64,
    pub(super) files_changed: AtomicU64,
    pub(super) files_unmodified: AtomicU64,
    dirs: AtomicU64,
    files: AtomicU64,
    bytes: AtomicU64,
    pub(super) bytes_read: AtomicU64,
}

/// Turns paths into trees and chunks; see the module documentation.
pub struct Archiver<'a> {
    pub(super) writer: &'a BlobWriter<'a>,
    pub(super) parents: Option<&'a BlobReader<'a>>,
    pub(super) excludes: &'a Excludes,
    pub(super) progress: &'a dyn Progress,
    names: NameCache,
    hardlinks: Mutex<HashMap<(u64, u64), Vec<ChunkRef>>>,
    warnings: Warnings,
    parent_unreadable: Warnings,
    pub(super) counters: Counters,
    read_special: bool,
    pub(super) ignore_inode: bool,
}

/// The paths to back up, arranged by their components.
#[derive(Default, Debug)]
struct Trie {
    children: BTreeMap<Vec<u8>, Trie>,
    /// Back up this path whole.
    target: bool,
}

/// An absolute, lexically normalised path (no `.`, no `..`, no symlinks
/// resolved), as restic records backup paths.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| Error::io_path("resolving", path, e))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

impl<'a> Archiver<'a> {
    /// An archiver writing through `writer`; `parents` reads the parent
    /// snapshot's trees.
    pub fn new(
        writer: &'a BlobWriter<'a>,
        parents: Option<&'a BlobReader<'a>>,
        excludes: &'a Excludes,
        progress: &'a dyn Progress,
    ) -> Self {
        Archiver {
            writer,
            parents,
            excludes,
            progress,
            names: NameCache::default(),
            hardlinks: Mutex::new(HashMap::new()),
            warnings: Warnings::new(),
            parent_unreadable: Warnings::new(),
            counters: Counters::default(),
            read_special: false,
            ignore_inode: false,
        }
    }

    /// Reads block devices as their content (`--read-special`) instead of
    /// storing only the device nodes.
    pub fn read_special(mut self, on: bool) -> Self {
        self.read_special = on;
        self
    }

    /// Takes a file as unchanged when its size and modification time are
    /// the parent's, whatever its inode and change time (restic's
    /// `--ignore-inode`): for data that is a fresh copy at each backup,
    /// such as a claim made from a CSI snapshot, where every file is a new
    /// inode with a new change time while its content is the same.
    pub fn ignore_inode(mut self, on: bool) -> Self {
        self.ignore_inode = on;
        self
    }

    /// Backs up `paths` (files or directories); `parent` is the root tree
    /// of the snapshot to compare with. Paths that do not exist are an
    /// error before anything is stored.
    pub fn archive(&self, paths: &[PathBuf], parent: Option<&TreeId>) -> Result<Archived> {
        if paths.is_empty() {
            return Err(Error::invalid("backup", "no paths given"));
        }
        let mut abs = Vec::new();
        for p in paths {
            let a = absolute(p)?;
            a.symlink_metadata()
                .map_err(|e| Error::io_path("cannot back up", p, e))?;
            abs.push(a);
        }
        abs.sort();
        abs.dedup();
        // A path inside another one given is already covered.
        let mut targets: Vec<PathBuf> = Vec::new();
        for p in abs {
            if !targets.iter().any(|t| p.starts_with(t)) {
                targets.push(p);
            }
        }
        let mut trie = Trie::default();
        for t in &targets {
            let mut node = &mut trie;
            for c in t.components().skip(1) {
                node = node
                    .children
                    .entry(c.as_os_str().as_bytes().to_vec())
                    .or_default();
            }
            node.target = true;
        }
        let parent_tree = parent.and_then(|id| self.load_tree(Path::new("/"), id));
        let done = AtomicBool::new(false);
        let tree = std::thread::scope(|s| {
            s.spawn(|| {
                Prefetch {
                    archiver: self,
                    done: &done,
                    ahead: 0,
                }
                .run(&targets, parent_tree.as_ref())
            });
            // However the walk ends (an error, a panic), the prefetcher
            // must stop, or the scope would wait for it forever.
            let _stop = SetOnDrop(&done);
            if trie.target {
                // Backing up `/` itself.
                self.archive_dir(
                    Path::new("/"),
                    parent_tree.as_ref(),
                    root_device(Path::new("/")),
                )
            } else {
                self.archive_trie(Path::new("/"), &trie, parent_tree.as_ref())
            }
        })?;
        Ok(self.finished(tree, targets))
    }

    /// Backs up the content of one directory as the snapshot's root: the
    /// tree holds `dir`'s entries, not the path leading to it. For sources
    /// whose data moves between paths while staying the same (a pod volume
    /// mounted under a new pod UID after rescheduling): the parent tree
    /// still matches entry by entry, so unchanged files are not read again.
    pub fn archive_root(&self, dir: &Path, parent: Option<&TreeId>) -> Result<Archived> {
        let dir = absolute(dir)?;
        let md = dir
            .symlink_metadata()
            .map_err(|e| Error::io_path("cannot back up", &dir, e))?;
        if !md.is_dir() {
            return Err(Error::invalid(
                "backup",
                format!("{} is not a directory", dir.display()),
            ));
        }
        let parent_tree = parent.and_then(|id| self.load_tree(&dir, id));
        let done = AtomicBool::new(false);
        let device = root_device(&dir);
        let tree = std::thread::scope(|s| {
            s.spawn(|| {
                Prefetch {
                    archiver: self,
                    done: &done,
                    ahead: 0,
                }
                .run_root(&dir, parent_tree.as_ref(), device)
            });
            let _stop = SetOnDrop(&done);
            self.archive_dir(&dir, parent_tree.as_ref(), device)
        })?;
        Ok(self.finished(tree, vec![dir]))
    }

    fn finished(&self, tree: TreeId, paths: Vec<PathBuf>) -> Archived {
        let c = &self.counters;
        let warnings = self.warnings.take();
        Archived {
            tree,
            paths,
            summary: ArchiveSummary {
                files_new: c.files_new.load(Relaxed),
                files_changed: c.files_changed.load(Relaxed),
                files_unmodified: c.files_unmodified.load(Relaxed),
                dirs: c.dirs.load(Relaxed),
                files: c.files.load(Relaxed),
                bytes: c.bytes.load(Relaxed),
                bytes_read: c.bytes_read.load(Relaxed),
                warnings: warnings.len() as u64,
            },
            warnings,
            parent_unreadable: self.parent_unreadable.take(),
        }
    }

    /// The chunks a file or device was stored as; `None` (reported) when
    /// reading it failed. A read error is this entry's problem; anything
    /// else (storage) stops the backup.
    pub(super) fn read_or_skip(
        &self,
        path: &Path,
        stored: Result<Vec<ChunkRef>>,
    ) -> Result<Option<Vec<ChunkRef>>> {
        match stored {
            Ok(c) => Ok(Some(c)),
            Err(Error::Io { source, .. }) => {
                self.warn(path, format!("read failed, skipped: {source}"));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn warn(&self, path: &Path, message: impl Into<String>) {
        self.warnings.warn(self.progress, path, message);
    }

    fn load_tree(&self, path: &Path, id: &TreeId) -> Option<Tree> {
        let reader = self.parents?;
        let loaded = reader
            .read_blob(BlobType::Tree, &id.0)
            .and_then(|bytes| Tree::decode(&bytes, id));
        match loaded {
            Ok(t) => Some(t),
            Err(e) => {
                self.parent_unreadable.warn(
                    self.progress,
                    path,
                    format!(
                        "the parent snapshot's tree here cannot be read ({e}); every file below \
                         was read again, so the new snapshot is complete"
                    ),
                );
                None
            }
        }
    }

    fn parent_subtree(&self, path: &Path, parent: Option<&Node>) -> Option<Tree> {
        match parent {
            Some(Node {
                kind: NodeKind::Dir,
                subtree: Some(id),
                ..
            }) => self.load_tree(path, id),
            _ => None,
        }
    }

    /// A directory on the way to the paths given: only the branches that
    /// lead to them are included, with the directory's own metadata.
    fn archive_trie(&self, dir: &Path, trie: &Trie, parent: Option<&Tree>) -> Result<TreeId> {
        let nodes = trie
            .children
            .par_iter()
            .map(|(name, child)| -> Result<Option<Node>> {
                let path = dir.join(std::ffi::OsStr::from_bytes(name));
                let parent_node = parent.and_then(|t| t.get(name));
                let md = match path.symlink_metadata() {
                    Ok(md) => md,
                    Err(e) => {
                        self.warn(&path, unreadable(&e));
                        return Ok(None);
                    }
                };
                if child.target {
                    // A device named through a link (/dev/vg0/db ->
                    // ../dm-3) is the device it names.
                    let md = match std::fs::metadata(&path) {
                        Ok(dev)
                            if self.read_special
                                && md.is_symlink()
                                && dev.file_type().is_block_device() =>
                        {
                            dev
                        }
                        _ => md,
                    };
                    return self.archive_entry(&path, name, md, parent_node, root_device(&path));
                }
                // A symlink on the way to a path given (/var/run -> /run)
                // is followed: the path named what lies behind it.
                let md = if md.file_type().is_symlink() {
                    std::fs::metadata(&path).unwrap_or(md)
                } else {
                    md
                };
                if !md.is_dir() {
                    self.warn(&path, "is no longer a directory; skipped");
                    return Ok(None);
                }
                let mut warnings = Vec::new();
                let mut node = node_from(&path, name, &md, &self.names, None, &mut warnings)
                    .map_err(|e| Error::io_path("reading", &path, e))?;
                self.report(warnings);
                let sub = self.parent_subtree(&path, parent_node);
                node.subtree = Some(self.archive_trie(&path, child, sub.as_ref())?);
                Ok(Some(node))
            })
            .collect::<Result<Vec<_>>>()?;
        self.store_tree(nodes.into_iter().flatten().collect())
    }

    fn report(&self, warnings: Vec<Warning>) {
        for w in warnings {
            self.warn(&w.path, w.message);
        }
    }

    fn store_tree(&self, nodes: Vec<Node>) -> Result<TreeId> {
        self.writer.write_tree(&Tree::new(nodes)?)
    }

    /// All of a directory, recursively.
    fn archive_dir(&self, dir: &Path, parent: Option<&Tree>, device: u64) -> Result<TreeId> {
        let mut names: Vec<Vec<u8>> = match super::noatime::names(dir) {
            Ok(names) => names
                .into_iter()
                .map(std::os::unix::ffi::OsStringExt::into_vec)
                .collect(),
            Err(e) => {
                self.warn(dir, format!("cannot list directory, stored empty: {e}"));
                Vec::new()
            }
        };
        names.sort();
        let nodes = names
            .par_iter()
            .map(|name| -> Result<Option<Node>> {
                let path = dir.join(std::ffi::OsStr::from_bytes(name));
                if self.excludes.excludes_path(&path) {
                    return Ok(None);
                }
                let md = match path.symlink_metadata() {
                    Ok(md) => md,
                    Err(e) => {
                        self.warn(&path, unreadable(&e));
                        return Ok(None);
                    }
                };
                if self.excludes.one_file_system && md.dev() != device {
                    return Ok(None);
                }
                self.archive_entry(&path, name, md, parent.and_then(|t| t.get(name)), device)
            })
            .collect::<Result<Vec<_>>>()?;
        self.store_tree(nodes.into_iter().flatten().collect())
    }

    /// One entry of any kind, with its metadata already read.
    fn archive_entry(
        &self,
        path: &Path,
        name: &[u8],
        md: Metadata,
        parent: Option<&Node>,
        device: u64,
    ) -> Result<Option<Node>> {
        let mut warnings = Vec::new();
        let same = parent.filter(|p| {
            p.kind == kind_of(&md)
                && p.inode == md.ino()
                && (p.ctime.secs, p.ctime.nanos) == (md.ctime(), md.ctime_nsec() as u32)
        });
        let node = node_from(path, name, &md, &self.names, same, &mut warnings);
        self.report(warnings);
        let mut node = match node {
            Ok(n) => n,
            Err(e) => {
                self.warn(path, format!("cannot read metadata, skipped: {e}"));
                return Ok(None);
            }
        };
        match node.kind {
            NodeKind::Dir => {
                if self.excludes.excludes_dir(path) {
                    return Ok(None);
                }
                let sub = self.parent_subtree(path, parent);
                node.subtree = Some(self.archive_dir(path, sub.as_ref(), device)?);
                self.counters.dirs.fetch_add(1, Relaxed);
            }
            NodeKind::File => {
                let content = self.file_content(path, &md, parent);
                self.counters.bytes_seen.fetch_add(md.size(), Relaxed);
                match content? {
                    Some((content, size)) => {
                        node.content = content;
                        node.size = size;
                    }
                    None => return Ok(None),
                }
                self.counters.files.fetch_add(1, Relaxed);
                self.counters.bytes.fetch_add(node.size, Relaxed);
            }
            NodeKind::BlockDevice if self.read_special => {
                let Some((content, size)) = self.device_content(path, parent)? else {
                    return Ok(None);
                };
                node.content = content;
                node.size = size;
                self.counters.files.fetch_add(1, Relaxed);
                self.counters.bytes.fetch_add(size, Relaxed);
            }
            _ => {
                self.counters.files.fetch_add(1, Relaxed);
            }
        }
        self.progress.entry_done(path, node.kind);
        Ok(Some(node))
    }

    /// A file's chunks and size: reused from the parent snapshot when the
    /// file is unchanged, else read. `None` when it could not be read.
    fn file_content(
        &self,
        path: &Path,
        md: &Metadata,
        parent: Option<&Node>,
    ) -> Result<Option<(Vec<ChunkRef>, u64)>> {
        let c = &self.counters;
        if let Some(p) = parent.filter(|p| unchanged(p, md, self.ignore_inode))
            && p.content.iter().all(|ch| self.writer.contains(&ch.id.0))
        {
            c.files_unmodified.fetch_add(1, Relaxed);
            self.progress.bytes(p.size);
            return Ok(Some((p.content.clone(), p.size)));
        }
        let link_key = (md.dev(), md.ino());
        if md.nlink() > 1
            && let Some(content) = self.hardlinks.lock().expect("hardlinks").get(&link_key)
        {
            let size = content.iter().map(|c| c.len as u64).sum();
            self.progress.bytes(size);
            return Ok(Some((content.clone(), size)));
        }
        match parent {
            Some(p) if p.kind == NodeKind::File => c.files_changed.fetch_add(1, Relaxed),
            _ => c.files_new.fetch_add(1, Relaxed),
        };
        let Some(content) = self.read_file(path, md)? else {
            return Ok(None);
        };
        let size: u64 = content.iter().map(|c| c.len as u64).sum();
        c.bytes_read.fetch_add(size, Relaxed);
        if md.nlink() > 1 {
            self.hardlinks
                .lock()
                .expect("hardlinks")
                .insert(link_key, content.clone());
        }
        Ok(Some((content, size)))
    }

    fn read_file(&self, path: &Path, md: &Metadata) -> Result<Option<Vec<ChunkRef>>> {
        let file = super::noatime::open(path);
        let mut file = match file {
            Ok(f) => f,
            Err(e) => {
                self.warn(path, format!("cannot open, skipped: {e}"));
                return Ok(None);
            }
        };
        let stored = if md.size() <= SMALL_FILE {
            // One buffer per thread, reused: a fresh allocation per file
            // costs a page fault per 4 KiB read.
            READ_BUFFER.with(|cell| {
                let mut buf = cell.take();
                buf.clear();
                let r = match file.read_to_end(&mut buf) {
                    Ok(n) => {
                        self.progress.bytes(n as u64);
                        self.writer.write_slice(&buf)
                    }
                    Err(e) => Err(Error::io("reading the input stream", e)),
                };
                if buf.capacity() <= 2 * SMALL_FILE as usize {
                    cell.set(buf);
                }
                r
            })
        } else if md.blocks().saturating_mul(512) < md.size()
            && let Some(extents) = data_extents(&file, md.size())
        {
            // A sparse file: read only its data, and store its holes as
            // holes (10 GiB of nothing costs nothing to read).
            self.read_extents(&file, md.size(), &extents)
        } else {
            self.writer.write_stream(Counting {
                inner: &mut file,
                progress: self.progress,
            })
        };
        let Some(content) = self.read_or_skip(path, stored)? else {
            return Ok(None);
        };
        let read: u64 = content.iter().map(|c| c.len as u64).sum();
        if let Ok(after) = file.metadata()
            && (after.size() != md.size()
                || after.mtime() != md.mtime()
                || after.mtime_nsec() != md.mtime_nsec()
                || read != md.size())
        {
            self.warn(
                path,
                format!(
                    "changed while being read ({} bytes before, {} read); stored as read, back it up again for a consistent copy",
                    md.size(),
                    read
                ),
            );
        }
        Ok(Some(content))
    }
}

/// Sets a flag when dropped.
struct SetOnDrop<'f>(&'f AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

/// Reads one extent of a file with positioned reads (a sparse file's data
/// between two holes).
struct Extent<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

impl Read for Extent<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The data extents of a file that has holes, from `SEEK_DATA` and
/// `SEEK_HOLE`; `None` where the file system cannot tell (then the file is
/// read whole).
fn data_extents(file: &File, size: u64) -> Option<Vec<(u64, u64)>> {
    use rustix::fs::{SeekFrom, seek};
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match seek(file, SeekFrom::Data(pos)) {
            Ok(s) => s,
            // ENXIO: no data after `pos`, the rest is a hole.
            Err(rustix::io::Errno::NXIO) => break,
            Err(_) => return None,
        };
        if start >= size {
            break;
        }
        let end = seek(file, SeekFrom::Hole(start)).ok()?.min(size);
        out.push((start, end));
        pos = end;
    }
    Some(out)
}

impl Archiver<'_> {
    fn read_extents(
        &self,
        file: &File,
        size: u64,
        extents: &[(u64, u64)],
    ) -> Result<Vec<ChunkRef>> {
        let mut content = Vec::new();
        let mut pos = 0;
        for &(start, end) in extents.iter().chain(std::iter::once(&(size, size))) {
            if start > pos {
                content.extend(self.writer.write_zeros(start - pos)?);
                self.progress.bytes(start - pos);
            }
            if end > start {
                content.extend(self.writer.write_stream(Counting {
                    inner: Extent {
                        file,
                        pos: start,
                        end,
                    },
                    progress: self.progress,
                })?);
            }
            pos = end;
        }
        Ok(content)
    }
}

/// Counts bytes read for the progress display.
pub(super) struct Counting<'a, R> {
    pub(super) inner: R,
    pub(super) progress: &'a dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.bytes(n as u64);
        Ok(n)
    }
}

/// What to say of an entry whose metadata could not be read: it may have
/// vanished since the directory was listed, or be unreachable for another
/// reason (a name too long, no permission), which must not be mistaken for
/// a deletion.
fn unreadable(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!("vanished before it was read: {e}")
    } else {
        format!("cannot read its metadata, skipped: {e}")
    }
}

/// Whether a file looks unchanged since the parent snapshot recorded it:
/// size, modification time, and unless `ignore_inode`, change time and
/// inode.
pub(super) fn unchanged(parent: &Node, md: &Metadata, ignore_inode: bool) -> bool {
    parent.kind == NodeKind::File
        && parent.size == md.size()
        && parent.mtime.secs == md.mtime()
        && parent.mtime.nanos == md.mtime_nsec() as u32
        && (ignore_inode
            || parent.ctime.secs == md.ctime()
                && parent.ctime.nanos == md.ctime_nsec() as u32
                && parent.inode == md.ino())
}

pub(super) fn root_device(path: &Path) -> u64 {
    path.symlink_metadata().map(|m| m.dev()).unwrap_or(0)
}
