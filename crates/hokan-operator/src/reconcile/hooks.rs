//! Snapshots taken between the consistency hooks of the pods that mount
//! their claims, as Velero runs a pod's backup hooks around its CSI
//! snapshots (`pre.hook.backup.velero.io/*`, `post.hook.backup.velero.io/*`
//! annotations; read and run by [`hokan_k8s::hooks`]).
//!
//! For the claims due in a round, at once, so several volumes of one
//! application are cut at the same moment:
//!
//! 1. the pre hook of every running pod that mounts one of them runs
//!    (each pod once, however many of its claims are due). One that fails
//!    with `on-error: Fail` (the default), or whose annotations cannot be
//!    read, stops the snapshots of that pod's claims, and its post hook is
//!    not run, as in Velero; with `Continue` the failure is noted and the
//!    snapshots go on;
//! 2. the claims' `VolumeSnapshot`s are created;
//! 3. once each is cut (its `creationTime` set, or ready, or failed), or
//!    after [`CUT_WAIT`] at the most, the post hooks run: an application
//!    is never left frozen for longer than the snapshot needs, nor when
//!    the API refuses a snapshot (the error is returned after the thaw).
//!
//! Each failure is kept in the status of the claims it concerns. A claim
//! whose snapshot was stopped waits for its next interval, as a missed
//! schedule does.

use std::collections::BTreeMap;
use std::time::Duration;

use hokan_k8s::hooks::{self, Hook, OnError, Phase};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use super::scale::mounts_claim;
use super::snapshots::{create_once, record_error};
use super::{Context, Error};
use crate::api::policy::BackupPolicy;
use crate::api::snapshots::ClaimStatus;
use crate::clock::to_time;
use crate::jobs::RUN_LABEL;
use crate::snapshot_jobs::{snapshot_resource, volume_snapshot};

/// The longest the post hooks wait for the snapshots to be cut.
pub const CUT_WAIT: Duration = Duration::from_secs(60);

/// A claim whose snapshot is due.
pub(super) struct Due<'a> {
    pub claim: &'a PersistentVolumeClaim,
    pub class: &'a str,
    pub st: &'a mut ClaimStatus,
}

/// A running pod that mounts due claims and has hooks.
struct HookPod {
    name: String,
    /// Indices into the due claims.
    claims: Vec<usize>,
    pre: Result<Option<Hook>, String>,
    post: Result<Option<Hook>, String>,
}

