//! Pod volumes against the in-process API server and a kubelet-shaped
//! directory: which volumes of which pods are picked, each backed up as a
//! snapshot of its own, the chain of parents surviving a reschedule, and
//! owners moved between UID ranges.

mod common;

use std::path::Path;

use hokan_core::fs::NoProgress;
use hokan_k8s::testserver::TestServer;
use hokan_k8s::volumes::{self, uid};
use hokan_repo::SourceKind;
use serde_json::{Value, json};

fn pod(name: &str, node: &str, annotations: Value, volumes: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}], "volumes": volumes},
        "status": {"phase": "Running"},
    })
}

fn web() -> Value {
    pod(
        "web-0",
        "node-1",
        json!({volumes::BACKUP_VOLUMES: "data,cache,conf,host,token"}),
        json!([
            {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
            {"name": "cache", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "web"}},
            {"name": "host", "hostPath": {"path": "/etc"}},
            {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
        ]),
    )
}

fn seed(server: &TestServer) {
    server
        .seed([
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data-web-0", "namespace": "shop"},
                "spec": {"volumeName": "pvc-123", "accessModes": ["ReadWriteOnce"]}}),
            web(),
            pod(
                "idle",
                "node-1",
                json!({}),
                json!([{"name": "scratch", "emptyDir": {}}]),
            ),
            pod(
                "elsewhere",
                "node-2",
                json!({volumes::BACKUP_VOLUMES: "data"}),
                json!([{"name": "data", "persistentVolumeClaim": {"claimName": "other"}}]),
            ),
        ])
        .unwrap();
}

