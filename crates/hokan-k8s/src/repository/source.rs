//! [`SnapshotSource`]: a resource snapshot in a repository as an
//! [`ObjectSource`], for restores and Velero exports.

use std::sync::Mutex;

use hokan_core::{BlobType, Id, Node, NodeKind, Tree, TreeId, browse};
use hokan_repo::{IndexedRepository, SnapshotEntry, SourceKind};

use super::off_runtime;
use crate::layout;
use crate::object::{ObjectAttrs, ObjectEntry, split_api_version};
use crate::seam::ObjectSource;
use crate::{Error, Result};

/// Directory trees kept for fetches: a restore reads objects in plan order,
/// which goes directory by directory, so a handful suffices.
const CACHED_DIRS: usize = 8;

/// The objects of one resource snapshot. Listing reads the trees only (each
/// object's attributes are in its node); fetching reads objects a batch at
/// a time, planned by pack, each compressed group decoded once.
///
/// Its methods block on the repository; called from async code, they step
/// off the runtime's worker first (see [`crate::repository`]).
pub struct SnapshotSource<'r> {
    repo: &'r IndexedRepository,
    root: TreeId,
    short_id: String,
    dirs: Mutex<Vec<(String, Tree)>>,
}

impl<'r> SnapshotSource<'r> {
    /// The source for `snapshot`, which must be a Kubernetes resource
    /// snapshot ([`SourceKind::K8S`]).
    pub fn new(repo: &'r IndexedRepository, snapshot: &SnapshotEntry) -> Result<Self> {
        let short_id = snapshot.id.short();
        if snapshot.snapshot.source != SourceKind::K8S {
            return Err(Error::NotK8s {
                snapshot: short_id,
                source_kind: snapshot.snapshot.source.name().to_string(),
            });
        }
        Ok(SnapshotSource {
            repo,
            root: snapshot.snapshot.tree,
            short_id,
            dirs: Mutex::new(Vec::new()),
        })
    }

    fn not_resources(&self, reason: String) -> Error {
        Error::NotResources {
            snapshot: self.short_id.clone(),
            reason,
        }
    }

    fn list_blocking(&self) -> Result<Vec<ObjectEntry>> {
        let reader = self.repo.reader();
        let mut out = Vec::new();
        browse::walk(
            &reader,
            &self.root,
            std::path::Path::new(""),
            &mut |path, node| -> Result<bool> {
                if node.kind != NodeKind::Dir {
                    out.push(self.entry(&path.to_string_lossy(), node)?);
                }
                Ok(true)
            },
        )?;
        Ok(out)
    }

    /// An entry from an object node and its path.
    fn entry(&self, path: &str, node: &Node) -> Result<ObjectEntry> {
        if node.kind != NodeKind::Object {
            return Err(self.not_resources(format!(
                "holds {path}, a {}, where only objects belong",
                node.kind.name()
            )));
        }
        let parsed = layout::parse_path(path)?;
        let attrs = ObjectAttrs::from_pairs(
            node.attrs
                .iter()
                .filter_map(|a| node.attr_str(&a.key).map(|v| (a.key.as_str(), v))),
        );
        let version = match parsed.version {
            Some(v) => v,
            None => {
                let (_, v) = split_api_version(&attrs.api_version);
                if v.is_empty() {
                    return Err(self.not_resources(format!("holds {path} without an apiVersion")));
                }
                v.to_string()
            }
        };
        Ok(ObjectEntry {
            key: parsed.key,
            preferred: version_is_preferred(path),
            version,
            attrs,
        })
    }

    /// The node of one entry, from its directory (cached).
    fn node(&self, path: &str) -> Result<Node> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let mut dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        let position = dirs.iter().position(|(d, _)| d == dir);
        let index = match position {
            Some(i) => i,
            None => {
                let tree = self.read_dir(dir)?;
                if dirs.len() >= CACHED_DIRS {
                    dirs.remove(0);
                }
                dirs.push((dir.to_string(), tree));
                dirs.len() - 1
            }
        };
        dirs[index]
            .1
            .get(name.as_bytes())
            .cloned()
            .ok_or_else(|| Error::NotFound {
                path: path.to_string(),
            })
    }

    fn read_dir(&self, dir: &str) -> Result<Tree> {
        let reader = self.repo.reader();
        let wanted = std::path::Path::new("/").join(dir);
        match browse::locate(&reader, &self.root, &wanted)? {
            Some(browse::Located::Tree(id)) => Ok(self.repo.read_tree(&id)?),
            _ => Err(Error::NotFound {
                path: dir.to_string(),
            }),
        }
    }

    fn fetch_blocking(&self, entries: &[&ObjectEntry]) -> Result<Vec<Vec<u8>>> {
        let mut chunks: Vec<(String, Vec<hokan_core::ChunkRef>)> =
            Vec::with_capacity(entries.len());
        for entry in entries {
            let path = entry.path();
            let node = self.node(&path)?;
            chunks.push((path, node.content));
        }
        let ids: Vec<Id> = chunks
            .iter()
            .flat_map(|(_, c)| c.iter().filter(|c| !c.is_hole()).map(|c| c.id.0))
            .collect();
        let mut read = self
            .repo
            .reader()
            .read_blobs(BlobType::Data, &ids)?
            .into_iter();
        let mut out = Vec::with_capacity(chunks.len());
        for (path, refs) in chunks {
            let mut bytes = Vec::new();
            for chunk in refs {
                if chunk.is_hole() {
                    bytes.resize(bytes.len() + chunk.len as usize, 0);
                    continue;
                }
                // One result per id asked for: a missing one is a blob
                // the reader did not find.
                let blob = read
                    .next()
                    .unwrap_or_else(|| Err(hokan_core::Error::BlobNotFound { id: chunk.id.0 }));
                let blob = blob.map_err(|e| Error::Unreadable {
                    path: path.clone(),
                    source: e.into(),
                })?;
                bytes.extend_from_slice(&blob);
            }
            out.push(bytes);
        }
        Ok(out)
    }
}

/// Entries under `_versions/` are other versions; the rest preferred.
fn version_is_preferred(path: &str) -> bool {
    path.split('/').nth(2) != Some(layout::VERSIONS_DIR)
}

impl ObjectSource for SnapshotSource<'_> {
    async fn list(&self) -> Result<Vec<ObjectEntry>> {
        off_runtime(|| self.list_blocking())
    }

    async fn fetch(&self, entry: &ObjectEntry) -> Result<Vec<u8>> {
        let mut one = off_runtime(|| self.fetch_blocking(&[entry]))?;
        one.pop().ok_or(Error::NotFound { path: entry.path() })
    }

    // Spelled out: as an `async fn`, the compiler cannot match the trait's
    // single lifetime against the two it would infer here.
    #[allow(clippy::manual_async_fn)]
    fn fetch_many<'a>(
        &'a self,
        entries: &'a [&'a ObjectEntry],
    ) -> impl std::future::Future<Output = Result<Vec<Vec<u8>>>> + Send + 'a {
        async move { off_runtime(|| self.fetch_blocking(entries)) }
    }
}
