//! `Backup`: one run. The sources come from the Backup itself or its
//! policy; etcd runs as a Job (`hokan etcd backup`, retention by its
//! flags), resources in the operator's process (retention after), and the
//! run's snapshots and figures are read back from the repository by the
//! run's tag. A finished run is never touched again.
//!
//! Steps, each safe to repeat: New → InProgress (with the Job, if any) →
//! wait for the Job → resources → Completed / PartiallyFailed / Failed.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::repository::{open_indexed, open_options, secret_value};
use super::{Context, Error, apply_status, ensure_job, event};
use crate::api::backup::Backup;
use crate::api::common::RunError;
use crate::api::policy::{BackupPolicy, BackupSources};
use crate::api::repository::Repository;
use crate::jobs::etcd_backup_job;
use crate::metrics::RunReport;
use crate::runs::{Outcome, begin, finish};
use crate::work::{Saved, backup_resources, saved_by};

/// What a run does, resolved from the Backup and its policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The Repository's name.
    pub repository: String,
    /// The sources.
    pub what: BackupSources,
}

/// Resolves the run's repository and sources: its own, else its policy's.
pub fn plan(backup: &Backup, policy: Option<&BackupPolicy>) -> Result<Plan, String> {
    let what = if !backup.spec.what.is_empty() {
        backup.spec.what.clone()
    } else if let Some(p) = policy {
        p.spec.what.clone()
    } else if let Some(name) = &backup.spec.policy {
        return Err(format!(
            "BackupPolicy {name} does not exist; create it, or give the sources in the Backup"
        ));
    } else {
        return Err("nothing to back up: name a policy, or give etcd, resources or volumes".into());
    };
    let repository = backup
        .spec
        .repository
        .clone()
        .or_else(|| policy.map(|p| p.spec.repository.clone()))
        .filter(|r| !r.trim().is_empty())
        .ok_or("no repository: name one, or a policy that names one")?;
    Ok(Plan { repository, what })
}

/// How a Job ended, from its conditions; `exit_code` is its container's,
/// when known (3: the snapshot was saved, some entries unreadable).
pub fn job_outcome(job: &Job, exit_code: Option<i32>) -> Option<Outcome> {
    let status = job.status.as_ref()?;
    let cond = |kind: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    if cond("Complete").is_some() || status.succeeded.unwrap_or(0) > 0 {
        return Some(Outcome::Completed);
    }
    // A failed pod is the end only past the Job's backoff limit; before,
    // the Job controller makes another (the condition follows).
    let failed = cond("Failed");
    let limit = job.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(6);
    if failed.is_none() && status.failed.unwrap_or(0) <= limit {
        return None;
    }
    if exit_code == Some(3) {
        return Some(Outcome::PartiallyFailed {
            errors: vec![RunError {
                message: format!(
                    "the work was done, but some items could not be (exit code 3); the log of Job {} names them",
                    job.name_any()
                ),
                ..Default::default()
            }],
        });
    }
    let why = failed
        .and_then(|c| c.message.clone())
        .unwrap_or_else(|| "its pod failed".into());
    Some(Outcome::Failed {
        reason: format!(
            "Job {} failed: {why}{}; its log says why",
            job.name_any(),
            exit_code
                .map(|c| format!(" (exit code {c})"))
                .unwrap_or_default()
        ),
    })
}

/// Where a run stands after [`drive`].
enum Step {
    /// Waiting (for its Job).
    Wait(Action),
    /// Cannot go on: the reason, and the repository's location if known.
    Fail(String, String),
    /// Done: what the repository holds of the run.
    Done {
        location: String,
        saved: Saved,
        errors: Vec<RunError>,
        forgotten: u64,
    },
}

