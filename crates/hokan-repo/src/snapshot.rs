//! Snapshots: one backup of one source at one time.

use serde::{Deserialize, Serialize};

use hokan_core::{Id, Timestamp, TreeId};

use crate::error::{Error, Result};

/// What a snapshot was taken of.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// Files and directories.
    Fs,
    /// A byte stream stored as one file (`backup --stdin`).
    Stream,
    /// Kubernetes resources.
    K8s,
    /// An etcd snapshot.
    Etcd,
}

impl SourceKind {
    /// Lower-case name for listings and JSON.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Fs => "fs",
            SourceKind::Stream => "stream",
            SourceKind::K8s => "k8s",
            SourceKind::Etcd => "etcd",
        }
    }
}

/// Figures about the backup that made a snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files that were new.
    pub files_new: u64,
    /// Files that changed since the parent snapshot.
    pub files_changed: u64,
    /// Files unchanged since the parent snapshot (not read).
    pub files_unmodified: u64,
    /// Directories in the snapshot.
    pub dirs: u64,
    /// Files (of any type but directories) in the snapshot.
    pub files: u64,
    /// Bytes of all files in the snapshot.
    pub bytes: u64,
    /// Blobs this backup added.
    pub blobs_added: u64,
    /// Plaintext bytes this backup added.
    pub bytes_added: u64,
    /// Bytes this backup added to the store (compressed, encrypted, packed).
    pub bytes_stored: u64,
    /// Packs written.
    pub packs_added: u64,
    /// Files skipped because they could not be read, or changed while read.
    pub errors: u64,
    /// Wall-clock duration of the backup, milliseconds.
    pub duration_ms: u64,
}

/// A snapshot. Stored encrypted under `snapshots/<id>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// When the backup started.
    pub time: Timestamp,
    /// Host it was taken on.
    pub hostname: String,
    /// User who took it.
    pub username: String,
    /// The paths (or names) backed up, as given.
    pub paths: Vec<String>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// What kind of source.
    pub source: SourceKind,
    /// The snapshot this one was compared with, if any.
    pub parent: Option<Id>,
    /// The root tree.
    pub tree: TreeId,
    /// Figures about the backup.
    pub summary: Summary,
    /// Source-specific facts, sorted by key (etcd revision, cluster name...).
    pub meta: Vec<(String, String)>,
    /// The hokan version that wrote it.
    pub program_version: String,
}

impl Snapshot {
    /// A snapshot of `tree` taken now, on this host, by this user.
    pub fn new(source: SourceKind, paths: Vec<String>, tree: TreeId) -> Self {
        let now = chrono::Utc::now();
        Snapshot {
            time: Timestamp {
                secs: now.timestamp(),
                nanos: now.timestamp_subsec_nanos(),
            },
            hostname: crate::hostname(),
            username: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_default(),
            paths,
            tags: Vec::new(),
            source,
            parent: None,
            tree,
            summary: Summary::default(),
            meta: Vec::new(),
            program_version: concat!("hokan ", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }

    /// The time as RFC 3339 in UTC.
    pub fn time_rfc3339(&self) -> String {
        chrono::DateTime::from_timestamp(self.time.secs, self.time.nanos)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| format!("@{}", self.time.secs))
    }

    /// The value of a `meta` entry.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A stored snapshot and its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The id (BLAKE3 of the stored object).
    pub id: Id,
    /// The snapshot.
    pub snapshot: Snapshot,
}

/// Which snapshots to consider: every given criterion must match.
#[derive(Clone, Debug, Default)]
pub struct SnapshotFilter {
    /// Any of these hosts (empty: any host).
    pub hosts: Vec<String>,
    /// Any of these tag sets; each entry is a comma-separated list of tags
    /// that must all be present, as restic's `--tag a,b --tag c`.
    pub tags: Vec<String>,
    /// All of these paths must be among the snapshot's paths.
    pub paths: Vec<String>,
    /// Only these kinds of source (empty: any).
    pub sources: Vec<SourceKind>,
}

impl SnapshotFilter {
    /// Whether a snapshot matches.
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && (self.tags.is_empty()
                || self.tags.iter().any(|set| {
                    set.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .all(|t| s.tags.iter().any(|x| x == t))
                }))
            && self.paths.iter().all(|p| s.paths.contains(p))
            && (self.sources.is_empty() || self.sources.contains(&s.source))
    }
}

/// Picks one snapshot by `latest`, a full id, or a unique id prefix, among
/// those the filter admits. `entries` must be sorted by time.
pub fn find<'a>(
    entries: &'a [SnapshotEntry],
    query: &str,
    filter: &SnapshotFilter,
) -> Result<&'a SnapshotEntry> {
    let mut candidates = entries.iter().filter(|e| filter.matches(&e.snapshot));
    if query == "latest" {
        return candidates
            .next_back()
            .ok_or_else(|| Error::SnapshotNotFound {
                query: query.to_string(),
            });
    }
    let q = query.to_ascii_lowercase();
    if q.is_empty() || !q.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::SnapshotNotFound {
            query: query.to_string(),
        });
    }
    let matching: Vec<_> = candidates
        .filter(|e| e.id.to_hex().starts_with(&q))
        .collect();
    match matching.len() {
        0 => Err(Error::SnapshotNotFound {
            query: query.to_string(),
        }),
        1 => Ok(matching[0]),
        count => Err(Error::AmbiguousSnapshot {
            prefix: query.to_string(),
            count,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u8, host: &str, tags: &[&str], secs: i64) -> SnapshotEntry {
        let mut s = Snapshot::new(SourceKind::Fs, vec!["/data".into()], TreeId(Id([0; 32])));
        s.hostname = host.into();
        s.tags = tags.iter().map(|t| t.to_string()).collect();
        s.time.secs = secs;
        let mut b = [0u8; 32];
        b[0] = id;
        b[1] = 0xab;
        SnapshotEntry {
            id: Id(b),
            snapshot: s,
        }
    }

    #[test]
    fn find_by_latest_prefix_and_filter() {
        let all = vec![
            entry(0x10, "a", &["x"], 1),
            entry(0x11, "b", &["x", "y"], 2),
            entry(0x20, "a", &[], 3),
        ];
        let none = SnapshotFilter::default();
        assert_eq!(find(&all, "latest", &none).unwrap().id, all[2].id);
        let host_b = SnapshotFilter {
            hosts: vec!["b".into()],
            ..Default::default()
        };
        assert_eq!(find(&all, "latest", &host_b).unwrap().id, all[1].id);
        assert_eq!(find(&all, "20", &none).unwrap().id, all[2].id);
        assert!(matches!(
            find(&all, "1", &none),
            Err(Error::AmbiguousSnapshot { count: 2, .. })
        ));
        assert!(matches!(
            find(&all, "ff", &none),
            Err(Error::SnapshotNotFound { .. })
        ));
        assert!(matches!(
            find(&all, "zz", &none),
            Err(Error::SnapshotNotFound { .. })
        ));
        let tags_xy = SnapshotFilter {
            tags: vec!["x,y".into()],
            ..Default::default()
        };
        assert_eq!(
            all.iter().filter(|e| tags_xy.matches(&e.snapshot)).count(),
            1
        );
        let tags_x_or_none = SnapshotFilter {
            tags: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(
            all.iter()
                .filter(|e| tags_x_or_none.matches(&e.snapshot))
                .count(),
            2
        );
        let paths = SnapshotFilter {
            paths: vec!["/other".into()],
            ..Default::default()
        };
        assert!(find(&all, "latest", &paths).is_err());
    }
}
