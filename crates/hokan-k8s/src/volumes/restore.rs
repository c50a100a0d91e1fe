//! A volume snapshot restored into a directory (a PVC's mount in a
//! restore Job), its owners moved into another namespace's UID range.

use std::path::Path;

use hokan_core::fs::{Progress, RestoreOptions, Restored};
use hokan_repo::{IndexedRepository, Snapshot, SnapshotEntry, SourceKind};

use super::uid::{self, ShiftSummary, UidRange};
use crate::{Cluster, Error, Result};

/// The label naming the namespace a volume snapshot came from.
pub const NAMESPACE_LABEL: &str = "namespace";

/// Owners moved from one UID range to another, the target at least as
/// large as the source ([`UidShift::new`] checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UidShift {
    /// The range the files' owners are in.
    pub from: UidRange,
    /// The range they move to.
    pub to: UidRange,
}

impl UidShift {
    /// A shift from `from` to `to`; refused when `to` is smaller (shifted
    /// owners would fall outside it).
    pub fn new(from: UidRange, to: UidRange) -> Result<Self> {
        let (from, to) = uid::checked_mapping(from, to)?;
        Ok(UidShift { from, to })
    }

    /// Parses `FROM:TO`, each `start/size` as OpenShift writes a range.
    pub fn parse(s: &str) -> Result<Self> {
        let (from, to) = uid::parse_mapping(s)?;
        Ok(UidShift { from, to })
    }

    /// The shift between two namespaces' ranges, as the cluster's
    /// namespaces' [`uid::UID_RANGE_ANNOTATION`]s give them.
    pub async fn between_namespaces(cluster: &Cluster, from: &str, to: &str) -> Result<Self> {
        let from = uid::namespace_range(cluster, from).await?;
        let to = uid::namespace_range(cluster, to).await?;
        UidShift::new(from, to)
    }
}

impl std::fmt::Display for UidShift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b) = (self.from, self.to);
        write!(f, "{}/{}:{}/{}", a.start, a.size, b.start, b.size)
    }
}

/// The namespace a volume snapshot came from (its [`NAMESPACE_LABEL`]).
pub fn snapshot_namespace(snapshot: &Snapshot) -> Option<&str> {
    snapshot.label(NAMESPACE_LABEL)
}

/// Refuses a shift of owners unless this process runs as root: only root
/// may give files to other users. Call it before anything else is done.
pub fn can_shift_owners() -> Result<()> {
    if hokan_core::fs::is_root() {
        return Ok(());
    }
    Err(Error::InvalidOption {
        option: "UID shift",
        value: String::new(),
        reason: "changing files' owners needs root: run the restore as root (in a Job: \
                 runAsUser: 0)"
            .into(),
    })
}

/// What [`restore_volume`] did.
#[derive(Clone, Debug)]
pub struct RestoredVolume {
    /// The restore: files, directories, bytes, failures, warnings.
    pub restored: Restored,
    /// The owners moved, when a shift was asked for.
    pub shifted: Option<ShiftSummary>,
}

/// Restores a volume snapshot ([`SourceKind::VOLUME`]) into `target`:
/// its files with the owners they were backed up with (when root), then,
/// with `shift`, every owner and group inside its source range moved to
/// the same place in its target range (needs root; refused before
/// anything is written otherwise). Files that could not be restored are
/// counted in the result; their owners are shifted all the same.
pub fn restore_volume(
    repo: &IndexedRepository,
    entry: &SnapshotEntry,
    target: &Path,
    shift: Option<UidShift>,
    progress: &dyn Progress,
) -> Result<RestoredVolume> {
    if entry.snapshot.source != SourceKind::VOLUME {
        return Err(hokan_repo::Error::OtherKind {
            snapshot: entry.id.short(),
            found: entry.snapshot.source.name().to_string(),
            wanted: SourceKind::VOLUME.name().to_string(),
        }
        .into());
    }
    if shift.is_some() {
        can_shift_owners()?;
    }
    let options = RestoreOptions {
        owners: hokan_core::fs::is_root(),
        ..Default::default()
    };
    let restored = repo.restore(&entry.snapshot, "/", target, options, progress)?;
    let shifted = match shift {
        Some(s) => Some(uid::shift_owners(target, s.from, s.to)?),
        None => None,
    };
    Ok(RestoredVolume { restored, shifted })
}