fn uid_of(server: &TestServer, name: &str) -> String {
    server.object("", "pods", Some("shop"), name).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Lays out a pod's volume directories as the kubelet does.
fn kubelet_pod(kubelet: &Path, uid: &str) {
    let volumes = kubelet.join("pods").join(uid).join("volumes");
    let data = volumes.join("kubernetes.io~csi/pvc-123/mount");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("a.txt"), "alpha").unwrap();
    std::fs::write(data.join("sub/b.txt"), "beta".repeat(1000)).unwrap();
    let cache = volumes.join("kubernetes.io~empty-dir/cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("c.txt"), "cached").unwrap();
    let conf = volumes.join("kubernetes.io~configmap/conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("key"), "value").unwrap();
}

fn labels(e: &hokan_repo::SnapshotEntry) -> Vec<(String, String)> {
    e.snapshot.labels.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nodes_picked_volumes_become_snapshots_and_survive_a_reschedule() {
    let server = TestServer::start().await.unwrap();
    seed(&server);
    let cluster = server.cluster().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubelet = dir.path().join("kubelet");
    let first_uid = uid_of(&server, "web-0");
    kubelet_pod(&kubelet, &first_uid);

    let found = volumes::node_volumes(&cluster, "node-1", &kubelet, false)
        .await
        .unwrap();
    assert_eq!(found.pods, 2, "node-2's pod is not listed");
    let picked: Vec<String> = found.found.iter().map(|f| f.volume.identity()).collect();
    assert_eq!(picked, ["shop/data-web-0", "shop/web-0/cache"]);
    assert!(
        found.found[0]
            .path
            .ends_with("kubernetes.io~csi/pvc-123/mount")
    );
    let reason = |v: &str| {
        found
            .skipped
            .iter()
            .find(|s| s.volume == v)
            .unwrap_or_else(|| panic!("{v} not reported: {:?}", found.skipped))
            .reason
            .clone()
    };
    assert!(reason("conf").contains("ConfigMap"));
    assert!(reason("host").contains("hostPath"));
    assert!(reason("token").contains("service-account token"));
    assert!(reason("scratch").contains("not listed"));
    assert_eq!(found.skipped.len(), 4);

    let mut repo = common::repository(dir.path());
    let mut first = Vec::new();
    for f in &found.found {
        let done = volumes::backup_volume(&mut repo, f, "node-1", &["nightly".into()], &NoProgress)
            .unwrap();
        assert!(done.warnings.is_empty(), "{:?}", done.warnings);
        first.push(done.entry);
    }
    let data = &first[0];
    assert_eq!(data.snapshot.source, SourceKind::VOLUME);
    assert_eq!(data.snapshot.identity, "shop/data-web-0");
    assert_eq!(data.snapshot.paths, ["/shop/data-web-0"]);
    assert_eq!(data.snapshot.hostname, "node-1");
    assert_eq!(
        labels(data),
        [
            ("namespace".into(), "shop".into()),
            ("node".into(), "node-1".into()),
            ("pod".into(), "web-0".into()),
            ("pvc".into(), "data-web-0".into()),
            ("volume".into(), "data".into()),
        ]
    );
    assert!(!labels(&first[1]).iter().any(|(k, _)| k == "pvc"));
    assert_eq!(first[1].snapshot.identity, "shop/web-0/cache");

    // The pod is rescheduled: a new UID, the same claim, the same file
    // system mounted under the new pod's directory.
    let path = "/api/v1/namespaces/shop/pods/web-0";
    cluster.delete(path).await.unwrap();
    server.seed([web()]).unwrap();
    let second_uid = uid_of(&server, "web-0");
    assert_ne!(first_uid, second_uid);
    std::fs::rename(
        kubelet.join("pods").join(&first_uid),
        kubelet.join("pods").join(&second_uid),
    )
    .unwrap();
    let again = volumes::node_volumes(&cluster, "node-1", &kubelet, false)
        .await
        .unwrap();
    assert!(
        again.found[0]
            .path
            .starts_with(kubelet.join("pods").join(&second_uid))
    );
    let second = volumes::backup_volume(&mut repo, &again.found[0], "node-1", &[], &NoProgress)
        .unwrap()
        .entry;
    assert_eq!(second.snapshot.parent, Some(data.id));
    assert_eq!(second.snapshot.summary.blobs_added, 0);
    assert_eq!(second.snapshot.summary.count("files_unmodified"), 2);
    assert_eq!(second.snapshot.tree, data.snapshot.tree);
}

#[tokio::test(flavor = "multi_thread")]
async fn default_volumes_to_fs_backup_takes_all_but_the_excluded() {
    let server = TestServer::start().await.unwrap();
    seed(&server);
    let cluster = server.cluster().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubelet = dir.path().join("kubelet");
    kubelet_pod(&kubelet, &uid_of(&server, "web-0"));
    let found = volumes::node_volumes(&cluster, "node-1", &kubelet, true)
        .await
        .unwrap();
    let picked: Vec<String> = found.found.iter().map(|f| f.volume.identity()).collect();
    assert_eq!(picked, ["shop/data-web-0", "shop/web-0/cache"]);
    // idle's scratch is picked but has no directory on this node.
    let scratch = found
        .skipped
        .iter()
        .find(|s| s.volume == "scratch")
        .unwrap();
    assert!(
        scratch.reason.contains("no directory"),
        "{}",
        scratch.reason
    );
}

#[tokio::test]
async fn the_test_server_filters_pods_by_node_and_refuses_unknown_fields() {
    let server = TestServer::start().await.unwrap();
    seed(&server);
    let cluster = server.cluster().unwrap();
    let pods = volumes::node_pods(&cluster, "node-2").await.unwrap();
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["metadata"]["name"], "elsewhere");
    let err = cluster
        .list_page_by_fields("/api/v1/pods", None, Some("spec.bogus=x"), None, 10)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
}

#[test]
fn owners_in_the_source_range_move_to_the_target_range() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vol");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("in.txt"), "x").unwrap();
    std::fs::write(root.join("sub/in2.txt"), "x").unwrap();
    std::fs::write(root.join("out.txt"), "x").unwrap();
    std::os::unix::fs::symlink("in.txt", root.join("link")).unwrap();
    let (from, to) = uid::parse_mapping("1000650000/10000:1000780000/10000").unwrap();
    let chown = |p: &Path, id: u32| std::os::unix::fs::lchown(p, Some(id), Some(id)).unwrap();
    chown(&root, 1000650000);
    chown(&root.join("sub"), 1000650000);
    chown(&root.join("in.txt"), 1000650001);
    chown(&root.join("sub/in2.txt"), 1000659999);
    chown(&root.join("out.txt"), 0);
    chown(&root.join("link"), 1000650007);
    let summary = uid::shift_owners(&root, from, to).unwrap();
    assert_eq!(summary.entries, 6);
    assert_eq!(summary.shifted, 5);
    assert_eq!(summary.outside, 1);
    use std::os::unix::fs::MetadataExt;
    let owner = |p: &str| {
        let md = root.join(p).symlink_metadata().unwrap();
        (md.uid(), md.gid())
    };
    assert_eq!(owner(""), (1000780000, 1000780000));
    assert_eq!(owner("in.txt"), (1000780001, 1000780001));
    assert_eq!(owner("sub/in2.txt"), (1000789999, 1000789999));
    assert_eq!(owner("out.txt"), (0, 0));
    assert_eq!(owner("link"), (1000780007, 1000780007));
}

/// A volume restored into another namespace: its files back, their owners
/// moved from the snapshot's namespace's UID range into the target's, both
/// read from the namespaces' annotations.
#[tokio::test(flavor = "multi_thread")]
async fn a_volume_restores_into_another_namespace_with_its_uid_range() {
    use std::os::unix::fs::MetadataExt;
    let server = TestServer::start().await.unwrap();
    seed(&server);
    let range = |name: &str, r: &str| {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name,
            "annotations": {uid::UID_RANGE_ANNOTATION: r}}})
    };
    server
        .seed([
            range("shop", "1000650000/10000"),
            range("shop-dr", "1000780000/10000"),
            range("tiny", "2000000000/10"),
        ])
        .unwrap();
    let cluster = server.cluster().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubelet = dir.path().join("kubelet");
    kubelet_pod(&kubelet, &uid_of(&server, "web-0"));
    let found = volumes::node_volumes(&cluster, "node-1", &kubelet, false)
        .await
        .unwrap();
    let data = &found.found[0];
    let chown = |p: &Path, id: u32| std::os::unix::fs::lchown(p, Some(id), Some(id)).unwrap();
    chown(&data.path, 1000650000);
    chown(&data.path.join("a.txt"), 1000650042);
    let mut repo = common::repository(dir.path());
    let saved = volumes::backup_volume(&mut repo, data, "node-1", &[], &NoProgress)
        .unwrap()
        .entry;

    let from = volumes::snapshot_namespace(&saved.snapshot).unwrap();
    assert_eq!(from, "shop");
    let shift = volumes::UidShift::between_namespaces(&cluster, from, "shop-dr")
        .await
        .unwrap();
    assert_eq!(shift.to_string(), "1000650000/10000:1000780000/10000");
    // A target range smaller than the source's would leave owners outside.
    let small = volumes::UidShift::between_namespaces(&cluster, from, "tiny").await;
    assert!(small.unwrap_err().to_string().contains("smaller"));

    let target = dir.path().join("restored");
    let done = volumes::restore_volume(&repo, &saved, &target, Some(shift), &NoProgress).unwrap();
    assert_eq!(done.restored.summary.files, 2);
    assert_eq!(done.restored.summary.failed, 0);
    // a.txt; sub and b.txt belong to root, outside the range.
    assert_eq!(
        done.shifted.as_ref().unwrap().shifted,
        1,
        "{:?}",
        done.shifted
    );
    assert_eq!(
        std::fs::read_to_string(target.join("a.txt")).unwrap(),
        "alpha"
    );
    let md = target.join("a.txt").symlink_metadata().unwrap();
    assert_eq!((md.uid(), md.gid()), (1000780042, 1000780042));

    // Only volume snapshots restore as volumes.
    let other = repo.snapshots().unwrap();
    let fs_like = hokan_repo::SnapshotEntry {
        snapshot: hokan_repo::Snapshot {
            source: SourceKind::K8S,
            ..saved.snapshot.clone()
        },
        ..other[0].clone()
    };
    let err = volumes::restore_volume(&repo, &fs_like, &dir.path().join("no"), None, &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("not a volume one"), "{err}");
}

