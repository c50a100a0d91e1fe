//! Looking inside snapshots of any source: walking trees, finding a path,
//! comparing two trees. File systems, Kubernetes objects and etcd records
//! are all trees of nodes, so `ls`, `find`, `diff` and `dump` work the same
//! on each.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::Result;
use crate::id::{BlobType, TreeId};
use crate::pipeline::BlobReader;
use crate::tree::{Node, NodeKind, Tree};

/// Reads and decodes a tree.
pub fn read_tree(reader: &BlobReader<'_>, id: &TreeId) -> Result<Tree> {
    Tree::decode(&reader.read_blob(BlobType::Tree, &id.0)?, id)
}

/// Visits every node below `root` depth first, in name order, with its
/// path under `base`. The visitor returns whether to enter a directory;
/// its error, of its own type, ends the walk and comes back unchanged.
pub fn walk<E: From<crate::Error>>(
    reader: &BlobReader<'_>,
    root: &TreeId,
    base: &Path,
    visit: &mut dyn FnMut(&Path, &Node) -> std::result::Result<bool, E>,
) -> std::result::Result<(), E> {
    let tree = read_tree(reader, root)?;
    for node in &tree.nodes {
        let path = base.join(std::ffi::OsStr::from_bytes(&node.name));
        let enter = visit(&path, node)?;
        if enter && let Some(sub) = &node.subtree {
            walk(reader, sub, &path, visit)?;
        }
    }
    Ok(())
}

/// The components of a path in a snapshot (`/` and `.` dropped).
fn components(path: &Path) -> Vec<&std::ffi::OsStr> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// The node at `path` (absolute, as in the snapshot) below `root`; `None`
/// if there is none. `/` itself has no node.
pub fn find_node(reader: &BlobReader<'_>, root: &TreeId, path: &Path) -> Result<Option<Node>> {
    let mut tree = read_tree(reader, root)?;
    let parts = components(path);
    for (i, part) in parts.iter().enumerate() {
        let Some(node) = tree.get(part.as_bytes()).cloned() else {
            return Ok(None);
        };
        if i + 1 == parts.len() {
            return Ok(Some(node));
        }
        match &node.subtree {
            Some(sub) => tree = read_tree(reader, sub)?,
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// What a path in a snapshot names, for commands that take `SNAPSHOT:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Located {
    /// A tree: the snapshot's root, or a directory.
    Tree(TreeId),
    /// Any other node, with the tree that lists it.
    Node {
        /// The node.
        node: Box<Node>,
        /// The tree holding it.
        parent: TreeId,
    },
}

/// Resolves `path` below `root`: `/` is the root tree itself. `None` if
/// nothing is there.
pub fn locate(reader: &BlobReader<'_>, root: &TreeId, path: &Path) -> Result<Option<Located>> {
    let parts = components(path);
    let Some((last, dirs)) = parts.split_last() else {
        return Ok(Some(Located::Tree(*root)));
    };
    let mut parent = *root;
    for d in dirs {
        match read_tree(reader, &parent)?
            .get(d.as_bytes())
            .and_then(|n| n.subtree)
        {
            Some(sub) => parent = sub,
            None => return Ok(None),
        }
    }
    let tree = read_tree(reader, &parent)?;
    Ok(tree
        .get(last.as_bytes())
        .map(|node| match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(sub)) => Located::Tree(sub),
            _ => Located::Node {
                node: Box::new(node.clone()),
                parent,
            },
        }))
}

/// How an entry differs between two snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// Only in the second.
    Added,
    /// Only in the first.
    Removed,
    /// Content changed (a file's bytes, an object's body).
    Modified,
    /// The type changed (a file became a directory, ...).
    TypeChanged,
    /// Only metadata (mode, owner, times, attributes, link target) changed.
    Metadata,
}

impl ChangeKind {
    /// restic's one-letter mark.
    pub fn mark(self) -> char {
        match self {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Modified => 'M',
            ChangeKind::TypeChanged => 'T',
            ChangeKind::Metadata => 'U',
        }
    }

    /// Lower-case name for JSON.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
            ChangeKind::TypeChanged => "type",
            ChangeKind::Metadata => "metadata",
        }
    }
}

/// One difference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Path in the snapshots.
    pub path: PathBuf,
    /// What changed.
    pub kind: ChangeKind,
    /// The entry's kind (in the second snapshot, or the first if removed).
    pub node_kind: NodeKind,
    /// Its size in the second snapshot (or the first if removed).
    pub size: u64,
}

fn same_metadata(a: &Node, b: &Node) -> bool {
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.mtime == b.mtime
        && a.xattrs == b.xattrs
        && a.target == b.target
        && a.rdev == b.rdev
        && a.attrs == b.attrs
}

/// Every difference between two trees, in path order. Identical subtrees
/// (equal ids) are skipped without being read.
pub fn diff(reader: &BlobReader<'_>, a: &TreeId, b: &TreeId) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_into(reader, Some(a), Some(b), Path::new("/"), &mut out)?;
    Ok(out)
}

fn diff_into(
    reader: &BlobReader<'_>,
    a: Option<&TreeId>,
    b: Option<&TreeId>,
    base: &Path,
    out: &mut Vec<Change>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let read = |id: Option<&TreeId>| match id {
        Some(id) => read_tree(reader, id),
        None => Ok(Tree::default()),
    };
    let (ta, tb) = (read(a)?, read(b)?);
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let order = match (ta.nodes.get(i), tb.nodes.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                one_sided(reader, &ta.nodes[i], base, ChangeKind::Removed, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                one_sided(reader, &tb.nodes[j], base, ChangeKind::Added, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&ta.nodes[i], &tb.nodes[j]);
                let path = base.join(std::ffi::OsStr::from_bytes(&y.name));
                let change = |kind| Change {
                    path: path.clone(),
                    kind,
                    node_kind: y.kind,
                    size: y.size,
                };
                if x.kind != y.kind {
                    out.push(change(ChangeKind::TypeChanged));
                } else if x.content != y.content {
                    out.push(change(ChangeKind::Modified));
                } else if !same_metadata(x, y) {
                    out.push(change(ChangeKind::Metadata));
                }
                if x.kind == y.kind && (x.subtree.is_some() || y.subtree.is_some()) {
                    diff_into(reader, x.subtree.as_ref(), y.subtree.as_ref(), &path, out)?;
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

fn one_sided(
    reader: &BlobReader<'_>,
    n: &Node,
    base: &Path,
    kind: ChangeKind,
    out: &mut Vec<Change>,
) -> Result<()> {
    let path = base.join(std::ffi::OsStr::from_bytes(&n.name));
    out.push(Change {
        path: path.clone(),
        kind,
        node_kind: n.kind,
        size: n.size,
    });
    if let Some(sub) = &n.subtree {
        walk(reader, sub, &path, &mut |p, node| {
            out.push(Change {
                path: p.to_path_buf(),
                kind,
                node_kind: node.kind,
                size: node.size,
            });
            Ok(true)
        })?;
    }
    Ok(())
}
