//! The operator end to end (issue 24, "How it must be shown"): the test
//! server with the CRDs from `deploy/crds` and a control-plane Node, the
//! kubelet stand-in running Jobs' `hokan` as the real binary, Debian's etcd
//! on loopback with client certificates on the node, and the operator's
//! controllers in-process on a test clock. A Repository (a path on the
//! node, its password in a Secret), a BackupPolicy for etcd and one for
//! resources; the clock is moved through schedule ticks and each tick's
//! Backup is read back: phase, snapshot ids, figures; retention leaves
//! exactly N; an etcd that is down and a repository that is gone end
//! `Failed` with the reason in status, and the next tick succeeds.
//!
//! It lives here because only this crate's tests have the `hokan` binary
//! built for them (`CARGO_BIN_EXE_hokan`). It needs the stand-in (it
//! writes the node's certificate files), so it runs on the in-process
//! server only. Without etcd it is skipped (`HOKAN_REQUIRE_ETCD=1` makes
//! that a failure).

#[path = "common/operator.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use hokan_etcd::testing::{EtcdProcess, ServerTls};
use hokan_k8s::testserver::kubelet::wait_for;
use hokan_k8s::testserver::{Kubelet, KubeletConfig, TestCluster};
use hokan_operator::clock::{Clock, ManualClock};
use hokan_operator::http::Endpoints;
use serde_json::{Value, json};

use harness::NS;
const NODE: &str = "cp-0";
const PASSWORD: &str = "operator test password";
const PKI: &str = "/etc/kubernetes/pki/etcd";
const STATIC_PODS: &str = "/etc/kubernetes/static-pod-resources";

