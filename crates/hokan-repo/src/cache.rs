//! A local cache of the small encrypted objects (index files, snapshots),
//! so opening a remote repository a second time downloads nothing old, and
//! of the merged index as a mapped run ([`crate::index_cache`]).
//!
//! Cached files are the stored bytes, still encrypted, under
//! `<cache base>/<repository id>/<kind>/<id>`, checked against their id
//! (BLAKE3 of the bytes) on every read. A local repository's objects are
//! on this machine already: its cache ([`Cache::index_only`]) holds only
//! the run, which is what keeps the memory of a process opening it bounded.
//!
//! Files are written under a temporary name and renamed; a process killed
//! meanwhile leaves its temporary file behind, so opening a cache removes
//! temporary files left for longer than [`STALE_TEMPORARY`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hokan_core::Id;

use crate::error::{Error, Result};
use crate::object::object_id;

/// Where caches go: `$HOKAN_CACHE_DIR`, else `$XDG_CACHE_HOME/hokan`, else
/// `~/.cache/hokan`.
pub fn default_base() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("HOKAN_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("hokan"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hokan"))
}

/// Temporary files (names starting `.tmp`) in a cache directory older than
/// this were left by a killed process: a live writer keeps writing to its
/// file, and the largest, a run of 100 M entries, is written in minutes.
pub const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

/// One repository's cache directory.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
    /// Whether objects are cached, or only the mapped index.
    objects: bool,
}

impl Cache {
    /// The cache of repository `repo_id` under `base`, created if missing.
    pub fn open(base: &Path, repo_id: &Id) -> Result<Self> {
        let dir = base.join(repo_id.to_hex());
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating cache {}", dir.display()), e))?;
        remove_stale_temporaries(&dir, STALE_TEMPORARY);
        Ok(Cache { dir, objects: true })
    }

    /// [`open`](Self::open), for a repository whose objects are read as
    /// cheaply as a cached copy would be (a local one): only the mapped
    /// index is kept, no copies of objects.
    pub fn index_only(base: &Path, repo_id: &Id) -> Result<Self> {
        Ok(Cache {
            objects: false,
            ..Self::open(base, repo_id)?
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether copies of objects are kept (not for a local repository).
    pub fn holds_objects(&self) -> bool {
        self.objects
    }

    /// A cached object, if present and intact (a damaged one is dropped).
    pub fn get(&self, kind: &str, id: &Id) -> Option<Vec<u8>> {
        if !self.objects {
            return None;
        }
        let path = self.dir.join(kind).join(id.to_hex());
        let bytes = std::fs::read(&path).ok()?;
        if object_id(&bytes) != *id {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some(bytes)
    }

    /// Stores an object. Failures are ignored: the cache is an optimisation.
    pub fn put(&self, kind: &str, id: &Id, bytes: &[u8]) {
        if !self.objects {
            return;
        }
        let dir = self.dir.join(kind);
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        let tmp = dir.join(format!(".{}.tmp{}", id.to_hex(), std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, dir.join(id.to_hex()));
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Removes cached objects of `kind` that are no longer in the store.
    pub fn retain(&self, kind: &str, keep: &HashSet<Id>) {
        let Ok(entries) = std::fs::read_dir(self.dir.join(kind)) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let keep_it = name
                .to_str()
                .and_then(Id::from_hex)
                .is_some_and(|id| keep.contains(&id));
            if !keep_it {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Removes files named `.tmp*` directly in `dir` last modified more than
/// `older_than` ago. Failures are ignored: another process may be removing
/// them too, and the cache is an optimisation.
pub fn remove_stale_temporaries(dir: &Path, older_than: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().as_encoded_bytes().starts_with(b".tmp") {
            continue;
        }
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > older_than);
        if stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
