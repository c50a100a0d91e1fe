//! Resource snapshots in a hokan repository: a backup stored object by
//! object ([`backup_to_repository`]), a Velero tarball imported the same way
//! ([`import_velero_to_repository`]), and a snapshot read back as an
//! [`ObjectSource`](crate::ObjectSource) ([`SnapshotSource`]) for restores
//! and exports.
//!
//! Each object is one blob (small ones compressed together in groups), an
//! `Object` node in the tree at its [`layout`](crate::layout) path, with its
//! [`ObjectAttrs`](crate::ObjectAttrs) as typed attributes, so `ls`, `find`,
//! `diff` and `dump` work on it like on any tree. An unchanged object is the
//! same blob and an unchanged directory the same tree, so backing up an
//! unchanged cluster again stores nothing but the snapshot.
//!
//! The repository is synchronous (it blocks on its store's I/O runtime)
//! while the Kubernetes client is async: these functions step off the
//! runtime's worker ([`tokio::task::block_in_place`]) for the repository's
//! work, so they need tokio's multi-threaded runtime. A backup runs the API
//! reads as a task and the session on the calling thread, joined by a
//! bounded channel ([`FeedSink`]).

mod feed;
mod parent;
mod source;
mod tree;

use std::path::Path;

use hokan_core::fs::Progress;
use hokan_repo::{Committed, IndexedRepository, ParentChoice, SnapshotSpec, SourceKind};
use tokio::runtime::{Handle, RuntimeFlavor};

pub use feed::FeedSink;
pub use source::SnapshotSource;
pub use tree::{TreeBuilder, TreeCounts};

use crate::backup::{BackupOptions, BackupSummary, backup};
use crate::cluster::Cluster;
use crate::{Error, Result};

/// The figures a resource snapshot's summary carries
/// ([`Summary::counts`](hokan_repo::Summary::counts)).
pub mod counts {
    /// Objects backed up (each once, in its preferred version).
    pub const OBJECTS: &str = "objects";
    /// Entries stored, counting every version of each object.
    pub const ENTRIES: &str = "entries";
    /// Entries not in the parent snapshot.
    pub const NEW: &str = "objects_new";
    /// Entries whose content differs from the parent's.
    pub const CHANGED: &str = "objects_changed";
    /// Entries as in the parent.
    pub const UNMODIFIED: &str = "objects_unmodified";
    /// Entries of the parent no longer there.
    pub const REMOVED: &str = "objects_removed";
    /// Resources (`resource.group`) with at least one object.
    pub const RESOURCES: &str = "resources";
    /// Objects left out by a rule (a label, OLM, being deleted).
    pub const SKIPPED: &str = "objects_skipped";
    /// List requests made.
    pub const PAGES: &str = "pages";
}

/// Snapshot labels a resource backup records.
pub mod labels {
    /// The cluster's identity (kube context or server URL).
    pub const CLUSTER: &str = "k8s.cluster";
    /// The backup's filters, as flags, when any were given.
    pub const FILTERS: &str = "k8s.filters";
}

/// How the snapshot is recorded: tags, host, parent, extra labels.
#[derive(Clone, Debug, Default)]
pub struct SnapshotOptions {
    /// Tags.
    pub tags: Vec<String>,
    /// Record this host name instead of the machine's.
    pub hostname: Option<String>,
    /// Which snapshot the counts compare with; by default the newest of the
    /// same cluster identity.
    pub parent: ParentChoice,
    /// Labels beside the ones the backup records.
    pub labels: Vec<(String, String)>,
}

