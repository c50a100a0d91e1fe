//! Pod volumes through the operator end to end: the test server with the
//! CRDs from `deploy/crds`, two worker Nodes, the kubelet stand-in running
//! the workload pods (`sleep`) and the operator's Jobs (the real `hokan`),
//! and the operator's controllers in-process on a test clock. Pods with
//! claims bound to PersistentVolumes run on both nodes, their files laid
//! out under each node's kubelet directory as the kubelet lays them out; a
//! BackupPolicy picks them by label with `keepLast: 2`.
//!
//! - Three ticks: each Backup is Completed with one snapshot per claim from
//!   one Job per node; the second tick's snapshots have the first's as
//!   parents and the Jobs' JSON results say no unchanged file was read
//!   again; exactly two snapshots per claim are left.
//! - One node's Job failing → PartiallyFailed, the error naming the pod and
//!   the node; with the other node's volume directory gone too → Failed
//!   with the reason.
//! - A Restore of one claim's snapshot into a claim in another namespace
//!   (OpenShift UID ranges on both): its Job runs on the node of the pod
//!   mounting the ReadWriteOnce claim, the files come back byte for byte,
//!   their owners moved into the target's range (when the test runs as
//!   root, as the Job does); from a Backup, the claim `sourceClaim` names
//!   into a claim of the Backup's namespace, owners kept; a claim the
//!   Backup did not save fails with the ones it did.
//! - Every request the operator and its Jobs made is allowed by the RBAC
//!   rules in `deploy/` for their service accounts.
//!
//! It needs the stand-in (it writes the nodes' kubelet directories), so it
//! runs on the in-process server only.

#[path = "common/operator.rs"]
mod harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use hokan_k8s::testserver::kubelet::{CommandRun, FailedRun, wait_for};
use hokan_k8s::testserver::{Kubelet, KubeletConfig, TestCluster};
use hokan_operator::clock::{Clock, ManualClock};
use hokan_operator::http::Endpoints;
use serde_json::{Value, json};

use harness::{NS, tree};
const APP: &str = "shop";
const DR: &str = "shop-dr";
const NODES: [&str; 2] = ["worker-0", "worker-1"];
const PASSWORD: &str = "operator volumes test password";
const OPERATOR: &str = "system:serviceaccount:hokan-system:hokan-operator";
const NODE_AGENT: &str = "system:serviceaccount:hokan-system:hokan-node-agent";
const SHOP_RANGE: u32 = 1_000_650_000;
const DR_RANGE: u32 = 1_000_780_000;

struct Env {
    tc: TestCluster,
    kubelet: Kubelet,
    clock: Arc<ManualClock>,
    operator: harness::Operator,
    repo: PathBuf,
    /// Each workload pod's volume directory on its node, by claim.
    data: BTreeMap<String, PathBuf>,
    _root: tempfile::TempDir,
}

fn b64(s: &str) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s)
}

