//! Trees: the encoded listing of one directory (or of any collection a
//! source stores: a namespace of Kubernetes objects, the records of an etcd
//! snapshot), stored as a tree blob.
//!
//! A tree is its nodes sorted by name, encoded deterministically (postcard,
//! a written, stable wire format), so an unchanged listing encodes to the
//! same bytes and dedups to the same [`TreeId`]. A snapshot names the root
//! tree; a directory node names its subtree; a file or object node lists
//! its chunks.
//!
//! Tree blob plaintext: `version (u8) || postcard(Tree)`. Version 1 holds
//! POSIX nodes only; version 2 adds object nodes, typed attributes and holes
//! (see `docs/FORMAT.md` §8). Readers take both; writers write the version
//! of their repository's format ([`FormatVersion::tree_version`]).
//!
//! Version 3 (written by format-2 repositories) is version 2 carrying the
//! plaintexts of its small subtrees: `3 || postcard(Vec<Vec<u8>>) ||
//! postcard(Tree)`. Most directories are small (a locale's two files, a
//! package's `__init__.py`), and a tree blob of its own costs about 80
//! bytes of pack header, group header and index entry beside its content;
//! carried inside the tree that names it, it costs only its compressed
//! bytes. A carried tree keeps its id (the keyed hash of its own
//! plaintext), so nodes, dedup and verification see no difference; readers
//! find it through the tree that carries it ([`carried_trees`]).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::FormatVersion;
use crate::id::TreeId;
use crate::pipeline::ChunkRef;

/// The newest tree encoding this build reads and writes.
pub const TREE_VERSION: u8 = 3;

/// Trees whose plaintext is at most this long are carried inside the tree
/// that names them (version 3) instead of being stored as blobs. Above
/// ~1 KiB the ~80 bytes a blob of its own costs are under a tenth of the
/// tree, while a carried tree is stored again with every change of its
/// parent.
pub const CARRY_MAX: usize = 1024;

/// The plaintexts of the subtrees tree blob `id` (its plaintext `bytes`)
/// carries (version 3), in the order they were written; empty for other
/// versions. Only the framing is read: each carried tree is checked
/// against its id when it is used.
pub fn carried_trees<'b>(bytes: &'b [u8], id: &TreeId) -> Result<Vec<&'b [u8]>> {
    if bytes.first() != Some(&3) {
        return Ok(Vec::new());
    }
    let (carried, _): (Vec<&[u8]>, _) = postcard::take_from_bytes(&bytes[1..]).map_err(|e| {
        Error::corrupted(
            format!("tree {}", id.short()),
            format!("undecodable carried trees: {e}"),
        )
    })?;
    Ok(carried)
}

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

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        }
    }
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
    /// A block device (`rdev`; its content when read as data).
    BlockDevice,
    /// A Unix socket (recorded, restored as nothing).
    Socket,
    /// An object that is not a file: a Kubernetes resource, a record of a
    /// database. Its bytes are its content; what it is lives in `attrs`.
    /// Format version 2.
    Object,
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
            NodeKind::Object => "object",
        }
    }

    /// Whether nodes of this kind carry content (a chunk list).
    pub fn has_content(self) -> bool {
        matches!(
            self,
            NodeKind::File | NodeKind::Object | NodeKind::BlockDevice
        )
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

/// The value of a typed attribute.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub enum AttrValue {
    /// Text (a kind, a namespace, a UID).
    Str(String),
    /// A signed integer (a revision, a generation).
    Int(i64),
    /// A flag.
    Bool(bool),
    /// Raw bytes (an etcd key that is not UTF-8).
    Bytes(Vec<u8>),
    /// A point in time.
    Time(Timestamp),
}

impl std::fmt::Display for AttrValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttrValue::Str(s) => f.write_str(s),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::Bytes(b) => write!(f, "0x{}", hex::encode(b)),
            AttrValue::Time(t) => write!(f, "@{}.{:09}", t.secs, t.nanos),
        }
    }
}

/// One typed attribute of a node: what a source knows about an object
/// beyond its bytes (`kind`, `namespace`, `resourceVersion`, ...).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attr {
    /// Its name.
    pub key: String,
    /// Its value.
    pub value: AttrValue,
}

