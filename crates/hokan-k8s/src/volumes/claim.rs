//! A claim's data read from a copy of it (a claim made from a CSI
//! `VolumeSnapshot` and mounted by a copy Job), saved as the claim's own
//! snapshot: the same identity (`<namespace>/<claim>`) and path the node
//! agent gives it, so both ways share one chain of parents and a file
//! unchanged since the last copy is not read again.

use std::path::PathBuf;

use hokan_core::fs::{Excludes, Progress};
use hokan_repo::{FsBackupResult, IndexedRepository, SnapshotSpec, SourceKind};

use super::restore::NAMESPACE_LABEL;
use crate::{Error, Result};

/// The label naming the `VolumeSnapshot` a copy was read from.
pub const VOLUME_SNAPSHOT_LABEL: &str = "volumesnapshot";
/// The file a Block-mode claim's device is stored as.
pub const DEVICE_FILE: &str = "device";

/// A claim's copy to save.
#[derive(Clone, Debug)]
pub struct ClaimCopy {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim.
    pub claim: String,
    /// Where its data is: the mounted directory, or for a Block-mode claim
    /// the device.
    pub path: PathBuf,
    /// The claim is a raw device (`volumeMode: Block`).
    pub block: bool,
    /// The `VolumeSnapshot` the data was read from, recorded as a label.
    pub volume_snapshot: Option<String>,
}

impl ClaimCopy {
    /// What the copy is a backup of: the claim, as
    /// [`PodVolume::identity`](super::PodVolume::identity) names it.
    pub fn identity(&self) -> String {
        format!("{}/{}", self.namespace, self.claim)
    }

    fn spec(&self, tags: &[String]) -> SnapshotSpec {
        let mut labels = vec![
            (NAMESPACE_LABEL.to_string(), self.namespace.clone()),
            ("pvc".to_string(), self.claim.clone()),
        ];
        if let Some(s) = &self.volume_snapshot {
            labels.push((VOLUME_SNAPSHOT_LABEL.to_string(), s.clone()));
        }
        let identity = self.identity();
        SnapshotSpec {
            paths: vec![format!("/{identity}")],
            identity,
            tags: tags.to_vec(),
            labels,
            ..SnapshotSpec::new(SourceKind::VOLUME)
        }
    }
}

/// Saves `copy` as a snapshot of [`SourceKind::VOLUME`]. A directory is
/// read as the snapshot's root (its parent found by identity); a device
/// is read whole as one file named [`DEVICE_FILE`], and its all-zero
/// chunks are stored once and restored as holes, as `--read-special` does.
pub fn backup_claim(
    repo: &mut IndexedRepository,
    copy: &ClaimCopy,
    tags: &[String],
    progress: &dyn Progress,
) -> Result<FsBackupResult> {
    let spec = copy.spec(tags);
    if !copy.block {
        // A claim made from a snapshot is a fresh copy each time: files
        // are compared by size and modification time.
        return Ok(repo.backup_copy_as_root(&copy.path, spec, &Excludes::default(), progress)?);
    }
    let device = std::fs::File::open(&copy.path).map_err(|e| Error::io("open", &copy.path, e))?;
    // The path recorded is the claim's, as for a directory; the device is
    // the file inside.
    let entry = repo.backup_stream(device, DEVICE_FILE, spec)?;
    Ok(FsBackupResult {
        entry,
        warnings: Vec::new(),
        parent_unreadable: Vec::new(),
    })
}
