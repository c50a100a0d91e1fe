//! A claim's copy into the repository, one step per round: started by
//! making the copy's content, snapshot, temporary claim and Job at once
//! (the provisioner waits for the snapshot, the pod for the claim), then
//! watched until the Job ends; whatever the end, the four are deleted, so
//! a failed copy leaves no temporary claim behind. The Job's JSON summary
//! names the snapshot it saved; retention is applied to the claim's
//! series and the copies are listed from the repository for status.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use serde_json::Value;

use super::backup::{job_outcome, log_tail, pod_end};
use super::repository::open_indexed;
use super::snapshots::{create_once, delete_quietly, source_of};
use super::{Context, Error};
use crate::api::policy::{BackupPolicy, VolumeSource};
use crate::api::repository::Repository;
use crate::api::snapshots::{ClaimStatus, CopyPoint};
use crate::clock::{from_time, to_time};
use crate::runs::Outcome;
use crate::snapshot_jobs::{
    CopySource, copy_claim, copy_content, copy_content_name, copy_job, copy_snapshot,
    snapshot_resource,
};

/// How many copies status lists per claim.
pub const COPIES_SHOWN: usize = 10;

/// Where a claim's copy stands.
#[derive(Debug)]
pub enum CopyStep {
    /// Under way, reading this snapshot (`namespace/name`).
    Busy(Option<String>),
    /// Over: the snapshot saved, or why not.
    Done(Result<String, String>),
}

struct Apis {
    jobs: Api<Job>,
    claims: Api<PersistentVolumeClaim>,
    snapshots: Api<DynamicObject>,
    contents: Api<DynamicObject>,
}

impl Apis {
    fn new(ctx: &Context, ns: &str) -> Self {
        Apis {
            jobs: Api::namespaced(ctx.client.clone(), ns),
            claims: Api::namespaced(ctx.client.clone(), ns),
            snapshots: Api::namespaced_with(
                ctx.client.clone(),
                ns,
                &snapshot_resource("VolumeSnapshot"),
            ),
            contents: Api::all_with(
                ctx.client.clone(),
                &snapshot_resource("VolumeSnapshotContent"),
            ),
        }
    }

    /// Deletes the copy's four objects (each may be gone already), the Job
    /// last: while it stands the copy is under way, so a clean-up cut
    /// short is finished by the next round, and once it is gone nothing of
    /// the copy is left.
    async fn clean_up(&self, ns: &str, copy: &str) -> Result<(), Error> {
        delete_quietly(&self.claims, copy).await?;
        delete_quietly(&self.snapshots, copy).await?;
        delete_quietly(&self.contents, &copy_content_name(ns, copy)).await?;
        delete_quietly(&self.jobs, copy).await
    }
}

fn object(v: Value, what: &str) -> Result<DynamicObject, Error> {
    serde_json::from_value(v).map_err(|e| Error::Blocking(format!("{what} body: {e}")))
}

/// Moves copy `copy` on: starts it from `from` when given, else looks at
/// its Job and its snapshot. `st.last_copy_time` is when it started.
pub async fn advance_copy(
    ctx: &Context,
    policy: &BackupPolicy,
    repo: Option<&Repository>,
    copy: &str,
    from: Option<&CopySource>,
    st: &ClaimStatus,
    ready_timeout: chrono::TimeDelta,
) -> Result<CopyStep, Error> {
    let ns = policy.namespace().unwrap_or_default();
    let apis = Apis::new(ctx, &ns);
    if let Some(src) = from {
        let Some(repo) = repo else {
            return Ok(CopyStep::Done(Err(format!(
                "Repository {ns}/{} does not exist; create it, or name another in spec.repository",
                policy.spec.repository
            ))));
        };
        if src.handle.is_empty() {
            return Ok(CopyStep::Done(Err(format!(
                "VolumeSnapshot {}/{} has no snapshot handle yet; the next copy tries again",
                src.namespace, src.snapshot
            ))));
        }
        let content = object(copy_content(policy, copy, src), "VolumeSnapshotContent")?;
        create_once(&apis.contents, &content).await?;
        let snap = object(copy_snapshot(policy, copy, src), "VolumeSnapshot")?;
        create_once(&apis.snapshots, &snap).await?;
        let claim: PersistentVolumeClaim = serde_json::from_value(copy_claim(policy, copy, src))
            .map_err(|e| Error::Blocking(format!("claim body: {e}")))?;
        create_once(&apis.claims, &claim).await?;
        create_once(&apis.jobs, &copy_job(policy, repo, src, &ctx.image)).await?;
        return Ok(CopyStep::Busy(Some(format!(
            "{}/{}",
            src.namespace, src.snapshot
        ))));
    }
    let Some(job) = apis.jobs.get_opt(copy).await? else {
        apis.clean_up(&ns, copy).await?;
        return Ok(CopyStep::Done(Err(format!(
            "copy Job {ns}/{copy} was lost (deleted before it finished); the next copy tries again"
        ))));
    };
    let reading = source_of(job.annotations());
    if let Some(reason) = snapshot_trouble(&apis, copy, st, ctx, ready_timeout).await? {
        apis.clean_up(&ns, copy).await?;
        return Ok(CopyStep::Done(Err(reason)));
    }
    if job_outcome(&job, None).is_none() {
        return Ok(CopyStep::Busy(reading));
    }
    let (exit, log) = pod_end(ctx, &ns, copy, None).await;
    let log = log.unwrap_or_default();
    let outcome = job_outcome(&job, exit);
    let said = match log_tail(&log) {
        t if t.is_empty() => pod_reason(ctx, &ns, copy).await,
        t => t,
    };
    apis.clean_up(&ns, copy).await?;
    Ok(CopyStep::Done(match outcome {
        Some(Outcome::Failed { reason }) => Err(format!("{reason}: {said}")),
        _ => super::volumes::summary_in(&log)
            .and_then(|s| s["snapshot_id"].as_str().map(str::to_string))
            .ok_or_else(|| {
                format!(
                    "copy Job {ns}/{copy} ended without naming its snapshot: {}",
                    log_tail(&log)
                )
            }),
    }))
}

