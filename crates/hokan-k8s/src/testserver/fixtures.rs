//! Objects for the test server: Kubernetes' API fixtures
//! (`api-testdata/<group>.<version>.<Kind>.json`) and generated applications.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::state::State;
use crate::discovery::{Discovery, ResourceInfo};
use crate::object::split_api_version;
use crate::{Error, Result};

/// What [`super::TestServer::load_fixtures`] loaded.
#[derive(Clone, Debug, Default)]
pub struct FixtureReport {
    /// `resource.group` → the version its fixture was loaded in.
    pub loaded: BTreeMap<String, String>,
    /// Fixture files of kinds the server does not serve (review objects,
    /// options, versions the discovery document no longer lists).
    pub not_served: Vec<String>,
}

/// The resource an object belongs to, by its `apiVersion` and `kind`.
pub fn resource_of(discovery: &Discovery, object: &Value) -> Result<ResourceInfo> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = split_api_version(api_version);
    discovery
        .resources
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
        .cloned()
        .ok_or_else(|| {
            Error::bad_object(
                format!("{api_version} {kind}"),
                "the test server does not serve this kind",
            )
        })
}

pub fn load(state: &mut State, data: &Path, namespace: &str) -> Result<FixtureReport> {
    let dir = data.join("api-testdata");
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))?;
    let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    // Per resource, the fixture in the most preferred served version.
    let mut chosen: BTreeMap<String, (usize, ResourceInfo, Value)> = BTreeMap::new();
    let mut report = FixtureReport::default();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| Error::io("read", &file, e))?;
        let object: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::bad_object(file.display().to_string(), e))?;
        let Ok(r) = resource_of(&state.discovery, &object) else {
            report.not_served.push(
                file.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
            continue;
        };
        if !r.supports(&["create", "get"]) || object.get("metadata").is_none() {
            report.not_served.push(
                file.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
            continue;
        }
        let rank = state
            .discovery
            .versions_of(&r.group_resource())
            .iter()
            .position(|v| *v == r.version)
            .unwrap_or(usize::MAX);
        let key = r.group_resource().to_string();
        if chosen.get(&key).is_none_or(|(best, _, _)| rank < *best) {
            chosen.insert(key, (rank, r, object));
        }
    }
    let ns_resource = state
        .discovery
        .preferred(&crate::GroupResource::new("", "namespaces"))
        .cloned();
    if let Some(ns_r) = ns_resource
        && !state.namespace_exists(namespace)
    {
        state.seed(&ns_r, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
    }
    for (key, (_, r, mut object)) in chosen {
        if r.namespaced {
            object["metadata"]["namespace"] = json!(namespace);
        }
        state.seed(&r, object);
        report.loaded.insert(key, r.version.clone());
    }
    Ok(report)
}

/// The shape of generated data.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// How many objects in all (namespaces not counted).
    pub objects: usize,
    /// How many namespaces (`bench-000`, …) to spread them over.
    pub namespaces: usize,
    /// Changes every generated value, so two generations differ.
    pub seed: u64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            objects: 1000,
            namespaces: 10,
            seed: 1,
        }
    }
}

/// Generates applications: per namespace a repeating mix of 30% config
/// maps, 20% secrets, 10% services, 10% deployments, 10% replica sets, 15%
/// pods and 5% service accounts, each 1–4 KiB of JSON with managed fields
/// and status, as a real cluster's objects are.
pub fn generate(state: &mut State, options: &GenerateOptions) -> usize {
    let namespaces = options.namespaces.max(1);
    let resource = |state: &State, group: &str, resource: &str| {
        state
            .discovery
            .preferred(&crate::GroupResource::new(group, resource))
            .cloned()
    };
    let kinds: Vec<Option<ResourceInfo>> = [
        ("", "configmaps"),
        ("", "secrets"),
        ("", "services"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("", "pods"),
        ("", "serviceaccounts"),
        ("", "namespaces"),
    ]
    .iter()
    .map(|(g, r)| resource(state, g, r))
    .collect();
    let Some(Some(ns_r)) = kinds.last().cloned() else {
        return 0;
    };
    for n in 0..namespaces {
        let name = format!("bench-{n:03}");
        if !state.namespace_exists(&name) {
            state.seed(&ns_r, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
        }
    }
    // 20 slots: 6 config maps, 4 secrets, 2 services, 2 deployments,
    // 2 replica sets, 3 pods, 1 service account.
    const SLOTS: [usize; 20] = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 6];
    for i in 0..options.objects {
        let ns = format!("bench-{:03}", i % namespaces);
        let j = i / namespaces;
        let kind = SLOTS[j % SLOTS.len()];
        let Some(r) = kinds[kind].clone() else {
            continue;
        };
        let object = make(kind, &ns, j, options.seed);
        state.seed(&r, object);
    }
    options.objects
}

fn managed_fields(manager: &str, api_version: &str, seed: u64) -> Value {
    json!([{
        "manager": manager, "operation": "Update", "apiVersion": api_version,
        "time": format!("2024-0{}-1{}T10:{:02}:00Z", 1 + seed % 9, seed % 10, seed % 60),
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}, "f:tier": {}}, "f:annotations": {".": {}, "f:owner": {}}}, "f:spec": {}},
    }])
}

