//! The stored tree's layout: where each object lives.
//!
//! ```text
//! <group>/<resource>/<namespace>/<name>.json                       the source's preferred version
//! <group>/<resource>/_cluster/<name>.json                          a cluster-scoped object
//! <group>/<resource>/_versions/<version>/<namespace>/<name>.json   other versions (--all-api-versions)
//! <group>/<resource>/_versions/<version>/_cluster/<name>.json
//! ```
//!
//! `<group>` is `core` for the core (legacy, empty-named) group: `core` is the
//! name Kubernetes itself reserves for it, and no real group can take it.
//! `_cluster` and `_versions` cannot collide with namespaces, whose names are
//! DNS labels (no underscore). Grouping by resource first, then namespace,
//! keeps every directory small and stable: an unchanged namespace's
//! directory of an unchanged resource encodes to the same tree, so a second
//! backup of an unchanged cluster stores only the few trees above what
//! changed. Versions other than the preferred one live in their own subtree,
//! so switching `--all-api-versions` on or off leaves the main trees as they
//! were.

use crate::object::{GroupResource, ObjectKey};
use crate::{Error, Result};

/// The directory name of the core group.
pub const CORE_GROUP: &str = "core";
/// The directory holding cluster-scoped objects in place of a namespace.
pub const CLUSTER_DIR: &str = "_cluster";
/// The directory holding versions other than the preferred one.
pub const VERSIONS_DIR: &str = "_versions";

/// The path of one object in one version.
pub fn object_path(key: &ObjectKey, version: &str, preferred: bool) -> String {
    let group = if key.resource.group.is_empty() {
        CORE_GROUP
    } else {
        &key.resource.group
    };
    let scope = key.namespace.as_deref().unwrap_or(CLUSTER_DIR);
    if preferred {
        format!(
            "{group}/{}/{scope}/{}.json",
            key.resource.resource, key.name
        )
    } else {
        format!(
            "{group}/{}/{VERSIONS_DIR}/{version}/{scope}/{}.json",
            key.resource.resource, key.name
        )
    }
}

/// Longest file name most file systems take (ext4, XFS, btrfs: 255 bytes).
const MAX_FILE_NAME: usize = 255;

/// The path of one object in a manifest directory: [`object_path`], with a
/// name too long for one file name (Kubernetes allows 253 characters, and
/// more for some kinds; `.json` makes 258) cut to fit and marked with a
/// hash of the whole name (`<first 233 bytes>~<16 hex digits>.json`). The
/// same name always gives the same file; the full name stays in the
/// manifest's `metadata.name`.
pub fn file_path(key: &ObjectKey, version: &str, preferred: bool) -> String {
    const SUFFIX: &str = ".json";
    const MARK: usize = 1 + 16;
    if key.name.len() + SUFFIX.len() <= MAX_FILE_NAME {
        return object_path(key, version, preferred);
    }
    let mut cut = MAX_FILE_NAME - SUFFIX.len() - MARK;
    while !key.name.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = blake3::hash(key.name.as_bytes()).to_hex();
    let short = ObjectKey {
        name: format!("{}~{}", &key.name[..cut], &hash[..16]),
        ..key.clone()
    };
    object_path(&short, version, preferred)
}

/// A path split back into its parts. `version` is `None` for the preferred
/// entry (its version is in the object's `apiVersion`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPath {
    /// Which object.
    pub key: ObjectKey,
    /// The version directory, for non-preferred entries.
    pub version: Option<String>,
}

