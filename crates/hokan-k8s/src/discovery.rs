//! What a cluster serves: groups, their versions in preference order, and the
//! resources of each version — read from aggregated discovery
//! (`apidiscovery.k8s.io/v2`) or the legacy per-group documents.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::object::GroupResource;
use crate::version;

/// The `Accept` header asking for aggregated discovery, falling back to the
/// legacy documents on servers older than 1.26, as client-go asks.
pub const ACCEPT_AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

/// One resource in one group version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// The group; empty for core.
    pub group: String,
    /// The version (`v1`).
    pub version: String,
    /// The plural name (`deployments`).
    pub resource: String,
    /// The kind (`Deployment`).
    pub kind: String,
    /// The singular name (`deployment`).
    pub singular: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// The verbs the server allows (`list`, `create`, …).
    pub verbs: Vec<String>,
    /// Short names (`deploy`).
    pub short_names: Vec<String>,
    /// Subresources (`status`, `scale`).
    pub subresources: Vec<String>,
}

impl ResourceInfo {
    /// Its group and resource.
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.resource)
    }

    /// `apiVersion` of its objects.
    pub fn api_version(&self) -> String {
        crate::object::api_version(&self.group, &self.version)
    }

    /// Whether every one of `verbs` is allowed.
    pub fn supports(&self, verbs: &[&str]) -> bool {
        verbs
            .iter()
            .all(|v| self.verbs.iter().any(|have| have == v))
    }

    /// Whether a backup can take it and a restore give it back: Velero's rule
    /// (list, create, get and delete all allowed).
    pub fn backupable(&self) -> bool {
        self.supports(&["list", "create", "get", "delete"])
    }

    /// The URL path of its collection, in `namespace` or cluster-wide.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let prefix = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{prefix}/namespaces/{ns}/{}", self.resource),
            _ => format!("{prefix}/{}", self.resource),
        }
    }
}

/// A group and its served versions, preferred first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupVersions {
    /// The group; empty for core.
    pub name: String,
    /// Served versions, the preferred one first.
    pub versions: Vec<String>,
}

/// Everything a cluster serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Groups in the server's order (core first).
    pub groups: Vec<GroupVersions>,
    /// Every resource of every served version.
    pub resources: Vec<ResourceInfo>,
}

impl Discovery {
    /// Builds discovery from the aggregated documents of `/api` and `/apis`.
    pub fn from_aggregated(lists: &[AggregatedList]) -> Self {
        let mut discovery = Discovery::default();
        for group in lists.iter().flat_map(|l| &l.items) {
            let name = group.metadata.name.clone();
            let mut versions = Vec::new();
            for v in &group.versions {
                versions.push(v.version.clone());
                for r in &v.resources {
                    discovery.resources.push(r.to_info(&name, &v.version));
                }
            }
            discovery.groups.push(GroupVersions { name, versions });
        }
        discovery
    }

    /// Builds discovery from legacy documents: the groups (core first, its
    /// versions from `/api`) and one `APIResourceList` per group version.
    pub fn from_legacy(groups: Vec<GroupVersions>, lists: &[ResourceList]) -> Self {
        let mut resources = Vec::new();
        for list in lists {
            let (group, version) = crate::object::split_api_version(&list.group_version);
            let mut subresources: Vec<(&str, &str)> = Vec::new();
            for r in &list.resources {
                if let Some((parent, sub)) = r.name.split_once('/') {
                    subresources.push((parent, sub));
                }
            }
            for r in list.resources.iter().filter(|r| !r.name.contains('/')) {
                resources.push(ResourceInfo {
                    group: group.to_string(),
                    version: version.to_string(),
                    resource: r.name.clone(),
                    kind: r.kind.clone(),
                    singular: r.singular_name.clone(),
                    namespaced: r.namespaced,
                    verbs: r.verbs.clone(),
                    short_names: r.short_names.clone(),
                    subresources: subresources
                        .iter()
                        .filter(|(p, _)| *p == r.name)
                        .map(|(_, s)| s.to_string())
                        .collect(),
                });
            }
        }
        Discovery { groups, resources }
    }

