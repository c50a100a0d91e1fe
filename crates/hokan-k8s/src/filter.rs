//! Which namespaces and resources a backup or restore takes, with Velero's
//! semantics: include lists (empty or `*` = everything) minus exclude lists,
//! glob patterns, `resource.group` names resolved against discovery.

use globset::{Glob, GlobMatcher};

use crate::discovery::Discovery;
use crate::object::GroupResource;
use crate::{Error, Result};

/// An include list and an exclude list of glob patterns. Everything included
/// and not excluded passes; an empty include list (or `*`) includes
/// everything. `*` in an exclude list is ignored, as Velero ignores it.
#[derive(Clone, Debug, Default)]
pub struct IncludesExcludes {
    includes: Vec<(String, GlobMatcher)>,
    excludes: Vec<(String, GlobMatcher)>,
}

impl IncludesExcludes {
    /// Compiles the two lists; `option` names the flag in errors.
    pub fn new(option: &'static str, includes: &[String], excludes: &[String]) -> Result<Self> {
        let compile = |list: &[String], skip_star: bool| -> Result<Vec<(String, GlobMatcher)>> {
            list.iter()
                .map(|s| s.trim())
                .filter(|s| !(s.is_empty() || (skip_star && *s == "*")))
                .map(|s| {
                    let glob = Glob::new(s).map_err(|e| Error::InvalidOption {
                        option,
                        value: s.to_string(),
                        reason: format!("not a glob pattern: {e}"),
                    })?;
                    Ok((s.to_string(), glob.compile_matcher()))
                })
                .collect()
        };
        Ok(IncludesExcludes {
            includes: compile(includes, false)?,
            excludes: compile(excludes, true)?,
        })
    }

    /// Whether `name` passes.
    pub fn includes(&self, name: &str) -> bool {
        if self.is_excluded(name) {
            return false;
        }
        self.includes.is_empty()
            || self
                .includes
                .iter()
                .any(|(p, m)| p == "*" || m.is_match(name))
    }

    /// Whether `name` is named by the exclude list.
    pub fn is_excluded(&self, name: &str) -> bool {
        self.excludes.iter().any(|(_, m)| m.is_match(name))
    }

    /// Whether `name` is named explicitly (not through `*` or an empty list)
    /// by the include list.
    pub fn names(&self, name: &str) -> bool {
        self.includes
            .iter()
            .any(|(p, m)| p != "*" && m.is_match(name))
    }

    /// Whether everything passes: no excludes and no includes but `*`.
    pub fn everything(&self) -> bool {
        self.excludes.is_empty() && self.includes.iter().all(|(p, _)| p == "*")
    }
}

/// Resource includes and excludes, each item resolved against discovery
/// (`deploy` → `deployments.apps`) before matching, as Velero's
/// `GetResourceIncludesExcludes` does. Items that do not resolve are kept as
/// written, so `*.operators.coreos.com` stays a glob.
pub fn resource_filter(
    discovery: &Discovery,
    includes: &[String],
    excludes: &[String],
) -> Result<IncludesExcludes> {
    let resolve = |list: &[String]| -> Vec<String> {
        list.iter()
            .map(|item| item.trim())
            .filter(|item| !item.is_empty())
            .map(|item| {
                if item == "*" || item.contains(['*', '?', '[', '{']) {
                    return item.to_string();
                }
                discovery
                    .resolve(item)
                    .map(|gr| gr.to_string())
                    .unwrap_or_else(|| item.to_string())
            })
            .collect()
    };
    IncludesExcludes::new("resource filter", &resolve(includes), &resolve(excludes))
}

/// Velero's `--include-cluster-resources`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClusterResources {
    /// Every cluster-scoped resource the resource filter passes.
    Include,
    /// None (namespaces of included objects are still taken).
    Exclude,
    /// All of them when the backup takes every namespace and every resource;
    /// otherwise only those the namespaced objects pull in (CRDs of custom
    /// resources, PVs of claims) and the namespaces themselves.
    #[default]
    Auto,
}

