//! [`TreeBuilder`]: objects stored in a repository session as they arrive,
//! their directories written as soon as they are complete.
//!
//! Memory: the bytes of one batch of objects (stored together, so small
//! objects are hashed, compressed and sealed in parallel), a small record
//! (name, chunk list, attributes: about 300 bytes) per object of the
//! directories still open, and one tree id per directory written. A backup
//! says when a list is complete ([`Completed`]), so its open directories are
//! those of one list; a Velero import, whose tarball may hold objects in any
//! order, keeps every directory open until the end.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use hokan_core::fs::Progress;
use hokan_core::{Attr, AttrValue, ChunkRef, Node, NodeKind, Tree, TreeId};
use hokan_repo::Session;

use super::parent::ParentTrees;
use crate::layout::{self, CLUSTER_DIR, CORE_GROUP, VERSIONS_DIR};
use crate::object::{ObjectAttrs, StoredObject};
use crate::seam::Completed;
use crate::{Error, Result};

/// Objects up to this size are stored in batches, one blob each; larger
/// ones (rare: etcd refuses objects over 1.5 MiB) are cut by the
/// repository's chunker, so a large config map that changes in one place
/// keeps most of its chunks.
const BATCH_OBJECT_MAX: usize = 256 << 10;
/// A batch is stored once it holds this many bytes or objects.
const BATCH_BYTES: usize = 4 << 20;
const BATCH_OBJECTS: usize = 512;

/// What a backup stored, compared with its parent snapshot, counted per
/// stored entry (an object in each version backed up).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeCounts {
    /// Entries stored.
    pub entries: u64,
    /// Not in the parent.
    pub new: u64,
    /// In the parent with other content.
    pub changed: u64,
    /// In the parent with the same content.
    pub unmodified: u64,
    /// In the parent and not in this snapshot.
    pub removed: u64,
    /// Directories written.
    pub dirs: u64,
}

/// One object of an open directory.
struct Pending {
    name: String,
    content: Vec<ChunkRef>,
    attrs: ObjectAttrs,
}

/// An object waiting in the batch: where it goes and its bytes' range.
struct Batched {
    dir: String,
    name: String,
    attrs: ObjectAttrs,
    range: Range<usize>,
}

/// Builds a snapshot's tree in a session; see the module documentation.
pub struct TreeBuilder<'a, 's> {
    session: &'a Session<'s>,
    progress: &'a dyn Progress,
    batch_bytes: Vec<u8>,
    batch: Vec<Batched>,
    /// Directories still taking objects: `core/configmaps/shop`.
    open: BTreeMap<String, Vec<Pending>>,
    /// Directories written, with their trees.
    written: BTreeMap<String, TreeId>,
    parent: Option<ParentTrees<'a, 's>>,
    counts: TreeCounts,
}

impl<'a, 's> TreeBuilder<'a, 's> {
    /// A builder storing through `session`, comparing with the session's
    /// parent snapshot (if any) for the counts, and telling `progress` of
    /// each object stored.
    pub fn new(session: &'a Session<'s>, progress: &'a dyn Progress) -> Self {
        TreeBuilder {
            session,
            progress,
            batch_bytes: Vec::new(),
            batch: Vec::new(),
            open: BTreeMap::new(),
            written: BTreeMap::new(),
            parent: session
                .parent_tree()
                .map(|root| ParentTrees::new(session, root)),
            counts: TreeCounts::default(),
        }
    }

