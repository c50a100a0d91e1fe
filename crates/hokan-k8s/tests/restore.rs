//! Restore planning and execution, asserted through the target server's
//! recorded requests (order, sanitizing, versions) and, where a test only
//! uses the API, through what the target then serves.

mod common;

use std::collections::BTreeMap;

use hokan_k8s::restore::{Action, VersionChoice};
use hokan_k8s::testserver::{TestCluster, TestServer};
use hokan_k8s::{
    BackupOptions, ExistingPolicy, ManifestDir, MemoryStore, ObjectSource, RestoreOptions, Target,
    backup, execute, plan,
};
use serde_json::{Value, json};

/// A shop: namespace with OpenShift's UID range, a CRD and two widgets,
/// config, a secret, two services, a deployment, a service account.
async fn shop_backup(source: &mut TestCluster) -> MemoryStore {
    let scc = json!({"openshift.io/sa.scc.uid-range": "1000650000/10000", "openshift.io/sa.scc.supplemental-groups": "1000650000/10000", "openshift.io/sa.scc.mcs": "s0:c26,c5"});
    source.create(common::namespace("shop", scc)).await.unwrap();
    source.create(common::widget_crd()).await.unwrap();
    source.create(common::widget("shop", "blue")).await.unwrap();
    source.create(common::widget("shop", "red")).await.unwrap();
    source
        .create(common::config_map("shop", "web", json!({"app": "web"})))
        .await
        .unwrap();
    source
        .create(common::secret("shop", "creds"))
        .await
        .unwrap();
    source
        .create(common::service("shop", "web", None))
        .await
        .unwrap();
    source
        .create(common::service("shop", "api", Some(30123)))
        .await
        .unwrap();
    source
        .create(common::deployment("shop", "web"))
        .await
        .unwrap();
    source.create(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "shop"}})).await.unwrap();
    let mut store = MemoryStore::new();
    let options = BackupOptions {
        include_namespaces: vec![source.namespace("shop")],
        ..Default::default()
    };
    backup(source.cluster(), &options, &mut store)
        .await
        .unwrap();
    store
}

fn mapping(from: &str, to: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(from.to_string(), to.to_string())])
}

