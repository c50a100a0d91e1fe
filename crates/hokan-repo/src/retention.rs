//! Retention policies: which snapshots `forget` keeps, and why.
//!
//! The rules and their meaning follow restic's `forget`, plus two that
//! platform teams use for etcd backups: keep the newest N (`keep_last`) and
//! keep the newest snapshots whose sizes add up to at most a total
//! (`keep_size`). Snapshots are grouped (by host and paths unless told
//! otherwise) and each group is judged on its own, newest first. Calendar
//! buckets (hour, day, ISO week, month, year) are in UTC. A snapshot is
//! kept if any rule keeps it; every rule that does is listed as a reason.
//!
//! [`Repository::forget_after_backup`](crate::Repository::forget_after_backup)
//! applies a policy right after a backup to the new snapshot's group, so
//! "keep the last N" leaves exactly N (the `backup --keep-*` flags).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Months, TimeDelta, Timelike, Utc};

use hokan_core::Id;

use crate::error::{Error, Result};
use crate::links::Linked;
use crate::snapshot::{Snapshot, SnapshotEntry};

/// A duration for `keep_within`, in calendar units (restic's `2y5m7d3h`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CalendarDuration {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl CalendarDuration {
    /// Parses `1y2m3d4h` (any subset, in any order; at least one part).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::Invalid {
            what: "duration",
            reason: format!("{s:?}; use numbers with y, m, d, h, e.g. 1y6m or 7d12h"),
        };
        let mut d = CalendarDuration::default();
        let mut num = String::new();
        let mut any = false;
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: u32 = num.parse().map_err(|_| bad())?;
            num.clear();
            match c {
                'y' => d.years += n,
                'm' => d.months += n,
                'd' => d.days += n,
                'h' => d.hours += n,
                _ => return Err(bad()),
            }
            any = true;
        }
        if !num.is_empty() || !any {
            return Err(bad());
        }
        Ok(d)
    }

    /// `t` minus this duration.
    pub fn before(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let months = self.years * 12 + self.months;
        let t = t
            .checked_sub_months(Months::new(months))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        t.checked_sub_signed(
            TimeDelta::days(self.days as i64) + TimeDelta::hours(self.hours as i64),
        )
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl std::fmt::Display for CalendarDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, u) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n > 0 {
                write!(f, "{n}{u}")?;
            }
        }
        Ok(())
    }
}

/// How many to keep of something: a number, or all of them (restic's -1,
/// `unlimited`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// Up to this many.
    Up(u32),
    /// Every one.
    All,
}

/// Which snapshots to keep. A snapshot is kept if any rule keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The newest N.
    pub last: Option<Count>,
    /// The newest in each of the last N hours that have snapshots.
    pub hourly: Option<Count>,
    /// ... days.
    pub daily: Option<Count>,
    /// ... ISO weeks.
    pub weekly: Option<Count>,
    /// ... months.
    pub monthly: Option<Count>,
    /// ... years.
    pub yearly: Option<Count>,
    /// Every snapshot within this long before the group's newest one.
    pub within: Option<CalendarDuration>,
    /// Snapshots carrying all tags of any of these comma-separated lists.
    pub tags: Vec<String>,
    /// The newest snapshots whose sizes (bytes backed up) add up to at most
    /// this; the newest one is kept even if it alone is larger.
    pub size: Option<u64>,
}