/// One entry of a tree, with everything needed to restore it.
///
/// File-system nodes use the POSIX fields; object nodes use `content`,
/// `size` and `attrs` and leave the rest empty (empty fields cost one byte
/// each in the encoding).
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
    /// Length in bytes of the content (files, objects, devices read as
    /// data), or 0.
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
    /// The content's chunks, in order; holes ([`ChunkRef::hole`]) stand for
    /// runs of zeros that are not stored.
    pub content: Vec<ChunkRef>,
    /// A directory's tree.
    pub subtree: Option<TreeId>,
    /// Typed attributes, sorted by key, keys unique. Format version 2.
    pub attrs: Vec<Attr>,
}

impl Node {
    /// For a regular file with other hard links, the (device, inode) its
    /// links share; restore and archives write the file once and link the
    /// rest to it.
    pub fn hard_link_key(&self) -> Option<(u64, u64)> {
        (self.kind == NodeKind::File && self.links > 1 && self.inode != 0)
            .then_some((self.device, self.inode))
    }

    /// The major and minor number of a device node's [`rdev`](Node::rdev),
    /// which holds Linux's 64-bit `st_rdev` (glibc's `major()` and
    /// `minor()`: 12 + 20 bits of major, 20 + 12 bits of minor). Archives
    /// and mounts that carry the two apart read them here.
    pub fn device_numbers(&self) -> (u32, u32) {
        let r = self.rdev;
        let major = ((r >> 8) & 0xfff) | ((r >> 32) & !0xfff);
        let minor = (r & 0xff) | ((r >> 12) & !0xff);
        (major as u32, minor as u32)
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
            attrs: Vec::new(),
        }
    }

    /// An object node: `content` is its bytes' chunk list, `attrs` what it
    /// is (sorted here).
    pub fn object(name: impl Into<Vec<u8>>, content: Vec<ChunkRef>, attrs: Vec<Attr>) -> Self {
        let mut n = Node::new(name, NodeKind::Object);
        n.size = content.iter().map(|c| c.len as u64).sum();
        n.content = content;
        n.set_attrs(attrs);
        n
    }

    /// A directory node for a subtree that has no file-system metadata (a
    /// namespace of objects, say).
    pub fn dir(name: impl Into<Vec<u8>>, subtree: TreeId) -> Self {
        let mut n = Node::new(name, NodeKind::Dir);
        n.mode = 0o755;
        n.subtree = Some(subtree);
        n
    }

    /// Replaces the attributes, sorted by key; a later duplicate key wins.
    pub fn set_attrs(&mut self, mut attrs: Vec<Attr>) {
        attrs.reverse();
        attrs.sort_by(|a, b| a.key.cmp(&b.key));
        attrs.dedup_by(|a, b| a.key == b.key);
        self.attrs = attrs;
    }

    /// The value of an attribute.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attrs
            .binary_search_by(|a| a.key.as_str().cmp(key))
            .ok()
            .map(|i| &self.attrs[i].value)
    }

    /// The value of a text attribute.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        match self.attr(key) {
            Some(AttrValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The name as text, with invalid UTF-8 replaced, for display.
    pub fn name_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }

    /// What a version-1 tree cannot hold about this node, if anything.
    fn v1_obstacle(&self) -> Option<&'static str> {
        if self.kind == NodeKind::Object {
            Some("an object node")
        } else if !self.attrs.is_empty() {
            Some("typed attributes")
        } else if self.content.iter().any(ChunkRef::is_hole) {
            Some("a hole")
        } else {
            None
        }
    }
}

/// A directory listing: nodes sorted by name, names unique.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    /// The entries.
    pub nodes: Vec<Node>,
}

/// The version-1 node: [`Node`] without `attrs`. Its encoding is pinned by
/// the golden tree `tests/golden/tree-v1.bin`.
#[derive(Serialize, Deserialize)]
struct NodeV1 {
    name: Vec<u8>,
    kind: NodeKind,
    mode: u32,
    uid: u32,
    gid: u32,
    user: String,
    group: String,
    mtime: Timestamp,
    atime: Timestamp,
    ctime: Timestamp,
    size: u64,
    device: u64,
    inode: u64,
    links: u64,
    rdev: u64,
    target: Vec<u8>,
    xattrs: Vec<Xattr>,
    content: Vec<ChunkRef>,
    subtree: Option<TreeId>,
}

#[derive(Serialize, Deserialize)]
struct TreeV1 {
    nodes: Vec<NodeV1>,
}

