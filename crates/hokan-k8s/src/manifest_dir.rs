//! [`ManifestDir`]: objects as JSON files in a directory, in the tree layout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hokan_core::fs::beneath::{Beneath, PRIVATE_DIR, PRIVATE_FILE};

use crate::layout;
use crate::object::{
    ObjectAttrs, ObjectEntry, ObjectHead, ObjectKey, StoredObject, split_api_version,
};
use crate::seam::{ObjectSink, ObjectSource};
use crate::{BackupSummary, Error, Result};

/// The file [`ManifestDir`] writes a finished backup's summary to.
pub const SUMMARY_FILE: &str = "backup-summary.json";

/// A directory of manifests laid out as [`crate::layout`] describes: each
/// object one pretty-printed-free JSON file, exactly the bytes the API server
/// served. A sink (backup to a directory) and a source (restore from one).
///
/// Files directly in the root (a summary, a restore order, a README) are not
/// objects and are ignored when listing.
///
/// Writing, the directory is opened once and nothing below it is reached
/// through a symlink: a symlink planted in place of a directory or a file
/// is replaced, as a restore replaces what is in its way, never followed
/// (refusing instead would let whoever can plant one stop every restore).
/// Manifests may hold Secrets: files are written readable by their owner
/// only (0600) and the directories made for them 0700, as etcdctl writes
/// its snapshots.
#[derive(Clone, Debug)]
pub struct ManifestDir {
    root: PathBuf,
    opened: OnceLock<Arc<Beneath>>,
}

impl ManifestDir {
    /// A manifest directory at `root`; it is created on the first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ManifestDir {
            root: root.into(),
            opened: OnceLock::new(),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory, made if missing and opened on the first write.
    fn opened(&self) -> Result<&Beneath> {
        if let Some(b) = self.opened.get() {
            return Ok(b);
        }
        let b = Beneath::create(&self.root, PRIVATE_DIR)
            .map_err(|e| Error::io("create directory", &self.root, e))?;
        Ok(self.opened.get_or_init(|| Arc::new(b)))
    }

    /// Creates (or replaces) the file `name` below the directory, for
    /// writing; see the type's documentation.
    pub(crate) fn create(&self, name: &str) -> Result<std::fs::File> {
        let file = self.root.join(name);
        self.opened()?
            .replace_file(Path::new(name), PRIVATE_FILE)
            .map_err(|e| Error::io("write", &file, e))
    }

    /// Writes one object's bytes at `path` (a [`layout`] path).
    pub(crate) fn write_path(&self, path: &str, json: &[u8]) -> Result<PathBuf> {
        // Parsing refuses names that would leave the directory.
        layout::parse_path(path)?;
        let file = self.root.join(path);
        self.opened()?
            .write_file(Path::new(path), json, PRIVATE_FILE)
            .map_err(|e| Error::io("write", &file, e))?;
        Ok(file)
    }

    fn walk(&self, dir: &Path, depth: usize, out: &mut Vec<ObjectEntry>) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
        let mut children: Vec<_> = entries
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io("read directory", dir, e))?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let path = child.path();
            let file_type = child.file_type().map_err(|e| Error::io("stat", &path, e))?;
            if file_type.is_dir() {
                self.walk(&path, depth + 1, out)?;
            } else if depth > 0 && file_type.is_file() {
                out.push(self.entry_for(&path)?);
            }
        }
        Ok(())
    }

    fn entry_for(&self, file: &Path) -> Result<ObjectEntry> {
        let relative = file.strip_prefix(&self.root).unwrap_or(file);
        let relative = relative.to_str().ok_or_else(|| {
            Error::bad_object(file.display().to_string(), "the path is not UTF-8")
        })?;
        let mut parsed = layout::parse_path(relative)?;
        let json = std::fs::read(file).map_err(|e| Error::io("read", file, e))?;
        let head = ObjectHead::parse(relative, &json)?;
        // A name too long for a file name was shortened (layout::file_path):
        // the manifest holds it whole.
        let full = ObjectKey {
            name: head.metadata.name.clone(),
            ..parsed.key.clone()
        };
        let version = parsed.version.as_deref().unwrap_or_default();
        if full.name != parsed.key.name
            && layout::file_path(&full, version, parsed.version.is_none()) == relative
        {
            parsed.key = full;
        }
        let (_, version) = split_api_version(&head.api_version);
        if version.is_empty() {
            return Err(Error::bad_object(relative, "the object has no apiVersion"));
        }
        Ok(ObjectEntry {
            preferred: parsed.version.is_none(),
            version: parsed.version.unwrap_or_else(|| version.to_string()),
            key: parsed.key,
            attrs: ObjectAttrs {
                api_version: head.api_version,
                kind: head.kind,
                uid: head.metadata.uid,
                resource_version: head.metadata.resource_version,
            },
        })
    }
}

impl ObjectSink for ManifestDir {
    async fn put(&mut self, object: StoredObject) -> Result<()> {
        let e = &object.entry;
        self.write_path(
            &layout::file_path(&e.key, &e.version, e.preferred),
            &object.json,
        )
        .map(|_| ())
    }

    async fn finish(&mut self, summary: &BackupSummary) -> Result<()> {
        let json =
            serde_json::to_vec_pretty(summary).map_err(|e| Error::bad_object("summary", e))?;
        let file = self.root.join(SUMMARY_FILE);
        self.create(SUMMARY_FILE)?
            .write_all(&json)
            .map_err(|e| Error::io("write", &file, e))
    }
}

impl ObjectSource for ManifestDir {
    async fn list(&self) -> Result<Vec<ObjectEntry>> {
        let mut out = Vec::new();
        self.walk(&self.root, 0, &mut out)?;
        out.sort_by_key(ObjectEntry::path);
        Ok(out)
    }

    async fn fetch(&self, entry: &ObjectEntry) -> Result<Vec<u8>> {
        let path = layout::file_path(&entry.key, &entry.version, entry.preferred);
        let file = self.root.join(&path);
        match std::fs::read(&file) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound { path }),
            Err(e) => Err(Error::io("read", file, e)),
        }
    }
}
