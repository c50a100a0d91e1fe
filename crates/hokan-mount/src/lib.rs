//! A read-only FUSE view of a hokan repository, for `hokan mount`:
//! browse snapshots with any tool (`ls`, `cp`, `diff -r`, `rsync`) instead
//! of restoring them first.
//!
//! ```text
//! MOUNTPOINT/
//!   snapshots/2026-11-23T18:00:00Z/…   every snapshot by its time (UTC);
//!   snapshots/2026-11-23T18:00:00Z-1/… a second one in the same second
//!   snapshots/latest -> …              the newest
//!   ids/3fa9c2e1/…                     by short id
//!   hosts/<host>/<time>/…, latest      by host
//!   tags/<tag>/<time>/…, latest        by tag
//! ```
//!
//! A tour of the modules, in the order a request meets them:
//!
//! | module      | its one job                                                     |
//! |-------------|-----------------------------------------------------------------|
//! | [`layout`]  | the names of the top: unique times, short ids, hosts, tags      |
//! | `inodes`    | inode numbers, stable for the mount's life; hard links share one |
//! | `fs`        | the FUSE operations: lookup, getattr, readdir(plus), read, xattrs |
//! | `content`   | file bytes: a shared LRU of decoded chunks, parallel read-ahead |
//! | `cache`     | the small weighted LRU both caches use                           |
//!
//! Entries keep the mode, owner, times, size, link targets, device numbers
//! and extended attributes they were backed up with; holes read as zeros.
//! The mount is read-only (`ro`): every write fails with EROFS.
//!
//! The mount goes through the `fuser` crate's pure-Rust mounting: mount(2)
//! as root, else the setuid `fusermount3`/`fusermount` helper; no libfuse.
//! [`preflight`] checks what it needs first, so a missing `/dev/fuse` or
//! helper is an error that says what to install instead of a bare errno.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hokan_repo::{OpenOptions, Repository};
//! let repo = Repository::open("/srv/backup", b"secret", OpenOptions::default())?;
//! let snapshots = repo.snapshots()?;
//! let repo = repo.load_index()?;
//! let mounted = hokan_mount::mount(repo, snapshots, "/mnt/hokan".as_ref(), &Default::default())?;
//! // ... read /mnt/hokan/snapshots/latest/... ...
//! mounted.unmount()?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod cache;
mod content;
mod fs;
mod helper;
mod inodes;
pub mod layout;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{BackgroundSession, Config, MountOption, Session, SessionACL};
use hokan_repo::{IndexedRepository, SnapshotEntry};

/// Why a mount or unmount failed; each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The mount point is missing, not a directory, or not empty.
    #[error("{path}: {reason}; give an empty directory (mkdir -p {path})")]
    MountPoint {
        /// The mount point as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A FUSE file system is still mounted at the mount point, but the
    /// process that served it is gone (killed, crashed): every access
    /// fails with "transport endpoint is not connected".
    #[error(
        "{path} is still mounted by a FUSE file system whose process is gone (transport \
         endpoint is not connected, as after a killed mount); unmount it with \
         `fusermount -u {path}` (or `umount {path}` as root), then mount again"
    )]
    StaleMount {
        /// The mount point as given.
        path: String,
    },
    /// No FUSE device on this machine.
    #[error(
        "/dev/fuse does not exist: load the module (modprobe fuse), or in a container \
         pass the device (docker run --device /dev/fuse --cap-add SYS_ADMIN)"
    )]
    NoFuseDevice,
    /// /dev/fuse exists but this user may not open it.
    #[error(
        "/dev/fuse may be opened only by root here (Debian's default is mode 0666: \
         chmod 0666 /dev/fuse), or mount as root"
    )]
    NoFuseAccess,
    /// Not root, and no helper that mounts for ordinary users.
    #[error(
        "neither fusermount3 nor fusermount is installed, and only they let a user who is \
         not root mount: install FUSE (apt-get install fuse3) or run as root"
    )]
    NoHelper,
    /// The kernel or the helper refused the mount.
    #[error(
        "mounting {path} failed: {source}; FUSE needs /dev/fuse and root or fusermount3 (apt-get install fuse3)"
    )]
    Mount {
        /// The mount point.
        path: String,
        /// What the kernel or helper said.
        source: std::io::Error,
    },
    /// The unmount failed.
    #[error(
        "unmounting {path} failed: {source}; try `fusermount -u -z {path}` or `umount -l {path}`"
    )]
    Unmount {
        /// The mount point.
        path: String,
        /// What the kernel said.
        source: std::io::Error,
    },
}

