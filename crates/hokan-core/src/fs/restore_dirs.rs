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

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use super::beneath::Beneath;

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
pub(super) struct Dirs<'a> {
    base: &'a Beneath,
    /// For each item: its path below the target, and its parent's index.
    rel: Vec<&'a Path>,
    parent: Vec<usize>,
    /// The directories made or found, by item index, and whether this
    /// restore made them.
    known: Vec<OnceLock<(Key, bool)>>,
    /// Directories found replaced (reported) or below one (not reported).
    lost: Mutex<(HashSet<usize>, HashSet<usize>)>,
}

impl<'a> Dirs<'a> {
    /// The directories of items whose paths below `base` are `rel` and
    /// whose parents are `parent` (item indices, or [`ROOT`]).
    pub(super) fn new(base: &'a Beneath, rel: Vec<&'a Path>, parent: Vec<usize>) -> Self {
        let known = (0..rel.len()).map(|_| OnceLock::new()).collect();
        Dirs {
            base,
            rel,
            parent,
            known,
            lost: Mutex::default(),
        }
    }

    /// Records directory `dir` (an item index), open as `fd`, as the one
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
        let fd = self.base.open_dir(self.rel[dir])?;
        match self.known[dir].get() {
            Some((k, _)) if *k == key_of(fd.as_fd())? => Ok(fd),
            Some(_) => Err(io::Error::other("another directory took its place")),
            None => Err(io::Error::other("it could not be made")),
        }
    }

    /// Directory `dir` (an item index, or [`ROOT`]), open: from `cache`, or
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
            true => Lost::Report(self.base.path().join(self.rel[culprit]), why),
            false => Lost::Known,
        }
    }
}
