//! Backup collection against the in-process API server (or a real cluster
//! named by HOKAN_TEST_KUBECONFIG where the test only uses the API).

mod common;

use hokan_k8s::filter::ClusterResources;
use hokan_k8s::testserver::{GenerateOptions, TestCluster, TestServer};
use hokan_k8s::{BackupOptions, Discovery, Error, MemoryStore, ObjectSource, backup};
use serde_json::{Value, json};

fn paths(store: &MemoryStore) -> Vec<String> {
    store.objects().map(|o| o.entry.path()).collect()
}

fn has(store: &MemoryStore, path: &str) -> bool {
    store.get(path).is_some()
}

#[tokio::test]
async fn aggregated_and_legacy_discovery_agree() {
    let server = TestServer::start().await.unwrap();
    let cluster = server.cluster().unwrap();
    let aggregated = cluster.discover().await.unwrap();
    assert_eq!(
        server.requests().len(),
        2,
        "aggregated discovery is two requests: /api and /apis"
    );
    server.set_aggregated_discovery(false);
    server.clear_requests();
    let legacy = cluster.discover().await.unwrap();
    assert!(
        server.requests().len() > 20,
        "legacy discovery reads every group version"
    );
    let key = |d: &Discovery| {
        let mut v: Vec<String> = d
            .resources
            .iter()
            .map(|r| {
                format!(
                    "{}/{}/{} {} ns={} {:?} {:?}",
                    r.group, r.version, r.resource, r.kind, r.namespaced, r.verbs, r.subresources
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(key(&aggregated), key(&legacy));
    assert_eq!(aggregated.groups, legacy.groups);
    let autoscaling = aggregated.group("autoscaling").unwrap();
    assert_eq!(
        autoscaling.versions,
        ["v2", "v1"],
        "the preferred version comes first"
    );
}

#[tokio::test]
async fn fixtures_of_every_backupable_kind_are_backed_up_with_their_kind() {
    let cluster = TestCluster::in_process().await.unwrap();
    let server = cluster.server().unwrap();
    let report = server.load_fixtures("fixtures").unwrap();
    assert!(
        report.loaded.len() > 40,
        "only {} fixtures loaded",
        report.loaded.len()
    );
    let mut store = MemoryStore::new();
    let summary = backup(cluster.cluster(), &BackupOptions::default(), &mut store)
        .await
        .unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);

    let discovery = cluster.cluster().discover().await.unwrap();
    for (resource, version) in &report.loaded {
        let gr = hokan_k8s::GroupResource::parse(resource);
        let r = discovery.find(&gr, version).unwrap();
        let expected =
            r.backupable() && gr != hokan_k8s::GroupResource::new("events.k8s.io", "events");
        let found = store.objects().any(|o| o.entry.key.resource == gr);
        assert_eq!(
            found,
            expected,
            "{resource}: backupable={} found={found}",
            r.backupable()
        );
    }
    // Velero's cohabiting rule: core events win, events.k8s.io is the same store.
    assert!(has(&store, "core/events/fixtures/nameValue.json"));
    assert!(
        !paths(&store)
            .iter()
            .any(|p| p.starts_with("events.k8s.io/"))
    );
    // Bindings (create only) and token reviews are never listed.
    assert!(
        !paths(&store)
            .iter()
            .any(|p| p.starts_with("core/bindings/") || p.starts_with("authentication.k8s.io/"))
    );

    // Each object says what it is, though the server listed built-ins without it.
    for o in store.objects() {
        let v: Value = serde_json::from_slice(&o.json).unwrap();
        assert_eq!(
            v["apiVersion"],
            o.entry.attrs.api_version,
            "{}",
            o.entry.path()
        );
        assert_eq!(v["kind"], o.entry.attrs.kind, "{}", o.entry.path());
        assert_eq!(v["metadata"]["uid"], o.entry.attrs.uid.as_str());
        assert!(o.entry.preferred);
    }
    let deployment = store
        .get("apps/deployments/fixtures/nameValue.json")
        .unwrap();
    assert_eq!(deployment.entry.attrs.kind, "Deployment");
    assert!(has(&store, "core/namespaces/_cluster/fixtures.json"));
    assert!(has(
        &store,
        "rbac.authorization.k8s.io/clusterroles/_cluster/nameValue.json"
    ));
    assert_eq!(summary.objects as usize, store.len());
    assert_eq!(store.summary(), Some(&summary));
}

#[tokio::test]
async fn lists_are_paged_500_at_a_time() {
    let cluster = TestCluster::in_process().await.unwrap();
    let server = cluster.server().unwrap();
    server.generate(&GenerateOptions {
        objects: 2400,
        namespaces: 2,
        seed: 7,
    });
    let mut store = MemoryStore::new();
    let summary = backup(cluster.cluster(), &BackupOptions::default(), &mut store)
        .await
        .unwrap();
    assert_eq!(summary.resources["configmaps"], 720);
    let cm_lists: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/configmaps")
        .collect();
    assert_eq!(cm_lists.len(), 2, "720 config maps take two pages");
    assert!(cm_lists.iter().all(|r| r.query.contains("limit=500")));
    assert!(!cm_lists[0].query.contains("continue="));
    assert!(cm_lists[1].query.contains("continue="));
    assert_eq!(store.len(), 2400 + 2, "every object and the two namespaces");
    // A page bigger than the data is one request.
    let mut small = MemoryStore::new();
    let options = BackupOptions {
        page_size: 5000,
        ..Default::default()
    };
    server.clear_requests();
    backup(cluster.cluster(), &options, &mut small)
        .await
        .unwrap();
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.path == "/api/v1/configmaps")
            .count(),
        1
    );
    assert_eq!(small.list().await.unwrap(), store.list().await.unwrap());
}

async fn shop(cluster: &mut TestCluster) {
    cluster
        .create(common::namespace("shop", json!({"team": "a"})))
        .await
        .unwrap();
    cluster
        .create(common::config_map("shop", "web", json!({"app": "web"})))
        .await
        .unwrap();
    cluster
        .create(common::config_map("shop", "db", json!({"app": "db"})))
        .await
        .unwrap();
    cluster
        .create(common::config_map(
            "shop",
            "tmp",
            json!({"velero.io/exclude-from-backup": "true"}),
        ))
        .await
        .unwrap();
    cluster
        .create(common::secret("shop", "creds"))
        .await
        .unwrap();
    cluster
        .create(common::config_map("shop-old", "web", json!({"app": "web"})))
        .await
        .unwrap();
    cluster
        .create(common::config_map("other", "web", json!({"app": "web"})))
        .await
        .unwrap();
    cluster.create(common::widget_crd()).await.unwrap();
    cluster
        .create(common::widget("shop", "blue"))
        .await
        .unwrap();
}

fn ns_options(cluster: &TestCluster, include: &[&str], exclude: &[&str]) -> BackupOptions {
    BackupOptions {
        include_namespaces: include.iter().map(|n| cluster.namespace(n)).collect(),
        exclude_namespaces: exclude.iter().map(|n| cluster.namespace(n)).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn namespace_globs_labels_and_crds_follow_velero() {
    let mut cluster = TestCluster::new().await.unwrap();
    shop(&mut cluster).await;
    let shop_ns = cluster.namespace("shop");
    let mut store = MemoryStore::new();
    let options = ns_options(&cluster, &["shop*"], &["shop-old"]);
    let summary = backup(cluster.cluster(), &options, &mut store)
        .await
        .unwrap();
    assert!(has(&store, &format!("core/configmaps/{shop_ns}/web.json")));
    assert!(has(&store, &format!("core/secrets/{shop_ns}/creds.json")));
    assert!(
        !has(&store, &format!("core/configmaps/{shop_ns}/tmp.json")),
        "labelled velero.io/exclude-from-backup=true"
    );
    assert_eq!(
        summary
            .skipped
            .get("label velero.io/exclude-from-backup=true"),
        Some(&1)
    );
    assert!(
        !paths(&store)
            .iter()
            .any(|p| p.contains("/shop-old/") || p.contains("/other/"))
    );
    // Auto with a namespace filter: no cluster-scoped resources but the
    // namespace itself and the CRD the widgets need.
    assert!(has(
        &store,
        &format!("core/namespaces/_cluster/{shop_ns}.json")
    ));
    assert!(has(
        &store,
        &format!("example.com/widgets/{shop_ns}/blue.json")
    ));
    assert!(has(
        &store,
        "apiextensions.k8s.io/customresourcedefinitions/_cluster/widgets.example.com.json"
    ));
    assert!(
        !paths(&store)
            .iter()
            .any(|p| p.starts_with("rbac.authorization.k8s.io/clusterroles/"))
    );
    // The widget is stored in the version the server prefers.
    let blue = store
        .get(&format!("example.com/widgets/{shop_ns}/blue.json"))
        .unwrap();
    assert_eq!(blue.entry.attrs.api_version, "example.com/v1");

    // false: not even the CRD; the namespace still comes along.
    let mut none = MemoryStore::new();
    let options = BackupOptions {
        cluster_resources: ClusterResources::Exclude,
        ..ns_options(&cluster, &["shop"], &[])
    };
    backup(cluster.cluster(), &options, &mut none)
        .await
        .unwrap();
    assert!(
        !paths(&none)
            .iter()
            .any(|p| p.starts_with("apiextensions.k8s.io/"))
    );
    assert!(has(
        &none,
        &format!("core/namespaces/_cluster/{shop_ns}.json")
    ));

    // A label selector, resource filters in Velero's short forms.
    let mut selected = MemoryStore::new();
    let options = BackupOptions {
        selector: Some("app=web".into()),
        include_resources: vec!["cm".into(), "secrets".into()],
        ..ns_options(&cluster, &["shop"], &[])
    };
    backup(cluster.cluster(), &options, &mut selected)
        .await
        .unwrap();
    let got: Vec<String> = paths(&selected)
        .into_iter()
        .filter(|p| !p.starts_with("core/namespaces/"))
        .collect();
    assert_eq!(got, [format!("core/configmaps/{shop_ns}/web.json")]);
    cluster.cleanup().await.unwrap();
}

#[tokio::test]
async fn all_api_versions_stores_every_served_version() {
    let mut cluster = TestCluster::new().await.unwrap();
    cluster.create(common::widget_crd()).await.unwrap();
    cluster
        .create(common::widget("shop", "blue"))
        .await
        .unwrap();
    let shop_ns = cluster.namespace("shop");
    let options = BackupOptions {
        all_api_versions: true,
        ..ns_options(&cluster, &["shop"], &[])
    };
    let mut store = MemoryStore::new();
    let summary = backup(cluster.cluster(), &options, &mut store)
        .await
        .unwrap();
    let preferred = store
        .get(&format!("example.com/widgets/{shop_ns}/blue.json"))
        .unwrap();
    let other = store
        .get(&format!(
            "example.com/widgets/_versions/v1beta1/{shop_ns}/blue.json"
        ))
        .unwrap();
    assert!(preferred.entry.preferred && !other.entry.preferred);
    let other_json: Value = serde_json::from_slice(&other.json).unwrap();
    assert_eq!(other_json["apiVersion"], "example.com/v1beta1");
    assert_eq!(
        summary.resources["widgets.example.com"], 1,
        "objects are counted once"
    );
    assert!(summary.entries > summary.objects);
    cluster.cleanup().await.unwrap();
}

#[tokio::test]
async fn operators_are_left_out_on_request() {
    let cluster = TestCluster::in_process().await.unwrap();
    let server = cluster.server().unwrap();
    let mut csv_crd = common::widget_crd();
    csv_crd["metadata"]["name"] = json!("clusterserviceversions.operators.coreos.com");
    csv_crd["spec"]["group"] = json!("operators.coreos.com");
    csv_crd["spec"]["names"] = json!({"plural": "clusterserviceversions", "singular": "clusterserviceversion", "kind": "ClusterServiceVersion"});
    let mut csv = json!({"apiVersion": "operators.coreos.com/v1", "kind": "ClusterServiceVersion", "metadata": {"name": "etcd.v1", "namespace": "ops"}});
    server.seed([common::namespace("ops", json!({}))]).unwrap();
    server.seed([csv_crd]).unwrap();
    server.seed([csv.clone()]).unwrap();
    csv["metadata"]["namespace"] = json!("app");
    csv["metadata"]["labels"] = json!({"olm.copiedFrom": "ops"});
    server
        .seed([common::namespace("app", json!({})), csv])
        .unwrap();
    let mut operator_cm = common::config_map(
        "ops",
        "operator-config",
        json!({"olm.owner.kind": "ClusterServiceVersion"}),
    );
    operator_cm["metadata"]["ownerReferences"] = json!([]);
    server
        .seed([operator_cm, common::config_map("app", "mine", json!({}))])
        .unwrap();

    let mut with = MemoryStore::new();
    backup(cluster.cluster(), &BackupOptions::default(), &mut with)
        .await
        .unwrap();
    assert!(has(
        &with,
        "operators.coreos.com/clusterserviceversions/ops/etcd.v1.json"
    ));
    assert!(has(&with, "core/configmaps/ops/operator-config.json"));

    let mut without = MemoryStore::new();
    let options = BackupOptions {
        exclude_operators: true,
        ..Default::default()
    };
    let summary = backup(cluster.cluster(), &options, &mut without)
        .await
        .unwrap();
    assert!(
        !paths(&without)
            .iter()
            .any(|p| p.starts_with("operators.coreos.com/"))
    );
    assert!(!has(&without, "core/configmaps/ops/operator-config.json"));
    assert!(has(&without, "core/configmaps/app/mine.json"));
    assert_eq!(summary.skipped.get("made by an operator (OLM)"), Some(&1));
}

#[tokio::test]
async fn a_malformed_selector_is_refused_before_anything_is_read() {
    let mut cluster = TestCluster::new().await.unwrap();
    cluster
        .create(common::config_map("shop", "web", json!({})))
        .await
        .unwrap();
    let options = BackupOptions {
        selector: Some("bad key=1".into()),
        ..Default::default()
    };
    let mut store = MemoryStore::new();
    let err = backup(cluster.cluster(), &options, &mut store)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "label selector",
                ..
            }
        ),
        "{err}"
    );
    assert!(store.is_empty() && store.summary().is_none());
    cluster.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_forbidden_resource_is_reported_and_the_rest_backed_up() {
    let cluster = TestCluster::in_process().await.unwrap();
    let server = cluster.server().unwrap();
    server
        .seed([
            common::namespace("shop", json!({})),
            common::config_map("shop", "web", json!({})),
            common::secret("shop", "creds"),
        ])
        .unwrap();
    server.forbid("", "secrets");
    let mut store = MemoryStore::new();
    let summary = backup(cluster.cluster(), &BackupOptions::default(), &mut store)
        .await
        .unwrap();
    assert!(has(&store, "core/configmaps/shop/web.json"));
    assert!(!has(&store, "core/secrets/shop/creds.json"));
    assert_eq!(summary.errors.len(), 1, "{:?}", summary.errors);
    let message = &summary.errors[0];
    assert!(
        message.contains("403") && message.contains("secrets") && message.contains("RBAC"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unchanged_cluster_backs_up_to_the_same_bytes_and_a_change_shows() {
    let cluster = TestCluster::in_process().await.unwrap();
    let server = cluster.server().unwrap();
    server.generate(&GenerateOptions {
        objects: 600,
        namespaces: 3,
        seed: 3,
    });
    let mut first = MemoryStore::new();
    let mut second = MemoryStore::new();
    backup(cluster.cluster(), &BackupOptions::default(), &mut first)
        .await
        .unwrap();
    backup(cluster.cluster(), &BackupOptions::default(), &mut second)
        .await
        .unwrap();
    assert_eq!(first.len(), second.len());
    for o in first.objects() {
        assert_eq!(
            second.get(&o.entry.path()).unwrap().json,
            o.json,
            "{} changed between two backups",
            o.entry.path()
        );
    }
    // One edit changes exactly one object's bytes.
    let path = "/api/v1/namespaces/bench-000/configmaps/app0-config-0";
    let mut cm = cluster.cluster().get(path).await.unwrap().unwrap();
    cm["data"]["extra"] = json!("1");
    cluster.cluster().replace(path, &cm).await.unwrap();
    let mut third = MemoryStore::new();
    backup(cluster.cluster(), &BackupOptions::default(), &mut third)
        .await
        .unwrap();
    let changed: Vec<String> = first
        .objects()
        .filter(|o| third.get(&o.entry.path()).unwrap().json != o.json)
        .map(|o| o.entry.path())
        .collect();
    assert_eq!(changed, ["core/configmaps/bench-000/app0-config-0.json"]);
}

#[tokio::test]
async fn a_server_without_aggregated_discovery_backs_up_the_same() {
    let cluster = TestCluster::in_process().await.unwrap();
    let server = cluster.server().unwrap();
    server.load_fixtures("fixtures").unwrap();
    let mut aggregated = MemoryStore::new();
    backup(
        cluster.cluster(),
        &BackupOptions::default(),
        &mut aggregated,
    )
    .await
    .unwrap();
    server.set_aggregated_discovery(false);
    let mut legacy = MemoryStore::new();
    backup(cluster.cluster(), &BackupOptions::default(), &mut legacy)
        .await
        .unwrap();
    assert_eq!(
        aggregated.list().await.unwrap(),
        legacy.list().await.unwrap()
    );
}
