//! The two traits between Kubernetes and storage: a backup writes objects
//! into an [`ObjectSink`]; a restore reads them from an [`ObjectSource`].
//!
//! A hokan repository session implements both over its tree (an `Object` node
//! per object, its [`ObjectAttrs`](crate::ObjectAttrs) as the node's typed
//! attributes, its JSON as one blob), at the paths [`crate::layout`] gives.
//! [`MemoryStore`](crate::MemoryStore) and
//! [`ManifestDir`](crate::ManifestDir) implement them for tests and for plain
//! directories of manifests.

use std::future::Future;

use crate::Result;
use crate::object::{ObjectEntry, StoredObject};

/// Where a backup puts the objects it reads.
///
/// The contract a backup relies on:
/// - [`put`](ObjectSink::put) is called once per object and version, in the
///   order the API server listed them, never concurrently; the object is
///   owned by the sink from then on and the backup keeps no copy, so memory
///   stays bounded by one list page whatever the cluster's size.
/// - The same path is never put twice in one backup.
/// - Nothing is final before [`finish`](ObjectSink::finish): a failed backup
///   never calls it, so a sink that commits a snapshot there leaves no half
///   snapshot behind.
/// - An error from the sink stops the backup and is returned as is.
pub trait ObjectSink {
    /// Stores one object at [`ObjectEntry::path`].
    fn put(&mut self, object: StoredObject) -> impl Future<Output = Result<()>> + Send;

    /// Called once after the last object, with the backup's figures, when the
    /// backup succeeded.
    fn finish(&mut self, summary: &crate::BackupSummary)
    -> impl Future<Output = Result<()>> + Send;
}

/// Where a restore reads objects from.
///
/// [`list`](ObjectSource::list) returns every stored entry without bytes, so
/// planning needs memory for the entries (a few hundred bytes each), not for
/// the objects; [`fetch`](ObjectSource::fetch) then reads one object at a time.
pub trait ObjectSource {
    /// Every stored entry, preferred and other versions, in path order.
    fn list(&self) -> impl Future<Output = Result<Vec<ObjectEntry>>> + Send;

    /// The JSON of one entry returned by [`list`](ObjectSource::list).
    fn fetch(&self, entry: &ObjectEntry) -> impl Future<Output = Result<Vec<u8>>> + Send;
}