/// The reconcile: drive the run one step, then write what it came to.
pub async fn reconcile(backup: Arc<Backup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let run = backup.name_any();
    let ns = backup
        .namespace()
        .ok_or_else(|| Error::NoNamespace(format!("Backup {run}")))?;
    if backup
        .status
        .as_ref()
        .is_some_and(|s| s.phase.is_finished())
    {
        return Ok(Action::await_change());
    }
    // The cache may not have seen this reconcile's last status write yet
    // (its own write wakes it again): read the run afresh, so a finished
    // run is not finished a second time with what a repeat finds (no
    // retention figures, later timestamps).
    let api: Api<Backup> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(backup) = api.get_opt(&run).await?.map(Arc::new) else {
        return Ok(Action::await_change());
    };
    let mut status = backup.status.clone().unwrap_or_default();
    if status.phase.is_finished() {
        return Ok(Action::await_change());
    }
    let generation = backup.meta().generation;
    let (outcome, location, saved) = match drive(&backup, &ctx, &ns, &api, &mut status).await? {
        Step::Wait(action) => return Ok(action),
        Step::Fail(reason, location) => (Outcome::Failed { reason }, location, None),
        Step::Done {
            location,
            saved,
            errors,
            forgotten,
        } => {
            write_saved(&mut status, &saved, forgotten);
            let outcome = if saved.snapshots.is_empty() {
                Outcome::Failed {
                    reason: errors
                        .first()
                        .map(|e| e.message.clone())
                        .unwrap_or_else(|| "no snapshot was saved".into()),
                }
            } else if errors.is_empty() {
                Outcome::Completed
            } else {
                Outcome::PartiallyFailed { errors }
            };
            (outcome, location, Some(saved))
        }
    };
    finish(&mut status, outcome, generation, ctx.clock.now());
    record(&ctx, &backup, &location, &status, saved.as_ref());
    announce(&ctx, &backup, &status).await;
    apply_status(&api, &run, &status).await?;
    Ok(Action::await_change())
}

/// Drives the run as far as it goes now: resolve, start (the etcd Job),
/// wait for the Job, back up resources, read the run back.
async fn drive(
    backup: &Arc<Backup>,
    ctx: &Context,
    ns: &str,
    api: &Api<Backup>,
    status: &mut crate::api::BackupStatus,
) -> Result<Step, Error> {
    let run = backup.name_any();
    let generation = backup.meta().generation;
    let policy = match &backup.spec.policy {
        Some(p) => {
            Api::<BackupPolicy>::namespaced(ctx.client.clone(), ns)
                .get_opt(p)
                .await?
        }
        None => None,
    };
    let plan = match plan(backup, policy.as_ref()) {
        Ok(p) => p,
        Err(reason) => return Ok(Step::Fail(reason, String::new())),
    };
    let Some(repo) = Api::<Repository>::namespaced(ctx.client.clone(), ns)
        .get_opt(&plan.repository)
        .await?
    else {
        let reason = format!("Repository {} does not exist in {ns}", plan.repository);
        return Ok(Step::Fail(reason, String::new()));
    };
    let location = repo.spec.location.clone();
    let fail = |reason: String| Ok(Step::Fail(reason, location.clone()));

    // etcd: a Job, made once under its deterministic name, and only into a
    // repository that opens: a Job into a missing one would wait for its
    // volume (or fail) without saying why.
    let mut errors = Vec::new();
    let mut forgotten = 0;
    if let Some(etcd) = &plan.what.etcd {
        if status.job.is_none()
            && let Err(reason) = check_repository(ctx, ns, &repo).await
        {
            return fail(format!("repository {}: {reason}", plan.repository));
        }
        let Some((outcome, forgot)) = etcd_job(backup, ctx, ns, &repo, etcd, status).await? else {
            return Ok(Step::Wait(Action::requeue(Duration::from_secs(10))));
        };
        match outcome {
            Outcome::Failed { reason } => return fail(reason),
            Outcome::PartiallyFailed { errors: e } => errors = e,
            Outcome::Completed => {}
        }
        forgotten += forgot;
    }
    if begin(status, None, generation, ctx.clock.now()) {
        apply_status(api, &run, status).await?;
    }

    // Resources, in-process, unless this run already saved them.
    let mut handle = match open_indexed(ctx, ns, &repo).await {
        Ok(r) => r,
        Err(reason) => return fail(format!("repository {}: {reason}", plan.repository)),
    };
    if let Some(resources) = &plan.what.resources {
        let done = tokio::task::block_in_place(|| saved_by(&handle, &run))
            .map(|s| s.snapshots.iter().any(|r| r.kind == "k8s"))
            .unwrap_or(false);
        if !done {
            let cluster = hokan_k8s::Cluster::from_client(ctx.client.clone(), "in-cluster");
            match backup_resources(&cluster, &mut handle, resources, &run).await {
                Ok(s) => {
                    errors.extend(s.errors);
                    forgotten += s.forgotten;
                }
                Err(reason) => return fail(format!("resources: {reason}")),
            }
        }
    }
    if let Some(volumes) = &plan.what.volumes {
        use super::volumes::{VolumesStep, backup_volumes};
        match backup_volumes(backup, ctx, ns, &repo, &handle, volumes, status).await? {
            VolumesStep::Wait => return Ok(Step::Wait(Action::requeue(Duration::from_secs(10)))),
            VolumesStep::Fail(reason) => return fail(format!("volumes: {reason}")),
            VolumesStep::Done(e, forgot) => {
                errors.extend(e);
                forgotten += forgot;
            }
        }
    }
    let saved = tokio::task::block_in_place(|| saved_by(&handle, &run)).unwrap_or_default();
    Ok(Step::Done {
        location,
        saved,
        errors,
        forgotten,
    })
}

