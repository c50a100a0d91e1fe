//! The scheduler stand-in: binds pending pods to the first Node that fits
//! (labels, required node affinity, taints and tolerations, cordoning,
//! bound claims), or reports why none does as the real scheduler does.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Shared, now, str_at};
use crate::Result;

/// Binds or marks unschedulable every pod that has no node yet.
pub(super) async fn schedule(shared: &Shared, nodes: &[Value], pods: &[Value]) -> Result<()> {
    for pod in pods {
        if !str_at(pod, "/spec/nodeName").is_empty()
            || pod.pointer("/metadata/deletionTimestamp").is_some()
            || matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
        {
            continue;
        }
        let ns = str_at(pod, "/metadata/namespace");
        let name = str_at(pod, "/metadata/name");
        let claims = claims_bound(shared, pod).await?;
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut chosen = None;
        for node in nodes {
            match misfit(pod, node, claims.as_deref()) {
                None => {
                    chosen = Some(str_at(node, "/metadata/name").to_string());
                    break;
                }
                Some(reason) => *reasons.entry(reason).or_default() += 1,
            }
        }
        let base = format!("/api/v1/namespaces/{ns}/pods/{name}");
        if let Some(node) = chosen {
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            match shared
                .cluster
                .create(&format!("{base}/binding"), &binding)
                .await
            {
                Ok(_) => {}
                // Bound meanwhile, or gone: the next poll sees it.
                Err(e) if e.is_not_found() || e.status() == Some(409) => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        let message = unschedulable_message(nodes.len(), &reasons);
        let mut current = pod.clone();
        let mut conditions = current["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c["type"] == "PodScheduled" && c["message"] == json!(message))
        {
            continue;
        }
        conditions.retain(|c| c["type"] != "PodScheduled");
        conditions.push(json!({
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": null, "lastTransitionTime": now(),
        }));
        current["status"]["conditions"] = json!(conditions);
        current["status"]["phase"] = json!("Pending");
        match shared
            .cluster
            .replace(&format!("{base}/status"), &current)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() || e.status() == Some(409) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `0/2 nodes are available: 1 node(s) didn't match Pod's node
/// affinity/selector, 1 node(s) had untolerated taint {...}.`, as the
/// scheduler words it.
fn unschedulable_message(total: usize, reasons: &BTreeMap<String, usize>) -> String {
    let mut parts: Vec<String> = reasons
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    parts.sort();
    let mut message = format!("0/{total} nodes are available");
    if !parts.is_empty() {
        message.push_str(": ");
        message.push_str(&parts.join(", "));
    }
    message.push_str(". preemption: 0/");
    message.push_str(&total.to_string());
    message.push_str(" nodes are available: ");
    message.push_str(&total.to_string());
    message.push_str(" Preemption is not helpful for scheduling.");
    message
}

/// The PersistentVolumes of the pod's claims, `None` with the reason when a
/// claim is missing or unbound (the pod is then unschedulable everywhere).
async fn claims_bound(
    shared: &Shared,
    pod: &Value,
) -> Result<std::result::Result<Vec<Value>, String>> {
    let ns = str_at(pod, "/metadata/namespace");
    let mut volumes = Vec::new();
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let claim = str_at(v, "/persistentVolumeClaim/claimName");
        if claim.is_empty() {
            continue;
        }
        let path = format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}");
        let Some(pvc) = shared.cluster.get(&path).await? else {
            return Ok(Err(format!("persistentvolumeclaim \"{claim}\" not found")));
        };
        let volume = str_at(&pvc, "/spec/volumeName");
        if volume.is_empty() {
            return Ok(Err(
                "pod has unbound immediate PersistentVolumeClaims".to_string()
            ));
        }
        match shared
            .cluster
            .get(&format!("/api/v1/persistentvolumes/{volume}"))
            .await?
        {
            Some(pv) => volumes.push(pv),
            None => {
                return Ok(Err(format!("persistentvolume \"{volume}\" not found")));
            }
        }
    }
    Ok(Ok(volumes))
}

/// Why `pod` cannot run on `node`, in the scheduler's words; `None` if it can.
fn misfit(
    pod: &Value,
    node: &Value,
    claims: std::result::Result<&[Value], &String>,
) -> Option<String> {
    let labels = node["metadata"]["labels"].clone();
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    if let Some(selector) = pod["spec"]["nodeSelector"].as_object()
        && selector.iter().any(|(k, v)| label(k) != v.as_str())
    {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    let required =
        pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution");
    if let Some(required) = required
        && !node_selector_matches(required, &labels)
    {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    if node["spec"]["unschedulable"].as_bool() == Some(true) {
        return Some("node(s) were unschedulable".into());
    }
    let tolerations = pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for taint in node["spec"]["taints"].as_array().into_iter().flatten() {
        let effect = str_at(taint, "/effect");
        if effect == "PreferNoSchedule" {
            continue;
        }
        if !tolerations.iter().any(|t| tolerates(t, taint)) {
            let key = str_at(taint, "/key");
            let value = str_at(taint, "/value");
            return Some(format!("node(s) had untolerated taint {{{key}: {value}}}"));
        }
    }
    match claims {
        Err(reason) => return Some(reason.clone()),
        Ok(volumes) => {
            for pv in volumes {
                if let Some(affinity) = pv.pointer("/spec/nodeAffinity/required")
                    && !node_selector_matches(affinity, &labels)
                {
                    return Some("node(s) had volume node affinity conflict".into());
                }
            }
        }
    }
    None
}

/// Whether a toleration tolerates a taint (key, operator, value, effect).
fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let effect = str_at(toleration, "/effect");
    if !effect.is_empty() && effect != str_at(taint, "/effect") {
        return false;
    }
    let key = str_at(toleration, "/key");
    match str_at(toleration, "/operator") {
        "Exists" => key.is_empty() || key == str_at(taint, "/key"),
        _ => {
            key == str_at(taint, "/key") && str_at(toleration, "/value") == str_at(taint, "/value")
        }
    }
}

/// A `NodeSelector` (terms ORed, expressions ANDed) against node labels.
pub(super) fn node_selector_matches(selector: &Value, labels: &Value) -> bool {
    let terms = selector["nodeSelectorTerms"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    terms.iter().any(|term| {
        term["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| {
                let value = labels.get(str_at(e, "/key")).and_then(Value::as_str);
                let values: Vec<&str> = e["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                match str_at(e, "/operator") {
                    "In" => value.is_some_and(|v| values.contains(&v)),
                    "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    "Gt" | "Lt" => {
                        let (Some(v), Some(bound)) = (
                            value.and_then(|v| v.parse::<i64>().ok()),
                            values.first().and_then(|b| b.parse::<i64>().ok()),
                        ) else {
                            return false;
                        };
                        if str_at(e, "/operator") == "Gt" {
                            v > bound
                        } else {
                            v < bound
                        }
                    }
                    _ => false,
                }
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_need_tolerations_and_selectors_need_labels() {
        let node = json!({"metadata": {"name": "cp", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}});
        let plain = json!({"spec": {}});
        let ok: &[Value] = &[];
        assert_eq!(
            misfit(&plain, &node, Ok(ok)).unwrap(),
            "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
        );
        let tolerant = json!({"spec": {
            "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}});
        assert_eq!(misfit(&tolerant, &node, Ok(ok)), None);
        let elsewhere = json!({"spec": {"nodeSelector": {"disk": "ssd"},
            "tolerations": [{"operator": "Exists"}]}});
        assert!(
            misfit(&elsewhere, &node, Ok(ok))
                .unwrap()
                .contains("selector")
        );
        let affinity = json!({"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a", "b"]}]}]});
        assert!(node_selector_matches(&affinity, &json!({"zone": "b"})));
        assert!(!node_selector_matches(&affinity, &json!({"zone": "c"})));
    }
}
