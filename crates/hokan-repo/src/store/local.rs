//! A repository in a local directory, written durably.
//!
//! Every object is written to a temporary file in its final directory,
//! flushed to stable storage (`fsync`), renamed to its name, and the
//! directory is flushed too, so after a power loss an object either exists
//! whole under its name or not at all. A writer that dies leaves at most a
//! temporary file, which listings skip and `check`/`prune` report and
//! remove ([`LocalStore::temporary_files`]).
//!
//! Ranges of packs are read with positioned reads on kept file handles: a
//! restore reads one blob per small file, and an open per blob would
//! dominate.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::Listed;
use crate::error::{Error, Result};

/// Prefix of temporary files; no object name starts with a dot.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// Whether a file name is a temporary file: ours, or one left by the
/// `object_store` local backend of earlier releases (`name#N`).
pub(crate) fn is_temporary(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) || name.contains('#')
}

/// Open files kept for positioned reads.
const OPEN_FILES: usize = 256;

/// A local directory holding a repository.
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    open: Mutex<HashMap<String, Arc<std::fs::File>>>,
}

/// A local failure on the repository directory itself.
pub(crate) fn failure_at(root: &Path, action: &str, e: std::io::Error) -> Error {
    failure(root, "", action, e)
}

/// A local failure as a storage error that names the location, the
/// object, and for the common cases what happened in plain words.
fn failure(root: &Path, path: &str, action: &str, e: std::io::Error) -> Error {
    let location = root.display().to_string();
    let what = if path.is_empty() {
        action.to_string()
    } else {
        format!("{action} {path}")
    };
    let detail = match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            return Error::Full {
                location,
                detail: format!("{what}: {e}"),
            };
        }
        Some(libc::EROFS) => format!("{what}: the file system is read-only ({e})"),
        Some(libc::ENAMETOOLONG) => format!("{what}: the path is too long ({e})"),
        _ => format!("{what}: {e}"),
    };
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => Error::Denied {
            location,
            detail: format!(
                "{detail}; check that this user may read and write the repository's files and directories"
            ),
        },
        _ => Error::Storage { location, detail },
    }
}

impl LocalStore {
    /// The store at `root`.
    pub fn new(root: PathBuf) -> Self {
        LocalStore {
            root,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn forget_open(&self, path: &str) {
        self.open.lock().expect("open files").remove(path);
    }

    /// Reads a whole object; `None` if there is none.
    pub fn get(&self, path: &str) -> Result<Option<Bytes>> {
        match std::fs::read(self.root.join(path)) {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(failure(&self.root, path, "reading", e)),
        }
    }

    /// Reads `range` of an object: `Ok(None)` if there is no object,
    /// a truncation error if it is shorter.
    pub fn get_range(&self, path: &str, range: Range<u64>) -> Result<Option<Bytes>> {
        use std::os::unix::fs::FileExt;
        let file = {
            let mut open = self.open.lock().expect("open files");
            match open.get(path) {
                Some(f) => f.clone(),
                None => {
                    let f = match std::fs::File::open(self.root.join(path)) {
                        Ok(f) => Arc::new(f),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                        Err(e) => return Err(failure(&self.root, path, "opening", e)),
                    };
                    if open.len() >= OPEN_FILES {
                        open.clear();
                    }
                    open.insert(path.to_string(), f.clone());
                    f
                }
            }
        };
        let want = range.end - range.start;
        let mut buf = vec![0u8; want as usize];
        match file.read_exact_at(&mut buf, range.start) {
            Ok(()) => Ok(Some(Bytes::from(buf))),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(Error::Core(hokan_core::Error::Truncated {
                    what: path.to_string(),
                    reason: format!("wanted {want} bytes at {}", range.start),
                }))
            }
            Err(e) => Err(failure(&self.root, path, "reading", e)),
        }
    }

    /// Writes an object durably (see the module documentation).
    pub fn put(&self, path: &str, bytes: &[u8]) -> Result<()> {
        self.forget_open(path);
        let (dir, full, tmp) = self.write_temp(path, bytes)?;
        let fail = |action: &str, e| failure(&self.root, path, action, e);
        if let Err(e) = std::fs::rename(&tmp, &full) {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail("renaming into place", e));
        }
        sync_dir(&dir).map_err(|e| fail("flushing the directory of", e))
    }

