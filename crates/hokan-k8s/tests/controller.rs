//! A `kube::runtime::Controller` reconciling against the server as an
//! operator does: it watches its objects and the ones it owns, creates a
//! child by server-side apply with an owner reference, writes the parent's
//! status, recreates a child deleted under it, and the garbage collector
//! takes the child with its parent. On the in-process server or a real
//! cluster (HOKAN_TEST_KUBECONFIG).

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hokan_k8s::testserver::TestCluster;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

struct Ctx {
    client: kube::Client,
}

#[derive(Debug)]
struct Failed(kube::Error);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reconcile failed: {}", self.0)
    }
}

impl std::error::Error for Failed {}

/// Applies `<parent>-child`, owned by the parent, and records it in the
/// parent's data (config maps have no status; the write is the same kind
/// of merge patch an operator's status update is).
async fn reconcile(parent: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, Failed> {
    let ns = parent.namespace().unwrap_or_default();
    // Objects read from the server always have a uid.
    let Some(owner) = parent.controller_owner_ref(&()) else {
        return Ok(Action::requeue(Duration::from_millis(200)));
    };
    let child = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{}-child", parent.name_any()), "ownerReferences": [owner]},
        "data": {"from": "cGFyZW50"},
    });
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let apply = PatchParams::apply("hokan-test-controller").force();
    let name = format!("{}-child", parent.name_any());
    secrets
        .patch(&name, &apply, &Patch::Apply(&child))
        .await
        .map_err(Failed)?;
    let parents: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let status = json!({"data": {"child": name}});
    parents
        .patch(
            &parent.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .map_err(Failed)?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<ConfigMap>, _: &Failed, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 30 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_reconciles_owns_and_its_children_are_collected() {
    let mut cluster = TestCluster::new().await.unwrap();
    cluster
        .create(common::config_map(
            "ctl",
            "parent",
            json!({"app": "parent"}),
        ))
        .await
        .unwrap();
    let ns = cluster.namespace("ctl");
    let client = cluster.cluster().client().clone();
    let parents: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);

    let controller = Controller::new(
        parents.clone(),
        watcher::Config::default().labels("app=parent"),
    )
    .owns(secrets.clone(), watcher::Config::default())
    .run(
        reconcile,
        error_policy,
        Arc::new(Ctx {
            client: client.clone(),
        }),
    )
    .for_each(|_| async {});
    let running = tokio::spawn(controller);

    let exists = |o: Option<&Secret>| o.is_some();
    within(
        "the child's creation",
        await_condition(secrets.clone(), "parent-child", exists),
    )
    .await
    .unwrap();
    let recorded = |o: Option<&ConfigMap>| {
        o.and_then(|o| o.data.as_ref())
            .is_some_and(|d| d.contains_key("child"))
    };
    within(
        "the parent's record",
        await_condition(parents.clone(), "parent", recorded),
    )
    .await
    .unwrap();
    let child = secrets.get("parent-child").await.unwrap();
    let parent = parents.get("parent").await.unwrap();
    let owner = &child.owner_references()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        (parent.uid().unwrap().as_str(), Some(true))
    );

    // A child deleted under the controller comes back (it owns children).
    secrets
        .delete("parent-child", &DeleteParams::default())
        .await
        .unwrap();
    let old_uid = child.uid().unwrap();
    let replaced =
        move |o: Option<&Secret>| o.is_some_and(|o| o.uid().as_deref() != Some(old_uid.as_str()));
    within(
        "the child's recreation",
        await_condition(secrets.clone(), "parent-child", replaced),
    )
    .await
    .unwrap();

    // The parent's deletion takes its child.
    running.abort();
    let child_uid = secrets.get("parent-child").await.unwrap().uid().unwrap();
    parents
        .delete("parent", &DeleteParams::default())
        .await
        .unwrap();
    within(
        "the child's collection",
        await_condition(
            secrets.clone(),
            "parent-child",
            conditions::is_deleted(&child_uid),
        ),
    )
    .await
    .unwrap();
    cluster.cleanup().await.unwrap();
}
