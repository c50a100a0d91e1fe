//! File-system backups: directory trees through the core's archiver.

use std::path::{Path, PathBuf};

use hokan_core::TreeId;
use hokan_core::fs::{Archived, Archiver, Excludes, Progress, Warning};

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
    /// Trees of the parent snapshot that could not be read: every file
    /// below them was read again, so the snapshot is complete, but the
    /// repository is damaged there.
    pub parent_unreadable: Vec<Warning>,
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
        self.archive_into(
            spec,
            &options.excludes,
            Walk {
                read_special: options.read_special,
                ..Walk::default()
            },
            progress,
            |a, parent| a.archive(&abs, parent),
        )
    }

    /// Backs up the content of `dir` as the snapshot's root tree, under
    /// the caller's `spec` (kind, identity, labels, the path to record).
    /// For data that moves between paths while staying the same, such as
    /// a pod volume mounted under a new pod UID: with `spec.identity` set,
    /// the parent is found by identity and its tree matches entry by entry
    /// wherever `dir` is now, so unchanged files are not read again.
    pub fn backup_dir_as_root(
        &mut self,
        dir: &Path,
        spec: SnapshotSpec,
        excludes: &Excludes,
        progress: &dyn Progress,
    ) -> Result<FsBackupResult> {
        // Volumes are directories of files; devices in them stay nodes.
        self.archive_into(spec, excludes, Walk::default(), progress, |a, parent| {
            a.archive_root(dir, parent)
        })
    }

    /// [`backup_dir_as_root`](Self::backup_dir_as_root) for a directory
    /// that is a fresh copy of the data at each backup (a claim made from a
    /// CSI snapshot): every file is a new inode with a new change time, so
    /// a file is unchanged when its size and modification time are the
    /// parent's (as Kopia, which Velero's data mover uses, decides).
    pub fn backup_copy_as_root(
        &mut self,
        dir: &Path,
        spec: SnapshotSpec,
        excludes: &Excludes,
        progress: &dyn Progress,
    ) -> Result<FsBackupResult> {
        let walk = Walk {
            ignore_inode: true,
            ..Walk::default()
        };
        self.archive_into(spec, excludes, walk, progress, |a, parent| {
            a.archive_root(dir, parent)
        })
    }

    /// [`backup_dir_as_root`](Self::backup_dir_as_root) for several
    /// directories, at most `threads` at a time (see
    /// [`backup_each`](Self::backup_each)); one result per directory, in
    /// order. `progress` sees all of them at once.
    pub fn backup_dirs_as_roots(
        &mut self,
        jobs: Vec<(PathBuf, SnapshotSpec)>,
        excludes: &Excludes,
        progress: &dyn Progress,
        threads: usize,
    ) -> Result<Vec<Result<FsBackupResult>>> {
        let jobs = jobs
            .into_iter()
            .map(|(dir, spec)| {
                let source = move |s: &crate::session::Session<'_>| {
                    stage_walk(s, excludes, Walk::default(), progress, |a, parent| {
                        a.archive_root(&dir, parent)
                    })
                };
                (spec, source)
            })
            .collect();
        Ok(self
            .backup_each(jobs, threads)?
            .into_iter()
            .map(|r| {
                r.map(|done| FsBackupResult {
                    entry: done.entry,
                    warnings: done.value.warnings,
                    parent_unreadable: done.value.parent_unreadable,
                })
            })
            .collect())
    }

    fn archive_into(
        &mut self,
        spec: SnapshotSpec,
        excludes: &Excludes,
        flags: Walk,
        progress: &dyn Progress,
        walk: impl FnOnce(&Archiver<'_>, Option<&TreeId>) -> hokan_core::Result<Archived>,
    ) -> Result<FsBackupResult> {
        let done = self.backup(spec, |s| stage_walk(s, excludes, flags, progress, walk))?;
        Ok(FsBackupResult {
            entry: done.entry,
            warnings: done.value.warnings,
            parent_unreadable: done.value.parent_unreadable,
        })
    }
}

/// How a walk reads: devices as content, inodes ignored.
#[derive(Clone, Copy, Debug, Default)]
struct Walk {
    read_special: bool,
    ignore_inode: bool,
}

/// What a walk reports beside its tree: see [`FsBackupResult`].
struct Walked {
    warnings: Vec<Warning>,
    parent_unreadable: Vec<Warning>,
}

/// A file-system walk as a session's source: the archiver's tree and
/// figures, staged for the commit.
fn stage_walk(
    s: &crate::session::Session<'_>,
    excludes: &Excludes,
    flags: Walk,
    progress: &dyn Progress,
    walk: impl FnOnce(&Archiver<'_>, Option<&TreeId>) -> hokan_core::Result<Archived>,
) -> Result<(Staged, Walked)> {
    let parent = s.parent_tree();
    let archiver = Archiver::new(s.writer(), Some(s.reader()), excludes, progress)
        .read_special(flags.read_special)
        .ignore_inode(flags.ignore_inode);
    let archived = walk(&archiver, parent.as_ref()).map_err(from_core)?;
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
    Ok((
        staged,
        Walked {
            warnings: archived.warnings,
            parent_unreadable: archived.parent_unreadable,
        },
    ))
}
