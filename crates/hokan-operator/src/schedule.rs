//! Schedules: a policy's cron expression in its time zone, the decision
//! what to do at a given moment, and the deterministic names of runs.
//!
//! The rules are CronJob's, so platform teams meet no surprise:
//! - only the newest tick not yet scheduled is run; older missed ticks are
//!   not run one by one (a missed tick is run once);
//! - with a starting deadline, a tick older than the deadline is skipped;
//! - a run is named after its tick (`<policy>-<yyyyMMddHHmmss>`, UTC), so
//!   an operator that restarts, or two that overlap for a moment, create
//!   the same name and the API server refuses the second: a tick never
//!   runs twice.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Why a schedule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error(
        "schedule {expr:?} is not a cron expression ({reason}); use five fields: minute hour \
         day-of-month month day-of-week, e.g. \"0 */4 * * *\", or @hourly, @daily, @weekly"
    )]
    Cron {
        /// The expression.
        expr: String,
        /// The parser's words.
        reason: String,
    },
    /// The time zone is not an IANA name.
    #[error(
        "time zone {0:?} is unknown; use an IANA name such as UTC, Europe/Berlin or Asia/Tokyo"
    )]
    TimeZone(String),
}

/// A cron schedule read in a time zone.
#[derive(Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
    text: String,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?} in {})", self.text, self.tz)
    }
}

impl Schedule {
    /// Parses a five-field expression (or a nickname such as `@daily`) in
    /// `time_zone` (default UTC).
    pub fn parse(expr: &str, time_zone: Option<&str>) -> Result<Self, ScheduleError> {
        let tz = match time_zone.map(str::trim).filter(|s| !s.is_empty()) {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| ScheduleError::TimeZone(name.into()))?,
        };
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(expr.trim()).map_err(|e| ScheduleError::Cron {
            expr: expr.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Schedule {
            cron,
            tz,
            text: expr.trim().to_string(),
        })
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }

    /// The newest tick at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|p| p.with_timezone(&Utc))
    }
}

/// What a policy should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Create the run for this tick.
    Run {
        /// The tick.
        tick: DateTime<Utc>,
        /// The tick after it, to be woken for.
        next: Option<DateTime<Utc>>,
    },
    /// This tick's starting deadline passed: record it as skipped.
    Skip {
        /// The tick.
        tick: DateTime<Utc>,
        /// The tick after it.
        next: Option<DateTime<Utc>>,
    },
    /// Nothing to do until `next`.
    Wait {
        /// The next tick (none: the expression never matches again).
        next: Option<DateTime<Utc>>,
    },
}

/// Decides, at `now`, what a policy whose last scheduled tick is
/// `last_scheduled` (or, for a new policy, created at `created`) does.
/// Ticks at or before `last_scheduled` (or `created`) are never run again.
pub fn due(
    schedule: &Schedule,
    last_scheduled: Option<DateTime<Utc>>,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
    starting_deadline_seconds: Option<i64>,
) -> Due {
    let since = last_scheduled.unwrap_or(created);
    let next = schedule.next_after(now.max(since));
    let tick = match schedule.latest_at_or_before(now) {
        Some(t) if t > since => t,
        _ => return Due::Wait { next },
    };
    if let Some(deadline) = starting_deadline_seconds
        && now - tick > TimeDelta::seconds(deadline.max(0))
    {
        return Due::Skip { tick, next };
    }
    Due::Run { tick, next }
}

/// The longest name a run may have (a custom resource's name is a DNS
/// subdomain).
const MAX_NAME: usize = 253;

