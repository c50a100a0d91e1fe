//! The operator's clock, injectable so schedules are tested without
//! waiting: every decision reads [`Clock::now`]; tests hold a
//! [`ManualClock`] and move it.

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;

/// The time, as the operator sees it.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;

    /// For a clock that jumps (a test's), a receiver told of each jump, so
    /// the controllers look at every schedule again at once instead of
    /// waiting in real time. The system clock has none.
    fn jumps(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        None
    }
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved; each move is announced to
/// [`Clock::jumps`] receivers.
#[derive(Debug)]
pub struct ManualClock(watch::Sender<DateTime<Utc>>);

impl ManualClock {
    /// A clock showing `t`.
    pub fn new(t: DateTime<Utc>) -> Self {
        ManualClock(watch::Sender::new(t))
    }

    /// Sets the time.
    pub fn set(&self, t: DateTime<Utc>) {
        self.0.send_replace(t);
    }

    /// Moves the time forward.
    pub fn advance(&self, by: TimeDelta) {
        self.0.send_modify(|t| *t += by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.borrow()
    }

    fn jumps(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        Some(self.0.subscribe())
    }
}

/// A chrono time as the API's `Time` (whole seconds, as the API server
/// stores them).
pub fn to_time(t: DateTime<Utc>) -> Time {
    Time(Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// The API's `Time` as a chrono time.
pub fn from_time(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let c = ManualClock::new(t0);
        let mut jumps = c.jumps().unwrap();
        assert_eq!(c.now(), t0);
        assert!(!jumps.has_changed().unwrap());
        c.advance(TimeDelta::hours(4));
        assert_eq!(c.now(), t0 + TimeDelta::hours(4));
        assert!(jumps.has_changed().unwrap());
        assert_eq!(*jumps.borrow_and_update(), t0 + TimeDelta::hours(4));
        assert!(SystemClock.jumps().is_none());
        assert_eq!(from_time(&to_time(c.now())), c.now());
    }
}
