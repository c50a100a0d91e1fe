//! The Restore reconcile on the test server: a namespace's resources
//! backed up into a real repository, then restored by Restore resources
//! into a second cluster (reached with a kubeconfig Secret) under another
//! namespace, in Velero's order; an existing object left alone, then
//! updated, by the existing-object policy; a volume restore from a Backup
//! without volumes refused. The operator's cluster may be a real one given
//! `HOKAN_TEST_KUBECONFIG`; the target is always a second in-process server.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use hokan_k8s::testserver::{TestCluster, TestServer};
use hokan_operator::api::common::{KubeconfigRef, ResourceFilter, SecretKeyRef};
use hokan_operator::api::policy::ResourceSource;
use hokan_operator::api::restore::{
    ExistingResourcePolicy, ResourceRestore, Restore, RestoreSpec, VolumeRestore,
};
use hokan_operator::api::{Phase, RestoreStatus};
use hokan_operator::clock::ManualClock;
use hokan_operator::http::Endpoints;
use hokan_operator::reconcile::{Context, restore};
use hokan_operator::work::backup_resources;
use hokan_repo::{CacheMode, InitOptions, KdfParams, OpenOptions, Repository};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn open_options() -> OpenOptions {
    OpenOptions {
        cache: CacheMode::Off,
        ..Default::default()
    }
}

/// Creates `r` in `ns`, reconciles it once and returns its status.
async fn run(ctx: &Arc<Context>, ns: &str, r: Restore) -> RestoreStatus {
    let api: Api<Restore> = Api::namespaced(ctx.client.clone(), ns);
    let created = api.create(&PostParams::default(), &r).await.unwrap();
    restore::reconcile(Arc::new(created), ctx.clone())
        .await
        .unwrap();
    let name = r.metadata.name.clone().unwrap();
    api.get(&name).await.unwrap().status.unwrap_or_default()
}

