//! The etcd key layout of Kubernetes: `/registry/<resource>/[<namespace>/]<name>`,
//! with the historic exceptions (`minions`, `services/specs`, `controllers`, …),
//! `/registry/<group>/<resource>/…` for custom resources and aggregated APIs,
//! and OpenShift's `/kubernetes.io/…` and `/openshift.io/…` prefixes.

use crate::Error;
use crate::resources::{self, BuiltinResource};

/// The key prefixes hokan recognises: kube-apiserver's default
/// `--etcd-prefix`, and OpenShift's for Kubernetes and OpenShift resources.
pub const KEY_PREFIXES: &[&str] = &["/registry", "/kubernetes.io", "/openshift.io"];

/// OpenShift's own resources under `/openshift.io/` (OpenShift 3 and the
/// openshift-apiserver of OpenShift 4): key path → (group, resource).
const OPENSHIFT: &[(&str, &str, &str)] = &[
    ("builds", "build.openshift.io", "builds"),
    ("buildconfigs", "build.openshift.io", "buildconfigs"),
    (
        "deploymentconfigs",
        "apps.openshift.io",
        "deploymentconfigs",
    ),
    ("images", "image.openshift.io", "images"),
    ("imagestreams", "image.openshift.io", "imagestreams"),
    ("routes", "route.openshift.io", "routes"),
    ("templates", "template.openshift.io", "templates"),
    (
        "templateinstances",
        "template.openshift.io",
        "templateinstances",
    ),
    (
        "brokertemplateinstances",
        "template.openshift.io",
        "brokertemplateinstances",
    ),
    ("users", "user.openshift.io", "users"),
    ("groups", "user.openshift.io", "groups"),
    ("useridentities", "user.openshift.io", "identities"),
    (
        "oauth/accesstokens",
        "oauth.openshift.io",
        "oauthaccesstokens",
    ),
    (
        "oauth/authorizetokens",
        "oauth.openshift.io",
        "oauthauthorizetokens",
    ),
    ("oauth/clients", "oauth.openshift.io", "oauthclients"),
    (
        "oauth/clientauthorizations",
        "oauth.openshift.io",
        "oauthclientauthorizations",
    ),
    (
        "securitycontextconstraints",
        "security.openshift.io",
        "securitycontextconstraints",
    ),
];

/// A parsed registry key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryKey {
    /// The prefix, e.g. `/registry`.
    pub prefix: String,
    /// API group (`""` for core); None when the key path is not one this
    /// crate knows (an unlisted resource of an older or newer release).
    pub group: Option<String>,
    /// The REST resource (`nodes` for `minions`, …).
    pub resource: String,
    pub namespace: Option<String>,
    /// Empty for the few unnamed objects (`/registry/ranges/serviceips` is
    /// named `serviceips`; nothing is stored at a bare resource path).
    pub name: String,
    /// The key path between prefix and namespace/name (`services/specs`).
    pub key_path: String,
}