/// How to mount.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Bytes of a file fetched ahead of a reader that reads in order.
    pub readahead: u64,
    /// Bytes of decoded chunks kept for all files together (at least
    /// three read-ahead windows, or read-ahead would evict itself).
    pub cache: u64,
    /// Threads answering the kernel.
    pub threads: usize,
    /// Let other users see the mount (`allow_other`; a user who is not
    /// root needs `user_allow_other` in /etc/fuse.conf).
    pub allow_other: bool,
    /// Show the `latest` links. Off when a snapshot file could not be
    /// read: that one may be the newest, and a link to an older snapshot
    /// named `latest` would mislead.
    pub latest_links: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            readahead: 16 << 20,
            cache: 64 << 20,
            threads: 4,
            allow_other: false,
            latest_links: true,
        }
    }
}

/// The helper that mounts for users who are not root, as fuser looks
/// for it: `$FUSERMOUNT_PATH`, else `fusermount3` or `fusermount` in PATH.
pub fn helper() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FUSERMOUNT_PATH") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["fusermount3", "fusermount"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .chain([PathBuf::from("/bin"), PathBuf::from("/sbin")])
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Whether this process may mount without the helper.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Checks everything a mount at `mountpoint` needs that can be checked
/// without mounting: an empty directory, `/dev/fuse`, and for users who
/// are not root the fusermount helper.
pub fn preflight(mountpoint: &Path) -> Result<(), Error> {
    let bad = |reason: String| Error::MountPoint {
        path: mountpoint.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(mountpoint).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOTCONN) {
            Error::StaleMount {
                path: mountpoint.display().to_string(),
            }
        } else {
            bad(e.to_string())
        }
    })?;
    if !meta.is_dir() {
        return Err(bad("not a directory".into()));
    }
    let mut list = std::fs::read_dir(mountpoint).map_err(|e| bad(e.to_string()))?;
    if list.next().is_some() {
        return Err(bad("not empty (is something already mounted there?)".into()));
    }
    if !Path::new("/dev/fuse").exists() {
        return Err(Error::NoFuseDevice);
    }
    if !is_root() {
        if helper().is_none() {
            return Err(Error::NoHelper);
        }
        // The helper opens the device as the user who called it.
        let dev = c"/dev/fuse";
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::access(dev.as_ptr(), libc::R_OK | libc::W_OK) } != 0 {
            return Err(Error::NoFuseAccess);
        }
    }
    Ok(())
}

/// A mounted repository; dropping it unmounts (lazily, without waiting).
pub struct Mounted {
    /// Taken by [`Mounted::unmount`] and [`Mounted::wait`].
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
}

/// How an unmount went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmounted {
    /// Gone, and the file system's threads stopped.
    Cleanly,
    /// Something was still using the mount, so it was detached (`umount
    /// -l`): gone from the tree, torn down when the last user lets go.
    Lazily,
}

impl Mounted {
    /// The mount point.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Whether the file system has stopped by itself (someone ran
    /// `fusermount -u` or `umount`).
    pub fn is_finished(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    /// Waits until the file system stops by itself.
    pub fn wait(mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.join();
        }
    }