#[tokio::test]
async fn a_shop_with_a_crd_is_restored_in_order_sanitized_and_in_the_right_versions() {
    let mut source = TestCluster::in_process().await.unwrap();
    let store = shop_backup(&mut source).await;
    let target = TestServer::start().await.unwrap();
    target.set_crd_establish_after(3);
    let cluster = target.cluster().unwrap();
    let options = RestoreOptions {
        namespace_mapping: mapping("shop", "shop-dr"),
        ..Default::default()
    };
    let discovery = cluster.discover().await.unwrap();
    let plan = plan(&store, Some(&discovery), &options).await.unwrap();
    println!("{plan}");
    target.clear_requests();
    let report = execute(&plan, &store, Target::Cluster(&cluster), &options)
        .await
        .unwrap();
    println!("{report}");
    assert_eq!(
        report.count(|a| *a == Action::Created),
        plan.steps.len(),
        "{report}"
    );

    let requests = target.requests();
    let posts: Vec<_> = requests.iter().filter(|r| r.method == "POST").collect();
    let order: Vec<&str> = posts.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        order,
        [
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            "/api/v1/namespaces",
            "/api/v1/namespaces/shop-dr/serviceaccounts",
            "/api/v1/namespaces/shop-dr/secrets",
            "/api/v1/namespaces/shop-dr/configmaps",
            "/api/v1/namespaces/shop-dr/services",
            "/api/v1/namespaces/shop-dr/services",
            "/apis/apps/v1/namespaces/shop-dr/deployments",
            "/apis/example.com/v1/namespaces/shop-dr/widgets",
            "/apis/example.com/v1/namespaces/shop-dr/widgets",
        ]
    );
    assert!(
        posts.iter().all(|r| r.status == 201),
        "{:?}",
        posts.iter().map(|r| r.line()).collect::<Vec<_>>()
    );
    // The CRD was polled until Established before the first namespaced object.
    let crd_post = requests
        .iter()
        .position(|r| r.path.ends_with("/customresourcedefinitions"))
        .unwrap();
    let ns_post = requests
        .iter()
        .position(|r| r.path == "/api/v1/namespaces" && r.method == "POST")
        .unwrap();
    let polls = requests[crd_post..ns_post]
        .iter()
        .filter(|r| {
            r.path
                .ends_with("/customresourcedefinitions/widgets.example.com")
        })
        .count();
    assert!(polls >= 3, "polled {polls} times");

    for post in &posts {
        let meta = &post.body.as_ref().unwrap()["metadata"];
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            assert!(meta.get(field).is_none(), "{} sent {field}", post.path);
        }
    }
    let body = |path: &str, name: &str| -> Value {
        posts
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.body.clone().unwrap())
            .find(|b| b["metadata"]["name"] == name)
            .unwrap()
    };
    let ns = body("/api/v1/namespaces", "shop-dr");
    assert_eq!(
        ns["metadata"]["annotations"]["openshift.io/sa.scc.uid-range"],
        "1000650000/10000"
    );
    let api = body("/api/v1/namespaces/shop-dr/services", "api");
    assert!(api["spec"].get("clusterIP").is_none() && api["spec"].get("clusterIPs").is_none());
    assert_eq!(
        api["spec"]["ports"][0]["nodePort"],
        Value::Null,
        "the node port the source picked is not sent"
    );
    let widget = body("/apis/example.com/v1/namespaces/shop-dr/widgets", "blue");
    assert_eq!(widget["apiVersion"], "example.com/v1");
    assert_eq!(widget["metadata"]["namespace"], "shop-dr");
    assert!(widget.get("status").is_none());
    let deploy = body("/apis/apps/v1/namespaces/shop-dr/deployments", "web");
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.k8s.io/pause:3.9"
    );

    let step = plan
        .steps
        .iter()
        .find(|s| s.entry.key.resource.resource == "widgets")
        .unwrap();
    assert_eq!(step.choice, VersionChoice::TargetPreferred);
    let svc = report.outcome("services shop-dr/api").unwrap();
    assert!(
        svc.sanitized
            .contains(&"spec.ports[0].nodePort".to_string()),
        "{:?}",
        svc.sanitized
    );
}

#[tokio::test]
async fn the_highest_common_version_is_chosen_when_neither_preferred_fits() {
    let mut source = TestCluster::in_process().await.unwrap();
    source.create(common::widget_crd()).await.unwrap();
    source.create(common::widget("shop", "blue")).await.unwrap();
    let mut store = MemoryStore::new();
    let options = BackupOptions {
        all_api_versions: true,
        include_namespaces: vec!["shop".into()],
        ..Default::default()
    };
    backup(source.cluster(), &options, &mut store)
        .await
        .unwrap();

    // The target serves widgets in v2 (preferred) and v1beta1, not v1.
    let target = TestServer::start().await.unwrap();
    let mut crd = common::widget_crd();
    crd["spec"]["versions"] = json!([
        {"name": "v2", "served": true, "storage": true, "schema": crd["spec"]["versions"][0]["schema"].clone()},
        {"name": "v1beta1", "served": true, "storage": false, "schema": crd["spec"]["versions"][0]["schema"].clone()},
    ]);
    target.seed([crd]).unwrap();
    let cluster = target.cluster().unwrap();
    let plan = plan(
        &store,
        Some(&cluster.discover().await.unwrap()),
        &RestoreOptions::default(),
    )
    .await
    .unwrap();
    let step = plan
        .steps
        .iter()
        .find(|s| s.entry.key.resource.resource == "widgets")
        .unwrap();
    assert_eq!(
        (step.entry.version.as_str(), step.choice),
        ("v1beta1", VersionChoice::HighestCommon)
    );
    let report = execute(
        &plan,
        &store,
        Target::Cluster(&cluster),
        &RestoreOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        report
            .outcome("customresourcedefinitions.apiextensions.k8s.io widgets.example.com")
            .unwrap()
            .action,
        Action::LeftAlone
    );
    let post = target
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.contains("/widgets"))
        .unwrap();
    assert_eq!(
        post.path,
        "/apis/example.com/v1beta1/namespaces/shop/widgets"
    );
    assert_eq!(post.body.unwrap()["apiVersion"], "example.com/v1beta1");
}

