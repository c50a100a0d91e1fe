//! The custom resources, group `hokan.dev`, version `v1alpha1`, all
//! namespaced. Their CRDs are generated from these types ([`crds`]) and
//! committed under `deploy/crds/`; a test keeps the two equal.
//!
//! | kind | short name | what it is |
//! |------|------------|------------|
//! | [`Repository`] | `hrepo` | where backups go; status: reachable, format, snapshots |
//! | [`BackupPolicy`] | `hpolicy` | what, when (cron + time zone), retention per kind, suspend |
//! | [`Backup`] | `hbackup` | one run: phase, snapshots, figures, errors, its Job |
//! | [`Restore`] | `hrestore` | resources, an etcd snapshot or a volume brought back |

// kube's `printcolumn(name = .., type_ = ..)` repeats its keys by design,
// which clippy takes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
pub mod backup;
pub mod common;
#[allow(clippy::duplicated_attributes)]
pub mod policy;
#[allow(clippy::duplicated_attributes)]
pub mod repository;
#[allow(clippy::duplicated_attributes)]
pub mod restore;
pub mod snapshots;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use backup::{Backup, BackupSpec, BackupStatus};
pub use common::{Figures, JobRef, Phase, Retention, RunError, SecretKeyRef, SnapshotRef};
pub use policy::{
    BackupPolicy, BackupPolicySpec, BackupPolicyStatus, BackupSources, EtcdSource, ResourceSource,
    VolumeSource,
};
pub use repository::{Repository, RepositorySpec, RepositoryStatus};
pub use restore::{Restore, RestoreSpec, RestoreStatus};

/// The API group.
pub const GROUP: &str = "hokan.dev";
/// The API version.
pub const VERSION: &str = "v1alpha1";

/// Every CRD, with the file name it is committed under in `deploy/crds/`.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("repositories.yaml", Repository::crd()),
        ("backuppolicies.yaml", BackupPolicy::crd()),
        ("backups.yaml", Backup::crd()),
        ("restores.yaml", Restore::crd()),
    ]
}

/// A CRD as the YAML committed in `deploy/crds/` (a header line, then the
/// document).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, String> {
    let body = serde_saphyr::to_string(crd).map_err(|e| format!("CRD to YAML: {e}"))?;
    Ok(format!(
        "# Generated from crates/hokan-operator/src/api by `hokan-operator crds`; do not edit.\n{body}"
    ))
}
