//! A run's status moves one way: New → InProgress → Completed,
//! PartiallyFailed or Failed (or straight from New to Failed when the spec
//! cannot be used). A finished run is never changed again, so a reconcile
//! that sees an old copy of the object, or runs twice, cannot reopen it.
//! These functions are the only writers of a run's phase.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::backup::BackupStatus;
use crate::api::common::{JobRef, Phase, RunError, condition, set_condition};
use crate::api::restore::RestoreStatus;
use crate::clock::to_time;

/// At most this many errors are kept in status (an object's size is
/// bounded; the count keeps the total).
pub const MAX_ERRORS: usize = 100;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything done.
    Completed,
    /// Done, with entries that could not be read or written.
    PartiallyFailed {
        /// The errors, each with what it concerns.
        errors: Vec<RunError>,
    },
    /// Nothing usable came of it.
    Failed {
        /// Why, in words, with what to do.
        reason: String,
    },
}

/// The fields of a run's status the transitions touch; Backup and Restore
/// both have them.
pub trait RunStatus {
    /// The phase.
    fn phase(&self) -> Phase;
    /// Mutable views of the fields.
    fn parts(&mut self) -> RunParts<'_>;
}

/// Borrowed fields of a run's status.
pub struct RunParts<'a> {
    /// The phase.
    pub phase: &'a mut Phase,
    /// Start time.
    pub start: &'a mut Option<Time>,
    /// End time.
    pub end: &'a mut Option<Time>,
    /// Errors kept.
    pub errors: &'a mut Vec<RunError>,
    /// Errors counted.
    pub error_count: &'a mut u64,
    /// The failure reason.
    pub failure_reason: &'a mut Option<String>,
    /// The Job.
    pub job: &'a mut Option<JobRef>,
    /// Observed generation.
    pub observed_generation: &'a mut Option<i64>,
    /// Conditions.
    pub conditions: &'a mut Vec<Condition>,
}

macro_rules! run_status {
    ($t:ty) => {
        impl RunStatus for $t {
            fn phase(&self) -> Phase {
                self.phase
            }
            fn parts(&mut self) -> RunParts<'_> {
                RunParts {
                    phase: &mut self.phase,
                    start: &mut self.start_timestamp,
                    end: &mut self.completion_timestamp,
                    errors: &mut self.errors,
                    error_count: &mut self.error_count,
                    failure_reason: &mut self.failure_reason,
                    job: &mut self.job,
                    observed_generation: &mut self.observed_generation,
                    conditions: &mut self.conditions,
                }
            }
        }
    };
}

run_status!(BackupStatus);
run_status!(RestoreStatus);

/// Marks the run started (with the Job doing it, if any). Returns false,
/// changing nothing, when the run is not New.
pub fn begin<S: RunStatus>(
    status: &mut S,
    job: Option<JobRef>,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> bool {
    if status.phase() != Phase::New {
        return false;
    }
    let p = status.parts();
    *p.phase = Phase::InProgress;
    *p.start = Some(to_time(now));
    *p.job = job;
    *p.observed_generation = generation;
    set_condition(
        p.conditions,
        condition::COMPLETE,
        false,
        "InProgress",
        "the run has started",
        generation,
        to_time(now),
    );
    true
}

/// Records how the run ended. Returns false, changing nothing, when it had
/// already ended.
pub fn finish<S: RunStatus>(
    status: &mut S,
    outcome: Outcome,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> bool {
    if status.phase().is_finished() {
        return false;
    }
    let p = status.parts();
    let (phase, message) = match outcome {
        Outcome::Completed => (Phase::Completed, "finished".to_string()),
        Outcome::PartiallyFailed { errors } => {
            let n = errors.len();
            *p.error_count = n as u64;
            *p.errors = errors.into_iter().take(MAX_ERRORS).collect();
            (
                Phase::PartiallyFailed,
                format!("finished with {n} error(s); status.errors names what each concerns"),
            )
        }
        Outcome::Failed { reason } => {
            *p.failure_reason = Some(reason.clone());
            (Phase::Failed, reason)
        }
    };
    if p.start.is_none() {
        *p.start = Some(to_time(now));
    }
    *p.phase = phase;
    *p.end = Some(to_time(now));
    *p.observed_generation = generation;
    set_condition(
        p.conditions,
        condition::COMPLETE,
        true,
        phase.as_str(),
        &message,
        generation,
        to_time(now),
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, min, 0).unwrap()
    }

    #[test]
    fn new_to_in_progress_to_completed() {
        let mut s = BackupStatus::default();
        let job = JobRef {
            name: "etcd-20260101000000".into(),
            namespace: "hokan-system".into(),
            uid: Some("u1".into()),
        };
        assert!(begin(&mut s, Some(job.clone()), Some(1), t(0)));
        assert_eq!(s.phase, Phase::InProgress);
        assert_eq!(s.job, Some(job));
        assert_eq!(s.conditions[0].status, "False");
        // Starting twice changes nothing.
        assert!(!begin(&mut s, None, Some(1), t(1)));
        assert_eq!(s.start_timestamp, Some(to_time(t(0))));
        assert!(finish(&mut s, Outcome::Completed, Some(1), t(5)));
        assert_eq!(s.phase, Phase::Completed);
        assert_eq!(s.completion_timestamp, Some(to_time(t(5))));
        let c = &s.conditions[0];
        assert_eq!((c.type_.as_str(), c.status.as_str()), ("Complete", "True"));
        assert_eq!(c.reason, "Completed");
        assert_eq!(c.observed_generation, Some(1));
    }

    #[test]
    fn a_finished_run_stays_finished() {
        let mut s = RestoreStatus::default();
        assert!(finish(
            &mut s,
            Outcome::Failed {
                reason: "repository main: wrong password".into()
            },
            Some(2),
            t(3)
        ));
        assert_eq!(s.phase, Phase::Failed);
        // Started at the failure when it never started.
        assert_eq!(s.start_timestamp, Some(to_time(t(3))));
        assert!(!finish(&mut s, Outcome::Completed, Some(2), t(4)));
        assert!(!begin(&mut s, None, Some(2), t(4)));
        assert_eq!(s.phase, Phase::Failed);
        assert_eq!(
            s.failure_reason.as_deref(),
            Some("repository main: wrong password")
        );
    }

    #[test]
    fn errors_are_capped_and_counted() {
        let mut s = BackupStatus::default();
        begin(&mut s, None, None, t(0));
        let errors = (0..150)
            .map(|i| RunError {
                file: Some(format!("/data/f{i}")),
                object: None,
                message: "permission denied".into(),
            })
            .collect();
        finish(&mut s, Outcome::PartiallyFailed { errors }, None, t(1));
        assert_eq!(s.phase, Phase::PartiallyFailed);
        assert_eq!(s.errors.len(), MAX_ERRORS);
        assert_eq!(s.error_count, 150);
        assert_eq!(s.conditions[0].reason, "PartiallyFailed");
    }
}
