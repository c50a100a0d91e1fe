//! Watches as kube-rs's runtime uses them: events after a resourceVersion,
//! the current state first, selectors, bookmarks and the end of the initial
//! events, and `410 Expired` after which `kube::runtime::watcher` relists.
//! Run on the in-process server, or on a real cluster (HOKAN_TEST_KUBECONFIG)
//! except where a test must shrink the server's history.

mod common;

use futures::{StreamExt, TryStreamExt};
use hokan_k8s::testserver::TestCluster;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use serde_json::json;

fn config_map(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": app}}, "data": {"k": "v"}}),
    )
    .unwrap()
}

/// `ADDED b`, `DELETED a`...; bookmarks left out.
fn summary(events: &[WatchEvent<ConfigMap>]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Added(o) => Some(format!(
                "ADDED {}",
                o.metadata.name.as_deref().unwrap_or("")
            )),
            WatchEvent::Modified(o) => Some(format!(
                "MODIFIED {}",
                o.metadata.name.as_deref().unwrap_or("")
            )),
            WatchEvent::Deleted(o) => Some(format!(
                "DELETED {}",
                o.metadata.name.as_deref().unwrap_or("")
            )),
            WatchEvent::Bookmark(_) => None,
            WatchEvent::Error(e) => Some(format!("ERROR {} {}", e.code, e.reason)),
        })
        .collect()
}

async fn setup(test: &str) -> (TestCluster, Api<ConfigMap>, String) {
    let mut cluster = TestCluster::new().await.unwrap();
    cluster
        .create(common::config_map(test, "a", json!({"app": "web"})))
        .await
        .unwrap();
    let ns = cluster.namespace(test);
    let api = Api::namespaced(cluster.cluster().client().clone(), &ns);
    (cluster, api, ns)
}

#[tokio::test]
async fn a_watch_from_a_version_sends_the_changes_its_selector_sees() {
    let (mut cluster, api, _) = setup("watch-rv").await;
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let params = WatchParams::default().labels("app=web").timeout(5);
    let stream = api.watch(&params, &rv).await.unwrap();
    let pp = PostParams::default();
    api.create(&pp, &config_map("b", "web")).await.unwrap();
    api.create(&pp, &config_map("c", "db")).await.unwrap();
    let merge = |v| Patch::Merge(v);
    api.patch(
        "b",
        &PatchParams::default(),
        &merge(json!({"data": {"k": "w"}})),
    )
    .await
    .unwrap();
    // Leaving the selection is a deletion to this watch; entering it an addition.
    api.patch(
        "b",
        &PatchParams::default(),
        &merge(json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "c",
        &PatchParams::default(),
        &merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let events: Vec<_> = stream.take(5).try_collect().await.unwrap();
    assert_eq!(
        summary(&events),
        ["ADDED b", "MODIFIED b", "DELETED b", "ADDED c", "DELETED a"],
        "{events:?}"
    );
    // Every event's version is newer than the last.
    let versions: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                o.metadata.resource_version.as_ref()?.parse().ok()
            }
            _ => None,
        })
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    cluster.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_watch_from_now_starts_with_the_current_state_and_marks_its_end() {
    let (mut cluster, api, ns) = setup("watch-zero").await;
    api.create(&PostParams::default(), &config_map("b", "db"))
        .await
        .unwrap();

    // Legacy: no version, ADDED for what exists, then changes.
    let stream = api
        .watch(
            &WatchParams::default().fields("metadata.name=b").timeout(5),
            "0",
        )
        .await
        .unwrap();
    api.delete("b", &DeleteParams::default()).await.unwrap();
    let events: Vec<_> = stream.take(2).try_collect().await.unwrap();
    assert_eq!(summary(&events), ["ADDED b", "DELETED b"]);

    // Streaming list: the initial events end with an annotated bookmark.
    let params = WatchParams::streaming_lists().timeout(5);
    let mut stream = api.watch(&params, "0").await.unwrap().boxed();
    let first = stream.try_next().await.unwrap().unwrap();
    assert_eq!(summary(&[first]), ["ADDED a"]);
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Bookmark(b) => {
            assert_eq!(
                b.metadata
                    .annotations
                    .get("k8s.io/initial-events-end")
                    .map(String::as_str),
                Some("true")
            );
            assert!(!b.metadata.resource_version.is_empty());
        }
        other => panic!("expected the initial-events-end bookmark, got {other:?}"),
    }

    // Across namespaces, and the watch ends at its timeout (with a last
    // bookmark, which the real server may send or not).
    let all: Api<ConfigMap> = Api::all(cluster.cluster().client().clone());
    let params = WatchParams::default()
        .fields(&format!("metadata.namespace={ns}"))
        .timeout(1);
    let events: Vec<_> = all
        .watch(&params, "0")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(summary(&events), ["ADDED a"]);
    cluster.cleanup().await.unwrap();
}