/// Opens the repository as the run will (its config, with the password),
/// without loading its index. Blocking work in place.
async fn check_repository(ctx: &Context, ns: &str, repo: &Repository) -> Result<(), String> {
    let password = secret_value(&ctx.client, ns, &repo.spec.password_secret_ref).await?;
    let options = open_options(ctx, ns, repo).await?;
    let location = repo.spec.location.clone();
    tokio::task::block_in_place(|| hokan_repo::Repository::open(&location, &password, options))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The etcd Job of the run: made when missing (a Job missing after it was
/// made is lost: Failed), the run started with it; its outcome once over,
/// with how many snapshots its retention forgot.
async fn etcd_job(
    backup: &Arc<Backup>,
    ctx: &Context,
    ns: &str,
    repo: &Repository,
    etcd: &crate::api::EtcdSource,
    status: &mut crate::api::BackupStatus,
) -> Result<Option<(Outcome, u64)>, Error> {
    let want = etcd_backup_job(backup, repo, etcd, &ctx.image, ctx.job_retries);
    let name = want.name_any();
    let note = format!("running Job {name}");
    let again = "run the backup again";
    let job = match ensure_job(ctx, ns, backup.as_ref(), want, status, note, again).await? {
        Ok(j) => j,
        Err(reason) => return Ok(Some((Outcome::Failed { reason }, 0))),
    };
    if job_outcome(&job, None).is_none() {
        return Ok(None);
    }
    let (exit, log) = pod_end(ctx, ns, &name, Some(5)).await;
    let log = log.unwrap_or_default();
    // The reason in status carries the end of the log: what the command
    // said (etcd unreachable, the store refusing), not only its exit code;
    // on success its summary says what retention forgot.
    Ok(job_outcome(&job, exit).map(|o| match o {
        Outcome::Failed { reason } if !log_tail(&log).is_empty() => (
            Outcome::Failed {
                reason: format!("{reason}; it ended with: {}", log_tail(&log)),
            },
            0,
        ),
        o => (o, forgotten_in(&log)),
    }))
}

/// How many snapshots the retention of `hokan ... --json` forgot, from the
/// summary line of its output (0 without one).
fn forgotten_in(log: &str) -> u64 {
    log.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .find(|v| v["message_type"] == "summary")
        .and_then(|v| Some(v["forget"]["remove"].as_array()?.len() as u64))
        .unwrap_or(0)
}

/// The event for a finished run.
async fn announce(ctx: &Context, backup: &Backup, status: &crate::api::BackupStatus) {
    let phase = status.phase;
    let note = match phase {
        crate::api::Phase::Failed => status.failure_reason.clone().unwrap_or_default(),
        _ => format!(
            "{} snapshot(s), {} read, {} error(s)",
            status.snapshots.len(),
            status.size.clone().unwrap_or_default(),
            status.error_count
        ),
    };
    let warning = phase != crate::api::Phase::Completed;
    event(ctx, backup, warning, phase.as_str(), "Backup", note).await;
}

/// How long the end of a failed Job's log in status may be.
const LOG_TAIL: usize = 600;

/// The exit code of the Job's finished container, from its pod, and the
/// last lines of that pod's log:
/// `tail_lines` of it (all of it, up to 4 MiB, with `None`).
pub(crate) async fn pod_end(
    ctx: &Context,
    ns: &str,
    job: &str,
    tail_lines: Option<i64>,
) -> (Option<i32>, Option<String>) {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(ctx.client.clone(), ns);
    let Ok(list) = pods
        .list(&kube::api::ListParams::default().labels(&format!("job-name={job}")))
        .await
    else {
        return (None, None);
    };
    let exit = |p: &k8s_openapi::api::core::v1::Pod| {
        p.status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .iter()
            .find_map(|c| Some(c.state.as_ref()?.terminated.as_ref()?.exit_code))
    };
    let Some((pod, code)) = list.items.iter().find_map(|p| Some((p, exit(p)?))) else {
        return (None, None);
    };
    let params = kube::api::LogParams {
        tail_lines,
        limit_bytes: Some(4 << 20),
        ..Default::default()
    };
    let log = pods.logs(&pod.name_any(), &params).await.ok();
    (Some(code), log)
}

/// The last lines of `log`, joined, cut to [`LOG_TAIL`] bytes from the end.
pub(crate) fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines[lines.len().saturating_sub(3)..].join(" | ");
    if joined.len() <= LOG_TAIL {
        return joined;
    }
    let mut start = joined.len() - LOG_TAIL;
    while !joined.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &joined[start..])
}

