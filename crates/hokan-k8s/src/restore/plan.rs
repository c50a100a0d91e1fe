//! Restore planning: which stored objects go back, in which order and in
//! which version — decided from the entries alone (and the few CRDs among
//! them), before any object is read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::RestoreOptions;
use crate::discovery::{Discovery, GroupVersions, ResourceInfo};
use crate::filter::{IncludesExcludes, resource_filter};
use crate::object::{GroupResource, ObjectEntry, ObjectKey};
use crate::seam::ObjectSource;
use crate::{Result, version};

/// Velero's default restore priorities (`pkg/cmd/server/config`), fully
/// qualified: these first, in this order, then every other resource in
/// alphabetical order, then [`LOW_PRIORITIES`]. (Velero spells the first
/// snapshot resource `volumesnapshotclass`; the resource is the plural.)
pub const HIGH_PRIORITIES: [&str; 23] = [
    "customresourcedefinitions.apiextensions.k8s.io",
    "namespaces",
    "storageclasses.storage.k8s.io",
    "volumesnapshotclasses.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
    "datauploads.velero.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "clusterroles.rbac.authorization.k8s.io",
    "roles.rbac.authorization.k8s.io",
    "serviceaccounts",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "secrets",
    "configmaps",
    "limitranges",
    "priorityclasses.scheduling.k8s.io",
    "pods",
    "replicasets.apps",
    "clusterclasses.cluster.x-k8s.io",
    "endpoints",
    "services",
];

/// Restored after everything else (Velero's low priorities).
pub const LOW_PRIORITIES: [&str; 5] = [
    "clusterbootstraps.run.tanzu.vmware.com",
    "clusters.cluster.x-k8s.io",
    "clusterresourcesets.addons.cluster.x-k8s.io",
    "apps.kappctrl.k14s.io",
    "packageinstalls.packaging.carvel.dev",
];

/// Never restored, and why. Velero's `nonRestorableResources`, plus leases:
/// a restored leader-election or node lease would hold the new cluster's
/// controllers back until it expired.
pub const NEVER_RESTORED: [(&str, &str); 10] = [
    ("nodes", "nodes belong to the cluster they run in"),
    ("events", "events are records of the past cluster"),
    (
        "events.events.k8s.io",
        "events are records of the past cluster",
    ),
    (
        "backups.velero.io",
        "Velero syncs backups from object storage",
    ),
    (
        "restores.velero.io",
        "restores are specific to their cluster",
    ),
    (
        "resticrepositories.velero.io",
        "Velero recreates repositories",
    ),
    (
        "backuprepositories.velero.io",
        "Velero recreates repositories",
    ),
    (
        "csinodes.storage.k8s.io",
        "CSI nodes belong to the cluster's nodes",
    ),
    (
        "volumeattachments.storage.k8s.io",
        "attachments belong to the cluster's nodes",
    ),
    (
        "leases.coordination.k8s.io",
        "leases are controllers' and nodes' heartbeats",
    ),
];

/// Why a version was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionChoice {
    /// The target cluster's preferred version was backed up.
    TargetPreferred,
    /// The source's preferred version is served by the target.
    SourcePreferred,
    /// The highest version both have, by Kubernetes version priority.
    HighestCommon,
    /// No target cluster (to a directory): the source's preferred version.
    Source,
}

impl fmt::Display for VersionChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VersionChoice::TargetPreferred => "target's preferred",
            VersionChoice::SourcePreferred => "source's preferred, served by the target",
            VersionChoice::HighestCommon => "highest common version",
            VersionChoice::Source => "as backed up",
        })
    }
}

/// One object to restore.
#[derive(Clone, Debug)]
pub struct Step {
    /// The stored entry to read (in the chosen version).
    pub entry: ObjectEntry,
    /// Where it goes: its namespace after `--namespace-mapping`.
    pub target_namespace: Option<String>,
    /// Its name in the target (a mapped namespace's own name changes).
    pub target_name: String,
    /// Why this version.
    pub choice: VersionChoice,
    /// How the target serves it (`None` without a target cluster).
    pub resource: Option<Arc<ResourceInfo>>,
    /// For a CRD whose custom resources follow: wait until Established.
    pub wait_established: bool,
}

impl Step {
    /// The plan's line for this step: the target (and where it came from,
    /// when mapped), the version restored and why that one.
    pub fn describe(&self) -> String {
        let moved = match (&self.entry.key.namespace, &self.target_namespace) {
            (Some(from), Some(to)) if from != to => format!(" (from {from})"),
            _ if self.target_name != self.entry.key.name => {
                format!(" (from {})", self.entry.key.name)
            }
            _ => String::new(),
        };
        format!(
            "{}{moved}  {} ({})",
            self.target_label(),
            crate::object::api_version(&self.entry.key.resource.group, &self.entry.version),
            self.choice
        )
    }

