//! Snapshots: one backup of one source at one time.
//!
//! Version 2 (format 2) opens the source kind to any name, adds the
//! identity a source picks its parent by (a PVC, an etcd cluster, a kube
//! context), labels, and summary figures that fit each source. Version 1
//! snapshots (a closed list of four kinds and file-system figures) are
//! read into the same model, and version-1 repositories keep being written
//! in version 1 where the snapshot fits it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use hokan_core::{Id, Timestamp, TreeId};

use crate::error::{Error, Result};

/// What a snapshot was taken of: a short lower-case name (`fs`, `stream`,
/// `k8s`, `etcd`, `volume`, or a new source's own). Stored as text, so a
/// new source needs no format change.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKind(Cow<'static, str>);

impl SourceKind {
    /// Files and directories.
    pub const FS: SourceKind = SourceKind(Cow::Borrowed("fs"));
    /// A byte stream stored as one file (`backup --stdin`).
    pub const STREAM: SourceKind = SourceKind(Cow::Borrowed("stream"));
    /// Kubernetes resources.
    pub const K8S: SourceKind = SourceKind(Cow::Borrowed("k8s"));
    /// An etcd snapshot.
    pub const ETCD: SourceKind = SourceKind(Cow::Borrowed("etcd"));
    /// The data of a volume (a PVC's files, a block device).
    pub const VOLUME: SourceKind = SourceKind(Cow::Borrowed("volume"));

    /// A kind by name: lower-case letters, digits and `-`.
    pub fn new(name: &str) -> Result<Self> {
        if name.is_empty()
            || name.len() > 32
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(Error::Invalid {
                what: "source kind",
                reason: format!("{name:?}: use 1 to 32 lower-case letters, digits or '-'"),
            });
        }
        Ok(SourceKind(Cow::Owned(name.to_string())))
    }

    /// The name, for listings and JSON.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names of the figures a file-system backup records in [`Summary::counts`].
pub mod counts {
    /// Files that were new.
    pub const FILES_NEW: &str = "files_new";
    /// Files that changed since the parent snapshot.
    pub const FILES_CHANGED: &str = "files_changed";
    /// Files unchanged since the parent snapshot (not read).
    pub const FILES_UNMODIFIED: &str = "files_unmodified";
    /// Directories in the snapshot.
    pub const DIRS: &str = "dirs";
    /// Entries other than directories in the snapshot.
    pub const FILES: &str = "files";
    /// Objects (Kubernetes resources, records) in the snapshot.
    pub const OBJECTS: &str = "objects";
}

/// Figures about the backup that made a snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Bytes of content in the snapshot (files, objects, streams).
    pub bytes: u64,
    /// Blobs this backup added.
    pub blobs_added: u64,
    /// Plaintext bytes this backup added.
    pub bytes_added: u64,
    /// Bytes this backup added to the store (compressed, encrypted, packed).
    pub bytes_stored: u64,
    /// Packs written.
    pub packs_added: u64,
    /// Entries skipped because they could not be read, or changed while read.
    pub errors: u64,
    /// Wall-clock duration of the backup, milliseconds.
    pub duration_ms: u64,
    /// Figures that fit the source, sorted by name: files and directories
    /// for a file system ([`counts`]), objects for Kubernetes, keys and
    /// revision for etcd.
    pub counts: Vec<(String, u64)>,
}

impl Summary {
    /// A source figure, 0 if not recorded.
    pub fn count(&self, name: &str) -> u64 {
        self.counts
            .iter()
            .find(|(k, _)| k == name)
            .map_or(0, |(_, v)| *v)
    }

    /// Sets a source figure.
    pub fn set_count(&mut self, name: &str, value: u64) {
        match self.counts.iter_mut().find(|(k, _)| k == name) {
            Some(e) => e.1 = value,
            None => {
                self.counts.push((name.to_string(), value));
                self.counts.sort();
            }
        }
    }
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
    /// What this is a backup *of*, in the source's own terms (a PVC's
    /// namespace/name, an etcd cluster id, a kube context); empty for file
    /// systems, whose identity is the host and paths. Parents and retention
    /// groups are found by it.
    pub identity: String,
    /// The snapshot this one was compared with, if any.
    pub parent: Option<Id>,
    /// The root tree.
    pub tree: TreeId,
    /// Figures about the backup.
    pub summary: Summary,
    /// Source-specific facts, sorted by key (etcd revision, cluster name...).
    pub labels: Vec<(String, String)>,
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
            identity: String::new(),
            parent: None,
            tree,
            summary: Summary::default(),
            labels: Vec::new(),
            program_version: concat!("hokan ", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }

