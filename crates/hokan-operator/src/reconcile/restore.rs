//! `Restore`: one restore, from a Backup's snapshot or a snapshot id.
//!
//! - **resources** are restored in the operator's process with the calls
//!   `hokan k8s restore` makes (plan in Velero's order, then execute with
//!   the namespace mapping and the existing-object policy), into this
//!   cluster or into another one reached with a kubeconfig from a Secret;
//!   every object that could not be restored is an error in status naming
//!   it, every existing object left alone a warning.
//! - **etcd**: a Job on the chosen node writes the snapshot out as a file
//!   for `etcdctl snapshot restore` ([`crate::restore_jobs`]).
//! - **volume**: a Job mounts the claim and restores into it
//!   ([`super::volumes`]).
//!
//! The snapshot is resolved in the repository first (a Backup's snapshot
//! of the kind restored, or the id, prefix or `latest`), so status names
//! the full id whatever was asked. Steps, each safe to repeat: New →
//! InProgress → Completed / PartiallyFailed / Failed; a finished Restore
//! is never touched again.

use std::sync::Arc;
use std::time::Duration;

use hokan_k8s::restore::Action as RestoreAction;
use hokan_k8s::{Cluster, ExistingPolicy, RestoreOptions, SnapshotSource, Target};
use hokan_repo::{SnapshotEntry, SnapshotFilter, SourceKind};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::backup::{job_outcome, log_tail, pod_end};
use super::repository::{open_options, secret_value};
use super::{Context, Error, apply_status, ensure_job, event};
use crate::api::common::{
    Figures, KubeconfigRef, Phase, RunError, SnapshotRef, condition, set_condition,
};
use crate::api::repository::Repository;
use crate::api::restore::{ExistingResourcePolicy, ResourceRestore, Restore, RestoreStatus};
use crate::api::{Backup, BackupPolicy};
use crate::restore_jobs::{
    RESTORE_SERVICE_ACCOUNT, etcd_output, etcd_restore_job, resources_restore_job,
};
use crate::runs::{Outcome, begin, finish};

/// The condition reason of a restore the operator cannot do.
pub const UNSUPPORTED: &str = "Unsupported";

/// What a Restore restores, from its spec: exactly one section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `resources`.
    Resources,
    /// `etcd`.
    Etcd,
    /// `volume`.
    Volume,
}

/// The one section the spec gives, or what is wrong with it.
pub fn kind_of(restore: &Restore) -> Result<Kind, String> {
    let s = &restore.spec;
    let given: Vec<Kind> = [
        (s.resources.is_some(), Kind::Resources),
        (s.etcd.is_some(), Kind::Etcd),
        (s.volume.is_some(), Kind::Volume),
    ]
    .into_iter()
    .filter_map(|(on, k)| on.then_some(k))
    .collect();
    match given[..] {
        [k] => Ok(k),
        [] => Err("nothing to restore: give one of resources, etcd or volume".into()),
        _ => Err("give only one of resources, etcd and volume; make one Restore for each".into()),
    }
}

/// The library's restore options from the spec's resource section.
pub fn restore_options(r: &ResourceRestore) -> Result<RestoreOptions, String> {
    let f = &r.filter;
    if f.label_selector.is_some() {
        return Err(
            "labelSelector is not supported on restores yet; select by namespace \
                    and resource instead"
                .into(),
        );
    }
    Ok(RestoreOptions {
        include_namespaces: f.included_namespaces.clone(),
        exclude_namespaces: f.excluded_namespaces.clone(),
        include_resources: f.included_resources.clone(),
        exclude_resources: f.excluded_resources.clone(),
        namespace_mapping: r.namespace_mapping.clone(),
        existing: match r.existing_resource_policy {
            ExistingResourcePolicy::None => ExistingPolicy::None,
            ExistingResourcePolicy::Update => ExistingPolicy::Update,
        },
        ..Default::default()
    })
}