impl From<NodeV1> for Node {
    fn from(n: NodeV1) -> Node {
        Node {
            name: n.name,
            kind: n.kind,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            user: n.user,
            group: n.group,
            mtime: n.mtime,
            atime: n.atime,
            ctime: n.ctime,
            size: n.size,
            device: n.device,
            inode: n.inode,
            links: n.links,
            rdev: n.rdev,
            target: n.target,
            xattrs: n.xattrs,
            content: n.content,
            subtree: n.subtree,
            attrs: Vec::new(),
        }
    }
}

impl NodeV1 {
    fn of(n: &Node) -> NodeV1 {
        NodeV1 {
            name: n.name.clone(),
            kind: n.kind,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            user: n.user.clone(),
            group: n.group.clone(),
            mtime: n.mtime,
            atime: n.atime,
            ctime: n.ctime,
            size: n.size,
            device: n.device,
            inode: n.inode,
            links: n.links,
            rdev: n.rdev,
            target: n.target.clone(),
            xattrs: n.xattrs.clone(),
            content: n.content.clone(),
            subtree: n.subtree,
        }
    }
}

/// What a tree's nodes, sorted by name, must hold: names a directory can
/// hold (not empty, `.` or `..`, no `/` or NUL), each once, and each
/// node's attributes sorted and unique. `Err` says which rule broke.
fn check_sorted(nodes: &[Node]) -> std::result::Result<(), String> {
    for n in nodes {
        if n.name.is_empty()
            || n.name.contains(&b'/')
            || n.name.contains(&0)
            || n.name == b"."
            || n.name == b".."
        {
            return Err(format!("bad entry name {:?}", n.name_lossy()));
        }
        if n.attrs.windows(2).any(|w| w[0].key >= w[1].key) {
            return Err(format!(
                "attributes of {:?} are not sorted and unique (use Node::set_attrs)",
                n.name_lossy()
            ));
        }
    }
    match nodes.windows(2).find(|w| w[0].name == w[1].name) {
        Some(w) => Err(format!("duplicate entry {:?}", w[0].name_lossy())),
        None => Ok(()),
    }
}

impl Tree {
    /// A tree of these nodes, sorted by name. Refuses duplicate or empty
    /// names, and names containing `/` or NUL, which no directory can hold.
    pub fn new(mut nodes: Vec<Node>) -> Result<Self> {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        check_sorted(&nodes).map_err(|reason| Error::invalid("tree", reason))?;
        Ok(Tree { nodes })
    }

    /// The blob plaintext in the encoding of `format`: version byte, then
    /// postcard. A version-1 repository cannot hold object nodes, typed
    /// attributes or holes; asking for them is an error that says so.
    pub fn encode(&self, format: FormatVersion) -> Result<Vec<u8>> {
        match format.tree_version() {
            1 => {
                if let Some((n, what)) = self
                    .nodes
                    .iter()
                    .find_map(|n| n.v1_obstacle().map(|w| (n, w)))
                {
                    return Err(Error::NeedsFormat {
                        what: format!("{what} ({:?})", n.name_lossy()),
                        needed: 2,
                    });
                }
                let v1 = TreeV1 {
                    nodes: self.nodes.iter().map(NodeV1::of).collect(),
                };
                Ok(postcard::to_extend(&v1, vec![1]).expect("a tree always serializes"))
            }
            v => Ok(postcard::to_extend(self, vec![v]).expect("a tree always serializes")),
        }
    }

    /// The blob plaintext carrying `carried` (plaintexts of subtrees this
    /// tree names): version 3 when there are any and `format` has version-2
    /// trees, else [`encode`](Self::encode). A tree with nothing to carry
    /// keeps its version-2 bytes, and so the id it had before version 3.
    pub fn encode_carrying(&self, format: FormatVersion, carried: &[&[u8]]) -> Result<Vec<u8>> {
        if carried.is_empty() || format.tree_version() < 2 {
            return self.encode(format);
        }
        let out = postcard::to_extend(&carried, vec![3]).expect("byte strings serialize");
        Ok(postcard::to_extend(self, out).expect("a tree always serializes"))
    }

