//! `hokan k8s volumes backup|restore` through the binary, against
//! hokan-k8s's in-process API server and a kubelet-shaped directory; and
//! the manifests of docs/k8s-volumes.md checked against the CLI.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use hokan_k8s::testserver::TestServer;
use serde_json::{Value, json};

struct Env {
    dir: tempfile::TempDir,
    repo: String,
    cache: PathBuf,
    kubeconfig: PathBuf,
    kubelet: PathBuf,
}

impl Env {
    fn new(server: &TestServer) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo").to_str().unwrap().to_string();
        let cache = dir.path().join("cache");
        init(&repo, &cache);
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig, "test").unwrap();
        let kubelet = dir.path().join("kubelet");
        Env {
            dir,
            repo,
            cache,
            kubeconfig,
            kubelet,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = hokan(&self.repo, &self.cache);
        c.args(args).env_remove("KUBECONFIG");
        run(c)
    }

    fn backup(&self, extra: &[&str]) -> (Output, Value) {
        let mut args = vec!["--json", "k8s", "volumes", "backup", "--node", "node-1"];
        args.extend_from_slice(&["--kubelet-dir", self.kubelet.to_str().unwrap()]);
        args.extend_from_slice(&["--kubeconfig", self.kubeconfig.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let summary = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["message_type"] == "summary")
            .unwrap_or_else(|| panic!("no summary: {text}\n{}", stderr(&out)));
        (out, summary)
    }
}

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
        json!({"backup.velero.io/backup-volumes": "data,cache,conf,host,token,info"}),
        json!([
            {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
            {"name": "cache", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "web"}},
            {"name": "host", "hostPath": {"path": "/etc"}},
            {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
            {"name": "info", "downwardAPI": {"items": []}},
        ]),
    )
}

