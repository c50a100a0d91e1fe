//! hokan: content-addressed, deduplicated, encrypted backups for file
//! systems, Kubernetes resources and etcd, on local disk or object storage.
//!
//! This facade re-exports the workspace crates so an embedder needs one
//! dependency:
//!
//! * [`core`] (`hokan-core`): chunking, ids, compression, encryption, packs,
//!   the dedup index and the parallel pipeline.
//! * [`repo`] (`hokan-repo`): the repository on local disk or object
//!   storage: keys, config, index files, snapshots.
//!
//! See `hokan_core`'s documentation for a tour and a runnable example.

pub use hokan_core as core;
pub use hokan_repo as repo;
