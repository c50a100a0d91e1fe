//! The discovery documents the test server serves: the real aggregated
//! document for `/apis`, the real `APIResourceList` of `/api/v1` turned into
//! its aggregated form, and every legacy document derived from those two, as
//! `shared/k8s/README.md` asks (the legacy files disagree with each other in
//! small ways; one source of truth keeps the server consistent).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::discovery::{
    AggregatedGroup, AggregatedList, AggregatedResource, AggregatedSubresource, AggregatedVersion,
    CrdNames, NameOnly, ResourceList, ResponseKind,
};
use crate::{Error, Result};

/// Where the real Kubernetes data lives: `$HOKAN_K8S_DATA`, else
/// `shared/k8s` beside the repository checkout.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HOKAN_K8S_DATA") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/k8s")
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::bad_object(path.display().to_string(), e))
}

/// The two aggregated documents: `/api` (core) and `/apis`.
#[derive(Clone, Debug)]
pub struct Docs {
    pub core: AggregatedList,
    pub apis: AggregatedList,
}

impl Docs {
    /// Reads `discovery/aggregated_v2.json` and `discovery/api__v1.json`.
    pub fn load(data: &Path) -> Result<Self> {
        let apis: AggregatedList = read_json(&data.join("discovery/aggregated_v2.json"))?;
        let legacy: ResourceList = read_json(&data.join("discovery/api__v1.json"))?;
        Ok(Docs {
            core: aggregate_core(&legacy),
            apis,
        })
    }

    /// Registers a CRD's group, versions and resource, as the API server
    /// does once the CRD is Established.
    pub fn add_crd(&mut self, crd: &Value) {
        let Some(names) = CrdNames::parse(crd) else {
            return;
        };
        self.remove_crd(&names.group, &names.plural);
        let resource = AggregatedResource {
            resource: names.plural.clone(),
            response_kind: Some(ResponseKind {
                kind: names.kind.clone(),
                ..Default::default()
            }),
            scope: if names.namespaced {
                "Namespaced"
            } else {
                "Cluster"
            }
            .into(),
            singular_resource: names.singular.clone(),
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
            short_names: names.short_names.clone(),
            categories: Vec::new(),
            subresources: names
                .subresources
                .iter()
                .map(|s| AggregatedSubresource {
                    subresource: s.clone(),
                    response_kind: None,
                    verbs: ["get", "patch", "update"].map(String::from).to_vec(),
                })
                .collect(),
        };
        let idx = match self
            .apis
            .items
            .iter()
            .position(|g| g.metadata.name == names.group)
        {
            Some(i) => i,
            None => {
                self.apis.items.push(AggregatedGroup {
                    metadata: NameOnly {
                        name: names.group.clone(),
                    },
                    versions: Vec::new(),
                });
                self.apis.items.len() - 1
            }
        };
        let group = &mut self.apis.items[idx];
        for v in &names.served {
            match group.versions.iter_mut().find(|gv| &gv.version == v) {
                Some(gv) => gv.resources.push(resource.clone()),
                None => group.versions.push(AggregatedVersion {
                    version: v.clone(),
                    resources: vec![resource.clone()],
                    freshness: "Current".into(),
                }),
            }
        }
        group
            .versions
            .sort_by(|a, b| crate::version::compare_priority(&a.version, &b.version));
    }

    /// Forgets a deleted CRD's resource (and its group once empty).
    pub fn remove_crd(&mut self, group: &str, plural: &str) {
        for g in self
            .apis
            .items
            .iter_mut()
            .filter(|g| g.metadata.name == group)
        {
            for v in &mut g.versions {
                v.resources.retain(|r| r.resource != plural);
            }
            g.versions.retain(|v| !v.resources.is_empty());
        }
        self.apis.items.retain(|g| !g.versions.is_empty());
    }

    /// The group's aggregated entry (`""` for core).
    pub fn group(&self, name: &str) -> Option<&AggregatedGroup> {
        if name.is_empty() {
            self.core.items.first()
        } else {
            self.apis.items.iter().find(|g| g.metadata.name == name)
        }
    }

