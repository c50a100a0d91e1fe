//! Backup hooks through `pods/NAME/exec` (`hokan_k8s::hooks`): the output
//! and exit status of a command run in a running container, its mount
//! paths reaching the pod's volumes, a failing command's exit code and
//! error output, a timeout, and the server's refusals. Runs unchanged on a
//! real cluster (HOKAN_TEST_KUBECONFIG), where the real kubelet executes.

use std::time::{Duration, Instant};

use hokan_k8s::hooks::{self, Hook, OnError, Phase};
use hokan_k8s::testserver::kubelet::wait_for;
use hokan_k8s::testserver::{Kubelet, KubeletConfig, TestCluster};
use serde_json::json;

const SHELL_IMAGE: &str = "docker.io/library/busybox:1.36";

fn hook(ns: &str, container: &str, script: &str, timeout: Duration) -> Hook {
    Hook {
        namespace: ns.to_string(),
        pod: "db".to_string(),
        container: container.to_string(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        on_error: OnError::Fail,
        timeout,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_in_the_named_container_and_report_failures_and_timeouts() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::new().await.unwrap();
    let _kubelet = match cluster.server() {
        Some(server) => {
            let config = KubeletConfig::new(root.path()).command("sh", "/bin/sh");
            let k = Kubelet::start(server, config).await.unwrap();
            k.register_node("node-a", json!({}), json!([]))
                .await
                .unwrap();
            Some(k)
        }
        None => None,
    };
    let sleeper = |name: &str, script: &str| {
        json!({"name": name, "image": SHELL_IMAGE, "command": ["sh", "-c", script],
               "volumeMounts": [{"name": "data", "mountPath": "/data"}]})
    };
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "db", "namespace": "hooks",
            "annotations": {"pre.hook.backup.velero.io/command":
                            "[\"sh\", \"-c\", \"echo flushed > /data/flushed\"]",
                            "pre.hook.backup.velero.io/container": "postgres"}},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
            "containers": [sleeper("postgres", "echo up > /data/up; exec sleep 3600"),
                           sleeper("sidecar", "exec sleep 3600")],
            "volumes": [{"name": "data", "emptyDir": {}}]}});
    cluster.create(pod).await.unwrap();
    let ns = cluster.namespace("hooks");
    let path = format!("/api/v1/namespaces/{ns}/pods/db");
    let running = wait_for(cluster.cluster(), &path, "Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await
    .unwrap();
    let client = cluster.cluster().client().clone();

    // The pod's own annotation, read and run: it writes into the volume.
    let pre = hooks::backup_hook(&running, Phase::Pre).unwrap().unwrap();
    assert_eq!(pre.container, "postgres");
    hooks::run(&client, &pre).await.unwrap();
    let wait = Duration::from_secs(30);
    let out = hooks::run(
        &client,
        &hook(&ns, "sidecar", "cat /data/flushed; echo note >&2", wait),
    )
    .await
    .unwrap();
    assert_eq!(
        out.stdout, "flushed\n",
        "the same volume from another container"
    );
    assert_eq!(out.stderr, "note\n");

    // A failure: its exit code and the last line of its error output.
    let e = hooks::run(
        &client,
        &hook(&ns, "postgres", "echo 'database is busy' >&2; exit 3", wait),
    )
    .await
    .unwrap_err();
    assert!(e.contains("exit code 3"), "{e}");
    assert!(e.contains("database is busy"), "{e}");

    // A timeout: given up on after one second.
    let started = Instant::now();
    let e = hooks::run(
        &client,
        &hook(&ns, "postgres", "sleep 20", Duration::from_secs(1)),
    )
    .await
    .unwrap_err();
    assert!(e.contains("timed out after 1 s"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // Refusals: a container the pod has not, a pod that does not exist.
    let e = hooks::run(&client, &hook(&ns, "nope", "true", wait))
        .await
        .unwrap_err();
    assert!(e.contains("could not start") && e.contains("nope"), "{e}");
    let mut gone = hook(&ns, "postgres", "true", wait);
    gone.pod = "missing".into();
    let e = hooks::run(&client, &gone).await.unwrap_err();
    assert!(
        e.contains("could not start") && e.contains("not found"),
        "{e}"
    );
    cluster.cleanup().await.unwrap();
}
