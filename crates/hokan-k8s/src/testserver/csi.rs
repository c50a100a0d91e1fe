//! A CSI driver with its snapshot controller and external provisioner, as
//! clients beside the test server (as the [`Kubelet`](super::Kubelet)
//! is), for volume snapshot tests (issue 25's "snapshot + copy"):
//!
//! - **provisioner**: a claim in `Pending` whose StorageClass names this
//!   driver gets a PersistentVolume `pvc-<claim uid>` (CSI, volume handle
//!   the same name, the claim's capacity, access and volume modes, the
//!   class's reclaim policy) and is bound to it. With a `VolumeSnapshot` as
//!   its `dataSource` it waits until that snapshot is ready, and its volume
//!   starts as a copy of the snapshot's data. A claim deleted releases its
//!   volume; `Delete` removes the volume and its data.
//! - **snapshot controller**: a `VolumeSnapshot` of a claim bound to one of
//!   the driver's volumes gets a `VolumeSnapshotContent`
//!   `snapcontent-<snapshot uid>` (the class's deletion policy; the class
//!   given, else the driver's default class), the volume's data copied
//!   when the snapshot is taken, and is `readyToUse` after
//!   [`CsiConfig::ready_after`] polls. A snapshot deleted deletes its
//!   content and data under `Delete`.
//! - **data**: each volume is a directory under the driver's root
//!   (`volumes/<handle>`), each snapshot another (`snapshots/<handle>`);
//!   the kubelet stand-in mounts volumes through [`CsiVolumes`].
//!
//! Injectable: a snapshot error ([`Csi::fail_snapshots`], shown in the
//! snapshot's `status.error` as the real controller shows the driver's
//! error) and snapshots that never become ready ([`Csi::never_ready`]).
//!
//! - **pre-provisioned contents**: a `VolumeSnapshot` whose source is a
//!   `volumeSnapshotContentName` binds to that content (which must name it
//!   back in `volumeSnapshotRef`) and is ready at once when the content's
//!   `snapshotHandle` holds data. Under `Retain` a deleted snapshot leaves
//!   its content, and the data; deleting such a content deletes no data.
//!
//! Differs from the real components: no finalizers or `Released` volumes
//! kept for reuse, no topology, no resize, no group snapshots; a Block-mode claim's device is a sparse image
//! file of its size (the kubelet stand-in attaches it to a loop device
//! where a container's `volumeDevices` puts the device, or names the file
//! when not root); the snapshot CRDs are registered by
//! [`Csi::start`] with open schemas.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::TestServer;
use super::kubelet::CsiVolumes;
use crate::cluster::Cluster;
use crate::{Error, Result};

/// The user name the stand-in's requests carry.
pub const USER: &str = "system:hokan-test:csi-stand-in";

/// The snapshot API's group and version.
const SNAPSHOT_API: &str = "/apis/snapshot.storage.k8s.io/v1";

/// How the driver behaves.
#[derive(Clone, Debug)]
pub struct CsiConfig {
    /// The driver's name (`provisioner` of its StorageClasses, `driver` of
    /// its snapshot classes).
    pub driver: String,
    /// Where volumes and snapshots keep their data.
    pub root: PathBuf,
    /// Polls between a snapshot's content being made and it being ready
    /// (a real driver takes a moment to cut a snapshot).
    pub ready_after: u32,
    /// How often the controllers look.
    pub poll_interval: Duration,
}

