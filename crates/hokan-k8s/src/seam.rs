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
use crate::object::{GroupResource, ObjectEntry, StoredObject};

/// A part of the tree a backup puts nothing more into: one resource in one
/// version, in one namespace or everywhere. A sink that builds directories
/// as objects arrive writes them out on this signal, so it holds the entries
/// of one list, not of the whole cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    /// The resource.
    pub resource: GroupResource,
    /// The version listed.
    pub version: String,
    /// Whether that is the source's preferred version (the main tree) or
    /// another one (under `_versions/`).
    pub preferred: bool,
    /// `Some(ns)`: that namespace of the resource is complete; `None`: all
    /// of it (every namespace, or the cluster scope).
    pub namespace: Option<String>,
}

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
/// - After a list is read to its end, [`completed`](ObjectSink::completed)
///   says so; nothing more is put into that part of the tree. Objects
///   fetched one by one (the CRDs of custom resources, the PVs of claims,
///   the namespaces) come without the signal, before `finish`.
/// - An error from the sink stops the backup and is returned as is.
pub trait ObjectSink {
    /// Stores one object at [`ObjectEntry::path`].
    fn put(&mut self, object: StoredObject) -> impl Future<Output = Result<()>> + Send;

    /// Nothing more goes into `part`. Sinks that keep nothing per directory
    /// ignore it (the default).
    fn completed(&mut self, part: &Completed) -> impl Future<Output = Result<()>> + Send {
        let _ = part;
        async { Ok(()) }
    }

    /// Called once after the last object, with the backup's figures, when the
    /// backup succeeded.
    fn finish(&mut self, summary: &crate::BackupSummary)
    -> impl Future<Output = Result<()>> + Send;
}

/// Where a restore reads objects from.
///
/// [`list`](ObjectSource::list) returns every stored entry without bytes, so
/// planning needs memory for the entries (a few hundred bytes each), not for
/// the objects; [`fetch`](ObjectSource::fetch) then reads one object at a
/// time, or [`fetch_many`](ObjectSource::fetch_many) a batch of them (a
/// restore reads in batches of [`FETCH_BATCH`], in plan order).
pub trait ObjectSource {
    /// Every stored entry, preferred and other versions, in path order.
    fn list(&self) -> impl Future<Output = Result<Vec<ObjectEntry>>> + Send;

    /// The JSON of one entry returned by [`list`](ObjectSource::list).
    fn fetch(&self, entry: &ObjectEntry) -> impl Future<Output = Result<Vec<u8>>> + Send;

    /// The JSON of several entries, in their order. The default fetches them
    /// one by one; a source that reads faster in batches (a repository,
    /// whose small objects share compressed groups) overrides it.
    fn fetch_many<'a>(
        &'a self,
        entries: &'a [&'a ObjectEntry],
    ) -> impl Future<Output = Result<Vec<Vec<u8>>>> + Send + 'a
    where
        Self: Sync,
    {
        async move {
            let mut out = Vec::with_capacity(entries.len());
            for entry in entries {
                out.push(self.fetch(entry).await?);
            }
            Ok(out)
        }
    }
}

/// How many objects a restore or an export fetches at once: enough for a
/// repository to plan its reads by pack, few enough that the batch's bytes
/// stay small (objects are a few KiB; etcd caps them at 1.5 MiB).
pub const FETCH_BATCH: usize = 128;
