//! Object names and object shapes as the API server accepts them, checked
//! where objects come from outside a cluster (a Velero tarball), so that
//! what is stored can be restored.
//!
//! The API server checks each kind's name with its own rule
//! (`pkg/apis/*/validation`): most kinds take an RFC 1123 subdomain,
//! namespaces an RFC 1123 label, services an RFC 1035 label; a few kinds
//! (RBAC roles and bindings, certificate signing requests, core events)
//! take any name that is one URL path segment. Kinds this build does not
//! know (custom resources, OpenShift's aggregated APIs whose names hold `:`
//! and `~`) get that last, widest rule: refusing a name the cluster
//! accepted would lose a real object. Control characters are refused in
//! every name: no kubectl user can type them, and they would split the
//! lines of `restore-order.txt` and act on the terminal that prints them.

use crate::object::{GroupResource, ObjectKey};

/// Deepest JSON nesting an imported object may have. A restore parses each
/// object with serde_json, which stops at 128 levels; real objects (CRDs
/// with deep schemas included) stay far below 100.
pub const MAX_JSON_DEPTH: usize = 100;

/// The rule the API server applies to an object's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 label: at most 63 of `a-z`, `0-9` and `-`, starting and
    /// ending with a letter or digit (namespaces).
    Label,
    /// RFC 1035 label: an RFC 1123 label that starts with a letter (services).
    Dns1035Label,
    /// RFC 1123 subdomain: labels joined by `.`, at most 253 in all.
    Subdomain,
    /// One URL path segment: not `.` or `..`, no `/` or `%`.
    PathSegment,
}

/// Kinds whose names the API server checks as RFC 1123 subdomains, by
/// group (core is ""). Only kinds whose rule is certain are listed: every
/// other kind gets [`NameRule::PathSegment`].
const SUBDOMAIN: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "configmaps",
            "endpoints",
            "limitranges",
            "nodes",
            "persistentvolumeclaims",
            "persistentvolumes",
            "pods",
            "podtemplates",
            "replicationcontrollers",
            "resourcequotas",
            "secrets",
            "serviceaccounts",
        ],
    ),
    (
        "apps",
        &[
            "controllerrevisions",
            "daemonsets",
            "deployments",
            "replicasets",
            "statefulsets",
        ],
    ),
    ("batch", &["cronjobs", "jobs"]),
    ("autoscaling", &["horizontalpodautoscalers"]),
    ("policy", &["poddisruptionbudgets"]),
    (
        "networking.k8s.io",
        &["ingressclasses", "ingresses", "networkpolicies"],
    ),
    ("storage.k8s.io", &["storageclasses"]),
    ("scheduling.k8s.io", &["priorityclasses"]),
    ("coordination.k8s.io", &["leases"]),
    ("node.k8s.io", &["runtimeclasses"]),
    ("discovery.k8s.io", &["endpointslices"]),
    ("apiextensions.k8s.io", &["customresourcedefinitions"]),
    (
        "admissionregistration.k8s.io",
        &[
            "mutatingwebhookconfigurations",
            "validatingwebhookconfigurations",
        ],
    ),
];

/// The rule the API server applies to names of `resource`.
pub fn rule_for(resource: &GroupResource) -> NameRule {
    let (group, name) = (resource.group.as_str(), resource.resource.as_str());
    match (group, name) {
        ("", "namespaces") => NameRule::Label,
        ("", "services") => NameRule::Dns1035Label,
        _ if SUBDOMAIN
            .iter()
            .any(|(g, rs)| *g == group && rs.contains(&name)) =>
        {
            NameRule::Subdomain
        }
        _ => NameRule::PathSegment,
    }
}