    /// Legacy `/api`: `APIVersions`.
    pub fn api_versions(&self) -> Value {
        let versions: Vec<&str> = self
            .core
            .items
            .iter()
            .flat_map(|g| &g.versions)
            .map(|v| v.version.as_str())
            .collect();
        json!({
            "kind": "APIVersions",
            "versions": versions,
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
        })
    }

    /// Legacy `/apis`: `APIGroupList`.
    pub fn group_list(&self) -> Value {
        let groups: Vec<Value> = self.apis.items.iter().map(api_group).collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// Legacy `/apis/<group>`: `APIGroup`.
    pub fn api_group(&self, name: &str) -> Option<Value> {
        self.apis
            .items
            .iter()
            .find(|g| g.metadata.name == name)
            .map(|g| {
                let mut v = api_group(g);
                v["kind"] = json!("APIGroup");
                v["apiVersion"] = json!("v1");
                v
            })
    }

    /// Legacy `/api/<v>` or `/apis/<group>/<v>`: `APIResourceList`, with
    /// subresources as `parent/sub` entries.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let gv = self
            .group(group)?
            .versions
            .iter()
            .find(|v| v.version == version)?;
        let mut resources = Vec::new();
        for r in &gv.resources {
            let kind = r
                .response_kind
                .as_ref()
                .map(|k| k.kind.clone())
                .unwrap_or_default();
            let namespaced = r.scope == "Namespaced";
            let mut entry = json!({
                "name": r.resource, "singularName": r.singular_resource, "namespaced": namespaced,
                "kind": kind, "verbs": r.verbs,
            });
            if !r.short_names.is_empty() {
                entry["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                entry["categories"] = json!(r.categories);
            }
            resources.push(entry);
            for s in &r.subresources {
                let sub_kind = s
                    .response_kind
                    .as_ref()
                    .map(|k| k.kind.clone())
                    .filter(|k| !k.is_empty());
                resources.push(json!({
                    "name": format!("{}/{}", r.resource, s.subresource), "singularName": "",
                    "namespaced": namespaced, "kind": sub_kind.unwrap_or_else(|| kind.clone()), "verbs": s.verbs,
                }));
            }
        }
        Some(json!({
            "kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": crate::object::api_version(group, version), "resources": resources,
        }))
    }
}

fn api_group(g: &AggregatedGroup) -> Value {
    let name = &g.metadata.name;
    let versions: Vec<Value> = g
        .versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{}", v.version), "version": v.version}))
        .collect();
    json!({"name": name, "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or(Value::Null)})
}

/// The core group's legacy list in aggregated form, as a real server answers
/// `/api` when asked for aggregated discovery.
fn aggregate_core(list: &ResourceList) -> AggregatedList {
    let version = list.group_version.clone();
    let mut resources: Vec<AggregatedResource> = Vec::new();
    for r in list.resources.iter().filter(|r| !r.name.contains('/')) {
        resources.push(AggregatedResource {
            resource: r.name.clone(),
            response_kind: Some(ResponseKind {
                kind: r.kind.clone(),
                ..Default::default()
            }),
            scope: if r.namespaced {
                "Namespaced"
            } else {
                "Cluster"
            }
            .into(),
            singular_resource: r.singular_name.clone(),
            verbs: r.verbs.clone(),
            short_names: r.short_names.clone(),
            categories: Vec::new(),
            subresources: Vec::new(),
        });
    }
    for r in list.resources.iter() {
        if let Some((parent, sub)) = r.name.split_once('/')
            && let Some(p) = resources.iter_mut().find(|p| p.resource == parent)
        {
            p.subresources.push(AggregatedSubresource {
                subresource: sub.to_string(),
                response_kind: Some(ResponseKind {
                    kind: r.kind.clone(),
                    ..Default::default()
                }),
                verbs: r.verbs.clone(),
            });
        }
    }
    AggregatedList {
        api_version: "apidiscovery.k8s.io/v2".into(),
        kind: "APIGroupDiscoveryList".into(),
        items: vec![AggregatedGroup {
            metadata: NameOnly {
                name: String::new(),
            },
            versions: vec![AggregatedVersion {
                version,
                resources,
                freshness: "Current".into(),
            }],
        }],
    }
}