    /// Unmounts. A mount in use (a shell's working directory, an open
    /// file) cannot be unmounted at once; it is detached instead, which
    /// the result says.
    pub fn unmount(mut self) -> Result<Unmounted, Error> {
        let path = self.mountpoint.clone();
        let Some(session) = self.session.take() else {
            return Ok(Unmounted::Cleanly);
        };
        if session.guard.is_finished() {
            let _ = session.join();
            return Ok(Unmounted::Cleanly);
        }
        if !is_root() {
            // The helper made this mount, so it unmounts it; a plain
            // unmount fails while the mount is busy.
            let helper = helper().ok_or(Error::NoHelper)?;
            let out = std::process::Command::new(helper)
                .args(["-u", "--"])
                .arg(&path)
                .output()
                .map_err(|source| Error::Unmount {
                    path: path.display().to_string(),
                    source,
                })?;
            if !out.status.success() {
                // Busy, most likely; a real failure shows in the detach.
                // The session is left to end with the process.
                detach(&path)?;
                return Ok(Unmounted::Lazily);
            }
        }
        // As root, umount(2); for users it is unmounted already. Either
        // way this then waits for the file system's threads.
        match session.umount_and_join() {
            Ok(()) => Ok(Unmounted::Cleanly),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                detach(&path)?;
                Ok(Unmounted::Lazily)
            }
            Err(source) => Err(Error::Unmount {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // As root, fuser's session unmounts when dropped; a mount made by
        // the helper must be taken down by it.
        if self.session.take().is_some() && !is_root() {
            let _ = detach(&self.mountpoint);
        }
    }
}

/// Detaches a busy mount: umount2(MNT_DETACH) as root, else the helper's
/// `-u -z`.
fn detach(path: &Path) -> Result<(), Error> {
    let fail = |source| Error::Unmount {
        path: path.display().to_string(),
        source,
    };
    if is_root() {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|e| fail(std::io::Error::other(e)))?;
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
            return Ok(());
        }
        return Err(fail(std::io::Error::last_os_error()));
    }
    let helper = helper().ok_or_else(|| fail(std::io::Error::other("no fusermount helper")))?;
    let out = std::process::Command::new(helper)
        .args(["-u", "-z", "--"])
        .arg(path)
        .output()
        .map_err(fail)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )))
    }
}

/// Mounts `snapshots` of `repo` read-only at `mountpoint` and serves them
/// from background threads until the result is unmounted or dropped.
pub fn mount(
    repo: IndexedRepository,
    snapshots: Vec<SnapshotEntry>,
    mountpoint: &Path,
    options: &MountOptions,
) -> Result<Mounted, Error> {
    preflight(mountpoint)?;
    // The helper and /proc/mounts speak of absolute paths.
    let mountpoint = &mountpoint.canonicalize().map_err(|e| Error::MountPoint {
        path: mountpoint.display().to_string(),
        reason: e.to_string(),
    })?;
    let cache = options.cache.max(options.readahead.saturating_mul(3));
    let fs = fs::HokanFs::new(
        Arc::new(repo),
        &snapshots,
        cache,
        options.readahead,
        options.latest_links,
    );
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::FSName("hokan".into()),
        MountOption::Subtype("hokan".into()),
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if options.allow_other {
        config.acl = SessionACL::All;
    }
    config.n_threads = Some(options.threads.max(1));
    let failed = |source| Error::Mount {
        path: mountpoint.display().to_string(),
        source,
    };
    let session = if is_root() {
        fuser::spawn_mount(fs, mountpoint, &config).map_err(failed)?
    } else {
        let mut opts = "ro,nosuid,nodev,fsname=hokan,subtype=hokan".to_string();
        if options.allow_other {
            opts.push_str(",allow_other");
        }
        let helper = helper().ok_or(Error::NoHelper)?;
        let fd = helper::mount(&helper, mountpoint, &opts).map_err(failed)?;
        let session = Session::from_fd(fs, fd, config.acl, config.clone());
        // From here on the mount exists: a failure must take it down.
        match session.and_then(Session::spawn) {
            Ok(s) => s,
            Err(e) => {
                let _ = detach(mountpoint);
                return Err(failed(e));
            }
        }
    };
    Ok(Mounted {
        session: Some(session),
        mountpoint: mountpoint.to_path_buf(),
    })
}