impl Env {
    async fn start() -> Env {
        let root = tempfile::tempdir().unwrap();
        let mut tc = TestCluster::in_process().await.unwrap();
        harness::install_crds(&mut tc).await;
        for (ns, range) in [(NS, None), (APP, Some(SHOP_RANGE)), (DR, Some(DR_RANGE))] {
            let mut obj =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            if let Some(r) = range {
                obj["metadata"]["annotations"] =
                    json!({"openshift.io/sa.scc.uid-range": format!("{r}/10000")});
            }
            tc.create(obj).await.unwrap();
        }
        let sleep = which("sleep");
        let config = KubeletConfig::new(root.path().join("nodes"))
            .command("hokan", env!("CARGO_BIN_EXE_hokan"))
            .command("sleep", sleep);
        let kubelet = Kubelet::start(tc.server().unwrap(), config).await.unwrap();
        for node in NODES {
            kubelet
                .register_node(node, json!({"kubernetes.io/hostname": node}), json!([]))
                .await
                .unwrap();
        }

        // The repository: a path every node mounts (a shared file system).
        let repo = root.path().join("backups/repo");
        harness::init_repository(&repo, PASSWORD);
        for node in NODES {
            let on_node = kubelet.config().host_path(node, repo.to_str().unwrap());
            std::fs::create_dir_all(on_node.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&repo, &on_node).unwrap();
        }
        for ns in [NS, DR] {
            tc.create(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "hokan-repository", "namespace": ns},
                "data": {"password": b64(PASSWORD)}}))
                .await
                .unwrap();
        }

        // The workload: db-0 on worker-0 and db-1 on worker-1, each with a
        // claim; web-0 (not selected) beside db-0.
        let mut data = BTreeMap::new();
        for (i, node) in NODES.iter().enumerate() {
            let claim = format!("data-db-{i}");
            let pv = format!("pv-db-{i}");
            volume(&mut tc, APP, &claim, &pv).await;
            let uid = workload_pod(
                &mut tc,
                APP,
                &format!("db-{i}"),
                node,
                json!({"app": "db"}),
                &claim,
            )
            .await;
            let dir = kubelet.config().host_path(
                node,
                &format!("var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~csi/{pv}/mount"),
            );
            write_files(&dir, i);
            data.insert(format!("{APP}/{claim}"), dir);
        }
        volume(&mut tc, APP, "web-data", "pv-web").await;
        workload_pod(
            &mut tc,
            APP,
            "web-0",
            NODES[0],
            json!({"app": "web"}),
            "web-data",
        )
        .await;

        // The operator, as its service account, on a clock a day ahead.
        let start = (Utc::now() + TimeDelta::days(1))
            .duration_trunc(TimeDelta::hours(1))
            .unwrap()
            + TimeDelta::minutes(30);
        let clock = Arc::new(ManualClock::new(start));
        let client = tc
            .server()
            .unwrap()
            .cluster_as(OPERATOR)
            .unwrap()
            .client()
            .clone();
        let operator = harness::Operator::start(
            client,
            clock.clone(),
            Default::default(),
            Endpoints::default(),
        );
        let mut env = Env {
            tc,
            kubelet,
            clock,
            operator,
            repo,
            data,
            _root: root,
        };
        for ns in [NS, DR] {
            let repo = env.repo.to_str().unwrap().to_string();
            env.tc
                .create(json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Repository",
                    "metadata": {"name": "main", "namespace": ns},
                    "spec": {"location": repo,
                             "passwordSecretRef": {"name": "hokan-repository", "key": "password"}}}))
                .await
                .unwrap();
        }
        env
    }

    fn run_now(&self, policy: &str) -> String {
        let now: DateTime<Utc> = self.clock.now();
        let tick = now.duration_trunc(TimeDelta::hours(1)).unwrap();
        hokan_operator::schedule::run_name(policy, tick)
    }

    async fn finished(&self, kind: &str, ns: &str, name: &str) -> Value {
        let path = format!("/apis/hokan.dev/v1alpha1/namespaces/{ns}/{kind}/{name}");
        wait_for(self.tc.cluster(), &path, "finished", |b| {
            matches!(
                b["status"]["phase"].as_str(),
                Some("Completed" | "PartiallyFailed" | "Failed")
            )
        })
        .await
        .unwrap()
    }

    /// The repository's volume snapshots: (identity, id, parent).
    fn volume_snapshots(&self) -> Vec<(String, String, Option<String>)> {
        let repo = hokan_repo::Repository::open(
            self.repo.to_str().unwrap(),
            PASSWORD.as_bytes(),
            Default::default(),
        )
        .unwrap();
        let mut out: Vec<_> = repo
            .snapshots()
            .unwrap()
            .into_iter()
            .filter(|e| e.snapshot.source.name() == "volume")
            .map(|e| {
                (
                    e.snapshot.identity.clone(),
                    e.id.to_hex(),
                    e.snapshot.parent.map(|p| p.to_hex()),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// The JSON summaries the run's Jobs logged, by node.
    async fn job_summaries(&self, run: &str) -> BTreeMap<String, Value> {
        use k8s_openapi::api::batch::v1::Job;
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::{Api, ListParams, LogParams};
        let client = self.tc.cluster().client().clone();
        let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client, NS);
        let mine = ListParams::default().labels(&format!("hokan.dev/run={run}"));
        let mut out = BTreeMap::new();
        for j in jobs.list(&mine).await.unwrap() {
            let name = j.metadata.name.clone().unwrap();
            let node = j.metadata.annotations.as_ref().unwrap()["hokan.dev/node"].clone();
            let list = pods
                .list(&ListParams::default().labels(&format!("job-name={name}")))
                .await
                .unwrap();
            let pod = list.items[0].metadata.name.clone().unwrap();
            let log = pods.logs(&pod, &LogParams::default()).await.unwrap();
            let summary = log
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v["message_type"] == "summary")
                .unwrap_or_else(|| panic!("no summary in {name}'s log: {log}"));
            out.insert(node, summary);
        }
        out
    }

    /// The node the pod of Job `job` in `ns` ran on.
    async fn job_node(&self, ns: &str, job: &str) -> String {
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::{Api, ListParams};
        let pods: Api<Pod> = Api::namespaced(self.tc.cluster().client().clone(), ns);
        let list = pods
            .list(&ListParams::default().labels(&format!("job-name={job}")))
            .await
            .unwrap();
        list.items[0]
            .spec
            .as_ref()
            .unwrap()
            .node_name
            .clone()
            .unwrap()
    }

    async fn stop(self) {
        self.operator.stop().await;
        let mut tc = self.tc;
        tc.cleanup().await.unwrap();
    }
}

fn which(cmd: &str) -> PathBuf {
    ["/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{cmd} not found"))
}