    /// Takes one object. Its path must be a [`layout`] path whose namespace
    /// is a valid namespace name, and its directory must still be open.
    pub fn put(&mut self, object: StoredObject) -> Result<()> {
        let path = object.entry.path();
        let parsed = layout::parse_path(&path)?;
        if let Some(ns) = &parsed.key.namespace
            && !is_dns_label(ns)
        {
            return Err(Error::bad_object(
                &path,
                format!("{ns:?} is not a namespace name (a DNS label: a-z, 0-9, '-')"),
            ));
        }
        let (dir, file) = path.rsplit_once('/').unwrap_or(("", &path));
        let name = file.to_string();
        if self.written.contains_key(dir) {
            return Err(late(dir));
        }
        self.progress.bytes(object.json.len() as u64);
        if object.json.len() > BATCH_OBJECT_MAX {
            let content = self.session.store_bytes(&object.json)?;
            self.add(dir.to_string(), name, content, object.entry.attrs);
            return Ok(());
        }
        let start = self.batch_bytes.len();
        self.batch_bytes.extend_from_slice(&object.json);
        self.batch.push(Batched {
            dir: dir.to_string(),
            name,
            attrs: object.entry.attrs,
            range: start..self.batch_bytes.len(),
        });
        if self.batch_bytes.len() >= BATCH_BYTES || self.batch.len() >= BATCH_OBJECTS {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the directories `part` names: nothing more goes into them.
    pub fn completed(&mut self, part: &Completed) -> Result<()> {
        self.flush()?;
        let group = if part.resource.group.is_empty() {
            CORE_GROUP
        } else {
            &part.resource.group
        };
        let base = format!("{group}/{}", part.resource.resource);
        let versions = format!("{base}/{VERSIONS_DIR}/");
        let mut dirs: Vec<String> = Vec::new();
        match (&part.namespace, part.preferred) {
            (Some(ns), true) => dirs.push(format!("{base}/{ns}")),
            (Some(ns), false) => dirs.push(format!("{versions}{}/{ns}", part.version)),
            (None, true) => {
                let prefix = format!("{base}/");
                dirs.extend(
                    self.open
                        .keys()
                        .filter(|d| d.starts_with(&prefix) && !d.starts_with(&versions))
                        .cloned(),
                );
            }
            (None, false) => {
                let prefix = format!("{versions}{}/", part.version);
                dirs.extend(self.open.keys().filter(|d| d.starts_with(&prefix)).cloned());
            }
        }
        for dir in dirs {
            if let Some(pending) = self.open.remove(&dir) {
                self.write_dir(dir, pending)?;
            }
        }
        Ok(())
    }

    /// Writes every directory still open and the ones above them; returns
    /// the root tree and the counts.
    pub fn finish(mut self) -> Result<(TreeId, TreeCounts)> {
        self.flush()?;
        for (dir, pending) in std::mem::take(&mut self.open) {
            self.write_dir(dir, pending)?;
        }
        let written = std::mem::take(&mut self.written);
        let mut leaves: Vec<(Vec<&str>, TreeId)> = written
            .iter()
            .map(|(dir, id)| (dir.split('/').collect(), *id))
            .collect();
        leaves.sort();
        let root = self.build(&leaves, 0)?;
        if let Some(parent) = self.parent.as_mut() {
            self.counts.removed += parent.entries_outside(&written)?;
        }
        Ok((root, self.counts))
    }

    /// Stores the batch's objects (one blob each, in parallel) and adds
    /// them to their directories.
    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let cuts: Vec<Range<usize>> = self.batch.iter().map(|b| b.range.clone()).collect();
        let refs = self.session.store_cut(&self.batch_bytes, &cuts)?;
        self.batch_bytes.clear();
        for (b, chunk) in std::mem::take(&mut self.batch).into_iter().zip(refs) {
            self.add(b.dir, b.name, vec![chunk], b.attrs);
        }
        Ok(())
    }

    fn add(&mut self, dir: String, name: String, content: Vec<ChunkRef>, attrs: ObjectAttrs) {
        let path = format!("{dir}/{name}");
        self.progress.entry_done(Path::new(&path), NodeKind::Object);
        self.open.entry(dir).or_default().push(Pending {
            name,
            content,
            attrs,
        });
    }

    /// Writes one directory of objects and compares it with the parent's.
    fn write_dir(&mut self, dir: String, pending: Vec<Pending>) -> Result<()> {
        if self.written.contains_key(&dir) {
            return Err(late(&dir));
        }
        let nodes: Vec<Node> = pending.into_iter().map(object_node).collect();
        let tree = Tree::new(nodes)?;
        if let Some(parent) = self.parent.as_mut() {
            let before = parent.dir(&dir)?;
            compare(&before, &tree, &mut self.counts);
        } else {
            self.counts.new += tree.nodes.len() as u64;
        }
        self.counts.entries += tree.nodes.len() as u64;
        self.counts.dirs += 1;
        let id = self.session.store_tree(tree.nodes)?;
        self.written.insert(dir, id);
        Ok(())
    }

    /// The directories above the written ones, bottom up. `leaves` are
    /// sorted and share their first `depth` components.
    fn build(&mut self, leaves: &[(Vec<&str>, TreeId)], depth: usize) -> Result<TreeId> {
        let mut nodes = Vec::new();
        for group in leaves.chunk_by(|a, b| a.0[depth] == b.0[depth]) {
            let name = group[0].0[depth];
            let id = match group {
                [(parts, id)] if parts.len() == depth + 1 => *id,
                _ if group.iter().any(|(parts, _)| parts.len() == depth + 1) => {
                    return Err(Error::bad_object(
                        group[0].0[..=depth].join("/"),
                        "it holds objects and directories both; not a resource tree",
                    ));
                }
                _ => self.build(group, depth + 1)?,
            };
            nodes.push(Node::dir(name, id));
        }
        self.counts.dirs += nodes.len() as u64;
        Ok(self.session.store_tree(nodes)?)
    }
}

fn late(dir: &str) -> Error {
    Error::Store(
        format!(
            "an object for {dir} arrived after the directory was written; the source broke \
             the ObjectSink contract (a list reported complete got more objects)"
        )
        .into(),
    )
}

/// The tree node of one object: its chunks and its attributes.
fn object_node(p: Pending) -> Node {
    let attrs = p
        .attrs
        .pairs()
        .into_iter()
        .map(|(key, value)| Attr {
            key: key.to_string(),
            value: AttrValue::Str(value.to_string()),
        })
        .collect();
    Node::object(p.name, p.content, attrs)
}

/// Counts `now`'s entries against the same directory in the parent.
fn compare(before: &Option<Tree>, now: &Tree, counts: &mut TreeCounts) {
    let Some(before) = before else {
        counts.new += now.nodes.len() as u64;
        return;
    };
    for node in &now.nodes {
        match before.get(&node.name) {
            None => counts.new += 1,
            Some(old) if old.content == node.content => counts.unmodified += 1,
            Some(_) => counts.changed += 1,
        }
    }
    counts.removed += before
        .nodes
        .iter()
        .filter(|old| now.get(&old.name).is_none())
        .count() as u64;
}

/// Kubernetes' namespace rule (a DNS-1123 label), which also keeps
/// namespaces apart from `_cluster` and `_versions`.
pub(crate) fn is_dns_label(s: &str) -> bool {
    s != CLUSTER_DIR
        && !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_dns_labels() {
        for ok in ["shop", "a", "kube-system", "ns-1"] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in [
            "",
            "_cluster",
            "_versions",
            "Shop",
            "-a",
            "a-",
            "a.b",
            &"x".repeat(64),
        ] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