/// Why the Job's pod ended, when it left no log (its node lost, evicted):
/// the pod's reason and message.
async fn pod_reason(ctx: &Context, ns: &str, job: &str) -> String {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(ctx.client.clone(), ns);
    let params = kube::api::ListParams::default().labels(&format!("job-name={job}"));
    let Ok(list) = pods.list(&params).await else {
        return "its pod is gone and left no log".into();
    };
    list.items
        .iter()
        .filter_map(|p| p.status.as_ref())
        .filter_map(|s| {
            let reason = s.reason.clone()?;
            Some(match &s.message {
                Some(m) => format!("pod {reason}: {m}"),
                None => format!("pod {reason}"),
            })
        })
        .next()
        .unwrap_or_else(|| "its pod left no log".into())
}

/// Why the copy's own snapshot will not do: the driver's error, or not
/// ready within the timeout since the copy started.
async fn snapshot_trouble(
    apis: &Apis,
    copy: &str,
    st: &ClaimStatus,
    ctx: &Context,
    ready_timeout: chrono::TimeDelta,
) -> Result<Option<String>, Error> {
    let Some(snap) = apis.snapshots.get_opt(copy).await? else {
        return Ok(None);
    };
    let status = &snap.data["status"];
    if status["readyToUse"] == true {
        return Ok(None);
    }
    if let Some(e) = status["error"]["message"].as_str() {
        return Ok(Some(format!(
            "the copy's VolumeSnapshot {copy} failed: {e}"
        )));
    }
    let started = st.last_copy_time.as_ref().map(from_time);
    let late = started.is_some_and(|s| ctx.clock.now() - s > ready_timeout);
    Ok(late.then(|| {
        format!(
            "the copy's VolumeSnapshot {copy} was not ready within {} s (readyTimeout)",
            ready_timeout.num_seconds()
        )
    }))
}

/// After copy `id` of claim `ns/claim`: retention on the claim's series,
/// then its copies, newest first, as status lists them.
pub async fn copy_points(
    ctx: &Context,
    policy: &BackupPolicy,
    repo: &Repository,
    source: &VolumeSource,
    ns: &str,
    claim: &str,
    id: &str,
) -> Result<Vec<CopyPoint>, String> {
    let policy_ns = policy.namespace().unwrap_or_default();
    let handle = open_indexed(ctx, &policy_ns, repo)
        .await
        .map_err(|e| format!("repository {}: {e}", repo.name_any()))?;
    let identity = format!("{ns}/{claim}");
    let retention = source
        .copies
        .as_ref()
        .and_then(|c| c.retention.as_ref())
        .or(source.retention.as_ref());
    tokio::task::block_in_place(|| {
        let series =
            |h: &hokan_repo::IndexedRepository| -> Result<Vec<hokan_repo::SnapshotEntry>, String> {
                let mut list = h.snapshots().map_err(|e| e.to_string())?;
                list.retain(|e| {
                    e.snapshot.source == hokan_repo::SourceKind::VOLUME
                        && e.snapshot.identity == identity
                });
                list.sort_by_key(|e| std::cmp::Reverse(e.snapshot.time));
                Ok(list)
            };
        if let Some(saved) = series(&handle)?.iter().find(|e| e.id.to_hex() == id) {
            crate::work::apply_retention(
                &handle,
                saved,
                retention,
                "spec.volumes.copies.retention",
            )?;
        }
        Ok(series(&handle)?
            .iter()
            .take(COPIES_SHOWN)
            .map(|e| CopyPoint {
                snapshot_id: e.id.to_hex(),
                time: chrono::DateTime::from_timestamp(e.snapshot.time.secs, 0).map(to_time),
                volume_snapshot: e
                    .snapshot
                    .labels
                    .iter()
                    .find(|(k, _)| k == hokan_k8s::volumes::VOLUME_SNAPSHOT_LABEL)
                    .map(|(_, v)| v.clone()),
            })
            .collect())
    })
}
