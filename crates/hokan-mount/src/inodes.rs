//! Inode numbers: the virtual top is numbered when the mount starts, the
//! entries of snapshots as the kernel first looks them up. A number, once
//! given, names the same entry for the mount's whole life (the kernel and
//! tools such as `cp -a` and `rsync -H` rely on that), and the hard links
//! of one snapshot share one number, so `cp -a` keeps them linked.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hokan_core::{Node, Timestamp, TreeId};
use hokan_repo::SnapshotEntry;

use crate::layout::{Group, Layout};

/// An inode number; 1 is the mount's root.
pub type Ino = u64;

/// What an inode is.
pub enum Kind {
    /// A directory of the virtual top; its entries, sorted by name, are
    /// fixed when the mount starts.
    Virtual {
        /// Name and inode of each entry.
        children: Vec<(Vec<u8>, Ino)>,
        /// Its modification time: the newest snapshot below it.
        time: Timestamp,
    },
    /// A `latest` link of the virtual top.
    Link {
        /// Where it points (a sibling's name).
        target: Vec<u8>,
        /// The time of the snapshot it points to.
        time: Timestamp,
    },
    /// A snapshot's root directory.
    Root {
        /// Its tree.
        tree: TreeId,
        /// When the snapshot was taken.
        time: Timestamp,
    },
    /// An entry of a snapshot.
    Node {
        /// The entry, as its tree lists it.
        node: Arc<Node>,
        /// The inode of the snapshot's root, which hard links are keyed by.
        root: Ino,
    },
}

/// One inode.
pub struct Inode {
    /// The directory holding it (the root is its own parent).
    pub parent: Ino,
    /// What it is.
    pub kind: Kind,
}

impl Inode {
    /// The tree listing this directory's entries, for snapshot directories.
    pub fn tree(&self) -> Option<TreeId> {
        match &self.kind {
            Kind::Root { tree, .. } => Some(*tree),
            Kind::Node { node, .. } => node.subtree,
            _ => None,
        }
    }

    /// The snapshot root that entries below this directory belong to.
    pub fn root_of_children(&self, me: Ino) -> Option<Ino> {
        match &self.kind {
            Kind::Root { .. } => Some(me),
            Kind::Node { root, .. } => Some(*root),
            _ => None,
        }
    }
}

struct Inner {
    /// Inode `n` is at index `n - 1`.
    entries: Vec<Arc<Inode>>,
    /// Snapshot entries already numbered, by directory and name.
    by_name: HashMap<(Ino, Vec<u8>), Ino>,
    /// Hard-linked files already numbered, by snapshot root and the
    /// (device, inode) their links share.
    by_link: HashMap<(Ino, u64, u64), Ino>,
}

/// Every inode of the mount.
pub struct Table {
    inner: RwLock<Inner>,
}

/// Builds the virtual top: entries are pushed parent first, children
/// filled in once numbered.
struct Builder {
    entries: Vec<Inode>,
}

impl Builder {
    fn push(&mut self, parent: Ino, kind: Kind) -> Ino {
        self.entries.push(Inode { parent, kind });
        self.entries.len() as Ino
    }

    fn dir(&mut self, parent: Ino) -> Ino {
        self.push(
            parent,
            Kind::Virtual {
                children: Vec::new(),
                time: Timestamp::default(),
            },
        )
    }

    fn set_children(&mut self, dir: Ino, mut list: Vec<(Vec<u8>, Ino)>, newest: Timestamp) {
        list.sort();
        if let Kind::Virtual { children, time } = &mut self.entries[dir as usize - 1].kind {
            *children = list;
            *time = newest;
        }
    }

