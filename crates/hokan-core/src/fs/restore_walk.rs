//! The restore's walk through the snapshot's trees: depth first, applying
//! include and exclude patterns, handing each selected entry on as it is
//! met rather than collecting a plan, so what a restore holds does not grow
//! with the number of files.
//!
//! A directory with nothing selected below it is left out. Whether anything
//! is selected is known only once its tree has been walked, so a directory
//! waits on a stack until the first entry below it is handed on (or its
//! tree, or one below, proves unreadable), and is handed on just before
//! that entry: the order is walk order, parents before children.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use globset::GlobSet;

use super::device::device_with_data;
use super::restore::{Restorer, is_fatal};
use super::restore_dirs::ROOT;
use crate::error::{Error, Result};
use crate::id::TreeId;
use crate::pipeline::BlobReader;
use crate::tree::{Node, NodeKind};

/// An entry other than a directory, to restore.
pub(super) struct Item {
    /// Where it goes (for messages: it is reached from its directory's
    /// handle, by name).
    pub(super) dest: PathBuf,
    /// Its directory: an index given by [`Walked::Dir`]s in the order they
    /// came, or [`ROOT`].
    pub(super) parent: usize,
    pub(super) node: Node,
}

/// What the walk hands on, in walk order.
pub(super) enum Walked {
    /// A directory; directories are numbered 0, 1, ... in this order.
    Dir {
        dest: PathBuf,
        /// Its directory's number, or [`ROOT`].
        parent: usize,
        node: Node,
    },
    Entry(Item),
    /// A directory whose tree could not be read (its path in the
    /// snapshot); the directory itself was handed on before.
    Unreadable(PathBuf, Error),
}

/// A directory met but not yet handed on.
struct Pending {
    dest: PathBuf,
    /// Taken when handed on.
    node: Option<Node>,
    /// Its number, once handed on.
    index: Option<usize>,
}

/// One walk; see the module documentation.
pub(super) struct Walk<'w> {
    pub(super) reader: &'w BlobReader<'w>,
    pub(super) include: Option<&'w GlobSet>,
    pub(super) exclude: Option<&'w GlobSet>,
    pub(super) sink: &'w mut dyn FnMut(Walked) -> Result<()>,
}

struct State<'w, 's> {
    walk: &'s mut Walk<'w>,
    pending: Vec<Pending>,
    dirs: usize,
}

impl Walk<'_> {
    /// Walks tree `root`, whose path in the snapshot is `snap_root` (which
    /// patterns match against) and whose entries go into `dest_root`. A
    /// tree that cannot be read is handed on as [`Walked::Unreadable`]
    /// unless it is the root or the failure would stop every other read too;
    /// then, as for any error the sink returns, the walk ends with it.
    pub(super) fn run(&mut self, root: &TreeId, snap_root: &Path, dest_root: &Path) -> Result<()> {
        let mut state = State {
            walk: self,
            pending: Vec::new(),
            dirs: 0,
        };
        state.tree(root, snap_root, dest_root, false)
    }
}

impl State<'_, '_> {
    /// Hands on the directories waiting on the stack; returns the number
    /// of the innermost (the parent of what comes next), or [`ROOT`].
    fn flush(&mut self) -> Result<usize> {
        let mut parent = ROOT;
        for p in self.pending.iter_mut() {
            if let Some(index) = p.index {
                parent = index;
                continue;
            }
            let node = p.node.take().expect("a directory is handed on once");
            (self.walk.sink)(Walked::Dir {
                dest: p.dest.clone(),
                parent,
                node,
            })?;
            p.index = Some(self.dirs);
            parent = self.dirs;
            self.dirs += 1;
        }
        Ok(parent)
    }

