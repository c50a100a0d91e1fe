//! hokan: content-addressed, deduplicated, encrypted backups for file
//! systems, Kubernetes resources and etcd, on local disk or object storage.
//!
//! This facade re-exports the workspace crates so an embedder needs one
//! dependency; everything the `hokan` command does, a Rust program does
//! through these:
//!
//! | module        | crate             | feature  | what it is                                         |
//! |---------------|-------------------|----------|----------------------------------------------------|
//! | [`core`]      | `hokan-core`      | always   | chunking, ids, compression, encryption, packs, the dedup index, file-system archiving and restore, tar streams |
//! | [`repo`]      | `hokan-repo`      | always   | the repository on disk or object storage: keys, snapshots, sessions, forget (with linked snapshots), prune, check, copy |
//! | `k8s`         | `hokan-k8s`       | `k8s`    | Kubernetes resources backed up and restored in order, pod volumes, Velero tarballs |
//! | `k8s_codec`   | `hokan-k8s-codec` | `k8s`    | decoding stored Kubernetes objects (JSON, protobuf, encryption at rest) |
//! | `etcd`        | `hokan-etcd`      | `etcd`   | etcd snapshots stored along bbolt's structure, restored byte for byte; the control plane's static pod resources beside them |
//! | `mount`       | `hokan-mount`     | `mount`  | a read-only FUSE view of a repository              |
//!
//! ```toml
//! [dependencies]
//! hokan = { version = "0.1", features = ["k8s", "etcd"] }
//! ```
//!
//! The three examples below run as this crate's tests (`cargo test --doc
//! -p hokan`; its dev-dependencies turn every feature on). Each opens a
//! repository the same way, hidden here (`#` lines in the source):
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hokan::repo::{InitOptions, KdfParams, OpenOptions, Repository};
//!
//! let dir = tempfile::tempdir()?;
//! let location = dir.path().join("repo").to_str().unwrap().to_string();
//! // Cheap key stretching for the examples; the default costs ~0.15 s.
//! let kdf = KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
//! Repository::init(&location, b"secret", InitOptions { kdf, ..Default::default() }, OpenOptions::default())?;
//! let repo = Repository::open(&location, b"secret", OpenOptions::default())?.load_index()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Files: back up a directory, restore it elsewhere
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let location = dir.path().join("repo").to_str().unwrap().to_string();
//! # let kdf = hokan::repo::KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
//! # let init = hokan::repo::InitOptions { kdf, ..Default::default() };
//! # hokan::repo::Repository::init(&location, b"secret", init, Default::default())?;
//! # let data = dir.path().join("data");
//! # std::fs::create_dir_all(data.join("docs"))?;
//! # std::fs::write(data.join("docs/notes.txt"), "keep me")?;
//! # let target = dir.path().join("restored");
//! use hokan::core::fs::NoProgress;
//! use hokan::repo::{FsBackup, OpenOptions, Repository};
//!
//! let mut repo = Repository::open(&location, b"secret", OpenOptions::default())?.load_index()?;
//! let saved = repo.backup_paths(&[data.clone()], &FsBackup::default(), &NoProgress)?;
//! println!("snapshot {} of {:?}", saved.entry.id.short(), saved.entry.snapshot.paths);
//!
//! let latest = repo.find_snapshot("latest", &Default::default())?;
//! let path = data.to_str().unwrap();
//! repo.restore(&latest.snapshot, path, &target, Default::default(), &NoProgress)?;
//! assert_eq!(std::fs::read_to_string(target.join("docs/notes.txt"))?, "keep me");
//! # Ok(())
//! # }
//! ```
//!
//! # etcd: store a snapshot, restore it byte for byte
//!
//! A file `etcdctl snapshot save` wrote (here a small bbolt database);
//! `hokan::etcd::backup_live` takes one from a running member instead, and
//! `hokan::etcd::cluster_backup` adds the control plane's static pod
//! resources and retention, as `cluster-backup.sh` does.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let location = dir.path().join("repo").to_str().unwrap().to_string();
//! # let kdf = hokan::repo::KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
//! # let init = hokan::repo::InitOptions { kdf, ..Default::default() };
//! # hokan::repo::Repository::init(&location, b"secret", init, Default::default())?;
//! # let file = dir.path().join("snapshot.db");
//! # std::fs::write(&file, hokan::etcd::testdata::tiny_db())?;
//! # let restored = dir.path().join("restored.db");
//! use hokan::core::fs::NoProgress;
//! use hokan::etcd::{BackupOptions, EtcdSnapshot, import_file, restore_file, stored_status};
//! use hokan::repo::{OpenOptions, Repository};
//!
//! let mut repo = Repository::open(&location, b"secret", OpenOptions::default())?.load_index()?;
//! let backed = import_file(&mut repo, &file, &BackupOptions::default(), &NoProgress)?;
//! println!("cluster {:?}, {} keys", backed.facts.cluster_id, backed.keys);
//!
//! let stored = EtcdSnapshot::find(&repo, "latest")?;
//! assert_eq!(stored_status(&repo, &stored)?.revision, 4);
//! restore_file(&repo, &stored, &restored, &NoProgress)?;
//! assert_eq!(std::fs::read(&restored)?, std::fs::read(&file)?);
//! # Ok(())
//! # }
//! ```
//!
//! # Kubernetes: a namespace backed up, restored into another cluster
//!
//! Two in-process API servers (hokan-k8s's `test-server` feature) stand in
//! for the clusters; `hokan::k8s::Cluster::connect` reaches real ones
//! through a kubeconfig or a pod's service account.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let location = dir.path().join("repo").to_str().unwrap().to_string();
//! # let kdf = hokan::repo::KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
//! # let init = hokan::repo::InitOptions { kdf, ..Default::default() };
//! # hokan::repo::Repository::init(&location, b"secret", init, Default::default())?;
//! # // The repository blocks while the API is read: a multi-threaded runtime.
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
//! # use hokan::k8s::testserver::TestServer;
//! # let (prod, dr) = (TestServer::start().await?, TestServer::start().await?);
//! # prod.seed([
//! #     serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
//! #     serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
//! #         "metadata": {"name": "web", "namespace": "shop"}, "data": {"color": "blue"}}),
//! # ])?;
//! # let (source, target) = (prod.cluster()?, dr.cluster()?);
//! use hokan::core::fs::NoProgress;
//! use hokan::k8s::{BackupOptions, RestoreOptions, SnapshotOptions, SnapshotSource, Target};
//! use hokan::repo::{OpenOptions, Repository};
//!
//! let mut repo = Repository::open(&location, b"secret", OpenOptions::default())?.load_index()?;
//! let shop = BackupOptions { include_namespaces: vec!["shop".into()], ..Default::default() };
//! let saved = hokan::k8s::backup_to_repository(&source, &shop, &mut repo, &SnapshotOptions::default(), &NoProgress).await?;
//!
//! let snapshot = SnapshotSource::new(&repo, &saved.entry)?;
//! let options = RestoreOptions::default();
//! let plan = hokan::k8s::plan(&snapshot, Some(&target.discover().await?), &options).await?;
//! let report = hokan::k8s::execute(&plan, &snapshot, Target::Cluster(&target), &options).await?;
//! assert_eq!(report.totals.created, 2); // the namespace, then the ConfigMap
//! # assert_eq!(dr.object("", "configmaps", Some("shop"), "web").unwrap()["data"]["color"], "blue");
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```

pub use hokan_core as core;
pub use hokan_repo as repo;

#[cfg(feature = "etcd")]
pub use hokan_etcd as etcd;
#[cfg(feature = "k8s")]
pub use hokan_k8s as k8s;
#[cfg(feature = "k8s")]
pub use hokan_k8s_codec as k8s_codec;
#[cfg(feature = "mount")]
pub use hokan_mount as mount;