/// Takes the snapshots of `due` between their pods' hooks; `ready_timeout`
/// bounds the wait for the cut too.
pub(super) async fn take(
    ctx: &Context,
    policy: &BackupPolicy,
    due: &mut [Due<'_>],
    ready_timeout: Duration,
) -> Result<(), Error> {
    if due.is_empty() {
        return Ok(());
    }
    let now = ctx.clock.now();
    let pods = hook_pods(ctx, due).await?;
    let mut blocked: Vec<Option<String>> = vec![None; due.len()];
    let mut notes: Vec<(usize, String)> = Vec::new();
    let mut frozen: Vec<&HookPod> = Vec::new();
    for p in &pods {
        let failure = match &p.pre {
            Err(e) => Some((format!("pod {}: {e}", p.name), OnError::Fail)),
            Ok(None) => None,
            Ok(Some(h)) => hooks::run(&ctx.client, h)
                .await
                .err()
                .map(|e| (format!("pre {e}"), h.on_error)),
        };
        match failure {
            None => frozen.push(p),
            Some((why, OnError::Continue)) => {
                for &i in &p.claims {
                    notes.push((i, format!("{why} (on-error Continue: snapshot taken)")));
                }
                frozen.push(p);
            }
            Some((why, OnError::Fail)) => {
                for &i in &p.claims {
                    blocked[i] = Some(format!("{why}; no snapshot taken"));
                }
            }
        }
    }
    // From here on, an error (the API refusing) is held until the post
    // hooks have run: a frozen application is thawed whatever happens.
    let mut held: Option<Error> = None;
    let mut made = Vec::new();
    for (i, d) in due.iter_mut().enumerate() {
        // The attempt counts: the next one is an interval away.
        d.st.last_snapshot_time = Some(to_time(now));
        if let Some(why) = blocked[i].take() {
            record_error(ctx, d.st, why);
            continue;
        }
        match create(ctx, policy, d, now).await {
            Ok((ns, name)) => made.push((i, ns, name)),
            Err(e) => {
                held = Some(e);
                break;
            }
        }
    }
    for (i, note) in notes {
        record_error(ctx, due[i].st, note);
    }
    let thawing = frozen.iter().any(|p| !matches!(p.post, Ok(None)));
    if thawing {
        match wait_cut(ctx, &made, ready_timeout.min(CUT_WAIT)).await {
            Ok(uncut) => {
                for (i, ns, name) in made.iter().filter(|m| uncut.contains(&m.2)) {
                    let why = format!(
                        "VolumeSnapshot {ns}/{name} was not cut within {} s; the post hooks ran \
                         anyway, so it may not be consistent",
                        ready_timeout.min(CUT_WAIT).as_secs()
                    );
                    record_error(ctx, due[*i].st, why);
                }
            }
            Err(e) => held = held.or(Some(e)),
        }
    }
    for p in frozen {
        let failure = match &p.post {
            Err(e) => Some(format!("pod {}: {e}", p.name)),
            Ok(None) => None,
            Ok(Some(h)) => hooks::run(&ctx.client, h)
                .await
                .err()
                .map(|e| format!("post {e}")),
        };
        if let Some(why) = failure {
            for &i in &p.claims {
                record_error(ctx, due[i].st, why.clone());
            }
        }
    }
    held.map_or(Ok(()), Err)
}

/// Creates the VolumeSnapshot of a due claim; its namespace and name.
async fn create(
    ctx: &Context,
    policy: &BackupPolicy,
    d: &Due<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(String, String), Error> {
    let ns = d.claim.namespace().unwrap_or_default();
    let vs = volume_snapshot(policy, &ns, &d.claim.name_any(), Some(d.class), now);
    let name = vs["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let obj: DynamicObject = serde_json::from_value(vs)
        .map_err(|e| Error::Blocking(format!("VolumeSnapshot body: {e}")))?;
    create_once(&snapshots(ctx, &ns), &obj).await?;
    Ok((ns, name))
}

fn snapshots(ctx: &Context, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(ctx.client.clone(), ns, &snapshot_resource("VolumeSnapshot"))
}

/// The running pods (not hokan's own) that mount a due claim and carry a
/// pre or post hook annotation.
async fn hook_pods(ctx: &Context, due: &[Due<'_>]) -> Result<Vec<HookPod>, Error> {
    let mut by_ns: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for (i, d) in due.iter().enumerate() {
        by_ns
            .entry(d.claim.namespace().unwrap_or_default())
            .or_default()
            .push((i, d.claim.name_any()));
    }
    let mut out = Vec::new();
    for (ns, claims) in by_ns {
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        let params = ListParams::default().fields("status.phase=Running");
        for pod in api.list(&params).await?.items {
            if pod.labels().contains_key(RUN_LABEL) {
                continue;
            }
            let mounted: Vec<usize> = claims
                .iter()
                .filter(|(_, c)| mounts_claim(&pod, c))
                .map(|(i, _)| *i)
                .collect();
            let value = serde_json::to_value(&pod).unwrap_or(Value::Null);
            let pre = hooks::backup_hook(&value, Phase::Pre);
            let post = hooks::backup_hook(&value, Phase::Post);
            if mounted.is_empty() || (matches!(pre, Ok(None)) && matches!(post, Ok(None))) {
                continue;
            }
            out.push(HookPod {
                name: format!("{ns}/{}", pod.name_any()),
                claims: mounted,
                pre,
                post,
            });
        }
    }
    Ok(out)
}

/// Waits until each snapshot `made` is cut (a creation time, ready, or an
/// error) or `limit` passes; the names not cut by then.
async fn wait_cut(
    ctx: &Context,
    made: &[(usize, String, String)],
    limit: Duration,
) -> Result<Vec<String>, Error> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut left: Vec<&(usize, String, String)> = made.iter().collect();
    loop {
        let mut still = Vec::new();
        for m in left {
            let cut = match snapshots(ctx, &m.1).get_opt(&m.2).await? {
                Some(o) => {
                    let s = &o.data["status"];
                    s["creationTime"].is_string()
                        || s["readyToUse"] == true
                        || s["error"].is_object()
                }
                // Deleted under us: nothing to wait for.
                None => true,
            };
            if !cut {
                still.push(m);
            }
        }
        left = still;
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(left.iter().map(|m| m.2.clone()).collect());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
