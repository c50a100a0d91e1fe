//! Every request the operator made is allowed by the RBAC rules in
//! `deploy/` for its service account: the Lease, the password Secret, a
//! start-to-stop run of the operator (its watches on every kind), and an
//! in-process resource backup, recorded by the test server and checked
//! rule by rule; and the requests of a volume backup Job (the pods on its
//! node, their claims) against `hokan-node-agent`'s rules. The end-to-end
//! test `hokan-cli/tests/operator_volumes.rs` checks every request its
//! operator and Jobs made the same way. Prints which rule allowed which requests.
//! Needs kubectl (kustomize) to render deploy/; skipped without it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use hokan_k8s::testserver::TestCluster;
use hokan_operator::api::SecretKeyRef;
use hokan_operator::api::common::ResourceFilter;
use hokan_operator::api::policy::ResourceSource;
use hokan_operator::clock::ManualClock;
use hokan_operator::http::Endpoints;
use hokan_operator::lease::Elector;
use hokan_operator::rbac::{access, rules_for};
use hokan_operator::reconcile::repository::secret_value;
use hokan_operator::run::{RunOptions, run};
use hokan_operator::work::backup_resources;
use hokan_repo::{CacheMode, InitOptions, KdfParams, OpenOptions, Repository};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The volume backup Jobs' service account, as the kubelet stand-in's
/// tokens name it.
const NODE_AGENT: &str = "system:serviceaccount:hokan-system:hokan-node-agent";

fn rendered() -> Option<Vec<Value>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    Some(hokan_operator::rbac::kustomize(&dir)?.unwrap())
}