#[tokio::test]
async fn an_expired_version_answers_410_and_the_watcher_relists() {
    let (mut cluster, api, _) = setup("watch-gone").await;
    let Some(server) = cluster.server() else {
        // A real server's history cannot be shrunk from a test.
        return;
    };
    server.set_watch_history(3);
    let old = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for i in 0..5 {
        api.create(&PostParams::default(), &config_map(&format!("x{i}"), "web"))
            .await
            .unwrap();
    }
    let events: Vec<_> = api
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    match events.as_slice() {
        [WatchEvent::Error(e)] => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
            assert!(
                e.message.contains("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected one 410 ERROR event, got {other:?}"),
    }

    // The runtime watcher: list, then (not polled while changes pile up
    // beyond the history) a watch from the listed version, which expires;
    // it relists and carries on with the changes after.
    let stream = watcher(api.clone(), watcher::Config::default().labels("app=web"));
    let mut stream = stream.boxed();
    let mut listed = Vec::new();
    loop {
        match stream.try_next().await.unwrap().unwrap() {
            watcher::Event::InitApply(o) => listed.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(listed.len(), 6);
    for i in 5..10 {
        api.create(&PostParams::default(), &config_map(&format!("x{i}"), "web"))
            .await
            .unwrap();
    }
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, watcher::Error::WatchError(ref s) if s.code == 410),
        "{err}"
    );
    let mut relisted = Vec::new();
    loop {
        match stream.try_next().await.unwrap().unwrap() {
            watcher::Event::InitApply(o) => relisted.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(relisted.len(), 11, "{relisted:?}");
    api.delete("x0", &DeleteParams::default()).await.unwrap();
    match stream.try_next().await.unwrap().unwrap() {
        watcher::Event::Delete(o) => assert_eq!(o.metadata.name.as_deref(), Some("x0")),
        other => panic!("expected the deletion after the relist, got {other:?}"),
    }
    let lists = server
        .requests()
        .iter()
        .filter(|r| {
            r.method == "GET" && r.path.ends_with("/configmaps") && !r.query.contains("watch=")
        })
        .count();
    assert!(lists >= 3, "the watcher relisted");
    cluster.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_watch_in_table_form_sends_one_row_tables_as_kubectl_get_w_asks() {
    let (mut cluster, api, ns) = setup("watch-table").await;
    let client = cluster.cluster().client().clone();
    let uri = format!("/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=5");
    let request = http::Request::get(uri)
        .header(
            http::header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())
        .unwrap();
    let mut events = client
        .request_events::<serde_json::Value>(request)
        .await
        .unwrap()
        .boxed();
    let first = events.try_next().await.unwrap().unwrap();
    let WatchEvent::Added(table) = first else {
        panic!("expected ADDED, got {first:?}");
    };
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["rows"][0]["cells"][0], "a");
    assert_eq!(table["columnDefinitions"][0]["name"], "Name");
    api.delete("a", &DeleteParams::default()).await.unwrap();
    match events.try_next().await.unwrap().unwrap() {
        WatchEvent::Deleted(t) => assert_eq!(t["rows"][0]["cells"][0], "a"),
        other => panic!("expected DELETED, got {other:?}"),
    }
    cluster.cleanup().await.unwrap();
}
