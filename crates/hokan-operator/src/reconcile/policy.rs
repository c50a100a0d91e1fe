//! `BackupPolicy`: at each tick create the tick's `Backup` (by its
//! deterministic name, so a tick is never run twice), record skipped
//! ticks, and show the policy's recent runs in status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::{Context, Error, apply_status, event};
use crate::api::backup::{Backup, BackupSpec};
use crate::api::common::{condition, set_condition};
use crate::api::policy::{BackupPolicy, RecentBackup};
use crate::clock::{from_time, to_time};
use crate::convert::{Invalid, retention_policy};
use crate::schedule::{Due, Schedule, due, run_name};

/// The label every Backup a policy made carries, with the policy's name.
pub const POLICY_LABEL: &str = "hokan.dev/policy";

/// How many recent backups status lists.
pub const RECENT: usize = 10;

/// Checks the spec: a schedule that parses in its time zone, retention
/// that keeps something, at least one source, a repository named.
pub fn validate(policy: &BackupPolicy) -> Result<Schedule, Invalid> {
    let spec = &policy.spec;
    let schedule =
        Schedule::parse(&spec.schedule, spec.time_zone.as_deref()).map_err(|e| Invalid {
            field: "spec.schedule".into(),
            reason: e.to_string(),
        })?;
    if spec.repository.trim().is_empty() {
        return Err(Invalid {
            field: "spec.repository".into(),
            reason: "empty; name the Repository in this namespace the backups go to".into(),
        });
    }
    if spec.what.is_empty() {
        return Err(Invalid {
            field: "spec".into(),
            reason: "nothing to back up; give etcd, resources or volumes".into(),
        });
    }
    let w = &spec.what;
    let sections = [
        (
            "spec.etcd.retention",
            w.etcd.as_ref().and_then(|e| e.retention.as_ref()),
        ),
        (
            "spec.resources.retention",
            w.resources.as_ref().and_then(|r| r.retention.as_ref()),
        ),
        (
            "spec.volumes.retention",
            w.volumes.as_ref().and_then(|v| v.retention.as_ref()),
        ),
    ];
    for (at, r) in sections {
        if let Some(r) = r {
            retention_policy(r, at)?;
        }
    }
    if let Some(v) = &w.volumes {
        super::snapshots::rhythms(v)?;
    }
    Ok(schedule)
}

/// The Backup for `policy`'s `tick`: its name, the policy label, the
/// policy's sources copied in (a later change of the policy does not
/// rewrite what this run was). With CSI snapshots the volumes are the
/// snapshot rounds' work, unless some claim falls back to the node agent
/// (status says which): then the run's node Jobs read the pods' volumes.
pub fn backup_for_tick(policy: &BackupPolicy, tick: DateTime<Utc>) -> Backup {
    let name = policy.name_any();
    let mut what = policy.spec.what.clone();
    use crate::api::snapshots::ClaimMode;
    let claims = policy
        .status
        .as_ref()
        .map(|s| s.claims.as_slice())
        .unwrap_or_default();
    let node_agent = claims.iter().any(|c| c.mode == ClaimMode::NodeAgent);
    if let Some(v) = what.volumes.as_mut().filter(|v| v.snapshots.is_some()) {
        // The node Jobs read only the claims that have no snapshots.
        v.exclude_claims.extend(
            claims
                .iter()
                .filter(|c| c.mode == ClaimMode::Snapshot)
                .map(|c| format!("{}/{}", c.namespace, c.name)),
        );
    }
    if what.volumes.as_ref().is_some_and(|v| v.snapshots.is_some()) && !node_agent {
        what.volumes = None;
    }
    let mut labels = BTreeMap::new();
    labels.insert(POLICY_LABEL.to_string(), name.clone());
    Backup {
        metadata: ObjectMeta {
            name: Some(run_name(&name, tick)),
            namespace: policy.namespace(),
            labels: Some(labels),
            ..Default::default()
        },
        spec: BackupSpec {
            policy: Some(name),
            repository: Some(policy.spec.repository.clone()),
            scheduled_time: Some(to_time(tick)),
            what,
        },
        status: None,
    }
}