impl CsiConfig {
    /// A driver named `driver` keeping its data under `root`; snapshots
    /// ready on the second poll; polls every 100 ms.
    pub fn new(driver: &str, root: impl Into<PathBuf>) -> Self {
        CsiConfig {
            driver: driver.into(),
            root: root.into(),
            ready_after: 2,
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// The driver's data, for the kubelet stand-in and for tests.
#[derive(Debug)]
pub struct CsiData {
    root: PathBuf,
}

impl CsiData {
    /// The directory of volume `handle`.
    pub fn volume(&self, handle: &str) -> PathBuf {
        self.root.join("volumes").join(handle)
    }

    /// The directory of snapshot `handle`.
    pub fn snapshot(&self, handle: &str) -> PathBuf {
        self.root.join("snapshots").join(handle)
    }
}

impl CsiVolumes for CsiData {
    fn directory(&self, volume_handle: &str, _node: &str) -> Option<PathBuf> {
        // Every node reaches every volume (no topology). A Block volume is
        // an image file, the kubelet stand-in's device.
        let dir = self.volume(volume_handle);
        dir.exists().then_some(dir)
    }
}

#[derive(Default)]
struct Faults {
    snapshot_error: Option<String>,
    never_ready: bool,
}

struct Shared {
    cluster: Cluster,
    config: CsiConfig,
    data: Arc<CsiData>,
    faults: Mutex<Faults>,
    /// Polls each content has waited for readiness, by name.
    waiting: Mutex<BTreeMap<String, u32>>,
}

/// The running stand-in; stops when dropped.
pub struct Csi {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Csi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Csi")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Drop for Csi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Csi {
    /// Registers the snapshot CRDs (where missing) and starts the
    /// controllers against `server` on the current tokio runtime.
    pub async fn start(server: &TestServer, config: CsiConfig) -> Result<Self> {
        let cluster = server.cluster_as(USER)?;
        for (plural, kind, scope) in [
            ("volumesnapshots", "VolumeSnapshot", "Namespaced"),
            ("volumesnapshotcontents", "VolumeSnapshotContent", "Cluster"),
            ("volumesnapshotclasses", "VolumeSnapshotClass", "Cluster"),
        ] {
            let name = format!("{plural}.snapshot.storage.k8s.io");
            let path = format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}");
            if cluster.get(&path).await?.is_none() {
                cluster
                    .create(
                        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                        &snapshot_crd(&name, plural, kind, scope),
                    )
                    .await?;
            }
        }
        for dir in ["volumes", "snapshots"] {
            let d = config.root.join(dir);
            std::fs::create_dir_all(&d).map_err(|e| Error::io("create", &d, e))?;
        }
        let shared = Arc::new(Shared {
            cluster,
            data: Arc::new(CsiData {
                root: config.root.clone(),
            }),
            config,
            faults: Mutex::default(),
            waiting: Mutex::default(),
        });
        let looping = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                // A failed poll is retried on the next one, as controllers
                // requeue.
                let _ = poll(&looping).await;
                tokio::time::sleep(looping.config.poll_interval).await;
            }
        });
        Ok(Csi { shared, task })
    }

    /// The driver's data: give it to the kubelet stand-in
    /// (`KubeletConfig::csi_driver`) so pods mount its volumes.
    pub fn data(&self) -> Arc<CsiData> {
        self.shared.data.clone()
    }

    /// Makes every snapshot cut from now on fail with `message` (the
    /// driver's error), or none with `None`.
    pub fn fail_snapshots(&self, message: Option<&str>) {
        super::lock(&self.shared.faults).snapshot_error = message.map(str::to_string);
    }

    /// Makes snapshots never become ready (`true`) or behave again.
    pub fn never_ready(&self, on: bool) {
        super::lock(&self.shared.faults).never_ready = on;
    }
}

fn snapshot_crd(name: &str, plural: &str, kind: &str, scope: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": "snapshot.storage.k8s.io", "scope": scope,
            "names": {"plural": plural, "kind": kind,
                      "singular": kind.to_ascii_lowercase(),
                      "listKind": format!("{kind}List")},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": if kind == "VolumeSnapshotClass" { json!({}) } else { json!({"status": {}}) },
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    })
}

/// One round: provision claims, cut snapshots, clean up.
async fn poll(shared: &Arc<Shared>) -> Result<()> {
    let c = &shared.cluster;
    let classes = list(c, "/apis/storage.k8s.io/v1/storageclasses").await?;
    let snapshot_classes = list(c, &format!("{SNAPSHOT_API}/volumesnapshotclasses")).await?;
    let claims = list(c, "/api/v1/persistentvolumeclaims").await?;
    let volumes = list(c, "/api/v1/persistentvolumes").await?;
    let snapshots = list(c, &format!("{SNAPSHOT_API}/volumesnapshots")).await?;
    let contents = list(c, &format!("{SNAPSHOT_API}/volumesnapshotcontents")).await?;
    let mine: BTreeSet<String> = classes
        .iter()
        .filter(|s| str_at(s, "/provisioner") == shared.config.driver)
        .map(|s| str_at(s, "/metadata/name").to_string())
        .collect();
    for claim in &claims {
        if str_at(claim, "/status/phase") != "Bound"
            && mine.contains(str_at(claim, "/spec/storageClassName"))
        {
            provision(shared, claim, &classes, &snapshots, &contents).await?;
        }
    }
    for snapshot in &snapshots {
        cut(
            shared,
            snapshot,
            &snapshot_classes,
            &claims,
            &volumes,
            &contents,
        )
        .await?;
    }
    clean_up(shared, &claims, &volumes, &snapshots, &contents).await
}