/// Backs up what `options` select from `cluster` into `repo` as one
/// snapshot of [`SourceKind::K8S`] whose identity is the cluster's
/// ([`Cluster::identity`]). Resources the server refused are listed in the
/// returned summary's `errors` (the snapshot is committed without them, as
/// Velero's partially failed backups are); anything else that fails leaves
/// no snapshot behind. `progress` hears of every object stored.
///
/// Needs tokio's multi-threaded runtime (see the module documentation).
pub async fn backup_to_repository(
    cluster: &Cluster,
    options: &BackupOptions,
    repo: &mut IndexedRepository,
    snapshot: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<Committed<BackupSummary>> {
    require_multi_thread("backup_to_repository")?;
    let mut spec = spec(cluster.identity(), snapshot);
    spec.labels.extend(filter_labels(options));
    let (mut sink, rx) = feed::channel();
    let (cluster, options) = (cluster.clone(), options.clone());
    let producer =
        tokio::spawn(async move { backup(&cluster, &options, &mut sink).await.map(drop) });
    run(repo, spec, rx, producer, progress).await
}

/// Imports a Velero backup tarball into `repo` as a resource snapshot whose
/// identity is `identity` (the cluster the tarball came from, say), stored
/// exactly as a backup of the same objects would be.
///
/// Needs tokio's multi-threaded runtime (see the module documentation).
pub async fn import_velero_to_repository(
    tarball: &Path,
    identity: &str,
    repo: &mut IndexedRepository,
    snapshot: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<Committed<BackupSummary>> {
    require_multi_thread("import_velero_to_repository")?;
    let file = std::fs::File::open(tarball).map_err(|e| Error::io("open", tarball, e))?;
    let mut spec = spec(identity, snapshot);
    spec.labels
        .push(("k8s.imported-from".into(), tarball.display().to_string()));
    let (mut sink, rx) = feed::channel();
    let name = tarball.to_path_buf();
    // Reading and gunzipping the tarball blocks: off the async workers.
    let producer = tokio::task::spawn_blocking(move || {
        futures::executor::block_on(crate::velero::import(
            &name,
            std::io::BufReader::new(file),
            &mut sink,
        ))
        .map(drop)
    });
    run(repo, spec, rx, producer, progress).await
}

/// Stores what the producer sends, then waits for the producer: its error
/// is the cause when the session was abandoned.
async fn run(
    repo: &mut IndexedRepository,
    spec: SnapshotSpec,
    rx: tokio::sync::mpsc::Receiver<feed::Feed>,
    producer: tokio::task::JoinHandle<Result<()>>,
    progress: &dyn Progress,
) -> Result<Committed<BackupSummary>> {
    let stored = tokio::task::block_in_place(|| feed::store(repo, spec, rx, progress));
    let produced = producer
        .await
        .map_err(|e| Error::Store(format!("the backup task failed: {e}").into()));
    match (stored, produced) {
        (Ok(Some(committed)), _) => Ok(committed),
        (Err(e), _) => Err(e),
        (Ok(None), Ok(Err(e)) | Err(e)) => Err(e),
        (Ok(None), Ok(Ok(()))) => Err(Error::Store(
            "the backup ended without finishing; nothing was committed".into(),
        )),
    }
}

fn spec(identity: &str, snapshot: &SnapshotOptions) -> SnapshotSpec {
    let mut labels = snapshot.labels.clone();
    labels.push((labels::CLUSTER.into(), identity.to_string()));
    SnapshotSpec {
        identity: identity.to_string(),
        // Shown in `hokan snapshots`, and matched by `--path`.
        paths: vec![identity.to_string()],
        tags: snapshot.tags.clone(),
        hostname: snapshot.hostname.clone(),
        labels,
        parent: snapshot.parent.clone(),
        ..SnapshotSpec::new(SourceKind::K8S)
    }
}

/// The backup's filters as the flags that would repeat them, so a
/// snapshot says what it holds.
fn filter_labels(o: &BackupOptions) -> Vec<(String, String)> {
    let mut flags = Vec::new();
    let mut list = |flag: &str, values: &[String]| {
        if !values.is_empty() {
            flags.push(format!("--{flag} {}", values.join(",")));
        }
    };
    list("include-namespaces", &o.include_namespaces);
    list("exclude-namespaces", &o.exclude_namespaces);
    list("include-resources", &o.include_resources);
    list("exclude-resources", &o.exclude_resources);
    if let Some(s) = &o.selector {
        flags.push(format!("--selector {s}"));
    }
    match o.cluster_resources {
        crate::filter::ClusterResources::Include => {
            flags.push("--include-cluster-resources true".into())
        }
        crate::filter::ClusterResources::Exclude => {
            flags.push("--include-cluster-resources false".into())
        }
        crate::filter::ClusterResources::Auto => {}
    }
    if o.all_api_versions {
        flags.push("--all-api-versions".into());
    }
    if o.exclude_operators {
        flags.push("--exclude-operators".into());
    }
    if flags.is_empty() {
        Vec::new()
    } else {
        vec![(labels::FILTERS.into(), flags.join(" "))]
    }
}

/// The summary figures of a committed resource snapshot.
pub(crate) fn counts(summary: &BackupSummary, tree: &TreeCounts) -> Vec<(String, u64)> {
    [
        (counts::OBJECTS, summary.objects),
        (counts::ENTRIES, summary.entries),
        (counts::NEW, tree.new),
        (counts::CHANGED, tree.changed),
        (counts::UNMODIFIED, tree.unmodified),
        (counts::REMOVED, tree.removed),
        (counts::RESOURCES, summary.resources.len() as u64),
        (counts::SKIPPED, summary.skipped.values().sum()),
        (counts::PAGES, summary.pages),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn require_multi_thread(what: &'static str) -> Result<()> {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => Ok(()),
        _ => Err(Error::Runtime { what }),
    }
}

/// Runs blocking repository work from async code: through
/// `block_in_place` on a multi-threaded runtime, on a scoped thread of its
/// own on a current-thread runtime (whose only thread must not block in the
/// store's own runtime), directly outside any runtime.
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| match s.spawn(f).join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
        Err(_) => f(),
    }
}
