//! An etcd backup as OpenShift's `cluster-backup.sh` takes one: the etcd
//! snapshot, with the control plane's static pod resources stored beside
//! it as a snapshot of their own and linked to it ([`hokan_repo::links`]),
//! then retention over the cluster's snapshots, which forgets each
//! forgotten snapshot's static pod resources with it.

use std::path::{Path, PathBuf};

use hokan_core::fs::Progress;
use hokan_repo::retention::{GroupDecisions, Policy};
use hokan_repo::{IndexedRepository, Link, LinkFate, SnapshotEntry};

use crate::backup::{Backed, BackupOptions, backup_live, import_file};
use crate::error::Result;
use crate::live::EtcdEndpoint;
use crate::static_pods::{
    LINK_LABEL, STATIC_PODS_LINK, StaticPodResource, backup_static_pods, link_token,
};

/// Where the etcd snapshot comes from.
#[derive(Clone, Copy, Debug)]
pub enum EtcdSource<'a> {
    /// A live snapshot of this member ([`backup_live`]).
    Live(&'a EtcdEndpoint),
    /// A snapshot file or a member's database ([`import_file`]).
    File(&'a Path),
}

/// The static pod resources to store with the snapshot.
pub struct StaticPods<'a> {
    /// The node's resources directory (`/etc/kubernetes/static-pod-resources`).
    pub resources: PathBuf,
    /// The revision directories to store: see
    /// [`latest_static_pod_resources`](crate::latest_static_pod_resources).
    pub chosen: Vec<StaticPodResource>,
    /// Another repository to keep them in (with etcd encryption on, they
    /// hold the keys to the snapshot's Secrets): its location, which the
    /// link records, and the repository, opened.
    pub elsewhere: Option<(String, &'a mut IndexedRepository)>,
}

/// What [`cluster_backup`] did.
#[derive(Debug)]
pub struct ClusterBackup {
    /// The etcd snapshot saved.
    pub backed: Backed,
    /// The static pod resources' snapshot, when there were any.
    pub static_pods: Option<SnapshotEntry>,
    /// Retention's decisions over the cluster's etcd snapshots, when a
    /// policy was given. The backup is saved whether or not it succeeded.
    pub retention: Option<hokan_repo::Result<GroupDecisions>>,
}

/// Takes an etcd snapshot from `source` into `repo`. With `static_pods`,
/// stores them first (in their own repository, if given) and links them
/// from the snapshot: a failure at any step leaves nothing behind (the
/// static pod resources of a failed run are forgotten again). Then, with a
/// `policy`, applies it to the cluster's snapshots
/// ([`Repository::forget_after_backup`](hokan_repo::Repository::forget_after_backup)),
/// which forgets their linked static pod resources along; those in the
/// other repository given are forgotten there too. A policy that keeps
/// nothing is refused before anything is stored.
pub fn cluster_backup(
    repo: &mut IndexedRepository,
    source: EtcdSource<'_>,
    options: &BackupOptions,
    mut static_pods: Option<StaticPods<'_>>,
    policy: &Policy,
    progress: &dyn Progress,
) -> Result<ClusterBackup> {
    if !policy.is_empty() {
        policy.check()?;
    }
    let mut options = options.clone();
    let mut pods_entry = None;
    if let Some(pods) = &mut static_pods {
        let token = link_token();
        let location = pods.elsewhere.as_ref().map(|(l, _)| l.clone());
        let target = match &mut pods.elsewhere {
            Some((_, other)) => &mut **other,
            None => &mut *repo,
        };
        let entry = backup_static_pods(
            target,
            &pods.resources,
            &pods.chosen,
            &token,
            &options.tags,
            progress,
        )?;
        options.labels.push((LINK_LABEL.into(), token));
        let link = Link {
            repository: location,
            ..Link::new(STATIC_PODS_LINK, &entry.id)
        };
        options.labels.extend(link.labels());
        pods_entry = Some(entry);
    }
    let taken = match source {
        EtcdSource::Live(endpoint) => backup_live(repo, endpoint, &options, progress),
        EtcdSource::File(path) => import_file(repo, path, &options, progress),
    };
    let backed = match taken {
        Ok(b) => b,
        Err(e) => {
            // Nothing half-done: the run's static pod resources go too.
            if let (Some(entry), Some(pods)) = (&pods_entry, &static_pods) {
                let holder = pods.elsewhere.as_ref().map_or(&*repo, |(_, r)| &**r);
                let _ = holder.delete_snapshot(&entry.id);
            }
            return Err(e);
        }
    };
    let retention = (!policy.is_empty()).then(|| {
        let mut group = repo.forget_after_backup(&backed.entry, policy)?;
        if let Some((location, other)) = static_pods.as_ref().and_then(|p| p.elsewhere.as_ref()) {
            forget_elsewhere(other, location, &mut group)?;
        }
        Ok(group)
    });
    Ok(ClusterBackup {
        backed,
        static_pods: pods_entry,
        retention,
    })
}

/// Forgets, in the repository at `location`, the linked snapshots the
/// decisions could only report as being there.
fn forget_elsewhere(
    other: &IndexedRepository,
    location: &str,
    group: &mut GroupDecisions,
) -> hokan_repo::Result<()> {
    let held: std::collections::HashSet<_> = other
        .snapshot_list()?
        .entries
        .iter()
        .map(|e| e.id)
        .collect();
    for linked in group.decisions.iter_mut().flat_map(|d| &mut d.linked) {
        if linked.fate != LinkFate::Elsewhere || linked.link.repository.as_deref() != Some(location)
        {
            continue;
        }
        let Some(id) = linked.link.id().filter(|id| held.contains(id)) else {
            linked.fate = LinkFate::Missing;
            continue;
        };
        let done = other.forget_snapshots(&[id], false)?;
        linked.fate = match done.first().and_then(|f| f.kept_by_lock) {
            Some(until) => LinkFate::KeptByLock(until),
            None => LinkFate::Forgotten,
        };
    }
    Ok(())
}