/// A PersistentVolume (hostPath) and a ReadWriteOnce claim bound to it.
async fn volume(tc: &mut TestCluster, ns: &str, claim: &str, pv: &str) {
    tc.create(json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": format!("/srv/{pv}")},
                 "claimRef": {"namespace": ns, "name": claim}}}))
        .await
        .unwrap();
    tc.create(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": ns},
        "spec": {"volumeName": pv, "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}}}))
        .await
        .unwrap();
}

/// A running pod on `node` mounting `claim`; its uid.
async fn workload_pod(
    tc: &mut TestCluster,
    ns: &str,
    name: &str,
    node: &str,
    labels: Value,
    claim: &str,
) -> String {
    tc.create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"nodeName": node, "restartPolicy": "Never",
                 "containers": [{"name": "main", "image": "busybox",
                                 "command": ["sleep", "3600"],
                                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}},
                             {"name": "conf", "configMap": {"name": "absent", "optional": true}}]}}))
        .await
        .unwrap();
    let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
    let pod = wait_for(tc.cluster(), &path, "Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await
    .unwrap();
    pod["metadata"]["uid"].as_str().unwrap().to_string()
}

/// A volume's files: text, a larger binary file, a subdirectory; owned by
/// users of the shop namespace's range when the test runs as root.
fn write_files(dir: &Path, i: usize) {
    std::fs::create_dir_all(dir.join("db/wal")).unwrap();
    std::fs::write(dir.join("README"), format!("volume {i}\n")).unwrap();
    let big: Vec<u8> = (0..300_000u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8 ^ i as u8)
        .collect();
    std::fs::write(dir.join("db/table.bin"), big).unwrap();
    std::fs::write(dir.join("db/wal/0001"), "first segment").unwrap();
    if hokan_core::fs::is_root() {
        for (p, uid) in [
            ("README", 0),
            ("db", 7),
            ("db/table.bin", 7),
            ("db/wal/0001", 8),
        ] {
            let id = SHOP_RANGE + uid;
            std::os::unix::fs::chown(dir.join(p), Some(id), Some(id)).unwrap();
        }
    }
}

