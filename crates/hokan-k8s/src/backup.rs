//! Backup: read every object a filter selects, page by page, and hand each
//! to an [`ObjectSink`], the way Velero collects items.
//!
//! What it follows from Velero: discovery of every served group (the
//! preferred version of each resource, or every served version with
//! `all_api_versions`); resources without list/create/get/delete and
//! subresources skipped; pages of 500; namespace globs and `resource.group`
//! filters; the true/false/auto rule for cluster-scoped resources; objects
//! labelled `velero.io/exclude-from-backup=true` and objects being deleted
//! skipped; one of each cohabiting pair (`events` and `events.events.k8s.io`
//! are one store) taken; the CRDs of backed-up custom resources and the PVs
//! of backed-up claims pulled in. With `exclude_operators`, OLM's groups
//! (`*.operators.coreos.com`) and the objects OLM makes (CSVs copied into
//! every namespace, an operator's deployment and RBAC) are left out, so a
//! cross-cluster restore does not carry operators along.
//!
//! Where it differs: the namespaces of included objects are taken even with
//! `--include-cluster-resources=false` (as Velero's scoped filters do),
//! because their annotations carry OpenShift's UID ranges.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::cluster::Cluster;
use crate::discovery::{Discovery, ResourceInfo};
use crate::filter::{ClusterResources, IncludesExcludes, ScopeFilter, resource_filter};
use crate::object::{GroupResource, ObjectAttrs, ObjectEntry, ObjectHead, ObjectKey, StoredObject};
use crate::seam::{Completed, ObjectSink};
use crate::selector::Selector;
use crate::{Error, Result};

/// Velero's label for objects a backup must leave out.
pub const EXCLUDE_LABEL: &str = "velero.io/exclude-from-backup";

/// What to back up. `Default` is everything, Velero's defaults.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    /// Namespace globs to take (empty: all).
    pub include_namespaces: Vec<String>,
    /// Namespace globs to leave out.
    pub exclude_namespaces: Vec<String>,
    /// Resources to take (`deployments.apps`, `cm`, globs; empty: all).
    pub include_resources: Vec<String>,
    /// Resources to leave out.
    pub exclude_resources: Vec<String>,
    /// A label selector objects must match.
    pub selector: Option<String>,
    /// The cluster-scoped rule.
    pub cluster_resources: ClusterResources,
    /// Every served version of each resource, not only the preferred one.
    pub all_api_versions: bool,
    /// Leave OLM's operators out.
    pub exclude_operators: bool,
    /// Objects per list request.
    pub page_size: u32,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            include_namespaces: Vec::new(),
            exclude_namespaces: Vec::new(),
            include_resources: Vec::new(),
            exclude_resources: Vec::new(),
            selector: None,
            cluster_resources: ClusterResources::Auto,
            all_api_versions: false,
            exclude_operators: false,
            page_size: 500,
        }
    }
}

/// What a backup did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummary {
    /// The cluster's identity (kube context or server URL).
    pub cluster: String,
    /// Objects stored (each once, in its preferred version).
    pub objects: u64,
    /// Entries stored, counting every version of each object.
    pub entries: u64,
    /// JSON bytes handed to the sink.
    pub bytes: u64,
    /// List requests made.
    pub pages: u64,
    /// Objects per `resource.group`.
    pub resources: BTreeMap<String, u64>,
    /// Objects left out, per reason.
    pub skipped: BTreeMap<String, u64>,
    /// Resources that could not be read, with the server's answer (the
    /// backup goes on without them, as Velero's does: partially failed).
    pub errors: Vec<String>,
}

/// Backs up what `options` select from `cluster` into `sink`, then calls
/// [`ObjectSink::finish`]. Memory is bounded by one page of the largest
/// list, not by the cluster.
pub async fn backup<S: ObjectSink + Send>(
    cluster: &Cluster,
    options: &BackupOptions,
    sink: &mut S,
) -> Result<BackupSummary> {
    let discovery = cluster.discover().await?;
    let selector = match &options.selector {
        Some(s) => Some(Selector::parse(s).map_err(|reason| Error::InvalidOption {
            option: "label selector",
            value: s.clone(),
            reason,
        })?),
        None => None,
    };
    let filter = ScopeFilter {
        namespaces: IncludesExcludes::new(
            "namespace filter",
            &options.include_namespaces,
            &options.exclude_namespaces,
        )?,
        resources: resource_filter(
            &discovery,
            &options.include_resources,
            &options.exclude_resources,
        )?,
        cluster: options.cluster_resources,
    };
    let mut run = Run {
        cluster,
        discovery: &discovery,
        options,
        filter,
        selector,
        sink,
        summary: BackupSummary {
            cluster: cluster.identity().to_string(),
            ..Default::default()
        },
        namespaces: BTreeSet::new(),
        with_items: BTreeSet::new(),
        listed: BTreeSet::new(),
        claimed_volumes: BTreeSet::new(),
        excluded_namespaces: BTreeSet::new(),
    };
    run.collect().await?;
    let summary = run.summary;
    sink.finish(&summary).await?;
    Ok(summary)
}

