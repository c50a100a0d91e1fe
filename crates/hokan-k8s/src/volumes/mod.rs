//! Pod volumes, file by file, as Velero's file-system backup takes them:
//! an agent on each node lists the node's pods through the API, picks
//! their volumes ([`select()`], narrowed by a [`PodFilter`] with
//! [`node_volumes_of`]), finds each volume's directory under the
//! kubelet's (`<kubelet-dir>/pods/<pod-uid>/volumes/<plugin>/<name>`) and
//! backs it up as a snapshot of its own ([`backup_volume`], several at
//! once with [`backup_volumes`]), whose
//! identity is the claim, so the next backup finds its parent even after
//! the pod moved to another node or UID. [`restore_volume`] puts one back
//! into a directory, its owners moved into another namespace's UID range
//! ([`UidShift`], [`uid`]).

mod claim;
mod restore;
mod select;
pub mod uid;

use std::path::{Path, PathBuf};

use hokan_core::fs::{Excludes, Progress};
use hokan_repo::{FsBackupResult, IndexedRepository, SnapshotSpec, SourceKind};
use serde::Serialize;
use serde_json::Value;

pub use claim::{ClaimCopy, DEVICE_FILE, VOLUME_SNAPSHOT_LABEL, backup_claim};
pub use restore::{
    NAMESPACE_LABEL, RestoredVolume, UidShift, can_shift_owners, restore_volume, snapshot_namespace,
};
pub use select::{
    BACKUP_VOLUMES, BACKUP_VOLUMES_EXCLUDES, PodVolume, Selection, SkippedVolume, VolumeKind,
    select,
};

use crate::{Cluster, Error, Result};

/// The kubelet's directory on most distributions.
pub const DEFAULT_KUBELET_DIR: &str = "/var/lib/kubelet";

/// A picked volume and where its files are on this node.
#[derive(Clone, Debug, Serialize)]
pub struct FoundVolume {
    /// The volume.
    #[serde(flatten)]
    pub volume: PodVolume,
    /// Its directory (for CSI volumes, the `mount` directory inside).
    pub path: PathBuf,
}

/// A node's volumes: found, and left out with reasons.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeVolumes {
    /// The node.
    pub node: String,
    /// Pods on the node the API listed.
    pub pods: usize,
    /// Volumes to back up, with their directories.
    pub found: Vec<FoundVolume>,
    /// Volumes not backed up, and why (picked ones whose directory is
    /// missing among them).
    pub skipped: Vec<SkippedVolume>,
}

/// Which of a node's pods and volumes to take, beyond the annotations
/// [`select()`] reads: an operator's policy names pods by namespace and
/// labels. The default takes every pod.
#[derive(Clone, Debug, Default)]
pub struct PodFilter {
    /// Namespaces to take (globs; empty: all).
    pub namespaces: Vec<String>,
    /// A label selector (`app=db,tier in (a,b)`), applied by the server.
    pub selector: Option<String>,
    /// Volume names never taken (reported as skipped).
    pub exclude_volumes: Vec<String>,
    /// Claims (`namespace/name`) never taken (reported as skipped): an
    /// operator copies them from CSI snapshots instead.
    pub exclude_claims: Vec<String>,
}

impl PodFilter {
    /// Why `v` is left out, if it is.
    fn excludes(&self, v: &PodVolume) -> Option<&'static str> {
        if self.exclude_volumes.contains(&v.volume) {
            return Some("named in the volumes to exclude");
        }
        let claim = v.pvc().map(|c| format!("{}/{c}", v.namespace))?;
        self.exclude_claims
            .contains(&claim)
            .then_some("its claim is named in the claims to exclude (copied from CSI snapshots)")
    }
}

/// Lists the pods the API says run on `node` (field selector
/// `spec.nodeName`, so the server filters), in pages.
pub async fn node_pods(cluster: &Cluster, node: &str) -> Result<Vec<Value>> {
    pods_on(cluster, node, None).await
}

