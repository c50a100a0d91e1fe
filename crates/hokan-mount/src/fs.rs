//! The FUSE operations: the kernel's requests answered from the inode
//! table, the tree cache and the chunk cache. Everything is read-only:
//! the mount is `ro`, so the kernel refuses writes with EROFS before they
//! reach this code.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr,
    Request,
};
use hokan_core::{Node, NodeKind, Timestamp, Tree, TreeId};
use hokan_repo::{IndexedRepository, SnapshotEntry};

use crate::cache::Lru;
use crate::content::{Blobs, OpenFile};
use crate::inodes::{Ino, Inode, Kind, Table};

/// Nothing in a snapshot ever changes, so the kernel may keep names and
/// attributes as long as it likes; a day keeps the number finite.
const TTL: Duration = Duration::from_secs(24 * 3600);

/// Decoded trees kept; each directory listed or looked up needs its tree.
const TREES_CACHED: usize = 1024;

/// Takes one directory entry (inode, position after it, name, attributes)
/// for a reply; true when the reply is full.
type AddEntry<'a> = dyn FnMut(Ino, u64, &[u8], &FileAttr) -> bool + 'a;

/// The file system of one mount.
pub struct HokanFs {
    repo: Arc<IndexedRepository>,
    table: Table,
    trees: Mutex<Lru<TreeId, Arc<Tree>>>,
    blobs: Blobs,
    open: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_handle: AtomicU64,
    /// Owner of the virtual directories: whoever mounted.
    uid: u32,
    gid: u32,
}

fn system_time(t: Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nanos.min(999_999_999)));
    if t.secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.secs as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs()) + nanos
    }
}

