//! hokan's Kubernetes source (placeholder docs, replaced below).

#![warn(missing_docs)]

pub mod backup;
pub mod cluster;
pub mod discovery;
mod error;
pub mod filter;
pub mod layout;
mod manifest_dir;
mod memory;
mod object;
pub mod restore;
mod seam;
pub mod selector;
#[cfg(feature = "test-server")]
pub mod testserver;
pub mod velero;
pub mod version;

pub use backup::{BackupOptions, BackupSummary, backup};
pub use cluster::{Cluster, ConnectOptions};
pub use discovery::Discovery;
pub use error::{Error, Result};
pub use manifest_dir::ManifestDir;
pub use memory::MemoryStore;
pub use object::{
    GroupResource, ObjectAttrs, ObjectEntry, ObjectKey, StoredObject, api_version,
    split_api_version,
};
pub use restore::{
    ExistingPolicy, RestoreOptions, RestorePlan, RestoreReport, Target, execute, plan,
};
pub use seam::{ObjectSink, ObjectSource};