/// The policy's runs as status shows them: those not finished, the newest
/// few, and the last success.
pub fn summarize(
    backups: &[Backup],
) -> (
    Vec<String>,
    Vec<RecentBackup>,
    Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) {
    let mut sorted: Vec<&Backup> = backups.iter().collect();
    let when = |b: &Backup| {
        b.spec
            .scheduled_time
            .as_ref()
            .or(b.metadata.creation_timestamp.as_ref())
            .map(from_time)
    };
    sorted.sort_by_key(|b| std::cmp::Reverse((when(b), b.name_any())));
    let phase = |b: &Backup| b.status.as_ref().map(|s| s.phase).unwrap_or_default();
    let active = sorted
        .iter()
        .filter(|b| !phase(b).is_finished())
        .map(|b| b.name_any())
        .collect();
    let recent = sorted
        .iter()
        .take(RECENT)
        .map(|b| RecentBackup {
            name: b.name_any(),
            phase: phase(b),
            scheduled_time: b.spec.scheduled_time.clone(),
            completion_timestamp: b
                .status
                .as_ref()
                .and_then(|s| s.completion_timestamp.clone()),
            snapshots: b
                .status
                .as_ref()
                .map(|s| {
                    s.snapshots
                        .iter()
                        .map(|r| r.id.chars().take(8).collect())
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let last_success = sorted
        .iter()
        .filter(|b| phase(b) == crate::api::Phase::Completed)
        .filter_map(|b| b.status.as_ref()?.completion_timestamp.clone())
        .max_by_key(from_time);
    (active, recent, last_success)
}

/// The reconcile.
pub async fn reconcile(policy: Arc<BackupPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = policy.name_any();
    let ns = policy
        .namespace()
        .ok_or_else(|| Error::NoNamespace(format!("BackupPolicy {name}")))?;
    let generation = policy.meta().generation;
    let now = ctx.clock.now();
    let policies: Api<BackupPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    let backups_api: Api<Backup> = Api::namespaced(ctx.client.clone(), &ns);
    let mut status = policy.status.clone().unwrap_or_default();
    status.observed_generation = generation;

    let schedule = match validate(&policy) {
        Ok(s) => s,
        Err(invalid) => {
            set_condition(
                &mut status.conditions,
                condition::VALID,
                false,
                "InvalidSpec",
                &invalid.to_string(),
                generation,
                to_time(now),
            );
            status.next_schedule_time = None;
            event(
                &ctx,
                policy.as_ref(),
                true,
                "InvalidSpec",
                "Validate",
                invalid.to_string(),
            )
            .await;
            apply_status(&policies, &name, &status).await?;
            return Ok(Action::await_change());
        }
    };
    set_condition(
        &mut status.conditions,
        condition::VALID,
        true,
        "Valid",
        "the schedule, time zone, retention and sources are usable",
        generation,
        to_time(now),
    );

    let mut next = None;
    if policy.spec.suspend {
        status.next_schedule_time = None;
    } else {
        let last = status.last_schedule_time.as_ref().map(from_time);
        let created = policy
            .metadata
            .creation_timestamp
            .as_ref()
            .map(from_time)
            .unwrap_or(now);
        match due(
            &schedule,
            last,
            created,
            now,
            policy.spec.starting_deadline_seconds,
        ) {
            Due::Run { tick, next: n } if backup_for_tick(&policy, tick).spec.what.is_empty() => {
                // Only CSI snapshots: they keep their own rhythm below.
                status.last_schedule_time = Some(to_time(tick));
                next = n;
            }
            Due::Run { tick, next: n } => {
                let backup = backup_for_tick(&policy, tick);
                match backups_api.create(&PostParams::default(), &backup).await {
                    Ok(_) => {
                        let note = format!(
                            "created Backup {} for the tick at {}",
                            backup.name_any(),
                            tick.to_rfc3339()
                        );
                        event(
                            &ctx,
                            policy.as_ref(),
                            false,
                            "Scheduled",
                            "CreateBackup",
                            note,
                        )
                        .await;
                    }
                    // Made already (by an earlier reconcile, or another replica a
                    // moment ago): the tick runs once.
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
                status.last_schedule_time = Some(to_time(tick));
                status.last_backup = backup.metadata.name.clone();
                next = n;
            }
            Due::Skip { tick, next: n } => {
                let note = format!(
                    "skipped the tick at {}: later than startingDeadlineSeconds",
                    tick.to_rfc3339()
                );
                event(&ctx, policy.as_ref(), true, "Skipped", "Schedule", note).await;
                status.last_schedule_time = Some(to_time(tick));
                status.last_skipped_time = Some(to_time(tick));
                next = n;
            }
            Due::Wait { next: n } => next = n,
        }
        status.next_schedule_time = next.map(to_time);
    }

    let selector = format!("{POLICY_LABEL}={name}");
    let runs = backups_api
        .list(&ListParams::default().labels(&selector))
        .await?;
    let (active, recent, last_success) = summarize(&runs.items);
    status.active = active;
    status.recent_backups = recent;
    if last_success.is_some() {
        status.last_successful_time = last_success;
    }
    let volumes = policy.spec.what.volumes.as_ref();
    let rhythms = volumes
        .map(super::snapshots::rhythms)
        .transpose()?
        .flatten();
    let mut again = next.map(|t| wait_until(now, t));
    match (volumes, rhythms) {
        (Some(v), Some(r)) if !policy.spec.suspend => {
            let round = super::snapshots::round(&policy, &ctx, v, &r, &mut status.claims).await?;
            again = match (again, round) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        (_, None) => status.claims.clear(),
        _ => {}
    }
    apply_status(&policies, &name, &status).await?;
    Ok(match again {
        Some(wait) => Action::requeue(wait),
        None => Action::await_change(),
    })
}

/// The real time to wait for the next tick (at least a second).
pub(super) fn wait_until(now: DateTime<Utc>, t: DateTime<Utc>) -> Duration {
    Duration::from_secs((t - now).num_seconds().max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::backup::BackupStatus;
    use crate::api::common::{Phase, Retention, SnapshotRef};
    use crate::api::policy::{BackupPolicySpec, BackupSources, EtcdSource};
    use chrono::TimeZone;

    fn policy() -> BackupPolicy {
        let mut p = BackupPolicy::new(
            "etcd",
            BackupPolicySpec {
                repository: "main".into(),
                schedule: "20 4 * * *".into(),
                time_zone: Some("Asia/Tokyo".into()),
                what: BackupSources {
                    etcd: Some(EtcdSource {
                        retention: Some(Retention {
                            keep_last: Some(5),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        p.metadata.namespace = Some("hokan-system".into());
        p
    }

    #[test]
    fn a_valid_policy_and_what_is_wrong_with_others() {
        assert!(validate(&policy()).is_ok());
        let mut p = policy();
        p.spec.time_zone = Some("Nowhere/Land".into());
        assert_eq!(validate(&p).unwrap_err().field, "spec.schedule");
        let mut p = policy();
        p.spec.what = BackupSources::default();
        assert!(
            validate(&p)
                .unwrap_err()
                .reason
                .contains("nothing to back up")
        );
        let mut p = policy();
        p.spec.what.etcd.as_mut().unwrap().retention = Some(Retention {
            keep_last: Some(0),
            ..Default::default()
        });
        assert_eq!(validate(&p).unwrap_err().field, "spec.etcd.retention");
    }

    #[test]
    fn the_ticks_backup_is_named_and_labelled() {
        let tick = Utc.with_ymd_and_hms(2026, 12, 6, 19, 20, 0).unwrap();
        let b = backup_for_tick(&policy(), tick);
        assert_eq!(b.metadata.name.as_deref(), Some("etcd-20261206192000"));
        assert_eq!(b.metadata.namespace.as_deref(), Some("hokan-system"));
        assert_eq!(
            b.labels().get(POLICY_LABEL).map(String::as_str),
            Some("etcd")
        );
        assert_eq!(b.spec.policy.as_deref(), Some("etcd"));
        assert_eq!(b.spec.repository.as_deref(), Some("main"));
        assert_eq!(b.spec.what, policy().spec.what);
        assert_eq!(b.spec.scheduled_time, Some(to_time(tick)));
    }

    #[test]
    fn node_jobs_leave_the_claims_with_snapshots_to_them() {
        use crate::api::policy::{BackupPolicyStatus, VolumeSource};
        use crate::api::snapshots::{ClaimMode, ClaimStatus, SnapshotRhythm};
        let tick = Utc.with_ymd_and_hms(2026, 12, 6, 19, 20, 0).unwrap();
        let mut p = policy();
        p.spec.what.volumes = Some(VolumeSource {
            snapshots: Some(SnapshotRhythm {
                interval: "4h".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        let claim = |name: &str, mode| ClaimStatus {
            namespace: "shop".into(),
            name: name.into(),
            mode,
            ..Default::default()
        };
        p.status = Some(BackupPolicyStatus {
            claims: vec![claim("data", ClaimMode::Snapshot)],
            ..Default::default()
        });
        assert!(backup_for_tick(&p, tick).spec.what.volumes.is_none());
        p.status
            .as_mut()
            .unwrap()
            .claims
            .push(claim("nfs", ClaimMode::NodeAgent));
        let v = backup_for_tick(&p, tick).spec.what.volumes.unwrap();
        assert_eq!(v.exclude_claims, ["shop/data"]);
    }

    fn run(name: &str, hour: u32, phase: Phase) -> Backup {
        let tick = Utc.with_ymd_and_hms(2026, 1, 1, hour, 0, 0).unwrap();
        let mut b = backup_for_tick(&policy(), tick);
        b.metadata.name = Some(name.into());
        b.status = Some(BackupStatus {
            phase,
            completion_timestamp: phase
                .is_finished()
                .then(|| to_time(tick + chrono::TimeDelta::minutes(5))),
            snapshots: vec![SnapshotRef {
                id: "0123456789abcdef".into(),
                kind: "etcd".into(),
                identity: None,
            }],
            ..Default::default()
        });
        b
    }

    #[test]
    fn status_lists_active_recent_and_the_last_success() {
        let runs = vec![
            run("a", 1, Phase::Completed),
            run("b", 2, Phase::Completed),
            run("c", 3, Phase::Failed),
            run("d", 4, Phase::InProgress),
        ];
        let (active, recent, last) = summarize(&runs);
        assert_eq!(active, ["d"]);
        let names: Vec<&str> = recent.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["d", "c", "b", "a"]);
        assert_eq!(recent[1].snapshots, ["01234567"]);
        let want = Utc.with_ymd_and_hms(2026, 1, 1, 2, 5, 0).unwrap();
        assert_eq!(last.map(|t| from_time(&t)), Some(want));
    }
}