/// The run's name for `policy` at `tick`: `<policy>-<yyyyMMddHHmmss>` in
/// UTC, Velero's schedule naming. A policy name too long to fit is cut.
pub fn run_name(policy: &str, tick: DateTime<Utc>) -> String {
    let stamp = tick.format("%Y%m%d%H%M%S").to_string();
    let room = MAX_NAME - stamp.len() - 1;
    let mut base: String = policy.chars().take(room).collect();
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    format!("{base}-{stamp}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn parses_and_refuses_with_words() {
        assert!(Schedule::parse("0 */4 * * *", None).is_ok());
        assert!(Schedule::parse("@daily", Some("Europe/Berlin")).is_ok());
        let e = Schedule::parse("every hour", None).unwrap_err().to_string();
        assert!(e.contains("five fields"), "{e}");
        let e = Schedule::parse("0 * * * *", Some("Mars/Olympus")).unwrap_err();
        assert_eq!(e, ScheduleError::TimeZone("Mars/Olympus".into()));
        // Seconds are not a CronJob field.
        assert!(Schedule::parse("0 0 */4 * * *", None).is_err());
    }

    #[test]
    fn ticks_in_a_time_zone() {
        // 02:00 in Tokyo is 17:00 UTC the day before.
        let s = Schedule::parse("0 2 * * *", Some("Asia/Tokyo")).unwrap();
        assert_eq!(
            s.next_after(utc(2026, 3, 1, 12, 0)),
            Some(utc(2026, 3, 1, 17, 0))
        );
        assert_eq!(
            s.latest_at_or_before(utc(2026, 3, 1, 17, 0)),
            Some(utc(2026, 3, 1, 17, 0))
        );
    }

    #[test]
    fn daylight_saving_in_berlin() {
        // 2026-03-29: 02:00 local does not exist (clocks jump to 03:00);
        // a 01:30 job still runs once, at 00:30 UTC, and the next day at
        // 23:30 UTC (summer time).
        let s = Schedule::parse("30 1 * * *", Some("Europe/Berlin")).unwrap();
        let a = s.next_after(utc(2026, 3, 28, 12, 0)).unwrap();
        assert_eq!(a, utc(2026, 3, 29, 0, 30));
        let b = s.next_after(a).unwrap();
        assert_eq!(b, utc(2026, 3, 29, 23, 30));
    }

    #[test]
    fn a_new_policy_waits_for_its_first_tick() {
        let s = Schedule::parse("0 * * * *", None).unwrap();
        let created = utc(2026, 1, 1, 10, 20);
        let d = due(&s, None, created, utc(2026, 1, 1, 10, 30), None);
        assert_eq!(
            d,
            Due::Wait {
                next: Some(utc(2026, 1, 1, 11, 0))
            }
        );
        let d = due(&s, None, created, utc(2026, 1, 1, 11, 0), None);
        assert_eq!(
            d,
            Due::Run {
                tick: utc(2026, 1, 1, 11, 0),
                next: Some(utc(2026, 1, 1, 12, 0))
            }
        );
    }

    #[test]
    fn a_scheduled_tick_is_not_run_again() {
        let s = Schedule::parse("0 * * * *", None).unwrap();
        let created = utc(2026, 1, 1, 0, 0);
        let last = Some(utc(2026, 1, 1, 11, 0));
        let d = due(&s, last, created, utc(2026, 1, 1, 11, 40), None);
        assert_eq!(
            d,
            Due::Wait {
                next: Some(utc(2026, 1, 1, 12, 0))
            }
        );
    }

    #[test]
    fn missed_ticks_run_once_the_newest() {
        // Down from 11:00 to 15:10: the 12, 13, 14 and 15 o'clock ticks
        // were missed; only 15:00 runs.
        let s = Schedule::parse("0 * * * *", None).unwrap();
        let d = due(
            &s,
            Some(utc(2026, 1, 1, 11, 0)),
            utc(2026, 1, 1, 0, 0),
            utc(2026, 1, 1, 15, 10),
            None,
        );
        assert_eq!(
            d,
            Due::Run {
                tick: utc(2026, 1, 1, 15, 0),
                next: Some(utc(2026, 1, 1, 16, 0))
            }
        );
    }

    #[test]
    fn a_tick_past_its_deadline_is_skipped() {
        let s = Schedule::parse("0 * * * *", None).unwrap();
        let last = Some(utc(2026, 1, 1, 11, 0));
        let created = utc(2026, 1, 1, 0, 0);
        // 10 minutes late with a 5-minute deadline: skipped.
        let d = due(&s, last, created, utc(2026, 1, 1, 12, 10), Some(300));
        assert_eq!(
            d,
            Due::Skip {
                tick: utc(2026, 1, 1, 12, 0),
                next: Some(utc(2026, 1, 1, 13, 0))
            }
        );
        // Within the deadline: run.
        let d = due(&s, last, created, utc(2026, 1, 1, 12, 4), Some(300));
        assert!(matches!(d, Due::Run { .. }));
    }

    #[test]
    fn run_names_are_deterministic() {
        let t = Utc.with_ymd_and_hms(2026, 12, 7, 4, 20, 5).unwrap();
        assert_eq!(run_name("etcd", t), "etcd-20261207042005");
        let long = "p".repeat(300);
        let n = run_name(&long, t);
        assert_eq!(n.len(), 253);
        assert!(n.ends_with("-20261207042005"));
        assert_eq!(run_name("a-", t), "a-20261207042005");
    }
}