/// The etcd PKI kubeadm lays out: a CA, etcd's server pair, and the
/// health-check client pair the Job reads from the node.
fn write_pki(dir: &Path) -> ServerTls {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, SanType,
    };
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "etcd-ca");
    let ca_pem = params.self_signed(&key).unwrap().pem();
    let issuer = Issuer::new(params, key);
    let leaf = |cn: &str, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        (
            params.signed_by(&key, &issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    };
    let (sc, sk) = leaf("etcd", ExtendedKeyUsagePurpose::ServerAuth);
    let (cc, ck) = leaf(
        "kube-etcd-healthcheck-client",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let ca = write("ca.crt", ca_pem);
    write("healthcheck-client.crt", cc);
    write("healthcheck-client.key", ck);
    ServerTls {
        cert: write("server.crt", sc),
        key: write("server.key", sk),
        client_ca: ca,
    }
}

/// Everything a test drives: the cluster, the stand-in, etcd, the
/// operator and its clock, and the repository's directory as the
/// operator sees it.
struct Env {
    tc: TestCluster,
    _kubelet: Kubelet,
    etcd: EtcdProcess,
    clock: Arc<ManualClock>,
    operator: harness::Operator,
    endpoints: Endpoints,
    repo: PathBuf,
    _root: tempfile::TempDir,
}

impl Env {
    /// `None` when etcd is not installed (the test is skipped).
    async fn start() -> Option<Env> {
        if !hokan_etcd::testing::etcd_available() {
            return None;
        }
        let root = tempfile::tempdir().unwrap();
        let mut tc = TestCluster::in_process().await.unwrap();
        harness::install_crds(&mut tc).await;
        tc.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
            .await
            .unwrap();
        let config = KubeletConfig::new(root.path().join("nodes"))
            .command("hokan", env!("CARGO_BIN_EXE_hokan"));
        let kubelet = Kubelet::start(tc.server().unwrap(), config).await.unwrap();
        kubelet
            .register_node(
                NODE,
                json!({"kubernetes.io/hostname": NODE, "node-role.kubernetes.io/control-plane": ""}),
                json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
            )
            .await
            .unwrap();

        // etcd's certificates and the static pod resources on the node.
        let node = |p: &str| kubelet.config().host_path(NODE, p);
        let tls = write_pki(&node(PKI));
        let pods = node(STATIC_PODS);
        for component in hokan_etcd::static_pods::STATIC_POD_COMPONENTS {
            let dir = pods.join(format!("{component}-pod-3"));
            std::fs::create_dir_all(dir.join("secrets")).unwrap();
            let pod = format!("kind: Pod\nmetadata:\n  name: {component}\n");
            std::fs::write(dir.join("pod.yaml"), pod).unwrap();
            std::fs::write(dir.join("secrets/key"), component.as_bytes()).unwrap();
        }
        let client = (
            node(&format!("{PKI}/healthcheck-client.crt")),
            node(&format!("{PKI}/healthcheck-client.key")),
            node(&format!("{PKI}/ca.crt")),
        );
        let etcd = EtcdProcess::start_tls(&tls, (&client.0, &client.1, &client.2)).unwrap();
        etcd.etcdctl_ok(&[
            "put",
            "/registry/configmaps/app/settings",
            "{\"kind\":\"ConfigMap\"}",
        ]);

        // The repository: a path the operator opens and the node mounts
        // at the same path (a shared file system, as on a single node).
        let repo = root.path().join("backups/repo");
        harness::init_repository(&repo, PASSWORD);
        let on_node = node(repo.to_str().unwrap());
        std::fs::create_dir_all(on_node.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&repo, &on_node).unwrap();

        tc.create(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "hokan-repository", "namespace": NS},
            "data": {"password": base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD, PASSWORD)}}))
            .await
            .unwrap();
        // Data for the resource policy.
        tc.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}))
            .await
            .unwrap();
        tc.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "app"},
            "data": {"mode": "production"}}))
            .await
            .unwrap();

        // The operator, on a clock a day ahead of the server's (whose
        // creation times the schedules start from), at half past an hour.
        let start = (Utc::now() + TimeDelta::days(1))
            .duration_trunc(TimeDelta::hours(1))
            .unwrap()
            + TimeDelta::minutes(30);
        let clock = Arc::new(ManualClock::new(start));
        let endpoints = Endpoints::default();
        let operator = harness::Operator::start(
            tc.cluster().client().clone(),
            clock.clone(),
            Default::default(),
            endpoints.clone(),
        );
        let mut env = Env {
            tc,
            _kubelet: kubelet,
            etcd,
            clock,
            operator,
            endpoints,
            repo,
            _root: root,
        };
        env.apply(
            json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Repository",
            "metadata": {"name": "main", "namespace": NS},
            "spec": {"location": env.repo.to_str().unwrap(),
                     "passwordSecretRef": {"name": "hokan-repository", "key": "password"}}}),
        )
        .await;
        Some(env)
    }

    async fn apply(&mut self, object: Value) {
        self.tc.create(object).await.unwrap();
    }

    /// The etcd policy: hourly, the member on loopback, keep the last 2.
    async fn etcd_policy(&mut self) {
        let endpoint = self.etcd.url.clone();
        self.apply(
            json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": "etcd", "namespace": NS},
            "spec": {"repository": "main", "schedule": "0 * * * *",
                     "etcd": {"endpoint": endpoint, "retention": {"keepLast": 2}}}}),
        )
        .await;
    }

    /// The resource policy: hourly, namespace `app`, keep the last 2.
    async fn resource_policy(&mut self) {
        self.apply(
            json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": "resources", "namespace": NS},
            "spec": {"repository": "main", "schedule": "0 * * * *",
                     "resources": {"includedNamespaces": ["app"], "retention": {"keepLast": 2}}}}),
        )
        .await;
    }

    /// The name of `policy`'s run for the tick at or before the clock.
    fn run_now(&self, policy: &str) -> String {
        let now: DateTime<Utc> = self.clock.now();
        let tick = now.duration_trunc(TimeDelta::hours(1)).unwrap();
        hokan_operator::schedule::run_name(policy, tick)
    }

    /// Waits until Backup `name` is finished; returns it.
    async fn finished(&self, name: &str) -> Value {
        let path = format!("/apis/hokan.dev/v1alpha1/namespaces/{NS}/backups/{name}");
        wait_for(self.tc.cluster(), &path, "finished", |b| {
            matches!(
                b["status"]["phase"].as_str(),
                Some("Completed" | "PartiallyFailed" | "Failed")
            )
        })
        .await
        .unwrap()
    }

    /// The repository's snapshots of `kind`, as the library lists them.
    fn snapshots(&self, kind: &str) -> Vec<String> {
        let repo = hokan_repo::Repository::open(
            self.repo.to_str().unwrap(),
            PASSWORD.as_bytes(),
            Default::default(),
        )
        .and_then(|r| r.load_index())
        .unwrap();
        let mut ids: Vec<String> = repo
            .snapshots()
            .unwrap()
            .into_iter()
            .filter(|e| e.snapshot.source.name() == kind)
            .map(|e| e.id.to_hex())
            .collect();
        ids.sort();
        ids
    }

    async fn stop(self) {
        self.operator.stop().await;
        let mut tc = self.tc;
        tc.cleanup().await.unwrap();
    }
}

fn assert_completed(b: &Value, kind: &str) {
    let s = &b["status"];
    assert_eq!(s["phase"], "Completed", "{b:#}");
    let snaps = s["snapshots"].as_array().unwrap();
    assert_eq!(
        snaps.iter().filter(|x| x["kind"] == kind).count(),
        1,
        "{b:#}"
    );
    for x in snaps {
        assert_eq!(x["id"].as_str().unwrap().len(), 64, "{b:#}");
    }
    // The column names the main snapshot, not the static pod resources.
    let main = id_of(b, kind);
    assert_eq!(s["snapshot"].as_str(), Some(&main[..8]), "{b:#}");
    assert!(s["figures"]["bytesRead"].as_u64().unwrap() > 0, "{b:#}");
    assert!(s["startTimestamp"].is_string() && s["completionTimestamp"].is_string());
    assert!(s["size"].is_string(), "{b:#}");
}