    /// A directory of snapshots (each its own root) and its `latest` link.
    fn group(&mut self, parent: Ino, g: &Group, entries: &[SnapshotEntry]) -> (Ino, Timestamp) {
        let dir = self.dir(parent);
        let mut list = Vec::new();
        let mut newest = Timestamp::default();
        for (name, i) in &g.snapshots {
            let s = &entries[*i].snapshot;
            newest = newest.max(s.time);
            let root = self.push(
                dir,
                Kind::Root {
                    tree: s.tree,
                    time: s.time,
                },
            );
            list.push((name.clone().into_bytes(), root));
        }
        if let Some(latest) = &g.latest {
            let link = self.push(
                dir,
                Kind::Link {
                    target: latest.clone().into_bytes(),
                    time: newest,
                },
            );
            list.push((b"latest".to_vec(), link));
        }
        self.set_children(dir, list, newest);
        (dir, newest)
    }

    /// A directory of groups (`hosts/`, `tags/`).
    fn groups<'a>(
        &mut self,
        parent: Ino,
        groups: impl Iterator<Item = (&'a String, &'a Group)>,
        entries: &[SnapshotEntry],
    ) -> (Ino, Timestamp) {
        let dir = self.dir(parent);
        let mut list = Vec::new();
        let mut newest = Timestamp::default();
        for (name, g) in groups {
            let (sub, t) = self.group(dir, g, entries);
            newest = newest.max(t);
            list.push((name.clone().into_bytes(), sub));
        }
        self.set_children(dir, list, newest);
        (dir, newest)
    }
}

impl Table {
    /// The virtual top for `entries`:
    /// `snapshots/`, `ids/`, `hosts/<host>/`, `tags/<tag>/`, with the
    /// `latest` links when `latest_links`.
    pub fn new(entries: &[SnapshotEntry], latest_links: bool) -> Table {
        let mut layout = Layout::new(entries);
        if !latest_links {
            layout.without_latest();
        }
        let mut b = Builder {
            entries: Vec::new(),
        };
        let root = b.dir(1);
        let (snapshots, newest) = b.group(root, &layout.all, entries);
        let ids = b.dir(root);
        let mut list = Vec::new();
        for (name, i) in &layout.ids {
            let s = &entries[*i].snapshot;
            let r = b.push(
                ids,
                Kind::Root {
                    tree: s.tree,
                    time: s.time,
                },
            );
            list.push((name.clone().into_bytes(), r));
        }
        b.set_children(ids, list, newest);
        let (hosts, _) = b.groups(root, layout.hosts.iter(), entries);
        let (tags, _) = b.groups(root, layout.tags.iter(), entries);
        let top = vec![
            (b"hosts".to_vec(), hosts),
            (b"ids".to_vec(), ids),
            (b"snapshots".to_vec(), snapshots),
            (b"tags".to_vec(), tags),
        ];
        b.set_children(root, top, newest);
        Table {
            inner: RwLock::new(Inner {
                entries: b.entries.into_iter().map(Arc::new).collect(),
                by_name: HashMap::new(),
                by_link: HashMap::new(),
            }),
        }
    }

    /// The inode numbered `ino`.
    pub fn get(&self, ino: Ino) -> Option<Arc<Inode>> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let i = usize::try_from(ino).ok()?.checked_sub(1)?;
        inner.entries.get(i).cloned()
    }

    /// The number of `node`, listed in the snapshot directory `parent`
    /// of the snapshot whose root is `root`; numbered now if new.
    pub fn child(&self, parent: Ino, root: Ino, node: &Node) -> Ino {
        let key = (parent, node.name.clone());
        if let Some(&ino) = self
            .inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .get(&key)
        {
            return ino;
        }
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(&ino) = inner.by_name.get(&key) {
            return ino;
        }
        let link = node.hard_link_key().map(|(dev, ino)| (root, dev, ino));
        let ino = match link.and_then(|k| inner.by_link.get(&k).copied()) {
            Some(ino) => ino,
            None => {
                inner.entries.push(Arc::new(Inode {
                    parent,
                    kind: Kind::Node {
                        node: Arc::new(node.clone()),
                        root,
                    },
                }));
                let ino = inner.entries.len() as Ino;
                if let Some(k) = link {
                    inner.by_link.insert(k, ino);
                }
                ino
            }
        };
        inner.by_name.insert(key, ino);
        ino
    }

    /// How many inodes are numbered so far.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }
}
