//! File systems: backing up directory trees ([`Archiver`]), restoring them
//! ([`Restorer`]). Looking inside snapshots of any source is
//! [`crate::browse`].
//!
//! Everything here runs on the data path of this crate ([`BlobWriter`] and
//! [`BlobReader`]) and knows nothing of where blobs are stored.
//!
//! [`BlobWriter`]: crate::BlobWriter
//! [`BlobReader`]: crate::BlobReader

mod archive;
pub mod beneath;
mod device;
mod exclude;
mod meta;
mod noatime;
mod prefetch;
mod restore;
mod restore_dirs;
mod restore_walk;
mod sparse;

pub use archive::{ArchiveSummary, Archived, Archiver, NoProgress, Progress, absolute};
pub use device::{device_with_data, restore_to_device};
pub use exclude::{CACHEDIR_SIGNATURE, Excludes};
pub use meta::{NameCache, Warning, WarningKind, is_root};
pub use prefetch::{scan, with_totals};
pub use restore::{Overwrite, RestoreOptions, RestoreSummary, Restored, Restorer};
