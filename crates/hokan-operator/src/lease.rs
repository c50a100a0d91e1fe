//! One active replica: a `coordination.k8s.io` Lease, as client-go's
//! leader election keeps it. A replica takes the Lease when it is free,
//! expired or already its own, renews it while it works, and gives it up
//! on a clean shutdown so the next replica starts at once instead of
//! waiting out the duration. Every write carries the resourceVersion it
//! read, so two replicas racing for the Lease cannot both win.
//!
//! Lease times are wall-clock times shared between replicas, so they use
//! the system clock, not the operator's injectable one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};

/// How long a Lease holds without renewal.
pub const DURATION_SECS: i32 = 15;
/// How often the holder renews it.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

fn micro(t: DateTime<Utc>) -> MicroTime {
    MicroTime(Timestamp::from_microsecond(t.timestamp_micros()).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn from_micro(t: &MicroTime) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.0.as_microsecond()).unwrap_or_default()
}

/// Whether `me` may hold `lease` at `now`: it is free, expired, or mine.
pub fn may_hold(lease: &Lease, me: &str, now: DateTime<Utc>) -> bool {
    let Some(spec) = &lease.spec else {
        return true;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(holder) if holder == me => true,
        Some(_) => {
            let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref());
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(DURATION_SECS));
            match renewed {
                None => true,
                Some(t) => from_micro(t) + chrono::TimeDelta::seconds(duration) < now,
            }
        }
    }
}

/// `lease` as held by `me` from `now` (a new holder counts a transition).
pub fn held_by(lease: &Lease, me: &str, now: DateTime<Utc>) -> Lease {
    let mut l = lease.clone();
    let old = l.spec.take().unwrap_or_default();
    let taking_over = old.holder_identity.as_deref() != Some(me);
    l.spec = Some(LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(DURATION_SECS),
        acquire_time: if taking_over {
            Some(micro(now))
        } else {
            old.acquire_time.clone()
        },
        renew_time: Some(micro(now)),
        lease_transitions: Some(
            old.lease_transitions.unwrap_or(0)
                + i32::from(taking_over && old.holder_identity.is_some()),
        ),
        ..old
    });
    l
}

/// A Lease in one namespace, held by one identity.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    me: String,
}

impl Elector {
    /// The Lease `name` in `namespace`, for the replica `me` (its pod name).
    pub fn new(client: kube::Client, namespace: &str, name: &str, me: &str) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            me: me.to_string(),
        }
    }

    /// Takes or renews the Lease once. Ok(true): held now; Ok(false):
    /// another replica holds it (or won a race just now).
    pub async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = Utc::now();
        let pp = PostParams::default();
        match self.api.get_opt(&self.name).await? {
            None => {
                let fresh = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: None,
                };
                match self.api.create(&pp, &held_by(&fresh, &self.me, now)).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(lease) if may_hold(&lease, &self.me, now) => {
                match self
                    .api
                    .replace(&self.name, &pp, &held_by(&lease, &self.me, now))
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(_) => Ok(false),
        }
    }

    /// Gives the Lease up if this replica holds it, so another takes over
    /// without waiting for it to expire.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.me.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            // Someone else's now: nothing of ours to release.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, s).unwrap()
    }

    fn lease(holder: Option<&str>, renewed: DateTime<Utc>) -> Lease {
        let empty = Lease::default();
        let mut l = match holder {
            Some(h) => held_by(&empty, h, renewed),
            None => empty,
        };
        if holder.is_none() {
            l.spec = Some(LeaseSpec::default());
        }
        l
    }

    #[test]
    fn free_expired_or_mine() {
        assert!(may_hold(&Lease::default(), "a", t(0)));
        assert!(may_hold(&lease(None, t(0)), "a", t(0)));
        assert!(may_hold(&lease(Some("a"), t(0)), "a", t(1)));
        assert!(!may_hold(&lease(Some("b"), t(0)), "a", t(10)));
        assert!(!may_hold(&lease(Some("b"), t(0)), "a", t(15)));
        assert!(may_hold(&lease(Some("b"), t(0)), "a", t(16)));
    }

    #[test]
    fn taking_over_counts_a_transition_renewing_does_not() {
        let l = held_by(&Lease::default(), "a", t(0));
        let s = l.spec.as_ref().unwrap();
        assert_eq!(s.holder_identity.as_deref(), Some("a"));
        assert_eq!(s.lease_transitions, Some(0));
        let renewed = held_by(&l, "a", t(5));
        let s = renewed.spec.as_ref().unwrap();
        assert_eq!(s.lease_transitions, Some(0));
        assert_eq!(s.acquire_time, Some(micro(t(0))));
        assert_eq!(s.renew_time, Some(micro(t(5))));
        let taken = held_by(&renewed, "b", t(30));
        let s = taken.spec.as_ref().unwrap();
        assert_eq!(s.holder_identity.as_deref(), Some("b"));
        assert_eq!(s.lease_transitions, Some(1));
        assert_eq!(s.acquire_time, Some(micro(t(30))));
    }
}
