//! Sanitizing: what must leave a backed-up object before another cluster
//! accepts it, every removal named so a dry run can show it.
//!
//! Server-owned metadata goes (uid, resourceVersion, generation,
//! creationTimestamp, deletion fields, managedFields, selfLink); status goes
//! unless asked for; services lose the cluster IPs and the node ports the
//! cluster picked (those written in `last-applied-configuration` were chosen
//! by a person and stay); pods lose their node and computed priority; token
//! secrets lose their token (auto-generated ones are not restored at all);
//! PVs lose the claim's uid and resourceVersion; PVCs the binding
//! annotations; jobs the controller-uid selector and labels. Namespace
//! mapping is applied to the object and to what points into namespaces
//! (role binding subjects, a PV's claim).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::object::GroupResource;

/// What sanitizing decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sanitized {
    /// JSON paths removed or changed, in order.
    pub notes: Vec<String>,
    /// Set when the object must not be restored at all.
    pub skip: Option<String>,
}

/// How to sanitize.
#[derive(Clone, Copy, Debug)]
pub struct SanitizeOptions<'a> {
    /// Keep `status` (it is then written through the status subresource).
    pub keep_status: bool,
    /// Keep services' node ports.
    pub preserve_node_ports: bool,
    /// `--namespace-mapping`.
    pub namespace_mapping: &'a BTreeMap<String, String>,
}

const SERVER_METADATA: [&str; 8] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

const PVC_ANNOTATIONS: [&str; 3] = [
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/selected-node",
];

const JOB_LABELS: [&str; 2] = ["controller-uid", "batch.kubernetes.io/controller-uid"];

/// Sanitizes `object` (of resource `gr`) in place.
pub fn sanitize(
    gr: &GroupResource,
    object: &mut Value,
    options: &SanitizeOptions<'_>,
) -> Sanitized {
    let mut out = Sanitized::default();
    let notes = &mut out.notes;
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_METADATA {
            if meta.remove(field).is_some() {
                notes.push(format!("metadata.{field}"));
            }
        }
    }
    if !options.keep_status
        && object
            .as_object_mut()
            .and_then(|o| o.remove("status"))
            .is_some()
    {
        notes.push("status".into());
    }
    let group = gr.group.as_str();
    match (group, gr.resource.as_str()) {
        ("", "services") => service(object, options.preserve_node_ports, notes),
        ("", "pods") => pod(object, notes),
        ("", "secrets") => out.skip = token_secret(object, notes),
        ("", "serviceaccounts") => service_account(object, notes),
        ("", "persistentvolumes") => {
            for field in ["uid", "resourceVersion"] {
                if remove_at(object, "/spec/claimRef", field) {
                    notes.push(format!("spec.claimRef.{field}"));
                }
            }
            map_namespace_at(
                object,
                "/spec/claimRef/namespace",
                options.namespace_mapping,
                notes,
            );
        }
        ("", "persistentvolumeclaims") => {
            for a in PVC_ANNOTATIONS {
                if remove_at(object, "/metadata/annotations", a) {
                    notes.push(format!("metadata.annotations[{a}]"));
                }
            }
        }
        ("batch", "jobs") => job(object, notes),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            let n = object
                .pointer("/subjects")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in 0..n {
                map_namespace_at(
                    object,
                    &format!("/subjects/{i}/namespace"),
                    options.namespace_mapping,
                    notes,
                );
            }
        }
        _ => {}
    }
    out
}

fn remove_at(object: &mut Value, pointer: &str, field: &str) -> bool {
    object
        .pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .and_then(|o| o.remove(field))
        .is_some()
}

fn map_namespace_at(
    object: &mut Value,
    pointer: &str,
    mapping: &BTreeMap<String, String>,
    notes: &mut Vec<String>,
) {
    if let Some(slot) = object.pointer_mut(pointer)
        && let Some(to) = slot.as_str().and_then(|ns| mapping.get(ns))
    {
        notes.push(format!(
            "{} -> {to}",
            pointer.trim_start_matches('/').replace('/', ".")
        ));
        *slot = Value::String(to.clone());
    }
}