async fn pods_on(cluster: &Cluster, node: &str, selector: Option<&str>) -> Result<Vec<Value>> {
    let fields = format!("spec.nodeName={node}");
    let mut pods = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = cluster
            .list_page_by_fields(
                "/api/v1/pods",
                selector,
                Some(&fields),
                token.as_deref(),
                500,
            )
            .await?;
        for item in page.items {
            pods.push(
                serde_json::from_str(item.get())
                    .map_err(|e| Error::bad_object("list /api/v1/pods", e))?,
            );
        }
        match page.continue_token {
            Some(t) => token = Some(t),
            None => return Ok(pods),
        }
    }
}

/// The pods of `node`, their volumes picked and located under
/// `kubelet_dir`. A picked volume whose directory is not there (not
/// mounted yet, or the kubelet directory is elsewhere) is reported as
/// skipped, not as an error.
pub async fn node_volumes(
    cluster: &Cluster,
    node: &str,
    kubelet_dir: &Path,
    default_volumes_to_fs_backup: bool,
) -> Result<NodeVolumes> {
    let all = PodFilter::default();
    node_volumes_of(
        cluster,
        node,
        kubelet_dir,
        default_volumes_to_fs_backup,
        &all,
    )
    .await
}

/// [`node_volumes`] for the pods and volumes `filter` takes. A picked
/// volume whose directory is missing is skipped with
/// [`SkippedVolume::missing`] set.
pub async fn node_volumes_of(
    cluster: &Cluster,
    node: &str,
    kubelet_dir: &Path,
    default_volumes_to_fs_backup: bool,
    filter: &PodFilter,
) -> Result<NodeVolumes> {
    let namespaces = crate::filter::IncludesExcludes::new("namespace", &filter.namespaces, &[])?;
    let mut pods = pods_on(cluster, node, filter.selector.as_deref()).await?;
    pods.retain(|p| {
        namespaces.includes(
            p.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )
    });
    let mut out = NodeVolumes {
        node: node.into(),
        pods: pods.len(),
        ..Default::default()
    };
    for pod in &pods {
        let mut selection = select(pod, default_volumes_to_fs_backup);
        let (excluded, picked): (Vec<_>, Vec<_>) = selection
            .picked
            .into_iter()
            .partition(|v| filter.excludes(v).is_some());
        selection
            .skipped
            .extend(excluded.into_iter().map(|v| SkippedVolume {
                reason: filter.excludes(&v).unwrap_or_default().into(),
                namespace: v.namespace,
                pod: v.pod,
                volume: v.volume,
                missing: false,
            }));
        out.skipped.extend(selection.skipped);
        for volume in picked {
            // The kubelet names a claim's directory after the bound
            // PersistentVolume, other volumes after the volume.
            let mut names = vec![volume.volume.clone()];
            if let Some(claim) = volume.pvc() {
                let path = format!(
                    "/api/v1/namespaces/{}/persistentvolumeclaims/{claim}",
                    volume.namespace
                );
                if let Some(pv) = cluster
                    .get(&path)
                    .await?
                    .and_then(|c| c.pointer("/spec/volumeName").cloned())
                    .and_then(|v| v.as_str().map(String::from))
                {
                    names.insert(0, pv);
                }
            }
            // A claim mounted by two pods here (ReadWriteMany, or a
            // ReadWriteOnce claim shared on one node) is one volume: back
            // it up once, as Velero does.
            if let Some(first) = out
                .found
                .iter()
                .find(|f| f.volume.identity() == volume.identity())
            {
                let reason = format!(
                    "claim {} is also mounted by pod {}, backed up through it",
                    volume.identity(),
                    first.volume.pod
                );
                out.skipped.push(SkippedVolume {
                    namespace: volume.namespace.clone(),
                    pod: volume.pod.clone(),
                    volume: volume.volume.clone(),
                    reason,
                    missing: false,
                });
                continue;
            }
            match locate(kubelet_dir, &volume.pod_uid, &names)? {
                Some(path) => out.found.push(FoundVolume { volume, path }),
                None => out.skipped.push(SkippedVolume {
                    namespace: volume.namespace.clone(),
                    pod: volume.pod.clone(),
                    volume: volume.volume.clone(),
                    reason: format!(
                        "no directory {}/pods/{}/volumes/*/{} on this node: not mounted yet, or the kubelet's directory is elsewhere",
                        kubelet_dir.display(),
                        volume.pod_uid,
                        names.join("|")
                    ),
                    missing: true,
                }),
            }
        }
    }
    Ok(out)
}