    /// The group named `name`.
    pub fn group(&self, name: &str) -> Option<&GroupVersions> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Velero's default set (client-go's `ServerPreferredResources`): every
    /// resource once, in the first version of its group's preference order
    /// that serves it.
    pub fn preferred_resources(&self) -> Vec<&ResourceInfo> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for group in &self.groups {
            for version in &group.versions {
                for r in self
                    .resources
                    .iter()
                    .filter(|r| r.group == group.name && &r.version == version)
                {
                    if seen.insert(r.resource.as_str()) {
                        out.push(r);
                    }
                }
            }
            seen.clear();
        }
        out
    }

    /// The resource `gr` in its preferred version.
    pub fn preferred(&self, gr: &GroupResource) -> Option<&ResourceInfo> {
        let group = self.group(&gr.group)?;
        group.versions.iter().find_map(|v| self.find(gr, v))
    }

    /// The resource `gr` in `version`, if served.
    pub fn find(&self, gr: &GroupResource, version: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == gr.group && r.resource == gr.resource && r.version == version)
    }

    /// The versions serving `gr`, in the group's preference order.
    pub fn versions_of(&self, gr: &GroupResource) -> Vec<&str> {
        let Some(group) = self.group(&gr.group) else {
            return Vec::new();
        };
        group
            .versions
            .iter()
            .filter(|v| self.find(gr, v).is_some())
            .map(String::as_str)
            .collect()
    }

    /// Resolves what a person typed (`deploy`, `deployment`, `Deployment`,
    /// `deployments.apps`, `widgets.example.com`) to a served resource, as
    /// kubectl and Velero do: plural, singular, short name or kind, within
    /// the given group if a dot names one; the core group wins a tie, then
    /// the server's group order. `None` when nothing matches.
    pub fn resolve(&self, text: &str) -> Option<GroupResource> {
        let text = text.to_ascii_lowercase();
        let matches = |r: &ResourceInfo, name: &str| {
            r.resource == name
                || r.singular == name
                || r.kind.eq_ignore_ascii_case(name)
                || r.short_names.iter().any(|s| s == name)
        };
        // A full name first (`deployments.apps`), then the bare name.
        if let Some((name, group)) = text.split_once('.')
            && let Some(r) = self
                .preferred_resources()
                .into_iter()
                .find(|r| r.group == group && matches(r, name))
        {
            return Some(r.group_resource());
        }
        self.preferred_resources()
            .into_iter()
            .find(|r| matches(r, &text))
            .map(ResourceInfo::group_resource)
    }

    /// Adds what a CustomResourceDefinition serves, as the API server does
    /// once it is Established. Replaces an earlier definition of the group's
    /// resource.
    pub fn add_crd(&mut self, crd: &Value) {
        let Some(crd) = CrdNames::parse(crd) else {
            return;
        };
        self.resources
            .retain(|r| !(r.group == crd.group && r.resource == crd.plural));
        for version in &crd.served {
            self.resources.push(ResourceInfo {
                group: crd.group.clone(),
                version: version.clone(),
                resource: crd.plural.clone(),
                kind: crd.kind.clone(),
                singular: crd.singular.clone(),
                namespaced: crd.namespaced,
                verbs: [
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch",
                ]
                .map(String::from)
                .to_vec(),
                short_names: crd.short_names.clone(),
                subresources: crd.subresources.clone(),
            });
        }
        self.rebuild_group(&crd.group);
    }

    /// Removes what a deleted CustomResourceDefinition served.
    pub fn remove_crd(&mut self, group: &str, plural: &str) {
        self.resources
            .retain(|r| !(r.group == group && r.resource == plural));
        self.rebuild_group(group);
    }

    // A CRD-served group lists its versions by Kubernetes version priority.
    fn rebuild_group(&mut self, group: &str) {
        let mut versions: Vec<String> = self
            .resources
            .iter()
            .filter(|r| r.group == group)
            .map(|r| r.version.clone())
            .collect();
        versions.sort();
        versions.dedup();
        version::sort_by_priority(&mut versions);
        self.groups.retain(|g| g.name != group);
        if !versions.is_empty() {
            self.groups.push(GroupVersions {
                name: group.to_string(),
                versions,
            });
        }
    }
}

/// The names a CRD declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CrdNames {
    pub group: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Served versions, highest priority first.
    pub served: Vec<String>,
    pub subresources: Vec<String>,
}

impl CrdNames {
    pub(crate) fn parse(crd: &Value) -> Option<Self> {
        let spec = crd.get("spec")?;
        let names = spec.get("names")?;
        let text = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let plural = text(names, "plural");
        let group = text(spec, "group");
        if plural.is_empty() || group.is_empty() {
            return None;
        }
        let mut served = Vec::new();
        let mut subresources = BTreeSet::new();
        for v in spec
            .get("versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if v.get("served").and_then(Value::as_bool) == Some(true) {
                served.push(text(v, "name"));
                if let Some(subs) = v.get("subresources").and_then(Value::as_object) {
                    subresources.extend(subs.keys().cloned());
                }
            }
        }
        version::sort_by_priority(&mut served);
        Some(CrdNames {
            singular: text(names, "singular"),
            kind: text(names, "kind"),
            short_names: names
                .get("shortNames")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            namespaced: text(spec, "scope") != "Cluster",
            served,
            subresources: subresources.into_iter().collect(),
            group,
            plural,
        })
    }
}

/// `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregatedList {
    /// `apidiscovery.k8s.io/v2`.
    #[serde(default)]
    pub api_version: String,
    /// `APIGroupDiscoveryList`.
    #[serde(default)]
    pub kind: String,
    /// One entry per group.
    #[serde(default)]
    pub items: Vec<AggregatedGroup>,
}

