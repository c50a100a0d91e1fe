//! Reading a file's metadata into a [`Node`], and applying it on restore.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::Metadata;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;

use rustix::fs::{AtFlags, Gid, Mode, Uid, XattrFlags};

use super::beneath::{chmod_at, proc_path};
use crate::tree::{Node, NodeKind, Timestamp, Xattr};

/// A problem with one path that does not stop the whole operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The path concerned.
    pub path: std::path::PathBuf,
    /// What happened.
    pub message: String,
    /// Which problem it is, where a caller may act on it.
    pub kind: WarningKind,
}

/// The problems a [`Warning`] names that a caller may want to tell apart
/// (a command-line tool adds the command that helps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// Any other problem.
    #[default]
    Other,
    /// A restore found a block device where a device's content was to be
    /// written as an image file, and left the device alone: restoring to
    /// the device itself writes the content onto it.
    DeviceKept,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// User and group names by id, looked up once each.
#[derive(Debug, Default)]
pub struct NameCache {
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
    uids: Mutex<HashMap<String, Option<u32>>>,
    gids: Mutex<HashMap<String, Option<u32>>>,
}

/// Runs a `getpw*_r` / `getgr*_r` lookup with a growing buffer. `call`
/// gets an entry to fill, the buffer, and the result pointer, and returns
/// the function's error code; `read` maps a found entry.
fn lookup<E, T>(
    call: impl Fn(*mut E, &mut [libc::c_char], *mut *mut E) -> i32,
    read: impl Fn(&E) -> T,
) -> Option<T> {
    let mut len = 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        // SAFETY: the entry is plain C data that the call fills (zeroed is a
        // valid empty value); `result` is set to point at it or to null.
        let mut entry: E = unsafe { std::mem::zeroed() };
        let mut result: *mut E = std::ptr::null_mut();
        match call(&mut entry, &mut buf, &mut result) {
            0 if result.is_null() => return None,
            0 => return Some(read(&entry)),
            libc::ERANGE if len < 1 << 20 => len *= 4,
            _ => return None,
        }
    }
}

/// A value from a cache map, computed once.
fn cached<K: std::hash::Hash + Eq, V: Clone>(
    map: &Mutex<HashMap<K, V>>,
    key: K,
    compute: impl FnOnce() -> V,
) -> V {
    map.lock()
        .expect("names")
        .entry(key)
        .or_insert_with(compute)
        .clone()
}

// SAFETY (for the reads below): a found entry's name points into the
// buffer, which outlives the read.
fn pw_name(pw: &libc::passwd) -> String {
    unsafe { CStr::from_ptr(pw.pw_name) }
        .to_string_lossy()
        .into_owned()
}

fn gr_name(gr: &libc::group) -> String {
    unsafe { CStr::from_ptr(gr.gr_name) }
        .to_string_lossy()
        .into_owned()
}

impl NameCache {
    /// The name of user `uid`, or "" if the system has none.
    pub fn user(&self, uid: u32) -> String {
        cached(&self.users, uid, || {
            // SAFETY: the buffer and its length match; the pointers are valid.
            lookup(
                |e, buf, r| unsafe { libc::getpwuid_r(uid, e, buf.as_mut_ptr(), buf.len(), r) },
                pw_name,
            )
            .unwrap_or_default()
        })
    }

    /// The name of group `gid`, or "" if the system has none.
    pub fn group(&self, gid: u32) -> String {
        cached(&self.groups, gid, || {
            // SAFETY: as above.
            lookup(
                |e, buf, r| unsafe { libc::getgrgid_r(gid, e, buf.as_mut_ptr(), buf.len(), r) },
                gr_name,
            )
            .unwrap_or_default()
        })
    }

    /// The uid this system gives the user `name`.
    pub fn uid_of(&self, name: &str) -> Option<u32> {
        let cname = CString::new(name).ok().filter(|_| !name.is_empty())?;
        cached(&self.uids, name.to_string(), || {
            // SAFETY: as above; `cname` is NUL-terminated.
            lookup(
                |e, buf, r| unsafe {
                    libc::getpwnam_r(cname.as_ptr(), e, buf.as_mut_ptr(), buf.len(), r)
                },
                |pw| pw.pw_uid,
            )
        })
    }

    /// The gid this system gives the group `name`.
    pub fn gid_of(&self, name: &str) -> Option<u32> {
        let cname = CString::new(name).ok().filter(|_| !name.is_empty())?;
        cached(&self.gids, name.to_string(), || {
            // SAFETY: as above.
            lookup(
                |e, buf, r| unsafe {
                    libc::getgrnam_r(cname.as_ptr(), e, buf.as_mut_ptr(), buf.len(), r)
                },
                |gr| gr.gr_gid,
            )
        })
    }
}