/// The id of the run's snapshot of `kind`.
fn id_of(b: &Value, kind: &str) -> String {
    let snaps = b["status"]["snapshots"].as_array().unwrap();
    let s = snaps.iter().find(|x| x["kind"] == kind).unwrap();
    s["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduled_etcd_and_resource_backups_complete_and_retention_keeps_exactly_n() {
    let Some(mut env) = Env::start().await else {
        return;
    };
    env.etcd_policy().await;
    env.resource_policy().await;
    let mut etcd_ids = Vec::new();
    let mut resource_ids = Vec::new();
    for tick in 0..4 {
        let etcd = env.finished(&env.run_now("etcd")).await;
        assert_completed(&etcd, "etcd");
        assert_eq!(
            etcd["status"]["job"]["name"],
            format!("{}-etcd", env.run_now("etcd")),
            "etcd runs as a Job"
        );
        etcd_ids.push(id_of(&etcd, "etcd"));
        // Retention ran in the Job; its summary says what it forgot.
        let forgot = if tick > 1 { 1 } else { 0 };
        assert_eq!(etcd["status"]["forgotten"], forgot, "{etcd:#}");
        let res = env.finished(&env.run_now("resources")).await;
        assert_completed(&res, "k8s");
        assert!(
            res["status"]["figures"]["objects"].as_u64().unwrap() > 0,
            "{res:#}"
        );
        resource_ids.push(id_of(&res, "k8s"));
        if tick > 1 {
            // Retention after each run: the older ones go, exactly 2 stay.
            assert!(res["status"]["forgotten"].as_u64().unwrap() >= 1, "{res:#}");
        }
        env.clock.advance(TimeDelta::hours(1));
    }
    // Exactly the newest two of each kind are left.
    let mut want: Vec<String> = etcd_ids[2..].to_vec();
    want.sort();
    assert_eq!(env.snapshots("etcd"), want);
    // Their static pod resources went with the forgotten ones.
    assert_eq!(env.snapshots("fs").len(), 2);
    let mut want: Vec<String> = resource_ids[2..].to_vec();
    want.sort();
    assert_eq!(env.snapshots("k8s"), want);
    // The policy shows its runs and the last success.
    let policy = env
        .tc
        .cluster()
        .get(&format!(
            "/apis/hokan.dev/v1alpha1/namespaces/{NS}/backuppolicies/etcd"
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(
        policy["status"]["lastSuccessfulTime"].is_string(),
        "{policy:#}"
    );
    assert!(
        policy["status"]["recentBackups"].as_array().unwrap().len() >= 4,
        "{policy:#}"
    );
    let metrics = env.endpoints.metrics.render();
    assert!(metrics.contains("hokan_"), "{metrics}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_down_etcd_and_a_missing_repository_fail_with_the_reason_and_the_next_tick_succeeds() {
    let Some(mut env) = Env::start().await else {
        return;
    };
    env.etcd_policy().await;
    let first = env.finished(&env.run_now("etcd")).await;
    assert_completed(&first, "etcd");

    // etcd is down at the next tick: the Job fails, the Backup says why.
    env.etcd.stop();
    env.clock.advance(TimeDelta::hours(1));
    let down = env.finished(&env.run_now("etcd")).await;
    assert_eq!(down["status"]["phase"], "Failed", "{down:#}");
    let reason = down["status"]["failureReason"].as_str().unwrap();
    eprintln!("etcd down: {reason}");
    assert!(
        reason.contains("-etcd failed"),
        "the Job is named: {reason}"
    );
    assert!(
        reason.contains("it ended with: "),
        "its log's end: {reason}"
    );
    assert!(down["status"]["snapshots"].is_null(), "{down:#}");

    // It is back: the next tick succeeds.
    env.etcd.restart();
    env.clock.advance(TimeDelta::hours(1));
    assert_completed(&env.finished(&env.run_now("etcd")).await, "etcd");

    // The repository is gone at a tick of the resource policy: Failed,
    // naming the repository and the store's error.
    env.resource_policy().await;
    let ok = env.finished(&env.run_now("resources")).await;
    assert_completed(&ok, "k8s");
    let aside = env.repo.with_extension("aside");
    std::fs::rename(&env.repo, &aside).unwrap();
    env.clock.advance(TimeDelta::hours(1));
    let gone = env.finished(&env.run_now("resources")).await;
    assert_eq!(gone["status"]["phase"], "Failed", "{gone:#}");
    let reason = gone["status"]["failureReason"].as_str().unwrap();
    eprintln!("repository gone: {reason}");
    assert!(reason.contains("repository main"), "{reason}");
    // The same tick's etcd Job cannot write either.
    let etcd_gone = env.finished(&env.run_now("etcd")).await;
    assert_eq!(etcd_gone["status"]["phase"], "Failed", "{etcd_gone:#}");
    let reason = etcd_gone["status"]["failureReason"].as_str().unwrap();
    eprintln!("repository gone (etcd): {reason}");
    assert!(reason.contains("repository main"), "{reason}");
    assert!(
        etcd_gone["status"]["job"].is_null(),
        "no Job is started into a repository that does not open: {etcd_gone:#}"
    );

    // Back in place: the next tick succeeds for both.
    std::fs::rename(&aside, &env.repo).unwrap();
    env.clock.advance(TimeDelta::hours(1));
    assert_completed(&env.finished(&env.run_now("resources")).await, "k8s");
    assert_completed(&env.finished(&env.run_now("etcd")).await, "etcd");
    env.stop().await;
}
