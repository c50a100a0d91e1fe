//! A tree, or one node of it, as a tar stream (GNU format), as restic's
//! `dump` writes one: files' content streamed from the repository, hard
//! links as links to the first path of their set, device numbers split
//! with [`Node::device_numbers`], a block device read as data as a regular
//! file holding its image. Sockets have no tar entry and are left out, as
//! a restore leaves them out.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ::tar::{Builder, EntryType, Header};

use crate::browse;
use crate::error::{Error, Result};
use crate::id::TreeId;
use crate::pipeline::BlobReader;
use crate::tree::{Node, NodeKind};

/// Writes every node below `root`, with paths under `base` (empty for
/// paths relative to the root), to `out` as one tar archive.
pub fn tar_tree(
    reader: &BlobReader<'_>,
    root: &TreeId,
    base: &Path,
    out: &mut (dyn Write + Send),
) -> Result<()> {
    let mut tar = Tar::new(reader, out);
    tar.tree(root, base)?;
    tar.finish()
}

/// Writes `node` under `path` (and, for a directory, everything below it)
/// to `out` as one tar archive.
pub fn tar_node(
    reader: &BlobReader<'_>,
    node: &Node,
    path: &Path,
    out: &mut (dyn Write + Send),
) -> Result<()> {
    let mut tar = Tar::new(reader, out);
    tar.entry(path, node)?;
    if let Some(sub) = node
        .kind
        .eq(&NodeKind::Dir)
        .then_some(node.subtree)
        .flatten()
    {
        tar.tree(&sub, path)?;
    }
    tar.finish()
}

/// An archive being written.
struct Tar<'r, 'o> {
    reader: &'r BlobReader<'r>,
    builder: Builder<&'o mut (dyn Write + Send)>,
    /// The first path of each hard-link set written.
    leaders: HashMap<(u64, u64), PathBuf>,
}

fn io(what: &Path, e: std::io::Error) -> Error {
    Error::Io {
        context: format!("writing {} to the archive", what.display()),
        source: e,
    }
}

impl<'r, 'o> Tar<'r, 'o> {
    fn new(reader: &'r BlobReader<'r>, out: &'o mut (dyn Write + Send)) -> Self {
        Tar {
            reader,
            builder: Builder::new(out),
            leaders: HashMap::new(),
        }
    }

    fn tree(&mut self, root: &TreeId, base: &Path) -> Result<()> {
        let reader = self.reader;
        browse::walk(reader, root, base, &mut |path, node| {
            self.entry(path, node).map(|()| true)
        })
    }

    fn finish(mut self) -> Result<()> {
        self.builder
            .finish()
            .map_err(|e| io(Path::new("the end"), e))?;
        self.builder
            .get_mut()
            .flush()
            .map_err(|e| io(Path::new("the end"), e))
    }

    /// One node: its header, then (for files) its content padded to a block.
    fn entry(&mut self, path: &Path, node: &Node) -> Result<()> {
        let mut h = Header::new_gnu();
        h.set_mode(node.mode & 0o7777);
        h.set_uid(node.uid.into());
        h.set_gid(node.gid.into());
        h.set_mtime(node.mtime.secs.max(0) as u64);
        // Names that do not fit the header are left out; the ids stay.
        let _ = h.set_username(&node.user);
        let _ = h.set_groupname(&node.group);
        h.set_size(0);
        let b = &mut self.builder;
        let link = |b: &mut Builder<_>, h: &mut Header, kind, target: &Path| {
            h.set_entry_type(kind);
            b.append_link(h, path, target).map_err(|e| io(path, e))
        };
        match node.kind {
            NodeKind::Dir => {
                h.set_entry_type(EntryType::Directory);
                b.append_data(&mut h, path, std::io::empty())
                    .map_err(|e| io(path, e))?;
            }
            NodeKind::Symlink => link(
                b,
                &mut h,
                EntryType::Symlink,
                Path::new(std::ffi::OsStr::from_bytes(&node.target)),
            )?,
            NodeKind::File | NodeKind::Object => {
                // The first path of a hard-link set holds the data.
                let first = node
                    .hard_link_key()
                    .and_then(|key| match self.leaders.entry(key) {
                        Entry::Occupied(e) => Some(e.get().clone()),
                        Entry::Vacant(e) => {
                            e.insert(path.to_path_buf());
                            None
                        }
                    });
                match first {
                    Some(first) => link(&mut self.builder, &mut h, EntryType::Link, &first)?,
                    None => self.file(&mut h, path, node)?,
                }
            }
            // A block device read as data: its content, as an image file.
            NodeKind::BlockDevice if crate::fs::device_with_data(node) => {
                self.file(&mut h, path, node)?
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                h.set_entry_type(match node.kind {
                    NodeKind::Fifo => EntryType::Fifo,
                    NodeKind::CharDevice => EntryType::Char,
                    _ => EntryType::Block,
                });
                let (major, minor) = node.device_numbers();
                h.set_device_major(major).map_err(|e| io(path, e))?;
                h.set_device_minor(minor).map_err(|e| io(path, e))?;
                b.append_data(&mut h, path, std::io::empty())
                    .map_err(|e| io(path, e))?;
            }
            NodeKind::Socket => {}
        }
        Ok(())
    }

    /// A regular file: the header with its size, then its content streamed
    /// straight from the repository and padded to the 512-byte block.
    fn file(&mut self, h: &mut Header, path: &Path, node: &Node) -> Result<()> {
        h.set_entry_type(EntryType::Regular);
        h.set_size(node.size);
        // The header alone: `append_data` pads after the bytes it copied (none).
        self.builder
            .append_data(h, path, std::io::empty())
            .map_err(|e| io(path, e))?;
        let out = self.builder.get_mut();
        let written = self.reader.read_chunks(&node.content, out)?;
        if written != node.size {
            // The header promised `size` bytes: the archive would be corrupt.
            return Err(Error::Corrupted {
                what: format!("the content of {}", path.display()),
                reason: format!(
                    "{written} bytes are stored, its metadata says {}",
                    node.size
                ),
            });
        }
        let pad = (512 - written % 512) % 512;
        out.write_all(&[0u8; 512][..pad as usize])
            .map_err(|e| io(path, e))
    }
}