/// Makes and binds the volume of a pending claim (from its snapshot when
/// it names one; waiting while that snapshot is not ready).
async fn provision(
    shared: &Shared,
    claim: &Value,
    classes: &[Value],
    snapshots: &[Value],
    contents: &[Value],
) -> Result<()> {
    let ns = str_at(claim, "/metadata/namespace");
    let name = str_at(claim, "/metadata/name");
    let handle = format!("pvc-{}", str_at(claim, "/metadata/uid"));
    let dir = shared.data.volume(&handle);
    let source = claim.pointer("/spec/dataSource").cloned();
    if !dir.exists() {
        let staging = dir.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&staging);
        let _ = std::fs::remove_file(&staging);
        match source.as_ref().filter(|s| s["kind"] == "VolumeSnapshot") {
            Some(s) => {
                let snap = s["name"].as_str().unwrap_or_default();
                let Some(content) = snapshots
                    .iter()
                    .find(|v| {
                        str_at(v, "/metadata/namespace") == ns
                            && str_at(v, "/metadata/name") == snap
                            && v.pointer("/status/readyToUse") == Some(&json!(true))
                    })
                    .and_then(|v| {
                        let bound = str_at(v, "/status/boundVolumeSnapshotContentName");
                        contents
                            .iter()
                            .find(|c| str_at(c, "/metadata/name") == bound)
                    })
                else {
                    return Ok(()); // waits for the snapshot, as the provisioner does
                };
                let from = shared
                    .data
                    .snapshot(str_at(content, "/status/snapshotHandle"));
                copy_tree(&from, &staging)?;
            }
            None if str_at(claim, "/spec/volumeMode") == "Block" => {
                // A raw device: a sparse image of the claim's size.
                let size = quantity(str_at(claim, "/spec/resources/requests/storage"));
                let f = std::fs::File::create(&staging)
                    .map_err(|e| Error::io("create", &staging, e))?;
                f.set_len(size)
                    .map_err(|e| Error::io("size", &staging, e))?;
            }
            None => {
                std::fs::create_dir_all(&staging).map_err(|e| Error::io("create", &staging, e))?
            }
        }
        std::fs::rename(&staging, &dir).map_err(|e| Error::io("rename", &staging, e))?;
    }
    let class = classes
        .iter()
        .find(|s| str_at(s, "/metadata/name") == str_at(claim, "/spec/storageClassName"));
    let reclaim = class
        .map(|s| str_at(s, "/reclaimPolicy"))
        .filter(|r| !r.is_empty())
        .unwrap_or("Delete");
    let size = claim
        .pointer("/spec/resources/requests/storage")
        .cloned()
        .unwrap_or(json!("1Gi"));
    let mode = claim
        .pointer("/spec/volumeMode")
        .cloned()
        .unwrap_or(json!("Filesystem"));
    let pv = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": handle,
                     "annotations": {"pv.kubernetes.io/provisioned-by": shared.config.driver}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": claim.pointer("/spec/accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
            "volumeMode": mode,
            "persistentVolumeReclaimPolicy": reclaim,
            "storageClassName": str_at(claim, "/spec/storageClassName"),
            "csi": {"driver": shared.config.driver, "volumeHandle": handle},
            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": name,
                         "uid": str_at(claim, "/metadata/uid")},
        },
    });
    let pv_path = format!("/api/v1/persistentvolumes/{handle}");
    let mut pv = match shared.cluster.get(&pv_path).await? {
        Some(existing) => existing,
        None => {
            shared
                .cluster
                .create("/api/v1/persistentvolumes", &pv)
                .await?
        }
    };
    pv["status"] = json!({"phase": "Bound"});
    shared
        .cluster
        .replace(&format!("{pv_path}/status"), &pv)
        .await?;
    let path = format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}");
    let mut bound = claim.clone();
    bound["spec"]["volumeName"] = json!(handle);
    let bound = shared.cluster.replace(&path, &bound).await?;
    let mut with_status = bound;
    with_status["status"] = json!({
        "phase": "Bound",
        "accessModes": pv["spec"]["accessModes"],
        "capacity": {"storage": size},
    });
    shared
        .cluster
        .replace(&format!("{path}/status"), &with_status)
        .await?;
    Ok(())
}