/// Velero's service action: cluster IPs always go (the target allocates its
/// own; `None` marks a headless service and stays); node ports go unless
/// kept on request or written by hand in the last applied configuration.
fn service(object: &mut Value, preserve_node_ports: bool, notes: &mut Vec<String>) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
        for field in ["clusterIP", "clusterIPs"] {
            if spec.remove(field).is_some() {
                notes.push(format!("spec.{field}"));
            }
        }
    }
    if preserve_node_ports {
        return;
    }
    let explicit = explicit_node_ports(object);
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.remove("healthCheckNodePort").is_some() {
        notes.push("spec.healthCheckNodePort".into());
    }
    for (i, port) in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(p) = port.as_object_mut() else {
            continue;
        };
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let number = p.get("nodePort").and_then(Value::as_u64);
        if number.is_some_and(|n| !explicit.contains(&(name.clone(), n))) {
            p.remove("nodePort");
            notes.push(format!("spec.ports[{i}].nodePort"));
        }
    }
}

/// `(port name, nodePort)` pairs a person wrote, per kubectl's
/// `last-applied-configuration` annotation.
fn explicit_node_ports(object: &Value) -> Vec<(String, u64)> {
    let Some(text) = object
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")
        .and_then(Value::as_str)
    else {
        return Vec::new();
    };
    let Ok(applied) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    applied
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                p.get("nodePort")?.as_u64()?,
            ))
        })
        .collect()
}

/// The node is the scheduler's choice and the priority the admission
/// plugin's; the projected service-account token volume is added back by
/// admission with a fresh token.
fn pod(object: &mut Value, notes: &mut Vec<String>) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for field in ["nodeName", "priority"] {
        if spec.remove(field).is_some() {
            notes.push(format!("spec.{field}"));
        }
    }
    let is_token = |name: &str| name.starts_with("kube-api-access-");
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        let before = volumes.len();
        volumes.retain(|v| !v.get("name").and_then(Value::as_str).is_some_and(is_token));
        if volumes.len() != before {
            notes.push("spec.volumes[kube-api-access-*]".into());
        }
    }
    for list in ["containers", "initContainers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(mounts) = c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                mounts.retain(|m| !m.get("name").and_then(Value::as_str).is_some_and(is_token));
            }
        }
    }
}

/// A service-account token secret's token is the source cluster's; the
/// target's token controller fills in its own. Tokens the controller made
/// (`<account>-token-xxxxx`) are made again, so they are not restored.
fn token_secret(object: &mut Value, notes: &mut Vec<String>) -> Option<String> {
    if object.get("type").and_then(Value::as_str) != Some("kubernetes.io/service-account-token") {
        return None;
    }
    let account = object
        .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !account.is_empty() && is_generated_token(name, &account) {
        return Some(format!(
            "token of service account {account}, generated by the token controller"
        ));
    }
    if object
        .as_object_mut()
        .and_then(|o| o.remove("data"))
        .is_some()
    {
        notes.push("data (the token controller writes a new token)".into());
    }
    if remove_at(
        object,
        "/metadata/annotations",
        "kubernetes.io/service-account.uid",
    ) {
        notes.push("metadata.annotations[kubernetes.io/service-account.uid]".into());
    }
    None
}

