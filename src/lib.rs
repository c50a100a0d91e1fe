//! hokan: content-addressed, deduplicated, encrypted backups for file
//! systems, Kubernetes resources and etcd, on local disk or object storage.
//!
//! This facade re-exports the workspace crates so an embedder needs one
//! dependency:
//!
//! * [`core`] (`hokan-core`): chunking, ids, compression, encryption, packs,
//!   the dedup index and the parallel pipeline.
//!
//! See `hokan_core`'s documentation for a tour and a runnable example.

pub use hokan_core as core;