/// Where a restore stands after [`drive`].
enum Step {
    /// Waiting (for its Backup to finish, for its Job).
    Wait(Duration),
    /// Ended: how, and the reason of the `Complete` condition if not the phase.
    Done(Outcome, Option<&'static str>),
}

/// The reconcile: drive the restore one step, then write what it came to.
pub async fn reconcile(restore: Arc<Restore>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = restore.name_any();
    let ns = restore
        .namespace()
        .ok_or_else(|| Error::NoNamespace(format!("Restore {name}")))?;
    let mut status = restore.status.clone().unwrap_or_default();
    if status.phase.is_finished() {
        return Ok(Action::await_change());
    }
    let api: Api<Restore> = Api::namespaced(ctx.client.clone(), &ns);
    let (outcome, reason) = match drive(&restore, &ctx, &ns, &api, &mut status).await? {
        Step::Wait(after) => return Ok(Action::requeue(after)),
        Step::Done(outcome, reason) => (outcome, reason),
    };
    let generation = restore.meta().generation;
    let now = ctx.clock.now();
    finish(&mut status, outcome, generation, now);
    if let Some(reason) = reason {
        let message = status.failure_reason.clone().unwrap_or_default();
        let time = crate::clock::to_time(now);
        let c = &mut status.conditions;
        set_condition(
            c,
            condition::COMPLETE,
            true,
            reason,
            &message,
            generation,
            time,
        );
    }
    announce(&ctx, &restore, &status).await;
    apply_status(&api, &name, &status).await?;
    Ok(Action::await_change())
}

/// Drives the restore as far as it goes now.
async fn drive(
    restore: &Restore,
    ctx: &Context,
    ns: &str,
    api: &Api<Restore>,
    status: &mut RestoreStatus,
) -> Result<Step, Error> {
    let failed = |reason: String| Ok(Step::Done(Outcome::Failed { reason }, None));
    let kind = match kind_of(restore) {
        Ok(k) => k,
        Err(reason) => return failed(reason),
    };
    let from_snapshot = restore
        .spec
        .volume
        .as_ref()
        .is_some_and(|v| v.volume_snapshot.is_some());
    if from_snapshot {
        return Ok(
            match super::snapshot_restore::restore(restore, ctx, ns, status).await? {
                Some(outcome) => Step::Done(outcome, None),
                None => Step::Wait(super::snapshots::BUSY_POLL),
            },
        );
    }
    if kind == Kind::Volume {
        return Ok(
            match super::volumes::restore_volume(restore, ctx, ns, status).await? {
                Some(outcome) => Step::Done(outcome, None),
                // Short: a scaled-down workload's pods are awaited too.
                None => Step::Wait(super::snapshots::BUSY_POLL),
            },
        );
    }
    let source_kind = match kind {
        Kind::Etcd => SourceKind::ETCD,
        _ => SourceKind::K8S,
    };
    let (repo, query) = match source(restore, ctx, ns, &source_kind).await? {
        Ok(Some(found)) => found,
        // Woken when the Backup changes; the wait is a safety net.
        Ok(None) => return Ok(Step::Wait(Duration::from_secs(300))),
        Err(reason) => return failed(reason),
    };
    // Once resolved, the same snapshot: a newer one saved meanwhile does
    // not change what a running restore restores.
    let query = status.source.as_ref().map_or(query, |s| s.id.clone());
    let password = match secret_value(&ctx.client, ns, &repo.spec.password_secret_ref).await {
        Ok(p) => p,
        Err(reason) => return failed(format!("repository {}: {reason}", repo.name_any())),
    };
    let location = repo.spec.location.clone();
    let options = match open_options(ctx, ns, &repo).await {
        Ok(o) => o,
        Err(reason) => return failed(format!("repository {}: {reason}", repo.name_any())),
    };
    let filter = SnapshotFilter::default();
    let opened = tokio::task::block_in_place(|| {
        let r = hokan_repo::Repository::open(&location, &password, options)?;
        let entry = r.find_snapshot_of(&source_kind, &query, &filter)?;
        Ok::<_, hokan_repo::Error>((r.load_index()?, entry))
    });
    let (handle, entry) = match opened {
        Ok(found) => found,
        Err(e) => return failed(format!("repository {}: {e}", repo.name_any())),
    };
    status.source = Some(SnapshotRef {
        id: entry.id.to_hex(),
        kind: entry.snapshot.source.name().to_string(),
        identity: Some(entry.snapshot.identity.clone()).filter(|i| !i.is_empty()),
    });
    status.snapshot = Some(entry.id.to_hex().chars().take(8).collect());

    if kind == Kind::Etcd {
        return etcd_job(restore, ctx, ns, &repo, &entry, status).await;
    }
    let spec = restore
        .spec
        .resources
        .as_ref()
        .expect("kind says resources");
    let options = match restore_options(spec) {
        Ok(o) => o,
        Err(reason) => return failed(reason),
    };
    if spec.target_cluster.is_none() {
        return resources_job(restore, ctx, ns, &repo, &entry, status).await;
    }
    let cluster = match target_cluster(ctx, ns, spec.target_cluster.as_ref()).await {
        Ok(c) => c,
        Err(reason) => return failed(reason),
    };
    if begin(status, None, restore.meta().generation, ctx.clock.now()) {
        apply_status(api, &restore.name_any(), status).await?;
        let note = format!(
            "restoring snapshot {} into cluster {}",
            entry.id.short(),
            cluster.identity()
        );
        event(ctx, restore, false, "Started", "Restore", note).await;
    }
    // The library reads the repository synchronously between its API
    // calls, as the command does: a blocking section of its own.
    let done = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current()
            .block_on(restore_resources(&cluster, &handle, &entry, &options))
    });
    match done {
        Ok(r) => Ok(Step::Done(resources_outcome(status, r), None)),
        Err(reason) => failed(format!("resources: {reason}")),
    }
}