    /// The time as RFC 3339 in UTC.
    pub fn time_rfc3339(&self) -> String {
        chrono::DateTime::from_timestamp(self.time.secs, self.time.nanos)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| format!("@{}", self.time.secs))
    }

    /// The value of a label.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// What this snapshot is a backup of, for parents and retention: the
    /// source kind, and its identity, or the host and sorted paths where
    /// the source has none.
    pub fn lineage(&self) -> Lineage {
        let mut paths = self.paths.clone();
        paths.sort();
        Lineage {
            source: self.source.clone(),
            identity: if self.identity.is_empty() {
                Err((self.hostname.clone(), paths))
            } else {
                Ok(self.identity.clone())
            },
        }
    }

    /// The version-1 encoding, if this snapshot fits it: one of the four
    /// first source kinds, no identity, file-system figures only.
    pub(crate) fn to_v1(&self) -> Result<SnapshotV1> {
        let needs = |what: String| Error::Core(hokan_core::Error::NeedsFormat { what, needed: 2 });
        let source = match self.source.name() {
            "fs" => SourceKindV1::Fs,
            "stream" => SourceKindV1::Stream,
            "k8s" => SourceKindV1::K8s,
            "etcd" => SourceKindV1::Etcd,
            other => return Err(needs(format!("a snapshot of source kind {other:?}"))),
        };
        if !self.identity.is_empty() {
            return Err(needs("a snapshot with a source identity".into()));
        }
        let known = [
            counts::FILES_NEW,
            counts::FILES_CHANGED,
            counts::FILES_UNMODIFIED,
            counts::DIRS,
            counts::FILES,
        ];
        if let Some((k, _)) = self
            .summary
            .counts
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            return Err(needs(format!("the snapshot figure {k:?}")));
        }
        let s = &self.summary;
        Ok(SnapshotV1 {
            time: self.time,
            hostname: self.hostname.clone(),
            username: self.username.clone(),
            paths: self.paths.clone(),
            tags: self.tags.clone(),
            source,
            parent: self.parent,
            tree: self.tree,
            summary: SummaryV1 {
                files_new: s.count(counts::FILES_NEW),
                files_changed: s.count(counts::FILES_CHANGED),
                files_unmodified: s.count(counts::FILES_UNMODIFIED),
                dirs: s.count(counts::DIRS),
                files: s.count(counts::FILES),
                bytes: s.bytes,
                blobs_added: s.blobs_added,
                bytes_added: s.bytes_added,
                bytes_stored: s.bytes_stored,
                packs_added: s.packs_added,
                errors: s.errors,
                duration_ms: s.duration_ms,
            },
            meta: self.labels.clone(),
            program_version: self.program_version.clone(),
        })
    }
}

/// What a snapshot is a backup of (see [`Snapshot::lineage`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lineage {
    /// The kind of source.
    pub source: SourceKind,
    /// The source's identity, or (host, sorted paths).
    pub identity: std::result::Result<String, (String, Vec<String>)>,
}