fn is_generated_token(name: &str, account: &str) -> bool {
    name.strip_prefix(account)
        .and_then(|rest| rest.strip_prefix("-token-"))
        .is_some_and(|suffix| {
            suffix.len() == 5 && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

fn service_account(object: &mut Value, notes: &mut Vec<String>) {
    let account = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(secrets) = object.get_mut("secrets").and_then(Value::as_array_mut) {
        let before = secrets.len();
        secrets.retain(|s| {
            !s.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| is_generated_token(n, &account))
        });
        if secrets.len() != before {
            notes.push("secrets[<account>-token-*]".into());
        }
    }
}

/// The job controller labels pods with its own uid and selects by it; the
/// restored job gets a new uid, so both go and the server makes new ones.
fn job(object: &mut Value, notes: &mut Vec<String>) {
    for pointer in [
        "/spec/selector/matchLabels",
        "/spec/template/metadata/labels",
    ] {
        for label in JOB_LABELS {
            if remove_at(object, pointer, label) {
                notes.push(format!(
                    "{}[{label}]",
                    pointer.trim_start_matches('/').replace('/', ".")
                ));
            }
        }
    }
    let selector_empty = object
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .is_some_and(|s| {
            let empty = |k: &str| {
                s.get(k).is_none_or(|v| {
                    v.as_object()
                        .map_or(v.as_array().is_some_and(Vec::is_empty), Map::is_empty)
                })
            };
            empty("matchLabels") && empty("matchExpressions")
        });
    if selector_empty && remove_at(object, "/spec", "selector") {
        notes.push("spec.selector".into());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(gr: &str, mut v: Value, keep_status: bool) -> (Value, Sanitized) {
        let mapping = BTreeMap::from([("old".to_string(), "new".to_string())]);
        let opts = SanitizeOptions {
            keep_status,
            preserve_node_ports: false,
            namespace_mapping: &mapping,
        };
        let s = sanitize(&GroupResource::parse(gr), &mut v, &opts);
        (v, s)
    }

    #[test]
    fn services_keep_headless_and_hand_written_node_ports() {
        let applied = r#"{"spec":{"ports":[{"name":"fixed","nodePort":30080}]}}"#;
        let svc = json!({"metadata": {"name": "s", "uid": "u", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied}},
            "spec": {"type": "NodePort", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"],
                "ports": [{"name": "fixed", "nodePort": 30080}, {"name": "auto", "nodePort": 31234}]}, "status": {}});
        let (v, s) = run("services", svc, false);
        assert_eq!(v["spec"]["ports"][0]["nodePort"], 30080);
        assert!(v["spec"]["ports"][1].get("nodePort").is_none());
        assert!(v["spec"].get("clusterIP").is_none() && v.get("status").is_none());
        assert_eq!(
            s.notes,
            [
                "metadata.uid",
                "status",
                "spec.clusterIP",
                "spec.clusterIPs",
                "spec.ports[1].nodePort"
            ]
        );
        let (v, _) = run("services", json!({"spec": {"clusterIP": "None"}}), false);
        assert_eq!(v["spec"]["clusterIP"], "None");
    }

    #[test]
    fn token_secrets_jobs_volumes_and_bindings() {
        let generated = json!({"type": "kubernetes.io/service-account-token",
            "metadata": {"name": "builder-token-x7k2p", "annotations": {"kubernetes.io/service-account.name": "builder"}}});
        assert!(run("secrets", generated, false).1.skip.is_some());
        let manual = json!({"type": "kubernetes.io/service-account-token", "data": {"token": "abc"},
            "metadata": {"name": "ci-token", "annotations": {"kubernetes.io/service-account.name": "builder", "kubernetes.io/service-account.uid": "u"}}});
        let (v, s) = run("secrets", manual, false);
        assert!(s.skip.is_none() && v.get("data").is_none());
        assert!(
            v["metadata"]["annotations"]
                .get("kubernetes.io/service-account.uid")
                .is_none()
        );

        let job = json!({"spec": {"selector": {"matchLabels": {"controller-uid": "u1"}},
            "template": {"metadata": {"labels": {"controller-uid": "u1", "batch.kubernetes.io/controller-uid": "u1", "app": "x"}}}}});
        let (v, s) = run("jobs.batch", job, false);
        assert!(v["spec"].get("selector").is_none());
        assert_eq!(
            v["spec"]["template"]["metadata"]["labels"],
            json!({"app": "x"})
        );
        assert!(s.notes.contains(&"spec.selector".to_string()));

        let pv = json!({"spec": {"claimRef": {"namespace": "old", "name": "data", "uid": "u", "resourceVersion": "9"}}});
        let (v, _) = run("persistentvolumes", pv, false);
        assert_eq!(
            v["spec"]["claimRef"],
            json!({"namespace": "new", "name": "data"})
        );

        let rb = json!({"subjects": [{"kind": "ServiceAccount", "name": "a", "namespace": "old"}, {"kind": "User", "name": "b"}]});
        let (v, s) = run("rolebindings.rbac.authorization.k8s.io", rb, false);
        assert_eq!(v["subjects"][0]["namespace"], "new");
        assert_eq!(s.notes, ["subjects.0.namespace -> new"]);

        let pod = json!({"spec": {"nodeName": "n1", "volumes": [{"name": "kube-api-access-abcde"}, {"name": "data"}],
            "containers": [{"volumeMounts": [{"name": "kube-api-access-abcde"}, {"name": "data"}]}]}, "status": {"phase": "Running"}});
        let (v, _) = run("pods", pod, true);
        assert_eq!(v["spec"]["volumes"], json!([{"name": "data"}]));
        assert_eq!(
            v["spec"]["containers"][0]["volumeMounts"],
            json!([{"name": "data"}])
        );
        assert_eq!(v["status"]["phase"], "Running", "status kept on request");
    }
}