/// Writes what the repository holds of the run into its status.
fn write_saved(status: &mut crate::api::BackupStatus, saved: &Saved, forgotten: u64) {
    status.snapshots = saved.snapshots.clone();
    // The column shows the run's main snapshot (etcd, resources), not the
    // static pod resources saved before it.
    status.snapshot = saved
        .snapshots
        .iter()
        .find(|s| s.kind != "fs")
        .or(saved.snapshots.first())
        .map(|s| s.id.chars().take(8).collect());
    status.figures = Some(saved.figures.clone());
    status.size = Some(crate::convert::human_bytes(saved.figures.bytes_read));
    status.forgotten = Some(forgotten);
}

/// The run's metrics, under the command's names.
fn record(
    ctx: &Context,
    backup: &Backup,
    location: &str,
    status: &crate::api::BackupStatus,
    saved: Option<&Saved>,
) {
    let start = status
        .start_timestamp
        .as_ref()
        .map(crate::clock::from_time)
        .unwrap_or_else(|| ctx.clock.now());
    let end = ctx.clock.now();
    let phase = status.phase;
    let namespace = backup.namespace().unwrap_or_default();
    ctx.endpoints.metrics.record_run(&RunReport {
        command: "backup",
        repository: location,
        namespace: &namespace,
        policy: backup.spec.policy.as_deref().unwrap_or(""),
        success: phase == crate::api::Phase::Completed,
        exit_code: match phase {
            crate::api::Phase::Completed => 0,
            crate::api::Phase::PartiallyFailed => 3,
            _ => 1,
        },
        start,
        end,
        figures: saved.map(|s| &s.figures),
        errors: status.error_count,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::backup::BackupSpec;
    use crate::api::policy::{BackupPolicySpec, EtcdSource};
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    fn policy() -> BackupPolicy {
        BackupPolicy::new(
            "etcd",
            BackupPolicySpec {
                repository: "main".into(),
                schedule: "@daily".into(),
                what: BackupSources {
                    etcd: Some(EtcdSource::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
    }

    #[test]
    fn a_run_takes_its_policys_sources_and_repository() {
        let b = Backup::new(
            "etcd-now",
            BackupSpec {
                policy: Some("etcd".into()),
                ..Default::default()
            },
        );
        let p = plan(&b, Some(&policy())).unwrap();
        assert_eq!(p.repository, "main");
        assert!(p.what.etcd.is_some());
        let e = plan(&b, None).unwrap_err();
        assert!(e.contains("BackupPolicy etcd does not exist"), "{e}");
        let bare = Backup::new("x", BackupSpec::default());
        assert!(
            plan(&bare, None)
                .unwrap_err()
                .contains("nothing to back up")
        );
    }

    fn job(kind: &str, message: &str) -> Job {
        Job {
            metadata: kube::api::ObjectMeta {
                name: Some("etcd-now-etcd".into()),
                ..Default::default()
            },
            spec: None,
            status: Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: kind.into(),
                    status: "True".into(),
                    message: Some(message.into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn retention_in_a_job_is_counted_from_its_summary() {
        let log = "{\"message_type\":\"summary\",\"forget\":{\"keep\":[{}],\"remove\":[{},{}]}}\n";
        assert_eq!(forgotten_in(log), 2);
        assert_eq!(forgotten_in("error: refused\n"), 0);
    }

    #[test]
    fn a_failed_jobs_log_ends_up_short_in_the_reason() {
        let log = "starting\n\nconnecting\nerror: cannot reach etcd\n  caused by: refused\n";
        assert_eq!(
            log_tail(log),
            "connecting | error: cannot reach etcd | caused by: refused"
        );
        let long = format!("x{}é", "y".repeat(2 * LOG_TAIL));
        let t = log_tail(&long);
        assert!(t.starts_with("...") && t.ends_with('é') && t.len() <= LOG_TAIL + 4);
        assert_eq!(log_tail("\n \n"), "");
    }

    #[test]
    fn a_jobs_end_becomes_the_runs_outcome() {
        assert_eq!(
            job_outcome(&job("Complete", ""), Some(0)),
            Some(Outcome::Completed)
        );
        let running = Job {
            status: Some(JobStatus::default()),
            ..job("Complete", "")
        };
        assert_eq!(job_outcome(&running, None), None);
        match job_outcome(&job("Failed", "BackoffLimitExceeded"), Some(1)) {
            Some(Outcome::Failed { reason }) => {
                assert!(
                    reason.contains("BackoffLimitExceeded") && reason.contains("exit code 1"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            job_outcome(&job("Failed", "x"), Some(3)),
            Some(Outcome::PartiallyFailed { .. })
        ));
        // A failed pod within the backoff limit: the Job makes another.
        let retrying = |failed: i32, limit: i32| Job {
            spec: Some(k8s_openapi::api::batch::v1::JobSpec {
                backoff_limit: Some(limit),
                ..Default::default()
            }),
            status: Some(JobStatus {
                failed: Some(failed),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(job_outcome(&retrying(1, 2), Some(1)), None);
        assert_eq!(job_outcome(&retrying(2, 2), Some(1)), None);
        assert!(matches!(
            job_outcome(&retrying(3, 2), Some(1)),
            Some(Outcome::Failed { .. })
        ));
        assert!(matches!(
            job_outcome(&retrying(1, 0), Some(1)),
            Some(Outcome::Failed { .. })
        ));
    }
}