async fn eventually(f: impl Fn() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("did not happen within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_of_the_operator_is_allowed_by_deploy_rbac() {
    let Some(docs) = rendered() else {
        eprintln!("kubectl not installed; RBAC not checked");
        return;
    };
    let mut tc = TestCluster::in_process().await.unwrap();
    for (_, crd) in hokan_operator::api::crds() {
        tc.create(serde_json::to_value(&crd).unwrap())
            .await
            .unwrap();
    }
    tc.create(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "hokan-repository", "namespace": "hokan-system"},
        "data": {"password": "c2VjcmV0"}}))
        .await
        .unwrap();
    tc.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web", "namespace": "shop"}, "data": {"a": "b"}}))
        .await
        .unwrap();
    // A pod a volume policy picks, with its claim.
    let admin = tc.cluster();
    admin
        .create(
            "/api/v1/namespaces/shop/persistentvolumeclaims",
            &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-db-0", "namespace": "shop"},
        "spec": {"volumeName": "pv-1", "accessModes": ["ReadWriteOnce"]}}),
        )
        .await
        .unwrap();
    let mut pod = admin
        .create(
            "/api/v1/namespaces/shop/pods",
            &json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "db-0", "namespace": "shop", "labels": {"app": "db"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "db", "image": "db"}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]},
        }),
        )
        .await
        .unwrap();
    // Running, as its kubelet reports it (status is not taken on create).
    pod["status"] = json!({"phase": "Running"});
    admin
        .replace("/api/v1/namespaces/shop/pods/db-0/status", &pod)
        .await
        .unwrap();
    let server = tc.server().unwrap();
    server.clear_requests();
    let client = tc.cluster().client().clone();

    // The Lease and the password, as the reconciles use them.
    let elector = Elector::new(client.clone(), "hokan-system", "probe", "replica-b");
    elector.try_hold().await.unwrap();
    elector.release().await.unwrap();
    let key = SecretKeyRef {
        name: "hokan-repository".into(),
        key: "password".into(),
    };
    secret_value(&client, "hokan-system", &key).await.unwrap();

    // The operator from start to stop: readiness, Lease, a watch per kind.
    let endpoints = Endpoints::default();
    let (stop, stop_rx) = watch::channel(false);
    let options = RunOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        namespace: "hokan-system".into(),
        identity: "replica-a".into(),
        lease_name: "hokan-operator".into(),
        open_options: Default::default(),
        image: "localhost/hokan:test".into(),
        max_concurrent_runs: 2,
        job_retries: 0,
        shutdown_grace: Duration::from_secs(5),
    };
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let running = tokio::spawn(run(
        client.clone(),
        clock,
        options,
        endpoints.clone(),
        stop_rx,
    ));
    eventually(|| endpoints.health.is_leading()).await;
    stop.send_replace(true);
    running.await.unwrap().unwrap();

    // A resource backup in the operator's process.
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("repo");
    let loc = loc.to_str().unwrap();
    let open = OpenOptions {
        cache: CacheMode::Off,
        ..Default::default()
    };
    let init = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    Repository::init(loc, b"pw", init, open.clone()).unwrap();
    let mut repo = tokio::task::block_in_place(|| {
        Repository::open(loc, b"pw", open)
            .unwrap()
            .load_index()
            .unwrap()
    });
    let source = ResourceSource {
        filter: ResourceFilter {
            included_namespaces: vec!["shop".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    backup_resources(tc.cluster(), &mut repo, &source, "shop-20260101000000")
        .await
        .unwrap();

    // What the operator asks for volumes: the pods a policy picks (all
    // namespaces, by label), and for a restore the claim and the
    // namespaces' UID ranges.
    let ctx = hokan_operator::reconcile::Context {
        client: client.clone(),
        clock: Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        )),
        endpoints: Endpoints::default(),
        open_options: Default::default(),
        image: "localhost/hokan:test".into(),
        job_retries: 0,
        failures: Default::default(),
    };
    let source: hokan_operator::api::policy::VolumeSource = serde_json::from_value(
        json!({"namespaces": ["shop"], "podSelector": {"matchLabels": {"app": "db"}}}),
    )
    .unwrap();
    let picked = hokan_operator::reconcile::volumes::chosen_pods(&ctx, "hokan-system", &source)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(picked["node-1"], [("shop".to_string(), "db-0".to_string())]);
    let cluster = hokan_k8s::Cluster::from_client(client.clone(), "in-cluster");
    cluster
        .get("/api/v1/namespaces/shop/persistentvolumeclaims/data-db-0")
        .await
        .unwrap();
    let _ = hokan_k8s::volumes::uid::namespace_range(&cluster, "shop").await;

    // What a volume backup Job asks, as its service account: the pods the
    // policy chose on its node, and their claims.
    let agent = server.cluster_as(NODE_AGENT).unwrap();
    let filter = hokan_k8s::volumes::PodFilter {
        namespaces: vec!["shop".into()],
        selector: Some("app=db".into()),
        ..Default::default()
    };
    let kubelet = tempfile::tempdir().unwrap();
    hokan_k8s::volumes::node_volumes_of(&agent, "node-1", kubelet.path(), true, &filter)
        .await
        .unwrap();

    let mut rules = rules_for(&docs, "hokan-system", "hokan-operator");
    rules.push(hokan_operator::rbac::discovery_rule());
    let mut allowed: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut denied = Vec::new();
    let (agent_requests, requests): (Vec<_>, Vec<_>) = server
        .requests()
        .into_iter()
        .partition(|r| r.user == NODE_AGENT);
    let agent_rules = rules_for(&docs, "hokan-system", "hokan-node-agent");
    assert!(agent_requests.len() >= 2, "{agent_requests:?}");
    for r in &agent_requests {
        let a = access(&r.method, &r.path, &r.query);
        match agent_rules.iter().find(|rule| rule.allows(&a)) {
            Some(rule) => println!(
                "hokan-node-agent: {} {} ← {}",
                a.verb,
                shape(&r.path),
                rule.source
            ),
            None => denied.push(format!(
                "hokan-node-agent: {} {}?{}",
                r.method, r.path, r.query
            )),
        }
    }
    assert!(
        requests.len() > 20,
        "only {} requests recorded",
        requests.len()
    );
    for r in &requests {
        let a = access(&r.method, &r.path, &r.query);
        match rules.iter().find(|rule| rule.allows(&a)) {
            Some(rule) => {
                let what = format!("{} {}", a.verb, shape(&r.path));
                *allowed
                    .entry(format!(
                        "{} {:?} {:?}",
                        rule.source, rule.resources, rule.verbs
                    ))
                    .or_default()
                    .entry(what)
                    .or_default() += 1;
            }
            None => denied.push(format!("{} {}?{} ({:?})", r.method, r.path, r.query, a)),
        }
    }
    for (rule, reqs) in &allowed {
        println!("{rule}");
        for (req, n) in reqs {
            println!("    {n:4} × {req}");
        }
    }
    assert!(
        denied.is_empty(),
        "denied by deploy/ RBAC:\n{}",
        denied.join("\n")
    );
}

/// A path with object names replaced, so the table groups requests.
fn shape(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        out.push(parts[i].to_string());
        if parts[i] == "namespaces" && i + 1 < parts.len() && i + 2 < parts.len() {
            out.push("{ns}".into());
            i += 2;
            continue;
        }
        i += 1;
    }
    out.join("/")
}