#[tokio::test]
async fn existing_objects_are_left_alone_or_updated_and_every_decision_reported() {
    // Restores into the source cluster itself under a mapped namespace, so
    // this runs on a real cluster too.
    let mut cluster = TestCluster::new().await.unwrap();
    cluster
        .create(common::config_map("app", "web", json!({"app": "web"})))
        .await
        .unwrap();
    cluster
        .create(common::config_map("app", "db", json!({"app": "db"})))
        .await
        .unwrap();
    let mut store = MemoryStore::new();
    let app = cluster.namespace("app");
    let copy = cluster.namespace("app-copy");
    backup(
        cluster.cluster(),
        &BackupOptions {
            include_namespaces: vec![app.clone()],
            ..Default::default()
        },
        &mut store,
    )
    .await
    .unwrap();
    let options = RestoreOptions {
        namespace_mapping: mapping(&app, &copy),
        ..Default::default()
    };
    let discovery = cluster.cluster().discover().await.unwrap();
    let the_plan = plan(&store, Some(&discovery), &options).await.unwrap();
    let first = execute(
        &the_plan,
        &store,
        Target::Cluster(cluster.cluster()),
        &options,
    )
    .await
    .unwrap();
    assert_eq!(first.count(|a| *a == Action::Created), 3, "{first}");

    // Someone edits one copy; a second restore leaves it alone and says so.
    let path = format!("/api/v1/namespaces/{copy}/configmaps/web");
    let mut edited = cluster.cluster().get(&path).await.unwrap().unwrap();
    edited["data"]["app.properties"] = json!("edited=true\n");
    cluster.cluster().replace(&path, &edited).await.unwrap();
    let second = execute(
        &the_plan,
        &store,
        Target::Cluster(cluster.cluster()),
        &options,
    )
    .await
    .unwrap();
    assert_eq!(
        second
            .outcome(&format!("configmaps {copy}/web"))
            .unwrap()
            .action,
        Action::LeftAlone,
        "{second}"
    );
    assert_eq!(
        second
            .outcome(&format!("configmaps {copy}/db"))
            .unwrap()
            .action,
        Action::Unchanged,
        "{second}"
    );
    let now = cluster.cluster().get(&path).await.unwrap().unwrap();
    assert_eq!(now["data"]["app.properties"], "edited=true\n");

    let update = RestoreOptions {
        existing: ExistingPolicy::Update,
        ..options.clone()
    };
    let third = execute(
        &the_plan,
        &store,
        Target::Cluster(cluster.cluster()),
        &update,
    )
    .await
    .unwrap();
    assert_eq!(
        third
            .outcome(&format!("configmaps {copy}/web"))
            .unwrap()
            .action,
        Action::Updated,
        "{third}"
    );
    let now = cluster.cluster().get(&path).await.unwrap().unwrap();
    assert_eq!(now["data"]["app.properties"], "name=web\n");
    assert_eq!(
        now["metadata"]["uid"], edited["metadata"]["uid"],
        "updated in place, not recreated"
    );
    if let Some(server) = cluster.server() {
        let put = server
            .requests()
            .into_iter()
            .rfind(|r| r.method == "PUT")
            .unwrap();
        assert_eq!(put.status, 200);
        assert_eq!(
            put.body.unwrap()["metadata"]["resourceVersion"],
            now_rv_before_update(&edited)
        );
    }
    cluster.cleanup().await.unwrap();
}