    /// `configmaps shop/web`, naming the target.
    pub fn target_label(&self) -> String {
        let gr = &self.entry.key.resource;
        match &self.target_namespace {
            Some(ns) => format!("{gr} {ns}/{}", self.target_name),
            None => format!("{gr} {}", self.target_name),
        }
    }
}

/// An object the plan leaves out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Which.
    pub key: ObjectKey,
    /// Why.
    pub reason: String,
}

/// The ordered restore.
#[derive(Clone, Debug, Default)]
pub struct RestorePlan {
    /// Objects in restore order.
    pub steps: Vec<Step>,
    /// Objects left out, with the reason.
    pub skipped: Vec<Skipped>,
    /// The uids of every object restored (an owner reference to one of
    /// these is kept and re-pointed; others are dropped).
    pub uids: BTreeSet<String>,
}

/// Where `gr` falls in the order: high priorities by position, then the
/// rest (alphabetically, by the caller's tie-break), then low priorities.
pub fn priority(gr: &GroupResource) -> usize {
    let name = gr.to_string();
    if let Some(i) = HIGH_PRIORITIES.iter().position(|p| *p == name) {
        return i;
    }
    match LOW_PRIORITIES.iter().position(|p| *p == name) {
        Some(i) => HIGH_PRIORITIES.len() + 1 + i,
        None => HIGH_PRIORITIES.len(),
    }
}

/// Plans a restore of `source` into a cluster serving `target` (or into a
/// directory when `None`).
pub async fn plan<S: ObjectSource + Sync>(
    source: &S,
    target: Option<&Discovery>,
    options: &RestoreOptions,
) -> Result<RestorePlan> {
    let entries = source.list().await?;
    // Resources the backup's CRDs will serve once restored.
    let mut target = target.cloned();
    if let Some(discovery) = target.as_mut() {
        for e in entries
            .iter()
            .filter(|e| e.preferred && is_crd(&e.key.resource))
        {
            let crd: Value = serde_json::from_slice(&source.fetch(e).await?)
                .map_err(|err| crate::Error::bad_object(e.path(), err))?;
            // A CRD the target has already stays as it is (the restore
            // leaves it alone), so its versions are the target's.
            let served = crate::discovery::CrdNames::parse(&crd).is_some_and(|n| {
                !discovery
                    .versions_of(&GroupResource::new(&n.group, &n.plural))
                    .is_empty()
            });
            if !served {
                discovery.add_crd(&crd);
            }
        }
    }
    let resolver = match &target {
        Some(d) => d.clone(),
        None => discovery_of(&entries),
    };
    let resources = resource_filter(
        &resolver,
        &options.include_resources,
        &options.exclude_resources,
    )?;
    let namespaces = IncludesExcludes::new(
        "namespace filter",
        &options.include_namespaces,
        &options.exclude_namespaces,
    )?;

    // Entries of one object (its versions) side by side, by index, so the
    // chosen entries can be moved into the plan rather than copied: a plan
    // of 100,000 objects then holds each entry once.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|a, b| entries[*a].key.cmp(&entries[*b].key));
    let mut plan = RestorePlan::default();
    let mut picks: Vec<Pick> = Vec::new();
    type Choice = std::result::Result<(String, VersionChoice, Option<Arc<ResourceInfo>>), String>;
    let mut choices: BTreeMap<(GroupResource, String), Choice> = BTreeMap::new();
    for group in order.chunk_by(|a, b| entries[*a].key == entries[*b].key) {
        let all: Vec<&ObjectEntry> = group.iter().map(|i| &entries[*i]).collect();
        let Some(preferred) = all.iter().find(|e| e.preferred) else {
            continue;
        };
        let key = &preferred.key;
        let gr = &key.resource;
        let skip = |reason: String| Skipped {
            key: key.clone(),
            reason,
        };
        if let Some((_, why)) = NEVER_RESTORED
            .iter()
            .find(|(name, _)| *name == gr.to_string())
        {
            plan.skipped.push(skip(format!("never restored: {why}")));
            continue;
        }
        if !resources.includes(&gr.to_string()) {
            continue;
        }
        // A namespace object is filtered by its own name.
        let source_ns = key
            .namespace
            .clone()
            .or_else(|| is_namespace(gr).then(|| key.name.clone()));
        if source_ns
            .as_ref()
            .is_some_and(|ns| !namespaces.includes(ns))
        {
            continue;
        }
        let mut backed: Vec<&str> = all.iter().map(|e| e.version.as_str()).collect();
        backed.sort();
        let choice = choices
            .entry((
                gr.clone(),
                format!("{} {}", preferred.version, backed.join(",")),
            ))
            .or_insert_with(|| {
                let (version, why) =
                    choose_version(target.as_ref(), gr, &preferred.version, &backed)?;
                let served = target
                    .as_ref()
                    .and_then(|d| d.find(gr, &version).cloned())
                    .map(Arc::new);
                Ok((version, why, served))
            })
            .clone();
        let (version, why, served) = match choice {
            Ok(c) => c,
            Err(reason) => {
                plan.skipped.push(skip(reason));
                continue;
            }
        };
        let index = group
            .iter()
            .copied()
            .find(|i| entries[*i].version == version)
            .unwrap_or(group[0]);
        let map = |ns: &String| {
            options
                .namespace_mapping
                .get(ns)
                .cloned()
                .unwrap_or_else(|| ns.clone())
        };
        let target_name = if is_namespace(gr) {
            map(&key.name)
        } else {
            key.name.clone()
        };
        if !entries[index].attrs.uid.is_empty() {
            plan.uids.insert(entries[index].attrs.uid.clone());
        }
        picks.push(Pick {
            index,
            target_namespace: key.namespace.as_ref().map(map),
            target_name,
            choice: why,
            resource: served,
        });
    }
    let mut slots: Vec<Option<ObjectEntry>> = entries.into_iter().map(Some).collect();
    // Exactly as many steps as picks: a doubling vector would briefly hold
    // twice the plan.
    plan.steps.reserve_exact(picks.len());
    for Pick {
        index,
        target_namespace,
        target_name,
        choice,
        resource,
    } in picks
    {
        let Some(entry) = slots[index].take() else {
            continue;
        };
        plan.steps.push(Step {
            entry,
            target_namespace,
            target_name,
            choice,
            resource,
            wait_established: false,
        });
    }
    drop(slots);
    plan.steps.sort_by(|a, b| {
        let (ka, kb) = (&a.entry.key, &b.entry.key);
        priority(&ka.resource)
            .cmp(&priority(&kb.resource))
            .then_with(|| ka.resource.to_string().cmp(&kb.resource.to_string()))
            .then_with(|| ka.namespace.cmp(&kb.namespace))
            .then_with(|| ka.name.cmp(&kb.name))
    });
    let custom: BTreeSet<String> = plan
        .steps
        .iter()
        .map(|s| s.entry.key.resource.to_string())
        .collect();
    for step in plan
        .steps
        .iter_mut()
        .filter(|s| is_crd(&s.entry.key.resource))
    {
        step.wait_established = custom.contains(&step.entry.key.name);
    }
    Ok(plan)
}

