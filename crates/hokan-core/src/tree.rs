//! Trees: the encoded listing of one directory, stored as a tree blob.
//!
//! A tree is its nodes sorted by name, encoded deterministically (postcard,
//! a written, stable wire format), so an unchanged directory encodes to the
//! same bytes and dedups to the same [`TreeId`]. A snapshot names the root
//! tree; a directory node names its subtree; a file node lists its chunks.
//!
//! Tree blob plaintext: `version (u8 = 1) || postcard(Tree)`; see
//! `docs/FORMAT.md` for the field order.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::TreeId;
use crate::pipeline::ChunkRef;

/// The tree encoding this build writes.
pub const TREE_VERSION: u8 = 1;

/// Seconds and nanoseconds since the Unix epoch (negative before 1970).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct Timestamp {
    /// Whole seconds.
    pub secs: i64,
    /// Nanoseconds, 0..1e9.
    pub nanos: u32,
}

/// What a node is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// A regular file (or a stream stored as one).
    File,
    /// A directory; its entries are in `subtree`.
    Dir,
    /// A symbolic link to `target`.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device (`rdev`).
    CharDevice,
    /// A block device (`rdev`).
    BlockDevice,
    /// A Unix socket (recorded, restored as nothing).
    Socket,
}

impl NodeKind {
    /// Lower-case name for listings and JSON.
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::File => "file",
            NodeKind::Dir => "dir",
            NodeKind::Symlink => "symlink",
            NodeKind::Fifo => "fifo",
            NodeKind::CharDevice => "chardev",
            NodeKind::BlockDevice => "blockdev",
            NodeKind::Socket => "socket",
        }
    }
}

/// An extended attribute.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Xattr {
    /// Its name, e.g. `user.comment`.
    pub name: Vec<u8>,
    /// Its value.
    pub value: Vec<u8>,
}

/// One entry of a directory, with everything needed to restore it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The entry's name (raw bytes: Unix names need not be UTF-8).
    pub name: Vec<u8>,
    /// What it is.
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner name, where the system knew one (restore prefers it to `uid`).
    pub user: String,
    /// Group name, where the system knew one.
    pub group: String,
    /// Last modification.
    pub mtime: Timestamp,
    /// Last access.
    pub atime: Timestamp,
    /// Last status change (recorded for change detection; not restorable).
    pub ctime: Timestamp,
    /// Length in bytes (files), or 0.
    pub size: u64,
    /// Device of the file system that held it (`st_dev`).
    pub device: u64,
    /// Inode number: with `device`, identifies hard links and unchanged files.
    pub inode: u64,
    /// Number of hard links.
    pub links: u64,
    /// Device number of a device node (`st_rdev`).
    pub rdev: u64,
    /// Target of a symbolic link.
    pub target: Vec<u8>,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<Xattr>,
    /// A file's chunks, in order.
    pub content: Vec<ChunkRef>,
    /// A directory's tree.
    pub subtree: Option<TreeId>,
}

impl Node {
    /// For a regular file with other hard links, the (device, inode) its
    /// links share; restore and archives write the file once and link the
    /// rest to it.
    pub fn hard_link_key(&self) -> Option<(u64, u64)> {
        (self.kind == NodeKind::File && self.links > 1 && self.inode != 0)
            .then_some((self.device, self.inode))
    }

    /// A node of `kind` named `name` with every other field empty.
    pub fn new(name: impl Into<Vec<u8>>, kind: NodeKind) -> Self {
        Node {
            name: name.into(),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            size: 0,
            device: 0,
            inode: 0,
            links: 0,
            rdev: 0,
            target: Vec::new(),
            xattrs: Vec::new(),
            content: Vec::new(),
            subtree: None,
        }
    }

    /// The name as text, with invalid UTF-8 replaced, for display.
    pub fn name_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }
}

/// A directory listing: nodes sorted by name, names unique.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    /// The entries.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// A tree of these nodes, sorted by name. Refuses duplicate or empty
    /// names, and names containing `/` or NUL, which no directory can hold.
    pub fn new(mut nodes: Vec<Node>) -> Result<Self> {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        for n in &nodes {
            if n.name.is_empty()
                || n.name.contains(&b'/')
                || n.name.contains(&0)
                || n.name == b"."
                || n.name == b".."
            {
                return Err(Error::invalid(
                    "tree",
                    format!("bad entry name {:?}", n.name_lossy()),
                ));
            }
        }
        if let Some(w) = nodes.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(Error::invalid(
                "tree",
                format!("duplicate entry {:?}", w[0].name_lossy()),
            ));
        }
        Ok(Tree { nodes })
    }

    /// The blob plaintext: version byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        let out = vec![TREE_VERSION];
        postcard::to_extend(self, out).expect("a tree always serializes")
    }

    /// Decodes a tree blob's plaintext. `id` names it in errors.
    pub fn decode(bytes: &[u8], id: &TreeId) -> Result<Self> {
        let what = || format!("tree {}", id.short());
        match bytes.first() {
            Some(&TREE_VERSION) => {}
            Some(&v) => {
                return Err(Error::UnsupportedVersion {
                    what: what(),
                    found: v as u32,
                    supported: "1",
                });
            }
            None => return Err(Error::corrupted(what(), "empty tree blob")),
        }
        let tree: Tree = postcard::from_bytes(&bytes[1..])
            .map_err(|e| Error::corrupted(what(), format!("undecodable: {e}")))?;
        if tree.nodes.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(Error::corrupted(
                what(),
                "entries are not sorted and unique",
            ));
        }
        Ok(tree)
    }

    /// The node with this name.
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{ChunkId, Id};

    #[test]
    fn encode_decode_and_order() {
        let mut f = Node::new("b.txt", NodeKind::File);
        f.content = vec![ChunkRef {
            id: ChunkId(Id([3; 32])),
            len: 10,
        }];
        f.size = 10;
        let mut d = Node::new("a", NodeKind::Dir);
        d.subtree = Some(TreeId(Id([4; 32])));
        let t = Tree::new(vec![f, d]).unwrap();
        assert_eq!(t.nodes[0].name, b"a");
        let bytes = t.encode();
        assert_eq!(bytes[0], TREE_VERSION);
        let id = TreeId(Id([0; 32]));
        assert_eq!(Tree::decode(&bytes, &id).unwrap(), t);
        assert_eq!(t.get(b"b.txt").unwrap().size, 10);
        // Same content, same bytes: unchanged directories dedup.
        assert_eq!(Tree::new(t.nodes.clone()).unwrap().encode(), bytes);
    }

    #[test]
    fn bad_trees_are_refused() {
        let n = || Node::new("x", NodeKind::File);
        assert!(Tree::new(vec![n(), n()]).is_err());
        assert!(Tree::new(vec![Node::new("a/b", NodeKind::File)]).is_err());
        assert!(Tree::new(vec![Node::new("..", NodeKind::Dir)]).is_err());
        let id = TreeId(Id([0; 32]));
        assert!(matches!(
            Tree::decode(&[9, 0], &id),
            Err(Error::UnsupportedVersion { found: 9, .. })
        ));
        assert!(Tree::decode(&[1, 0xff, 0xff], &id).is_err());
        // Unsorted nodes written by someone else are refused on read.
        let bad = Tree {
            nodes: vec![
                Node::new("b", NodeKind::File),
                Node::new("a", NodeKind::File),
            ],
        };
        assert!(Tree::decode(&bad.encode(), &id).is_err());
    }
}
