//! The real `hokan` binary run by Jobs on the test server's kubelet
//! stand-in: one Job initialises a repository on a hostPath and backs up
//! another hostPath into it, with the password from a Secret; a second Job
//! restores the snapshot, and the bytes are compared; a third runs
//! `hokan k8s backup`, reaching the API server as its pod's service account.
//!
//! It lives here, not in hokan-k8s's tests, because only this crate's tests
//! have the binary built for them (`CARGO_BIN_EXE_hokan`): hokan-k8s is a
//! dependency of hokan-cli, so its tests cannot depend on the binary.
//! It needs the stand-in (the test reads and writes the nodes' hostPath
//! directories), so it runs on the in-process server only.

use std::path::Path;

use hokan_k8s::testserver::kubelet::{job_pods, pod_log, wait_for};
use hokan_k8s::testserver::{Kubelet, KubeletConfig, TestCluster};
use serde_json::{Value, json};

const IMAGE: &str = "localhost/hokan:test";

fn job(name: &str, container: Value, volumes: Value) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "hokan-jobs"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "nodeSelector": {"kubernetes.io/hostname": "node-a"},
            "containers": [container],
            "volumes": volumes,
        }}},
    })
}

/// Files of every size class: empty, small, a few chunks, nested.
fn write_data(root: &Path) {
    std::fs::create_dir_all(root.join("app/logs")).unwrap();
    std::fs::write(root.join("app/empty"), b"").unwrap();
    std::fs::write(root.join("app/config.yaml"), b"replicas: 3\n").unwrap();
    let mut big = Vec::with_capacity(3 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while big.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(root.join("app/logs/big.bin"), &big).unwrap();
    std::fs::write(root.join("readme"), b"hello from node-a\n").unwrap();
}

fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

async fn run_to_completion(cluster: &TestCluster, name: &str) -> String {
    let ns = cluster.namespace("hokan-jobs");
    let path = format!("/apis/batch/v1/namespaces/{ns}/jobs/{name}");
    let done = wait_for(cluster.cluster(), &path, "finished", |j| {
        j["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
    })
    .await
    .unwrap();
    let pods = job_pods(cluster.cluster(), &ns, name).await.unwrap();
    let pod = pods[0]["metadata"]["name"].as_str().unwrap();
    let log = pod_log(cluster.cluster(), &ns, pod, None).await.unwrap();
    assert_eq!(
        done["status"]["succeeded"], 1,
        "job {name}: {done}\nlog:\n{log}"
    );
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_hokan_to_back_up_and_restore_a_host_path_and_the_api_as_their_service_account() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::in_process().await.unwrap();
    let config = KubeletConfig::new(root.path())
        .command("hokan", env!("CARGO_BIN_EXE_hokan"))
        .command("sh", "/bin/sh");
    let kubelet = Kubelet::start(cluster.server().unwrap(), config)
        .await
        .unwrap();
    for node in ["node-a", "node-b"] {
        kubelet
            .register_node(node, json!({"kubernetes.io/hostname": node}), json!([]))
            .await
            .unwrap();
    }
    let data = kubelet.config().host_path("node-a", "/srv/app-data");
    write_data(&data);
    cluster
        .create(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "repo-password", "namespace": "hokan-jobs"},
            "data": {"password": "dGVzdCBwYXNzd29yZA=="}}))
        .await
        .unwrap();

    // `hokan init` then `hokan backup` in one container, through the
    // image's shell; the password reaches it as an environment variable
    // from the Secret, the repository as a path under its mount.
    let repo_volume = json!({"name": "repo", "hostPath": {"path": "/srv/hokan-repo", "type": "DirectoryOrCreate"}});
    let backup = job(
        "backup",
        json!({
            "name": "hokan", "image": IMAGE,
            "command": ["sh", "-c"],
            "args": ["hokan init --kdf-memory 1M --kdf-iterations 1 && hokan backup /data"],
            "env": [
                {"name": "HOKAN_REPOSITORY", "value": "/repo"},
                {"name": "HOKAN_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "repo-password", "key": "password"}}},
            ],
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true},
                             {"name": "repo", "mountPath": "/repo"}],
        }),
        json!([{"name": "data", "hostPath": {"path": "/srv/app-data", "type": "Directory"}}, repo_volume]),
    );
    cluster.create(backup).await.unwrap();
    let log = run_to_completion(&cluster, "backup").await;
    assert!(
        kubelet
            .config()
            .host_path("node-a", "/srv/hokan-repo/config")
            .exists(),
        "the repository is on node-a's hostPath; backup log:\n{log}"
    );

    // The restore runs `hokan` directly (by the image's path), reading the
    // password from the Secret mounted as a file.
    let restore = job(
        "restore",
        json!({
            "name": "hokan", "image": IMAGE,
            "command": ["/usr/local/bin/hokan"],
            "args": ["restore", "latest:/data", "--target", "/restore", "--verify"],
            "env": [
                {"name": "HOKAN_REPOSITORY", "value": "/repo"},
                {"name": "HOKAN_PASSWORD_FILE", "value": "/secrets/password"},
            ],
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true},
                             {"name": "repo", "mountPath": "/repo"},
                             {"name": "target", "mountPath": "/restore"},
                             {"name": "password", "mountPath": "/secrets", "readOnly": true}],
        }),
        json!([
            {"name": "data", "hostPath": {"path": "/srv/app-data", "type": "Directory"}},
            repo_volume,
            {"name": "target", "hostPath": {"path": "/srv/restored"}},
            {"name": "password", "secret": {"secretName": "repo-password", "defaultMode": 0o400}},
        ]),
    );
    cluster.create(restore).await.unwrap();
    let log = run_to_completion(&cluster, "restore").await;
    let restored = kubelet.config().host_path("node-a", "/srv/restored");
    let (want, got) = (files(&data), files(&restored));
    assert_eq!(want.len(), 4);
    assert_eq!(
        want.iter().map(|f| &f.0).collect::<Vec<_>>(),
        got.iter().map(|f| &f.0).collect::<Vec<_>>(),
        "restore log:\n{log}"
    );
    assert!(want == got, "restored bytes differ");

    // `hokan k8s backup` in a pod reaches the API server as the pod's
    // service account, and the server records each request as its.
    let k8s = job(
        "resources",
        json!({
            "name": "hokan", "image": IMAGE,
            "command": ["hokan"],
            "args": ["k8s", "backup", "--include-namespaces", "$(POD_NAMESPACE)"],
            "env": [
                {"name": "HOKAN_REPOSITORY", "value": "/repo"},
                {"name": "HOKAN_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "repo-password", "key": "password"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            ],
            "volumeMounts": [{"name": "repo", "mountPath": "/repo"}],
        }),
        json!([repo_volume]),
    );
    let mut k8s = k8s;
    k8s["spec"]["template"]["spec"]["serviceAccountName"] = json!("hokan-backup");
    cluster.create(k8s).await.unwrap();
    let log = run_to_completion(&cluster, "resources").await;
    let ns = cluster.namespace("hokan-jobs");
    let user = format!("system:serviceaccount:{ns}:hokan-backup");
    let requests = cluster.server().unwrap().requests();
    let secrets = format!("/api/v1/namespaces/{ns}/secrets");
    assert!(
        requests
            .iter()
            .any(|r| r.user == user && r.method == "GET" && r.path == secrets),
        "the pod listed the namespace's secrets as its service account; log:\n{log}"
    );
    cluster.cleanup().await.unwrap();
}
