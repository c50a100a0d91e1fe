//! An etcd Restore end to end: a real etcd backed up by the real `hokan`
//! into a repository, a `Restore` reconciled by the operator's reconcile,
//! its Job run by the test server's kubelet stand-in (the real `hokan etcd
//! restore` on the chosen node), and the file it wrote on the node's host
//! path restored by `etcdctl snapshot restore` into an etcd that serves the
//! key written before the backup.
//!
//! It lives here because only this crate's tests have the `hokan` binary
//! built for them, and runs on the in-process server only (it reads the
//! node's host path). Skipped without etcd installed.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hokan_etcd::testing::EtcdProcess;
use hokan_k8s::testserver::{Kubelet, KubeletConfig, TestCluster};
use hokan_operator::api::{Phase, Restore};
use hokan_operator::clock::SystemClock;
use hokan_operator::http::Endpoints;
use hokan_operator::reconcile::{Context, restore};
use serde_json::json;

fn hokan(repo: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hokan"))
        .args(args)
        .env("HOKAN_REPOSITORY", repo)
        .env("HOKAN_PASSWORD", "test password")
        .env("XDG_CACHE_HOME", format!("{repo}-cache"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "hokan {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_restore_writes_a_snapshot_etcdctl_restores_on_its_node() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    etcd.etcdctl_ok(&["put", "/registry/configmaps/shop/web", "before-the-backup"]);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").to_str().unwrap().to_string();
    hokan(
        &repo,
        &["init", "--kdf-memory", "1M", "--kdf-iterations", "1"],
    );
    hokan(&repo, &["etcd", "backup", "--endpoints", &etcd.url]);

    let root = tempfile::tempdir().unwrap();
    let mut tc = TestCluster::in_process().await.unwrap();
    let config = KubeletConfig::new(root.path()).command("hokan", env!("CARGO_BIN_EXE_hokan"));
    let kubelet = Kubelet::start(tc.server().unwrap(), config).await.unwrap();
    let taint = json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
    for node in ["master-0", "master-1"] {
        let labels = json!({"node-role.kubernetes.io/control-plane": ""});
        kubelet
            .register_node(node, labels, taint.clone())
            .await
            .unwrap();
        // The Job mounts the path repository from the node: each node sees
        // the same directory, as through a shared file system.
        let on_node = kubelet.config().host_path(node, &repo);
        std::fs::create_dir_all(on_node.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&repo, &on_node).unwrap();
    }
    for (_, crd) in hokan_operator::api::crds() {
        tc.create(serde_json::to_value(&crd).unwrap())
            .await
            .unwrap();
    }
    for object in [
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "repo-password", "namespace": "hokan-system"},
            "data": {"password": "dGVzdCBwYXNzd29yZA=="}}),
        json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Repository",
            "metadata": {"name": "main", "namespace": "hokan-system"},
            "spec": {"location": repo,
                     "passwordSecretRef": {"name": "repo-password", "key": "password"}}}),
        json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Restore",
            "metadata": {"name": "etcd-to-master-1", "namespace": "hokan-system"},
            "spec": {"repository": "main", "snapshotId": "latest",
                     "etcd": {"nodeName": "master-1", "staticPods": false}}}),
    ] {
        tc.create(object).await.unwrap();
    }
    let ctx = context(&tc, 0);
    let path = "/apis/hokan.dev/v1alpha1/namespaces/hokan-system/restores/etcd-to-master-1";
    let st = restore_until_done(&tc, &ctx, path).await;
    assert_eq!(st.phase, Phase::Completed, "{st:?}");
    let file = "/var/lib/etcd-backup/snapshot_etcd-to-master-1.db";
    assert_eq!(st.written_to.as_deref(), Some(&*format!("master-1:{file}")));
    assert_eq!(
        st.job.as_ref().unwrap().name,
        "etcd-to-master-1-etcd-restore"
    );
    assert_eq!(st.source.as_ref().unwrap().kind, "etcd");

    // The file is on master-1 only, and etcd starts from it.
    let written = kubelet.config().host_path("master-1", file);
    assert!(written.is_file(), "{} missing", written.display());
    assert!(!kubelet.config().host_path("master-0", file).exists());
    let restored = EtcdProcess::start_restored(&written).expect("etcd starts from the file");
    let got = restored.etcdctl_ok(&["get", "/registry/configmaps/shop/web", "--print-value-only"]);
    assert_eq!(got.trim(), "before-the-backup");
    tc.cleanup().await.unwrap();
}

