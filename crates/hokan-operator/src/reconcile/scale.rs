//! A volume restore into a claim in use (`volume.scaleDown`): the
//! Deployments and StatefulSets whose pods mount the claim are scaled to
//! zero, the restore Job starts once their pods have ended, and they are
//! scaled back to the replicas they had when the restore ends, whatever
//! its outcome. The replicas are written to the Restore's status before
//! anything is scaled, so an operator restarted midway still brings the
//! workloads back.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde_json::json;

use super::{Context, Error};
use crate::api::restore::{RestoreStatus, ScaledWorkload};
use crate::jobs::RUN_LABEL;

fn workload_api(ctx: &Context, ns: &str, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("apps", "v1", kind);
    Api::namespaced_with(ctx.client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

/// The pods of `ns` (not hokan's own) that mount `claim` and have not ended.
pub(super) async fn pods_mounting(ctx: &Context, ns: &str, claim: &str) -> Result<Vec<Pod>, Error> {
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    Ok(pods
        .items
        .into_iter()
        .filter(|p| !p.labels().contains_key(RUN_LABEL))
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .filter(|p| mounts_claim(p, claim))
        .collect())
}

/// Whether `pod` mounts claim `claim` (of its own namespace).
pub(super) fn mounts_claim(pod: &Pod, claim: &str) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .any(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name == claim)
        })
}

/// The workloads (kind, name) owning `pods`, or why one cannot be scaled.
async fn owners(
    ctx: &Context,
    ns: &str,
    pods: &[Pod],
) -> Result<Result<Vec<(String, String)>, String>, Error> {
    let mut out: Vec<(String, String)> = Vec::new();
    for p in pods {
        let controller = p
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true));
        let owner = match controller.map(|o| (o.kind.as_str(), o.name.clone())) {
            Some(("StatefulSet", name)) => Some(("StatefulSet".to_string(), name)),
            Some(("ReplicaSet", rs)) => Api::<ReplicaSet>::namespaced(ctx.client.clone(), ns)
                .get_opt(&rs)
                .await?
                .and_then(|rs| {
                    rs.owner_references()
                        .iter()
                        .find(|o| o.kind == "Deployment" && o.controller == Some(true))
                        .map(|o| ("Deployment".to_string(), o.name.clone()))
                }),
            _ => None,
        };
        match owner {
            Some(o) if !out.contains(&o) => out.push(o),
            Some(_) => {}
            None => {
                return Ok(Err(format!(
                    "pod {ns}/{} mounts the claim and no Deployment or StatefulSet owns it, so \
                     it cannot be scaled down; stop it yourself, or restore without scaleDown",
                    p.name_any()
                )));
            }
        }
    }
    Ok(Ok(out))
}

/// Sets a workload's replicas; one deleted meanwhile is fine.
async fn set_replicas(
    ctx: &Context,
    ns: &str,
    w: &ScaledWorkload,
    replicas: i32,
) -> Result<(), Error> {
    let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
    match workload_api(ctx, ns, &w.kind)
        .patch(&w.name, &PatchParams::default(), &patch)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Scales the workloads mounting `claim` to zero, recording them in
/// `status` first (`Ok(Ok(true))` when it changed); `Ok(Err)` says why it
/// cannot be done.
pub(super) async fn scale_down(
    ctx: &Context,
    ns: &str,
    claim: &str,
    status: &mut RestoreStatus,
) -> Result<Result<bool, String>, Error> {
    let mut changed = false;
    if status.scaled_down.is_empty() {
        let pods = pods_mounting(ctx, ns, claim).await?;
        let found = match owners(ctx, ns, &pods).await? {
            Ok(o) => o,
            Err(reason) => return Ok(Err(reason)),
        };
        for (kind, name) in found {
            let replicas = match workload_api(ctx, ns, &kind).get_opt(&name).await? {
                Some(w) => w.data["spec"]["replicas"].as_i64().unwrap_or(1) as i32,
                None => continue,
            };
            status.scaled_down.push(ScaledWorkload {
                kind,
                name,
                replicas,
                scaled_back: false,
            });
            changed = true;
        }
    }
    Ok(Ok(changed))
}

/// Sets every recorded workload to zero (again: an operator restarted
/// after recording them may not have).
pub(super) async fn hold_down(
    ctx: &Context,
    ns: &str,
    status: &RestoreStatus,
) -> Result<(), Error> {
    for w in status.scaled_down.iter().filter(|w| !w.scaled_back) {
        set_replicas(ctx, ns, w, 0).await?;
    }
    Ok(())
}

/// Brings every workload the restore scaled down back to its replicas.
pub(super) async fn scale_back(
    ctx: &Context,
    ns: &str,
    status: &mut RestoreStatus,
) -> Result<(), Error> {
    for w in status.scaled_down.iter_mut().filter(|w| !w.scaled_back) {
        set_replicas(ctx, ns, w, w.replicas).await?;
        w.scaled_back = true;
    }
    Ok(())
}