/// A chosen entry, by index, before it is moved into its step.
struct Pick {
    index: usize,
    target_namespace: Option<String>,
    target_name: String,
    choice: VersionChoice,
    resource: Option<Arc<ResourceInfo>>,
}

/// Target's preferred if backed up; else the source's preferred if the
/// target serves it; else the highest version both have.
fn choose_version(
    target: Option<&Discovery>,
    gr: &GroupResource,
    source_preferred: &str,
    backed: &[&str],
) -> std::result::Result<(String, VersionChoice), String> {
    let Some(target) = target else {
        return Ok((source_preferred.to_string(), VersionChoice::Source));
    };
    let served = target.versions_of(gr);
    let Some(target_preferred) = served.first() else {
        return Err(format!(
            "the target cluster does not serve {gr}: install its API or CRD first"
        ));
    };
    if target
        .find(gr, target_preferred)
        .is_some_and(|r| !r.supports(&["create"]))
    {
        return Err(format!("the target cluster does not allow creating {gr}"));
    }
    if backed.contains(target_preferred) {
        return Ok((target_preferred.to_string(), VersionChoice::TargetPreferred));
    }
    if served.contains(&source_preferred) {
        return Ok((source_preferred.to_string(), VersionChoice::SourcePreferred));
    }
    let mut common: Vec<String> = backed
        .iter()
        .filter(|v| served.contains(v))
        .map(|v| v.to_string())
        .collect();
    version::sort_by_priority(&mut common);
    match common.into_iter().next() {
        Some(v) => Ok((v, VersionChoice::HighestCommon)),
        None => Err(format!(
            "no common version: backed up in {}, the target serves {}; back up every API version the source serves",
            backed.join(", "),
            served.join(", ")
        )),
    }
}

pub(crate) fn is_crd(gr: &GroupResource) -> bool {
    gr.group == "apiextensions.k8s.io" && gr.resource == "customresourcedefinitions"
}