/// Checks `name` against `rule`; the error says what is wrong, with the
/// name escaped.
pub fn check_name(name: &str, rule: NameRule) -> Result<(), String> {
    let shown = || format!("{:?}", name);
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the name {} contains the control character {c:?}",
            shown()
        ));
    }
    crate::layout::check_name(name)?;
    // Kubernetes' subdomain check bounds the whole name, not each label.
    let label = |l: &str, first_letter: bool, max: usize| {
        !l.is_empty()
            && l.len() <= max
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && l.bytes().last().is_some_and(|b| b != b'-')
            && l.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || (!first_letter && b.is_ascii_digit()))
    };
    let (ok, what) = match rule {
        NameRule::PathSegment => return Ok(()),
        NameRule::Label => (
            label(name, false, 63),
            "an RFC 1123 label (at most 63 of a-z, 0-9 and '-', starting and ending with a \
             letter or digit)",
        ),
        NameRule::Dns1035Label => (
            label(name, true, 63),
            "an RFC 1035 label (at most 63 of a-z, 0-9 and '-', starting with a letter and \
             ending with a letter or digit)",
        ),
        NameRule::Subdomain => (
            name.len() <= 253 && name.split('.').all(|l| label(l, false, 253)),
            "an RFC 1123 subdomain (at most 253 characters: labels of a-z, 0-9 and '-' joined \
             by '.')",
        ),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("the name {} is not {what}", shown()))
    }
}

/// Checks an object's namespace and name as the API server would accept
/// them for its kind.
pub fn check_key(key: &ObjectKey) -> Result<(), String> {
    if let Some(ns) = &key.namespace {
        check_name(ns, NameRule::Label).map_err(|e| format!("namespace: {e}"))?;
    }
    check_name(&key.name, rule_for(&key.resource))
}

/// How deep `json` nests arrays and objects, counted without parsing it
/// (strings skipped), stopping as soon as `limit` is passed: a hostile
/// object 100,000 levels deep costs one pass and no stack.
pub fn json_depth_exceeds(json: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, resource: &str, ns: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            resource: GroupResource::new(group, resource),
            namespace: ns.map(str::to_string),
            name: name.to_string(),
        }
    }

    #[test]
    fn names_follow_each_kinds_rule() {
        let ok = [
            key("", "configmaps", Some("shop"), "web-1.v2"),
            key("", "configmaps", Some("shop"), &"a".repeat(253)),
            key("", "namespaces", None, "kube-system"),
            key("", "services", Some("a"), "web"),
            key(
                "rbac.authorization.k8s.io",
                "clusterroles",
                None,
                "system:controller:x",
            ),
            key("user.openshift.io", "identities", None, "htpasswd:Alice"),
            key(
                "oauth.openshift.io",
                "oauthaccesstokens",
                None,
                "sha256~abc",
            ),
            key("", "events", Some("a"), "Web.17a8"),
        ];
        for k in ok {
            assert_eq!(check_key(&k), Ok(()), "{k:?}");
        }
        let bad = [
            key("", "configmaps", Some("shop"), &"a".repeat(254)),
            key("", "configmaps", Some("shop"), "Web"),
            key("", "configmaps", Some("shop"), "web\nevil"),
            key("", "configmaps", Some("shop"), "-web"),
            key("", "configmaps", Some("shop"), "web..x"),
            key("", "configmaps", Some("Shop"), "web"),
            key("", "configmaps", Some(&"s".repeat(64)), "web"),
            key("", "namespaces", None, "a.b"),
            key("", "services", Some("a"), "1web"),
            key("apps", "deployments", Some("a"), "web_1"),
            key("example.com", "widgets", Some("a"), "x\u{1b}[2J"),
            key("example.com", "widgets", Some("a"), "a/b"),
        ];
        for k in bad {
            assert!(check_key(&k).is_err(), "{k:?} accepted");
        }
        let e = check_key(&key("", "configmaps", Some("a"), "x\ny")).unwrap_err();
        assert!(e.contains(r#""x\ny""#) && !e.contains('\n'), "{e}");
    }

    #[test]
    fn depth_is_counted_outside_strings() {
        assert!(!json_depth_exceeds(br#"{"a":[{"b":1}]}"#, 3));
        assert!(json_depth_exceeds(br#"{"a":[{"b":[1]}]}"#, 3));
        assert!(!json_depth_exceeds(br#"{"a":"[[[[{{{{\"[[[["}"#, 1));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(json_depth_exceeds(deep.as_bytes(), MAX_JSON_DEPTH));
        let fine = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(!json_depth_exceeds(fine.as_bytes(), MAX_JSON_DEPTH));
        let v: serde_json::Value = serde_json::from_str(&fine).unwrap();
        assert!(v.is_array(), "what is imported, a restore can parse");
    }
}
