//! The names of the mount's top: which directory each snapshot gets under
//! `snapshots/`, `ids/`, `hosts/<host>/` and `tags/<tag>/`, and what each
//! `latest` link points to. Pure bookkeeping over the snapshot list, so it
//! is tested without FUSE.

use std::collections::{BTreeMap, HashMap};

use hokan_repo::SnapshotEntry;

/// Snapshots under one directory: `(name, index into the entries)` in time
/// order, and the name `latest` links to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Group {
    /// Entries by their unique time name, oldest first.
    pub snapshots: Vec<(String, usize)>,
    /// The newest one's name.
    pub latest: Option<String>,
}

/// Every name of the top of the mount.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// `snapshots/<time>`: every snapshot.
    pub all: Group,
    /// `ids/<short id>`.
    pub ids: Vec<(String, usize)>,
    /// `hosts/<host>/<time>`, by host name.
    pub hosts: BTreeMap<String, Group>,
    /// `tags/<tag>/<time>`, by tag.
    pub tags: BTreeMap<String, Group>,
}

/// A host name or tag as one path component: `/` and NUL cannot be in a
/// name, and `.`/`..`/empty would name something else.
pub fn component(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => format!("_{cleaned}"),
        _ => cleaned,
    }
}

impl Layout {
    /// Drops every `latest` link.
    pub fn without_latest(&mut self) {
        self.all.latest = None;
        for g in self.hosts.values_mut().chain(self.tags.values_mut()) {
            g.latest = None;
        }
    }

    /// The layout of `entries` (any order; they are named in time order,
    /// ties broken by id, so names are the same on every mount).
    pub fn new(entries: &[SnapshotEntry]) -> Layout {
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&entries[a], &entries[b]);
            (x.snapshot.time, x.id).cmp(&(y.snapshot.time, y.id))
        });
        // Two snapshots in the same second share an RFC 3339 name; the
        // later ones get -1, -2, ... as restic's mount does.
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut names = vec![String::new(); entries.len()];
        for &i in &order {
            let base = entries[i].snapshot.time_rfc3339();
            let n = seen.entry(base.clone()).or_insert(0);
            names[i] = if *n == 0 { base } else { format!("{base}-{n}") };
            *n += 1;
        }
        let mut layout = Layout::default();
        let push = |g: &mut Group, i: usize| {
            g.snapshots.push((names[i].clone(), i));
            g.latest = Some(names[i].clone());
        };
        for &i in &order {
            let s = &entries[i].snapshot;
            push(&mut layout.all, i);
            push(layout.hosts.entry(component(&s.hostname)).or_default(), i);
            for t in &s.tags {
                push(layout.tags.entry(component(t)).or_default(), i);
            }
        }
        // Short ids are 8 hex digits; where two collide, both get the
        // full id so neither name is ambiguous.
        let mut shorts: HashMap<String, usize> = HashMap::new();
        for e in entries {
            *shorts.entry(e.id.short()).or_insert(0) += 1;
        }
        layout.ids = order
            .iter()
            .map(|&i| {
                let short = entries[i].id.short();
                let name = if shorts[&short] > 1 {
                    entries[i].id.to_hex()
                } else {
                    short
                };
                (name, i)
            })
            .collect();
        layout.ids.sort();
        layout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hokan_core::{Id, Timestamp, TreeId};
    use hokan_repo::{Snapshot, SourceKind};

    fn entry(id: u8, secs: i64, host: &str, tags: &[&str]) -> SnapshotEntry {
        let mut s = Snapshot::new(
            SourceKind::new("files").unwrap(),
            vec![],
            TreeId(Id([0; 32])),
        );
        s.time = Timestamp { secs, nanos: 0 };
        s.hostname = host.into();
        s.tags = tags.iter().map(|t| t.to_string()).collect();
        let mut raw = [0u8; 32];
        raw[0] = id;
        SnapshotEntry {
            id: Id(raw),
            snapshot: s,
        }
    }

    #[test]
    fn names_are_unique_in_time_order_and_latest_is_newest() {
        // Given out of order, two in the same second.
        let entries = vec![
            entry(3, 2_000_000_000, "b/x", &["daily"]),
            entry(1, 1_000_000_000, "a", &["daily", ""]),
            entry(2, 1_000_000_000, "a", &[]),
        ];
        let l = Layout::new(&entries);
        let names: Vec<&str> = l.all.snapshots.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "2001-09-09T01:46:40Z",
                "2001-09-09T01:46:40Z-1",
                "2033-05-18T03:33:20Z"
            ]
        );
        assert_eq!(l.all.snapshots[0].1, 1, "ties go by id");
        assert_eq!(l.all.latest.as_deref(), Some("2033-05-18T03:33:20Z"));
        assert_eq!(
            l.hosts.keys().collect::<Vec<_>>(),
            ["a", "b_x"],
            "a slash cannot be in a name"
        );
        assert_eq!(
            l.hosts["a"].latest.as_deref(),
            Some("2001-09-09T01:46:40Z-1")
        );
        assert_eq!(l.tags.keys().collect::<Vec<_>>(), ["_", "daily"]);
        assert_eq!(l.tags["daily"].snapshots.len(), 2);
        assert_eq!(l.ids.len(), 3);
        assert!(l.ids.iter().all(|(n, _)| n.len() == 8));
    }

    #[test]
    fn colliding_short_ids_use_the_full_id() {
        let mut a = entry(1, 1, "h", &[]);
        let mut b = entry(1, 2, "h", &[]);
        a.id.0[31] = 1;
        b.id.0[31] = 2;
        let l = Layout::new(&[a, b]);
        assert!(l.ids.iter().all(|(n, _)| n.len() == 64), "{:?}", l.ids);
        assert_eq!(component(".."), "_..");
    }
}