fn now_rv_before_update(edited: &Value) -> Value {
    // The edit's PUT gave the object a new resourceVersion: one more than
    // the one sent with it, in the test server's counter.
    let sent: u64 = edited["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    json!((sent + 1).to_string())
}

#[tokio::test]
async fn a_dry_run_writes_nothing_and_to_dir_writes_manifests_in_order() {
    let mut source = TestCluster::in_process().await.unwrap();
    let store = shop_backup(&mut source).await;
    let target = TestServer::start().await.unwrap();
    let cluster = target.cluster().unwrap();
    let options = RestoreOptions::default();
    let plan_for_cluster = plan(&store, Some(&cluster.discover().await.unwrap()), &options)
        .await
        .unwrap();
    target.clear_requests();
    let dry = execute(&plan_for_cluster, &store, Target::DryRun, &options)
        .await
        .unwrap();
    assert!(target.requests().is_empty(), "a dry run sends nothing");
    assert_eq!(
        dry.count(|a| *a == Action::WouldCreate),
        plan_for_cluster.steps.len()
    );
    assert!(dry.to_string().contains("sanitized: metadata.uid"), "{dry}");

    let dir = tempfile::tempdir().unwrap();
    let manifests = ManifestDir::new(dir.path());
    let offline = plan(&store, None, &options).await.unwrap();
    let report = execute(&offline, &store, Target::Dir(&manifests), &options)
        .await
        .unwrap();
    assert_eq!(
        report.count(|a| matches!(a, Action::Written(_))),
        offline.steps.len()
    );
    let order = std::fs::read_to_string(dir.path().join("restore-order.txt")).unwrap();
    let lines: Vec<&str> = order.lines().collect();
    assert!(lines[0].starts_with("apiextensions.k8s.io/customresourcedefinitions/"));
    assert!(lines[1].starts_with("core/namespaces/"));
    let svc: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("core/services/shop/api.json")).unwrap(),
    )
    .unwrap();
    assert!(svc["metadata"].get("uid").is_none() && svc["spec"].get("clusterIP").is_none());
    // The directory reads back as a source, one entry per manifest.
    assert_eq!(manifests.list().await.unwrap().len(), offline.steps.len());
}

#[tokio::test]
async fn status_is_restored_through_its_subresource_on_request() {
    let mut source = TestCluster::in_process().await.unwrap();
    source.create(common::widget_crd()).await.unwrap();
    source.create(common::widget("shop", "blue")).await.unwrap();
    let path = "/apis/example.com/v1/namespaces/shop/widgets/blue/status";
    let mut w = source
        .cluster()
        .get("/apis/example.com/v1/namespaces/shop/widgets/blue")
        .await
        .unwrap()
        .unwrap();
    w["status"] = json!({"ready": true});
    source.cluster().replace(path, &w).await.unwrap();
    let mut store = MemoryStore::new();
    backup(
        source.cluster(),
        &BackupOptions {
            include_namespaces: vec!["shop".into()],
            ..Default::default()
        },
        &mut store,
    )
    .await
    .unwrap();

    let target = TestServer::start().await.unwrap();
    let cluster = target.cluster().unwrap();
    let options = RestoreOptions {
        restore_status: vec!["widgets.example.com".into()],
        ..Default::default()
    };
    let plan = plan(&store, Some(&cluster.discover().await.unwrap()), &options)
        .await
        .unwrap();
    execute(&plan, &store, Target::Cluster(&cluster), &options)
        .await
        .unwrap();
    let status_put = target
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT" && r.path == path)
        .unwrap();
    assert_eq!(status_put.status, 200);
    assert_eq!(
        target
            .object("example.com", "widgets", Some("shop"), "blue")
            .unwrap()["status"],
        json!({"ready": true})
    );
    // Without the option the status stays behind.
    let plain = RestoreOptions::default();
    let target2 = TestServer::start().await.unwrap();
    let cluster2 = target2.cluster().unwrap();
    let plan2 = hokan_k8s::plan(&store, Some(&cluster2.discover().await.unwrap()), &plain)
        .await
        .unwrap();
    execute(&plan2, &store, Target::Cluster(&cluster2), &plain)
        .await
        .unwrap();
    assert!(
        target2
            .object("example.com", "widgets", Some("shop"), "blue")
            .unwrap()
            .get("status")
            .is_none()
    );
}