fn seed(server: &TestServer) {
    server
        .seed([
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop",
                "annotations": {"openshift.io/sa.scc.uid-range": "1000650000/10000"}}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop-dr",
                "annotations": {"openshift.io/sa.scc.uid-range": "1000780000/10000"}}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plain"}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data-web-0", "namespace": "shop"},
                "spec": {"volumeName": "pvc-123"}}),
            web(),
            pod(
                "other",
                "node-2",
                json!({"backup.velero.io/backup-volumes": "data"}),
                json!([{"name": "data", "emptyDir": {}}]),
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

fn kubelet_pod(kubelet: &Path, uid: &str) -> PathBuf {
    let volumes = kubelet.join("pods").join(uid).join("volumes");
    let data = volumes.join("kubernetes.io~csi/pvc-123/mount");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("a.txt"), "alpha").unwrap();
    std::fs::write(data.join("sub/b.txt"), "beta".repeat(1000)).unwrap();
    let cache = volumes.join("kubernetes.io~empty-dir/cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("c.txt"), "cached").unwrap();
    data
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_nodes_volumes_are_backed_up_rescheduled_and_restored_with_shifted_owners() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start()).unwrap();
    seed(&server);
    let env = Env::new(&server);
    let first_uid = uid_of(&server, "web-0");
    let data = kubelet_pod(&env.kubelet, &first_uid);
    let chown = |p: &Path, id: u32| std::os::unix::fs::lchown(p, Some(id), Some(id)).unwrap();
    chown(&data.join("a.txt"), 1000650001);
    chown(&data.join("sub"), 1000650000);
    chown(&data.join("sub/b.txt"), 0);

    let (out, first) = env.backup(&["--tag", "hourly"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let volumes = first["volumes"].as_array().unwrap();
    let identities: Vec<&str> = volumes
        .iter()
        .map(|v| v["identity"].as_str().unwrap())
        .collect();
    assert_eq!(identities, ["shop/data-web-0", "shop/web-0/cache"]);
    assert_eq!(volumes[0]["pvc"], "data-web-0");
    assert_eq!(volumes[0]["files_new"], 2);
    let skipped: Vec<(&str, &str)> = first["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["volume"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    for (volume, word) in [
        ("conf", "ConfigMap"),
        ("host", "hostPath"),
        ("token", "service-account token"),
        ("info", "downwardAPI"),
    ] {
        assert!(
            skipped
                .iter()
                .any(|(v, r)| *v == volume && r.contains(word)),
            "{volume}: {skipped:?}"
        );
    }
    let snapshots = snapshots(&env.repo, &env.cache);
    assert_eq!(snapshots.len(), 2);
    let text = serde_json::to_string(&snapshots).unwrap();
    assert!(
        text.contains("\"node-1\"") && text.contains("hourly"),
        "{text}"
    );

    // Rescheduled: a new pod UID, the same claim, the same file system.
    rt.block_on(async {
        let cluster = server.cluster().unwrap();
        cluster.delete("/api/v1/namespaces/shop/pods/web-0").await
    })
    .unwrap();
    server.seed([web()]).unwrap();
    let second_uid = uid_of(&server, "web-0");
    let pods = env.kubelet.join("pods");
    std::fs::rename(pods.join(&first_uid), pods.join(&second_uid)).unwrap();
    let (out, second) = env.backup(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let again = &second["volumes"][0];
    assert_eq!(again["identity"], "shop/data-web-0");
    assert_eq!(again["parent"], volumes[0]["snapshot_id"]);
    assert_eq!(again["blobs_added"], 0, "{again}");
    assert_eq!(again["files_new"], 0);
    assert_eq!(again["files_changed"], 0);
    assert_eq!(again["data_added"], 0);
    assert_eq!(again["files_unmodified"], 2);

    // Restored into another namespace's UID range.
    let target = env.dir.path().join("restored");
    let id = again["snapshot_id"].as_str().unwrap();
    let out = env.run(&[
        "--json",
        "k8s",
        "volumes",
        "restore",
        id,
        "--target",
        target.to_str().unwrap(),
        "--uid-range",
        "1000650000/10000:1000780000/10000",
    ]);
    let text = ok(&out);
    let summary: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(summary["files_restored"], 2);
    let shift = &summary["uid_shift"];
    assert_eq!(shift["shifted"], 2, "{summary}");
    // The target directory itself (root-owned) and sub/b.txt.
    assert_eq!(shift["outside"], 2, "{summary}");
    let owner = |p: &str| {
        let md = target.join(p).symlink_metadata().unwrap();
        (md.uid(), md.gid())
    };
    assert_eq!(owner("a.txt"), (1000780001, 1000780001));
    assert_eq!(owner("sub"), (1000780000, 1000780000));
    assert_eq!(owner("sub/b.txt"), (0, 0));
    assert_eq!(
        std::fs::read_to_string(target.join("a.txt")).unwrap(),
        "alpha"
    );
}

#[test]
fn a_failing_volume_exits_3_and_the_others_are_saved() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start()).unwrap();
    seed(&server);
    let env = Env::new(&server);
    kubelet_pod(&env.kubelet, &uid_of(&server, "web-0"));
    // The emptyDir's directory replaced by a symlink to elsewhere: found,
    // but refused when read (a backup never follows a link out of the
    // kubelet's directory).
    let cache = env
        .kubelet
        .join("pods")
        .join(uid_of(&server, "web-0"))
        .join("volumes/kubernetes.io~empty-dir/cache");
    std::fs::remove_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(env.dir.path(), &cache).unwrap();
    // Both volumes at once: the failure of one does not stop the other.
    let (out, summary) = env.backup(&["--parallel", "2"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(summary["failed"], 1);
    assert!(summary["volumes"][0]["snapshot_id"].is_string());
    let failed = &summary["volumes"][1];
    assert_eq!(failed["identity"], "shop/web-0/cache");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("not a directory"),
        "{failed}"
    );
    assert_eq!(snapshots(&env.repo, &env.cache).len(), 1);
}

#[test]
fn a_claim_copied_from_csi_snapshots_is_left_to_them() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start()).unwrap();
    seed(&server);
    let env = Env::new(&server);
    kubelet_pod(&env.kubelet, &uid_of(&server, "web-0"));
    let (out, summary) = env.backup(&["--exclude-claim", "shop/data-web-0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let saved: Vec<&str> = summary["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["volume"].as_str().unwrap())
        .collect();
    assert_eq!(saved, ["cache"], "{summary:#}");
    let skipped = summary["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["volume"] == "data")
        .expect("the claim's volume is listed as skipped");
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap()
            .contains("CSI snapshots"),
        "{skipped}"
    );
}

#[test]
fn the_uid_ranges_can_come_from_the_namespaces_annotations() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start()).unwrap();
    seed(&server);
    let env = Env::new(&server);
    let data = kubelet_pod(&env.kubelet, &uid_of(&server, "web-0"));
    std::os::unix::fs::lchown(data.join("a.txt"), Some(1000650003), Some(1000650003)).unwrap();
    let (out, summary) = env.backup(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = summary["volumes"][0]["snapshot_id"].as_str().unwrap();
    let restore = |target: &Path, namespace: &str| {
        env.run(&[
            "--json",
            "k8s",
            "volumes",
            "restore",
            id,
            "--target",
            target.to_str().unwrap(),
            "--target-namespace",
            namespace,
            "--kubeconfig",
            env.kubeconfig.to_str().unwrap(),
        ])
    };
    // The source namespace is the snapshot's label (shop).
    let target = env.dir.path().join("dr");
    let text = ok(&restore(&target, "shop-dr"));
    let summary: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(summary["uid_shift"]["to"]["start"], 1000780000);
    let md = target.join("a.txt").symlink_metadata().unwrap();
    assert_eq!((md.uid(), md.gid()), (1000780003, 1000780003));
    // A namespace without a range is refused before anything is restored.
    let out = restore(&env.dir.path().join("plain"), "plain");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--uid-range"), "{}", stderr(&out));
    assert!(!env.dir.path().join("plain").exists());
}