pub(crate) fn is_namespace(gr: &GroupResource) -> bool {
    gr.group.is_empty() && gr.resource == "namespaces"
}

/// A discovery made from the backup itself, to resolve `cm` or `Widget` in
/// filters when there is no target cluster.
fn discovery_of(entries: &[ObjectEntry]) -> Discovery {
    let mut d = Discovery::default();
    let mut seen = BTreeSet::new();
    for e in entries.iter().filter(|e| e.preferred) {
        if !seen.insert(e.key.resource.clone()) {
            continue;
        }
        let group = e.key.resource.group.clone();
        match d.groups.iter_mut().find(|g| g.name == group) {
            Some(g) if !g.versions.contains(&e.version) => g.versions.push(e.version.clone()),
            Some(_) => {}
            None => d.groups.push(GroupVersions {
                name: group.clone(),
                versions: vec![e.version.clone()],
            }),
        }
        d.resources.push(ResourceInfo {
            group,
            version: e.version.clone(),
            resource: e.key.resource.resource.clone(),
            kind: e.attrs.kind.clone(),
            singular: e.attrs.kind.to_ascii_lowercase(),
            namespaced: e.key.namespace.is_some(),
            verbs: Vec::new(),
            short_names: Vec::new(),
            subresources: Vec::new(),
        });
    }
    d.groups.sort_by_key(|g| !g.name.is_empty());
    d
}

impl fmt::Display for RestorePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Restore plan: {} objects, {} left out",
            self.steps.len(),
            self.skipped.len()
        )?;
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "{:>4}. {}", i + 1, step.describe())?;
            if step.wait_established {
                writeln!(
                    f,
                    "        then wait until Established: its custom resources follow"
                )?;
            }
        }
        for s in &self.skipped {
            writeln!(f, "  left out: {}: {}", s.key, s.reason)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_velero() {
        let p = |s: &str| priority(&GroupResource::parse(s));
        assert!(p("customresourcedefinitions.apiextensions.k8s.io") < p("namespaces"));
        assert!(p("namespaces") < p("persistentvolumes"));
        assert!(p("persistentvolumes") < p("persistentvolumeclaims"));
        assert!(p("serviceaccounts") < p("secrets"));
        assert!(p("pods") < p("replicasets.apps"));
        assert!(p("services") < p("deployments.apps"));
        assert_eq!(
            p("deployments.apps"),
            p("widgets.example.com"),
            "the rest share one rank, then sort by name"
        );
        assert!(p("widgets.example.com") < p("clusters.cluster.x-k8s.io"));
        // `services.serving.knative.dev` is not core services.
        assert_eq!(p("services.serving.knative.dev"), HIGH_PRIORITIES.len());
    }

    fn discovery(versions: &[&str]) -> Discovery {
        let gr = GroupResource::new("example.com", "widgets");
        Discovery {
            groups: vec![GroupVersions {
                name: gr.group.clone(),
                versions: versions.iter().map(|v| v.to_string()).collect(),
            }],
            resources: versions
                .iter()
                .map(|v| ResourceInfo {
                    group: gr.group.clone(),
                    version: v.to_string(),
                    resource: gr.resource.clone(),
                    kind: "Widget".into(),
                    singular: "widget".into(),
                    namespaced: true,
                    verbs: vec!["create".into()],
                    short_names: vec![],
                    subresources: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn version_choice_follows_the_three_rules() {
        let gr = GroupResource::new("example.com", "widgets");
        let choose = |served: &[&str], source: &str, backed: &[&str]| {
            choose_version(Some(&discovery(served)), &gr, source, backed)
        };
        assert_eq!(
            choose(&["v2", "v1"], "v1", &["v1", "v2"]).unwrap(),
            ("v2".into(), VersionChoice::TargetPreferred)
        );
        assert_eq!(
            choose(&["v2", "v1"], "v1", &["v1"]).unwrap(),
            ("v1".into(), VersionChoice::SourcePreferred)
        );
        assert_eq!(
            choose(
                &["v3", "v1beta1", "v1alpha1"],
                "v2",
                &["v2", "v1alpha1", "v1beta1"]
            )
            .unwrap(),
            ("v1beta1".into(), VersionChoice::HighestCommon)
        );
        let err = choose(&["v3"], "v2", &["v2"]).unwrap_err();
        assert!(err.contains("back up every API version"), "{err}");
        assert!(
            choose(&[], "v1", &["v1"])
                .unwrap_err()
                .contains("does not serve")
        );
        assert_eq!(
            choose_version(None, &gr, "v1", &["v1"]).unwrap(),
            ("v1".into(), VersionChoice::Source)
        );
    }
}
