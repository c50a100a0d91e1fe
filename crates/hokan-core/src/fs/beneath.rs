//! Writing below a directory the user named without ever following a
//! symlink, or a path that can change underneath.
//!
//! A restore (and a manifest export) writes into directories that someone
//! else may be able to change while it runs: a directory swapped for a
//! symlink between two calls would send every later file, and every later
//! `chmod`, wherever the symlink points. So the named directory is opened
//! once ([`Beneath`]; following symlinks there is fine, the user named
//! it), and everything below it is reached from open directory handles:
//! names one component at a time with `O_NOFOLLOW`, or a relative path
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`. A symlink in the
//! way fails the open (`ELOOP`) instead of being followed; entries are
//! created with `O_EXCL`, so a symlink planted at a file's name is never
//! written through either.
//!
//! Restore, `hokan-k8s`'s manifest directories and `hokan-etcd`'s export
//! all write through these functions.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Mode of the directories [`Beneath::write_file`] makes: only the owner
/// may look inside, as for the files that may hold Secrets.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode of files that may hold Secrets (etcd databases, Secret manifests),
/// as etcdctl writes its snapshots.
pub const PRIVATE_FILE: u32 = 0o600;

/// Flags opening a directory below a handle, never through a symlink.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// A directory the user named, opened once; see the module documentation.
#[derive(Debug)]
pub struct Beneath {
    fd: OwnedFd,
    path: PathBuf,
    /// The directory [`replace_file`](Self::replace_file) wrote in last,
    /// open: files written one after the other mostly share one.
    last: Mutex<Option<(PathBuf, OwnedFd)>>,
}

impl Beneath {
    /// Opens the directory `path` (symlinks in it are followed: the caller
    /// named it).
    pub fn open(path: &Path) -> io::Result<Beneath> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Beneath {
            fd,
            path: path.to_path_buf(),
            last: Mutex::default(),
        })
    }

    /// Opens the directory `path`, first making it and any missing parents
    /// with `mode` (less the umask).
    pub fn create(path: &Path, mode: u32) -> io::Result<Beneath> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)?;
        Self::open(path)
    }

    /// The path it was opened by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open directory.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens the directory `rel` below, following no symlink anywhere in
    /// `rel`: a symlink or another kind of file there fails the open
    /// (`ENOTDIR` or `ELOOP`). `rel` holds plain names only (no `..`, not absolute).
    pub fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        plain(rel)?;
        if rel.as_os_str().is_empty() {
            return Ok(rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?);
        }
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&self.fd, rel, DIR_FLAGS, Mode::empty(), resolve) {
                Ok(fd) => return Ok(fd),
                // A rename elsewhere on the file system raced the lookup.
                Err(Errno::AGAIN) if tries < 3 => tries += 1,
                // Before Linux 5.6 (or refused by an old seccomp profile,
                // EPERM), or a path longer than one call takes: one name
                // at a time.
                Err(Errno::NOSYS | Errno::PERM | Errno::AGAIN | Errno::NAMETOOLONG) => {
                    return self.walk(rel);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn walk(&self, rel: &Path) -> io::Result<OwnedFd> {
        let mut dir = rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?;
        for name in rel.iter() {
            dir = open_dir_at(dir.as_fd(), name)?;
        }
        Ok(dir)
    }

    /// Makes the directories of `rel` below that are missing, each with
    /// `mode` (less the umask), replacing a symlink or other file in the
    /// way; returns the last one, open.
    pub fn make_dirs(&self, rel: &Path, mode: u32) -> io::Result<OwnedFd> {
        plain(rel)?;
        let mut dir = rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?;
        for name in rel.iter() {
            dir = make_dir_at(dir.as_fd(), name, mode)?.0;
        }
        Ok(dir)
    }

    /// Creates the file `rel` below with `mode` (less the umask), making its
    /// directories as [`make_dirs`](Self::make_dirs) does with
    /// [`PRIVATE_DIR`]. Whatever is at its name (a file, a symlink) is
    /// replaced, never written through; a directory there is an error.
    pub fn replace_file(&self, rel: &Path, mode: u32) -> io::Result<File> {
        let (parent, name) = split(rel)?;
        let mut last = self.last.lock().expect("last directory");
        if last.as_ref().is_none_or(|(p, _)| p != parent) {
            *last = None;
            *last = Some((parent.to_path_buf(), self.make_dirs(parent, PRIVATE_DIR)?));
        }
        let (_, dir) = last.as_ref().expect("just made");
        replace_file_at(dir.as_fd(), name, mode)
    }

    /// Writes `bytes` as the file `rel`, as [`replace_file`](Self::replace_file)
    /// creates it.
    pub fn write_file(&self, rel: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        self.replace_file(rel, mode)?.write_all(bytes)
    }
}

/// Refuses a path that is not a plain relative one.
fn plain(rel: &Path) -> io::Result<()> {
    if rel.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a plain relative path (no `..`, not absolute)",
                rel.display()
            ),
        ))
    }
}

/// `rel` as its parent directory and its last name.
fn split(rel: &Path) -> io::Result<(&Path, &OsStr)> {
    plain(rel)?;
    match (rel.parent(), rel.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an empty path names no file",
        )),
    }
}

/// Opens the directory `name` in `dir`, not following a symlink there.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())?)
}

/// Whether an open's failure says something other than a directory is
/// there (a symlink refused by `O_NOFOLLOW`, a file).
fn not_a_dir(e: Errno) -> bool {
    matches!(e, Errno::LOOP | Errno::NOTDIR)
}

/// Makes the directory `name` in `dir` with `mode` (less the umask), or
/// opens the directory already there; a symlink or other file in the way is
/// removed first. Returns it open, and whether it was made.
pub fn make_dir_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<(OwnedFd, bool)> {
    // Someone replacing the entry as fast as it is removed gets an error,
    // not an endless loop.
    for _ in 0..3 {
        let made = match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(e) => return Err(e.into()),
        };
        match rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => return Ok((fd, made)),
            // Something else is in the way: a directory must replace it
            // for anything below to be made.
            Err(e) if not_a_dir(e) => remove_at(dir, name)?,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other(
        "something else keeps taking the directory's place",
    ))
}

/// Creates the new file `name` in `dir` for writing, with `mode` (less the
/// umask); fails if anything, a symlink included, is at the name.
pub fn create_new_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::openat(
        dir,
        name,
        flags,
        Mode::from_raw_mode(mode),
    )?))
}

/// Creates the file `name` in `dir` as [`create_new_at`] does, first
/// removing a file or symlink at the name (never writing through it).
pub fn replace_file_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<File> {
    for _ in 0..3 {
        match create_new_at(dir, name, mode) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => remove_at(dir, name)?,
            other => return other,
        }
    }
    Err(io::Error::other(
        "something else keeps taking the file's place",
    ))
}

/// Removes the entry `name` in `dir` if it is not a directory; one that is
/// already gone is fine.
pub fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) => Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            format!("a directory is in the way of {}", Path::new(name).display()),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The path that reaches entry `name` of the open directory `dir` through
/// `/proc`, for the calls that have no `*at` form (`lsetxattr`): the
/// directory is the one open, whatever its path is now, and only `name`
/// is looked up in it.
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(name);
    p
}

/// Changes the mode of entry `name` of `dir` without following a symlink
/// there (`chmod` has no no-follow form before Linux 6.6): the entry is
/// opened as a path (`O_PATH | O_NOFOLLOW`), found not to be a symlink,
/// and changed through `/proc`.
pub(crate) fn chmod_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink {
        return Err(Errno::LOOP.into());
    }
    let at = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::chmodat(
        rustix::fs::CWD,
        at.as_str(),
        Mode::from_raw_mode(mode),
        AtFlags::empty(),
    )?)
}

/// Creates the new file `path` (which the caller named) readable and
/// writable by its owner only ([`PRIVATE_FILE`]), as etcdctl writes a
/// snapshot; fails if anything, a symlink included, is there.
pub fn create_private(path: &Path) -> io::Result<File> {
    File::options()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(PRIVATE_FILE)
        .open(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    use super::*;

    /// How the kernel refuses a symlink where a directory is opened with
    /// `O_NOFOLLOW | O_DIRECTORY`.
    fn refused(e: &io::Error) -> bool {
        matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
    }

    /// A symlink anywhere below is refused, and one in the way of a new
    /// directory or file is replaced, never followed.
    #[test]
    fn symlinks_below_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (target, outside) = (dir.path().join("t"), dir.path().join("outside"));
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
        let b = Beneath::create(&target, 0o755).unwrap();
        symlink(&outside, target.join("a")).unwrap();
        let e = b.open_dir(Path::new("a")).unwrap_err();
        assert!(refused(&e), "{e}");
        assert!(b.open_dir(Path::new("../t")).is_err());

        b.write_file(Path::new("a/b/c.json"), b"{}", PRIVATE_FILE)
            .unwrap();
        assert!(
            std::fs::symlink_metadata(target.join("a"))
                .unwrap()
                .is_dir()
        );
        symlink(outside.join("x"), target.join("a/b/d.json")).unwrap();
        b.write_file(Path::new("a/b/d.json"), b"{}", PRIVATE_FILE)
            .unwrap();
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert_eq!(std::fs::metadata(&outside).unwrap().mode() & 0o777, 0o700);
        let md = std::fs::symlink_metadata(target.join("a/b/d.json")).unwrap();
        assert!(md.is_file());
        assert_eq!(md.mode() & 0o777, 0o600);
        let md = std::fs::metadata(target.join("a/b")).unwrap();
        assert_eq!(md.mode() & 0o777, 0o700);

        // chmod through /proc changes the entry, and refuses a symlink.
        let d = b.open_dir(Path::new("a/b")).unwrap();
        chmod_at(d.as_fd(), OsStr::new("c.json"), 0o640).unwrap();
        let md = std::fs::metadata(target.join("a/b/c.json")).unwrap();
        assert_eq!(md.mode() & 0o777, 0o640);
        symlink(&outside, target.join("a/b/l")).unwrap();
        assert!(chmod_at(d.as_fd(), OsStr::new("l"), 0o777).is_err());
        assert_eq!(std::fs::metadata(&outside).unwrap().mode() & 0o777, 0o700);
    }

    /// One name at a time reaches what openat2 reaches, and refuses the same.
    #[test]
    fn the_walk_refuses_symlinks_too() {
        let dir = tempfile::tempdir().unwrap();
        let b = Beneath::create(dir.path(), 0o755).unwrap();
        b.make_dirs(Path::new("x/y"), 0o755).unwrap();
        symlink(dir.path().join("x"), dir.path().join("x/y/z")).unwrap();
        assert!(b.walk(Path::new("x/y")).is_ok());
        let e = b.walk(Path::new("x/y/z")).unwrap_err();
        assert!(refused(&e), "{e}");
    }
}
