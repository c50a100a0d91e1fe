//! Objects the tests create through the API: a small shop application with
//! a custom resource, valid on a real cluster too.

#![allow(dead_code)]

use serde_json::{Value, json};

pub fn namespace(name: &str, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "annotations": annotations}})
}

pub fn config_map(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns, "labels": labels},
        "data": {"app.properties": format!("name={name}\n")}})
}

pub fn secret(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "type": "Opaque",
        "data": {"password": "aHVudGVyMg=="}})
}

pub fn service(ns: &str, name: &str, node_port: Option<u16>) -> Value {
    let mut port = json!({"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"});
    let kind = if let Some(p) = node_port {
        port["nodePort"] = json!(p);
        "NodePort"
    } else {
        "ClusterIP"
    };
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"type": kind, "selector": {"app": name}, "ports": [port]}})
}

pub fn deployment(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]}}}})
}

/// `widgets.example.com`: namespaced, served in v1 (storage) and v1beta1.
pub fn widget_crd() -> Value {
    let schema = json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [
            {"name": "v1beta1", "served": true, "storage": false, "schema": schema},
            {"name": "v1", "served": true, "storage": true, "schema": schema, "subresources": {"status": {}}},
        ]}})
}

pub fn widget(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name, "namespace": ns},
        "spec": {"size": 3, "color": "blue"}})
}

/// Every recorded write (method, path) in order.
pub fn writes(server: &hokan_k8s::testserver::TestServer) -> Vec<(String, String, u16)> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| (r.method, r.path, r.status))
        .collect()
}

/// A new repository under `dir/repo` (password `pw`, a cheap key, no
/// cache: tests write nothing under the home directory), opened with its
/// index.
pub fn repository(dir: &std::path::Path) -> hokan_repo::IndexedRepository {
    use hokan_repo::{InitOptions, KdfParams, OpenOptions, Repository};
    let location = dir.join("repo");
    let location = location.to_str().unwrap();
    let init = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    let options = OpenOptions {
        cache: hokan_repo::CacheMode::Off,
        ..Default::default()
    };
    Repository::init(location, b"pw", init, options.clone()).unwrap();
    Repository::open(location, b"pw", options)
        .unwrap()
        .load_index()
        .unwrap()
}
