//! The CSI stand-in (`testserver::csi`): a claim provisioned, snapshotted
//! (the data as it was when cut), a claim made from the snapshot holding
//! that data and mounted by a Job's pod, a snapshot's injected error and a
//! snapshot that never becomes ready in status, and deletion cleaning up
//! contents, volumes and their data. The in-process server only (the
//! stand-in is its driver); on a real cluster the same objects go to the
//! real external-snapshotter and CSI driver.

use std::time::Duration;

use hokan_k8s::testserver::kubelet::{wait_for, wait_gone};
use hokan_k8s::testserver::{Csi, CsiConfig, Kubelet, KubeletConfig, TestCluster};
use serde_json::{Value, json};

const DRIVER: &str = "hostpath.csi.k8s.io";

fn claim(ns: &str, name: &str, source: Option<&str>) -> Value {
    let mut c = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"storageClassName": "csi-hostpath", "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}},
    });
    if let Some(s) = source {
        c["spec"]["dataSource"] =
            json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": s});
    }
    c
}

fn snapshot(ns: &str, name: &str, claim: &str) -> Value {
    json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"source": {"persistentVolumeClaimName": claim}},
    })
}

fn bound(v: &Value) -> bool {
    v["status"]["phase"] == "Bound"
}

fn ready(v: &Value) -> bool {
    v["status"]["readyToUse"] == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_from_a_snapshot_holds_the_data_as_it_was_when_cut() {
    let root = tempfile::tempdir().unwrap();
    let mut tc = TestCluster::in_process().await.unwrap();
    let csi = Csi::start(
        tc.server().unwrap(),
        CsiConfig::new(DRIVER, root.path().join("csi")),
    )
    .await
    .unwrap();
    let config = KubeletConfig::new(root.path().join("nodes"))
        .command("sh", "/bin/sh")
        .csi_driver(DRIVER, csi.data());
    let kubelet = Kubelet::start(tc.server().unwrap(), config).await.unwrap();
    kubelet
        .register_node("node-a", json!({}), json!([]))
        .await
        .unwrap();
    for object in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
               "metadata": {"name": "csi-hostpath"}, "provisioner": DRIVER,
               "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}),
        json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
               "metadata": {"name": "csi-hostpath-snapclass",
                            "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"}},
               "driver": DRIVER, "deletionPolicy": "Delete"}),
        claim("shop", "data", None),
    ] {
        tc.create(object).await.unwrap();
    }
    let c = tc.cluster().clone();
    let claims = "/api/v1/namespaces/shop/persistentvolumeclaims";
    let data = wait_for(&c, &format!("{claims}/data"), "Bound", bound)
        .await
        .unwrap();
    let handle = data["spec"]["volumeName"].as_str().unwrap().to_string();
    let pv = c
        .get(&format!("/api/v1/persistentvolumes/{handle}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pv["spec"]["csi"]["driver"], DRIVER);
    assert_eq!(pv["spec"]["claimRef"]["name"], "data");
    let dir = csi.data().volume(&handle);
    std::fs::write(dir.join("orders.db"), b"before the snapshot").unwrap();

    tc.create(snapshot("shop", "snap-1", "data")).await.unwrap();
    let snaps = "/apis/snapshot.storage.k8s.io/v1/namespaces/shop/volumesnapshots";
    let snap = wait_for(&c, &format!("{snaps}/snap-1"), "readyToUse", ready)
        .await
        .unwrap();
    let content_name = snap["status"]["boundVolumeSnapshotContentName"]
        .as_str()
        .unwrap()
        .to_string();
    let content_path =
        format!("/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/{content_name}");
    let content = c.get(&content_path).await.unwrap().unwrap();
    assert_eq!(content["spec"]["deletionPolicy"], "Delete");
    assert_eq!(content["status"]["restoreSize"], 19);
    // Written after the cut: not in the snapshot.
    std::fs::write(dir.join("orders.db"), b"after the snapshot").unwrap();

    // A claim from the snapshot, read by a Job's pod through the kubelet.
    tc.create(claim("shop", "restored", Some("snap-1")))
        .await
        .unwrap();
    let restored = wait_for(&c, &format!("{claims}/restored"), "Bound", bound)
        .await
        .unwrap();
    tc.create(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "read", "namespace": "shop"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox",
                "command": ["sh", "-c", "test \"$(cat /data/orders.db)\" = 'before the snapshot'"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "restored"}}],
        }}},
    }))
    .await
    .unwrap();
    let job = wait_for(
        &c,
        "/apis/batch/v1/namespaces/shop/jobs/read",
        "finished",
        |j| j["status"]["succeeded"] == 1 || j["status"]["failed"] == 1,
    )
    .await
    .unwrap();
    assert_eq!(job["status"]["succeeded"], 1, "{job}");
    let restored_dir = csi
        .data()
        .volume(restored["spec"]["volumeName"].as_str().unwrap());
    assert_eq!(
        std::fs::read(restored_dir.join("orders.db")).unwrap(),
        b"before the snapshot"
    );

    // Deleting the snapshot deletes its content and data (Delete policy);
    // deleting a claim deletes its volume and data.
    let snapshot_dir = csi
        .data()
        .snapshot(content["status"]["snapshotHandle"].as_str().unwrap());
    assert!(snapshot_dir.is_dir());
    c.delete(&format!("{snaps}/snap-1")).await.unwrap();
    wait_gone(&c, &content_path).await.unwrap();
    assert!(!snapshot_dir.exists());
    c.delete(&format!("{claims}/data")).await.unwrap();
    wait_gone(&c, &format!("/api/v1/persistentvolumes/{handle}"))
        .await
        .unwrap();
    assert!(!dir.exists());
    tc.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drivers_error_and_a_snapshot_never_ready_show_in_status() {
    let root = tempfile::tempdir().unwrap();
    let mut tc = TestCluster::in_process().await.unwrap();
    let csi = Csi::start(tc.server().unwrap(), CsiConfig::new(DRIVER, root.path()))
        .await
        .unwrap();
    for object in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "db"}}),
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
               "metadata": {"name": "csi-hostpath"}, "provisioner": DRIVER}),
        claim("db", "data", None),
    ] {
        tc.create(object).await.unwrap();
    }
    let c = tc.cluster().clone();
    wait_for(
        &c,
        "/api/v1/namespaces/db/persistentvolumeclaims/data",
        "Bound",
        bound,
    )
    .await
    .unwrap();
    let snaps = "/apis/snapshot.storage.k8s.io/v1/namespaces/db/volumesnapshots";
    let has_error = |v: &Value| v["status"]["error"]["message"].is_string();

    // No snapshot class for the driver: the controller's own words.
    tc.create(snapshot("db", "no-class", "data")).await.unwrap();
    let s = wait_for(&c, &format!("{snaps}/no-class"), "failed", has_error)
        .await
        .unwrap();
    assert!(
        s["status"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot find default snapshot class"),
        "{s}"
    );
    tc.create(
        json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": "snapclass"}, "driver": DRIVER, "deletionPolicy": "Retain"}),
    )
    .await
    .unwrap();

    // The driver's error.
    csi.fail_snapshots(Some(
        "rpc error: code = ResourceExhausted desc = no space for snapshots",
    ));
    let mut named = snapshot("db", "failing", "data");
    named["spec"]["volumeSnapshotClassName"] = json!("snapclass");
    tc.create(named).await.unwrap();
    let s = wait_for(&c, &format!("{snaps}/failing"), "failed", has_error)
        .await
        .unwrap();
    assert_eq!(
        s["status"]["readyToUse"], false,
        "an error is never ready: {s}"
    );
    assert!(
        s["status"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ResourceExhausted")
    );
    csi.fail_snapshots(None);

    // Never ready: bound to a content, readyToUse stays false.
    csi.never_ready(true);
    let mut slow = snapshot("db", "slow", "data");
    slow["spec"]["volumeSnapshotClassName"] = json!("snapclass");
    tc.create(slow).await.unwrap();
    let s = wait_for(&c, &format!("{snaps}/slow"), "bound", |v| {
        v["status"]["boundVolumeSnapshotContentName"].is_string()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s2 = c.get(&format!("{snaps}/slow")).await.unwrap().unwrap();
    assert_eq!(s2["status"]["readyToUse"], false, "{s} {s2}");
    csi.never_ready(false);
    wait_for(&c, &format!("{snaps}/slow"), "readyToUse", ready)
        .await
        .unwrap();

    // Retain: the content outlives its snapshot.
    let content = s["status"]["boundVolumeSnapshotContentName"]
        .as_str()
        .unwrap()
        .to_string();
    c.delete(&format!("{snaps}/slow")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kept = c
        .get(&format!(
            "/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/{content}"
        ))
        .await
        .unwrap();
    assert!(kept.is_some(), "a Retain content stays");
    tc.cleanup().await.unwrap();
}

/// A Block-mode claim is a raw device: its snapshot and a claim made from
/// it hold the same bytes, read by a Job through `volumeDevices`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_claim_is_snapshotted_and_read_as_a_device() {
    let root = tempfile::tempdir().unwrap();
    let mut tc = TestCluster::in_process().await.unwrap();
    let csi = Csi::start(
        tc.server().unwrap(),
        CsiConfig::new(DRIVER, root.path().join("csi")),
    )
    .await
    .unwrap();
    let config = KubeletConfig::new(root.path().join("nodes"))
        .command("sh", "/bin/sh")
        .csi_driver(DRIVER, csi.data());
    let kubelet = Kubelet::start(tc.server().unwrap(), config).await.unwrap();
    kubelet
        .register_node("node-a", json!({}), json!([]))
        .await
        .unwrap();
    let block = |name: &str, source: Option<&str>| {
        let mut c = claim("vm", name, source);
        c["spec"]["volumeMode"] = json!("Block");
        c["spec"]["resources"]["requests"]["storage"] = json!("8Mi");
        c
    };
    for object in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vm"}}),
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
               "metadata": {"name": "csi-hostpath"}, "provisioner": DRIVER}),
        json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
               "metadata": {"name": "snapclass",
                            "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"}},
               "driver": DRIVER, "deletionPolicy": "Delete"}),
        block("disk", None),
    ] {
        tc.create(object).await.unwrap();
    }
    let c = tc.cluster().clone();
    let claims = "/api/v1/namespaces/vm/persistentvolumeclaims";
    let disk = wait_for(&c, &format!("{claims}/disk"), "Bound", bound)
        .await
        .unwrap();
    let image = csi
        .data()
        .volume(disk["spec"]["volumeName"].as_str().unwrap());
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 8 << 20, "{disk}");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&image)
            .unwrap();
        f.write_all_at(b"hello", 4096).unwrap();
    }
    tc.create(snapshot("vm", "disk-1", "disk")).await.unwrap();
    wait_for(
        &c,
        "/apis/snapshot.storage.k8s.io/v1/namespaces/vm/volumesnapshots/disk-1",
        "readyToUse",
        ready,
    )
    .await
    .unwrap();
    tc.create(block("disk-copy", Some("disk-1"))).await.unwrap();
    wait_for(&c, &format!("{claims}/disk-copy"), "Bound", bound)
        .await
        .unwrap();
    tc.create(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "read", "namespace": "vm"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox",
                "command": ["sh", "-c",
                    "test \"$(dd if=/dev/xvda bs=4096 skip=1 count=1 2>/dev/null | head -c 5)\" = hello"],
                "volumeDevices": [{"name": "disk", "devicePath": "/dev/xvda"}]}],
            "volumes": [{"name": "disk", "persistentVolumeClaim": {"claimName": "disk-copy"}}],
        }}},
    }))
    .await
    .unwrap();
    let job = wait_for(
        &c,
        "/apis/batch/v1/namespaces/vm/jobs/read",
        "finished",
        |j| j["status"]["succeeded"] == 1 || j["status"]["failed"] == 1,
    )
    .await
    .unwrap();
    assert_eq!(job["status"]["succeeded"], 1, "{job}");
    tc.cleanup().await.unwrap();
}
