//! Pod volumes: a Backup's `volumes` and a Restore's `volume`.
//!
//! **Backup.** The operator lists the pods the policy's selection picks
//! (its namespaces, default the run's own, and its label selector; Running
//! pods on a node, not hokan's own Jobs), groups them by node and makes
//! one Job per node ([`crate::volume_jobs`]), once: the Jobs found by the
//! run's labels are the run's from then on, so a pod that moves during a
//! run does not make a second Job. When every Job is over, each Job's
//! result is read from its log (the JSON summary of `hokan k8s volumes
//! backup --json`): a volume that failed, or that was chosen but not found
//! on its node, is an error naming its pod and volume; a Job that failed
//! (its node lost, the command refused) makes every pod it was made for an
//! error with the Job's reason. Each claim's snapshot is found in the
//! repository by the run's tag (the run reads back its snapshots there),
//! and the section's retention is applied to each claim's series.
//!
//! **Restore.** A Job in the claim's namespace mounts the claim and
//! restores the chosen claim's snapshot into it; the UID shift between the
//! snapshot's namespace and the claim's is computed here with the
//! library's [`UidShift::between_namespaces`] and given to the Job. A
//! ReadWriteOnce claim mounted by a running pod can only be mounted on that
//! pod's node: the Job is placed there.

use std::collections::BTreeMap;
use std::sync::Arc;

use hokan_k8s::Cluster;
use hokan_k8s::filter::IncludesExcludes;
use hokan_k8s::volumes::{UidShift, snapshot_namespace};
use hokan_repo::{IndexedRepository, SnapshotFilter, SourceKind};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::backup::{job_outcome, log_tail, pod_end};
use super::repository::secret_value;
use super::{Context, Error, apply_status, event};
use crate::api::backup::{Backup, BackupStatus};
use crate::api::common::{Figures, JobRef, RunError, SnapshotRef, selector_string};
use crate::api::policy::VolumeSource;
use crate::api::repository::Repository;
use crate::api::restore::{Restore, RestoreStatus};
use crate::jobs::{RUN_LABEL, WORK_LABEL};
use crate::runs::{Outcome, begin};
use crate::volume_jobs::{
    NODE_ANNOTATION, PODS_ANNOTATION, PodName, VOLUME_BACKUP, VolumeRestoreTarget,
    volume_backup_job, volume_restore_job,
};
use crate::work::{apply_retention, run_tag};

/// Where a run's volumes stand.
pub enum VolumesStep {
    /// Its Jobs are running.
    Wait,
    /// It cannot be done at all: why.
    Fail(String),
    /// Done: the errors of the volumes that were not backed up, and how
    /// many snapshots retention forgot.
    Done(Vec<RunError>, u64),
}

/// The namespaces `source` looks in for a policy or run in `ns` (its
/// globs, default `ns`), or why its globs do not parse.
pub fn selected_namespaces(ns: &str, source: &VolumeSource) -> Result<IncludesExcludes, String> {
    let globs = if source.selection.namespaces.is_empty() {
        vec![ns.to_string()]
    } else {
        source.selection.namespaces.clone()
    };
    IncludesExcludes::new("spec.volumes.namespaces", &globs, &[]).map_err(|e| e.to_string())
}

/// The pods `source`'s pod selector picks, in every namespace (the caller
/// narrows them to [`selected_namespaces`]).
pub async fn selected_pods(ctx: &Context, source: &VolumeSource) -> Result<Vec<Pod>, Error> {
    let mut params = ListParams::default();
    if let Some(s) = source.selection.pod_selector.as_ref().map(selector_string)
        && !s.is_empty()
    {
        params = params.labels(&s);
    }
    Ok(Api::<Pod>::all(ctx.client.clone())
        .list(&params)
        .await?
        .items)
}

/// The pods `source` picks for a run in namespace `ns`, by node.
pub async fn chosen_pods(
    ctx: &Context,
    ns: &str,
    source: &VolumeSource,
) -> Result<Result<BTreeMap<String, Vec<PodName>>, String>, Error> {
    let namespaces = match selected_namespaces(ns, source) {
        Ok(n) => n,
        Err(reason) => return Ok(Err(reason)),
    };
    let pods = selected_pods(ctx, source).await?;
    let mut by_node: BTreeMap<String, Vec<PodName>> = BTreeMap::new();
    for p in pods {
        let pod_ns = p.namespace().unwrap_or_default();
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let ours = p.labels().contains_key(RUN_LABEL);
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
        if let (true, false, Some(node)) = (running && namespaces.includes(&pod_ns), ours, node) {
            by_node
                .entry(node)
                .or_default()
                .push((pod_ns, p.name_any()));
        }
    }
    Ok(Ok(by_node))
}