fn invalid(key: &str, reason: &str) -> Error {
    Error::InvalidKey {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

impl RegistryKey {
    /// Parses a key such as `/registry/services/specs/default/kubernetes`.
    pub fn parse(key: &str) -> Result<RegistryKey, Error> {
        let (prefix, rest) = KEY_PREFIXES
            .iter()
            .find_map(|p| {
                key.strip_prefix(p)
                    .and_then(|r| r.strip_prefix('/'))
                    .map(|r| (*p, r))
            })
            .ok_or_else(|| {
                invalid(
                    key,
                    "it does not start with /registry/, /kubernetes.io/ or /openshift.io/",
                )
            })?;
        let segs: Vec<&str> = rest.split('/').collect();
        if segs.iter().any(|s| s.is_empty()) {
            return Err(invalid(key, "it has an empty path segment"));
        }
        let known = |path: &str| -> Option<(String, String)> {
            if let Some((_, g, r)) = OPENSHIFT
                .iter()
                .find(|(p, _, _)| prefix == "/openshift.io" && *p == path)
            {
                return Some((g.to_string(), r.to_string()));
            }
            resources::resource_for_key_path(path)
                .map(|r: &BuiltinResource| (r.group.to_string(), r.resource.to_string()))
        };
        // Two-segment key paths first (services/specs, apiregistration.k8s.io/apiservices, oauth/…).
        let (group, resource, used) = if segs.len() >= 2 && known(&segs[..2].join("/")).is_some() {
            let (g, r) = known(&segs[..2].join("/")).unwrap_or_default();
            (Some(g), r, 2)
        } else if let Some((g, r)) = known(segs[0]) {
            (Some(g), r, 1)
        } else if segs[0].contains('.') && segs.len() >= 2 {
            // Custom resources and aggregated APIs: /registry/<group>/<resource>/…
            (Some(segs[0].to_string()), segs[1].to_string(), 2)
        } else {
            (None, segs[0].to_string(), 1)
        };
        let key_path = segs[..used].join("/");
        let (namespace, name) = match &segs[used..] {
            [name] => (None, name.to_string()),
            [ns, name] => (Some(ns.to_string()), name.to_string()),
            [] => return Err(invalid(key, "it names a resource but no object")),
            _ => {
                return Err(invalid(
                    key,
                    "it has more path segments than namespace/name",
                ));
            }
        };
        Ok(RegistryKey {
            prefix: prefix.to_string(),
            group,
            resource,
            namespace,
            name,
            key_path,
        })
    }

    /// The key again: `parse(k).to_key() == k` for every key `parse` accepts.
    pub fn to_key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{}/{ns}/{}", self.prefix, self.key_path, self.name),
            None => format!("{}/{}/{}", self.prefix, self.key_path, self.name),
        }
    }
}

/// The key path of a resource: the built-in exceptions, or
/// `<group>/<resource>` for any other group, `<resource>` for core.
pub fn key_path(group: &str, resource: &str) -> String {
    match resources::BUILTIN_RESOURCES
        .iter()
        .find(|r| r.group == group && r.resource == resource)
    {
        Some(r) => r.key_path.to_string(),
        None if group.is_empty() => resource.to_string(),
        None => format!("{group}/{resource}"),
    }
}

/// The key the API server writes an object under, with the default prefix.
pub fn object_key(group: &str, resource: &str, namespace: Option<&str>, name: &str) -> String {
    let path = key_path(group, resource);
    match namespace {
        Some(ns) => format!("/registry/{path}/{ns}/{name}"),
        None => format!("/registry/{path}/{name}"),
    }
}