/// A device node's numbers in the kernel's 32-bit FUSE encoding
/// (`new_encode_dev`).
fn fuse_rdev(node: &Node) -> u32 {
    let (major, minor) = node.device_numbers();
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// How a node shows: a block device read as data (`--read-special`) is
/// a regular file holding its image, as `dump` writes it.
fn file_type(node: &Node) -> FileType {
    match node.kind {
        NodeKind::File | NodeKind::Object => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::CharDevice => FileType::CharDevice,
        NodeKind::BlockDevice if hokan_core::fs::device_with_data(node) => FileType::RegularFile,
        NodeKind::BlockDevice => FileType::BlockDevice,
        NodeKind::Socket => FileType::Socket,
    }
}

/// Whether reading the node gives its stored content.
fn readable(node: &Node) -> bool {
    file_type(node) == FileType::RegularFile
}

fn errno(what: &str, e: impl std::fmt::Display) -> Errno {
    // The kernel passes on only the number; the reason goes to the log of
    // the process that mounted, where whoever mounted can see it.
    eprintln!("hokan-mount: {what}: {e}");
    Errno::EIO
}

impl HokanFs {
    /// The file system for `entries` of `repo`.
    pub fn new(
        repo: Arc<IndexedRepository>,
        entries: &[SnapshotEntry],
        cache_bytes: u64,
        readahead: u64,
        latest_links: bool,
    ) -> Self {
        HokanFs {
            table: Table::new(entries, latest_links),
            trees: Mutex::new(Lru::new(TREES_CACHED)),
            blobs: Blobs::new(repo.clone(), cache_bytes, readahead),
            repo,
            open: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
        }
    }

    fn tree(&self, id: &TreeId) -> Result<Arc<Tree>, Errno> {
        if let Some(t) = self.trees.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(t);
        }
        let t = Arc::new(
            self.repo
                .read_tree(id)
                .map_err(|e| errno(&format!("reading tree {}", id.short()), e))?,
        );
        self.trees
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(*id, t.clone(), 1);
        Ok(t)
    }

    fn inode(&self, ino: INodeNo) -> Result<Arc<Inode>, Errno> {
        self.table.get(ino.0).ok_or(Errno::ENOENT)
    }

    fn attr(&self, ino: Ino, inode: &Inode) -> FileAttr {
        let dir = |time: Timestamp, nlink: u32| {
            let t = system_time(time);
            FileAttr {
                ino: INodeNo(ino),
                size: 0,
                blocks: 0,
                atime: t,
                mtime: t,
                ctime: t,
                crtime: t,
                kind: FileType::Directory,
                perm: 0o555,
                nlink,
                uid: self.uid,
                gid: self.gid,
                rdev: 0,
                blksize: 4096,
                flags: 0,
            }
        };
        match &inode.kind {
            Kind::Virtual { children, time } => {
                let links = children.iter().filter(|(n, _)| n == b"latest").count();
                dir(*time, (2 + children.len() - links) as u32)
            }
            Kind::Root { time, .. } => dir(*time, 1),
            Kind::Link { target, time } => FileAttr {
                kind: FileType::Symlink,
                perm: 0o777,
                size: target.len() as u64,
                nlink: 1,
                ..dir(*time, 1)
            },
            Kind::Node { node, .. } => node_attr(ino, node),
        }
    }

    /// The entry `name` of directory `parent`, numbered.
    fn find(&self, parent: Ino, name: &[u8]) -> Result<Ino, Errno> {
        let dir = self.table.get(parent).ok_or(Errno::ENOENT)?;
        match &dir.kind {
            Kind::Virtual { children, .. } => children
                .binary_search_by(|(n, _)| n.as_slice().cmp(name))
                .map(|i| children[i].1)
                .map_err(|_| Errno::ENOENT),
            _ => {
                let (Some(tree), Some(root)) = (dir.tree(), dir.root_of_children(parent)) else {
                    return Err(Errno::ENOTDIR);
                };
                let tree = self.tree(&tree)?;
                let node = tree.get(name).ok_or(Errno::ENOENT)?;
                Ok(self.table.child(parent, root, node))
            }
        }
    }

    /// Directory entries from position `offset` on (0 is `.`, 1 is `..`),
    /// each with the position after it, until `add` says the reply is full.
    fn list(&self, ino: Ino, offset: u64, add: &mut AddEntry<'_>) -> Result<(), Errno> {
        let dir = self.table.get(ino).ok_or(Errno::ENOENT)?;
        let mut pos = offset;
        for (name, target) in [(&b"."[..], ino), (&b".."[..], dir.parent)] {
            if pos < 2 && (pos == 0) == (name == b".") {
                let attr = self.attr(target, &*self.table.get(target).ok_or(Errno::ENOENT)?);
                pos += 1;
                if add(target, pos, name, &attr) {
                    return Ok(());
                }
            }
        }
        let skip = (pos - 2) as usize;
        match &dir.kind {
            Kind::Virtual { children, .. } => {
                for (name, child) in children.iter().skip(skip) {
                    let attr = self.attr(*child, &*self.table.get(*child).ok_or(Errno::ENOENT)?);
                    pos += 1;
                    if add(*child, pos, name, &attr) {
                        break;
                    }
                }
            }
            _ => {
                let (Some(tree), Some(root)) = (dir.tree(), dir.root_of_children(ino)) else {
                    return Err(Errno::ENOTDIR);
                };
                let tree = self.tree(&tree)?;
                for node in tree.nodes.iter().skip(skip) {
                    let child = self.table.child(ino, root, node);
                    pos += 1;
                    if add(child, pos, &node.name, &node_attr(child, node)) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn node(&self, ino: INodeNo) -> Result<Arc<Node>, Errno> {
        match &self.inode(ino)?.kind {
            Kind::Node { node, .. } => Ok(node.clone()),
            _ => Err(Errno::NO_XATTR),
        }
    }
}

/// A snapshot entry's attributes, as it was backed up.
fn node_attr(ino: Ino, node: &Node) -> FileAttr {
    let kind = file_type(node);
    let size = match kind {
        FileType::RegularFile => node.content.iter().map(|c| c.len as u64).sum(),
        FileType::Symlink => node.target.len() as u64,
        _ => 0,
    };
    // Holes take no room, so `du` and `cp --sparse=auto` see sparse files.
    let stored: u64 = node
        .content
        .iter()
        .filter(|c| !c.is_hole())
        .map(|c| c.len as u64)
        .sum();
    let mut perm = (node.mode & 0o7777) as u16;
    if node.kind == NodeKind::Object && perm == 0 {
        // Kubernetes objects and etcd records carry no mode.
        perm = 0o444;
    }
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: stored.div_ceil(512),
        atime: system_time(node.atime),
        mtime: system_time(node.mtime),
        ctime: system_time(node.ctime),
        crtime: system_time(node.mtime),
        kind,
        perm,
        // Directories say 1, "unknown", as btrfs does: counting their
        // subdirectories would read every child tree.
        nlink: match kind {
            FileType::Directory => 1,
            _ if node.hard_link_key().is_some() => node.links.min(u32::MAX as u64) as u32,
            _ => 1,
        },
        uid: node.uid,
        gid: node.gid,
        rdev: fuse_rdev(node),
        // Chunks average 512 KiB: tools that size their reads by it
        // (cp, rsync) then ask for whole chunks' worth.
        blksize: 512 * 1024,
        flags: 0,
    }
}

impl Filesystem for HokanFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Listings come with attributes: `ls -l` of a directory is one
        // round trip per few hundred entries instead of one per entry.
        // Kernels without it simply do not offer it.
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS);
        let _ = config.add_capabilities(InitFlags::FUSE_CACHE_SYMLINKS);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self
            .find(parent.0, name.as_bytes())
            .and_then(|ino| Ok((ino, self.table.get(ino).ok_or(Errno::ENOENT)?)))
        {
            Ok((ino, inode)) => reply.entry(&TTL, &self.attr(ino, &inode), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.inode(ino) {
            Ok(inode) => reply.attr(&TTL, &self.attr(ino.0, &inode)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.inode(ino).map(|i| match &i.kind {
            Kind::Link { target, .. } => Some(target.clone()),
            Kind::Node { node, .. } if node.kind == NodeKind::Symlink => Some(node.target.clone()),
            _ => None,
        }) {
            Ok(Some(target)) => reply.data(&target),
            Ok(None) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let node = match self.inode(ino).map(|i| match &i.kind {
            Kind::Node { node, .. } => Some(node.clone()),
            _ => None,
        }) {
            Ok(Some(node)) if readable(&node) => node,
            Ok(_) => return reply.error(Errno::EISDIR),
            Err(e) => return reply.error(e),
        };
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh, Arc::new(OpenFile::new(node)));
        // The content never changes: the kernel keeps its page cache for
        // the file across opens.
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let file = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .cloned();
        let Some(file) = file else {
            return reply.error(Errno::EBADF);
        };
        match file.read(&self.blobs, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(&format!("reading {:?}", file.node.name_lossy()), e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let r = self.list(ino.0, offset, &mut |child, next, name, attr| {
            reply.add(INodeNo(child), next, attr.kind, OsStr::from_bytes(name))
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let r = self.list(ino.0, offset, &mut |child, next, name, attr| {
            reply.add(
                INodeNo(child),
                next,
                OsStr::from_bytes(name),
                &TTL,
                attr,
                Generation(0),
            )
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, self.table.len() as u64, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let node = match self.node(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match node.xattrs.iter().find(|x| x.name == name.as_bytes()) {
            None => reply.error(Errno::NO_XATTR),
            Some(x) => xattr_reply(&x.value, size, reply),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let names: Vec<u8> = match self.node(ino) {
            Ok(n) => n
                .xattrs
                .iter()
                .flat_map(|x| x.name.iter().copied().chain([0]))
                .collect(),
            Err(_) => Vec::new(),
        };
        xattr_reply(&names, size, reply)
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.inode(ino) {
            Ok(_) if mask.contains(AccessFlags::W_OK) => reply.error(Errno::EROFS),
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

/// getxattr/listxattr's protocol: size 0 asks for the length.
fn xattr_reply(value: &[u8], size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(value.len() as u32)
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE)
    } else {
        reply.data(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_keep_major_and_minor() {
        // makedev(8, 1) = /dev/sda1; makedev(259, 70000) needs the high bits.
        let glibc = |major: u64, minor: u64| {
            (minor & 0xff)
                | ((major & 0xfff) << 8)
                | ((minor & !0xff) << 12)
                | ((major & !0xfff) << 32)
        };
        let dev = |rdev| Node {
            rdev,
            ..Node::new("dev", NodeKind::CharDevice)
        };
        assert_eq!(fuse_rdev(&dev(glibc(8, 1))), (8 << 8) | 1);
        let r = fuse_rdev(&dev(glibc(259, 70000)));
        assert_eq!((r & 0xfff00) >> 8, 259);
        assert_eq!((r & 0xff) | ((r >> 12) & 0xfff00), 70000);
    }

    #[test]
    fn times_before_1970_are_kept() {
        let t = system_time(Timestamp {
            secs: -10,
            nanos: 5,
        });
        assert_eq!(
            UNIX_EPOCH.duration_since(t).unwrap(),
            Duration::new(9, 999_999_995)
        );
    }
}