/// Cuts a snapshot that has no content yet, and makes a cut one ready
/// after its delay (or records the injected error).
async fn cut(
    shared: &Shared,
    snapshot: &Value,
    classes: &[Value],
    claims: &[Value],
    volumes: &[Value],
    contents: &[Value],
) -> Result<()> {
    if snapshot.pointer("/status/readyToUse") == Some(&json!(true))
        || snapshot.pointer("/status/error").is_some()
        || snapshot.pointer("/metadata/deletionTimestamp").is_some()
    {
        return Ok(());
    }
    let ns = str_at(snapshot, "/metadata/namespace");
    let name = str_at(snapshot, "/metadata/name");
    let content_name = format!("snapcontent-{}", str_at(snapshot, "/metadata/uid"));
    let path = format!("{SNAPSHOT_API}/namespaces/{ns}/volumesnapshots/{name}");
    let given_content = str_at(snapshot, "/spec/source/volumeSnapshotContentName");
    if !given_content.is_empty() {
        return bind_static(shared, snapshot, &path, given_content, contents).await;
    }
    let claim_name = str_at(snapshot, "/spec/source/persistentVolumeClaimName");
    let Some(claim) = claims.iter().find(|c| {
        str_at(c, "/metadata/namespace") == ns && str_at(c, "/metadata/name") == claim_name
    }) else {
        return Ok(()); // the real controller waits for the claim too
    };
    let Some(volume) = volumes
        .iter()
        .find(|v| str_at(v, "/metadata/name") == str_at(claim, "/spec/volumeName"))
        .filter(|v| str_at(v, "/spec/csi/driver") == shared.config.driver)
    else {
        return Ok(()); // not bound yet, or another driver's
    };
    let given = str_at(snapshot, "/spec/volumeSnapshotClassName");
    let class = classes.iter().find(|c| {
        str_at(c, "/driver") == shared.config.driver
            && if given.is_empty() {
                str_at(
                    c,
                    "/metadata/annotations/snapshot.storage.kubernetes.io~1is-default-class",
                ) == "true"
            } else {
                str_at(c, "/metadata/name") == given
            }
    });
    let Some(class) = class else {
        let message = if given.is_empty() {
            format!(
                "cannot find default snapshot class for driver {}",
                shared.config.driver
            )
        } else {
            format!(
                "failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io \"{given}\" not found"
            )
        };
        return set_error(shared, snapshot, &path, &message).await;
    };
    let injected = super::lock(&shared.faults).snapshot_error.clone();
    if let Some(message) = injected {
        return set_error(shared, snapshot, &path, &message).await;
    }
    let handle = format!("snapshot-{}", str_at(snapshot, "/metadata/uid"));
    let content = match contents
        .iter()
        .find(|c| str_at(c, "/metadata/name") == content_name)
    {
        Some(c) => c.clone(),
        None => {
            // The data is taken now: later writes to the volume are not in it.
            let from = shared.data.volume(str_at(volume, "/spec/csi/volumeHandle"));
            let to = shared.data.snapshot(&handle);
            let staging = to.with_extension("tmp");
            let _ = std::fs::remove_dir_all(&staging);
            let _ = std::fs::remove_file(&staging);
            copy_tree(&from, &staging)?;
            std::fs::rename(&staging, &to).map_err(|e| Error::io("rename", &staging, e))?;
            let body = json!({
                "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
                "metadata": {"name": content_name},
                "spec": {
                    "driver": shared.config.driver,
                    "deletionPolicy": class.get("deletionPolicy").cloned().unwrap_or(json!("Delete")),
                    "volumeSnapshotClassName": str_at(class, "/metadata/name"),
                    "source": {"volumeHandle": str_at(volume, "/spec/csi/volumeHandle")},
                    "volumeSnapshotRef": {"kind": "VolumeSnapshot", "namespace": ns, "name": name,
                                          "uid": str_at(snapshot, "/metadata/uid")},
                },
            });
            shared
                .cluster
                .create(&format!("{SNAPSHOT_API}/volumesnapshotcontents"), &body)
                .await?
        }
    };
    let polls = {
        let mut waiting = super::lock(&shared.waiting);
        let n = waiting.entry(content_name.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let never = super::lock(&shared.faults).never_ready;
    let ready = !never && polls >= shared.config.ready_after;
    let size = volume
        .pointer("/spec/capacity/storage")
        .cloned()
        .unwrap_or(json!("1Gi"));
    let time = super::write::now();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let bytes = tree_size(&shared.data.snapshot(&handle));
    let mut content = content;
    // The content's status as the CSI sidecar writes it: nanoseconds and bytes.
    content["status"] = json!({"readyToUse": ready, "snapshotHandle": handle,
                               "creationTime": nanos, "restoreSize": bytes});
    shared
        .cluster
        .replace(
            &format!("{SNAPSHOT_API}/volumesnapshotcontents/{content_name}/status"),
            &content,
        )
        .await?;
    let mut snap = snapshot.clone();
    snap["status"] = json!({"boundVolumeSnapshotContentName": content_name,
                            "readyToUse": ready, "creationTime": time, "restoreSize": size});
    shared
        .cluster
        .replace(&format!("{path}/status"), &snap)
        .await?;
    Ok(())
}

/// Binds a snapshot to the pre-provisioned content it names (an existing
/// snapshot handle, as Velero's data mover exposes a snapshot in its own
/// namespace): ready at once when the content names this snapshot back
/// and its handle holds data; an error when the content names another.
async fn bind_static(
    shared: &Shared,
    snapshot: &Value,
    path: &str,
    content_name: &str,
    contents: &[Value],
) -> Result<()> {
    let Some(content) = contents
        .iter()
        .find(|c| str_at(c, "/metadata/name") == content_name)
    else {
        return Ok(()); // the real controller waits for the content
    };
    if str_at(content, "/spec/driver") != shared.config.driver {
        return Ok(());
    }
    let ns = str_at(snapshot, "/metadata/namespace");
    let name = str_at(snapshot, "/metadata/name");
    if str_at(content, "/spec/volumeSnapshotRef/namespace") != ns
        || str_at(content, "/spec/volumeSnapshotRef/name") != name
    {
        let message =
            format!("VolumeSnapshotContent {content_name} is bound to another VolumeSnapshot");
        return set_error(shared, snapshot, path, &message).await;
    }
    let handle = str_at(content, "/spec/source/snapshotHandle");
    let data = shared.data.snapshot(handle);
    if handle.is_empty() || !data.exists() {
        let message = format!("snapshot handle {handle:?} of {content_name} does not exist");
        return set_error(shared, snapshot, path, &message).await;
    }
    let content_path = format!("{SNAPSHOT_API}/volumesnapshotcontents/{content_name}");
    let mut bound = content.clone();
    // The controller records the snapshot's uid on binding: from then on
    // the content is this snapshot's, and is cleaned up with it.
    bound["spec"]["volumeSnapshotRef"]["uid"] = snapshot["metadata"]["uid"].clone();
    let mut bound = shared.cluster.replace(&content_path, &bound).await?;
    let bytes = tree_size(&data);
    bound["status"] = json!({"readyToUse": true, "snapshotHandle": handle, "restoreSize": bytes});
    shared
        .cluster
        .replace(&format!("{content_path}/status"), &bound)
        .await?;
    let mut snap = snapshot.clone();
    snap["status"] = json!({"boundVolumeSnapshotContentName": content_name,
                            "readyToUse": true, "creationTime": super::write::now(),
                            "restoreSize": bytes});
    shared
        .cluster
        .replace(&format!("{path}/status"), &snap)
        .await?;
    Ok(())
}

/// Records the driver's error in the snapshot's status, as the snapshot
/// controller does (`readyToUse: false`, `error.message`).
async fn set_error(shared: &Shared, snapshot: &Value, path: &str, message: &str) -> Result<()> {
    let mut snap = snapshot.clone();
    snap["status"] = json!({"readyToUse": false,
                            "error": {"message": message, "time": super::write::now()}});
    shared
        .cluster
        .replace(&format!("{path}/status"), &snap)
        .await?;
    Ok(())
}

/// Deletes what is left behind: contents of deleted snapshots (and their
/// data, under `Delete`), volumes of deleted claims (under `Delete`).
async fn clean_up(
    shared: &Shared,
    claims: &[Value],
    volumes: &[Value],
    snapshots: &[Value],
    contents: &[Value],
) -> Result<()> {
    let uids: BTreeSet<&str> = snapshots
        .iter()
        .map(|s| str_at(s, "/metadata/uid"))
        .collect();
    for content in contents {
        let owner = str_at(content, "/spec/volumeSnapshotRef/uid");
        // A pre-provisioned content not bound yet has no uid: it waits.
        if str_at(content, "/spec/driver") != shared.config.driver
            || owner.is_empty()
            || uids.contains(owner)
        {
            continue;
        }
        let name = str_at(content, "/metadata/name");
        if str_at(content, "/spec/deletionPolicy") == "Delete" {
            let handle = str_at(content, "/status/snapshotHandle");
            if !handle.is_empty() {
                remove_tree(&shared.data.snapshot(handle))?;
            }
            ignore_gone(
                shared
                    .cluster
                    .delete(&format!("{SNAPSHOT_API}/volumesnapshotcontents/{name}"))
                    .await,
            )?;
        }
        super::lock(&shared.waiting).remove(name);
    }
    let claim_uids: BTreeSet<&str> = claims.iter().map(|c| str_at(c, "/metadata/uid")).collect();
    for pv in volumes {
        let claim_uid = str_at(pv, "/spec/claimRef/uid");
        if str_at(pv, "/spec/csi/driver") != shared.config.driver
            || claim_uid.is_empty()
            || claim_uids.contains(claim_uid)
            || str_at(pv, "/spec/persistentVolumeReclaimPolicy") != "Delete"
        {
            continue;
        }
        remove_tree(&shared.data.volume(str_at(pv, "/spec/csi/volumeHandle")))?;
        let path = format!("/api/v1/persistentvolumes/{}", str_at(pv, "/metadata/name"));
        ignore_gone(shared.cluster.delete(&path).await)?;
    }
    Ok(())
}

/// Copies a directory tree (files, directories, symbolic links; modes and
/// owners where the process may set them), as a driver's snapshot keeps
/// the volume's bytes.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(from).map_err(|e| Error::io("read", from, e))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from).map_err(|e| Error::io("read", from, e))?;
        std::os::unix::fs::symlink(target, to).map_err(|e| Error::io("link", to, e))?;
        return Ok(());
    }
    if meta.is_dir() {
        std::fs::create_dir_all(to).map_err(|e| Error::io("create", to, e))?;
        for entry in std::fs::read_dir(from).map_err(|e| Error::io("read", from, e))? {
            let entry = entry.map_err(|e| Error::io("read", from, e))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else {
        std::fs::copy(from, to).map_err(|e| Error::io("copy", from, e))?;
        // A snapshot keeps the files' times, as a block-level copy does
        // (their inodes and change times are new: a copy cannot keep them).
        if let Ok(modified) = meta.modified() {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(to)
                .map_err(|e| Error::io("open", to, e))?;
            f.set_times(std::fs::FileTimes::new().set_modified(modified))
                .map_err(|e| Error::io("set times of", to, e))?;
        }
    }
    let _ = std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()));
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| Error::io("chmod", to, e))
}