impl std::str::FromStr for ClusterResources {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "true" => Ok(ClusterResources::Include),
            "false" => Ok(ClusterResources::Exclude),
            "auto" | "" => Ok(ClusterResources::Auto),
            _ => Err(Error::InvalidOption {
                option: "cluster-resources choice",
                value: s.to_string(),
                reason: "expected true, false or auto".into(),
            }),
        }
    }
}

/// The complete filter of a backup, Velero's `GlobalIncludesExcludes`.
#[derive(Clone, Debug)]
pub struct ScopeFilter {
    /// Namespaces by name.
    pub namespaces: IncludesExcludes,
    /// Resources by `resource.group`.
    pub resources: IncludesExcludes,
    /// The cluster-scope rule.
    pub cluster: ClusterResources,
}

impl ScopeFilter {
    /// Whether objects of `gr` (cluster-scoped when `!namespaced`) are listed
    /// directly. Namespaces themselves are decided per object, elsewhere.
    pub fn lists(&self, gr: &GroupResource, namespaced: bool) -> bool {
        let name = gr.to_string();
        if !namespaced {
            match self.cluster {
                ClusterResources::Exclude => return false,
                ClusterResources::Auto
                    if !(self.namespaces.everything() && self.resources.everything()) =>
                {
                    return false;
                }
                _ => {}
            }
        }
        self.resources.includes(&name)
    }

    /// Whether a cluster-scoped object pulled in by a namespaced one (a CRD,
    /// a PV) may be taken: Velero's `ShouldExclude`.
    pub fn allows_pulled_in(&self, gr: &GroupResource) -> bool {
        let name = gr.to_string();
        if self.resources.is_excluded(&name) {
            return false;
        }
        match self.cluster {
            ClusterResources::Exclude => false,
            ClusterResources::Include => true,
            // Velero's auto rule excludes a pulled-in type only when an
            // include list exists that does not name it.
            ClusterResources::Auto => self.resources.includes(&name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn includes_minus_excludes_with_globs() {
        let f = IncludesExcludes::new("ns", &list(&["app-*", "db"]), &list(&["app-old*", "*"]))
            .unwrap();
        assert!(f.includes("app-web"));
        assert!(f.includes("db"));
        assert!(!f.includes("app-old1"));
        assert!(!f.includes("kube-system"));
        assert!(!f.everything());
        let all = IncludesExcludes::new("ns", &list(&["*"]), &[]).unwrap();
        assert!(all.everything() && all.includes("anything"));
        assert!(IncludesExcludes::new("ns", &list(&["[bad"]), &[]).is_err());
    }

    #[test]
    fn cluster_scope_rule_follows_velero() {
        let gr = GroupResource::new("storage.k8s.io", "storageclasses");
        let everything = ScopeFilter {
            namespaces: IncludesExcludes::default(),
            resources: IncludesExcludes::default(),
            cluster: ClusterResources::Auto,
        };
        assert!(
            everything.lists(&gr, false),
            "auto + full backup takes cluster resources"
        );
        let some_ns = ScopeFilter {
            namespaces: IncludesExcludes::new("ns", &list(&["shop"]), &[]).unwrap(),
            ..everything.clone()
        };
        assert!(
            !some_ns.lists(&gr, false),
            "auto + some namespaces does not"
        );
        assert!(some_ns.lists(&GroupResource::new("", "configmaps"), true));
        assert!(some_ns.allows_pulled_in(&GroupResource::new("", "persistentvolumes")));
        let excluded = ScopeFilter {
            cluster: ClusterResources::Exclude,
            ..some_ns.clone()
        };
        assert!(!excluded.allows_pulled_in(&GroupResource::new("", "persistentvolumes")));
        let included = ScopeFilter {
            cluster: ClusterResources::Include,
            ..some_ns
        };
        assert!(included.lists(&gr, false));
        assert_eq!(
            "auto".parse::<ClusterResources>().unwrap(),
            ClusterResources::Auto
        );
        assert!("maybe".parse::<ClusterResources>().is_err());
    }
}
