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

use hokan_repo::Link;

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

/// Label on both snapshots of one backup run: the etcd snapshot and its
/// static pod resources share its value.
pub const LINK_LABEL: &str = "etcd-backup";
/// The name of the etcd snapshot's link to its static pod resources
/// ([`hokan_repo::links`]: labels `link:static-pods` and, when they are in
/// another repository, `link-repository:static-pods`). Forgetting the
/// snapshot forgets them.
pub const STATIC_PODS_LINK: &str = "static-pods";
/// Label on an etcd snapshot taken before links: the static pod
/// resources' snapshot id. Still read, never written.
pub const STATIC_PODS_LABEL: &str = "static-pods";
/// Label on an etcd snapshot taken before links: the repository holding
/// its static pod resources, when another one. Still read, never written.
pub const STATIC_PODS_REPO_LABEL: &str = "static-pods-repo";
/// Label on the static pod resources' snapshot: the directory they came
/// from (restored relative to it).
pub const RESOURCES_DIR_LABEL: &str = "static-pod-resources";

/// Where an etcd snapshot's static pod resources are: its link, or the
/// labels of a snapshot taken before links.
pub fn static_pods_link(snapshot: &hokan_repo::Snapshot) -> Option<Link> {
    snapshot.link(STATIC_PODS_LINK).or_else(|| {
        Some(Link {
            name: STATIC_PODS_LINK.into(),
            snapshot: snapshot.label(STATIC_PODS_LABEL)?.to_string(),
            repository: snapshot.label(STATIC_PODS_REPO_LABEL).map(str::to_string),
        })
    })
}

/// A fresh value for [`LINK_LABEL`]: time and process, unique per run.
pub fn link_token() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}-{:x}", now.as_nanos(), std::process::id())
}

/// Backs up the chosen revision directories as a file-system snapshot of
/// their own (kept apart from the etcd snapshot: with encryption at rest
/// they hold the keys), labelled with `token` ([`LINK_LABEL`]), the
/// resources directory and each component's revision. Its identity is the
/// resources directory, so each run finds the previous one as its parent.
pub fn backup_static_pods(
    repo: &mut hokan_repo::IndexedRepository,
    resources_dir: &Path,
    chosen: &[StaticPodResource],
    token: &str,
    tags: &[String],
    progress: &dyn hokan_core::fs::Progress,
) -> Result<hokan_repo::SnapshotEntry> {
    use hokan_repo::{SnapshotSpec, SourceKind, Staged};
    let dir = std::path::absolute(resources_dir)
        .map_err(|e| Error::io(format!("resolving {}", resources_dir.display()), e))?;
    let paths: Vec<PathBuf> = chosen
        .iter()
        .map(|r| dir.join(r.path.file_name().unwrap_or_default()))
        .collect();
    let mut labels = vec![
        (LINK_LABEL.to_string(), token.to_string()),
        (RESOURCES_DIR_LABEL.to_string(), dir.display().to_string()),
    ];
    for r in chosen {
        labels.push((format!("{}-revision", r.component), r.revision.to_string()));
    }
    let spec = SnapshotSpec {
        identity: format!("static-pod-resources:{}", dir.display()),
        paths: paths.iter().map(|p| p.display().to_string()).collect(),
        tags: tags.to_vec(),
        labels,
        ..SnapshotSpec::new(SourceKind::FS)
    };
    let excludes = hokan_core::fs::Excludes::default();
    let done = repo.backup(spec, |s| {
        let parent = s.parent_tree();
        let archived =
            hokan_core::fs::Archiver::new(s.writer(), Some(s.reader()), &excludes, progress)
                .archive(&paths, parent.as_ref())?;
        if let Some(w) = archived.warnings.first() {
            // Keys and certificates left out would make the backup useless.
            return Err(Error::invalid(
                "static pod resources",
                format!("{w}; nothing was saved"),
            ));
        }
        let mut staged = Staged::new(archived.tree);
        staged.bytes = archived.summary.bytes;
        staged.counts = vec![
            ("files".into(), archived.summary.files),
            ("dirs".into(), archived.summary.dirs),
        ];
        Ok((staged, ()))
    })?;
    Ok(done.entry)
}

/// Restores a static pod resources snapshot into `target`: the revision
/// directories land directly in it, as `cluster-restore.sh` expects them
/// under `/etc/kubernetes/static-pod-resources`.
pub fn restore_static_pods(
    repo: &hokan_repo::IndexedRepository,
    snapshot: &hokan_repo::Snapshot,
    target: &Path,
    progress: &dyn hokan_core::fs::Progress,
) -> Result<hokan_core::fs::Restored> {
    let dir = snapshot.label(RESOURCES_DIR_LABEL).ok_or_else(|| {
        Error::invalid(
            "static pod resources",
            format!("the snapshot has no {RESOURCES_DIR_LABEL} label: it was not made by an etcd backup that stored them"),
        )
    })?;
    Ok(repo.restore(snapshot, dir, target, Default::default(), progress)?)
}

/// Restores the static pod resources `link` names ([`static_pods_link`]
/// of an etcd snapshot) from `holder` (the snapshot's own repository, or
/// the one [`Link::repository`] names, opened by the caller) into
/// `target`. Returns their snapshot and what was restored; files that
/// could not be restored are counted there.
pub fn restore_linked_static_pods(
    holder: &hokan_repo::IndexedRepository,
    link: &Link,
    target: &Path,
    progress: &dyn hokan_core::fs::Progress,
) -> Result<(hokan_repo::SnapshotEntry, hokan_core::fs::Restored)> {
    let entry = holder.find_snapshot(&link.snapshot, &Default::default())?;
    let restored = restore_static_pods(holder, &entry.snapshot, target, progress)?;
    Ok((entry, restored))
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