fn make(kind: usize, ns: &str, j: usize, seed: u64) -> Value {
    let app = format!("app{}", j / 20);
    let tier = ["web", "db", "cache", "queue"][j % 4];
    let labels = json!({"app": app, "tier": tier, "release": format!("r{}", seed)});
    let annotations = json!({"owner": format!("team-{}@example.com", j % 17), "note": format!("generated object {j} seed {seed}")});
    let meta = |name: String| json!({"name": name, "namespace": ns, "labels": labels, "annotations": annotations, "creationTimestamp": "2024-05-01T12:00:00Z"});
    let text = |len: usize, salt: &str| -> String {
        let line = format!("{salt} key=value setting_{j}={seed} threshold=0.75 enabled=true\n");
        line.repeat(len / line.len() + 1)[..len].to_string()
    };
    let container = |name: &str| {
        json!({
            "name": name, "image": format!("registry.example.com/{app}/{name}:1.{}.{}", j % 9, seed % 7),
            "ports": [{"containerPort": 8080, "protocol": "TCP", "name": "http"}],
            "env": [{"name": "MODE", "value": "production"}, {"name": "APP", "value": app}],
            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
        })
    };
    let pod_spec = json!({"containers": [container("main"), container("sidecar")], "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "serviceAccountName": "default", "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"});
    let mut m = match kind {
        0 => {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(format!("{app}-config-{j}")),
            "data": {"app.properties": text(900 + j % 700, "cfg"), "logging.yaml": text(300, "log")}})
        }
        1 => {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta(format!("{app}-secret-{j}")), "type": "Opaque",
            "data": {"password": "c2VjcmV0LXBhc3N3b3JkLXZhbHVl", "tls.key": text(600, "S0VZ")}})
        }
        2 => {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(format!("{app}-svc-{j}")),
            "spec": {"type": "ClusterIP", "clusterIP": format!("10.{}.{}.{}", 100 + (j / 62500) % 100, (j / 250) % 250, j % 250 + 1),
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}], "selector": {"app": app}, "sessionAffinity": "None"},
            "status": {"loadBalancer": {}}})
        }
        3 => {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(format!("{app}-deploy-{j}")),
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": app}}, "template": {"metadata": {"labels": {"app": app}}, "spec": pod_spec},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
            "status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 2}})
        }
        4 => {
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta(format!("{app}-rs-{j}")),
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": app}}, "template": {"metadata": {"labels": {"app": app}}, "spec": pod_spec}},
            "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "observedGeneration": 1}})
        }
        5 => {
            let mut spec = pod_spec.clone();
            spec["nodeName"] = json!(format!("node-{}", j % 12));
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta(format!("{app}-pod-{j}")), "spec": spec,
                "status": {"phase": "Running", "podIP": format!("10.244.{}.{}", j % 250, j % 200 + 2), "qosClass": "Burstable",
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T12:01:00Z"}]}})
        }
        _ => {
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(format!("{app}-sa-{j}"))})
        }
    };
    let api_version = m["apiVersion"].as_str().unwrap_or_default().to_string();
    m["metadata"]["managedFields"] =
        managed_fields("kubectl-client-side-apply", &api_version, seed + j as u64);
    m
}
