//! Carrying out a [`RestorePlan`]: each object read, mapped, sanitized and
//! then created in a cluster, written to a directory, or only reported.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::time::Instant;

use serde_json::{Value, json};

use super::plan::{RestorePlan, Step, is_crd, is_namespace};
use super::report::{Action, Outcome, RestoreReport, Totals};
use super::sanitize::{SanitizeOptions, sanitize};
use super::{ExistingPolicy, RestoreOptions};
use crate::cluster::Cluster;
use crate::discovery::ResourceInfo;
use crate::manifest_dir::ManifestDir;
use crate::object::{GroupResource, ObjectEntry, ObjectKey};
use crate::seam::{FETCH_BATCH, ObjectSource};
use crate::{Error, Result, layout, names};

/// Where a restore goes.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// Created through the API.
    Cluster(&'a Cluster),
    /// Written as manifests (the tree layout, plus [`ORDER_FILE`] listing
    /// them in the order to apply).
    Dir(&'a ManifestDir),
    /// Nothing written: the report says what would be done.
    DryRun,
}

/// The OpenShift annotations that tie a namespace's files to its users.
pub const OPENSHIFT_UID_RANGE: &str = "openshift.io/sa.scc.uid-range";

/// The file a restore to a directory lists its manifests in, in the order
/// to apply them.
pub const ORDER_FILE: &str = "restore-order.txt";

struct Exec<'a, F> {
    plan: &'a RestorePlan,
    target: Target<'a>,
    options: &'a RestoreOptions,
    on_outcome: F,
    totals: Totals,
    warnings: Vec<String>,
    /// Source uid → the uid the target gave the restored object.
    new_uids: HashMap<String, String>,
    namespaces_ready: BTreeSet<String>,
    unestablished: BTreeSet<String>,
    waited: bool,
    /// `restore-order.txt`, written as manifests are.
    order: Option<std::io::BufWriter<std::fs::File>>,
    /// Owner references to set once their owners exist.
    relink: Vec<Relink>,
}

/// Owner references of a created object whose owners come later in the
/// order (pods before their replica sets, as Velero orders them).
struct Relink {
    step: usize,
    source: ObjectKey,
    target: String,
    api_version: String,
    item: String,
    refs: Vec<Value>,
}

/// Restores `plan` from `source` into `target` and returns every outcome
/// with the report. For large restores prefer [`execute_with`], which hands
/// outcomes over as they happen instead of keeping them.
pub async fn execute<S: ObjectSource + Sync>(
    plan: &RestorePlan,
    source: &S,
    target: Target<'_>,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    let mut collected = RestoreReport::default();
    let report = execute_with(plan, source, target, options, |o: &Outcome| {
        collected.collect(o)
    })
    .await?;
    Ok(RestoreReport {
        outcomes: collected.outcomes,
        ..report
    })
}

/// Restores `plan` from `source` into `target`, calling `on_outcome` for
/// each object as it is done, in plan order (and once more, with
/// [`Action::OwnersLinked`], for an object whose owners were restored after
/// it). Memory stays bounded by the plan and one batch of objects, however
/// many objects there are. Refusals of single objects are reported and the
/// restore goes on; an unreachable server or an unreadable source stops it.
pub async fn execute_with<S, F>(
    plan: &RestorePlan,
    source: &S,
    target: Target<'_>,
    options: &RestoreOptions,
    on_outcome: F,
) -> Result<RestoreReport>
where
    S: ObjectSource + Sync,
    F: FnMut(&Outcome) + Send,
{
    let order = match target {
        Target::Dir(dir) => Some(std::io::BufWriter::new(dir.create(ORDER_FILE)?)),
        _ => None,
    };
    let mut exec = Exec {
        plan,
        target,
        options,
        on_outcome,
        totals: Totals::default(),
        warnings: Vec::new(),
        new_uids: HashMap::new(),
        namespaces_ready: BTreeSet::new(),
        unestablished: BTreeSet::new(),
        waited: false,
        order,
        relink: Vec::new(),
    };
    let mut index = 0;
    for batch in plan.steps.chunks(FETCH_BATCH) {
        let entries: Vec<&ObjectEntry> = batch.iter().map(|s| &s.entry).collect();
        let objects = source.fetch_many(&entries).await?;
        if objects.len() != batch.len() {
            return Err(Error::Store(
                format!(
                    "the source returned {} objects for {} asked",
                    objects.len(),
                    batch.len()
                )
                .into(),
            ));
        }
        for (step, bytes) in batch.iter().zip(objects) {
            let outcome = exec.step(index, step, bytes).await?;
            exec.emit(&outcome);
            index += 1;
        }
    }
    if let Target::Cluster(cluster) = target {
        exec.relink_owners(cluster).await?;
    }
    if let (Some(mut order), Target::Dir(dir)) = (exec.order.take(), target) {
        let file = dir.root().join(ORDER_FILE);
        order.flush().map_err(|e| Error::io("write", &file, e))?;
    }
    Ok(RestoreReport {
        outcomes: Vec::new(),
        totals: exec.totals,
        warnings: exec.warnings,
    })
}