    fn tree(
        &mut self,
        tree_id: &TreeId,
        snap_dir: &Path,
        dest_dir: &Path,
        included: bool,
    ) -> Result<()> {
        let tree = match crate::browse::read_tree(self.walk.reader, tree_id) {
            Ok(t) => t,
            // The root is the restore: nothing to go on with.
            Err(e) if is_fatal(&e) || self.pending.is_empty() => return Err(e),
            Err(e) => {
                // An unreadable directory is kept, and so its parents.
                self.flush()?;
                return (self.walk.sink)(Walked::Unreadable(snap_dir.to_path_buf(), e));
            }
        };
        for node in tree.nodes {
            let name = OsStr::from_bytes(&node.name);
            let snap = snap_dir.join(name);
            if self.walk.exclude.is_some_and(|g| g.is_match(&snap)) {
                continue;
            }
            let inside = included || self.walk.include.is_none_or(|g| g.is_match(&snap));
            let dest = dest_dir.join(name);
            if node.kind == NodeKind::Dir {
                let sub = node.subtree;
                self.pending.push(Pending {
                    dest: dest.clone(),
                    node: Some(node),
                    index: None,
                });
                // Included itself: kept even if empty.
                if inside {
                    self.flush()?;
                }
                if let Some(sub) = sub {
                    self.tree(&sub, &snap, &dest, inside)?;
                }
                self.pending.pop();
            } else if inside {
                let parent = self.flush()?;
                (self.walk.sink)(Walked::Entry(Item { dest, parent, node }))?;
            }
        }
        Ok(())
    }
}

/// What else walks a restore's selection: the totals for progress and the
/// files a restore onto a device would write.
impl Restorer<'_> {
    /// Walks tree `root` (see [`Walk::run`]), handing what it selects to
    /// `sink`.
    pub(super) fn walk(
        &self,
        root: &TreeId,
        snap_root: &Path,
        dest_root: &Path,
        sink: &mut dyn FnMut(Walked) -> Result<()>,
    ) -> Result<()> {
        let mut walk = Walk {
            reader: self.reader,
            include: self.include.as_ref(),
            exclude: self.exclude.as_ref(),
            sink,
        };
        walk.run(root, snap_root, dest_root)
    }

    /// The bytes and entries a restore of `root` would write, for progress:
    /// counted as the trees are walked, nothing kept.
    pub fn totals(&self, root: &TreeId, snap_root: &Path) -> Result<(u64, u64)> {
        let (mut entries, mut bytes) = (0u64, 0u64);
        let mut count = |node: &Node| {
            entries += 1;
            if node.kind.has_content() {
                bytes += node.size;
            }
        };
        self.walk(root, snap_root, Path::new(""), &mut |w| {
            match &w {
                Walked::Dir { node, .. } => count(node),
                Walked::Entry(item) => count(&item.node),
                Walked::Unreadable(..) => {}
            }
            Ok(())
        })?;
        Ok((entries, bytes))
    }

    /// The files (and block devices read as data) that a restore of
    /// `root` would write: how many, and the first `keep` of them with
    /// their paths in the snapshot. Only those are kept, so asking for one
    /// file of a snapshot that selects millions costs a walk, not memory.
    pub fn selected_data(
        &self,
        root: &TreeId,
        snap_root: &Path,
        keep: usize,
    ) -> Result<(u64, Vec<(PathBuf, Node)>)> {
        let (mut count, mut out, mut unreadable) = (0u64, Vec::new(), Vec::new());
        self.walk(root, snap_root, snap_root, &mut |w| {
            match w {
                Walked::Dir { .. } => {}
                Walked::Entry(item) => {
                    if item.node.kind == NodeKind::File || device_with_data(&item.node) {
                        count += 1;
                        if out.len() < keep {
                            out.push((item.dest, item.node));
                        }
                    }
                }
                Walked::Unreadable(dir, e) => unreadable.push((dir, e)),
            }
            Ok(())
        })?;
        for (dir, e) in unreadable {
            self.warn(&dir, format!("directory not looked into: {e}"));
        }
        Ok((count, out))
    }
}