fn identities(b: &Value) -> Vec<String> {
    let mut ids: Vec<String> = b["status"]["snapshots"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["identity"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pod_volumes_are_backed_up_per_node_kept_per_claim_and_restored_into_another_namespace() {
    let started = std::time::Instant::now();
    let mut env = Env::start().await;
    env.tc
        .create(
            json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": "volumes", "namespace": NS},
            "spec": {"repository": "main", "schedule": "0 * * * *",
                     "volumes": {"namespaces": [APP],
                                 "podSelector": {"matchLabels": {"app": "db"}},
                                 "retention": {"keepLast": 2}}}}),
        )
        .await
        .unwrap();
    let claims = vec![format!("{APP}/data-db-0"), format!("{APP}/data-db-1")];

    // Three ticks: Completed, one snapshot per claim, one Job per node.
    let mut runs: Vec<Value> = Vec::new();
    for tick in 0..3 {
        let name = env.run_now("volumes");
        let b = env.finished("backups", NS, &name).await;
        eprintln!(
            "tick {tick}: {} in {:?}",
            b["status"]["phase"],
            started.elapsed()
        );
        assert_eq!(b["status"]["phase"], "Completed", "{b:#}");
        assert_eq!(identities(&b), claims, "{b:#}");
        let figures = &b["status"]["figures"];
        assert_eq!(figures["files"], 6, "{b:#}");
        assert!(figures["bytesRead"].as_u64().unwrap() >= 600_000, "{b:#}");
        let summaries = env.job_summaries(&name).await;
        assert_eq!(
            summaries.keys().collect::<Vec<_>>(),
            NODES.iter().collect::<Vec<_>>(),
            "one Job per node"
        );
        for (node, s) in &summaries {
            let vols = s["volumes"].as_array().unwrap();
            assert_eq!(
                vols.len(),
                1,
                "only the selected pod's claim on {node}: {s:#}"
            );
            let v = &vols[0];
            if tick == 0 {
                assert_eq!(v["files_new"], 3, "{s:#}");
            } else {
                // The parent's tree is reused: nothing unchanged is read again.
                assert_eq!(v["files_unmodified"], 3, "{s:#}");
                assert_eq!(v["files_new"], 0, "{s:#}");
                assert_eq!(v["files_changed"], 0, "{s:#}");
                assert_eq!(v["data_added"], 0, "{s:#}");
                let previous = &runs[tick - 1]["status"]["snapshots"];
                let parent = previous
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["identity"] == v["identity"])
                    .unwrap();
                assert_eq!(v["parent"], parent["id"], "{s:#}");
            }
        }
        if tick == 2 {
            assert_eq!(b["status"]["forgotten"], 2, "{b:#}");
        }
        runs.push(b);
        env.clock.advance(TimeDelta::hours(1));
    }
    // Exactly the newest two per claim are left.
    let left = env.volume_snapshots();
    let mut want: Vec<(String, String)> = runs[1..]
        .iter()
        .flat_map(|r| r["status"]["snapshots"].as_array().unwrap().clone())
        .map(|s| {
            (
                s["identity"].as_str().unwrap().to_string(),
                s["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    want.sort();
    let got: Vec<(String, String)> = left
        .iter()
        .map(|(i, id, _)| (i.clone(), id.clone()))
        .collect();
    assert_eq!(got, want);

    // worker-1's Job fails: PartiallyFailed, the error names its pod.
    env.kubelet.on_command(
        "hokan",
        Arc::new(|run: &CommandRun| {
            (run.node == "worker-1" && run.argv.iter().any(|a| a == "backup")).then(|| FailedRun {
                exit_code: 1,
                output: "error: cannot list the kubelet's pods directory: Permission denied\n"
                    .into(),
            })
        }),
    );
    let name = env.run_now("volumes");
    let b = env.finished("backups", NS, &name).await;
    assert_eq!(b["status"]["phase"], "PartiallyFailed", "{b:#}");
    assert_eq!(identities(&b), vec![claims[0].clone()], "{b:#}");
    let latest_db0 = b["status"]["snapshots"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let errors = b["status"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{b:#}");
    assert_eq!(errors[0]["object"], format!("pods/{APP}/db-1"), "{b:#}");
    let message = errors[0]["message"].as_str().unwrap();
    eprintln!("one node failing: {message}");
    assert!(
        message.contains("worker-1") && message.contains("Permission denied"),
        "{message}"
    );

    // And db-0's volume directory is gone from worker-0: nothing saved, Failed.
    env.clock.advance(TimeDelta::hours(1));
    let dir = env.data[&claims[0]].clone();
    // The claim's directory (`<plugin>/<volume>`), not only its `mount`.
    let claim_dir = dir.parent().unwrap().to_path_buf();
    let aside = claim_dir.with_extension("aside");
    std::fs::rename(&claim_dir, &aside).unwrap();
    let name = env.run_now("volumes");
    let b = env.finished("backups", NS, &name).await;
    std::fs::rename(&aside, &claim_dir).unwrap();
    assert_eq!(b["status"]["phase"], "Failed", "{b:#}");
    let reason = b["status"]["failureReason"].as_str().unwrap();
    eprintln!("both failing: {reason}");
    assert!(
        reason.contains("db-0") || reason.contains("no directory"),
        "{reason}"
    );
    env.kubelet
        .on_command("hokan", Arc::new(|_: &CommandRun| None::<FailedRun>));

    // A Restore of db-0's claim into shop-dr's claim, mounted by a pod on
    // worker-1: the Job runs there, files and shifted owners come back.
    volume(&mut env.tc, DR, "data", "pv-dr").await;
    workload_pod(
        &mut env.tc,
        DR,
        "app-0",
        NODES[1],
        json!({"app": "db"}),
        "data",
    )
    .await;
    env.tc
        .create(
            json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Restore",
            "metadata": {"name": "db-back", "namespace": DR},
            "spec": {"snapshotId": "latest", "repository": "main",
                     "volume": {"claimName": "data", "sourceClaim": claims[0],
                                "shiftUids": hokan_core::fs::is_root()}}}),
        )
        .await
        .unwrap();
    let r = env.finished("restores", DR, "db-back").await;
    eprintln!("restore: {:#}", r["status"]);
    assert_eq!(r["status"]["phase"], "Completed", "{r:#}");
    // `latest` of the claim sourceClaim names: the failed tick's db-0.
    assert_eq!(
        r["status"]["source"]["identity"],
        claims[0].as_str(),
        "{r:#}"
    );
    assert_eq!(r["status"]["source"]["id"], latest_db0.as_str(), "{r:#}");
    assert_eq!(r["status"]["figures"]["files"], 3, "{r:#}");
    assert_eq!(
        env.job_node(DR, "db-back-volume").await,
        NODES[1],
        "the ReadWriteOnce claim's node"
    );
    let target = env.kubelet.config().host_path(NODES[1], "srv/pv-dr");
    let (src, dst) = (tree(&dir), tree(&target));
    assert_eq!(
        src.keys().collect::<Vec<_>>(),
        dst.keys().collect::<Vec<_>>()
    );
    for (path, (content, uid)) in &src {
        let (c, u) = &dst[path];
        assert_eq!(c, content, "{path} byte for byte");
        if hokan_core::fs::is_root() && *uid >= SHOP_RANGE {
            assert_eq!(*u, uid - SHOP_RANGE + DR_RANGE, "{path}'s owner shifted");
        }
    }

    // From a Backup: the claim named by sourceClaim, into a claim of the
    // Backup's namespace (no UID ranges there: owners kept as stored).
    volume(&mut env.tc, NS, "restored", "pv-restored").await;
    let backup_name = runs[2]["metadata"]["name"].as_str().unwrap().to_string();
    for (name, source) in [
        ("db-1-back", "shop/data-db-1"),
        ("nothing-back", "shop/absent"),
    ] {
        env.tc
            .create(
                json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Restore",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"backupName": backup_name,
                         "volume": {"claimName": "restored", "sourceClaim": source}}}),
            )
            .await
            .unwrap();
    }
    let missing = env.finished("restores", NS, "nothing-back").await;
    assert_eq!(missing["status"]["phase"], "Failed", "{missing:#}");
    let reason = missing["status"]["failureReason"].as_str().unwrap();
    assert!(
        reason.contains("saved no snapshot of claim shop/absent") && reason.contains(&claims[1]),
        "{reason}"
    );
    let r = env.finished("restores", NS, "db-1-back").await;
    assert_eq!(r["status"]["phase"], "Completed", "{r:#}");
    assert_eq!(
        r["status"]["source"]["identity"],
        claims[1].as_str(),
        "{r:#}"
    );
    let node = env.job_node(NS, "db-1-back-volume").await;
    let restored = tree(&env.kubelet.config().host_path(&node, "srv/pv-restored"));
    assert_eq!(
        restored,
        tree(&env.data[&claims[1]]),
        "byte for byte, owners kept"
    );

    // Every request of the operator and the backup Jobs is allowed by
    // deploy/'s RBAC (a Secret reader RoleBinding in shop-dr, as the docs
    // ask for each namespace holding a Repository).
    check_rbac(&env);
    eprintln!("done in {:?}", started.elapsed());
    env.stop().await;
}

fn check_rbac(env: &Env) {
    use hokan_operator::rbac::{access, discovery_rule, rules_for};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let Some(docs) = hokan_operator::rbac::kustomize(&dir) else {
        eprintln!("kubectl not installed; RBAC not checked");
        return;
    };
    let mut docs = docs.unwrap();
    docs.push(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "hokan-operator-secrets", "namespace": DR},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "hokan-operator-secrets"},
        "subjects": [{"kind": "ServiceAccount", "name": "hokan-operator", "namespace": NS}]}),
    );
    let mut checked = BTreeMap::<&str, usize>::new();
    let mut denied = Vec::new();
    for (user, account) in [
        (OPERATOR, "hokan-operator"),
        (NODE_AGENT, "hokan-node-agent"),
    ] {
        let mut rules = rules_for(&docs, NS, account);
        rules.push(discovery_rule());
        for r in env.tc.server().unwrap().requests() {
            if r.user != user {
                continue;
            }
            *checked.entry(account).or_default() += 1;
            let a = access(&r.method, &r.path, &r.query);
            if !rules.iter().any(|rule| rule.allows(&a)) {
                denied.push(format!("{account}: {} {}?{}", r.method, r.path, r.query));
            }
        }
    }
    eprintln!("requests checked against deploy/ RBAC: {checked:?}");
    assert!(checked.get("hokan-node-agent").copied().unwrap_or(0) > 0);
    assert!(denied.is_empty(), "denied:\n{}", denied.join("\n"));
}