impl Policy {
    /// True when no rule is set: forgetting with it would delete everything,
    /// which is refused.
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// Refuses a policy that keeps nothing: no rule, or only rules that
    /// keep nothing (a count of 0, tag lists with no tag). "Keep the last
    /// 0" counts as no rule, as restic's `--keep-last 0` does, rather than
    /// as an order to forget every snapshot. [`apply`] calls this; callers
    /// that apply a policy later (after a backup) call it first, so bad
    /// flags fail before anything is stored.
    pub fn check(&self) -> Result<()> {
        if self.is_empty() {
            return Err(Error::Invalid {
                what: "retention policy",
                reason: "no rule given; refusing to forget every snapshot (give a rule: keep \
                         the last n, the daily ones, ...)"
                    .into(),
            });
        }
        let counts = [
            ("last", self.last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ];
        let keeps = counts
            .iter()
            .any(|(_, c)| matches!(c, Some(Count::All) | Some(Count::Up(1..))))
            || self.within.is_some()
            || self.size.is_some()
            || self
                .tags
                .iter()
                .any(|set| set.split(',').any(|t| !t.trim().is_empty()));
        if keeps {
            return Ok(());
        }
        let zero: Vec<String> = counts
            .iter()
            .filter(|(_, c)| *c == Some(Count::Up(0)))
            .map(|(name, _)| format!("keep-{name} 0"))
            .chain((!self.tags.is_empty()).then(|| "keep-tag with no tag".to_string()))
            .collect();
        Err(Error::Invalid {
            what: "retention policy",
            reason: format!(
                "{} keeps no snapshot, and a rule of 0 counts as no rule; refusing to forget \
                 every snapshot, nothing was changed (keep at least 1, or forget snapshots by id)",
                zero.join(", ")
            ),
        })
    }
}

/// How snapshots are grouped before the policy is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    /// By host name.
    pub host: bool,
    /// By the set of paths.
    pub paths: bool,
    /// By the set of tags.
    pub tags: bool,
}

impl Default for GroupBy {
    /// By host and paths, as restic.
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// Parses `host,paths,tags` (any subset; empty for one group).
    pub fn parse(s: &str) -> Result<Self> {
        let mut g = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" | "path" => g.paths = true,
                "tags" | "tag" => g.tags = true,
                other => {
                    return Err(Error::Invalid {
                        what: "group-by",
                        reason: format!("{other:?}; use host, paths and tags, comma-separated"),
                    });
                }
            }
        }
        Ok(g)
    }
}

/// The key of a group: the values the grouping looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    /// The host, when grouping by host.
    pub host: Option<String>,
    /// The paths, when grouping by paths.
    pub paths: Option<Vec<String>>,
    /// The tags, when grouping by tags.
    pub tags: Option<Vec<String>>,
}

/// What happens to one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The snapshot.
    pub entry: SnapshotEntry,
    /// Why it is kept; empty means it is forgotten.
    pub reasons: Vec<String>,
    /// For a forgotten snapshot in an immutable repository whose object
    /// the lock still holds: until when (Unix seconds; `Some(None)` when
    /// the store refused the delete). It stays listed until a later
    /// `forget` or `prune` can delete it.
    pub kept_by_lock: Option<Option<i64>>,
    /// For a forgotten snapshot: the snapshots it links to, and what
    /// became of each (see [`crate::links`]).
    pub linked: Vec<Linked>,
    /// For a snapshot forgotten only because the snapshot linking to it
    /// was: that snapshot (its own rules would have kept it).
    pub forgotten_with: Option<Id>,
}

impl Decision {
    /// Whether the snapshot is kept.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// One group's decisions, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDecisions {
    /// The group.
    pub key: GroupKey,
    /// Its snapshots.
    pub decisions: Vec<Decision>,
}

fn key_of(s: &Snapshot, by: GroupBy) -> GroupKey {
    let mut paths = s.paths.clone();
    paths.sort();
    let mut tags = s.tags.clone();
    tags.sort();
    GroupKey {
        host: by.host.then(|| s.hostname.clone()),
        paths: by.paths.then_some(paths),
        tags: by.tags.then_some(tags),
    }
}