/// Drives a run's volumes: makes the node Jobs, waits for them, reads
/// their results, applies retention.
pub async fn backup_volumes(
    backup: &Arc<Backup>,
    ctx: &Context,
    ns: &str,
    repo: &Repository,
    handle: &IndexedRepository,
    source: &VolumeSource,
    status: &mut BackupStatus,
) -> Result<VolumesStep, Error> {
    let run = backup.name_any();
    if let Some(r) = &source.retention
        && let Err(e) = crate::convert::retention_policy(r, "spec.volumes.retention")
    {
        return Ok(VolumesStep::Fail(e.to_string()));
    }
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let mine =
        ListParams::default().labels(&format!("{RUN_LABEL}={run},{WORK_LABEL}={VOLUME_BACKUP}"));
    let jobs = jobs_api.list(&mine).await?.items;
    if jobs.is_empty() {
        let by_node = match chosen_pods(ctx, ns, source).await? {
            Ok(b) => b,
            Err(reason) => return Ok(VolumesStep::Fail(reason)),
        };
        if by_node.is_empty() {
            let error = RunError {
                message: "no Running pod matches spec.volumes (its namespaces and pod \
                          selector): no volume was backed up"
                    .into(),
                ..Default::default()
            };
            return Ok(VolumesStep::Done(vec![error], 0));
        }
        let mut made = Vec::new();
        for (node, pods) in &by_node {
            let want = volume_backup_job(backup, repo, source, node, pods, &ctx.image);
            let job = match jobs_api.create(&PostParams::default(), &want).await {
                Ok(j) => j,
                Err(kube::Error::Api(e)) if e.code == 409 => jobs_api.get(&want.name_any()).await?,
                Err(e) => return Err(e.into()),
            };
            made.push(job);
        }
        if status.job.is_none() {
            status.job = made.first().map(|j| JobRef {
                name: j.name_any(),
                namespace: ns.to_string(),
                uid: j.uid(),
            });
            let api: Api<Backup> = Api::namespaced(ctx.client.clone(), ns);
            apply_status(&api, &run, status).await?;
        }
        let names: Vec<String> = made.iter().map(|j| j.name_any()).collect();
        let note = format!(
            "volume backup Jobs on {} node(s): {}",
            by_node.len(),
            names.join(", ")
        );
        event(ctx, backup.as_ref(), false, "Started", "CreateJob", note).await;
        return Ok(VolumesStep::Wait);
    }
    if jobs.iter().any(|j| job_outcome(j, None).is_none()) {
        return Ok(VolumesStep::Wait);
    }
    let mut errors = Vec::new();
    for job in &jobs {
        errors.extend(job_errors(ctx, ns, job).await);
    }
    // Retention per claim, on the series of each snapshot this run saved.
    let tag = run_tag(&run);
    let retention = source.retention.as_ref();
    let forgotten = tokio::task::block_in_place(|| {
        let mut forgotten = 0;
        let entries = handle.snapshots().map_err(|e| e.to_string())?;
        for e in entries
            .iter()
            .filter(|e| e.snapshot.source == SourceKind::VOLUME && e.snapshot.tags.contains(&tag))
        {
            forgotten += apply_retention(handle, e, retention, "spec.volumes.retention")?;
        }
        Ok::<u64, String>(forgotten)
    });
    match forgotten {
        Ok(n) => Ok(VolumesStep::Done(errors, n)),
        Err(message) => {
            errors.push(RunError {
                message,
                ..Default::default()
            });
            Ok(VolumesStep::Done(errors, 0))
        }
    }
}