pub(super) fn kind_of(md: &Metadata) -> NodeKind {
    let t = md.file_type();
    if t.is_dir() {
        NodeKind::Dir
    } else if t.is_symlink() {
        NodeKind::Symlink
    } else if t.is_fifo() {
        NodeKind::Fifo
    } else if t.is_char_device() {
        NodeKind::CharDevice
    } else if t.is_block_device() {
        NodeKind::BlockDevice
    } else if t.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    }
}

/// A node for `path` from its `lstat` metadata: everything but a file's
/// content and a directory's subtree. Extended attributes that cannot be
/// read are reported as warnings.
///
/// `same` is the parent snapshot's node for this entry when its kind,
/// inode and change time are the same now: a change of a symlink's target
/// or of an extended attribute changes the change time, so both are taken
/// from it rather than read again. Reading a symlink again would update its
/// access time, and so change the tree; listing extended attributes again
/// was one path lookup of every unchanged file's three.
pub fn node_from(
    path: &Path,
    name: &[u8],
    md: &Metadata,
    names: &NameCache,
    same: Option<&Node>,
    warnings: &mut Vec<Warning>,
) -> io::Result<Node> {
    let kind = kind_of(md);
    let mut node = Node::new(name, kind);
    node.mode = md.mode() & 0o7777;
    node.uid = md.uid();
    node.gid = md.gid();
    node.user = names.user(md.uid());
    node.group = names.group(md.gid());
    node.mtime = Timestamp {
        secs: md.mtime(),
        nanos: md.mtime_nsec() as u32,
    };
    node.atime = Timestamp {
        secs: md.atime(),
        nanos: md.atime_nsec() as u32,
    };
    node.ctime = Timestamp {
        secs: md.ctime(),
        nanos: md.ctime_nsec() as u32,
    };
    node.device = md.dev();
    node.inode = md.ino();
    node.links = md.nlink();
    match kind {
        NodeKind::File => node.size = md.size(),
        NodeKind::Symlink => {
            node.target = match same.filter(|p| p.target.len() as u64 == md.size()) {
                Some(p) => p.target.clone(),
                None => std::fs::read_link(path)?.into_os_string().into_vec(),
            }
        }
        NodeKind::CharDevice | NodeKind::BlockDevice => node.rdev = md.rdev(),
        _ => {}
    }
    node.xattrs = match same {
        Some(p) => p.xattrs.clone(),
        None => read_xattrs(path, warnings),
    };
    Ok(node)
}

use std::os::unix::ffi::OsStringExt;

fn read_xattrs(path: &Path, warnings: &mut Vec<Warning>) -> Vec<Xattr> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        // File systems without extended attributes simply have none.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Vec::new(),
        Err(e) => {
            warnings.push(Warning {
                path: path.to_path_buf(),
                message: format!("listing extended attributes: {e}"),
                kind: WarningKind::Other,
            });
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for name in names {
        match xattr::get(path, &name) {
            Ok(Some(value)) => out.push(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            }),
            Ok(None) => {}
            Err(e) => warnings.push(Warning {
                path: path.to_path_buf(),
                message: format!("reading extended attribute {}: {e}", name.to_string_lossy()),
                kind: WarningKind::Other,
            }),
        }
    }
    out.sort();
    out
}

/// How much of a node's metadata to restore.
#[derive(Clone, Copy, Debug)]
pub struct ApplyOptions {
    /// Restore owners (needs root): by name where this system knows the
    /// name, else by the stored id.
    pub owners: bool,
}

/// What the restore knows about an entry it just created itself: its owner
/// is the process's, and its mode is what it was created with. Saves the
/// `chown` and `chmod` calls that would change nothing.
#[derive(Clone, Copy, Debug)]
pub struct Created {
    /// The mode it has now (creation mode less the umask).
    pub mode: u32,
}

/// This process's file mode creation mask, read without changing it.
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// Where metadata is applied: an entry open through its own descriptor
/// (files and directories), or one named in an open directory (symlinks,
/// fifos, device nodes, entries left as they were). Neither follows a
/// symlink or a path that may change underneath.
#[derive(Clone, Copy, Debug)]
pub(crate) enum At<'a> {
    /// The entry itself, open.
    Fd(BorrowedFd<'a>),
    /// The entry `name` of the open directory.
    Name(BorrowedFd<'a>, &'a OsStr),
}

