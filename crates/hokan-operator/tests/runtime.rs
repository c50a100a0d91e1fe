//! The operator's runtime end to end on the test server: it serves its
//! probes, becomes ready, takes the Lease, and on the stop signal stops
//! and gives the Lease up so the next replica starts at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use hokan_k8s::testserver::TestCluster;
use hokan_operator::clock::ManualClock;
use hokan_operator::http::Endpoints;
use hokan_operator::lease::Elector;
use hokan_operator::run::{RunOptions, run};
use serde_json::json;
use tokio::sync::watch;

/// Waits (bounded) until `f` holds; the bound is a failure, not a timing assertion.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_holds_the_lease_and_releases_it_on_stop() {
    let mut tc = TestCluster::new().await.unwrap();
    tc.create(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "hokan-system"}}),
    )
    .await
    .unwrap();
    let ns = tc.namespace("hokan-system");
    // The operator's CRDs, as `kubectl apply -k deploy/` installs them.
    for (_, crd) in hokan_operator::api::crds() {
        tc.create(serde_json::to_value(&crd).unwrap())
            .await
            .unwrap();
    }
    let client = tc.cluster().client().clone();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let endpoints = Endpoints::default();
    let (stop, stop_rx) = watch::channel(false);
    let options = RunOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        namespace: ns.clone(),
        identity: "replica-a".into(),
        lease_name: "hokan-operator".into(),
        open_options: Default::default(),
        image: "localhost/hokan:test".into(),
        max_concurrent_runs: 2,
        job_retries: 0,
        shutdown_grace: Duration::from_secs(5),
    };
    let running = tokio::spawn(run(
        client.clone(),
        clock,
        options,
        endpoints.clone(),
        stop_rx,
    ));
    eventually("readiness", || endpoints.health.is_ready()).await;
    eventually("holding the Lease", || endpoints.health.is_leading()).await;

    let other = Elector::new(client.clone(), &ns, "hokan-operator", "replica-b");
    assert!(!other.try_hold().await.unwrap(), "the Lease is held");

    stop.send_replace(true);
    let result = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("the operator stops on the signal")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(!endpoints.health.is_leading());
    assert!(other.try_hold().await.unwrap(), "the Lease was given up");
    tc.cleanup().await.unwrap();
}