/// A storage quantity in bytes (`64Mi`, `1Gi`, `500M`, `4096`); 0 when
/// it does not parse.
fn quantity(q: &str) -> u64 {
    let digits = q.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit: u64 = match &q[digits.len()..] {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return 0,
    };
    digits.parse::<u64>().map_or(0, |n| n.saturating_mul(unit))
}

/// The bytes of the files under `dir` (or of the file `dir`).
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return std::fs::metadata(dir).map_or(0, |m| if m.is_file() { m.len() } else { 0 });
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

fn remove_tree(dir: &Path) -> Result<()> {
    let removed = if dir.is_file() {
        std::fs::remove_file(dir)
    } else {
        std::fs::remove_dir_all(dir)
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", dir, e)),
        _ => Ok(()),
    }
}

fn ignore_gone(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

async fn list(cluster: &Cluster, path: &str) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = match cluster.list_page(path, None, token.as_deref(), 500).await {
            Ok(p) => p,
            // The snapshot CRDs deleted by a test: nothing to do.
            Err(e) if e.is_not_found() => return Ok(items),
            Err(e) => return Err(e),
        };
        for i in page.items {
            items.push(
                serde_json::from_str(i.get()).map_err(|e| Error::bad_object("a listed item", e))?,
            );
        }
        match page.continue_token {
            Some(t) => token = Some(t),
            None => return Ok(items),
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}
