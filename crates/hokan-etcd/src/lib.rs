//! hokan's etcd source: etcd snapshots streamed, verified, deduplicated
//! through compaction and defragmentation, restored byte for byte, and the
//! Kubernetes objects inside them read without restoring anything.
//!
//! An etcd snapshot is a bbolt database file. Backed up as plain bytes, a
//! compacted and defragmented snapshot shares almost nothing with
//! yesterday's, although almost every key/value in it is the same. This
//! crate cuts the file along bbolt's own structure instead, so each
//! key/value is stored once, and puts it back together byte for byte.
//!
//! | what                         | where             | main items                                        |
//! |------------------------------|-------------------|---------------------------------------------------|
//! | back up into a repository    | [`backup_live`], [`import_file`] | [`BackupOptions`], [`Backed`], [`DbFacts`] |
//! | read a stored snapshot       | [`stored`]        | [`EtcdSnapshot`] (tree layout, facts, records)    |
//! | restore it                   | [`restore_file`]  | [`restore_to`], [`read_file_range`]               |
//! | Kubernetes objects inside    | [`objects`]       | [`Objects`] (list, get, decode), [`objects::diff`], [`export()`] |
//! | the `key` bucket, indexed    | [`catalog`]       | [`Catalog`], [`catalog::ValueType`]               |
//! | read bbolt files             | [`bbolt`]         | [`Db`], [`bbolt::Meta`], [`bbolt::PageHeader`]    |
//! | split into layout + records  | [`split()`]       | [`RecordSink`], [`SplitOptions`], [`SplitSummary`] |
//! | the layout format            | [`layout`]        | [`layout::record_ranges`]                         |
//! | rebuild byte for byte        | [`rebuild()`]     | [`RecordSource`], [`IterSource`]                  |
//! | `etcdctl snapshot status`    | [`status()`]      | [`Status`]                                        |
//! | live snapshots               | [`live`]          | [`EtcdEndpoint`], [`LiveSnapshot`], [`ClusterIdentity`] |
//! | cluster-backup.sh's extras   | [`static_pods`]   | [`latest_static_pod_resources`], [`static_pods::backup_static_pods`] |
//! | both, linked, with retention | [`cluster_backup()`] | [`EtcdSource`], [`StaticPods`], [`ClusterBackup`] |
//! | a real etcd for tests (feature `testing`) | [`testing`] | [`testing::EtcdProcess`], [`testing::KvClient`]   |
//!
//! The seam to the repository is two small traits: a split sends layout
//! bytes (cut by the repository's chunker) and records (each stored as
//! its own blob) to a [`RecordSink`]; a rebuild asks a [`RecordSource`]
//! for the records back in order. A backup runs the split once, on its own
//! thread, into a write session; while pages pass, it also learns the
//! database's tree, so the status etcdctl would print and a catalog of the
//! `key` bucket are stored beside the data without a second read. Memory
//! stays bounded by a few batches and about 100 bytes per record, whatever
//! the database's size. The byte-level format is in `docs/FORMAT.md`, §13.
//!
//! # Example
//!
//! Store a snapshot file, read its status from the stored form, and
//! restore it byte for byte:
//!
//! ```
//! use hokan_core::fs::NoProgress;
//! use hokan_etcd::{BackupOptions, EtcdSnapshot, import_file, restore_file};
//! use hokan_repo::{InitOptions, KdfParams, OpenOptions, Repository};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let location = dir.path().join("repo");
//! let location = location.to_str().unwrap();
//! // Cheap key stretching for the example; the default costs ~0.15 s.
//! let kdf = KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
//! Repository::init(location, b"pw", InitOptions { kdf, ..Default::default() }, OpenOptions::default())?;
//! let mut repo = Repository::open(location, b"pw", OpenOptions::default())?.load_index()?;
//!
//! // A small bbolt file; `etcdctl snapshot save` writes real ones.
//! let file = dir.path().join("snapshot.db");
//! std::fs::write(&file, hokan_etcd::testdata::tiny_db())?;
//! let backed = import_file(&mut repo, &file, &BackupOptions::default(), &NoProgress)?;
//! assert_eq!(backed.facts.status.unwrap().revision, 4);
//!
//! let stored = EtcdSnapshot::find(&repo, "latest")?;
//! let restored = dir.path().join("restored.db");
//! restore_file(&repo, &stored, &restored, &NoProgress)?;
//! assert_eq!(std::fs::read(&restored)?, std::fs::read(&file)?);
//! # Ok(())
//! # }
//! ```
//!
//! Splitting and rebuilding without a repository:
//!
//! ```
//! use hokan_etcd::{IterSource, MemorySink, SplitOptions, rebuild, split, status};
//!
//! # fn main() -> hokan_etcd::Result<()> {
//! let db = hokan_etcd::testdata::tiny_db();
//! let mut sink = MemorySink::default();
//! let summary = split(&db[..], &mut sink, &SplitOptions::bbolt("tiny.db"))?;
//! assert_eq!(summary.records, 3); // three keys in the `key` bucket
//!
//! let mut restored = Vec::new();
//! rebuild(&sink.layout[..], &mut IterSource(sink.records.iter()), &mut restored)?;
//! assert_eq!(restored, db);
//!
//! let st = status(&restored, "tiny.db")?;
//! assert_eq!((st.revision, st.total_key), (4, 4));
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod backup;
pub mod bbolt;
pub mod catalog;
pub mod cluster_backup;
mod crc;
mod error;
mod export;
mod grpc;
mod inventory;
pub mod kv;
pub mod layout;
pub mod live;
pub mod objects;
mod rebuild;
mod restore;
mod split;
pub mod static_pods;
mod status;
pub mod stored;
#[cfg(any(test, feature = "testing"))]
pub mod testdata;
#[cfg(feature = "testing")]
pub mod testing;

pub use backup::{Backed, BackupOptions, backup_live, cluster_id, import_file};
pub use bbolt::Db;
pub use catalog::Catalog;
pub use cluster_backup::{ClusterBackup, EtcdSource, StaticPods, cluster_backup};
pub use error::{Error, Result};
pub use export::{ExportOptions, ExportReport, export};
#[doc(hidden)]
pub use inventory::streamed_status;
pub use live::{ClusterIdentity, EtcdEndpoint, LiveSnapshot};
pub use objects::{Decoded, Filter, ObjectInfo, Objects};
pub use rebuild::{IterSource, RebuildSummary, RecordSource, rebuild};
pub use restore::{read_file_range, restore_file, restore_to};
pub use split::{MemorySink, RecordSink, SplitOptions, SplitSummary, Trailer, split};
pub use static_pods::{StaticPodResource, latest_static_pod_resources};
pub use status::{Status, status, status_file, stored_status};
pub use stored::{DbFacts, EtcdSnapshot};