#[derive(Serialize, Deserialize)]
pub(crate) enum SourceKindV1 {
    Fs,
    Stream,
    K8s,
    Etcd,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct SummaryV1 {
    files_new: u64,
    files_changed: u64,
    files_unmodified: u64,
    dirs: u64,
    files: u64,
    bytes: u64,
    blobs_added: u64,
    bytes_added: u64,
    bytes_stored: u64,
    packs_added: u64,
    errors: u64,
    duration_ms: u64,
}

/// The version-1 snapshot (`docs/FORMAT.md` §10).
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotV1 {
    time: Timestamp,
    hostname: String,
    username: String,
    paths: Vec<String>,
    tags: Vec<String>,
    source: SourceKindV1,
    parent: Option<Id>,
    tree: TreeId,
    summary: SummaryV1,
    meta: Vec<(String, String)>,
    program_version: String,
}

impl From<SnapshotV1> for Snapshot {
    fn from(v: SnapshotV1) -> Snapshot {
        let source = match v.source {
            SourceKindV1::Fs => SourceKind::FS,
            SourceKindV1::Stream => SourceKind::STREAM,
            SourceKindV1::K8s => SourceKind::K8S,
            SourceKindV1::Etcd => SourceKind::ETCD,
        };
        let s = v.summary;
        let mut counts: Vec<(String, u64)> = [
            (counts::DIRS, s.dirs),
            (counts::FILES, s.files),
            (counts::FILES_CHANGED, s.files_changed),
            (counts::FILES_NEW, s.files_new),
            (counts::FILES_UNMODIFIED, s.files_unmodified),
        ]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
        counts.sort();
        Snapshot {
            time: v.time,
            hostname: v.hostname,
            username: v.username,
            paths: v.paths,
            tags: v.tags,
            source,
            identity: String::new(),
            parent: v.parent,
            tree: v.tree,
            summary: Summary {
                bytes: s.bytes,
                blobs_added: s.blobs_added,
                bytes_added: s.bytes_added,
                bytes_stored: s.bytes_stored,
                packs_added: s.packs_added,
                errors: s.errors,
                duration_ms: s.duration_ms,
                counts,
            },
            labels: v.meta,
            program_version: v.program_version,
        }
    }
}

/// A change to a snapshot's tags, as `hokan tag` gives it: replace them
/// all (`set`), or add and remove some.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagChange {
    /// Replace every tag with these (an empty list clears them).
    pub set: Option<Vec<String>>,
    /// Tags to add.
    pub add: Vec<String>,
    /// Tags to remove.
    pub remove: Vec<String>,
}

impl TagChange {
    /// Applies the change to `tags`, the tags it names normalised as a
    /// backup's are ([`normalize_tags`]); returns whether anything changed.
    pub fn apply(&self, tags: &mut Vec<String>) -> bool {
        let remove = normalize_tags(self.remove.iter().cloned());
        let mut next = self.set.clone().unwrap_or_else(|| tags.clone());
        next.extend(self.add.iter().cloned());
        let next: Vec<String> = normalize_tags(next)
            .into_iter()
            .filter(|t| !remove.contains(t))
            .collect();
        let changed = next != *tags;
        *tags = next;
        changed
    }
}

/// Tags as a snapshot records them: trimmed, empty ones dropped, sorted,
/// each once. Every source's [`SnapshotSpec`](crate::SnapshotSpec) and
/// every [`TagChange`] pass through here, so `--tag " daily"` from one
/// command and `daily` from another are one tag.
pub fn normalize_tags(tags: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = tags
        .into_iter()
        .map(|t| match t.trim() {
            trimmed if trimmed.len() == t.len() => t,
            trimmed => trimmed.to_string(),
        })
        .filter(|t| !t.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
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
    /// Only snapshots of this identity (empty: any).
    pub identity: Option<String>,
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
            && self.identity.as_ref().is_none_or(|i| *i == s.identity)
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
        let mut s = Snapshot::new(SourceKind::FS, vec!["/data".into()], TreeId(Id([0; 32])));
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
    fn tag_changes_keep_tags_sorted_and_unique() {
        let mut tags = vec!["b".to_string(), "d".to_string()];
        let add = TagChange {
            add: vec!["a".into(), "d".into()],
            remove: vec!["b".into()],
            ..Default::default()
        };
        assert!(add.apply(&mut tags));
        assert_eq!(tags, ["a", "d"]);
        assert!(!add.apply(&mut tags), "applying it again changes nothing");
        let set = TagChange {
            set: Some(vec!["z".into(), "y".into()]),
            ..Default::default()
        };
        assert!(set.apply(&mut tags));
        assert_eq!(tags, ["y", "z"]);
        let clear = TagChange {
            set: Some(vec![]),
            ..Default::default()
        };
        assert!(clear.apply(&mut tags));
        assert!(tags.is_empty());
    }

    #[test]
    fn source_kinds_are_open_and_v1_stays_v1() {
        assert_eq!(SourceKind::new("etcd").unwrap(), SourceKind::ETCD);
        assert!(SourceKind::new("Bad Kind").is_err());
        let mut s = entry(1, "a", &["x"], 5).snapshot;
        s.summary.set_count(counts::FILES, 3);
        let v1: Snapshot = s.to_v1().unwrap().into();
        assert_eq!(v1.summary.count(counts::FILES), 3);
        assert_eq!(v1.source, SourceKind::FS);
        s.source = SourceKind::new("volume").unwrap();
        assert!(s.to_v1().is_err());
        s.source = SourceKind::ETCD;
        s.summary.set_count("revision", 9);
        assert!(s.to_v1().is_err(), "etcd figures need version 2");
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