/// Finds `<kubelet_dir>/pods/<uid>/volumes/<plugin>/<name>` for the first
/// of `names` that exists, whatever the plugin directory
/// (`kubernetes.io~csi`, `kubernetes.io~empty-dir`, `kubernetes.io~nfs`...);
/// a CSI volume's files are in its `mount` directory.
pub fn locate(kubelet_dir: &Path, pod_uid: &str, names: &[String]) -> Result<Option<PathBuf>> {
    let volumes = kubelet_dir.join("pods").join(pod_uid).join("volumes");
    let plugins = match std::fs::read_dir(&volumes) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("list", volumes, e)),
    };
    let mut plugins: Vec<PathBuf> = plugins.flatten().map(|e| e.path()).collect();
    plugins.sort();
    for name in names {
        for plugin in &plugins {
            let dir = plugin.join(name);
            if !dir.is_dir() {
                continue;
            }
            let mount = dir.join("mount");
            let csi = plugin.file_name().is_some_and(|p| p == "kubernetes.io~csi");
            return Ok(Some(if csi && mount.is_dir() { mount } else { dir }));
        }
    }
    Ok(None)
}

/// Backs up one volume's directory as a snapshot of [`SourceKind::VOLUME`]:
/// identity [`PodVolume::identity`] (so the parent is the claim's last
/// snapshot wherever it was mounted), path `/<identity>`, the directory's
/// content as the root (so the parent's tree matches entry by entry), and
/// labels `namespace`, `pod`, `volume`, `pvc`, `node`. The host recorded is
/// the node.
pub fn backup_volume(
    repo: &mut IndexedRepository,
    found: &FoundVolume,
    node: &str,
    tags: &[String],
    progress: &dyn Progress,
) -> Result<FsBackupResult> {
    let spec = volume_spec(found, node, tags);
    Ok(repo.backup_dir_as_root(&found.path, spec, &Excludes::default(), progress)?)
}

/// [`backup_volume`] for several volumes, at most `threads` at a time: a
/// node's volumes are mostly small, and one walk of `stat` calls leaves
/// the cores idle while it waits on the disk. One result per volume, in
/// order; a failed volume stops no other.
pub fn backup_volumes(
    repo: &mut IndexedRepository,
    found: &[FoundVolume],
    node: &str,
    tags: &[String],
    progress: &dyn Progress,
    threads: usize,
) -> Result<Vec<Result<FsBackupResult>>> {
    let jobs = found
        .iter()
        .map(|f| (f.path.clone(), volume_spec(f, node, tags)))
        .collect();
    Ok(repo
        .backup_dirs_as_roots(jobs, &Excludes::default(), progress, threads)?
        .into_iter()
        .map(|r| r.map_err(Error::from))
        .collect())
}

fn volume_spec(found: &FoundVolume, node: &str, tags: &[String]) -> SnapshotSpec {
    let v = &found.volume;
    let mut labels = vec![
        (NAMESPACE_LABEL.to_string(), v.namespace.clone()),
        ("pod".to_string(), v.pod.clone()),
        ("volume".to_string(), v.volume.clone()),
        ("node".to_string(), node.to_string()),
    ];
    if let Some(claim) = v.pvc() {
        labels.push(("pvc".to_string(), claim.to_string()));
    }
    let identity = v.identity();
    SnapshotSpec {
        paths: vec![format!("/{identity}")],
        identity,
        tags: tags.to_vec(),
        hostname: Some(node.to_string()),
        labels,
        ..SnapshotSpec::new(SourceKind::VOLUME)
    }
}
