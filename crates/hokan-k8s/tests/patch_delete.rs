//! PATCH in its four formats, generation and the status subresource,
//! deletion with finalizers, propagation policies, preconditions and garbage
//! collection, and Events and Leases as an operator uses them: through
//! kube's client and runtime, on the in-process server or a real cluster
//! (HOKAN_TEST_KUBECONFIG).

mod common;

use hokan_k8s::testserver::TestCluster;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::Resource;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
    PostParams, Preconditions, PropagationPolicy,
};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};
use std::time::Duration;

/// Waits (30 s at most) for the object to be gone, as a garbage collector
/// or a namespace controller may take a moment; answers whether it went.
async fn gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: Clone + std::fmt::Debug + serde::de::DeserializeOwned + Resource + Send + Sync + 'static,
{
    let uid = match api.get(name).await {
        Ok(o) => o.meta().uid.clone().unwrap_or_default(),
        Err(kube::Error::Api(s)) if s.code == 404 => return true,
        Err(e) => panic!("get {name}: {e}"),
    };
    let deleted = await_condition(api.clone(), name, conditions::is_deleted(&uid));
    matches!(
        tokio::time::timeout(Duration::from_secs(30), deleted).await,
        Ok(Ok(_))
    )
}

fn code(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason),
        other => panic!("expected an API error, got {other}"),
    }
}

async fn widgets(cluster: &mut TestCluster, ns: &str) -> Api<DynamicObject> {
    let _ = cluster.create(common::widget_crd()).await;
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    Api::namespaced_with(cluster.cluster().client().clone(), ns, &ar)
}

fn generation(o: &DynamicObject) -> i64 {
    o.metadata.generation.unwrap_or_default()
}

#[tokio::test]
async fn patches_merge_as_their_format_says_and_count_generations() {
    let mut cluster = TestCluster::new().await.unwrap();
    cluster
        .create(common::deployment("patch", "web"))
        .await
        .unwrap();
    let ns = cluster.namespace("patch");
    let client = cluster.cluster().client().clone();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let pp = PatchParams::default();

    // Strategic: containers merge by name, a new one is added.
    let strategic = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "main", "env": [{"name": "A", "value": "1"}]},
        {"name": "side", "image": "registry.k8s.io/pause:3.9"},
    ]}}}});
    let d = deployments
        .patch("web", &pp, &Patch::Strategic(&strategic))
        .await
        .unwrap();
    let containers = d.spec.template.spec.unwrap().containers;
    assert_eq!(containers.len(), 2);
    assert_eq!(
        containers[0].image.as_deref(),
        Some("registry.k8s.io/pause:3.9")
    );
    assert_eq!(containers[0].env.as_ref().unwrap()[0].name, "A");
    assert_eq!(d.metadata.generation, Some(2));

    // JSON patch, and a merge patch, which replaces lists whole.
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]))
            .unwrap();
    let d = deployments
        .patch("web", &pp, &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(d.spec.replicas, Some(3));
    let bad: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/replicas", "value": 9}]))
            .unwrap();
    assert_eq!(
        code(
            deployments
                .patch("web", &pp, &Patch::<()>::Json(bad))
                .await
                .unwrap_err()
        )
        .0,
        422
    );
    let merge =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}}});
    let d = deployments
        .patch("web", &pp, &Patch::Merge(&merge))
        .await
        .unwrap();
    assert_eq!(d.spec.template.spec.unwrap().containers.len(), 1);

    // A stale resourceVersion in a patch is a precondition that fails.
    let stale = json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 1}});
    assert_eq!(
        code(
            deployments
                .patch("web", &pp, &Patch::Merge(&stale))
                .await
                .unwrap_err()
        )
        .0,
        409
    );

    // Dry runs are refused by the in-process server (a real one honours
    // them); either way nothing is written.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let would: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "dry"}})).unwrap();
    let _ = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&dry, &would)
        .await;
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), &ns)
            .get("dry")
            .await
            .is_err()
    );

    // Server-side apply: creates, then merges; a field manager is required.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}});
    let apply = PatchParams::apply("hokan-test").force();
    let cm = cms
        .patch("cfg", &apply, &Patch::Apply(&applied))
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["a"], "1");
    let more = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"b": "2"}});
    let cm = cms
        .patch("cfg", &apply, &Patch::Apply(&more))
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap().len(), 2);
    let no_manager = PatchParams::default();
    assert_eq!(
        code(
            cms.patch("cfg", &no_manager, &Patch::Apply(&more))
                .await
                .unwrap_err()
        )
        .0,
        422
    );

    // A custom resource: no strategic merge; status only through /status;
    // generation counts spec changes, not status or metadata.
    let widgets = widgets(&mut cluster, &ns).await;
    let w: DynamicObject = serde_json::from_value(common::widget(&ns, "w")).unwrap();
    let w = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(generation(&w), 1);
    let e = widgets
        .patch("w", &pp, &Patch::Strategic(json!({"spec": {"size": 4}})))
        .await
        .unwrap_err();
    assert_eq!(code(e).0, 415);
    let status = json!({"status": {"phase": "Ready"}, "spec": {"size": 100}});
    let w = widgets
        .patch_status("w", &pp, &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        (
            w.data["status"]["phase"].as_str(),
            w.data["spec"]["size"].as_i64()
        ),
        (Some("Ready"), Some(3))
    );
    assert_eq!(generation(&w), 1);
    let w = widgets
        .patch(
            "w",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}, "status": {"phase": "X"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        (generation(&w), w.data["status"]["phase"].as_str()),
        (1, Some("Ready"))
    );
    let w = widgets
        .patch("w", &pp, &Patch::Merge(json!({"spec": {"size": 5}})))
        .await
        .unwrap();
    assert_eq!(generation(&w), 2);
    let uid = w.metadata.uid.clone();
    let w = widgets
        .patch(
            "w",
            &pp,
            &Patch::Merge(json!({"metadata": {"uid": "changed"}})),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.uid, uid, "the server keeps its own fields");
    assert!(w.metadata.creation_timestamp.is_some());
    cluster.cleanup().await.unwrap();
}

