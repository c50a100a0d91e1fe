//! Taking data back out of any snapshot: restoring a tree (or a path in
//! it) to disk, and writing one file's or object's content to a stream.

use std::io::Write;
use std::path::{Path, PathBuf};

use hokan_core::browse::{self, Located};
use hokan_core::fs::{Progress, RestoreOptions, Restored, Restorer};
use hokan_core::{Node, TreeId};

use crate::error::{Error, Result, from_core};
use crate::index_load::IndexedRepository;
use crate::snapshot::Snapshot;

/// The path in a snapshot, absolute.
fn snapshot_path(path: &str) -> PathBuf {
    Path::new("/").join(path.trim_start_matches('/'))
}

/// The tree to restore from and its path in the snapshot, for `path` of
/// a snapshot: a directory's own tree, or for one entry its parent's tree
/// with the entry as the include pattern (unless patterns are given).
fn locate(
    reader: &hokan_core::BlobReader<'_>,
    snapshot: &Snapshot,
    path: &str,
    mut options: RestoreOptions,
) -> Result<(TreeId, PathBuf, RestoreOptions)> {
    let wanted = snapshot_path(path);
    let (tree, root): (TreeId, PathBuf) =
        match browse::locate(reader, &snapshot.tree, &wanted).map_err(from_core)? {
            None => {
                return Err(Error::Invalid {
                    what: "path",
                    reason: format!("{} is not in the snapshot", wanted.display()),
                });
            }
            Some(Located::Tree(t)) => (t, wanted),
            Some(Located::Node { parent, .. }) => {
                // One entry: restore its directory, keeping only it.
                if options.include.is_empty() {
                    options.include.push(wanted.to_string_lossy().into_owned());
                }
                (
                    parent,
                    wanted.parent().unwrap_or(Path::new("/")).to_path_buf(),
                )
            }
        };
    Ok((tree, root, options))
}

impl IndexedRepository {
    /// Restores `path` of a snapshot (`/` or empty for all of it) into
    /// `target`: a directory's content goes into `target`, as restic does;
    /// a single file or object goes into `target` under its name.
    /// `progress` learns the totals once the restore is planned. Files whose
    /// data is damaged are reported in the result and the others restored;
    /// an unreachable store or a full target ends the restore with an error.
    pub fn restore(
        &self,
        snapshot: &Snapshot,
        path: &str,
        target: &Path,
        options: RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<Restored> {
        let reader = self.reader();
        let (tree, root, options) = locate(&reader, snapshot, path, options)?;
        let restorer = Restorer::new(&reader, options, progress).map_err(from_core)?;
        let (entries, bytes) = restorer.totals(&tree, &root).map_err(from_core)?;
        progress.totals(entries, bytes);
        restorer.restore(&tree, &root, target).map_err(from_core)
    }

    /// Writes the one file, or block device read as data, that `path` and
    /// the include and exclude patterns select onto the block device
    /// `device` (at least as large), zeroing its holes there, and syncs it.
    /// Returns the snapshot path written and the bytes written.
    pub fn restore_to_device(
        &self,
        snapshot: &Snapshot,
        path: &str,
        device: &Path,
        options: RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<(PathBuf, u64)> {
        let reader = self.reader();
        let (tree, root, options) = locate(&reader, snapshot, path, options)?;
        let restorer = Restorer::new(&reader, options, progress).map_err(from_core)?;
        // Five names are enough to say what a too-wide selection took.
        let (count, selected) = restorer.selected_data(&tree, &root, 5).map_err(from_core)?;
        let (1, [(snap_path, node)]) = (count, selected.as_slice()) else {
            let names = selected.iter().map(|(p, _)| p.display().to_string());
            return Err(Error::NotOneFile {
                selected: count as usize,
                names: names.collect(),
            });
        };
        progress.totals(1, node.size);
        let written = hokan_core::fs::restore_to_device(&reader, node, device, progress)
            .map_err(from_core)?;
        Ok((snap_path.clone(), written))
    }

    /// Writes `path` of a snapshot to `out` as a tar archive
    /// ([`hokan_core::dump`]): for `/` or an empty path the whole snapshot,
    /// with paths relative to its root; otherwise the entry at `path`
    /// under its name, with everything below it for a directory.
    pub fn dump_tar(
        &self,
        snapshot: &Snapshot,
        path: &str,
        out: &mut (dyn Write + Send),
    ) -> Result<()> {
        let reader = self.reader();
        let wanted = snapshot_path(path);
        let Some(name) = wanted.file_name() else {
            return hokan_core::dump::tar_tree(&reader, &snapshot.tree, Path::new(""), out)
                .map_err(from_core);
        };
        let node = browse::find_node(&reader, &snapshot.tree, &wanted)
            .map_err(from_core)?
            .ok_or_else(|| Error::Invalid {
                what: "path",
                reason: format!("{} is not in the snapshot", wanted.display()),
            })?;
        hokan_core::dump::tar_node(&reader, &node, Path::new(name), out).map_err(from_core)
    }

    /// The node at `path` in a snapshot; for an empty path or `/`, the
    /// snapshot's only entry (a stream's file).
    pub fn node(&self, snapshot: &Snapshot, path: &str) -> Result<Node> {
        let reader = self.reader();
        let wanted = snapshot_path(path);
        if wanted == Path::new("/") {
            let tree = self.read_tree(&snapshot.tree)?;
            return match tree.nodes.as_slice() {
                [only] => Ok(only.clone()),
                nodes => Err(Error::Invalid {
                    what: "path",
                    reason: format!(
                        "the snapshot holds {} entries; name the one you want",
                        nodes.len()
                    ),
                }),
            };
        }
        match browse::locate(&reader, &snapshot.tree, &wanted).map_err(from_core)? {
            Some(Located::Node { node, .. }) => Ok(*node),
            Some(Located::Tree(_)) => Err(Error::Invalid {
                what: "path",
                reason: format!("{} is a directory", wanted.display()),
            }),
            None => Err(Error::Invalid {
                what: "path",
                reason: format!("{} is not in the snapshot", wanted.display()),
            }),
        }
    }

    /// Writes the content of the file or object at `path` (empty: the
    /// snapshot's only entry) to `out`; returns the bytes written.
    pub fn dump(
        &self,
        snapshot: &Snapshot,
        path: &str,
        out: &mut (dyn Write + Send),
    ) -> Result<u64> {
        let node = self.node(snapshot, path)?;
        if !node.kind.has_content() {
            return Err(Error::Invalid {
                what: "path",
                reason: format!(
                    "{} is a {}, which has no content",
                    snapshot_path(path).display(),
                    node.kind.name()
                ),
            });
        }
        self.reader()
            .read_chunks(&node.content, out)
            .map_err(from_core)
    }
}
