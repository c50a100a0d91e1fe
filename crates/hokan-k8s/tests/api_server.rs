//! The API server's answers this crate relies on. Run on the in-process
//! server by default and unchanged on a real cluster (HOKAN_TEST_KUBECONFIG),
//! so the test server is held to the real one's behaviour.

mod common;

use hokan_k8s::testserver::{TestCluster, TestServer};
use hokan_k8s::{Cluster, ConnectOptions, Error};
use serde_json::json;

fn api_error(e: &Error) -> (u16, String) {
    match e {
        Error::Api { code, reason, .. } => (*code, reason.clone()),
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn creates_conflicts_and_not_found_answer_as_the_real_server() {
    let mut cluster = TestCluster::new().await.unwrap();
    let created = cluster
        .create(common::config_map("api", "web", json!({"app": "web"})))
        .await
        .unwrap();
    let ns = cluster.namespace("api");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    assert!(
        !uid.is_empty()
            && created["metadata"]["resourceVersion"]
                .as_str()
                .is_some_and(|v| !v.is_empty())
    );
    let c = cluster.cluster();
    let collection = format!("/api/v1/namespaces/{ns}/configmaps");
    let item = format!("{collection}/web");

    let err = c
        .create(&collection, &common::config_map(&ns, "web", json!({})))
        .await
        .unwrap_err();
    assert_eq!(api_error(&err), (409, "AlreadyExists".into()));
    assert!(err.to_string().contains("already exists"), "{err}");

    let mut stale = created.clone();
    stale["data"] = json!({"a": "1"});
    let fresh = c.replace(&item, &stale).await.unwrap();
    assert_ne!(
        fresh["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    assert_eq!(fresh["metadata"]["uid"], uid.as_str());
    let err = c.replace(&item, &stale).await.unwrap_err();
    assert_eq!(api_error(&err), (409, "Conflict".into()));
    assert!(err.to_string().contains("read it again and retry"), "{err}");

    let mut no_rv = fresh.clone();
    no_rv["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let err = c.replace(&item, &no_rv).await.unwrap_err();
    assert_eq!(api_error(&err), (422, "Invalid".into()));

    assert!(
        c.get(&format!("{collection}/absent"))
            .await
            .unwrap()
            .is_none()
    );
    let err = c.delete(&format!("{collection}/absent")).await.unwrap_err();
    assert!(err.is_not_found());

    let missing_ns = cluster.namespace("no-such-namespace");
    let err = c
        .create(
            &format!("/api/v1/namespaces/{missing_ns}/configmaps"),
            &common::config_map(&missing_ns, "x", json!({})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(&err), (404, "NotFound".into()));
    assert!(err.to_string().contains("namespaces"), "{err}");

    // A resource that does not exist is a 404, not an empty list.
    let err = c
        .list_page("/apis/example.invalid/v1/gizmos", None, None, 10)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    c.delete(&item).await.unwrap();
    assert!(c.get(&item).await.unwrap().is_none());
    cluster.cleanup().await.unwrap();
}

#[tokio::test]
async fn lists_page_with_continue_tokens_and_select_by_label() {
    let mut cluster = TestCluster::new().await.unwrap();
    for i in 0..7 {
        let tier = if i % 2 == 0 { "web" } else { "db" };
        cluster
            .create(common::config_map(
                "paging",
                &format!("cm-{i}"),
                json!({"tier": tier}),
            ))
            .await
            .unwrap();
    }
    let ns = cluster.namespace("paging");
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    let c = cluster.cluster();
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = c
            .list_page(&path, Some("tier"), token.as_deref(), 3)
            .await
            .unwrap();
        assert!(!page.resource_version.is_empty());
        assert!(page.items.len() <= 3);
        pages += 1;
        for item in &page.items {
            let v: serde_json::Value = serde_json::from_str(item.get()).unwrap();
            names.push(v["metadata"]["name"].as_str().unwrap().to_string());
        }
        match page.continue_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
    let web = c
        .list_page(&path, Some("tier=web"), None, 500)
        .await
        .unwrap();
    assert_eq!(web.items.len(), 4);
    let notin = c
        .list_page(&path, Some("tier notin (web)"), None, 500)
        .await
        .unwrap();
    assert_eq!(notin.items.len(), 3);
    let err = c
        .list_page(&path, None, Some("garbage"), 3)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Api {
                code: 400 | 410,
                ..
            }
        ),
        "{err}"
    );
    cluster.cleanup().await.unwrap();
}

#[tokio::test]
async fn kubeconfig_contexts_are_honoured_and_bad_ones_explained() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kubeconfig");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: down\n\
         clusters:\n- name: test\n  cluster:\n    server: {}\n- name: gone\n  cluster:\n    server: http://{closed}\n\
         users:\n- name: me\n  user:\n    token: abc\n\
         contexts:\n- name: test\n  context:\n    cluster: test\n    user: me\n- name: down\n  context:\n    cluster: gone\n    user: me\n",
        server.url()
    );
    std::fs::write(&file, kubeconfig).unwrap();

    let options = ConnectOptions {
        kubeconfig: Some(file.clone()),
        context: Some("test".into()),
    };
    let cluster = Cluster::connect(&options).await.unwrap();
    assert_eq!(cluster.identity(), "test");
    assert!(cluster.discover().await.unwrap().group("apps").is_some());

    // The current context points at a closed port.
    let down = Cluster::connect(&ConnectOptions {
        kubeconfig: Some(file.clone()),
        context: None,
    })
    .await
    .unwrap();
    assert_eq!(down.identity(), "down");
    let err = down.discover().await.unwrap_err();
    assert!(
        matches!(err, Error::Unreachable { .. }) && err.is_transient(),
        "{err}"
    );
    assert!(
        err.to_string().contains("check the server address"),
        "{err}"
    );

    let err = Cluster::connect(&ConnectOptions {
        kubeconfig: Some(file),
        context: Some("nope".into()),
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(err.to_string().contains("get-contexts"), "{err}");
    let err = Cluster::connect(&ConnectOptions {
        kubeconfig: Some(dir.path().join("missing")),
        context: None,
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(
        err.to_string().contains("readable kubeconfig file"),
        "{err}"
    );
}
