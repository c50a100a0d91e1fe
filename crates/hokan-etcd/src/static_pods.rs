//! The static pod resources OpenShift's `cluster-backup.sh` keeps beside an
//! etcd snapshot.
//!
//! The script (cluster-etcd-operator, `bindata/etcd/cluster-backup.sh`)
//! archives, for each of `kube-apiserver`, `kube-controller-manager`,
//! `kube-scheduler` and `etcd`, the revision directory
//! `/etc/kubernetes/static-pod-resources/<component>-pod-<N>` that the
//! running static pod uses: the first
//! `/etc/kubernetes/static-pod-resources/<component>-pod-<digits>` found in
//! `/etc/kubernetes/manifests/<component>-pod.yaml`. Older versions of the
//! script took the highest revision present (`ls -vd … | tail -1`);
//! without a manifests directory this module does the same. With etcd
//! encryption on, these directories hold the encryption keys: store them
//! apart from the snapshot.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The components whose latest revision is kept, in the script's order.
pub const STATIC_POD_COMPONENTS: [&str; 4] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
];

/// The path static pod manifests name their resources by.
const RESOURCES_IN_MANIFESTS: &str = "/etc/kubernetes/static-pod-resources/";

/// One component's chosen revision directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticPodResource {
    /// The component (`kube-apiserver`, …).
    pub component: &'static str,
    /// The revision N of `<component>-pod-N`.
    pub revision: u64,
    /// The directory, inside the resources directory given.
    pub path: PathBuf,
}

/// The revision directory of each of [`STATIC_POD_COMPONENTS`] in
/// `resources` (usually `/etc/kubernetes/static-pod-resources`): the one
/// the component's manifest in `manifests` (usually
/// `/etc/kubernetes/manifests`) refers to, or, without `manifests`, the
/// highest revision present. A missing component is an error, as in the
/// script: a backup without it would not restore the control plane.
pub fn latest_static_pod_resources(
    resources: &Path,
    manifests: Option<&Path>,
) -> Result<Vec<StaticPodResource>> {
    let mut out = Vec::with_capacity(STATIC_POD_COMPONENTS.len());
    for component in STATIC_POD_COMPONENTS {
        let revision = match manifests {
            Some(dir) => revision_in_manifest(dir, component)?,
            None => highest_revision(resources, component)?,
        };
        let path = resources.join(format!("{component}-pod-{revision}"));
        if !path.is_dir() {
            return Err(Error::invalid(
                "static pod resources",
                format!(
                    "{} is not a directory, but the {component} manifest uses revision {revision}; \
                     is the resources directory right?",
                    path.display()
                ),
            ));
        }
        out.push(StaticPodResource {
            component,
            revision,
            path,
        });
    }
    Ok(out)
}

/// The revision in the first `…/static-pod-resources/<component>-pod-<N>`
/// of the component's manifest.
fn revision_in_manifest(dir: &Path, component: &str) -> Result<u64> {
    let file = dir.join(format!("{component}-pod.yaml"));
    let text = std::fs::read_to_string(&file).map_err(|e| {
        Error::io(
            format!(
                "reading the manifest of the {component} pod {} (is the pod running on this node?)",
                file.display()
            ),
            e,
        )
    })?;
    let needle = format!("{RESOURCES_IN_MANIFESTS}{component}-pod-");
    text.match_indices(&needle)
        .find_map(|(at, _)| leading_number(&text[at + needle.len()..]))
        .ok_or_else(|| {
            Error::invalid(
                "static pod resources",
                format!(
                    "{} names no {needle}<revision> directory; is the {component} pod running?",
                    file.display()
                ),
            )
        })
}

/// The highest N of the `<component>-pod-N` directories in `resources`.
fn highest_revision(resources: &Path, component: &str) -> Result<u64> {
    let prefix = format!("{component}-pod-");
    let entries = std::fs::read_dir(resources)
        .map_err(|e| Error::io(format!("listing {}", resources.display()), e))?;
    let mut best = None;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", resources.display()), e))?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        // Only `<component>-pod-<digits>`: `kube-apiserver-pod-3-backup` is not a revision.
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) || !entry.path().is_dir() {
            continue;
        }
        if let Ok(n) = rest.parse::<u64>() {
            best = best.max(Some(n));
        }
    }
    best.ok_or_else(|| {
        Error::invalid(
            "static pod resources",
            format!(
                "no {prefix}<revision> directory in {}; give the node's \
                 /etc/kubernetes/static-pod-resources",
                resources.display()
            ),
        )
    })
}

fn leading_number(s: &str) -> Option<u64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    s[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dirs: &[&str]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for d in dirs {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        t
    }

    const ALL: [&str; 11] = [
        "kube-apiserver-pod-3",
        "kube-apiserver-pod-12",
        "kube-apiserver-pod-9",
        "kube-apiserver-certs",
        "kube-controller-manager-pod-5",
        "kube-controller-manager-pod-6",
        "kube-scheduler-pod-2",
        "etcd-pod-4",
        "etcd-pod-10",
        "etcd-certs",
        "etcd-pod-11-backup",
    ];

    #[test]
    fn without_manifests_the_highest_revision_wins_numerically() {
        let t = tree(&ALL);
        let got = latest_static_pod_resources(t.path(), None).unwrap();
        let picked: Vec<_> = got.iter().map(|r| (r.component, r.revision)).collect();
        assert_eq!(
            picked,
            [
                ("kube-apiserver", 12),
                ("kube-controller-manager", 6),
                ("kube-scheduler", 2),
                ("etcd", 10)
            ]
        );
        assert_eq!(got[0].path, t.path().join("kube-apiserver-pod-12"));
    }

    #[test]
    fn with_manifests_the_running_revision_wins() {
        let t = tree(&ALL);
        let m = tempfile::tempdir().unwrap();
        for (c, n) in [
            ("kube-apiserver", 9),
            ("kube-controller-manager", 6),
            ("kube-scheduler", 2),
            ("etcd", 4),
        ] {
            let yaml = format!(
                "spec:\n  volumes:\n  - hostPath:\n      path: {RESOURCES_IN_MANIFESTS}{c}-pod-{n}\n    name: resource-dir\n  - hostPath:\n      path: {RESOURCES_IN_MANIFESTS}{c}-certs\n"
            );
            std::fs::write(m.path().join(format!("{c}-pod.yaml")), yaml).unwrap();
        }
        let got = latest_static_pod_resources(t.path(), Some(m.path())).unwrap();
        let picked: Vec<_> = got.iter().map(|r| r.revision).collect();
        assert_eq!(picked, [9, 6, 2, 4]);
    }

    #[test]
    fn a_missing_component_is_an_error_naming_it() {
        let t = tree(
            &ALL[..8]
                .iter()
                .copied()
                .filter(|d| !d.starts_with("kube-scheduler"))
                .collect::<Vec<_>>(),
        );
        let err = latest_static_pod_resources(t.path(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("kube-scheduler-pod-<revision>"), "{err}");
        let m = tempfile::tempdir().unwrap();
        let err = latest_static_pod_resources(t.path(), Some(m.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("kube-apiserver-pod.yaml"), "{err}");
    }
}