#[tokio::test]
async fn every_fixture_kind_restores_into_an_empty_cluster_or_is_left_out_with_a_reason() {
    let source = TestCluster::in_process().await.unwrap();
    source.server().unwrap().load_fixtures("fixtures").unwrap();
    let mut store = MemoryStore::new();
    backup(source.cluster(), &BackupOptions::default(), &mut store)
        .await
        .unwrap();
    let target = TestServer::start().await.unwrap();
    let cluster = target.cluster().unwrap();
    let options = RestoreOptions::default();
    let plan = plan(&store, Some(&cluster.discover().await.unwrap()), &options)
        .await
        .unwrap();
    let skipped: Vec<String> = plan
        .skipped
        .iter()
        .map(|s| s.key.resource.to_string())
        .collect();
    for never in [
        "nodes",
        "events",
        "leases.coordination.k8s.io",
        "csinodes.storage.k8s.io",
        "volumeattachments.storage.k8s.io",
    ] {
        assert!(
            skipped.contains(&never.to_string()),
            "{never} not skipped: {skipped:?}"
        );
    }
    let report = execute(&plan, &store, Target::Cluster(&cluster), &options)
        .await
        .unwrap();
    let failed: Vec<String> = report
        .outcomes
        .iter()
        .filter(|o| matches!(o.action, Action::Failed(_)))
        .map(|o| format!("{}: {}", o.target, o.action))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(report.count(|a| *a == Action::Created) > 40);
    // Fixtures point at owners that are not in the backup: the references go.
    let cm = target
        .object("", "configmaps", Some("fixtures"), "nameValue")
        .unwrap();
    assert!(cm["metadata"].get("ownerReferences").is_none());
}

#[tokio::test]
async fn custom_resources_fail_with_a_reason_when_their_crd_is_never_established() {
    let mut source = TestCluster::in_process().await.unwrap();
    source.create(common::widget_crd()).await.unwrap();
    source.create(common::widget("shop", "blue")).await.unwrap();
    source
        .create(common::config_map("shop", "web", json!({})))
        .await
        .unwrap();
    let mut store = MemoryStore::new();
    backup(
        source.cluster(),
        &BackupOptions {
            include_namespaces: vec!["shop".into()],
            ..Default::default()
        },
        &mut store,
    )
    .await
    .unwrap();

    let target = TestServer::start().await.unwrap();
    target.set_crd_establish_after(u32::MAX);
    let cluster = target.cluster().unwrap();
    let options = RestoreOptions {
        crd_timeout: std::time::Duration::from_millis(400),
        ..Default::default()
    };
    let plan = plan(&store, Some(&cluster.discover().await.unwrap()), &options)
        .await
        .unwrap();
    let report = execute(&plan, &store, Target::Cluster(&cluster), &options)
        .await
        .unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("widgets.example.com") && w.contains("Established")),
        "{report}"
    );
    let widget = report.outcome("widgets.example.com shop/blue").unwrap();
    assert!(
        matches!(&widget.action, Action::Failed(why) if why.contains("not Established")),
        "{report}"
    );
    assert_eq!(
        report.outcome("configmaps shop/web").unwrap().action,
        Action::Created,
        "the rest is restored"
    );
    assert!(
        !target
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.contains("/widgets")),
        "no custom resource was sent"
    );
}

