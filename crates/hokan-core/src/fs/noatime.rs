//! Reading files and listing directories without touching access times.
//!
//! A backup records atimes, so its own reads must not move them: under
//! `relatime` the first read after a change would, and the next backup
//! would then store every such entry's tree again (no file data, but a
//! tree per directory). Opening with `O_NOATIME` leaves atime alone; the
//! kernel allows it to the owner and to root, and for anyone else both
//! functions fall back to a plain open.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{Dir, Mode, OFlags};
use rustix::io::Errno;

/// Opens `path` for reading without moving its access time where the
/// kernel allows that.
pub(crate) fn open(path: &Path) -> std::io::Result<File> {
    File::options()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
        .or_else(|_| File::open(path))
}

/// The names in `dir`, without `.` and `..`, in the order the file system
/// gives them.
pub(crate) fn names(dir: &Path) -> std::io::Result<Vec<OsString>> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(dir, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => rustix::fs::open(dir, flags, Mode::empty())?,
        other => other?,
    };
    let mut out = Vec::new();
    for entry in Dir::new(fd)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            out.push(OsString::from_vec(name));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    /// A listing leaves the directory's atime where it was, even when
    /// relatime would move it (atime older than mtime).
    #[test]
    fn listing_keeps_the_access_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let f = std::fs::File::open(dir.path()).unwrap();
        f.set_times(std::fs::FileTimes::new().set_accessed(old))
            .unwrap();
        let mut names = super::names(dir.path()).unwrap();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        let atime = std::fs::metadata(dir.path()).unwrap().atime();
        assert_eq!(atime, 1_000_000, "the listing moved the access time");
    }
}