/// What the reconciles share, against `tc`, on the system clock, with no
/// cache and `job_retries` more pods after a failed one.
fn context(tc: &TestCluster, job_retries: i32) -> Arc<Context> {
    Arc::new(Context {
        client: tc.cluster().client().clone(),
        clock: Arc::new(SystemClock),
        endpoints: Endpoints::default(),
        open_options: hokan_repo::OpenOptions {
            cache: hokan_repo::CacheMode::Off,
            ..Default::default()
        },
        image: "localhost/hokan:test".into(),
        job_retries,
        failures: Default::default(),
    })
}

/// Reconciles `path`'s Restore as the controller would on each change of
/// its Job, until it ends (bounded: the bound is a failure, not a timing
/// assertion); its status, or a panic naming what stands.
async fn restore_until_done(
    tc: &TestCluster,
    ctx: &Arc<Context>,
    path: &str,
) -> hokan_operator::api::RestoreStatus {
    let mut last = None;
    for _ in 0..600 {
        let current = tc.cluster().get(path).await.unwrap().unwrap();
        let r: Restore = serde_json::from_value(current).unwrap();
        restore::reconcile(Arc::new(r), ctx.clone()).await.unwrap();
        let r: Restore =
            serde_json::from_value(tc.cluster().get(path).await.unwrap().unwrap()).unwrap();
        let st = r.status.unwrap_or_default();
        if st.phase.is_finished() {
            return st;
        }
        last = Some(st);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let jobs = tc
        .cluster()
        .get("/apis/batch/v1/namespaces/hokan-system/jobs")
        .await;
    let pods = tc
        .cluster()
        .get("/api/v1/namespaces/hokan-system/pods")
        .await;
    panic!(
        "the Restore did not end within 60 s; its status: {last:?}; jobs: {jobs:?}; pods: {pods:?}"
    );
}

/// The rules deploy/ gives `account` in hokan-system, plus what every
/// authenticated user may read (discovery); `None` without kubectl.
fn deploy_rules(account: &str) -> Option<Vec<hokan_operator::rbac::Rule>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let docs = hokan_operator::rbac::kustomize(&dir)?.unwrap();
    let mut rules = hokan_operator::rbac::rules_for(&docs, "hokan-system", account);
    rules.push(hokan_operator::rbac::discovery_rule());
    Some(rules)
}