    /// Writes an object durably unless one of that name exists (immutable
    /// mode): the flushed temporary file is hard-linked to the name, which
    /// fails if the name is taken, where a rename would replace it.
    /// Returns the size of the object already there, if one was.
    pub fn put_new(&self, path: &str, bytes: &[u8]) -> Result<Option<u64>> {
        let (dir, full, tmp) = self.write_temp(path, bytes)?;
        let fail = |action: &str, e| failure(&self.root, path, action, e);
        let linked = std::fs::hard_link(&tmp, &full);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return match std::fs::metadata(&full) {
                    Ok(m) => Ok(Some(m.len())),
                    Err(e) => Err(fail("looking up", e)),
                };
            }
            Err(e) => return Err(fail("linking into place", e)),
        }
        sync_dir(&dir).map_err(|e| fail("flushing the directory of", e))?;
        Ok(None)
    }

    /// The first half of a durable write: `bytes` in a flushed temporary
    /// file beside `path`, named so that listings skip it. Returns the
    /// directory, the object's full path and the temporary file's, for
    /// the caller to put in place (rename, or link where it must not
    /// replace); a failed write leaves no temporary file behind.
    fn write_temp(&self, path: &str, bytes: &[u8]) -> Result<(PathBuf, PathBuf, PathBuf)> {
        let full = self.root.join(path);
        let dir = full.parent().unwrap_or(&self.root).to_path_buf();
        let name = full
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let fail = |action: &str, e| failure(&self.root, path, action, e);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return Err(fail("creating the directory of", e));
        }
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| hokan_core::Error::Random(e.to_string()))?;
        let tmp = dir.join(format!("{TEMP_PREFIX}{name}-{}", hex::encode(nonce)));
        let written = (|| {
            let mut f = std::fs::File::options()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail("writing", e));
        }
        Ok((dir, full, tmp))
    }

    /// An object's modification time (Unix seconds), if it exists.
    pub fn modified(&self, path: &str) -> Result<Option<i64>> {
        match std::fs::metadata(self.root.join(path)) {
            Ok(m) => Ok(Some(
                m.modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs() as i64),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(failure(&self.root, path, "looking up", e)),
        }
    }

    /// Deletes an object; a missing one is not an error.
    pub fn delete(&self, path: &str) -> Result<()> {
        self.forget_open(path);
        let full = self.root.join(path);
        match std::fs::remove_file(&full) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(failure(&self.root, path, "deleting", e)),
        }
        // A deletion that a crash undoes would bring back an object prune
        // counted as gone; flush it like a write.
        let dir = full.parent().unwrap_or(&self.root);
        sync_dir(dir).map_err(|e| failure(&self.root, path, "flushing the directory of", e))
    }

    /// Whether an object exists.
    pub fn exists(&self, path: &str) -> Result<bool> {
        match std::fs::metadata(self.root.join(path)) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(failure(&self.root, path, "looking up", e)),
        }
    }

    /// The objects under `dir`, at any depth, sorted, without temporary
    /// files.
    pub fn list(&self, dir: &str) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        self.walk(dir, &mut |name, l| {
            if !is_temporary(name) {
                out.push(l);
            }
        })?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Temporary files under `dir` left by writers that died (or that are
    /// writing right now: look at their age).
    pub fn temporary_files(&self, dir: &str) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        self.walk(dir, &mut |name, l| {
            if is_temporary(name) {
                out.push(l);
            }
        })?;
        Ok(out)
    }

    fn walk(&self, dir: &str, found: &mut dyn FnMut(&str, Listed)) -> Result<()> {
        let base = self.root.join(dir);
        let mut todo = vec![base.clone()];
        while let Some(d) = todo.pop() {
            let entries = match std::fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(failure(&self.root, dir, "listing", e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| failure(&self.root, dir, "listing", e))?;
                let md = match entry.metadata() {
                    Ok(m) => m,
                    // Removed while listed.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(failure(&self.root, dir, "listing", e)),
                };
                let path = entry.path();
                if md.is_dir() {
                    todo.push(path);
                    continue;
                }
                let rel = path
                    .strip_prefix(&base)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let file_name = entry.file_name().to_string_lossy().into_owned();
                let modified = md
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs() as i64);
                found(
                    &file_name,
                    Listed {
                        name: rel,
                        size: md.len(),
                        modified,
                    },
                );
            }
        }
        Ok(())
    }
}

/// Flushes a directory's entries (a rename or unlink in it) to stable
/// storage.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_whole_and_temporaries_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::new(dir.path().to_path_buf());
        s.put("data/ab/abc", b"pack bytes").unwrap();
        assert_eq!(&s.get("data/ab/abc").unwrap().unwrap()[..], b"pack bytes");
        assert_eq!(
            &s.get_range("data/ab/abc", 5..10).unwrap().unwrap()[..],
            b"bytes"
        );
        assert!(s.get_range("data/ab/abc", 5..11).is_err());
        assert!(s.get_range("data/ab/none", 0..1).unwrap().is_none());
        std::fs::write(dir.path().join("data/ab/.tmp-abd-0011"), b"half").unwrap();
        std::fs::write(dir.path().join("data/ab/abe#1"), b"half").unwrap();
        let names: Vec<_> = s
            .list("data")
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(names, ["ab/abc"]);
        assert_eq!(s.temporary_files("data").unwrap().len(), 2);
        s.delete("data/ab/abc").unwrap();
        s.delete("data/ab/abc").unwrap();
        assert!(!s.exists("data/ab/abc").unwrap());
        assert!(s.list("nothing-here").unwrap().is_empty());
    }

    #[test]
    fn put_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::new(dir.path().to_path_buf());
        assert_eq!(s.put_new("index/ab", b"first").unwrap(), None);
        assert_eq!(s.put_new("index/ab", b"second!").unwrap(), Some(5));
        assert_eq!(&s.get("index/ab").unwrap().unwrap()[..], b"first");
        assert!(s.temporary_files("index").unwrap().is_empty());
        assert!(s.modified("index/ab").unwrap().unwrap() > 0);
        assert_eq!(s.modified("index/none").unwrap(), None);
    }
}
