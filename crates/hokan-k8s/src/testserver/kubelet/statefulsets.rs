//! The StatefulSet controller stand-in: pods `<set>-<ordinal>` from the
//! template for ordinals below `spec.replicas`, each with its claims from
//! `volumeClaimTemplates` (`<template>-<set>-<ordinal>`, made when
//! missing and kept when the set shrinks, as the real controller keeps
//! them); pods at or above `replicas` deleted, highest first; `status`
//! counted from the pods. Scaling to zero and back is what a restore into
//! a claim in use does.
//!
//! Differences: every set behaves as `podManagementPolicy: Parallel` (no
//! waiting for each pod to be ready before the next), there are no
//! ControllerRevisions or rolling updates, and a failed pod is not
//! replaced.

use serde_json::{Value, json};

use super::{Shared, str_at};
use crate::Result;

/// One pass over every StatefulSet.
pub(super) async fn sync(shared: &Shared, sets: &[Value], pods: &[Value]) -> Result<()> {
    for set in sets {
        if set.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let uid = str_at(set, "/metadata/uid");
        let owned = super::controlled_by(pods, uid);
        sync_set(shared, set, pods, &owned).await?;
    }
    Ok(())
}

fn ordinal(set: &str, pod: &Value) -> Option<i64> {
    str_at(pod, "/metadata/name")
        .strip_prefix(set)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

async fn sync_set(shared: &Shared, set: &Value, pods: &[Value], owned: &[&Value]) -> Result<()> {
    let ns = str_at(set, "/metadata/namespace");
    let name = str_at(set, "/metadata/name");
    let replicas = set["spec"]["replicas"].as_i64().unwrap_or(1);
    for i in 0..replicas {
        let pod_name = format!("{name}-{i}");
        let exists = pods.iter().any(|p| {
            str_at(p, "/metadata/namespace") == ns && str_at(p, "/metadata/name") == pod_name
        });
        if !exists {
            create_pod(shared, set, i).await?;
        }
    }
    let mut extra: Vec<(i64, &Value)> = owned
        .iter()
        .filter_map(|p| ordinal(name, p).map(|o| (o, *p)))
        .filter(|(o, p)| *o >= replicas && p.pointer("/metadata/deletionTimestamp").is_none())
        .collect();
    extra.sort_by_key(|(o, _)| std::cmp::Reverse(*o));
    for (_, p) in extra {
        let path = format!(
            "/api/v1/namespaces/{ns}/pods/{}",
            str_at(p, "/metadata/name")
        );
        ignore_gone(shared.cluster.delete(&path).await)?;
    }
    let running = owned
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .count();
    let mut updated = set.clone();
    updated["status"] = json!({
        "observedGeneration": set["metadata"]["generation"],
        "replicas": owned.len(), "currentReplicas": owned.len(), "updatedReplicas": owned.len(),
        "readyReplicas": running, "availableReplicas": running,
    });
    if updated["status"] != set["status"] {
        let path = format!("/apis/apps/v1/namespaces/{ns}/statefulsets/{name}/status");
        match shared.cluster.replace(&path, &updated).await {
            // Changed meanwhile: the next poll writes it.
            Err(e) if e.status() == Some(409) || e.is_not_found() => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

async fn create_pod(shared: &Shared, set: &Value, i: i64) -> Result<()> {
    let ns = str_at(set, "/metadata/namespace");
    let name = str_at(set, "/metadata/name");
    let pod_name = format!("{name}-{i}");
    let template = &set["spec"]["template"];
    let mut metadata = template["metadata"].clone();
    if !metadata.is_object() {
        metadata = json!({});
    }
    metadata["name"] = json!(pod_name);
    metadata["namespace"] = json!(ns);
    metadata["labels"]["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
    metadata["labels"]["apps.kubernetes.io/pod-index"] = json!(i.to_string());
    metadata["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
        "uid": str_at(set, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true,
    }]);
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(pod_name);
    if let Some(service) = set["spec"]["serviceName"].as_str() {
        spec["subdomain"] = json!(service);
    }
    for t in set["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let volume = str_at(t, "/metadata/name");
        let claim = format!("{volume}-{pod_name}");
        let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                           "metadata": t["metadata"].clone(), "spec": t["spec"].clone()});
        c["metadata"]["name"] = json!(claim);
        c["metadata"]["namespace"] = json!(ns);
        let collection = format!("/api/v1/namespaces/{ns}/persistentvolumeclaims");
        match shared.cluster.create(&collection, &c).await {
            Err(e) if e.status() == Some(409) => {}
            other => {
                other?;
            }
        }
        if !spec["volumes"].is_array() {
            spec["volumes"] = json!([]);
        }
        if let Some(v) = spec["volumes"].as_array_mut() {
            v.retain(|v| v["name"] != volume);
            v.push(json!({"name": volume, "persistentVolumeClaim": {"claimName": claim}}));
        }
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec});
    match shared
        .cluster
        .create(&format!("/api/v1/namespaces/{ns}/pods"), &pod)
        .await
    {
        Err(e) if e.status() == Some(409) => Ok(()),
        other => other.map(|_| ()),
    }
}

fn ignore_gone(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}