/// The errors of one node's finished Job: from its summary when it ran,
/// else one per pod it was made for, with the Job's reason.
async fn job_errors(ctx: &Context, ns: &str, job: &Job) -> Vec<RunError> {
    let name = job.name_any();
    let node = job
        .annotations()
        .get(NODE_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let (exit, log) = pod_end(ctx, ns, &name, Some(5)).await;
    let log = log.unwrap_or_default();
    if let Some(summary) = summary_in(&log)
        && matches!(exit, Some(0) | Some(3))
    {
        return summary_errors(&summary, &node);
    }
    let reason = match job_outcome(job, exit) {
        Some(Outcome::Failed { reason }) => reason,
        _ => format!("Job {name} left no summary in its log"),
    };
    let tail = log_tail(&log);
    let reason = if tail.is_empty() {
        reason
    } else {
        format!("{reason}; it ended with: {tail}")
    };
    let pods = job
        .annotations()
        .get(PODS_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    pods.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| RunError {
            object: Some(format!("pods/{p}")),
            file: None,
            message: format!("the volumes of pod {p} on node {node} were not backed up: {reason}"),
        })
        .collect()
}

/// The JSON summary line of a `hokan ... --json` log, if there is one.
pub fn summary_in(log: &str) -> Option<Value> {
    log.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(|v| v["message_type"] == "summary")
}

/// The errors a node's summary names: volumes that failed, volumes chosen
/// but not found on the node, files that could not be read.
pub fn summary_errors(summary: &Value, node: &str) -> Vec<RunError> {
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let mut errors = Vec::new();
    for v in summary["volumes"].as_array().into_iter().flatten() {
        let object = Some(format!("pods/{}/{}", text(v, "namespace"), text(v, "pod")));
        let what = format!(
            "volume {} ({}) on node {node}",
            text(v, "volume"),
            text(v, "identity")
        );
        if let Some(e) = v["error"].as_str() {
            errors.push(RunError {
                object: object.clone(),
                file: None,
                message: format!("{what} was not backed up: {e}"),
            });
        }
        for w in v["warnings"].as_array().into_iter().flatten() {
            errors.push(RunError {
                object: object.clone(),
                file: None,
                message: format!("{what}: {}", w.as_str().unwrap_or_default()),
            });
        }
    }
    for s in summary["skipped"].as_array().into_iter().flatten() {
        if s["missing"] == true {
            errors.push(RunError {
                object: Some(format!("pods/{}/{}", text(s, "namespace"), text(s, "pod"))),
                file: None,
                message: format!(
                    "volume {} on node {node} was not backed up: {}",
                    text(s, "volume"),
                    text(s, "reason")
                ),
            });
        }
    }
    errors
}

/// Drives a volume restore: resolve the snapshot, make the Job, read its
/// result. `None` while it runs. Workloads scaled down for it are scaled
/// back once it has ended, whatever the end.
pub async fn restore_volume(
    restore: &Restore,
    ctx: &Context,
    ns: &str,
    status: &mut RestoreStatus,
) -> Result<Option<Outcome>, Error> {
    let outcome = drive_volume(restore, ctx, ns, status).await?;
    if outcome.is_some() {
        super::scale::scale_back(ctx, ns, status).await?;
    }
    Ok(outcome)
}

async fn drive_volume(
    restore: &Restore,
    ctx: &Context,
    ns: &str,
    status: &mut RestoreStatus,
) -> Result<Option<Outcome>, Error> {
    let failed = |reason: String| Ok(Some(Outcome::Failed { reason }));
    let spec = restore.spec.volume.clone().expect("kind says volume");
    let target_ns = spec.namespace.clone().unwrap_or_else(|| ns.to_string());
    if target_ns != ns {
        return failed(format!(
            "claim {target_ns}/{} is not in the Restore's namespace {ns}: a pod mounts only \
             claims of its own namespace, and the restore Job reads the repository's Secret \
             there; create the Restore (and a Repository with its password Secret) in {target_ns}",
            spec.claim_name
        ));
    }
    let (repo, query) = match resolve(restore, ctx, ns, &spec).await? {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(None),
        Err(reason) => return failed(reason),
    };
    let query = status.source.as_ref().map_or(query, |s| s.id.clone());
    let password = match secret_value(&ctx.client, ns, &repo.spec.password_secret_ref).await {
        Ok(p) => p,
        Err(reason) => return failed(format!("repository {}: {reason}", repo.name_any())),
    };
    let location = repo.spec.location.clone();
    let options = ctx.open_options.clone();
    // `sourceClaim` narrows an id or `latest` to that claim's snapshots.
    let filter = SnapshotFilter {
        identity: spec.source_claim.clone(),
        ..Default::default()
    };
    let found = tokio::task::block_in_place(|| {
        hokan_repo::Repository::open(&location, &password, options)?.find_snapshot_of(
            &SourceKind::VOLUME,
            &query,
            &filter,
        )
    });
    let entry = match found {
        Ok(e) => e,
        Err(e) => return failed(format!("repository {}: {e}", repo.name_any())),
    };
    status.source = Some(SnapshotRef {
        id: entry.id.to_hex(),
        kind: entry.snapshot.source.name().to_string(),
        identity: Some(entry.snapshot.identity.clone()).filter(|i| !i.is_empty()),
    });
    status.snapshot = Some(entry.id.to_hex().chars().take(8).collect());

    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let name = crate::jobs::job_name(&restore.name_any(), "volume");
    let job = match jobs.get_opt(&name).await? {
        Some(j) => j,
        None if status.job.is_some() => {
            return failed(format!(
                "Job {name} was lost (deleted before it finished); make a new Restore"
            ));
        }
        None => {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
            let Some(claim) = claims.get_opt(&spec.claim_name).await? else {
                return failed(format!(
                    "claim {ns}/{} does not exist; create it (bound to a volume large enough) first",
                    spec.claim_name
                ));
            };
            if spec.scale_down == Some(true) {
                match super::scale::scale_down(ctx, ns, &spec.claim_name, status).await? {
                    Err(reason) => return failed(reason),
                    Ok(true) => {
                        // Recorded before anything is scaled.
                        let api: Api<Restore> = Api::namespaced(ctx.client.clone(), ns);
                        apply_status(&api, &restore.name_any(), status).await?;
                    }
                    Ok(false) => {}
                }
                super::scale::hold_down(ctx, ns, status).await?;
                let left = super::scale::pods_mounting(ctx, ns, &spec.claim_name).await?;
                if !left.is_empty() {
                    return Ok(None);
                }
            }
            let block = claim.spec.as_ref().and_then(|s| s.volume_mode.as_deref()) == Some("Block");
            // A device has no owners to move.
            let uid_range = match shift(ctx, &entry.snapshot, ns, spec.shift_uids).await {
                Ok(s) => s.filter(|_| !block).map(|s| s.to_string()),
                Err(reason) => return failed(reason),
            };
            let target = VolumeRestoreTarget {
                claim: spec.claim_name.clone(),
                snapshot: entry.id.to_hex(),
                uid_range,
                node: mounted_on(ctx, ns, &claim).await?,
                block,
            };
            let want = volume_restore_job(restore, &repo, &target, &ctx.image);
            let made = jobs.create(&PostParams::default(), &want).await?;
            let note = format!(
                "running Job {name}: snapshot {} into claim {ns}/{}{}",
                entry.id.short(),
                spec.claim_name,
                target
                    .uid_range
                    .map(|r| format!(", owners moved {r}"))
                    .unwrap_or_default()
            );
            event(ctx, restore, false, "Started", "CreateJob", note).await;
            made
        }
    };
    let job_ref = JobRef {
        name: name.clone(),
        namespace: ns.to_string(),
        uid: job.uid(),
    };
    if begin(
        status,
        Some(job_ref),
        restore.meta().generation,
        ctx.clock.now(),
    ) {
        let api: Api<Restore> = Api::namespaced(ctx.client.clone(), ns);
        apply_status(&api, &restore.name_any(), status).await?;
    }
    let Some(outcome) = job_outcome(&job, None) else {
        return Ok(None);
    };
    let (exit, log) = pod_end(ctx, ns, &name, Some(5)).await;
    let log = log.unwrap_or_default();
    let summary = summary_in(&log);
    if let Some(s) = &summary {
        status.figures = Some(Figures {
            bytes_read: s["bytes_restored"].as_u64().unwrap_or(0),
            files: s["files_restored"].as_u64().unwrap_or(0),
            ..Default::default()
        });
        status.written_to = Some(format!("claim {ns}/{}", spec.claim_name));
    }
    Ok(Some(match (outcome, summary) {
        (Outcome::Completed, _) => Outcome::Completed,
        // The command ends non-zero on files it could not write (or
        // warnings) after restoring the rest: its summary counts them.
        (_, Some(s)) if s["files_restored"].as_u64().unwrap_or(0) > 0 => Outcome::PartiallyFailed {
            errors: vec![RunError {
                object: Some(format!("persistentvolumeclaims/{ns}/{}", spec.claim_name)),
                file: None,
                message: format!(
                    "{} file(s) could not be restored, {} warning(s); the log of Job {name} \
                         names them: {}",
                    s["files_failed"].as_u64().unwrap_or(0),
                    s["warnings"].as_u64().unwrap_or(0),
                    log_tail(&log)
                ),
            }],
        },
        (_, _) => {
            let reason = match job_outcome(&job, exit) {
                Some(Outcome::Failed { reason }) => reason,
                _ => format!("Job {name} failed"),
            };
            Outcome::Failed {
                reason: format!("{reason}; it ended with: {}", log_tail(&log)),
            }
        }
    }))
}

/// The repository and the snapshot query: from a Backup, its snapshot of
/// the chosen claim; else the spec's id.
async fn resolve(
    restore: &Restore,
    ctx: &Context,
    ns: &str,
    spec: &crate::api::restore::VolumeRestore,
) -> Result<Result<Option<(Repository, String)>, String>, Error> {
    let (repo, query) = match super::restore::source(restore, ctx, ns, &SourceKind::VOLUME).await? {
        Ok(Some(found)) => found,
        other => return Ok(other),
    };
    let Some(b) = &restore.spec.backup_name else {
        return Ok(Ok(Some((repo, query))));
    };
    let backup = Api::<Backup>::namespaced(ctx.client.clone(), ns)
        .get(b)
        .await?;
    let snapshots = backup.status.map(|s| s.snapshots).unwrap_or_default();
    let volumes: Vec<&SnapshotRef> = snapshots
        .iter()
        .filter(|s| s.kind == SourceKind::VOLUME.name())
        .collect();
    let identity = |s: &SnapshotRef| s.identity.clone().unwrap_or_default();
    let picked: Vec<&&SnapshotRef> = match &spec.source_claim {
        Some(c) => volumes.iter().filter(|s| identity(s) == *c).collect(),
        None => volumes
            .iter()
            .filter(|s| identity(s).rsplit('/').next() == Some(spec.claim_name.as_str()))
            .collect(),
    };
    let stored: Vec<String> = volumes.iter().map(|s| identity(s)).collect();
    match picked[..] {
        [one] => Ok(Ok(Some((repo, one.id.clone())))),
        [] => Ok(Err(format!(
            "Backup {b} saved no snapshot of claim {}; it has {}: name one in sourceClaim",
            spec.source_claim.as_deref().unwrap_or(&spec.claim_name),
            stored.join(", ")
        ))),
        _ => Ok(Err(format!(
            "Backup {b} saved several claims named {}: name one as namespace/name in \
             sourceClaim ({})",
            spec.claim_name,
            stored.join(", ")
        ))),
    }
}

/// The UID shift from the snapshot's namespace to `target`: none when
/// they are the same, when `shiftUids` is false, or (by default) when a
/// namespace has no UID range (not OpenShift).
async fn shift(
    ctx: &Context,
    snapshot: &hokan_repo::Snapshot,
    target: &str,
    shift_uids: Option<bool>,
) -> Result<Option<UidShift>, String> {
    if shift_uids == Some(false) {
        return Ok(None);
    }
    let Some(from) = snapshot_namespace(snapshot).filter(|f| *f != target) else {
        return Ok(None);
    };
    let cluster = Cluster::from_client(ctx.client.clone(), "in-cluster");
    match UidShift::between_namespaces(&cluster, from, target).await {
        Ok(s) => Ok(Some(s)),
        Err(hokan_k8s::Error::NoUidRange { .. }) if shift_uids.is_none() => Ok(None),
        Err(e) => Err(format!("UID shift from {from} to {target}: {e}")),
    }
}

/// The node of a Running pod mounting `claim`, when the claim is
/// ReadWriteOnce (mountable on one node only).
async fn mounted_on(
    ctx: &Context,
    ns: &str,
    claim: &PersistentVolumeClaim,
) -> Result<Option<String>, Error> {
    let modes = claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    if !modes.iter().any(|m| m == "ReadWriteOnce") {
        return Ok(None);
    }
    let name = claim.name_any();
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    Ok(pods.items.into_iter().find_map(|p| {
        let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
        let mounts = super::scale::mounts_claim(&p, &name);
        (running && mounts).then_some(p.spec?.node_name).flatten()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_nodes_summary_names_the_pod_and_volume_of_each_error() {
        let log = format!(
            "{{\"message_type\":\"status\"}}\n{}\n",
            json!({"message_type": "summary", "node": "w1", "failed": 1,
                "volumes": [
                    {"namespace": "shop", "pod": "db-0", "volume": "data", "identity": "shop/data",
                     "snapshot_id": "ab", "warnings": []},
                    {"namespace": "shop", "pod": "web-0", "volume": "cache",
                     "identity": "shop/web-0/cache", "error": "permission denied"}],
                "skipped": [
                    {"namespace": "shop", "pod": "db-1", "volume": "data", "reason": "no directory x",
                     "missing": true},
                    {"namespace": "shop", "pod": "db-1", "volume": "conf", "reason": "a configMap"}]})
        );
        let s = summary_in(&log).unwrap();
        let e = summary_errors(&s, "w1");
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].object.as_deref(), Some("pods/shop/web-0"));
        assert!(
            e[0].message.contains("cache") && e[0].message.contains("permission denied"),
            "{e:?}"
        );
        assert_eq!(e[1].object.as_deref(), Some("pods/shop/db-1"));
        assert!(e[1].message.contains("no directory"), "{e:?}");
        assert!(summary_in("error: refused\n").is_none());
    }
}