/// A Restore of resources into this cluster (no target kubeconfig): the
/// operator's own account only reads, so it runs as a Job under
/// `hokan-restore` — the real `hokan k8s restore` talking to the server
/// with that account's token. The namespace comes back under its mapped
/// name, objects equal to the stored ones; an object the server refuses
/// makes the restore PartiallyFailed with the object named; every request
/// the Job made is allowed by deploy/'s rules for `hokan-restore`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_restore_into_this_cluster_runs_as_the_restore_account() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").to_str().unwrap().to_string();
    hokan(
        &repo,
        &["init", "--kdf-memory", "1M", "--kdf-iterations", "1"],
    );
    let root = tempfile::tempdir().unwrap();
    let mut tc = TestCluster::in_process().await.unwrap();
    let config = KubeletConfig::new(root.path()).command("hokan", env!("CARGO_BIN_EXE_hokan"));
    let kubelet = Kubelet::start(tc.server().unwrap(), config).await.unwrap();
    kubelet
        .register_node("worker-0", json!({}), json!([]))
        .await
        .unwrap();
    let on_node = kubelet.config().host_path("worker-0", &repo);
    std::fs::create_dir_all(on_node.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&repo, &on_node).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    tc.server()
        .unwrap()
        .write_kubeconfig(&kubeconfig, "admin")
        .unwrap();

    for object in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            "data": {"greeting": "hello", "size": "3"}}),
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "shop"},
            "type": "Opaque", "data": {"password": "czNjcmV0"}}),
    ] {
        tc.create(object).await.unwrap();
    }
    hokan(
        &repo,
        &[
            "k8s",
            "backup",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--include-namespaces",
            "shop",
        ],
    );
    for (_, crd) in hokan_operator::api::crds() {
        tc.create(serde_json::to_value(&crd).unwrap())
            .await
            .unwrap();
    }
    for object in [
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "repo-password", "namespace": "hokan-system"},
            "data": {"password": "dGVzdCBwYXNzd29yZA=="}}),
        json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Repository",
            "metadata": {"name": "main", "namespace": "hokan-system"},
            "spec": {"location": repo,
                     "passwordSecretRef": {"name": "repo-password", "key": "password"}}}),
        json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Restore",
            "metadata": {"name": "shop-copy", "namespace": "hokan-system"},
            "spec": {"repository": "main", "snapshotId": "latest",
                     "resources": {"includedNamespaces": ["shop"],
                                   "namespaceMapping": {"shop": "shop-copy"}}}}),
    ] {
        tc.create(object).await.unwrap();
    }
    tc.server().unwrap().clear_requests();
    let ctx = context(&tc, 1);
    let path = "/apis/hokan.dev/v1alpha1/namespaces/hokan-system/restores/shop-copy";
    let st = restore_until_done(&tc, &ctx, path).await;
    assert_eq!(st.phase, Phase::Completed, "{st:?}");
    assert_eq!(st.job.as_ref().unwrap().name, "shop-copy-resources-restore");
    assert!(st.figures.as_ref().unwrap().objects >= 3, "{st:?}");
    let cm = tc
        .cluster()
        .get("/api/v1/namespaces/shop-copy/configmaps/web")
        .await
        .unwrap()
        .expect("the ConfigMap is restored under the mapped namespace");
    assert_eq!(cm["data"], json!({"greeting": "hello", "size": "3"}));
    let secret = tc
        .cluster()
        .get("/api/v1/namespaces/shop-copy/secrets/db")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secret["data"]["password"], "czNjcmV0");

    // Every write came from the Job, as hokan-restore, and deploy/ allows
    // each request it made.
    let account = "system:serviceaccount:hokan-system:hokan-restore";
    let requests = tc.server().unwrap().requests();
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.starts_with("/api/v1/namespaces/shop-copy"))
        .collect();
    assert!(!writes.is_empty());
    assert!(writes.iter().all(|r| r.user == account), "{writes:?}");
    if let Some(rules) = deploy_rules("hokan-restore") {
        let denied: Vec<String> = requests
            .iter()
            .filter(|r| r.user == account)
            .filter(|r| {
                let a = hokan_operator::rbac::access(&r.method, &r.path, &r.query);
                !rules.iter().any(|rule| rule.allows(&a))
            })
            .map(|r| r.line())
            .collect();
        assert!(denied.is_empty(), "denied by deploy/ RBAC: {denied:?}");
    }

    // A server that refuses ConfigMaps (as RBAC would): that object
    // fails, named, and the others are restored.
    tc.server().unwrap().forbid("", "configmaps");
    tc.create(
        json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Restore",
        "metadata": {"name": "shop-b", "namespace": "hokan-system"},
        "spec": {"repository": "main", "snapshotId": "latest",
                 "resources": {"includedNamespaces": ["shop"],
                               "namespaceMapping": {"shop": "shop-b"},
                               "existingResourcePolicy": "Update"}}}),
    )
    .await
    .unwrap();
    let path = "/apis/hokan.dev/v1alpha1/namespaces/hokan-system/restores/shop-b";
    let st = restore_until_done(&tc, &ctx, path).await;
    assert_eq!(st.phase, Phase::PartiallyFailed, "{st:?}");
    assert_eq!(st.errors.len(), 1, "{st:?}");
    assert!(
        st.errors[0]
            .object
            .as_deref()
            .unwrap()
            .contains("shop-b/web"),
        "{st:?}"
    );
    let secret = tc
        .cluster()
        .get("/api/v1/namespaces/shop-b/secrets/db")
        .await
        .unwrap();
    assert!(secret.is_some(), "the other objects are restored");
    tc.cleanup().await.unwrap();
}