    /// Decodes a tree blob's plaintext of either version. `id` names it in
    /// errors.
    pub fn decode(bytes: &[u8], id: &TreeId) -> Result<Self> {
        let what = || format!("tree {}", id.short());
        let undecodable =
            |e: postcard::Error| Error::corrupted(what(), format!("undecodable: {e}"));
        let tree: Tree = match bytes.first() {
            Some(1) => {
                let v1: TreeV1 = postcard::from_bytes(&bytes[1..]).map_err(undecodable)?;
                if v1.nodes.iter().any(|n| n.kind == NodeKind::Object) {
                    return Err(Error::corrupted(what(), "object node in a version-1 tree"));
                }
                Tree {
                    nodes: v1.nodes.into_iter().map(Node::from).collect(),
                }
            }
            Some(2) => postcard::from_bytes(&bytes[1..]).map_err(undecodable)?,
            Some(3) => {
                let (_, body): (Vec<&[u8]>, _) =
                    postcard::take_from_bytes(&bytes[1..]).map_err(undecodable)?;
                postcard::from_bytes(body).map_err(undecodable)?
            }
            Some(&v) => {
                return Err(Error::UnsupportedVersion {
                    what: what(),
                    found: v as u32,
                    supported: "1 to 3",
                });
            }
            None => return Err(Error::corrupted(what(), "empty tree blob")),
        };
        if tree.nodes.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(Error::corrupted(
                what(),
                "entries are not sorted and unique",
            ));
        }
        // What no writer could make (a name such as `..` or `a/b`) would
        // lead a restore or a mount astray: refused here, once, for all.
        check_sorted(&tree.nodes).map_err(|reason| Error::corrupted(what(), reason))?;
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
    fn device_numbers_are_glibcs_major_and_minor() {
        // /dev/sda1, and numbers that need the high bits of each.
        for (major, minor) in [(8, 1), (259, 70000), (4095, 1 << 19), (1 << 20, 3)] {
            let mut n = Node::new("dev", NodeKind::BlockDevice);
            n.rdev = libc::makedev(major, minor);
            assert_eq!(n.device_numbers(), (major, minor));
        }
    }

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
        let id = TreeId(Id([0; 32]));
        for format in [FormatVersion::V1, FormatVersion::V2] {
            let bytes = t.encode(format).unwrap();
            assert_eq!(bytes[0], format.tree_version());
            assert_eq!(Tree::decode(&bytes, &id).unwrap(), t);
            // Same content, same bytes: unchanged directories dedup.
            assert_eq!(
                Tree::new(t.nodes.clone()).unwrap().encode(format).unwrap(),
                bytes
            );
        }
        assert_eq!(t.get(b"b.txt").unwrap().size, 10);
    }

    #[test]
    fn objects_attributes_and_holes_need_version_2() {
        let attrs = vec![
            Attr {
                key: "kind".into(),
                value: AttrValue::Str("ConfigMap".into()),
            },
            Attr {
                key: "generation".into(),
                value: AttrValue::Int(3),
            },
            Attr {
                key: "kind".into(),
                value: AttrValue::Str("Secret".into()),
            },
        ];
        let o = Node::object("cm.json", vec![ChunkRef::hole(5)], attrs);
        assert_eq!(o.attr_str("kind"), Some("Secret"), "later duplicate wins");
        assert_eq!(o.attr("generation"), Some(&AttrValue::Int(3)));
        assert_eq!(o.size, 5);
        let t = Tree::new(vec![o]).unwrap();
        let e = t.encode(FormatVersion::V1).unwrap_err();
        assert!(matches!(e, Error::NeedsFormat { needed: 2, .. }), "{e}");
        let bytes = t.encode(FormatVersion::V2).unwrap();
        assert_eq!(Tree::decode(&bytes, &TreeId(Id([0; 32]))).unwrap(), t);

        let mut f = Node::new("sparse", NodeKind::File);
        f.content = vec![ChunkRef::hole(1 << 20)];
        assert!(
            Tree::new(vec![f])
                .unwrap()
                .encode(FormatVersion::V1)
                .is_err()
        );
    }

    #[test]
    fn carried_trees_ride_in_version_3() {
        let leaf = Tree::new(vec![Node::new("f", NodeKind::File)]).unwrap();
        let leaf_bytes = leaf.encode(FormatVersion::V2).unwrap();
        let empty = Tree::default().encode(FormatVersion::V2).unwrap();
        let t = Tree::new(vec![
            Node::dir("a", TreeId(Id([4; 32]))),
            Node::dir("b", TreeId(Id([5; 32]))),
        ])
        .unwrap();
        let id = TreeId(Id([0; 32]));
        let bytes = t
            .encode_carrying(FormatVersion::V2, &[&leaf_bytes, &empty])
            .unwrap();
        assert_eq!(bytes[0], 3);
        assert_eq!(Tree::decode(&bytes, &id).unwrap(), t);
        assert_eq!(
            carried_trees(&bytes, &id).unwrap(),
            vec![&leaf_bytes[..], &empty[..]]
        );
        // The framing is postcard's: a count, then length-prefixed bytes.
        assert_eq!(&bytes[1..3], &[2, leaf_bytes.len() as u8]);
        // Nothing to carry, or a version-1 repository: the plain encoding,
        // so a tree without small subtrees keeps its id.
        for format in [FormatVersion::V1, FormatVersion::V2] {
            assert_eq!(
                t.encode_carrying(format, &[]).unwrap(),
                t.encode(format).unwrap()
            );
        }
        assert_eq!(
            t.encode_carrying(FormatVersion::V1, &[&leaf_bytes])
                .unwrap()[0],
            1
        );
        assert!(carried_trees(&leaf_bytes, &id).unwrap().is_empty());
        // A frame that runs past the end is damage, not a panic.
        assert!(carried_trees(&[3, 1, 200, 1], &id).is_err());
        assert!(Tree::decode(&[3, 1, 200, 1], &id).is_err());
    }

    #[test]
    fn bad_trees_are_refused() {
        let n = || Node::new("x", NodeKind::File);
        assert!(Tree::new(vec![n(), n()]).is_err());
        assert!(Tree::new(vec![Node::new("a/b", NodeKind::File)]).is_err());
        assert!(Tree::new(vec![Node::new("..", NodeKind::Dir)]).is_err());
        let mut unsorted = Node::new("u", NodeKind::Object);
        unsorted.attrs = vec![
            Attr {
                key: "b".into(),
                value: AttrValue::Bool(true),
            },
            Attr {
                key: "a".into(),
                value: AttrValue::Bool(true),
            },
        ];
        assert!(Tree::new(vec![unsorted]).is_err());
        let id = TreeId(Id([0; 32]));
        assert!(matches!(
            Tree::decode(&[9, 0], &id),
            Err(Error::UnsupportedVersion { found: 9, .. })
        ));
        assert!(Tree::decode(&[1, 0xff, 0xff], &id).is_err());
        assert!(Tree::decode(&[], &id).is_err());
        // Unsorted nodes written by someone else are refused on read.
        let bad = Tree {
            nodes: vec![
                Node::new("b", NodeKind::File),
                Node::new("a", NodeKind::File),
            ],
        };
        assert!(Tree::decode(&bad.encode(FormatVersion::V2).unwrap(), &id).is_err());
    }

    /// A tree blob holds only what `Tree::new` lets a writer make: a name
    /// no directory can hold (`..`, `a/b`, NUL, empty) or unsorted
    /// attributes, written by some other program into a repository, is
    /// refused on read, so no restore or mount ever meets it (the fuzzer's
    /// first find: a name with a NUL decoded as a file).
    #[test]
    fn trees_no_writer_could_make_are_refused_on_read() {
        let id = TreeId(Id([0; 32]));
        let mut unsorted = Node::new("u", NodeKind::Object);
        unsorted.attrs = vec![
            Attr {
                key: "b".into(),
                value: AttrValue::Bool(true),
            },
            Attr {
                key: "a".into(),
                value: AttrValue::Bool(true),
            },
        ];
        let bad = [
            Node::new("..", NodeKind::Dir),
            Node::new(".", NodeKind::Dir),
            Node::new("a/b", NodeKind::File),
            Node::new(&b"x\0y"[..], NodeKind::File),
            Node::new("", NodeKind::File),
            unsorted,
        ];
        for node in bad {
            let name = node.name_lossy().into_owned();
            let tree = Tree { nodes: vec![node] };
            for format in [FormatVersion::V1, FormatVersion::V2] {
                let Ok(bytes) = tree.encode(format) else {
                    continue;
                };
                let e = Tree::decode(&bytes, &id).unwrap_err();
                assert!(matches!(e, Error::Corrupted { .. }), "{name:?}: {e}");
            }
        }
    }
}
