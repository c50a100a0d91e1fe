//! A local cache of the small encrypted objects (index files, snapshots),
//! so opening a remote repository a second time downloads nothing old.
//!
//! Cached files are the stored bytes, still encrypted, under
//! `<cache base>/<repository id>/<kind>/<id>`, checked against their id
//! (BLAKE3 of the bytes) on every read.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

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

/// One repository's cache directory.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache of repository `repo_id` under `base`, created if missing.
    pub fn open(base: &Path, repo_id: &Id) -> Result<Self> {
        let dir = base.join(repo_id.to_hex());
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating cache {}", dir.display()), e))?;
        Ok(Cache { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A cached object, if present and intact (a damaged one is dropped).
    pub fn get(&self, kind: &str, id: &Id) -> Option<Vec<u8>> {
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
