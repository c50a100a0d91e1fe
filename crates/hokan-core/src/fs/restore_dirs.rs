//! The restore's directories as open handles: each directory it makes is
//! recorded by device and inode, and reached again only from the target's
//! handle without following symlinks ([`Beneath::open_dir`]) and checked
//! to be the same directory. One swapped for a symlink (or any other
//! file) while the restore runs is found lost, reported once, and nothing
//! more is written below it.
//!
//! Threads restore stretches of the tree in tree order, so consecutive
//! entries share a directory: each thread keeps its last few directories
//! open ([`DirCache`]), a handful of descriptors, never one per directory.
//!
//! Directories are numbered in walk order as the restore meets them
//! ([`Dirs::push`]): the restore works through the tree window by window,
//! and only directories (not files) are kept from one window to the next.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use super::beneath::Beneath;
use super::restore_walk::Item;
use crate::error::{Error, Result};
use crate::tree::Node;

/// The parent of entries directly in the target.
pub(super) const ROOT: usize = usize::MAX;

/// Directories a [`DirCache`] keeps open: enough for a stretch's current
/// directory and the ancestors it returns to.
const CACHED: usize = 4;

/// Device and inode: which directory a handle is.
type Key = (u64, u64);

fn key_of(fd: BorrowedFd<'_>) -> io::Result<Key> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// A thread's open directories, most recently used last.
#[derive(Default)]
pub(super) struct DirCache {
    open: Vec<(usize, OwnedFd)>,
}

impl DirCache {
    fn put(&mut self, dir: usize, fd: OwnedFd) {
        if self.open.len() >= CACHED {
            self.open.remove(0);
        }
        self.open.push((dir, fd));
    }
}

/// Why a directory handle is not given.
pub(super) enum Lost {
    /// This directory (its path, for the message) was replaced or removed;
    /// said once.
    Report(PathBuf, io::Error),
    /// Said before.
    Known,
}

/// Every directory of one restore; see the module documentation.
pub(super) struct Dirs {
    base: Beneath,
    /// For each directory: its path below the target, and its parent's
    /// index.
    rel: Vec<PathBuf>,
    parent: Vec<usize>,
    /// The directories made or found, by index, and whether this restore
    /// made them.
    known: Vec<OnceLock<(Key, bool)>>,
    /// Directories found replaced (reported) or below one (not reported).
    lost: Mutex<(HashSet<usize>, HashSet<usize>)>,
}

impl Dirs {
    /// No directories yet, below `base`.
    pub(super) fn new(base: Beneath) -> Self {
        Dirs {
            base,
            rel: Vec::new(),
            parent: Vec::new(),
            known: Vec::new(),
            lost: Mutex::default(),
        }
    }

    /// Adds the directory at `rel` below the target, inside `parent` (an
    /// index, or [`ROOT`]); returns its index.
    pub(super) fn push(&mut self, rel: PathBuf, parent: usize) -> usize {
        self.rel.push(rel);
        self.parent.push(parent);
        self.known.push(OnceLock::new());
        self.rel.len() - 1
    }

    /// The parent of directory `dir`: an index, or [`ROOT`].
    pub(super) fn parent(&self, dir: usize) -> usize {
        self.parent[dir]
    }

    /// Records directory `dir` (an index), open as `fd`, as the one
    /// this restore `made` or found, and keeps it in `cache`.
    pub(super) fn record(
        &self,
        cache: &mut DirCache,
        dir: usize,
        fd: OwnedFd,
        made: bool,
    ) -> io::Result<()> {
        let _ = self.known[dir].set((key_of(fd.as_fd())?, made));
        cache.put(dir, fd);
        Ok(())
    }

    /// Whether this restore made directory `dir` (so nothing was in it
    /// before, and entries need no existence check).
    pub(super) fn made(&self, dir: usize) -> bool {
        dir != ROOT && self.known[dir].get().is_some_and(|(_, made)| *made)
    }

    /// Opens directory `dir` again from the target, checking it is the
    /// one recorded.
    fn reopen(&self, dir: usize) -> io::Result<OwnedFd> {
        let fd = self.base.open_dir(&self.rel[dir])?;
        match self.known[dir].get() {
            Some((k, _)) if *k == key_of(fd.as_fd())? => Ok(fd),
            Some(_) => Err(io::Error::other("another directory took its place")),
            None => Err(io::Error::other("it could not be made")),
        }
    }

    /// Directory `dir` (an index, or [`ROOT`]), open: from `cache`, or
    /// opened again and checked.
    pub(super) fn handle<'c>(
        &'c self,
        cache: &'c mut DirCache,
        dir: usize,
    ) -> Result<BorrowedFd<'c>, Lost> {
        if dir == ROOT {
            return Ok(self.base.fd());
        }
        if let Some(at) = cache.open.iter().position(|(d, _)| *d == dir) {
            let hit = cache.open.remove(at);
            cache.open.push(hit);
        } else {
            let fd = self.owned(dir)?;
            cache.put(dir, fd);
        }
        Ok(cache.open.last().expect("just put").1.as_fd())
    }

    /// Directory `dir` opened on its own, outside any cache.
    pub(super) fn owned(&self, dir: usize) -> Result<OwnedFd, Lost> {
        if dir == ROOT {
            return self
                .base
                .fd()
                .try_clone_to_owned()
                .map_err(|e| Lost::Report(self.base.path().to_path_buf(), e));
        }
        if self.lost.lock().expect("lost").1.contains(&dir) {
            return Err(Lost::Known);
        }
        match self.reopen(dir) {
            Ok(fd) => Ok(fd),
            Err(e) => Err(self.lose(dir, e)),
        }
    }

    /// Marks `dir` lost and finds what to report: the topmost directory
    /// on its way from the target that is no longer the one recorded (a
    /// parent swapped for a symlink loses everything below it).
    fn lose(&self, dir: usize, e: io::Error) -> Lost {
        let mut chain = vec![dir];
        while let Some(&p) = chain.last().map(|d| &self.parent[*d]) {
            if p == ROOT {
                break;
            }
            chain.push(p);
        }
        let (culprit, why) = chain
            .iter()
            .rev()
            .find_map(|&d| self.reopen(d).err().map(|e| (d, e)))
            .unwrap_or((dir, e));
        let mut lost = self.lost.lock().expect("lost");
        lost.1.insert(dir);
        lost.1.insert(culprit);
        match lost.0.insert(culprit) {
            true => Lost::Report(self.base.path().join(&self.rel[culprit]), why),
            false => Lost::Known,
        }
    }
}