struct Run<'a, S> {
    cluster: &'a Cluster,
    discovery: &'a Discovery,
    options: &'a BackupOptions,
    filter: ScopeFilter,
    selector: Option<Selector>,
    sink: &'a mut S,
    summary: BackupSummary,
    /// Namespaces holding at least one backed-up object.
    namespaces: BTreeSet<String>,
    /// Resources with at least one backed-up object (for their CRDs).
    with_items: BTreeSet<GroupResource>,
    /// Resources listed directly (in their preferred version).
    listed: BTreeSet<GroupResource>,
    /// PVs named by backed-up claims.
    claimed_volumes: BTreeSet<String>,
    /// Namespaces labelled to be left out, with everything in them.
    excluded_namespaces: BTreeSet<String>,
}

/// Pairs of resources that are one store served in two groups; Velero takes
/// the first it meets. `extensions` comes last in discovery order.
const COHABITING: [&str; 6] = [
    "deployments",
    "daemonsets",
    "replicasets",
    "networkpolicies",
    "events",
    "ingresses",
];

fn is_operator_group(group: &str) -> bool {
    group == "operators.coreos.com" || group.ends_with(".operators.coreos.com")
}

impl<S: ObjectSink + Send> Run<'_, S> {
    async fn collect(&mut self) -> Result<()> {
        let active = self.active_namespaces().await?;
        let namespaces_gr = GroupResource::new("", "namespaces");
        let mut candidates: Vec<&ResourceInfo> = if self.options.all_api_versions {
            self.discovery.resources.iter().collect()
        } else {
            self.discovery.preferred_resources()
        };
        // Velero sorts the deprecated `extensions` group last, so its
        // cohabiting twins are met first in their current groups.
        candidates.sort_by_key(|r| r.group == "extensions");
        let mut cohabiting_seen: BTreeMap<&str, &str> = BTreeMap::new();
        for r in candidates {
            let gr = r.group_resource();
            if gr == namespaces_gr || !r.backupable() {
                continue;
            }
            if COHABITING.contains(&r.resource.as_str()) {
                let first = *cohabiting_seen
                    .entry(r.resource.as_str())
                    .or_insert(r.group.as_str());
                if first != r.group {
                    continue;
                }
            }
            if self.options.exclude_operators && is_operator_group(&r.group) {
                continue;
            }
            if !self.filter.lists(&gr, r.namespaced) {
                continue;
            }
            let preferred = self
                .discovery
                .preferred(&gr)
                .is_some_and(|p| p.version == r.version);
            if preferred {
                self.listed.insert(gr.clone());
            }
            // Everything at once unless only some namespaces are wanted.
            if !r.namespaced || self.filter.namespaces.everything() {
                self.list_all(r, None, preferred).await?;
            } else {
                for ns in active.keys() {
                    self.list_all(r, Some(ns), preferred).await?;
                }
            }
        }
        self.pull_in_volumes().await?;
        self.pull_in_crds().await?;
        self.take_namespaces(&active).await
    }

    /// Names and labels of the Active namespaces the filter includes.
    async fn active_namespaces(&mut self) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
        let mut out = BTreeMap::new();
        let Some(r) = self
            .discovery
            .preferred(&GroupResource::new("", "namespaces"))
        else {
            return Ok(out);
        };
        let path = r.collection_path(None);
        let mut token: Option<String> = None;
        loop {
            let page = self
                .cluster
                .list_page(&path, None, token.as_deref(), self.options.page_size)
                .await?;
            self.summary.pages += 1;
            for item in &page.items {
                #[derive(Deserialize)]
                struct Ns {
                    #[serde(default)]
                    status: NsStatus,
                }
                #[derive(Default, Deserialize)]
                struct NsStatus {
                    #[serde(default)]
                    phase: String,
                }
                let head = ObjectHead::parse(&path, item.get().as_bytes())?;
                let ns: Ns =
                    serde_json::from_str(item.get()).map_err(|e| Error::bad_object(&path, e))?;
                // Velero treats a labelled namespace as an excluded one.
                if head
                    .metadata
                    .labels
                    .get(EXCLUDE_LABEL)
                    .is_some_and(|v| v == "true")
                {
                    *self
                        .summary
                        .skipped
                        .entry(format!("namespace labelled {EXCLUDE_LABEL}=true"))
                        .or_default() += 1;
                    self.excluded_namespaces.insert(head.metadata.name);
                    continue;
                }
                if ns.status.phase != "Terminating"
                    && self.filter.namespaces.includes(&head.metadata.name)
                {
                    out.insert(head.metadata.name, head.metadata.labels);
                }
            }
            match page.continue_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// Lists `r` (in `namespace`, or everywhere) page by page, then tells
    /// the sink that part of the tree is complete.
    async fn list_all(
        &mut self,
        r: &ResourceInfo,
        namespace: Option<&str>,
        preferred: bool,
    ) -> Result<()> {
        self.list_pages(r, namespace, preferred).await?;
        let part = Completed {
            resource: r.group_resource(),
            version: r.version.clone(),
            preferred,
            namespace: namespace.map(str::to_string),
        };
        self.sink.completed(&part).await
    }

    async fn list_pages(
        &mut self,
        r: &ResourceInfo,
        namespace: Option<&str>,
        preferred: bool,
    ) -> Result<()> {
        let path = r.collection_path(namespace);
        let mut token: Option<String> = None;
        loop {
            let page = match self
                .cluster
                .list_page(
                    &path,
                    self.options.selector.as_deref(),
                    token.as_deref(),
                    self.options.page_size,
                )
                .await
            {
                Ok(page) => page,
                // One unreadable resource (forbidden, gone, an aggregated API
                // that is down, a list that expired) does not stop the
                // backup; it is reported, as Velero reports it.
                Err(e @ Error::Api { .. }) => {
                    let scope = namespace.map(|ns| format!(" in {ns}")).unwrap_or_default();
                    self.summary.errors.push(format!(
                        "{} ({}){scope} was not backed up: {e}",
                        r.group_resource(),
                        r.api_version()
                    ));
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            self.summary.pages += 1;
            for item in page.items {
                self.take(r, item, preferred, false).await?;
            }
            match page.continue_token {
                Some(t) => token = Some(t),
                None => return Ok(()),
            }
        }
    }

    /// Hands one listed object to the sink unless a rule leaves it out.
    async fn take(
        &mut self,
        r: &ResourceInfo,
        item: Box<RawValue>,
        preferred: bool,
        pulled_in: bool,
    ) -> Result<bool> {
        let raw = item.get().as_bytes();
        let head = ObjectHead::parse(&format!("an item of {}", r.group_resource()), raw)?;
        let meta = &head.metadata;
        let skip = if !pulled_in && meta.labels.get(EXCLUDE_LABEL).is_some_and(|v| v == "true") {
            Some(format!("label {EXCLUDE_LABEL}=true"))
        } else if meta.deletion_timestamp.is_some() {
            Some("being deleted".to_string())
        } else if self.options.exclude_operators
            && (meta.labels.contains_key("olm.copiedFrom")
                || meta
                    .labels
                    .get("olm.owner.kind")
                    .is_some_and(|k| k == "ClusterServiceVersion")
                || meta
                    .owner_references
                    .iter()
                    .any(|o| o.kind == "ClusterServiceVersion"))
        {
            Some("made by an operator (OLM)".to_string())
        } else {
            None
        };
        if let Some(reason) = skip {
            *self.summary.skipped.entry(reason).or_default() += 1;
            return Ok(false);
        }
        let namespace = if r.namespaced {
            meta.namespace.clone().filter(|n| !n.is_empty())
        } else {
            None
        };
        if let Some(ns) = &namespace
            && (!self.filter.namespaces.includes(ns) || self.excluded_namespaces.contains(ns))
        {
            return Ok(false);
        }
        let gr = r.group_resource();
        if r.group.is_empty()
            && r.resource == "persistentvolumeclaims"
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw)
            && let Some(pv) = v
                .pointer("/spec/volumeName")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
        {
            self.claimed_volumes.insert(pv.to_string());
        }
        // Built-in kinds come in lists without apiVersion and kind; the
        // stored object must say what it is, as Velero's do.
        let json = if head.api_version.is_empty() || head.kind.is_empty() {
            with_type_meta(raw, &r.api_version(), &r.kind)
        } else {
            raw.to_vec()
        };
        let entry = ObjectEntry {
            key: ObjectKey {
                resource: gr.clone(),
                namespace: namespace.clone(),
                name: meta.name.clone(),
            },
            version: r.version.clone(),
            preferred,
            attrs: ObjectAttrs {
                api_version: r.api_version(),
                kind: r.kind.clone(),
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
            },
        };
        self.summary.bytes += json.len() as u64;
        self.summary.entries += 1;
        if preferred {
            self.summary.objects += 1;
            *self.summary.resources.entry(gr.to_string()).or_default() += 1;
        }
        if let Some(ns) = namespace {
            self.namespaces.insert(ns);
        }
        self.with_items.insert(gr);
        self.sink.put(StoredObject { entry, json }).await?;
        Ok(true)
    }

    /// GETs one object and takes it (a PV of a claim, a CRD of a resource).
    async fn pull_in(&mut self, r: &ResourceInfo, name: &str) -> Result<()> {
        let path = format!("{}/{name}", r.collection_path(None));
        let Some(object) = self.cluster.get(&path).await? else {
            return Ok(());
        };
        let raw =
            serde_json::value::to_raw_value(&object).map_err(|e| Error::bad_object(&path, e))?;
        self.take(r, raw, true, true).await.map(|_| ())
    }

    async fn pull_in_volumes(&mut self) -> Result<()> {
        let pvs = GroupResource::new("", "persistentvolumes");
        if self.listed.contains(&pvs) || !self.filter.allows_pulled_in(&pvs) {
            return Ok(());
        }
        let Some(r) = self.discovery.preferred(&pvs).cloned() else {
            return Ok(());
        };
        for name in std::mem::take(&mut self.claimed_volumes) {
            self.pull_in(&r, &name).await?;
        }
        Ok(())
    }

    /// Velero takes the CRD of each backed-up custom resource when CRDs are
    /// neither included (then they were listed) nor excluded.
    async fn pull_in_crds(&mut self) -> Result<()> {
        let crds = GroupResource::new("apiextensions.k8s.io", "customresourcedefinitions");
        if self.listed.contains(&crds) || !self.filter.allows_pulled_in(&crds) {
            return Ok(());
        }
        let Some(r) = self.discovery.preferred(&crds).cloned() else {
            return Ok(());
        };
        // CRD groups must contain a dot; built-in groups without one need no GET.
        let custom: Vec<GroupResource> = self
            .with_items
            .iter()
            .filter(|gr| gr.group.contains('.'))
            .cloned()
            .collect();
        for gr in custom {
            self.pull_in(&r, &gr.to_string()).await?;
        }
        Ok(())
    }

    /// The namespace objects, last: those holding backed-up objects, and
    /// those the namespace filter or the selector names (Velero's nsTracker).
    async fn take_namespaces(
        &mut self,
        active: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<()> {
        let gr = GroupResource::new("", "namespaces");
        if self.filter.resources.is_excluded(&gr.to_string()) {
            return Ok(());
        }
        let Some(r) = self.discovery.preferred(&gr).cloned() else {
            return Ok(());
        };
        let by_filter = !(self.filter.namespaces.everything() && self.selector.is_some());
        let wanted: Vec<String> = active
            .iter()
            .filter(|(name, labels)| {
                self.namespaces.contains(*name)
                    || self.selector.as_ref().is_some_and(|s| s.matches(labels))
                    || (by_filter && self.filter.resources.includes("namespaces"))
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in wanted {
            self.pull_in(&r, &name).await?;
        }
        Ok(())
    }
}

/// Puts `apiVersion` and `kind` first in an object's JSON bytes.
pub(crate) fn with_type_meta(raw: &[u8], api_version: &str, kind: &str) -> Vec<u8> {
    let mut out = format!(
        "{{\"apiVersion\":{},\"kind\":{}",
        serde_json::json!(api_version),
        serde_json::json!(kind)
    )
    .into_bytes();
    let rest = raw.strip_prefix(b"{").unwrap_or(raw);
    if rest
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b != b'}')
    {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    out
}
