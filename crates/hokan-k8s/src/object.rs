//! What one backed-up Kubernetes object is: its identity, its version and the
//! few attributes kept beside its JSON.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A group and a resource (plural), the unit Kubernetes and Velero filter and
/// order by. Written like Velero writes it: `deployments.apps`, or just
/// `configmaps` for the core group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupResource {
    /// The API group; empty for the core group.
    pub group: String,
    /// The resource's plural name (`deployments`).
    pub resource: String,
}

impl GroupResource {
    /// A group and resource.
    pub fn new(group: impl Into<String>, resource: impl Into<String>) -> Self {
        GroupResource {
            group: group.into(),
            resource: resource.into(),
        }
    }

    /// Parses `resource.group` the way Kubernetes' `ParseGroupResource`
    /// does: the resource is everything before the first dot.
    pub fn parse(text: &str) -> Self {
        match text.split_once('.') {
            Some((resource, group)) => GroupResource::new(group, resource),
            None => GroupResource::new("", text),
        }
    }

    /// `group/version` as an object's `apiVersion` spells it.
    pub fn api_version(&self, version: &str) -> String {
        api_version(&self.group, version)
    }
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// `group/version`, or just `version` for the core group.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// Splits an `apiVersion` into group and version (`v1` → `("", "v1")`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// Which object: resource, namespace (none when cluster-scoped) and name. The
/// same object served in several versions has one key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// The object's group and resource.
    pub resource: GroupResource,
    /// The namespace; `None` for a cluster-scoped object.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl fmt::Display for ObjectKey {
    /// `configmaps shop/web`, with control characters escaped: names may
    /// come from a tarball or an old snapshot, and this is what messages
    /// print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.resource, self.name),
            None => format!("{} {}", self.resource, self.name),
        };
        f.write_str(&hokan_core::text::escape(&text))
    }
}

/// The attributes stored beside an object's JSON, so listing a backup needs
/// no object bytes. They are what the API server reported at backup time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAttrs {
    /// `apiVersion` (`apps/v1`).
    pub api_version: String,
    /// `kind` (`Deployment`).
    pub kind: String,
    /// `metadata.uid`; used on restore to tell whether an owner is restored too.
    pub uid: String,
    /// `metadata.resourceVersion` at backup time.
    pub resource_version: String,
}

impl ObjectAttrs {
    /// The attributes as `(name, value)` pairs, the form a hokan tree node's
    /// typed attribute map takes. Empty values are left out.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("apiVersion", self.api_version.as_str()),
            ("kind", self.kind.as_str()),
            ("uid", self.uid.as_str()),
            ("resourceVersion", self.resource_version.as_str()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
    }

    /// Rebuilds attributes from `(name, value)` pairs; unknown names are ignored.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut attrs = ObjectAttrs::default();
        for (name, value) in pairs {
            let slot = match name {
                "apiVersion" => &mut attrs.api_version,
                "kind" => &mut attrs.kind,
                "uid" => &mut attrs.uid,
                "resourceVersion" => &mut attrs.resource_version,
                _ => continue,
            };
            *slot = value.to_string();
        }
        attrs
    }
}

/// One stored object without its bytes: what a backup's listing returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// Which object.
    pub key: ObjectKey,
    /// The version these bytes are in (`v1`).
    pub version: String,
    /// Whether this is the version the source cluster preferred. Every backed
    /// up object has exactly one preferred entry; `--all-api-versions` adds
    /// the others.
    pub preferred: bool,
    /// Kind, uid and the rest.
    pub attrs: ObjectAttrs,
}

impl ObjectEntry {
    /// The entry's path in the stored tree (see [`crate::layout`]).
    pub fn path(&self) -> String {
        crate::layout::object_path(&self.key, &self.version, self.preferred)
    }
}

/// One object with its JSON, as a backup hands it to an
/// [`ObjectSink`](crate::ObjectSink).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// Key, version and attributes.
    pub entry: ObjectEntry,
    /// The object's JSON exactly as the API server served it (with
    /// `apiVersion` and `kind` set), so an unchanged object gives the same
    /// bytes, and so the same blob, every time.
    pub json: Vec<u8>,
}

/// The parts of an object's metadata this crate reads. Everything else in
/// the JSON is carried along untouched.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ObjectHead {
    #[serde(default, rename = "apiVersion")]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: HeadMeta,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct HeadMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub uid: String,
    #[serde(default, rename = "resourceVersion")]
    pub resource_version: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default, rename = "deletionTimestamp")]
    pub deletion_timestamp: Option<String>,
    #[serde(default, rename = "ownerReferences")]
    pub owner_references: Vec<HeadOwner>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct HeadOwner {
    #[serde(default)]
    pub kind: String,
}

impl ObjectHead {
    pub(crate) fn parse(what: &str, json: &[u8]) -> crate::Result<Self> {
        serde_json::from_slice(json).map_err(|e| crate::Error::bad_object(what, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_resource_parses_like_kubernetes() {
        assert_eq!(
            GroupResource::parse("deployments.apps"),
            GroupResource::new("apps", "deployments")
        );
        assert_eq!(
            GroupResource::parse("widgets.example.com"),
            GroupResource::new("example.com", "widgets")
        );
        assert_eq!(GroupResource::parse("pods"), GroupResource::new("", "pods"));
        assert_eq!(GroupResource::new("", "pods").to_string(), "pods");
        assert_eq!(
            GroupResource::new("apps", "deployments").to_string(),
            "deployments.apps"
        );
    }

    #[test]
    fn api_versions_split_and_join() {
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(api_version("", "v1"), "v1");
        assert_eq!(api_version("batch", "v1"), "batch/v1");
    }

    #[test]
    fn attrs_round_trip_through_pairs() {
        let attrs = ObjectAttrs {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            uid: "u-1".into(),
            resource_version: String::new(),
        };
        let pairs = attrs.pairs();
        assert_eq!(pairs.len(), 3, "empty values are left out");
        assert_eq!(ObjectAttrs::from_pairs(pairs), attrs);
    }
}