/// The first file of a set of hard links, written; the others are linked
/// to it, in its window or a later one.
pub(super) struct Leader {
    /// Its directory's index.
    pub(super) parent: usize,
    pub(super) name: Vec<u8>,
    pub(super) dest: PathBuf,
}

/// A restore under way: what is kept from window to window, the window
/// being filled, and the counts so far.
pub(super) struct Run<'t> {
    pub(super) target: &'t Path,
    /// Made (with the target) when the walk hands on its first entry: a
    /// root tree that cannot be read leaves no target behind.
    pub(super) dirs: Option<Dirs>,
    /// Each directory's path and node, by index, for its metadata at the end.
    pub(super) dir_nodes: Vec<(PathBuf, Node)>,
    /// Directories met since the last window was restored.
    pub(super) new_dirs: Vec<usize>,
    /// Entries other than directories, in walk order.
    pub(super) window: Vec<Item>,
    /// The bytes of the window's chunk lists.
    pub(super) chunk_bytes: usize,
    pub(super) leaders: HashMap<(u64, u64), Leader>,
    /// Entries written or linked.
    pub(super) files: u64,
    pub(super) verified: u64,
    pub(super) verify_failures: u64,
}

impl Run<'_> {
    /// The directories, creating the target at the first call.
    pub(super) fn dirs(&mut self) -> Result<&mut Dirs> {
        if self.dirs.is_none() {
            let base = Beneath::create(self.target, 0o777)
                .map_err(|e| Error::io_path("creating the target", self.target, e))?;
            self.dirs = Some(Dirs::new(base));
        }
        Ok(self.dirs.as_mut().expect("just made"))
    }
}