/// Applies ownership, mode, extended attributes and times to a restored
/// entry, in the order that keeps each from undoing the others (chown
/// clears setuid bits; every change but the last touches ctime, which
/// cannot be restored). Failures are returned as warnings about `shown`.
pub(crate) fn apply(
    at: At<'_>,
    shown: &Path,
    node: &Node,
    options: ApplyOptions,
    names: &NameCache,
    created: Option<Created>,
) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let mut warn = |what: &str, e: io::Error| {
        warnings.push(Warning {
            path: shown.to_path_buf(),
            message: format!("{what}: {e}"),
            kind: WarningKind::Other,
        })
    };
    let mut chowned = false;
    if options.owners {
        let uid = names.uid_of(&node.user).unwrap_or(node.uid);
        let gid = names.gid_of(&node.group).unwrap_or(node.gid);
        let ours = created.is_some()
            && uid == rustix::process::geteuid().as_raw()
            && gid == rustix::process::getegid().as_raw();
        if !ours {
            chowned = true;
            let (u, g) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
            let done = match at {
                At::Fd(fd) => rustix::fs::fchown(fd, u, g),
                At::Name(dir, name) => {
                    rustix::fs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)
                }
            };
            if let Err(e) = done {
                warn("setting owner", e.into());
            }
        }
    }
    let mode_right = !chowned && created.is_some_and(|c| c.mode == node.mode & 0o7777);
    if node.kind != NodeKind::Symlink && !mode_right {
        let mode = node.mode & 0o7777;
        let done = match at {
            At::Fd(fd) => {
                rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(io::Error::from)
            }
            At::Name(dir, name) => chmod_at(dir, name, mode),
        };
        if let Err(e) = done {
            warn("setting permissions", e);
        }
    }
    for x in &node.xattrs {
        let name = OsStr::from_bytes(&x.name);
        let done = match at {
            At::Fd(fd) => rustix::fs::fsetxattr(fd, name, &x.value, XattrFlags::empty()),
            // No `*at` form: through the directory's descriptor in /proc,
            // not following the entry if it is a symlink.
            At::Name(dir, entry) => {
                rustix::fs::lsetxattr(proc_path(dir, entry), name, &x.value, XattrFlags::empty())
            }
        };
        if let Err(e) = done {
            warn(
                &format!(
                    "setting extended attribute {}",
                    String::from_utf8_lossy(&x.name)
                ),
                e.into(),
            );
        }
    }
    if let Err(e) = set_times(at, node) {
        warn("setting times", e);
    }
    warnings
}

/// Sets access and modification times without following symlinks.
pub(crate) fn set_times(at: At<'_>, node: &Node) -> io::Result<()> {
    let ts = |t: Timestamp| rustix::fs::Timespec {
        tv_sec: t.secs,
        tv_nsec: t.nanos as _,
    };
    let times = rustix::fs::Timestamps {
        last_access: ts(node.atime),
        last_modification: ts(node.mtime),
    };
    match at {
        At::Fd(fd) => rustix::fs::futimens(fd, &times),
        At::Name(dir, name) => rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW),
    }
    .map_err(io::Error::from)
}

/// Creates a fifo or device node `name` in `dir`.
pub(crate) fn make_special(dir: BorrowedFd<'_>, name: &OsStr, node: &Node) -> io::Result<()> {
    let kind = match node.kind {
        NodeKind::Fifo => rustix::fs::FileType::Fifo,
        NodeKind::CharDevice => rustix::fs::FileType::CharacterDevice,
        NodeKind::BlockDevice => rustix::fs::FileType::BlockDevice,
        other => {
            return Err(io::Error::other(format!(
                "{} is not a special file",
                other.name()
            )));
        }
    };
    rustix::fs::mknodat(
        dir,
        name,
        kind,
        Mode::from_raw_mode(node.mode & 0o777),
        node.rdev as _,
    )
    .map_err(io::Error::from)
}

/// Whether this process runs as root (and so may restore owners).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_root_and_unknown_ids() {
        let n = NameCache::default();
        assert_eq!(n.user(0), "root");
        assert_eq!(n.uid_of("root"), Some(0));
        assert_eq!(n.gid_of(&n.group(0)), Some(0));
        assert_eq!(n.user(4_000_000_000), "");
        assert_eq!(n.uid_of("no-such-user-hokan"), None);
        assert_eq!(n.uid_of(""), None);
    }
}