fn to_target(ns: &str, existing: ExistingResourcePolicy) -> ResourceRestore {
    ResourceRestore {
        filter: ResourceFilter {
            included_namespaces: vec![ns.to_string()],
            ..Default::default()
        },
        namespace_mapping: [(ns.to_string(), "shop-dr".to_string())].into(),
        existing_resource_policy: existing,
        target_cluster: Some(KubeconfigRef {
            secret_ref: SecretKeyRef {
                name: "dr-kubeconfig".into(),
                key: "kubeconfig".into(),
            },
            context: Some("dr".into()),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_restored_into_another_cluster_under_a_mapped_namespace() {
    let mut tc = TestCluster::new().await.unwrap();
    for (_, crd) in hokan_operator::api::crds() {
        tc.create(serde_json::to_value(&crd).unwrap())
            .await
            .unwrap();
    }
    tc.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops"}}))
        .await
        .unwrap();
    let ops = tc.namespace("ops");
    let shop = tc.namespace("shop");
    // What is backed up: objects of several kinds, so the order shows.
    for i in 0..3 {
        tc.create(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i}"), "namespace": "shop"},
            "data": {"i": i.to_string()}
        }))
        .await
        .unwrap();
    }
    tc.create(json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "web", "namespace": "shop"}}))
        .await
        .unwrap();
    tc.create(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"}, "stringData": {"pw": "s3cret"}}))
        .await
        .unwrap();

    // The snapshot, made with the library as a Backup's run makes it.
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("repo").to_str().unwrap().to_string();
    let init = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    Repository::init(&loc, b"pw", init, open_options()).unwrap();
    let mut handle = tokio::task::block_in_place(|| {
        Repository::open(&loc, b"pw", open_options())
            .unwrap()
            .load_index()
            .unwrap()
    });
    let source = ResourceSource {
        filter: ResourceFilter {
            included_namespaces: vec![shop.clone()],
            ..Default::default()
        },
        ..Default::default()
    };
    let saved = backup_resources(tc.cluster(), &mut handle, &source, "shop-now")
        .await
        .unwrap();
    let snapshot_id = saved.snapshots[0].id.clone();

    // The operator's view: the repository, its password, a finished
    // Backup naming the snapshot, the target's kubeconfig.
    let target = TestServer::start().await.unwrap();
    let kubeconfig = dir.path().join("dr.kubeconfig");
    target.write_kubeconfig(&kubeconfig, "dr").unwrap();
    let kubeconfig = std::fs::read_to_string(&kubeconfig).unwrap();
    for (name, key, value) in [
        ("repo-password", "password", "pw".to_string()),
        ("dr-kubeconfig", "kubeconfig", kubeconfig),
    ] {
        // As `data` (base64), which every server stores as given.
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ops".into()),
                ..Default::default()
            },
            data: Some([(key.to_string(), ByteString(value.into_bytes()))].into()),
            ..Default::default()
        };
        tc.create(serde_json::to_value(&secret).unwrap())
            .await
            .unwrap();
    }
    tc.create(json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Repository",
        "metadata": {"name": "main", "namespace": "ops"},
        "spec": {"location": loc, "passwordSecretRef": {"name": "repo-password", "key": "password"}}}))
        .await
        .unwrap();
    tc.create(json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Backup",
        "metadata": {"name": "shop-now", "namespace": "ops"},
        "spec": {"repository": "main"}}))
        .await
        .unwrap();
    let backups: Api<hokan_operator::api::Backup> =
        Api::namespaced(tc.cluster().client().clone(), &ops);
    let status = json!({"status": {"phase": "Completed",
        "snapshots": [{"id": snapshot_id, "kind": "k8s"}]}});
    backups
        .patch_status("shop-now", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();

    let ctx = Arc::new(Context {
        client: tc.cluster().client().clone(),
        clock: Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 12, 7, 3, 0, 0).unwrap(),
        )),
        endpoints: Endpoints::default(),
        open_options: open_options(),
        image: "localhost/hokan:test".into(),
        job_retries: 0,
        failures: Default::default(),
    });

    // 1. Into the other cluster, shop → shop-dr.
    let mut r = Restore::new(
        "shop-to-dr",
        RestoreSpec {
            backup_name: Some("shop-now".into()),
            resources: Some(to_target(&shop, ExistingResourcePolicy::None)),
            ..Default::default()
        },
    );
    r.metadata.namespace = Some(ops.clone());
    let st = run(&ctx, &ops, r).await;
    assert_eq!(st.phase, Phase::Completed, "{st:?}");
    assert_eq!(st.source.as_ref().unwrap().id, snapshot_id);
    assert_eq!(st.snapshot.as_deref(), Some(&snapshot_id[..8]));
    let objects = st.figures.as_ref().unwrap().objects;
    assert!(objects >= 6, "namespace, 3 configmaps, sa, secret: {st:?}");
    assert!(st.start_timestamp.is_some() && st.completion_timestamp.is_some());
    let complete = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Complete")
        .unwrap();
    assert_eq!(
        (complete.status.as_str(), complete.reason.as_str()),
        ("True", "Completed")
    );

    // The objects are in the target, under the mapped namespace, and the
    // source cluster has no shop-dr.
    let cm = target
        .object("", "configmaps", Some("shop-dr"), "cm-1")
        .unwrap();
    assert_eq!(cm["data"]["i"], "1");
    assert!(
        target
            .object("", "secrets", Some("shop-dr"), "db")
            .is_some()
    );
    // Velero's order: the namespace, then service accounts, then secrets
    // and config maps.
    let posts: Vec<String> = target
        .requests()
        .into_iter()
        .filter(|q| q.method == "POST" && q.status == 201)
        .map(|q| q.path)
        .collect();
    let first = |what: &str| {
        posts
            .iter()
            .position(|p| p.ends_with(what) || p.contains(&format!("/{what}")))
            .unwrap_or_else(|| panic!("no POST of {what} in {posts:?}"))
    };
    assert!(
        first("/api/v1/namespaces") < first("serviceaccounts"),
        "{posts:?}"
    );
    assert!(first("serviceaccounts") < first("secrets"), "{posts:?}");
    assert!(first("secrets") < first("configmaps"), "{posts:?}");

    // 2. An object changed in the target is left alone by policy None…
    let dr = target.cluster().unwrap();
    let changed = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm-1", "namespace": "shop-dr"}, "data": {"i": "changed"}});
    dr.replace(
        "/api/v1/namespaces/shop-dr/configmaps/cm-1",
        &merge_rv(&cm, changed),
    )
    .await
    .unwrap();
    let mut again = Restore::new(
        "shop-to-dr-again",
        RestoreSpec {
            snapshot_id: Some("latest".into()),
            repository: Some("main".into()),
            resources: Some(to_target(&shop, ExistingResourcePolicy::None)),
            ..Default::default()
        },
    );
    again.metadata.namespace = Some(ops.clone());
    let st = run(&ctx, &ops, again).await;
    assert_eq!(st.phase, Phase::Completed, "{st:?}");
    assert_eq!(
        st.source.as_ref().unwrap().id,
        snapshot_id,
        "latest resolved"
    );
    assert_eq!(st.warning_count, 1, "{st:?}");
    let cm = target
        .object("", "configmaps", Some("shop-dr"), "cm-1")
        .unwrap();
    assert_eq!(cm["data"]["i"], "changed");

    // …and brought back by policy Update.
    let mut update = Restore::new(
        "shop-to-dr-update",
        RestoreSpec {
            backup_name: Some("shop-now".into()),
            resources: Some(to_target(&shop, ExistingResourcePolicy::Update)),
            ..Default::default()
        },
    );
    update.metadata.namespace = Some(ops.clone());
    let st = run(&ctx, &ops, update).await;
    assert_eq!(st.phase, Phase::Completed, "{st:?}");
    assert_eq!(st.warning_count, 0, "{st:?}");
    let cm = target
        .object("", "configmaps", Some("shop-dr"), "cm-1")
        .unwrap();
    assert_eq!(cm["data"]["i"], "1");

    // 3. A volume restore from a Backup that saved no volume fails, saying so.
    let mut vol = Restore::new(
        "a-volume",
        RestoreSpec {
            backup_name: Some("shop-now".into()),
            volume: Some(VolumeRestore {
                claim_name: "data".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    vol.metadata.namespace = Some(ops.clone());
    let st = run(&ctx, &ops, vol).await;
    assert_eq!(st.phase, Phase::Failed);
    assert!(
        st.failure_reason
            .as_deref()
            .unwrap()
            .contains("saved no volume snapshot"),
        "{st:?}"
    );

    // 4. A Restore naming a missing Backup fails with the reason.
    let mut missing = Restore::new(
        "no-backup",
        RestoreSpec {
            backup_name: Some("nope".into()),
            resources: Some(to_target(&shop, ExistingResourcePolicy::None)),
            ..Default::default()
        },
    );
    missing.metadata.namespace = Some(ops.clone());
    let st = run(&ctx, &ops, missing).await;
    assert_eq!(st.phase, Phase::Failed);
    assert!(
        st.failure_reason
            .as_deref()
            .unwrap()
            .contains("Backup nope does not exist")
    );
    tc.cleanup().await.unwrap();
}

/// `changed` with `current`'s resourceVersion, for a replace.
fn merge_rv(current: &Value, mut changed: Value) -> Value {
    changed["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    changed
}
