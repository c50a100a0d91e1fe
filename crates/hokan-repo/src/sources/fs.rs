//! File-system backups: directory trees through the core's archiver.

use std::path::PathBuf;

use hokan_core::fs::{Archiver, Excludes, Progress, Warning};

use crate::error::{Result, from_core};
use crate::index_load::IndexedRepository;
use crate::session::{ParentChoice, SnapshotSpec, Staged};
use crate::snapshot::{SnapshotEntry, SourceKind, counts};

/// Settings of a file-system backup.
#[derive(Clone, Debug, Default)]
pub struct FsBackup {
    /// What to leave out.
    pub excludes: Excludes,
    /// Tags for the snapshot.
    pub tags: Vec<String>,
    /// The snapshot to compare with: by default the newest one of this
    /// host with the same paths.
    pub parent: ParentChoice,
    /// Record this host name instead of the machine's.
    pub hostname: Option<String>,
    /// Read block devices as their content (`--read-special`).
    pub read_special: bool,
}

/// A finished file-system backup.
#[derive(Clone, Debug)]
pub struct FsBackupResult {
    /// The snapshot saved.
    pub entry: SnapshotEntry,
    /// Files that could not be read or changed while read.
    pub warnings: Vec<Warning>,
}

impl IndexedRepository {
    /// Backs up files and directories into a new snapshot; see [`FsBackup`].
    /// Unreadable files are skipped and reported in the result, not as an
    /// error; a path that does not exist is an error before anything is
    /// stored.
    pub fn backup_paths(
        &mut self,
        paths: &[PathBuf],
        options: &FsBackup,
        progress: &dyn Progress,
    ) -> Result<FsBackupResult> {
        let mut abs = paths
            .iter()
            .map(|p| hokan_core::fs::absolute(p))
            .collect::<hokan_core::Result<Vec<_>>>()?;
        abs.sort();
        abs.dedup();
        // A path inside another one given is covered by it, as the
        // archiver will find; the snapshot records the outer ones.
        let mut targets: Vec<PathBuf> = Vec::new();
        for p in &abs {
            if !targets.iter().any(|t| p.starts_with(t)) {
                targets.push(p.clone());
            }
        }
        let spec = SnapshotSpec {
            paths: targets
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            tags: options.tags.clone(),
            hostname: options.hostname.clone(),
            parent: options.parent.clone(),
            ..SnapshotSpec::new(SourceKind::FS)
        };
        let excludes = &options.excludes;
        let done = self.backup(spec, |s| {
            let parent = s.parent_tree();
            let archived = Archiver::new(s.writer(), Some(s.reader()), excludes, progress)
                .read_special(options.read_special)
                .archive(&abs, parent.as_ref())
                .map_err(from_core)?;
            let a = &archived.summary;
            let staged = Staged {
                tree: archived.tree,
                bytes: a.bytes,
                errors: a.warnings,
                counts: vec![
                    (counts::FILES_NEW.into(), a.files_new),
                    (counts::FILES_CHANGED.into(), a.files_changed),
                    (counts::FILES_UNMODIFIED.into(), a.files_unmodified),
                    (counts::DIRS.into(), a.dirs),
                    (counts::FILES.into(), a.files),
                ],
            };
            Ok((staged, archived.warnings))
        })?;
        Ok(FsBackupResult {
            entry: done.entry,
            warnings: done.value,
        })
    }
}