/// The key for a built-in object from its apiVersion and kind, or None if
/// that kind is not stored. The namespace is ignored for cluster-scoped kinds.
pub fn object_key_for_kind(
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Option<String> {
    let r = resources::resource_for_kind(api_version, kind)?;
    Some(object_key(
        r.group,
        r.resource,
        r.namespaced.then_some(namespace),
        name,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(key: &str) -> (Option<String>, String, Option<String>, String) {
        let k = RegistryKey::parse(key).unwrap();
        assert_eq!(k.to_key(), key);
        (k.group, k.resource, k.namespace, k.name)
    }

    fn t(
        g: &str,
        r: &str,
        ns: Option<&str>,
        n: &str,
    ) -> (Option<String>, String, Option<String>, String) {
        (Some(g.into()), r.into(), ns.map(Into::into), n.into())
    }

    /// Paths from kube-apiserver's test/integration/etcd/data.go.
    #[test]
    fn upstream_paths() {
        assert_eq!(
            parsed("/registry/services/specs/ns/service1"),
            t("", "services", Some("ns"), "service1")
        );
        assert_eq!(
            parsed("/registry/services/endpoints/ns/ep1name"),
            t("", "endpoints", Some("ns"), "ep1name")
        );
        assert_eq!(
            parsed("/registry/minions/node1"),
            t("", "nodes", None, "node1")
        );
        assert_eq!(
            parsed("/registry/controllers/ns/rc1"),
            t("", "replicationcontrollers", Some("ns"), "rc1")
        );
        assert_eq!(
            parsed("/registry/ingress/ns/ingress3"),
            t("networking.k8s.io", "ingresses", Some("ns"), "ingress3")
        );
        assert_eq!(
            parsed("/registry/pods/ns/pod1"),
            t("", "pods", Some("ns"), "pod1")
        );
        assert_eq!(
            parsed("/registry/deployments/ns/deployment4"),
            t("apps", "deployments", Some("ns"), "deployment4")
        );
        assert_eq!(
            parsed("/registry/apiregistration.k8s.io/apiservices/as2.foo.com"),
            t("apiregistration.k8s.io", "apiservices", None, "as2.foo.com")
        );
        assert_eq!(
            parsed(
                "/registry/apiextensions.k8s.io/customresourcedefinitions/pandas.awesome.bears.com"
            ),
            t(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                None,
                "pandas.awesome.bears.com"
            )
        );
        assert_eq!(
            parsed("/registry/cr.bar.com/foos/ns/cr1foo"),
            t("cr.bar.com", "foos", Some("ns"), "cr1foo")
        );
        assert_eq!(
            parsed("/registry/awesome.bears.com/pandas/cr3panda"),
            t("awesome.bears.com", "pandas", None, "cr3panda")
        );
        assert_eq!(
            parsed("/registry/clustertrustbundles/example.com:signer:abc"),
            t(
                "certificates.k8s.io",
                "clustertrustbundles",
                None,
                "example.com:signer:abc"
            )
        );
        assert_eq!(
            parsed("/registry/ipaddresses/192.168.2.3"),
            t("networking.k8s.io", "ipaddresses", None, "192.168.2.3")
        );
        assert_eq!(
            parsed("/registry/ranges/serviceips"),
            t("", "rangeallocations", None, "serviceips")
        );
        assert_eq!(
            parsed("/kubernetes.io/minions/node1"),
            t("", "nodes", None, "node1")
        );
        assert_eq!(
            parsed("/openshift.io/routes/ns/r1"),
            t("route.openshift.io", "routes", Some("ns"), "r1")
        );
        assert_eq!(
            parsed("/openshift.io/oauth/accesstokens/sha256~x"),
            t("oauth.openshift.io", "oauthaccesstokens", None, "sha256~x")
        );
        assert_eq!(
            parsed("/registry/somethingnew/ns/x"),
            (None, "somethingnew".into(), Some("ns".into()), "x".into())
        );
    }

    #[test]
    fn keys_round_trip_through_their_resource() {
        assert_eq!(
            object_key("", "services", Some("ns"), "s"),
            "/registry/services/specs/ns/s"
        );
        assert_eq!(object_key("", "nodes", None, "n"), "/registry/minions/n");
        assert_eq!(
            object_key("example.com", "widgets", Some("ns"), "w"),
            "/registry/example.com/widgets/ns/w"
        );
        assert_eq!(
            object_key_for_kind("extensions/v1beta1", "Ingress", "ns", "i").as_deref(),
            Some("/registry/ingress/ns/i")
        );
        assert_eq!(
            object_key_for_kind("events.k8s.io/v1", "Event", "ns", "e").as_deref(),
            Some("/registry/events/ns/e")
        );
        assert_eq!(
            object_key_for_kind("v1", "Namespace", "ignored", "n").as_deref(),
            Some("/registry/namespaces/n")
        );
        assert_eq!(
            object_key_for_kind("authentication.k8s.io/v1", "TokenReview", "ns", "t"),
            None
        );
        for r in crate::resources::BUILTIN_RESOURCES {
            let key = object_key(r.group, r.resource, r.namespaced.then_some("ns"), "obj");
            let k = RegistryKey::parse(&key).unwrap();
            assert_eq!(
                (k.group.as_deref(), k.resource.as_str()),
                (Some(r.group), r.resource),
                "{key}"
            );
        }
    }

    #[test]
    fn rejects_what_is_not_a_registry_key() {
        for bad in [
            "compact_rev_key",
            "/registry",
            "/registry/",
            "/registry/pods",
            "/registry/pods/a/b/c",
            "/registry//x",
            "/other/pods/x",
        ] {
            assert!(RegistryKey::parse(bad).is_err(), "{bad}");
        }
    }
}
