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
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::repository::secret_value;
use super::{Context, Error, apply_status, event};
use crate::api::backup::Backup;
use crate::api::common::{JobRef, RunError};
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
    let failed = cond("Failed");
    if failed.is_none() && status.failed.unwrap_or(0) == 0 {
        return None;
    }
    if exit_code == Some(3) {
        return Some(Outcome::PartiallyFailed {
            errors: vec![RunError {
                message: format!(
                    "the snapshot was saved, but some entries could not be read; the log of Job {} names them",
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

/// The reconcile.
pub async fn reconcile(backup: Arc<Backup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let run = backup.name_any();
    let ns = backup
        .namespace()
        .ok_or_else(|| Error::NoNamespace(format!("Backup {run}")))?;
    let mut status = backup.status.clone().unwrap_or_default();
    if status.phase.is_finished() {
        return Ok(Action::await_change());
    }
    let generation = backup.meta().generation;
    let api: Api<Backup> = Api::namespaced(ctx.client.clone(), &ns);
    let policy = match &backup.spec.policy {
        Some(p) => {
            Api::<BackupPolicy>::namespaced(ctx.client.clone(), &ns)
                .get_opt(p)
                .await?
        }
        None => None,
    };
    let fail = |status: &mut crate::api::BackupStatus, reason: String| {
        finish(
            status,
            Outcome::Failed { reason },
            generation,
            ctx.clock.now(),
        );
    };
    let plan = match plan(&backup, policy.as_ref()) {
        Ok(p) => p,
        Err(reason) => {
            fail(&mut status, reason);
            announce(&ctx, &backup, &status).await;
            apply_status(&api, &run, &status).await?;
            return Ok(Action::await_change());
        }
    };
    let Some(repo) = Api::<Repository>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&plan.repository)
        .await?
    else {
        fail(
            &mut status,
            format!("Repository {} does not exist in {ns}", plan.repository),
        );
        announce(&ctx, &backup, &status).await;
        apply_status(&api, &run, &status).await?;
        return Ok(Action::await_change());
    };

    // etcd: a Job, made once under its deterministic name.
    let mut job_outcome_seen = None;
    if let Some(etcd) = &plan.what.etcd {
        let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        let want = etcd_backup_job(&backup, &repo, etcd, &ctx.image);
        let name = want.name_any();
        let job = match jobs.get_opt(&name).await? {
            Some(j) => j,
            None if status.job.is_some() => {
                fail(
                    &mut status,
                    format!(
                        "Job {name} was lost (deleted before it finished); run the backup again"
                    ),
                );
                announce(&ctx, &backup, &status).await;
                apply_status(&api, &run, &status).await?;
                return Ok(Action::await_change());
            }
            None => jobs.create(&PostParams::default(), &want).await?,
        };
        let job_ref = JobRef {
            name: name.clone(),
            namespace: ns.clone(),
            uid: job.uid(),
        };
        if begin(&mut status, Some(job_ref), generation, ctx.clock.now()) {
            event(
                &ctx,
                backup.as_ref(),
                false,
                "Started",
                "CreateJob",
                format!("running Job {name}"),
            )
            .await;
            apply_status(&api, &run, &status).await?;
        }
        let exit = if job.status.as_ref().and_then(|s| s.failed).unwrap_or(0) > 0 {
            pod_exit_code(&ctx, &ns, &name).await
        } else {
            None
        };
        match job_outcome(&job, exit) {
            None => return Ok(Action::requeue(Duration::from_secs(10))),
            Some(o) => job_outcome_seen = Some(o),
        }
    } else if begin(&mut status, None, generation, ctx.clock.now()) {
        apply_status(&api, &run, &status).await?;
    }
    if let Some(Outcome::Failed { reason }) = &job_outcome_seen {
        fail(&mut status, reason.clone());
        record(&ctx, &backup, &repo, &status, None);
        announce(&ctx, &backup, &status).await;
        apply_status(&api, &run, &status).await?;
        return Ok(Action::await_change());
    }

    // Resources, in-process, unless this run already saved them.
    let password = match secret_value(&ctx.client, &ns, &repo.spec.password_secret_ref).await {
        Ok(p) => p,
        Err(reason) => {
            fail(
                &mut status,
                format!("repository {}: {reason}", plan.repository),
            );
            announce(&ctx, &backup, &status).await;
            apply_status(&api, &run, &status).await?;
            return Ok(Action::await_change());
        }
    };
    let location = repo.spec.location.clone();
    let options = ctx.open_options.clone();
    let opened = tokio::task::block_in_place(|| {
        hokan_repo::Repository::open(&location, &password, options)
            .and_then(|r| r.load_index())
            .map_err(|e| format!("repository {}: {e}", plan.repository))
    });
    let mut repo_handle = match opened {
        Ok(r) => r,
        Err(reason) => {
            fail(&mut status, reason);
            announce(&ctx, &backup, &status).await;
            apply_status(&api, &run, &status).await?;
            return Ok(Action::await_change());
        }
    };
    let mut errors: Vec<RunError> = match job_outcome_seen {
        Some(Outcome::PartiallyFailed { errors }) => errors,
        _ => Vec::new(),
    };
    let mut forgotten = 0;
    if let Some(resources) = &plan.what.resources {
        let done = tokio::task::block_in_place(|| saved_by(&repo_handle, &run))
            .map(|s| s.snapshots.iter().any(|r| r.kind == "k8s"))
            .unwrap_or(false);
        if !done {
            let cluster = hokan_k8s::Cluster::from_client(ctx.client.clone(), "in-cluster");
            match backup_resources(&cluster, &mut repo_handle, resources, &run).await {
                Ok(s) => {
                    errors.extend(s.errors);
                    forgotten += s.forgotten;
                }
                Err(reason) => {
                    fail(&mut status, format!("resources: {reason}"));
                    announce(&ctx, &backup, &status).await;
                    apply_status(&api, &run, &status).await?;
                    return Ok(Action::await_change());
                }
            }
        }
    }
    if plan.what.volumes.is_some() {
        errors.push(RunError {
            message: "volume backups through the node agent are not built yet; the other \
                      sources were backed up"
                .into(),
            ..Default::default()
        });
    }
    let saved = tokio::task::block_in_place(|| saved_by(&repo_handle, &run)).unwrap_or_default();
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
    finish(&mut status, outcome, generation, ctx.clock.now());
    record(&ctx, &backup, &repo, &status, Some(&saved));
    announce(&ctx, &backup, &status).await;
    apply_status(&api, &run, &status).await?;
    Ok(Action::await_change())
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

/// The exit code of the Job's container, from its pod.
async fn pod_exit_code(ctx: &Context, ns: &str, job: &str) -> Option<i32> {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = pods
        .list(&kube::api::ListParams::default().labels(&format!("job-name={job}")))
        .await
        .ok()?;
    list.items.iter().find_map(|p| {
        p.status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .iter()
            .find_map(|c| Some(c.state.as_ref()?.terminated.as_ref()?.exit_code))
    })
}

/// Writes what the repository holds of the run into its status.
fn write_saved(status: &mut crate::api::BackupStatus, saved: &Saved, forgotten: u64) {
    status.snapshots = saved.snapshots.clone();
    status.snapshot = saved
        .snapshots
        .first()
        .map(|s| s.id.chars().take(8).collect());
    status.figures = Some(saved.figures.clone());
    status.size = Some(crate::convert::human_bytes(saved.figures.bytes_read));
    status.forgotten = Some(forgotten);
}

/// The run's metrics, under the command's names.
fn record(
    ctx: &Context,
    backup: &Backup,
    repo: &Repository,
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
        repository: &repo.spec.location,
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
    }
}