/// The repository and the snapshot query: the Backup's snapshot of `kind`
/// (None while the Backup runs), or the spec's snapshot id.
pub(super) async fn source(
    restore: &Restore,
    ctx: &Context,
    ns: &str,
    kind: &SourceKind,
) -> Result<Result<Option<(Repository, String)>, String>, Error> {
    let spec = &restore.spec;
    let (repository, query) = match (&spec.backup_name, &spec.snapshot_id) {
        (Some(_), Some(_)) => {
            return Ok(Err("give either backupName or snapshotId, not both".into()));
        }
        (None, None) => {
            return Ok(Err(
                "nothing to restore from: give backupName, or snapshotId and repository".into(),
            ));
        }
        (None, Some(id)) => match &spec.repository {
            Some(r) => (r.clone(), id.clone()),
            None => {
                return Ok(Err(
                    "snapshotId needs repository: name the Repository holding it".into(),
                ));
            }
        },
        (Some(b), None) => {
            let Some(backup) = Api::<Backup>::namespaced(ctx.client.clone(), ns)
                .get_opt(b)
                .await?
            else {
                return Ok(Err(format!("Backup {b} does not exist in {ns}")));
            };
            let phase = backup.status.as_ref().map(|s| s.phase).unwrap_or_default();
            if !phase.is_finished() {
                return Ok(Ok(None));
            }
            let snapshots = backup
                .status
                .as_ref()
                .map(|s| s.snapshots.clone())
                .unwrap_or_default();
            let Some(snap) = snapshots.iter().find(|s| s.kind == kind.name()) else {
                return Ok(Err(format!(
                    "Backup {b} ({}) saved no {} snapshot; restore from a Backup that did",
                    phase.as_str(),
                    kind.name()
                )));
            };
            let policy = match &backup.spec.policy {
                Some(p) => {
                    Api::<BackupPolicy>::namespaced(ctx.client.clone(), ns)
                        .get_opt(p)
                        .await?
                }
                None => None,
            };
            // The Restore's repository, else the Backup's, else its policy's.
            let Some(repository) = spec
                .repository
                .clone()
                .or_else(|| backup.spec.repository.clone())
                .or_else(|| policy.map(|p| p.spec.repository))
                .filter(|r| !r.trim().is_empty())
            else {
                return Ok(Err(format!(
                    "Backup {b}'s repository is unknown (it names none, nor a policy that \
                     exists); name the Repository in the Restore"
                )));
            };
            (repository, snap.id.clone())
        }
    };
    match Api::<Repository>::namespaced(ctx.client.clone(), ns)
        .get_opt(&repository)
        .await?
    {
        Some(r) => Ok(Ok(Some((r, query)))),
        None => Ok(Err(format!(
            "Repository {repository} does not exist in {ns}"
        ))),
    }
}