/// The `hokan` argument lists of every container in the doc's manifests.
fn doc_command_lines() -> Vec<Vec<String>> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/k8s-volumes.md");
    let text = std::fs::read_to_string(&doc).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(blocks.len() >= 2, "the doc's YAML blocks are gone");
    let mut lines = Vec::new();
    for block in blocks {
        let docs: Vec<Value> = serde_saphyr::from_multiple(&block)
            .unwrap_or_else(|e| panic!("YAML block does not parse: {e}\n{block}"));
        for d in docs {
            let containers = d
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for c in containers {
                let command = c["command"].to_string();
                if !command.contains("hokan") {
                    continue;
                }
                let args = c["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    // $(NODE_NAME) and the like are the kubelet's to expand.
                    .map(|a| match a {
                        Value::String(s) if s.starts_with("$(") => "node-1".to_string(),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                lines.push(args);
            }
        }
    }
    lines
}

#[test]
fn the_docs_manifests_parse_and_their_command_lines_are_accepted() {
    let lines = doc_command_lines();
    assert_eq!(lines.len(), 4, "{lines:?}");
    // The Jobs that back up claims made from VolumeSnapshots: files, and a
    // block device read as data.
    assert!(
        lines
            .iter()
            .any(|l| l[0] == "backup" && !l.contains(&"--read-special".to_string()))
    );
    assert!(
        lines
            .iter()
            .any(|l| l[0] == "backup" && l.contains(&"--read-special".to_string()))
    );
    assert!(lines.iter().any(|l| l[..3] == ["k8s", "volumes", "backup"]));
    assert!(
        lines
            .iter()
            .any(|l| l[..3] == ["k8s", "volumes", "restore"])
    );
    for args in lines {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hokan"));
        c.args(&args).arg("--help");
        let out = run(c);
        assert!(
            out.status.success(),
            "hokan {} is refused: {}",
            args.join(" "),
            stderr(&out)
        );
    }
    // The check would catch a misspelt flag.
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hokan"));
    c.args(["k8s", "volumes", "backup", "--nodes", "x", "--help"]);
    assert!(!run(c).status.success());
}