/// Parses a path made by [`object_path`]; refuses anything else, including
/// names that would escape a directory (`..`).
pub fn parse_path(path: &str) -> Result<ParsedPath> {
    let bad = |reason: &str| Error::bad_object(path, format!("not a stored object path: {reason}"));
    let parts: Vec<&str> = path.split('/').collect();
    let (group, resource, version, scope, file) = match parts.as_slice() {
        [g, r, s, f] => (*g, *r, None, *s, *f),
        [g, r, v_dir, v, s, f] if *v_dir == VERSIONS_DIR => (*g, *r, Some(v.to_string()), *s, *f),
        _ => return Err(bad("expected group/resource/namespace/name.json")),
    };
    let name = file
        .strip_suffix(".json")
        .ok_or_else(|| bad("the file name does not end in .json"))?;
    check_name(name).map_err(|reason| bad(&reason))?;
    for segment in [group, resource, scope] {
        check_name(segment).map_err(|reason| bad(&reason))?;
    }
    let group = if group == CORE_GROUP { "" } else { group };
    let namespace = if scope == CLUSTER_DIR {
        None
    } else {
        Some(scope.to_string())
    };
    Ok(ParsedPath {
        key: ObjectKey {
            resource: GroupResource::new(group, resource),
            namespace,
            name: name.to_string(),
        },
        version,
    })
}

/// Whether `name` can be one path segment: Kubernetes' own rule for names of
/// objects addressed in URL paths (no `/`, no `%`, not `.` or `..`), plus no
/// NUL, so a hostile name cannot escape the directory it is written to.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("the name may not be {name:?}"));
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '/' | '%' | '\0' | '\\')) {
        return Err(format!("the name {name:?} contains {c:?}"));
    }
    Ok(())
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
    fn paths_round_trip() {
        let cases = [
            (
                key("apps", "deployments", Some("ns1"), "web"),
                "v1",
                true,
                "apps/deployments/ns1/web.json",
            ),
            (
                key("", "configmaps", Some("ns1"), "cfg"),
                "v1",
                true,
                "core/configmaps/ns1/cfg.json",
            ),
            (
                key("", "namespaces", None, "ns1"),
                "v1",
                true,
                "core/namespaces/_cluster/ns1.json",
            ),
            (
                key("autoscaling", "horizontalpodautoscalers", Some("a"), "h"),
                "v1",
                false,
                "autoscaling/horizontalpodautoscalers/_versions/v1/a/h.json",
            ),
            (
                key(
                    "rbac.authorization.k8s.io",
                    "clusterroles",
                    None,
                    "system:controller:x",
                ),
                "v1",
                true,
                "rbac.authorization.k8s.io/clusterroles/_cluster/system:controller:x.json",
            ),
        ];
        for (k, version, preferred, path) in cases {
            assert_eq!(object_path(&k, version, preferred), path);
            let parsed = parse_path(path).unwrap();
            assert_eq!(parsed.key, k);
            assert_eq!(parsed.version, (!preferred).then(|| version.to_string()));
        }
    }

    #[test]
    fn long_names_fit_one_file_name_and_stay_distinct() {
        let fits = key("", "configmaps", Some("ns"), &"a".repeat(250));
        assert_eq!(file_path(&fits, "v1", true), object_path(&fits, "v1", true));
        let long = key("", "configmaps", Some("ns"), &"a".repeat(253));
        let other = key(
            "",
            "configmaps",
            Some("ns"),
            &format!("{}b", "a".repeat(252)),
        );
        let path = file_path(&long, "v1", true);
        let file = path.rsplit('/').next().unwrap();
        assert_eq!(file.len(), 255, "{file}");
        assert_eq!(path, file_path(&long, "v1", true), "deterministic");
        assert_ne!(path, file_path(&other, "v1", true));
        assert!(parse_path(&path).is_ok());
        // Cut on a character boundary.
        let wide = key("", "configmaps", Some("ns"), &"é".repeat(200));
        let path = file_path(&wide, "v1", true);
        assert!(path.rsplit('/').next().unwrap().len() <= 255);
    }

    #[test]
    fn hostile_paths_are_refused() {
        for path in [
            "core/configmaps/ns/...json",
            "core/configmaps/ns/...json/x",
            "core/configmaps/../x.json",
            "core/configmaps/ns/x",
            "core/configmaps/ns/.json",
            "x.json",
            "core/configmaps/_other/v1/ns/x.json",
        ] {
            assert!(parse_path(path).is_err(), "{path} accepted");
        }
        assert!(check_name("..").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("ok-name.v1:x").is_ok());
    }
}