/// The cluster restored into: this one, or the one a kubeconfig Secret
/// reaches (its context, or the file's current one).
pub async fn target_cluster(
    ctx: &Context,
    ns: &str,
    target: Option<&KubeconfigRef>,
) -> Result<Cluster, String> {
    let Some(k) = target else {
        return Ok(Cluster::from_client(ctx.client.clone(), "in-cluster"));
    };
    let what = format!(
        "the target cluster's kubeconfig (Secret {ns}/{})",
        k.secret_ref.name
    );
    let bytes = secret_value(&ctx.client, ns, &k.secret_ref).await?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{what} is not UTF-8 text"))?;
    let file = kube::config::Kubeconfig::from_yaml(&text)
        .map_err(|e| format!("{what} is not a kubeconfig: {e}"))?;
    let identity = k
        .context
        .clone()
        .or_else(|| file.current_context.clone())
        .unwrap_or_else(|| k.secret_ref.name.clone());
    let options = kube::config::KubeConfigOptions {
        context: k.context.clone(),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(file, &options)
        .await
        .map_err(|e| format!("{what}: {e}; check its context and user"))?;
    hokan_k8s::cluster::install_crypto_provider();
    let client = kube::Client::try_from(config)
        .map_err(|e| format!("{what}: {e}; check its certificates and server address"))?;
    Ok(Cluster::from_client(client, identity))
}

/// What a resource restore did, object by object.
#[derive(Debug, Default)]
pub struct Restored {
    /// The library's totals.
    pub totals: hokan_k8s::restore::Totals,
    /// Objects the target refused: (target object, why).
    pub failed: Vec<(String, String)>,
    /// Existing objects left alone.
    pub left_alone: Vec<String>,
    /// Notes a person should read (a namespace created bare, ...).
    pub warnings: Vec<String>,
}

/// Restores the resources of `entry` into `cluster` in Velero's order, as
/// `options` say: the calls `hokan k8s restore` makes.
pub async fn restore_resources(
    cluster: &Cluster,
    repo: &hokan_repo::IndexedRepository,
    entry: &SnapshotEntry,
    options: &RestoreOptions,
) -> Result<Restored, String> {
    let source = SnapshotSource::new(repo, entry).map_err(|e| e.to_string())?;
    let discovery = cluster.discover().await.map_err(|e| e.to_string())?;
    let plan = hokan_k8s::plan(&source, Some(&discovery), options)
        .await
        .map_err(|e| e.to_string())?;
    let mut done = Restored::default();
    let report =
        hokan_k8s::execute_with(
            &plan,
            &source,
            Target::Cluster(cluster),
            options,
            |o| match &o.action {
                RestoreAction::Failed(why) => done.failed.push((o.target.clone(), why.clone())),
                RestoreAction::LeftAlone => done.left_alone.push(o.target.clone()),
                _ => {}
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    done.totals = report.totals;
    done.warnings = report.warnings;
    Ok(done)
}

/// Writes a resource restore's figures into status; its outcome.
fn resources_outcome(status: &mut RestoreStatus, r: Restored) -> Outcome {
    let t = &r.totals;
    let restored = t.created + t.updated + t.unchanged;
    status.figures = Some(Figures {
        objects: restored,
        ..Default::default()
    });
    status.warning_count = r.left_alone.len() as u64;
    let errors: Vec<RunError> = r
        .failed
        .into_iter()
        .map(|(object, message)| RunError {
            object: Some(object),
            file: None,
            message,
        })
        .collect();
    if errors.is_empty() {
        return Outcome::Completed;
    }
    if restored == 0 && t.left_alone == 0 {
        status.error_count = errors.len() as u64;
        let reason = format!(
            "no object could be restored; the first refusal: {}: {}",
            errors[0].object.as_deref().unwrap_or(""),
            errors[0].message
        );
        status.errors = errors.into_iter().take(crate::runs::MAX_ERRORS).collect();
        return Outcome::Failed { reason };
    }
    Outcome::PartiallyFailed { errors }
}

/// The etcd Job's step: waiting, or its outcome (exit 3: the snapshot was
/// written, some static pod files were not).
async fn etcd_job(
    restore: &Restore,
    ctx: &Context,
    ns: &str,
    repo: &Repository,
    entry: &SnapshotEntry,
    status: &mut RestoreStatus,
) -> Result<Step, Error> {
    let etcd = restore.spec.etcd.as_ref().expect("kind says etcd");
    let want = etcd_restore_job(restore, repo, etcd, &entry.id.to_hex(), &ctx.image);
    let name = want.name_any();
    let note = format!("running Job {name} on node {}", etcd.node_name);
    let again = "make a new Restore";
    let job = match ensure_job(ctx, ns, restore, want, status, note, again).await? {
        Ok(j) => j,
        Err(reason) => return Ok(Step::Done(Outcome::Failed { reason }, None)),
    };
    if job_outcome(&job, None).is_none() {
        return Ok(Step::Wait(Duration::from_secs(10)));
    }
    let (exit, log) = pod_end(ctx, ns, &name, Some(5)).await;
    let Some(outcome) = job_outcome(&job, exit) else {
        return Ok(Step::Wait(Duration::from_secs(10)));
    };
    if !matches!(outcome, Outcome::Failed { .. }) {
        let out = etcd_output(&restore.name_any(), etcd);
        status.written_to = Some(format!("{}:{}", etcd.node_name, out.file));
    }
    Ok(Step::Done(with_log(outcome, log.as_deref()), None))
}

/// The resource Job's step (a restore into this cluster): waiting, or its
/// outcome with every refused object named, from the command's JSON.
async fn resources_job(
    restore: &Restore,
    ctx: &Context,
    ns: &str,
    repo: &Repository,
    entry: &SnapshotEntry,
    status: &mut RestoreStatus,
) -> Result<Step, Error> {
    let spec = restore
        .spec
        .resources
        .as_ref()
        .expect("kind says resources");
    let id = entry.id.to_hex();
    let want = resources_restore_job(restore, repo, spec, &id, &ctx.image, ctx.job_retries);
    let name = want.name_any();
    let note = format!(
        "restoring snapshot {} into this cluster: Job {name} as {RESTORE_SERVICE_ACCOUNT}",
        entry.id.short()
    );
    let again = "make a new Restore";
    let job = match ensure_job(ctx, ns, restore, want, status, note, again).await? {
        Ok(j) => j,
        Err(reason) => return Ok(Step::Done(Outcome::Failed { reason }, None)),
    };
    if job_outcome(&job, None).is_none() {
        return Ok(Step::Wait(Duration::from_secs(10)));
    }
    let (exit, log) = pod_end(ctx, ns, &name, None).await;
    let log = log.unwrap_or_default();
    let Some(outcome) = job_outcome(&job, exit) else {
        return Ok(Step::Wait(Duration::from_secs(10)));
    };
    // Exit 3 is a restore that went through with refused objects: the
    // summary says which; any other failure is the log's end.
    Ok(Step::Done(
        match (outcome, restored_from_log(&log)) {
            (Outcome::Completed | Outcome::PartiallyFailed { .. }, Some(r)) => {
                resources_outcome(status, r)
            }
            (o, _) => with_log(o, Some(&log)),
        },
        None,
    ))
}

/// A failed Job's reason with the end of its log (what the command said).
fn with_log(outcome: Outcome, log: Option<&str>) -> Outcome {
    match outcome {
        Outcome::Failed { reason } => {
            let tail = log.map(log_tail).unwrap_or_default();
            let reason = if tail.is_empty() {
                reason
            } else {
                format!("{reason}; it ended with: {tail}")
            };
            Outcome::Failed { reason }
        }
        o => o,
    }
}

/// What `hokan k8s restore --json` reported: each refused object and each
/// one left alone from its outcome lines, the totals from its summary;
/// `None` without a summary (the command did not get that far).
pub fn restored_from_log(log: &str) -> Option<Restored> {
    let mut done = Restored::default();
    let mut summary = false;
    for v in log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
    {
        let text = |key: &str| v[key].as_str().unwrap_or_default().to_string();
        match v["message_type"].as_str() {
            Some("outcome") => match v["action"].as_str() {
                Some("failed") => done.failed.push((text("target"), text("detail"))),
                Some("left-alone") => done.left_alone.push(text("target")),
                _ => {}
            },
            Some("summary") => {
                summary = true;
                let t = &v["totals"];
                let n = |k: &str| t[k].as_u64().unwrap_or(0);
                let totals = &mut done.totals;
                totals.created = n("created");
                totals.updated = n("updated");
                totals.unchanged = n("unchanged");
                totals.left_alone = n("left_alone");
                totals.skipped = n("skipped");
                totals.failed = n("failed");
                done.warnings = v["warnings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|w| w.as_str().map(str::to_string))
                    .collect();
            }
            _ => {}
        }
    }
    summary.then_some(done)
}

/// The event for a finished restore.
async fn announce(ctx: &Context, restore: &Restore, status: &RestoreStatus) {
    let phase = status.phase;
    let note = match phase {
        Phase::Failed => status.failure_reason.clone().unwrap_or_default(),
        _ => match &status.written_to {
            Some(w) => format!("snapshot written to {w}"),
            None => format!(
                "{} object(s) restored, {} left as they were, {} error(s)",
                status.figures.as_ref().map(|f| f.objects).unwrap_or(0),
                status.warning_count,
                status.error_count
            ),
        },
    };
    let warning = phase != Phase::Completed;
    event(ctx, restore, warning, phase.as_str(), "Restore", note).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::restore::{EtcdRestore, RestoreSpec, VolumeRestore};
    use std::collections::BTreeMap;

    #[test]
    fn a_restore_names_exactly_one_thing() {
        let mut spec = RestoreSpec::default();
        assert!(kind_of(&Restore::new("r", spec.clone())).is_err());
        spec.volume = Some(VolumeRestore::default());
        assert_eq!(kind_of(&Restore::new("r", spec.clone())), Ok(Kind::Volume));
        spec.etcd = Some(EtcdRestore::default());
        let e = kind_of(&Restore::new("r", spec)).unwrap_err();
        assert!(e.contains("only one"), "{e}");
    }

    #[test]
    fn the_spec_becomes_the_commands_options() {
        let r = ResourceRestore {
            namespace_mapping: BTreeMap::from([("shop".to_string(), "shop-dr".to_string())]),
            existing_resource_policy: ExistingResourcePolicy::Update,
            ..Default::default()
        };
        let o = restore_options(&r).unwrap();
        assert_eq!(o.namespace_mapping["shop"], "shop-dr");
        assert_eq!(o.existing, ExistingPolicy::Update);
    }
}
