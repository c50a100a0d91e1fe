//! RBAC as the API server evaluates it, for checking that the rules in
//! `deploy/` allow every request the operator makes: requests are turned
//! into (verb, group, resource, namespace, name) the way the API server's
//! request-info resolver does, and matched against the rules bound to a
//! service account by ClusterRoleBindings (everywhere) and RoleBindings
//! (in their namespace).

use serde_json::Value;

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// Where it comes from: `ClusterRole/name` (or `Role/ns/name`).
    pub source: String,
    /// The namespace it applies in (RoleBindings), or None: everywhere.
    pub namespace: Option<String>,
    /// `apiGroups`.
    pub api_groups: Vec<String>,
    /// `resources` (`jobs`, `backups/status`).
    pub resources: Vec<String>,
    /// `resourceNames`; empty: any.
    pub resource_names: Vec<String>,
    /// `verbs`.
    pub verbs: Vec<String>,
    /// `nonResourceURLs`.
    pub non_resource_urls: Vec<String>,
}

/// A request as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`.
    pub verb: String,
    /// A resource request, or a non-resource URL.
    pub target: Target,
}

/// What a request touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An API resource.
    Resource {
        /// The API group (`""` for core).
        group: String,
        /// `resource` or `resource/subresource`.
        resource: String,
        /// The namespace, for namespaced requests.
        namespace: Option<String>,
        /// The object's name, when the request names one.
        name: Option<String>,
    },
    /// A path outside the resource tree (`/api`, `/version`).
    NonResource(String),
}