fn time_of(s: &Snapshot) -> DateTime<Utc> {
    DateTime::from_timestamp(s.time.secs, s.time.nanos).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Applies `policy` to `snapshots` grouped by `by`.
pub fn apply(
    snapshots: &[SnapshotEntry],
    policy: &Policy,
    by: GroupBy,
) -> Result<Vec<GroupDecisions>> {
    policy.check()?;
    let mut groups: BTreeMap<GroupKey, Vec<SnapshotEntry>> = BTreeMap::new();
    for e in snapshots {
        groups
            .entry(key_of(&e.snapshot, by))
            .or_default()
            .push(e.clone());
    }
    Ok(groups
        .into_iter()
        .map(|(key, mut list)| {
            // Newest first; ties broken by id so the outcome is stable.
            list.sort_by_key(|e| std::cmp::Reverse((e.snapshot.time, e.id)));
            GroupDecisions {
                key,
                decisions: judge(list, policy),
            }
        })
        .collect())
}

type Bucket = fn(DateTime<Utc>) -> i64;

fn judge(list: Vec<SnapshotEntry>, p: &Policy) -> Vec<Decision> {
    let buckets: [(&str, Option<Count>, Bucket); 5] = [
        ("hourly", p.hourly, |t| {
            (t.year() as i64 * 1_000_000) + (t.ordinal() as i64 * 100) + t.hour() as i64
        }),
        ("daily", p.daily, |t| {
            t.year() as i64 * 1000 + t.ordinal() as i64
        }),
        ("weekly", p.weekly, |t| {
            let w = t.iso_week();
            w.year() as i64 * 100 + w.week() as i64
        }),
        ("monthly", p.monthly, |t| {
            t.year() as i64 * 100 + t.month() as i64
        }),
        ("yearly", p.yearly, |t| t.year() as i64),
    ];
    let mut left: Vec<Option<Count>> = buckets.iter().map(|b| b.1).collect();
    let mut last_bucket: Vec<Option<i64>> = vec![None; buckets.len()];
    let mut last_left = p.last;
    let newest = list.first().map(|e| time_of(&e.snapshot));
    let within_cutoff = p.within.zip(newest).map(|(d, n)| d.before(n));
    let mut size_used = 0u64;
    let mut size_open = p.size.is_some();
    list.into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let s = &entry.snapshot;
            let t = time_of(s);
            let mut reasons = Vec::new();
            match &mut last_left {
                Some(Count::All) => reasons.push("last snapshot".to_string()),
                Some(Count::Up(n)) if *n > 0 => {
                    *n -= 1;
                    reasons.push("last snapshot".to_string());
                }
                _ => {}
            }
            for (b, (name, _, bucket)) in buckets.iter().enumerate() {
                let take = match &left[b] {
                    Some(Count::All) => true,
                    Some(Count::Up(n)) => *n > 0,
                    None => false,
                };
                let value = bucket(t);
                if take && last_bucket[b] != Some(value) {
                    last_bucket[b] = Some(value);
                    if let Some(Count::Up(n)) = &mut left[b] {
                        *n -= 1;
                    }
                    reasons.push(format!("{name} snapshot"));
                }
            }
            if let Some(cutoff) = within_cutoff
                && t >= cutoff
            {
                reasons.push(format!("within {} of the newest", p.within.expect("set")));
            }
            if p.tags.iter().any(|set| {
                let want: Vec<&str> = set
                    .split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .collect();
                !want.is_empty() && want.iter().all(|w| s.tags.iter().any(|t| t == w))
            }) {
                reasons.push("tagged".to_string());
            }
            if let Some(limit) = p.size
                && size_open
            {
                let total = size_used.saturating_add(s.summary.bytes);
                if total <= limit || i == 0 {
                    size_used = total;
                    reasons.push(if i == 0 && total > limit {
                        "newest snapshot (alone larger than the size limit)".to_string()
                    } else {
                        "within the size limit".to_string()
                    });
                } else {
                    // Newest first: once one does not fit, older ones are
                    // not kept for size either, even if smaller.
                    size_open = false;
                }
            }
            Decision {
                entry,
                reasons,
                kept_by_lock: None,
                linked: Vec::new(),
                forgotten_with: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SourceKind;
    use hokan_core::{Id, Timestamp, TreeId};

    fn snap(n: u8, time: &str, host: &str, tags: &[&str], bytes: u64) -> SnapshotEntry {
        let t = DateTime::parse_from_rfc3339(time)
            .unwrap()
            .with_timezone(&Utc);
        let mut s = Snapshot::new(SourceKind::FS, vec!["/data".into()], TreeId(Id([0; 32])));
        s.time = Timestamp {
            secs: t.timestamp(),
            nanos: 0,
        };
        s.hostname = host.into();
        s.tags = tags.iter().map(|t| t.to_string()).collect();
        s.summary.bytes = bytes;
        SnapshotEntry {
            id: Id([n; 32]),
            snapshot: s,
        }
    }

    /// Hourly snapshots over ten days, ending 2026-11-22 23:00 UTC.
    fn series() -> Vec<SnapshotEntry> {
        let start = DateTime::parse_from_rfc3339("2026-11-13T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        (0..240u32)
            .map(|h| {
                let t = start + TimeDelta::hours(h as i64);
                let mut e = snap(0, &t.to_rfc3339(), "a", &[], 100);
                e.id = Id(*blake3::hash(&h.to_le_bytes()).as_bytes());
                e
            })
            .collect()
    }

    fn kept(d: &[GroupDecisions]) -> Vec<String> {
        d.iter()
            .flat_map(|g| g.decisions.iter())
            .filter(|d| d.keep())
            .map(|d| d.entry.snapshot.time_rfc3339())
            .collect()
    }

    fn run(p: Policy) -> Vec<String> {
        kept(&apply(&series(), &p, GroupBy::default()).unwrap())
    }

    #[test]
    fn keep_last_keeps_exactly_n() {
        let k = run(Policy {
            last: Some(Count::Up(3)),
            ..Default::default()
        });
        assert_eq!(
            k,
            [
                "2026-11-22T23:00:00Z",
                "2026-11-22T22:00:00Z",
                "2026-11-22T21:00:00Z"
            ]
        );
        assert_eq!(
            run(Policy {
                last: Some(Count::All),
                ..Default::default()
            })
            .len(),
            240
        );
    }

    #[test]
    fn rules_that_keep_nothing_are_refused() {
        let zero = Some(Count::Up(0));
        for p in [
            Policy::default(),
            Policy {
                last: zero,
                ..Default::default()
            },
            Policy {
                daily: zero,
                last: zero,
                ..Default::default()
            },
            Policy {
                tags: vec![" , ".into()],
                ..Default::default()
            },
        ] {
            let e = apply(&series(), &p, GroupBy::default()).unwrap_err();
            assert!(matches!(e, Error::Invalid { .. }), "{p:?}: {e}");
            assert!(
                e.to_string().contains("refusing to forget every snapshot"),
                "{e}"
            );
        }
        let e = Policy {
            last: zero,
            daily: zero,
            ..Default::default()
        }
        .check()
        .unwrap_err();
        assert!(e.to_string().contains("keep-last 0, keep-daily 0"), "{e}");
        // A zero beside a rule that keeps something is just no rule.
        let k = run(Policy {
            last: zero,
            daily: Some(Count::Up(2)),
            ..Default::default()
        });
        assert_eq!(k.len(), 2);
    }

    #[test]
    fn calendar_buckets_keep_the_newest_of_each() {
        let k = run(Policy {
            hourly: Some(Count::Up(2)),
            ..Default::default()
        });
        assert_eq!(k, ["2026-11-22T23:00:00Z", "2026-11-22T22:00:00Z"]);
        let k = run(Policy {
            daily: Some(Count::Up(3)),
            ..Default::default()
        });
        assert_eq!(
            k,
            [
                "2026-11-22T23:00:00Z",
                "2026-11-21T23:00:00Z",
                "2026-11-20T23:00:00Z"
            ]
        );
        // ISO weeks: 2026-11-22 is a Sunday (week 47); 2026-11-15 ends week 46.
        let k = run(Policy {
            weekly: Some(Count::Up(5)),
            ..Default::default()
        });
        assert_eq!(k, ["2026-11-22T23:00:00Z", "2026-11-15T23:00:00Z"]);
        let k = run(Policy {
            monthly: Some(Count::Up(2)),
            ..Default::default()
        });
        assert_eq!(k, ["2026-11-22T23:00:00Z"]);
        let k = run(Policy {
            yearly: Some(Count::All),
            ..Default::default()
        });
        assert_eq!(k, ["2026-11-22T23:00:00Z"]);
    }

    #[test]
    fn keep_within_is_relative_to_the_newest() {
        let k = run(Policy {
            within: Some(CalendarDuration::parse("1d").unwrap()),
            ..Default::default()
        });
        assert_eq!(
            k.len(),
            25,
            "24 hours back from 23:00 and the boundary itself"
        );
        assert_eq!(k.last().unwrap(), "2026-11-21T23:00:00Z");
        let d = CalendarDuration::parse("1y2m3d4h").unwrap();
        assert_eq!(
            d,
            CalendarDuration {
                years: 1,
                months: 2,
                days: 3,
                hours: 4
            }
        );
        assert_eq!(d.to_string(), "1y2m3d4h");
        assert!(
            CalendarDuration::parse("3w").is_err()
                && CalendarDuration::parse("12").is_err()
                && CalendarDuration::parse("").is_err()
        );
        // Months are calendar months.
        let t = DateTime::parse_from_rfc3339("2026-03-31T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            CalendarDuration::parse("1m")
                .unwrap()
                .before(t)
                .to_rfc3339(),
            "2026-02-28T00:00:00+00:00"
        );
    }

    #[test]
    fn keep_tag_and_combined_reasons() {
        let mut list = series();
        list[10].snapshot.tags = vec!["release".into(), "v1".into()];
        list[20].snapshot.tags = vec!["release".into()];
        let p = Policy {
            tags: vec!["release,v1".into()],
            last: Some(Count::Up(1)),
            daily: Some(Count::Up(1)),
            ..Default::default()
        };
        let d = apply(&list, &p, GroupBy::default()).unwrap();
        let keep: Vec<_> = d[0].decisions.iter().filter(|d| d.keep()).collect();
        assert_eq!(keep.len(), 2);
        assert_eq!(keep[0].reasons, vec!["last snapshot", "daily snapshot"]);
        assert_eq!(keep[1].reasons, vec!["tagged"]);
        assert_eq!(keep[1].entry.snapshot.tags, vec!["release", "v1"]);
    }

    #[test]
    fn keep_size_keeps_the_newest_that_fit() {
        let list = vec![
            snap(1, "2026-11-22T10:00:00Z", "etcd-0", &[], 400),
            snap(2, "2026-11-22T11:00:00Z", "etcd-0", &[], 300),
            snap(3, "2026-11-22T12:00:00Z", "etcd-0", &[], 300),
            snap(4, "2026-11-22T13:00:00Z", "etcd-0", &[], 100),
        ];
        let keep = |limit| {
            let p = Policy {
                size: Some(limit),
                ..Default::default()
            };
            apply(&list, &p, GroupBy::default()).unwrap()[0]
                .decisions
                .iter()
                .filter(|d| d.keep())
                .map(|d| d.entry.id.0[0])
                .collect::<Vec<_>>()
        };
        assert_eq!(keep(1000), vec![4, 3, 2]); // 100 + 300 + 300; 400 more would exceed
        assert_eq!(keep(1100), vec![4, 3, 2, 1]);
        assert_eq!(keep(50), vec![4], "the newest is kept even alone too large");
        assert_eq!(
            keep(450),
            vec![4, 3],
            "an older smaller one does not jump the queue"
        );
    }

    #[test]
    fn groups_are_judged_apart() {
        let list = vec![
            snap(1, "2026-11-22T10:00:00Z", "a", &[], 1),
            snap(2, "2026-11-22T11:00:00Z", "a", &[], 1),
            snap(3, "2026-11-22T10:30:00Z", "b", &[], 1),
        ];
        let p = Policy {
            last: Some(Count::Up(1)),
            ..Default::default()
        };
        let d = apply(&list, &p, GroupBy::default()).unwrap();
        assert_eq!(d.len(), 2);
        let kept: Vec<u8> = d
            .iter()
            .flat_map(|g| &g.decisions)
            .filter(|d| d.keep())
            .map(|d| d.entry.id.0[0])
            .collect();
        assert_eq!(kept, vec![2, 3]);
        let one = apply(&list, &p, GroupBy::parse("").unwrap()).unwrap();
        assert_eq!(one.len(), 1);
        assert!(GroupBy::parse("hosts,x").is_err());
        assert!(
            apply(&list, &Policy::default(), GroupBy::default()).is_err(),
            "no rule: refused"
        );
    }
}
