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
//! | [`FsBackup`]            | settings of a file-system backup ([`IndexedRepository::backup_paths`]) |
//! | [`keys`]                | key files wrapping the master key (Argon2id)              |
//! | [`retention`]           | which snapshots `forget` keeps, and why                   |
//! | [`maintenance`]         | `prune` (two-phase), `check`, `repair index`              |
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

/// Parses a size: plain bytes, or with a unit K, M, G or T (powers of
/// 1024; `KiB`, `MB` and the like are read the same way).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (try 512K, 4M, 1G)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use K, M, G or T)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// This machine's host name, as snapshots and key files record it.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