#[tokio::test]
async fn owners_restored_after_their_dependents_are_linked_again_with_new_uids() {
    // Seeded, not created: on the test server no controller makes pods.
    let source = TestCluster::in_process().await.unwrap();
    let server = source.server().unwrap();
    server
        .seed([
            common::namespace("app", json!({})),
            common::deployment("app", "web"),
        ])
        .unwrap();
    let deploy_uid = server
        .object("apps", "deployments", Some("app"), "web")
        .unwrap()["metadata"]["uid"]
        .clone();
    let owner = |kind: &str, name: &str, uid: &Value| json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}]);
    let mut rs = common::deployment("app", "web-5d9f");
    rs["kind"] = json!("ReplicaSet");
    rs["metadata"]["ownerReferences"] = owner("Deployment", "web", &deploy_uid);
    server.seed([rs]).unwrap();
    let rs_uid = server
        .object("apps", "replicasets", Some("app"), "web-5d9f")
        .unwrap()["metadata"]["uid"]
        .clone();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-5d9f-abcde", "namespace": "app", "ownerReferences": owner("ReplicaSet", "web-5d9f", &rs_uid)},
        "spec": {"nodeName": "node-1", "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]}});
    let orphan = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "app", "ownerReferences": owner("Deployment", "gone", &json!("no-such-uid"))}});
    server.seed([pod, orphan]).unwrap();
    let mut store = MemoryStore::new();
    backup(source.cluster(), &BackupOptions::default(), &mut store)
        .await
        .unwrap();

    let target = TestServer::start().await.unwrap();
    let cluster = target.cluster().unwrap();
    let options = RestoreOptions::default();
    let plan = plan(&store, Some(&cluster.discover().await.unwrap()), &options)
        .await
        .unwrap();
    let report = execute(&plan, &store, Target::Cluster(&cluster), &options)
        .await
        .unwrap();
    let order: Vec<&str> = report.outcomes.iter().map(|o| o.target.as_str()).collect();
    assert_eq!(
        order,
        [
            "namespaces app",
            "configmaps app/cfg",
            "pods app/web-5d9f-abcde",
            "replicasets.apps app/web-5d9f",
            "deployments.apps app/web"
        ]
    );

    let new_deploy = target
        .object("apps", "deployments", Some("app"), "web")
        .unwrap();
    let new_rs = target
        .object("apps", "replicasets", Some("app"), "web-5d9f")
        .unwrap();
    let new_pod = target
        .object("", "pods", Some("app"), "web-5d9f-abcde")
        .unwrap();
    assert_eq!(
        new_rs["metadata"]["ownerReferences"][0]["uid"],
        new_deploy["metadata"]["uid"]
    );
    assert_eq!(
        new_pod["metadata"]["ownerReferences"][0]["uid"],
        new_rs["metadata"]["uid"]
    );
    assert_ne!(new_rs["metadata"]["uid"], rs_uid);
    assert!(new_pod["spec"].get("nodeName").is_none());
    let cfg = target.object("", "configmaps", Some("app"), "cfg").unwrap();
    assert!(
        cfg["metadata"].get("ownerReferences").is_none(),
        "its owner is not restored"
    );
    let pod_notes = &report.outcome("pods app/web-5d9f-abcde").unwrap().sanitized;
    assert!(
        pod_notes
            .iter()
            .any(|n| n == "ownerReferences[ReplicaSet web-5d9f] set to the restored owner"),
        "{pod_notes:?}"
    );
}

#[tokio::test]
async fn manifests_written_to_a_directory_carry_no_stale_owner_uids() {
    let source = TestCluster::in_process().await.unwrap();
    let server = source.server().unwrap();
    server
        .seed([
            common::namespace("app", json!({})),
            common::deployment("app", "web"),
        ])
        .unwrap();
    let uid = server
        .object("apps", "deployments", Some("app"), "web")
        .unwrap()["metadata"]["uid"]
        .clone();
    let mut rs = common::deployment("app", "web-1");
    rs["kind"] = json!("ReplicaSet");
    rs["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid, "controller": true}]);
    server.seed([rs]).unwrap();
    let mut store = MemoryStore::new();
    backup(source.cluster(), &BackupOptions::default(), &mut store)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifests = ManifestDir::new(dir.path());
    let options = RestoreOptions::default();
    let plan = plan(&store, None, &options).await.unwrap();
    let report = execute(&plan, &store, Target::Dir(&manifests), &options)
        .await
        .unwrap();
    let rs: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("apps/replicasets/app/web-1.json")).unwrap(),
    )
    .unwrap();
    assert!(rs["metadata"].get("ownerReferences").is_none());
    let notes = &report
        .outcome("replicasets.apps app/web-1")
        .unwrap()
        .sanitized;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("dropped: the owner gets a new uid")),
        "{notes:?}"
    );
}