/// Many volumes on one node, backed up four at a time: each snapshot holds
/// its own volume's files, the parents chain per claim, and a claim that
/// two pods mount is backed up once.
#[tokio::test(flavor = "multi_thread")]
async fn several_volumes_at_once_and_a_shared_claim_once() {
    let server = TestServer::start().await.unwrap();
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "shared", "namespace": "shop"},
            "spec": {"volumeName": "pvc-shared", "accessModes": ["ReadWriteMany"]}}),
    ];
    for i in 0..7 {
        objects.push(pod(
            &format!("p{i}"),
            "node-1",
            json!({volumes::BACKUP_VOLUMES: "v,s"}),
            json!([{"name": "v", "emptyDir": {}},
                   {"name": "s", "persistentVolumeClaim": {"claimName": "shared"}}]),
        ));
    }
    server.seed(objects).unwrap();
    let cluster = server.cluster().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubelet = dir.path().join("kubelet");
    for i in 0..7 {
        let volumes = kubelet
            .join("pods")
            .join(uid_of(&server, &format!("p{i}")))
            .join("volumes");
        let v = volumes.join("kubernetes.io~empty-dir/v");
        std::fs::create_dir_all(v.join("d")).unwrap();
        // Different sizes, so the jobs finish out of order.
        let big =
            hokan_core::sample::generate(hokan_core::sample::Kind::Random, (7 - i) << 19, i as u64);
        std::fs::write(v.join("d/big.bin"), big).unwrap();
        std::fs::write(v.join("name"), format!("pod {i}")).unwrap();
        let s = volumes.join("kubernetes.io~csi/pvc-shared/mount");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(s.join("shared.txt"), "one file system, mounted by all").unwrap();
    }
    // The backup lists directories without moving their access times
    // (O_NOATIME), so the second run below finds every tree unchanged.
    let found = volumes::node_volumes(&cluster, "node-1", &kubelet, false)
        .await
        .unwrap();
    assert_eq!(found.found.len(), 8, "seven emptyDirs and the claim once");
    let shared: Vec<_> = found
        .skipped
        .iter()
        .filter(|s| s.reason.contains("also mounted by pod"))
        .collect();
    assert_eq!(shared.len(), 6, "{:?}", found.skipped);

    let mut repo = common::repository(dir.path());
    let first =
        volumes::backup_volumes(&mut repo, &found.found, "node-1", &[], &NoProgress, 4).unwrap();
    let first: Vec<_> = first.into_iter().map(|r| r.unwrap().entry).collect();
    // Again, two at a time (before anything reads the files and moves
    // their access times): every volume's parent is its own last
    // snapshot, and nothing new is stored.
    let second =
        volumes::backup_volumes(&mut repo, &found.found, "node-1", &[], &NoProgress, 2).unwrap();
    for (done, before) in second.into_iter().zip(&first) {
        let e = done.unwrap().entry;
        assert_eq!(e.snapshot.parent, Some(before.id));
        assert_eq!(e.snapshot.tree, before.snapshot.tree);
        assert_eq!(e.snapshot.summary.bytes_added, 0);
    }

    for (f, e) in found.found.iter().zip(&first) {
        assert_eq!(e.snapshot.identity, f.volume.identity());
        assert_eq!(e.snapshot.parent, None);
        let target = dir.path().join("restored").join(e.id.to_hex());
        repo.restore(&e.snapshot, "/", &target, Default::default(), &NoProgress)
            .unwrap();
        let diff = std::process::Command::new("diff")
            .arg("-r")
            .arg(&f.path)
            .arg(&target)
            .output()
            .unwrap();
        assert!(
            diff.status.success(),
            "{}: {}",
            f.volume.identity(),
            String::from_utf8_lossy(&diff.stdout)
        );
    }
    let report =
        hokan_repo::maintenance::check(&repo, hokan_repo::maintenance::ReadData::All, &()).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}
