//! hokan's repository: encrypted, deduplicated data on local disk or any
//! object store (S3 and S3-compatible stores, GCS, Azure), through the
//! `object_store` crate.
//!
//! | type                      | what it is                                                |
//! |---------------------------|-----------------------------------------------------------|
//! | [`Location`], [`Store`]   | where the repository lives, with retries and clear errors |
//! | [`Repository`]            | open with a password: keys, config, snapshots             |
//! | [`IndexedRepository`]     | with the index loaded: write and read data                |
//! | [`SnapshotSpec`], [`Session`] | the one way in for every source: store data, build trees, commit a snapshot |
//! | [`Snapshot`]              | one backup: time, host, source, identity, root tree, figures |
//! | [`FsBackup`]              | a file-system backup ([`IndexedRepository::backup_paths`]) |
//! | [`keys`]                  | key files wrapping the master key (Argon2id)              |
//! | [`retention`]             | which snapshots `forget` keeps, and why                   |
//! | [`links`]                 | snapshots that belong to another, forgotten with it       |
//! | [`copy`]                  | snapshots copied into another repository, re-encrypted    |
//! | [`maintenance`]           | `prune` (two-phase), `check`, `repair`                    |
//!
//! Modules by job: [`store`] (where bytes live), [`layout`] (which object
//! lives where), [`object`] (the envelope of every object), [`repository`]
//! (opening, keys, format), [`objects`] (snapshots and index files),
//! [`index_load`] (the merged index), [`locks`] (who works on the
//! repository, what waits for deletion, what is damaged), `packs`
//! (uploading and reading packs), [`session`] (writing), [`sources`]
//! (files and streams), [`restore`] (reading back).
//!
//! The order matters and the types enforce it: a repository cannot write
//! data before its index is loaded ([`Repository::load_index`]).
//!
//! # Example
//!
//! A source of its own: a few objects, one blob each, in a tree.
//!
//! ```
//! use hokan_core::{Attr, AttrValue, Node};
//! use hokan_repo::{InitOptions, KdfParams, OpenOptions, Repository, SnapshotSpec, SourceKind, Staged};
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
//! let spec = SnapshotSpec { identity: "cluster-a".into(), ..SnapshotSpec::new(SourceKind::new("records")?) };
//! // The closure returns its own error type; here the repository's.
//! let saved = repo.backup(spec, |s| -> hokan_repo::Result<_> {
//!     let mut nodes = Vec::new();
//!     for i in 0..100 {
//!         let body = format!("{{\"name\": \"cm-{i}\"}}");
//!         let content = s.store_bytes(body.as_bytes())?;
//!         let kind = Attr { key: "kind".into(), value: AttrValue::Str("ConfigMap".into()) };
//!         nodes.push(Node::object(format!("cm-{i}.json"), content, vec![kind]));
//!     }
//!     Ok((Staged::new(s.store_tree(nodes)?), ()))
//! })?;
//!
//! let latest = repo.find_snapshot("latest", &Default::default())?;
//! assert_eq!(latest.id, saved.entry.id);
//! let mut body = Vec::new();
//! repo.dump(&latest.snapshot, "cm-7.json", &mut body)?;
//! assert_eq!(body, b"{\"name\": \"cm-7\"}");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod cache;
pub mod config;
#[cfg(feature = "test-support")]
pub mod conformance;
pub mod copy;
mod error;
#[cfg(feature = "test-support")]
pub mod fault_model;
#[cfg(feature = "test-support")]
pub mod faults;
pub mod immutable;
pub mod index_cache;
pub mod index_file;
pub mod index_load;
pub mod keys;
pub mod layout;
pub mod links;
pub mod locks;
pub mod maintenance;
pub mod object;
pub mod objects;
pub(crate) mod packs;
pub mod repository;
pub mod restore;
pub mod retention;
pub mod session;
pub mod snapshot;
pub mod sources;
pub mod stats;
pub mod store;

pub use config::{Config, InitOptions};
pub use error::{Error, Result};
pub use index_load::IndexedRepository;
pub use keys::{KdfParams, KeyInfo};
pub use links::{Link, LinkFate, Linked};
pub use objects::{IndexFiles, SnapshotList, Unreadable};
pub use repository::{CacheMode, KeyDescription, OpenOptions, Repository};
pub use session::{Committed, ParentChoice, Session, SnapshotSpec, Staged, WriteSummary};
pub use snapshot::{
    Snapshot, SnapshotEntry, SnapshotFilter, SourceKind, Summary, TagChange, normalize_tags,
};
pub use sources::{FsBackup, FsBackupResult};
pub use stats::{Stats, StatsMode};
pub use store::{Location, Removal, RetryPolicy, Store, StoreSettings};

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

/// Parses a duration: a whole number with the unit `s`, `m`, `h` or `d`
/// (`30s`, `90m`, `24h`, `7d`; a bare number is hours).
pub fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (use 30s, 90m, 24h or 7d)"))?;
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" | "" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use s, m, h or d)")),
    };
    n.checked_mul(unit_secs)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// This machine's host name, as snapshots and key files record it.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