fn owned(name: &str, owner: &ConfigMap, block: bool) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid,
        "blockOwnerDeletion": block,
    }]}})).unwrap()
}

#[tokio::test]
async fn finalizers_hold_objects_and_owners_take_their_dependents() {
    let mut cluster = TestCluster::new().await.unwrap();
    cluster
        .create(common::config_map("gc", "seed", json!({})))
        .await
        .unwrap();
    let ns = cluster.namespace("gc");
    let cms: Api<ConfigMap> = Api::namespaced(cluster.cluster().client().clone(), &ns);
    let pp = PostParams::default();
    let cm = |name: &str, extra: Value| -> ConfigMap {
        let mut v = json!({"metadata": {"name": name}});
        json_patch::merge(&mut v, &extra);
        serde_json::from_value(v).unwrap()
    };

    // A finalizer keeps the object, marked, until it is removed.
    cms.create(
        &pp,
        &cm(
            "held",
            json!({"metadata": {"finalizers": ["example.com/hold"]}}),
        ),
    )
    .await
    .unwrap();
    let marked = cms
        .delete("held", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    let more = json!({"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}});
    let e = cms
        .patch("held", &PatchParams::default(), &Patch::Merge(&more))
        .await
        .unwrap_err();
    assert_eq!(code(e).0, 422);
    let none = json!({"metadata": {"finalizers": null}});
    cms.patch("held", &PatchParams::default(), &Patch::Merge(&none))
        .await
        .unwrap();
    assert!(gone(&cms, "held").await);

    // Preconditions.
    let p = cms.create(&pp, &cm("pre", json!({}))).await.unwrap();
    let wrong_uid = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("nope".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        code(cms.delete("pre", &wrong_uid).await.unwrap_err()).0,
        409
    );
    let wrong_rv = DeleteParams {
        preconditions: Some(Preconditions {
            uid: None,
            resource_version: Some("1".into()),
        }),
        ..Default::default()
    };
    assert_eq!(code(cms.delete("pre", &wrong_rv).await.unwrap_err()).0, 409);
    let right = DeleteParams {
        preconditions: Some(Preconditions {
            uid: p.metadata.uid.clone(),
            resource_version: p.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    cms.delete("pre", &right).await.unwrap();

    // A collection, by label.
    for (name, app) in [("c1", "x"), ("c2", "x"), ("c3", "y")] {
        cms.create(
            &pp,
            &cm(name, json!({"metadata": {"labels": {"app": app}}})),
        )
        .await
        .unwrap();
    }
    let lp = kube::api::ListParams::default().labels("app=x");
    cms.delete_collection(&DeleteParams::default(), &lp)
        .await
        .unwrap();
    assert!(gone(&cms, "c1").await && gone(&cms, "c2").await);
    assert!(cms.get("c3").await.is_ok());

    // Background (the default): dependents go with their owner.
    let owner = cms.create(&pp, &cm("owner", json!({}))).await.unwrap();
    cms.create(&pp, &owned("dep1", &owner, false))
        .await
        .unwrap();
    cms.create(&pp, &owned("dep2", &owner, true)).await.unwrap();
    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    for name in ["owner", "dep1", "dep2"] {
        assert!(gone(&cms, name).await, "{name}");
    }

    // Orphan: dependents stay, without the reference.
    let owner = cms.create(&pp, &cm("owner", json!({}))).await.unwrap();
    cms.create(&pp, &owned("kept", &owner, true)).await.unwrap();
    cms.delete("owner", &DeleteParams::orphan()).await.unwrap();
    assert!(gone(&cms, "owner").await);
    assert!(
        cms.get("kept")
            .await
            .unwrap()
            .metadata
            .owner_references
            .is_none()
    );

    // Foreground: the owner waits for a blocking dependent's finalizer.
    let owner = cms.create(&pp, &cm("owner", json!({}))).await.unwrap();
    let mut blocker = owned("blocker", &owner, true);
    blocker.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&pp, &blocker).await.unwrap();
    let fg = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    };
    let owner = cms.delete("owner", &fg).await.unwrap().left().unwrap();
    assert_eq!(
        owner.metadata.finalizers.as_deref(),
        Some(&["foregroundDeletion".to_string()][..])
    );
    assert!(
        cms.get("blocker")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    assert!(cms.get("owner").await.is_ok());
    cms.patch("blocker", &PatchParams::default(), &Patch::Merge(&none))
        .await
        .unwrap();
    assert!(gone(&cms, "blocker").await);
    assert!(gone(&cms, "owner").await);
    cluster.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_namespace_terminates_until_its_objects_are_gone() {
    let mut cluster = TestCluster::new().await.unwrap();
    cluster
        .create(common::config_map("term", "plain", json!({})))
        .await
        .unwrap();
    let ns = cluster.namespace("term");
    let client = cluster.cluster().client().clone();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let held: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &held).await.unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    let terminating = namespaces.get(&ns).await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let late: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap();
    let e = cms.create(&PostParams::default(), &late).await.unwrap_err();
    assert_eq!(code(e), (403, "Forbidden".to_string()));
    // The namespace controller deletes what is in it, in the background.
    assert!(gone(&cms, "plain").await);
    let held = cms.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(
        namespaces.get(&ns).await.is_ok(),
        "held by its object's finalizer"
    );
    let none = json!({"metadata": {"finalizers": null}});
    cms.patch("held", &PatchParams::default(), &Patch::Merge(&none))
        .await
        .unwrap();
    assert!(gone(&namespaces, &ns).await);
}

#[tokio::test]
async fn events_and_leases_work_as_an_operator_uses_them() {
    let mut cluster = TestCluster::new().await.unwrap();
    let cm = cluster
        .create(common::config_map("ops", "subject", json!({})))
        .await
        .unwrap();
    let ns = cluster.namespace("ops");
    let client = cluster.cluster().client().clone();

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "hokan-test".into(),
            instance: None,
        },
    );
    let cm: ConfigMap = serde_json::from_value(cm).unwrap();
    let reference: ObjectReference = cm.object_ref(&());
    let event = Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("a note".into()),
        action: "Test".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();
    // The same event again is a series: a merge patch of the first.
    recorder.publish(&event, &reference).await.unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let list = events.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(list.items[0].reason.as_deref(), Some("Tested"));
    // They are core Events too, found as `kubectl describe` looks for them.
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns);
    let by_subject = kube::api::ListParams::default()
        .fields("involvedObject.kind=ConfigMap,involvedObject.name=subject");
    let found = core.list(&by_subject).await.unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].message.as_deref(), Some("a note"));
    assert_eq!(found.items[0].involved_object.uid, cm.metadata.uid);

    // Leader election: two candidates update the Lease from the same version.
    let leases: Api<Lease> = Api::namespaced(client, &ns);
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "hokan-operator"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}))
    .unwrap();
    let lease = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut mine = lease.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let mut theirs = lease.clone();
    theirs.spec.as_mut().unwrap().holder_identity = Some("c".into());
    leases
        .replace("hokan-operator", &PostParams::default(), &mine)
        .await
        .unwrap();
    let e = leases
        .replace("hokan-operator", &PostParams::default(), &theirs)
        .await
        .unwrap_err();
    assert_eq!(code(e), (409, "Conflict".to_string()));
    let now = leases.get("hokan-operator").await.unwrap();
    assert_eq!(now.spec.unwrap().holder_identity.as_deref(), Some("b"));
    cluster.cleanup().await.unwrap();
}
