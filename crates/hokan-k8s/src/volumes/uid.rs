//! Moving restored files between OpenShift namespaces' UID ranges.
//!
//! OpenShift gives each namespace a range of UIDs
//! (`openshift.io/sa.scc.uid-range: 1000650000/10000`) and runs its pods
//! as the range's first UID. Files restored from another namespace keep
//! that namespace's owners, which the new pods may not write; shifting
//! every owner inside the old range by the distance between the ranges
//! gives them the owners they had relative to their namespace.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;

use crate::{Error, Result};

/// The annotation holding a namespace's UID range.
pub const UID_RANGE_ANNOTATION: &str = "openshift.io/sa.scc.uid-range";

/// A UID range as OpenShift writes it: `start/size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct UidRange {
    /// The first UID.
    pub start: u32,
    /// How many.
    pub size: u32,
}

impl UidRange {
    /// Parses `1000650000/10000`.
    pub fn parse(s: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidOption {
            option: "UID range",
            value: s.into(),
            reason: format!(
                "{reason}; expected start/size as OpenShift writes it, e.g. 1000650000/10000"
            ),
        };
        let (start, size) = s.trim().split_once('/').ok_or_else(|| invalid("no '/'"))?;
        let start: u32 = start
            .trim()
            .parse()
            .map_err(|_| invalid("start is not a number"))?;
        let size: u32 = size
            .trim()
            .parse()
            .map_err(|_| invalid("size is not a number"))?;
        if size == 0 || start.checked_add(size).is_none() {
            return Err(invalid("the range is empty or past the largest UID"));
        }
        Ok(UidRange { start, size })
    }

    /// Whether `id` is in the range.
    pub fn contains(&self, id: u32) -> bool {
        id >= self.start && id - self.start < self.size
    }
}

/// `FROM:TO`, each `start/size`.
pub fn parse_mapping(s: &str) -> Result<(UidRange, UidRange)> {
    let (from, to) = s.split_once(':').ok_or_else(|| Error::InvalidOption {
        option: "UID range mapping",
        value: s.into(),
        reason: "expected FROM:TO, e.g. 1000650000/10000:1000780000/10000".into(),
    })?;
    checked_mapping(UidRange::parse(from)?, UidRange::parse(to)?)
}

/// `from` and `to`, unless `to` is smaller: shifted owners would fall
/// outside it.
pub fn checked_mapping(from: UidRange, to: UidRange) -> Result<(UidRange, UidRange)> {
    if to.size < from.size {
        return Err(Error::InvalidOption {
            option: "UID range mapping",
            value: format!("{}/{}:{}/{}", from.start, from.size, to.start, to.size),
            reason: format!(
                "the target range ({} UIDs) is smaller than the source range ({}): shifted owners would fall outside it",
                to.size, from.size
            ),
        });
    }
    Ok((from, to))
}

/// The UID range OpenShift gave `namespace` (its
/// [`UID_RANGE_ANNOTATION`]).
pub async fn namespace_range(cluster: &crate::Cluster, namespace: &str) -> Result<UidRange> {
    let ns = cluster
        .get(&format!("/api/v1/namespaces/{namespace}"))
        .await?
        .ok_or_else(|| Error::InvalidOption {
            option: "namespace",
            value: namespace.into(),
            reason: "no such namespace in the cluster; create it first (OpenShift then gives it a UID range) or name an existing one".into(),
        })?;
    let range = ns
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(UID_RANGE_ANNOTATION))
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| Error::NoUidRange {
            namespace: namespace.into(),
        })?;
    UidRange::parse(range)
}

/// What a shift did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShiftSummary {
    /// Entries whose owner or group was moved into the target range.
    pub shifted: u64,
    /// Entries whose owner or group lies outside the source range (root,
    /// a fixed UID); left as they were.
    pub outside: u64,
    /// Entries looked at.
    pub entries: u64,
}

/// Shifts the owner and group of `root` and everything below it that lie
/// in `from` to the same place in `to` (lchown: symlinks are changed,
/// never followed).
pub fn shift_owners(root: &Path, from: UidRange, to: UidRange) -> Result<ShiftSummary> {
    let mut summary = ShiftSummary::default();
    let mut stack = vec![root.to_path_buf()];
    let moved = |id: u32| from.contains(id).then(|| to.start + (id - from.start));
    while let Some(path) = stack.pop() {
        let md = path
            .symlink_metadata()
            .map_err(|e| Error::io("read metadata of", &path, e))?;
        summary.entries += 1;
        let (uid, gid) = (moved(md.uid()), moved(md.gid()));
        if uid.is_none() || gid.is_none() {
            summary.outside += 1;
        }
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::lchown(&path, uid, gid)
                .map_err(|e| Error::io("change the owner of", &path, e))?;
            summary.shifted += 1;
        }
        if md.is_dir() {
            let rd = std::fs::read_dir(&path).map_err(|e| Error::io("list", &path, e))?;
            for e in rd {
                stack.push(e.map_err(|e| Error::io("list", &path, e))?.path());
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_refuse_what_cannot_work() {
        let (from, to) = parse_mapping("1000650000/10000:1000780000/10000").unwrap();
        assert_eq!(from.start, 1000650000);
        assert!(from.contains(1000659999) && !from.contains(1000660000));
        assert_eq!(to.size, 10000);
        assert!(parse_mapping("1000/10:2000/5").is_err());
        assert!(parse_mapping("1000/10").is_err());
        assert!(UidRange::parse("x/1").is_err());
    }
}
