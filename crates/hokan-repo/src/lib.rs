//! hokan's repository: encrypted, deduplicated data on local disk or any
//! object store (S3 and S3-compatible stores, GCS, Azure), through the
//! `object_store` crate.
//!
//! | type                    | what it is                                               |
//! |-------------------------|----------------------------------------------------------|
//! | [`Location`], [`Store`] | where the repository lives, with retries and clear errors |
//! | [`Repository`]          | open with a password: keys, config, snapshots             |
//! | [`IndexedRepository`]   | with the index loaded: write and read data                |
//! | [`Snapshot`]            | one backup: time, host, paths, tags, root tree, figures   |
//! | [`keys`]                | key files wrapping the master key (Argon2id)              |
//!
//! The order matters and the types enforce it: a repository cannot write
//! data before its index is loaded ([`Repository::load_index`]).
//!
//! # Example
//!
//! ```
//! use hokan_repo::{InitOptions, KdfParams, OpenOptions, Repository, StreamSnapshot};
//!
//! # fn main() -> hokan_repo::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let location = dir.path().join("repo");
//! let location = location.to_str().unwrap();
//! // Cheap key stretching for the example; the default costs ~0.15 s.
//! let init = InitOptions { kdf: KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 }, ..Default::default() };
//! Repository::init(location, b"correct horse", init, OpenOptions::default())?;
//!
//! let mut repo = Repository::open(location, b"correct horse", OpenOptions::default())?.load_index()?;
//! let dump = b"CREATE TABLE pods (...);\n".repeat(10_000);
//! let saved = repo.backup_stream(&dump[..], "dump.sql", StreamSnapshot::default())?;
//!
//! let latest = repo.find_snapshot("latest", &Default::default())?;
//! assert_eq!(latest.id, saved.id);
//! let mut restored = Vec::new();
//! repo.restore_stream(&latest.snapshot, &mut restored)?;
//! assert_eq!(restored, dump);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod cache;
pub mod config;
pub mod conformance;
mod error;
pub mod index_file;
pub mod keys;
pub mod maintenance;
pub mod object;
mod repo;
pub mod retention;
pub mod snapshot;
pub mod store;

pub use config::{Config, InitOptions};
pub use error::{Error, Result};
pub use keys::{KdfParams, KeyInfo};
pub use repo::{
    CacheMode, FsBackup, FsBackupResult, IndexedRepository, KeyDescription, OpenOptions,
    ParentChoice, Repository, StreamSnapshot, WriteSummary,
};
pub use snapshot::{Snapshot, SnapshotEntry, SnapshotFilter, SourceKind, Summary};
pub use store::{Location, RetryPolicy, Store};

/// This machine's host name, as snapshots and key files record it.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