/// One group of an [`AggregatedList`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AggregatedGroup {
    /// `metadata.name` is the group.
    #[serde(default)]
    pub metadata: NameOnly,
    /// Versions, preferred first.
    #[serde(default)]
    pub versions: Vec<AggregatedVersion>,
}

/// Object metadata reduced to the name.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NameOnly {
    /// The name.
    #[serde(default)]
    pub name: String,
}

/// One version of an [`AggregatedGroup`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AggregatedVersion {
    /// The version.
    pub version: String,
    /// Its resources.
    #[serde(default)]
    pub resources: Vec<AggregatedResource>,
    /// `Current` or `Stale`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub freshness: String,
}

/// One resource of an [`AggregatedVersion`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregatedResource {
    /// The plural name.
    pub resource: String,
    /// The kind of its objects.
    #[serde(default)]
    pub response_kind: Option<ResponseKind>,
    /// `Namespaced` or `Cluster`.
    #[serde(default)]
    pub scope: String,
    /// The singular name.
    #[serde(default)]
    pub singular_resource: String,
    /// Allowed verbs.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Short names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short_names: Vec<String>,
    /// Categories (`all`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Subresources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subresources: Vec<AggregatedSubresource>,
}

/// A subresource in aggregated discovery.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregatedSubresource {
    /// Its name (`status`).
    pub subresource: String,
    /// The kind it returns.
    #[serde(default)]
    pub response_kind: Option<ResponseKind>,
    /// Allowed verbs.
    #[serde(default)]
    pub verbs: Vec<String>,
}

/// A group/version/kind in aggregated discovery; empty group and version
/// mean the enclosing ones.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ResponseKind {
    /// Group.
    #[serde(default)]
    pub group: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

impl AggregatedResource {
    fn to_info(&self, group: &str, version: &str) -> ResourceInfo {
        ResourceInfo {
            group: group.to_string(),
            version: version.to_string(),
            resource: self.resource.clone(),
            kind: self
                .response_kind
                .as_ref()
                .map(|k| k.kind.clone())
                .unwrap_or_default(),
            singular: self.singular_resource.clone(),
            namespaced: self.scope == "Namespaced",
            verbs: self.verbs.clone(),
            short_names: self.short_names.clone(),
            subresources: self
                .subresources
                .iter()
                .map(|s| s.subresource.clone())
                .collect(),
        }
    }
}

/// The legacy `APIResourceList` of one group version.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceList {
    /// `group/version`.
    pub group_version: String,
    /// Resources and, as `parent/sub`, subresources.
    #[serde(default)]
    pub resources: Vec<LegacyResource>,
}

/// One entry of a [`ResourceList`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyResource {
    /// The plural name, or `parent/sub` for a subresource.
    pub name: String,
    /// The singular name.
    #[serde(default)]
    pub singular_name: String,
    /// Whether its objects live in namespaces.
    #[serde(default)]
    pub namespaced: bool,
    /// The kind.
    #[serde(default)]
    pub kind: String,
    /// Allowed verbs.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Short names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short_names: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(group: &str, version: &str, resource: &str, kind: &str) -> ResourceInfo {
        ResourceInfo {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            kind: kind.into(),
            singular: kind.to_ascii_lowercase(),
            namespaced: true,
            verbs: vec!["list".into()],
            short_names: vec![],
            subresources: vec![],
        }
    }

    #[test]
    fn preferred_resources_take_each_resource_at_its_first_version() {
        let d = Discovery {
            groups: vec![GroupVersions {
                name: "autoscaling".into(),
                versions: vec!["v2".into(), "v1".into()],
            }],
            resources: vec![
                res(
                    "autoscaling",
                    "v1",
                    "horizontalpodautoscalers",
                    "HorizontalPodAutoscaler",
                ),
                res("autoscaling", "v1", "onlyold", "OnlyOld"),
                res(
                    "autoscaling",
                    "v2",
                    "horizontalpodautoscalers",
                    "HorizontalPodAutoscaler",
                ),
            ],
        };
        let preferred: Vec<_> = d
            .preferred_resources()
            .iter()
            .map(|r| format!("{}/{}", r.version, r.resource))
            .collect();
        assert_eq!(preferred, ["v2/horizontalpodautoscalers", "v1/onlyold"]);
        let gr = GroupResource::new("autoscaling", "horizontalpodautoscalers");
        assert_eq!(d.versions_of(&gr), ["v2", "v1"]);
        assert_eq!(d.resolve("hpa.autoscaling"), None, "no short name declared");
        assert_eq!(d.resolve("HorizontalPodAutoscaler"), Some(gr.clone()));
        assert_eq!(d.resolve("horizontalpodautoscalers.autoscaling"), Some(gr));
    }
}
