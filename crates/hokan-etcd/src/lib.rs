//! hokan's etcd source: read, split, rebuild and stream etcd snapshots.
//!
//! An etcd snapshot is a bbolt database file. Backed up as plain bytes, a
//! compacted and defragmented snapshot shares almost nothing with
//! yesterday's, although almost every key/value in it is the same. This
//! crate cuts the file along bbolt's own structure instead, so each
//! key/value is stored once, and puts it back together byte for byte.
//!
//! | what                        | where            | main items                                       |
//! |-----------------------------|------------------|--------------------------------------------------|
//! | read bbolt files            | [`bbolt`]        | [`Db`], [`bbolt::Meta`], [`bbolt::PageHeader`]   |
//! | split into layout + records | [`split()`]      | [`RecordSink`], [`SplitOptions`], [`SplitSummary`] |
//! | the layout format           | [`layout`]       | [`layout::record_ranges`]                        |
//! | rebuild byte for byte       | [`rebuild()`]    | [`RecordSource`], [`IterSource`]                 |
//! | `etcdctl snapshot status`   | [`status()`]     | [`Status`]                                       |
//! | live snapshots              | [`live`]         | [`EtcdEndpoint`], [`LiveSnapshot`], [`ClusterIdentity`] |
//! | cluster-backup.sh's extras  | [`static_pods`]  | [`latest_static_pod_resources`]                  |
//!
//! The seam to the repository is two small traits: a split sends layout
//! bytes (to be cut by the repository's chunker) and records (each stored
//! as its own blob) to a [`RecordSink`]; a rebuild asks a [`RecordSource`]
//! for the records back in order. Both stream: memory stays bounded by the
//! longest leaf page run, whatever the database size.
//!
//! # Example
//!
//! Split a small bbolt database, rebuild it, and read its status:
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
mod error;
mod export;
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
pub mod testdata;
pub mod testing;

pub use backup::{Backed, BackupOptions, backup_live, cluster_id, import_file};
pub use bbolt::Db;
pub use catalog::Catalog;
pub use error::{Error, Result};
pub use export::{ExportOptions, ExportReport, export};
pub use live::{ClusterIdentity, EtcdEndpoint, LiveSnapshot};
pub use objects::{Decoded, Filter, ObjectInfo, Objects};
pub use rebuild::{IterSource, RebuildSummary, RecordSource, rebuild};
pub use restore::{read_file_range, restore_file, restore_to};
pub use split::{MemorySink, RecordSink, SplitOptions, SplitSummary, Trailer, split};
pub use static_pods::{StaticPodResource, latest_static_pod_resources};
pub use status::{Status, status, status_file};
pub use stored::{DbFacts, EtcdSnapshot};