fn status_wanted(list: &[String], gr: &GroupResource) -> bool {
    list.iter()
        .any(|r| r == "*" || *r == gr.to_string() || *r == gr.resource)
}

impl<F: FnMut(&Outcome) + Send> Exec<'_, F> {
    fn emit(&mut self, outcome: &Outcome) {
        self.totals.add(&outcome.action);
        (self.on_outcome)(outcome);
    }

    async fn step(&mut self, index: usize, step: &Step, bytes: Vec<u8>) -> Result<Outcome> {
        let gr = &step.entry.key.resource;
        let mut outcome = Outcome {
            step: index,
            source: step.entry.key.clone(),
            target: step.target_label(),
            api_version: gr.api_version(&step.entry.version),
            action: Action::WouldCreate,
            sanitized: Vec::new(),
        };
        if !is_crd(gr) && !self.waited {
            self.waited = true;
            self.wait_for_crds().await?;
        }
        if self.unestablished.contains(&gr.to_string()) {
            outcome.action = Action::Failed(format!("its CRD {gr} is not Established"));
            return Ok(outcome);
        }
        // One bad object (stored before imports checked names and depth)
        // is named and skipped; the restore goes on with the others. Only
        // what no target can take is checked here (a control character
        // would also split restore-order.txt): a cluster applies its own
        // rules for each kind.
        let target_key = ObjectKey {
            resource: gr.clone(),
            namespace: step.target_namespace.clone(),
            name: step.target_name.clone(),
        };
        if let Err(why) = [&target_key.name]
            .into_iter()
            .chain(&target_key.namespace)
            .try_for_each(|n| names::check_name(n, names::NameRule::PathSegment))
        {
            outcome.action = Action::Failed(format!("{why}, which no Kubernetes server accepts"));
            return Ok(outcome);
        }
        let mut object: Value = match serde_json::from_slice(&bytes) {
            Ok(v @ Value::Object(_)) if v.get("metadata").is_some_and(Value::is_object) => v,
            Ok(_) => {
                outcome.action = Action::Failed("the stored object has no metadata".into());
                return Ok(outcome);
            }
            Err(e) => {
                outcome.action = Action::Failed(format!("the stored object is not valid: {e}"));
                return Ok(outcome);
            }
        };
        if let Some(ns) = &step.target_namespace {
            object["metadata"]["namespace"] = json!(ns);
        }
        object["metadata"]["name"] = json!(step.target_name);
        let keep_status = status_wanted(&self.options.restore_status, gr);
        let sanitize_options = SanitizeOptions {
            keep_status,
            preserve_node_ports: self.options.preserve_node_ports,
            namespace_mapping: &self.options.namespace_mapping,
        };
        let sanitized = sanitize(gr, &mut object, &sanitize_options);
        outcome.sanitized = sanitized.notes;
        if let Some(why) = sanitized.skip {
            outcome.action = Action::Skipped(why);
            return Ok(outcome);
        }
        let later_owners = self.owner_references(&mut object, &mut outcome.sanitized);
        if is_namespace(gr)
            && object
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(OPENSHIFT_UID_RANGE))
                .is_some()
        {
            outcome.sanitized.push(
                "kept openshift.io/sa.scc.* annotations (UID range of the volume data)".into(),
            );
        }
        outcome.action = match self.target {
            Target::DryRun => Action::WouldCreate,
            Target::Dir(dir) => {
                let path = layout::file_path(&target_key, &step.entry.version, true);
                let json = serde_json::to_vec(&object).map_err(|e| Error::bad_object(&path, e))?;
                dir.write_path(&path, &json)?;
                if let Some(order) = self.order.as_mut() {
                    writeln!(order, "{path}")
                        .map_err(|e| Error::io("write", dir.root().join(ORDER_FILE), e))?;
                }
                Action::Written(path)
            }
            Target::Cluster(cluster) => {
                let Some(r) = step.resource.clone() else {
                    outcome.action = Action::Failed("the target cluster does not serve it".into());
                    return Ok(outcome);
                };
                let status = if keep_status {
                    object.as_object_mut().and_then(|o| o.remove("status"))
                } else {
                    None
                };
                let action = self.create(cluster, &r, step, object, status).await?;
                if action == Action::Created && !later_owners.is_empty() {
                    let item = format!(
                        "{}/{}",
                        r.collection_path(step.target_namespace.as_deref()),
                        step.target_name
                    );
                    self.relink.push(Relink {
                        step: index,
                        source: outcome.source.clone(),
                        target: outcome.target.clone(),
                        api_version: outcome.api_version.clone(),
                        item,
                        refs: later_owners,
                    });
                }
                action
            }
        };
        Ok(outcome)
    }

    /// Keeps owner references to objects restored before this one (with the
    /// owner's new uid) and drops the rest, since a reference to a uid the
    /// target does not have makes the garbage collector delete the object.
    /// References to owners restored later are returned, to be set once the
    /// owners exist ([`Self::relink_owners`]).
    fn owner_references(&self, object: &mut Value, notes: &mut Vec<String>) -> Vec<Value> {
        let mut later = Vec::new();
        let Some(refs) = object
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        else {
            return later;
        };
        let mut kept = Vec::new();
        for mut r in std::mem::take(refs) {
            let uid = r
                .get("uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let label = format!(
                "{} {}",
                r.get("kind").and_then(Value::as_str).unwrap_or_default(),
                r.get("name").and_then(Value::as_str).unwrap_or_default()
            );
            if let Some(new) = self.new_uids.get(&uid) {
                r["uid"] = json!(new);
                notes.push(format!(
                    "ownerReferences[{label}].uid -> the restored owner's"
                ));
                kept.push(r);
            } else if self.plan.uids.contains(&uid) && !matches!(self.target, Target::Dir(_)) {
                notes.push(format!(
                    "ownerReferences[{label}] set once the owner is restored"
                ));
                later.push(r);
            } else if self.plan.uids.contains(&uid) {
                // Manifests applied later give the owner a new uid this
                // restore cannot know; a stale uid would get the object
                // collected, so the owner's controller adopts it instead.
                notes.push(format!(
                    "ownerReferences[{label}] dropped: the owner gets a new uid when applied"
                ));
            } else {
                notes.push(format!(
                    "ownerReferences[{label}] dropped: the owner is not restored"
                ));
            }
        }
        if kept.is_empty() {
            object["metadata"]
                .as_object_mut()
                .map(|m| m.remove("ownerReferences"));
        } else {
            object["metadata"]["ownerReferences"] = Value::Array(kept);
        }
        later
    }

    /// Sets the owner references of objects restored before their owners,
    /// pointing at the owners' new uids. A reference is not added where the
    /// object names that owner already or has been adopted by another
    /// controller meanwhile (only one controller reference is allowed).
    async fn relink_owners(&mut self, cluster: &Cluster) -> Result<()> {
        for link in std::mem::take(&mut self.relink) {
            let refs: Vec<Value> = link
                .refs
                .into_iter()
                .filter_map(|mut r| {
                    let new = self.new_uids.get(r.get("uid")?.as_str()?)?.clone();
                    r["uid"] = json!(new);
                    Some(r)
                })
                .collect();
            let mut notes = Vec::new();
            for _attempt in 0..2 {
                let Some(mut current) = cluster.get(&link.item).await? else {
                    break;
                };
                let existing: Vec<Value> = current
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let same = |a: &Value, b: &Value| a["kind"] == b["kind"] && a["name"] == b["name"];
                let controlled = existing.iter().any(|r| r["controller"] == true);
                let added: Vec<Value> = refs
                    .iter()
                    .filter(|r| {
                        let named = existing.iter().any(|e| same(e, r));
                        !(named || (controlled && r["controller"] == true))
                    })
                    .cloned()
                    .collect();
                if added.is_empty() {
                    break;
                }
                let labels: Vec<String> = added
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {}",
                            r["kind"].as_str().unwrap_or_default(),
                            r["name"].as_str().unwrap_or_default()
                        )
                    })
                    .collect();
                current["metadata"]["ownerReferences"] =
                    Value::Array(existing.into_iter().chain(added).collect());
                match cluster.replace(&link.item, &current).await {
                    Ok(_) => {
                        notes.push(format!(
                            "ownerReferences[{}] set to the restored owner",
                            labels.join(", ")
                        ));
                        break;
                    }
                    Err(Error::Api { code: 409, .. }) => continue,
                    Err(e @ Error::Api { .. }) => {
                        self.warnings
                            .push(format!("owner references of {} not set: {e}", link.item));
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if !notes.is_empty() {
                let outcome = Outcome {
                    step: link.step,
                    source: link.source,
                    target: link.target,
                    api_version: link.api_version,
                    action: Action::OwnersLinked,
                    sanitized: notes,
                };
                self.emit(&outcome);
            }
        }
        Ok(())
    }

    /// Waits for every planned CRD whose custom resources follow.
    async fn wait_for_crds(&mut self) -> Result<()> {
        let Target::Cluster(cluster) = self.target else {
            return Ok(());
        };
        let names: Vec<String> = self
            .plan
            .steps
            .iter()
            .filter(|s| s.wait_established)
            .map(|s| s.target_name.clone())
            .collect();
        for name in names {
            let started = Instant::now();
            let path = format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}");
            loop {
                let established = cluster.get(&path).await?.is_some_and(|crd| {
                    crd.pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                });
                if established {
                    break;
                }
                if started.elapsed() >= self.options.crd_timeout {
                    let e = Error::CrdNotEstablished {
                        name: name.clone(),
                        seconds: self.options.crd_timeout.as_secs(),
                    };
                    self.warnings.push(e.to_string());
                    self.unestablished.insert(name.clone());
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    async fn create(
        &mut self,
        cluster: &Cluster,
        r: &ResourceInfo,
        step: &Step,
        object: Value,
        status: Option<Value>,
    ) -> Result<Action> {
        let ns = step.target_namespace.as_deref();
        if let Some(ns) = ns {
            self.ensure_namespace(cluster, ns).await?;
        }
        let collection = r.collection_path(ns);
        let item = format!("{collection}/{}", step.target_name);
        if is_namespace(&r.group_resource()) {
            self.check_uid_range(cluster, &item, &object).await?;
        }
        match cluster.create(&collection, &object).await {
            Ok(created) => {
                let new_uid = created
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.new_uids
                    .insert(step.entry.attrs.uid.clone(), new_uid.to_string());
                if is_namespace(&r.group_resource()) {
                    self.namespaces_ready.insert(step.target_name.clone());
                }
                if let Some(status) =
                    status.filter(|_| r.subresources.iter().any(|s| s == "status"))
                {
                    let mut with_status = created;
                    with_status["status"] = status;
                    if let Err(e) = cluster
                        .replace(&format!("{item}/status"), &with_status)
                        .await
                    {
                        return Ok(Action::Failed(format!(
                            "created, but its status was refused: {e}"
                        )));
                    }
                }
                Ok(Action::Created)
            }
            Err(Error::Api { code: 409, .. }) => self.existing(cluster, r, &item, object).await,
            Err(e @ Error::Api { .. }) => Ok(Action::Failed(e.to_string())),
            Err(e) => Err(e),
        }
    }

    /// Policy `none` compares and leaves alone; `update` replaces the
    /// content, keeping what the target's server owns, and retries once if
    /// the object changed meanwhile.
    async fn existing(
        &mut self,
        cluster: &Cluster,
        r: &ResourceInfo,
        item: &str,
        desired: Value,
    ) -> Result<Action> {
        let gr = r.group_resource();
        if is_namespace(&gr) {
            self.namespaces_ready.insert(
                desired["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        for _attempt in 0..2 {
            let Some(current) = cluster.get(item).await? else {
                return Ok(Action::Failed(
                    "it existed when created, and was gone when read".into(),
                ));
            };
            let mut theirs = current.clone();
            let options = SanitizeOptions {
                keep_status: false,
                preserve_node_ports: self.options.preserve_node_ports,
                namespace_mapping: &self.options.namespace_mapping,
            };
            sanitize(&gr, &mut theirs, &options);
            if comparable(&theirs) == comparable(&desired) {
                return Ok(Action::Unchanged);
            }
            if self.options.existing == ExistingPolicy::None {
                return Ok(Action::LeftAlone);
            }
            let merged = merge(current, &desired);
            match cluster.replace(item, &merged).await {
                Ok(_) => return Ok(Action::Updated),
                Err(Error::Api { code: 409, .. }) => continue,
                Err(e @ Error::Api { .. }) => return Ok(Action::Failed(e.to_string())),
                Err(e) => return Err(e),
            }
        }
        Ok(Action::Failed(
            "it kept changing while being updated (409 Conflict twice)".into(),
        ))
    }

    /// Creates a namespace that is not in the backup (Velero does too), and
    /// says so.
    async fn ensure_namespace(&mut self, cluster: &Cluster, ns: &str) -> Result<()> {
        if self.namespaces_ready.contains(ns) {
            return Ok(());
        }
        if cluster
            .get(&format!("/api/v1/namespaces/{ns}"))
            .await?
            .is_none()
        {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match cluster.create("/api/v1/namespaces", &body).await {
                Ok(_) => self.warnings.push(format!(
                    "namespace {ns} was not in the backup and was created empty"
                )),
                Err(Error::Api { code: 409, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.namespaces_ready.insert(ns.to_string());
        Ok(())
    }

    /// OpenShift gives each namespace a UID range; files in restored volumes
    /// belong to the backed-up range, so a target namespace with another
    /// range would leave them owned by strangers.
    async fn check_uid_range(
        &mut self,
        cluster: &Cluster,
        item: &str,
        desired: &Value,
    ) -> Result<()> {
        let Some(wanted) = desired
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(OPENSHIFT_UID_RANGE))
            .and_then(Value::as_str)
        else {
            return Ok(());
        };
        let Some(current) = cluster.get(item).await? else {
            return Ok(());
        };
        let have = current
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(OPENSHIFT_UID_RANGE))
            .and_then(Value::as_str);
        if have.is_some_and(|h| h != wanted) {
            let name = desired["metadata"]["name"].as_str().unwrap_or_default();
            self.warnings.push(format!(
                "namespace {name} exists with UID range {} but the backup's is {wanted}: files restored into its volumes keep the backup's owners; \
                 shift them from {wanted} to {} when restoring the volumes, or restore into a new namespace",
                have.unwrap_or_default(),
                have.unwrap_or_default()
            ));
        }
        Ok(())
    }
}

/// The part of an object that says what it is, not what the server made of
/// it: labels, annotations and every top-level field but metadata and status.
fn comparable(v: &Value) -> Value {
    let mut out = v.clone();
    if let Some(o) = out.as_object_mut() {
        o.remove("status");
        let meta = o.remove("metadata").unwrap_or(Value::Null);
        o.insert(
            "labels".into(),
            meta.get("labels").cloned().unwrap_or(Value::Null),
        );
        o.insert(
            "annotations".into(),
            meta.get("annotations").cloned().unwrap_or(Value::Null),
        );
    }
    out
}

/// `current` with the backed-up content: every top-level field but metadata
/// and status replaced, labels and annotations replaced, the rest of the
/// metadata (resourceVersion for the conflict check) kept.
fn merge(mut current: Value, desired: &Value) -> Value {
    let (Some(cur), Some(want)) = (current.as_object_mut(), desired.as_object()) else {
        return current;
    };
    cur.retain(|k, _| k == "metadata" || k == "status" || want.contains_key(k));
    for (k, v) in want {
        if k != "metadata" && k != "status" {
            cur.insert(k.clone(), v.clone());
        }
    }
    for field in ["labels", "annotations"] {
        match desired.pointer(&format!("/metadata/{field}")) {
            Some(v) => current["metadata"][field] = v.clone(),
            None => {
                current["metadata"].as_object_mut().map(|m| m.remove(field));
            }
        }
    }
    current
}
