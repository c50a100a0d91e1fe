//! A volume restored from a CSI `VolumeSnapshot`: a new claim with the
//! snapshot as its data source, the fastest restore there is. In the
//! snapshot's own namespace the claim names it directly; in another, the
//! snapshot's handle is first bound to a content and a snapshot there (as
//! a copy exposes it in the policy's namespace), and those two are deleted
//! once the claim is bound (`Retain`: the data stays the source's). The
//! new claim takes the source claim's volume mode, size (its capacity,
//! which a driver needs at least) and storage class.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use serde_json::json;

use super::snapshots::{create_once, delete_quietly, snapshot_source};
use super::{Context, Error};
use crate::api::common::SnapshotRef;
use crate::api::restore::{Restore, RestoreStatus};
use crate::runs::Outcome;
use crate::snapshot_jobs::{
    CLAIM_ANNOTATION, bound_content, bound_snapshot, claim_from, copy_content_name,
    snapshot_resource,
};

/// Drives the restore; `None` while the claim is not bound yet.
pub async fn restore(
    restore: &Restore,
    ctx: &Context,
    ns: &str,
    status: &mut RestoreStatus,
) -> Result<Option<Outcome>, Error> {
    let failed = |reason: String| Ok(Some(Outcome::Failed { reason }));
    let spec = restore.spec.volume.clone().expect("kind says volume");
    let named = spec.volume_snapshot.clone().unwrap_or_default();
    let (snap_ns, snap_name) = match named.split_once('/') {
        Some((n, s)) => (n.to_string(), s.to_string()),
        None => (ns.to_string(), named.clone()),
    };
    let target_ns = spec.namespace.clone().unwrap_or_else(|| ns.to_string());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &target_ns);
    let snapshots = |n: &str| -> Api<DynamicObject> {
        Api::namespaced_with(ctx.client.clone(), n, &snapshot_resource("VolumeSnapshot"))
    };
    let contents: Api<DynamicObject> = Api::all_with(
        ctx.client.clone(),
        &snapshot_resource("VolumeSnapshotContent"),
    );
    // Exposed in the target namespace under the Restore's name.
    let exposed = crate::jobs::job_name(&restore.name_any(), "source");
    let data_source = if target_ns == snap_ns {
        snap_name.clone()
    } else {
        exposed.clone()
    };

    if let Some(claim) = claims.get_opt(&spec.claim_name).await? {
        // Made by this restore (an earlier round): its label says so.
        let ours = claim.labels().get("hokan.dev/restore") == Some(&restore.name_any())
            && claim
                .spec
                .as_ref()
                .and_then(|s| s.data_source.as_ref())
                .is_some_and(|d| d.kind == "VolumeSnapshot" && d.name == data_source);
        if !ours {
            return failed(format!(
                "claim {target_ns}/{} exists; a restore from a VolumeSnapshot makes a new \
                 claim: delete that one or name another in volume.claimName",
                spec.claim_name
            ));
        }
        if claim.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
            return Ok(None);
        }
        if target_ns != snap_ns {
            delete_quietly(&snapshots(&target_ns), &exposed).await?;
            delete_quietly(&contents, &copy_content_name(&target_ns, &exposed)).await?;
        }
        status.source = Some(SnapshotRef {
            id: format!("{snap_ns}/{snap_name}"),
            kind: "volumesnapshot".into(),
            identity: claim.annotations().get(CLAIM_ANNOTATION).cloned(),
        });
        status.snapshot = Some(snap_name);
        return Ok(Some(Outcome::Completed));
    }

    let Some(snap) = snapshots(&snap_ns).get_opt(&snap_name).await? else {
        return failed(format!(
            "VolumeSnapshot {snap_ns}/{snap_name} does not exist; the policy's status lists \
             the claims' snapshots (status.claims[].snapshots)"
        ));
    };
    let st = &snap.data["status"];
    if st["readyToUse"] != true {
        return match st["error"]["message"].as_str() {
            Some(e) => failed(format!("VolumeSnapshot {snap_ns}/{snap_name} failed: {e}")),
            None => Ok(None),
        };
    }
    let source_claim = snap
        .annotations()
        .get(CLAIM_ANNOTATION)
        .and_then(|c| c.split_once('/').map(|(_, n)| n.to_string()))
        .or_else(|| {
            snap.data["spec"]["source"]["persistentVolumeClaimName"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default();
    let Some(source) = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &snap_ns)
        .get_opt(&source_claim)
        .await?
    else {
        return failed(format!(
            "the claim {snap_ns}/{source_claim} VolumeSnapshot {snap_name} was taken of is \
             gone: its size, mode and storage class are not known"
        ));
    };
    let content = st["boundVolumeSnapshotContentName"].as_str();
    let from = snapshot_source(ctx, &source, &snap_name, content, None).await?;
    let labels = json!({"app.kubernetes.io/part-of": "hokan",
                        "hokan.dev/restore": restore.name_any()});
    if target_ns != snap_ns {
        if from.handle.is_empty() {
            return failed(format!(
                "VolumeSnapshot {snap_ns}/{snap_name} has no snapshot handle; it cannot be \
                 exposed in {target_ns}"
            ));
        }
        let obj = |v| {
            serde_json::from_value::<DynamicObject>(v).map_err(|e| Error::Blocking(e.to_string()))
        };
        create_once(
            &contents,
            &obj(bound_content(&target_ns, &exposed, &from, labels.clone()))?,
        )
        .await?;
        create_once(
            &snapshots(&target_ns),
            &obj(bound_snapshot(&target_ns, &exposed, &from, labels.clone()))?,
        )
        .await?;
    }
    let claim: PersistentVolumeClaim = serde_json::from_value(claim_from(
        &target_ns,
        &spec.claim_name,
        &data_source,
        &from,
        labels,
    ))
    .map_err(|e| Error::Blocking(format!("claim body: {e}")))?;
    status.source = Some(SnapshotRef {
        id: format!("{snap_ns}/{snap_name}"),
        kind: "volumesnapshot".into(),
        identity: Some(format!("{snap_ns}/{source_claim}")),
    });
    status.snapshot = Some(snap_name.clone());
    create_once(&claims, &claim).await?;
    Ok(None)
}
