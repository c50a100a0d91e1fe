//! hokan's Kubernetes source: resources backed up object by object, restored
//! in order to any cluster, and exchanged with Velero.
//!
//! A backup reads every object a filter selects, one list page at a time,
//! and hands each to an [`ObjectSink`]; a restore reads them back from an
//! [`ObjectSource`], plans the order and versions, sanitizes each object and
//! creates it. The two traits are the seam to storage: [`repository`]
//! stores a backup in a hokan repository, one blob per object in a tree
//! (see [`layout`] for where each object lives), and reads a snapshot back
//! ([`SnapshotSource`]); [`MemoryStore`] and [`ManifestDir`] implement them
//! for tests and plain directories.
//!
//! | type / function                   | what it is                                                        |
//! |-----------------------------------|-------------------------------------------------------------------|
//! | [`Cluster`], [`ConnectOptions`]   | a live API server through kube-rs (kubeconfig, context, in-cluster) |
//! | [`Discovery`]                     | what a server serves: groups, preferred versions, resources       |
//! | [`backup()`], [`BackupOptions`]   | Velero-style collection into a sink; [`BackupSummary`] says what it did |
//! | [`ObjectSink`], [`ObjectSource`]  | the storage seam; [`StoredObject`] and [`ObjectEntry`] cross it   |
//! | [`backup_to_repository`], [`SnapshotSource`] | a backup as a repository snapshot, and back ([`repository`]) |
//! | [`import_velero_to_repository`]   | a Velero tarball as a repository snapshot                         |
//! | [`plan()`], [`RestoreOptions`]    | restore order (Velero's priorities), versions, namespace mapping  |
//! | [`execute_with()`], [`Target`]    | create in a cluster, write manifests, or dry run, each outcome as it happens; a [`RestoreReport`] |
//! | [`restore::sanitize()`]           | what leaves an object before another cluster takes it             |
//! | [`velero`]                        | Velero backup tarballs, both ways                                 |
//! | [`volumes`]                       | pod volumes file by file, one snapshot per volume (Velero's file-system backup) |
//! | [`hooks`]                         | Velero's pre and post backup hooks from pod annotations, run through `pods/NAME/exec` |
//! | `testserver` (feature `test-server`) | an in-process API server serving Kubernetes' own data, with watches, patches, garbage collection and what kubectl needs, for tests; `testserver::kubelet`: a job controller, scheduler and kubelet stand-in running Jobs as processes (`cargo run -p hokan-k8s --example test_server --features test-server -- KUBECONFIG` runs one for kubectl) |
//!
//! # Example
//!
//! Back up a small application from the in-process test server and print
//! the plan for restoring it into another namespace:
//!
//! ```
//! use hokan_k8s::testserver::TestServer;
//! use hokan_k8s::{BackupOptions, MemoryStore, RestoreOptions, Target, backup, execute, plan};
//! use serde_json::json;
//!
//! # fn main() -> hokan_k8s::Result<()> {
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let server = TestServer::start().await?;
//! server.seed([
//!     json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
//!     json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop"}, "data": {"a": "b"}}),
//! ])?;
//! let cluster = server.cluster()?;
//!
//! let mut store = MemoryStore::new();
//! let summary = backup(&cluster, &BackupOptions::default(), &mut store).await?;
//! assert_eq!(summary.objects, 2);
//! assert!(store.get("core/configmaps/shop/web.json").is_some());
//!
//! let options = RestoreOptions {
//!     namespace_mapping: hokan_k8s::restore::parse_namespace_mapping("shop:shop-dr")?,
//!     ..Default::default()
//! };
//! let plan = plan(&store, Some(&cluster.discover().await?), &options).await?;
//! println!("{plan}");
//! let report = execute(&plan, &store, Target::DryRun, &options).await?;
//! assert_eq!(report.outcomes[1].target, "configmaps shop-dr/web");
//! # Ok(())
//! # })
//! # }
//! ```
//!
//! Into a repository, twice (the second backup of an unchanged cluster
//! stores nothing), and back out as the manifests to apply:
//!
//! ```
//! use hokan_core::fs::NoProgress;
//! use hokan_k8s::testserver::TestServer;
//! use hokan_k8s::{BackupOptions, ManifestDir, RestoreOptions, SnapshotOptions, SnapshotSource, Target};
//! use hokan_repo::{InitOptions, KdfParams, OpenOptions, Repository};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The repository blocks on its store while the API is read: a
//! // multi-threaded runtime lets both go on.
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
//! let server = TestServer::start().await?;
//! server.seed([
//!     json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
//!     json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop"}, "data": {"a": "b"}}),
//! ])?;
//! let cluster = server.cluster()?;
//!
//! let dir = tempfile::tempdir()?;
//! let location = dir.path().join("repo");
//! let location = location.to_str().unwrap();
//! let cheap = InitOptions { kdf: KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 }, ..Default::default() };
//! Repository::init(location, b"pw", cheap, OpenOptions::default())?;
//! let mut repo = Repository::open(location, b"pw", OpenOptions::default())?.load_index()?;
//!
//! let options = BackupOptions::default();
//! let snapshot = SnapshotOptions { tags: vec!["nightly".into()], ..Default::default() };
//! let first = hokan_k8s::backup_to_repository(&cluster, &options, &mut repo, &snapshot, &NoProgress).await?;
//! let again = hokan_k8s::backup_to_repository(&cluster, &options, &mut repo, &snapshot, &NoProgress).await?;
//! assert_eq!(again.entry.snapshot.summary.blobs_added, 0);
//! assert_eq!(again.entry.snapshot.tree, first.entry.snapshot.tree);
//!
//! let source = SnapshotSource::new(&repo, &again.entry)?;
//! let manifests = ManifestDir::new(dir.path().join("manifests"));
//! let restore = RestoreOptions::default();
//! let plan = hokan_k8s::plan(&source, None, &restore).await?;
//! let report = hokan_k8s::execute_with(&plan, &source, Target::Dir(&manifests), &restore, |outcome| {
//!     println!("{outcome}");
//! }).await?;
//! assert_eq!(report.totals.written, 2);
//! assert!(dir.path().join("manifests/core/configmaps/shop/web.json").is_file());
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```

#![warn(missing_docs)]

pub mod backup;
pub mod cluster;
pub mod discovery;
mod error;
pub mod filter;
pub mod hooks;
pub mod layout;
mod manifest_dir;
mod memory;
pub mod names;
mod object;
pub mod repository;
pub mod restore;
mod seam;
pub mod selector;
#[cfg(feature = "test-server")]
pub mod testserver;
pub mod velero;
pub mod version;
pub mod volumes;

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
pub use repository::{
    SnapshotOptions, SnapshotSource, backup_to_repository, import_velero_to_repository,
};
pub use restore::{
    ExistingPolicy, RestoreOptions, RestorePlan, RestoreReport, Target, execute, execute_with, plan,
};
pub use seam::{Completed, FETCH_BATCH, ObjectSink, ObjectSource};
