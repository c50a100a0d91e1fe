//! The pod subresources a scheduler and a kubelet need from the API server:
//! `pods/NAME/binding` (the scheduler's POST that sets `spec.nodeName`) and
//! `pods/NAME/log` (which a real server proxies to the node's kubelet; here
//! the kubelet stand-in writes into [`PodLogs`], which the server reads).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::state::{ApiError, Query, State, Stored};
use super::write::now;
use crate::discovery::ResourceInfo;

/// The containers' output per `(namespace, pod, container)`, shared by the
/// kubelet stand-in (which appends) and the server (which serves it).
#[derive(Clone, Debug, Default)]
pub struct PodLogs(Arc<Mutex<BTreeMap<LogKey, Vec<u8>>>>);

/// `(namespace, pod, container)`.
type LogKey = (String, String, String);

impl PodLogs {
    /// Starts an empty log for a container that is starting (again).
    pub fn start(&self, ns: &str, pod: &str, container: &str) {
        super::lock(&self.0).insert(key(ns, pod, container), Vec::new());
    }

    /// Appends output.
    pub fn append(&self, ns: &str, pod: &str, container: &str, bytes: &[u8]) {
        super::lock(&self.0)
            .entry(key(ns, pod, container))
            .or_default()
            .extend_from_slice(bytes);
    }

    /// The output so far, `None` if the container never started.
    pub fn get(&self, ns: &str, pod: &str, container: &str) -> Option<Vec<u8>> {
        super::lock(&self.0).get(&key(ns, pod, container)).cloned()
    }
}

fn key(ns: &str, pod: &str, container: &str) -> LogKey {
    (ns.to_string(), pod.to_string(), container.to_string())
}

/// What a pod subresource request answers: a JSON object or plain text.
pub enum Answer {
    Json(u16, Value),
    Text(Vec<u8>),
}

/// Answers `GET pods/NAME/log` and `POST pods/NAME/binding`; `None` for any
/// other subresource or method (the caller answers those).
pub fn handle(
    state: &mut State,
    r: &ResourceInfo,
    (ns, name, sub): (&str, &str, &str),
    method: &str,
    query: &Query,
    body: &[u8],
) -> Option<Result<Answer, ApiError>> {
    if !r.group.is_empty() || r.resource != "pods" {
        return None;
    }
    match (sub, method) {
        ("log", "GET") => Some(log(state, r, ns, name, query)),
        ("binding", "POST") => Some(bind(state, r, ns, name, body)),
        _ => None,
    }
}

fn log(
    state: &mut State,
    r: &ResourceInfo,
    ns: &str,
    name: &str,
    query: &Query,
) -> Result<Answer, ApiError> {
    let pod = state.get(r, ns, name)?;
    let names: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(c) if names.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!("container {c} is not valid for pod {name}"),
            ));
        }
        None if names.len() == 1 => names[0].to_string(),
        None => {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    names.join(" ")
                ),
            ));
        }
    };
    let Some(mut text) = state.pod_logs.get(ns, name, &container) else {
        return Err(ApiError::new(
            400,
            "BadRequest",
            format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
            ),
        ));
    };
    if let Some(n) = query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
        text = lines[lines.len().saturating_sub(n)..].concat();
    }
    if let Some(n) = query
        .get("limitBytes")
        .and_then(|n| n.parse::<usize>().ok())
    {
        text.truncate(n);
    }
    Ok(Answer::Text(text))
}

fn bind(
    state: &mut State,
    r: &ResourceInfo,
    ns: &str,
    name: &str,
    body: &[u8],
) -> Result<Answer, ApiError> {
    let binding: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "BadRequest",
            format!("the binding is not valid JSON: {e}"),
        )
    })?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid(r, name, "target.name", "Required value"))?
        .to_string();
    let key = (ns.to_string(), name.to_string());
    let mut pod = state
        .objects
        .get(&r.group_resource())
        .and_then(|m| m.get(&key))
        .map(Stored::value)
        .ok_or_else(|| ApiError::not_found(r, name))?;
    if let Some(bound) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{bound}\""
            ),
        ));
    }
    pod["spec"]["nodeName"] = json!(node);
    // The server, not the scheduler, records PodScheduled=True on binding.
    let mut conditions: Vec<Value> = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    conditions.retain(|c| c["type"] != "PodScheduled");
    conditions.push(json!({
        "type": "PodScheduled", "status": "True", "lastProbeTime": null,
        "lastTransitionTime": now(),
    }));
    pod["status"]["conditions"] = json!(conditions);
    if pod.pointer("/status/phase").is_none() {
        pod["status"]["phase"] = json!("Pending");
    }
    pod["metadata"]["resourceVersion"] = json!(state.next_rv().to_string());
    state
        .objects
        .entry(r.group_resource())
        .or_default()
        .insert(key, Stored::from_value(pod));
    Ok(Answer::Json(
        201,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}