/// The RBAC view of `method path?query`.
pub fn access(method: &str, path: &str, query: &str) -> Access {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => {
            return Access {
                verb: method.to_lowercase(),
                target: Target::NonResource(path.to_string()),
            };
        }
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
        _ => (None, rest),
    };
    let (resource, name) = match rest {
        [r] => (r.to_string(), None),
        [r, n] => (r.to_string(), Some(n.to_string())),
        [r, n, sub, ..] => (format!("{r}/{sub}"), Some(n.to_string())),
        [] => (String::new(), None),
    };
    let watching = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, name.is_some()) {
        ("GET", _) if watching => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (other, _) => {
            return Access {
                verb: other.to_lowercase(),
                target: Target::NonResource(path.to_string()),
            };
        }
    };
    // A namespace named in its own path is the namespaces resource.
    Access {
        verb: verb.into(),
        target: Target::Resource {
            group: group.into(),
            resource,
            namespace,
            name,
        },
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn any(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

impl Rule {
    /// Whether this rule allows `a`.
    pub fn allows(&self, a: &Access) -> bool {
        if !any(&self.verbs, &a.verb) {
            return false;
        }
        match &a.target {
            Target::NonResource(url) => self.non_resource_urls.iter().any(|p| {
                p == "*" || p == url || p.strip_suffix('*').is_some_and(|pre| url.starts_with(pre))
            }),
            Target::Resource {
                group,
                resource,
                namespace,
                name,
            } => {
                if let Some(ns) = &self.namespace
                    && namespace.as_ref() != Some(ns)
                {
                    return false;
                }
                let names_ok = self.resource_names.is_empty()
                    || name
                        .as_ref()
                        .is_some_and(|n| self.resource_names.contains(n));
                any(&self.api_groups, group) && any(&self.resources, resource) && names_ok
            }
        }
    }
}

/// What every authenticated user may read in a real cluster (the
/// `system:discovery` and `system:public-info-viewer` ClusterRoles).
pub fn discovery_rule() -> Rule {
    Rule {
        source: "ClusterRole/system:discovery (every authenticated user)".into(),
        verbs: vec!["get".into()],
        non_resource_urls: [
            "/api",
            "/api/*",
            "/apis",
            "/apis/*",
            "/version",
            "/version/",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    }
}

/// `kubectl kustomize DIR`'s documents; `None` when kubectl is not
/// installed, an error with kubectl's message when it fails.
pub fn kustomize(dir: &std::path::Path) -> Option<Result<Vec<Value>, String>> {
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return Some(Err(format!(
            "kubectl kustomize {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(serde_saphyr::from_multiple(&text).map_err(|e| format!("kustomize output: {e}")))
}

/// The rules `kubectl kustomize deploy/`'s documents bind to the service
/// account `namespace/name`.
pub fn rules_for(docs: &[Value], namespace: &str, name: &str) -> Vec<Rule> {
    let find = |kind: &str, role: &str, ns: Option<&str>| {
        docs.iter().find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"] == role
                && (ns.is_none() || d["metadata"]["namespace"].as_str() == ns)
        })
    };
    let mut out = Vec::new();
    for b in docs {
        let kind = b["kind"].as_str().unwrap_or_default();
        if kind != "ClusterRoleBinding" && kind != "RoleBinding" {
            continue;
        }
        let binding_ns = b["metadata"]["namespace"].as_str();
        let bound = b["subjects"].as_array().into_iter().flatten().any(|s| {
            s["kind"] == "ServiceAccount"
                && s["name"] == name
                && s["namespace"].as_str().or(binding_ns) == Some(namespace)
        });
        if !bound {
            continue;
        }
        let role_kind = b["roleRef"]["kind"].as_str().unwrap_or_default();
        let role_name = b["roleRef"]["name"].as_str().unwrap_or_default();
        let role = match role_kind {
            "ClusterRole" => find("ClusterRole", role_name, None),
            _ => find("Role", role_name, binding_ns),
        };
        let Some(role) = role else { continue };
        let scope = (kind == "RoleBinding").then(|| binding_ns.unwrap_or_default().to_string());
        for r in role["rules"].as_array().into_iter().flatten() {
            out.push(Rule {
                source: format!(
                    "{role_kind}/{role_name} via {kind}/{}",
                    b["metadata"]["name"].as_str().unwrap_or_default()
                ),
                namespace: scope.clone(),
                api_groups: strings(&r["apiGroups"]),
                resources: strings(&r["resources"]),
                resource_names: strings(&r["resourceNames"]),
                verbs: strings(&r["verbs"]),
                non_resource_urls: strings(&r["nonResourceURLs"]),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_the_api_server_reads_them() {
        let a = access(
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/hokan-system/leases/op",
            "",
        );
        assert_eq!(a.verb, "get");
        assert_eq!(
            a.target,
            Target::Resource {
                group: "coordination.k8s.io".into(),
                resource: "leases".into(),
                namespace: Some("hokan-system".into()),
                name: Some("op".into()),
            }
        );
        let a = access(
            "PATCH",
            "/apis/hokan.dev/v1alpha1/namespaces/n/backups/b/status",
            "",
        );
        assert_eq!(a.verb, "patch");
        assert!(
            matches!(a.target, Target::Resource { ref resource, .. } if resource == "backups/status")
        );
        assert_eq!(
            access("GET", "/apis/batch/v1/jobs", "watch=true&labelSelector=x").verb,
            "watch"
        );
        assert_eq!(access("GET", "/api/v1/pods", "").verb, "list");
        assert_eq!(
            access("GET", "/apis", "").target,
            Target::NonResource("/apis".into())
        );
    }

    #[test]
    fn rules_scope_by_binding_and_names() {
        let rule = Rule {
            namespace: Some("hokan-system".into()),
            api_groups: vec!["".into()],
            resources: vec!["secrets".into()],
            verbs: vec!["get".into()],
            ..Default::default()
        };
        assert!(rule.allows(&access(
            "GET",
            "/api/v1/namespaces/hokan-system/secrets/s",
            ""
        )));
        assert!(!rule.allows(&access("GET", "/api/v1/namespaces/other/secrets/s", "")));
        assert!(!rule.allows(&access(
            "GET",
            "/api/v1/namespaces/hokan-system/secrets",
            ""
        )));
        let nonres = Rule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/apis/*".into()],
            ..Default::default()
        };
        assert!(nonres.allows(&access("GET", "/apis/apps/v1", "")));
    }
}
