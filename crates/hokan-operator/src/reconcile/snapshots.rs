//! A policy's CSI snapshots, on their own rhythm beside the policy's
//! schedule ("snapshot + copy", SPP's SLA tiers).
//!
//! Each round, for each claim the policy selects ([`selected_claims`]):
//! the claim's storage class names its CSI driver, and the driver's
//! `VolumeSnapshotClass` (the one given, the driver's default, or its only
//! one) makes it a snapshot claim; with none it falls back to the node
//! agent, and its status says why. For a snapshot claim the round:
//!
//! 1. looks at its `VolumeSnapshot`s (found by the policy's uid and the
//!    claim's label): one with the driver's error, or not ready within the
//!    timeout, is deleted and its reason kept in the claim's status;
//! 2. takes a new one when the interval has passed since the last one
//!    was started (the operator's clock, recorded in an annotation: the
//!    server's creation times are not the schedule's), the claims due at
//!    once, between the hooks of the pods that mount them ([`super::hooks`]);
//! 3. moves the claim's copy on ([`super::copies`]), or starts one from
//!    the newest ready snapshot when the copy interval has passed and
//!    fewer than `parallel` copies of the policy run;
//! 4. deletes the ready snapshots no retention rule keeps (never the one a
//!    copy is reading).
//!
//! The cluster's objects are the state: a round that runs twice, or after
//! a restart, finds what the last one made. The claims' times in status
//! only say when the next snapshot and copy are due.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Resource, ResourceExt};

use super::copies::{CopyStep, advance_copy, copy_points};
use super::hooks::Due;
use super::volumes::{selected_namespaces, selected_pods};
use super::{Context, Error};
use crate::api::common::selector_string;
use crate::api::policy::{BackupPolicy, VolumeSource};
use crate::api::repository::Repository;
use crate::api::snapshots::{ClaimMode, ClaimStatus, SnapshotPoint};
use crate::clock::{from_time, to_time};
use crate::convert::Invalid;
use crate::jobs::{RUN_LABEL, WORK_LABEL};
use crate::snapshot_jobs::{
    CLAIM_LABEL, CopySource, POLICY_UID_LABEL, SOURCE_ANNOTATION, TAKEN_ANNOTATION, VOLUME_COPY,
    claim_label, copy_name, snapshot_resource,
};

/// How often a round looks again while something is under way.
pub const BUSY_POLL: Duration = Duration::from_secs(2);

/// The policy's rhythms, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Rhythms {
    /// Between snapshots of a claim.
    pub snapshot_every: TimeDelta,
    /// How long a snapshot may take to become ready.
    pub ready_timeout: TimeDelta,
    /// Keep the newest N ready snapshots.
    pub keep_last: Option<usize>,
    /// Keep the snapshots younger than this.
    pub max_age: Option<TimeDelta>,
    /// Between copies of a claim (none: no copies).
    pub copy_every: Option<TimeDelta>,
    /// Copies of the policy at once.
    pub parallel: usize,
    /// The snapshot class given.
    pub class: Option<String>,
}

fn interval(text: &str, at: &str) -> Result<TimeDelta, Invalid> {
    let d = hokan_repo::parse_duration(text).map_err(|e| Invalid::new(at, e))?;
    if d.is_zero() {
        return Err(Invalid::new(
            at,
            "zero; give a length such as 15m, 4h or 1d",
        ));
    }
    TimeDelta::from_std(d).map_err(|e| Invalid::new(at, e.to_string()))
}

/// The rhythms of `source` (`None` without `snapshots`), or what is wrong.
pub fn rhythms(source: &VolumeSource) -> Result<Option<Rhythms>, Invalid> {
    let Some(s) = &source.snapshots else {
        if source.copies.is_some() {
            return Err(Invalid::new(
                "spec.volumes.copies",
                "copies are made from snapshots; give spec.volumes.snapshots too",
            ));
        }
        return Ok(None);
    };
    let at = "spec.volumes.snapshots";
    let r = &s.retention;
    if r.keep_last.is_none() && r.max_age.is_none() {
        return Err(Invalid::new(
            format!("{at}.retention"),
            "keeps nothing; give keepLast, maxAge or both",
        ));
    }
    let copies = source.copies.as_ref();
    if let Some(r) = copies.and_then(|c| c.retention.as_ref()) {
        crate::convert::retention_policy(r, "spec.volumes.copies.retention")?;
    }
    Ok(Some(Rhythms {
        snapshot_every: interval(&s.interval, &format!("{at}.interval"))?,
        ready_timeout: interval(
            s.ready_timeout.as_deref().unwrap_or("10m"),
            &format!("{at}.readyTimeout"),
        )?,
        keep_last: r.keep_last.map(|n| n.max(1) as usize),
        max_age: r
            .max_age
            .as_deref()
            .map(|m| interval(m, &format!("{at}.retention.maxAge")))
            .transpose()?,
        copy_every: copies
            .map(|c| interval(&c.interval, "spec.volumes.copies.interval"))
            .transpose()?,
        parallel: copies.and_then(|c| c.parallel).unwrap_or(2).max(1) as usize,
        class: s.volume_snapshot_class_name.clone(),
    }))
}

/// The claims `source` selects for a policy in `ns`: those its claim
/// selector matches, and those the pods of its pod selector mount (as
/// Velero's annotations pick their volumes), in its namespaces.
pub async fn selected_claims(
    ctx: &Context,
    ns: &str,
    source: &VolumeSource,
) -> Result<Result<Vec<PersistentVolumeClaim>, String>, Error> {
    let namespaces = match selected_namespaces(ns, source) {
        Ok(n) => n,
        Err(reason) => return Ok(Err(reason)),
    };
    let claims = Api::<PersistentVolumeClaim>::all(ctx.client.clone());
    let key = |c: &PersistentVolumeClaim| (c.namespace().unwrap_or_default(), c.name_any());
    let mut chosen: BTreeMap<(String, String), PersistentVolumeClaim> = BTreeMap::new();
    if let Some(sel) = &source.claim_selector {
        let params = ListParams::default().labels(&selector_string(sel));
        for c in claims.list(&params).await?.items {
            chosen.insert(key(&c), c);
        }
    }
    if source.selection.pod_selector.is_some() || source.claim_selector.is_none() {
        let mut mounted: BTreeSet<(String, String)> = BTreeSet::new();
        for p in selected_pods(ctx, source).await? {
            if p.labels().contains_key(RUN_LABEL) {
                continue;
            }
            let pod = serde_json::to_value(&p).unwrap_or_default();
            for v in hokan_k8s::volumes::select(&pod, true).picked {
                if let Some(claim) = v.pvc()
                    && !source.exclude_volumes.contains(&v.volume)
                {
                    mounted.insert((v.namespace.clone(), claim.to_string()));
                }
            }
        }
        // The claims the pods mount that the label selector did not bring.
        if mounted.iter().any(|k| !chosen.contains_key(k)) {
            for c in claims.list(&ListParams::default()).await?.items {
                if mounted.contains(&key(&c)) {
                    chosen.insert(key(&c), c);
                }
            }
        }
    }
    Ok(Ok(chosen
        .into_iter()
        .filter(|((claim_ns, _), _)| namespaces.includes(claim_ns))
        .map(|(_, c)| c)
        .collect()))
}

/// A claim's driver and snapshot class, or why it has none (it falls
/// back to the node agent).
pub fn snapshot_class(
    claim: &PersistentVolumeClaim,
    storage_classes: &[StorageClass],
    snapshot_classes: Option<&[DynamicObject]>,
    given: Option<&str>,
) -> Result<(String, String), String> {
    let Some(classes) = snapshot_classes else {
        return Err(
            "the cluster serves no snapshot.storage.k8s.io/v1 API (install the \
                    external-snapshotter's CRDs and controller for CSI snapshots)"
                .into(),
        );
    };
    let Some(sc_name) = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
    else {
        return Err("the claim names no storage class, so no CSI driver to snapshot it".into());
    };
    let Some(sc) = storage_classes.iter().find(|s| s.name_any() == sc_name) else {
        return Err(format!("its storage class {sc_name} does not exist"));
    };
    let driver = sc.provisioner.clone();
    let of_driver: Vec<&DynamicObject> = classes
        .iter()
        .filter(|c| c.data["driver"] == driver.as_str())
        .collect();
    if let Some(g) = given {
        return match of_driver.iter().find(|c| c.name_any() == g) {
            Some(_) => Ok((driver, g.to_string())),
            None => Err(format!(
                "VolumeSnapshotClass {g} is not one of driver {driver} (storage class {sc_name})"
            )),
        };
    }
    let default = of_driver.iter().find(|c| {
        c.annotations()
            .get("snapshot.storage.kubernetes.io/is-default-class")
            .is_some_and(|v| v == "true")
    });
    match (default, of_driver.as_slice()) {
        (Some(c), _) | (None, [c]) => Ok((driver, c.name_any())),
        (None, []) => Err(format!(
            "no VolumeSnapshotClass for driver {driver} (storage class {sc_name})"
        )),
        (None, _) => Err(format!(
            "driver {driver} has several VolumeSnapshotClasses and none is the default; \
             name one in spec.volumes.snapshots.volumeSnapshotClassName"
        )),
    }
}

/// A `VolumeSnapshot` of a claim as a round reads it.
#[derive(Clone, Debug)]
pub struct Taken {
    /// Its name.
    pub name: String,
    /// When the operator took it.
    pub taken: Option<DateTime<Utc>>,
    /// Ready to restore or copy from.
    pub ready: bool,
    /// The driver's error.
    pub error: Option<String>,
    /// Its content.
    pub content: Option<String>,
}

fn taken(o: &DynamicObject) -> Taken {
    let status = &o.data["status"];
    Taken {
        name: o.name_any(),
        taken: o
            .annotations()
            .get(TAKEN_ANNOTATION)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        ready: status["readyToUse"] == true,
        error: status["error"]["message"].as_str().map(str::to_string),
        content: status["boundVolumeSnapshotContentName"]
            .as_str()
            .map(str::to_string),
    }
}

/// The ready snapshots retention deletes: beyond the newest `keep_last`
/// and older than `max_age` (a snapshot kept by either rule stays), never
/// `reading` (a copy's source). `ready` is newest first.
pub fn expired<'a>(
    ready: &'a [Taken],
    r: &Rhythms,
    now: DateTime<Utc>,
    reading: Option<&str>,
) -> Vec<&'a Taken> {
    ready
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            let by_count = r.keep_last.is_some_and(|n| *i < n);
            let by_age = match (r.max_age, t.taken) {
                (Some(age), Some(at)) => now - at < age,
                _ => false,
            };
            !by_count && !by_age && Some(t.name.as_str()) != reading
        })
        .map(|(_, t)| t)
        .collect()
}

/// One round over the policy's claims; `claims` is the status list,
/// rewritten (claims no longer selected leave it). When to look again, at
/// the latest.
pub async fn round(
    policy: &BackupPolicy,
    ctx: &Context,
    source: &VolumeSource,
    r: &Rhythms,
    claims: &mut Vec<ClaimStatus>,
) -> Result<Option<Duration>, Error> {
    let ns = policy.namespace().unwrap_or_default();
    let repo = Api::<Repository>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&policy.spec.repository)
        .await?;
    let selected = match selected_claims(ctx, &ns, source).await? {
        Ok(c) => c,
        Err(reason) => return Err(Invalid::new("spec.volumes.namespaces", reason).into()),
    };
    let storage = Api::<StorageClass>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let class_api: Api<DynamicObject> = Api::all_with(
        ctx.client.clone(),
        &snapshot_resource("VolumeSnapshotClass"),
    );
    let snapshot_classes = match class_api.list(&ListParams::default()).await {
        Ok(l) => Some(l.items),
        Err(kube::Error::Api(e)) if e.code == 404 => None,
        Err(e) => return Err(e.into()),
    };
    let active = active_copies(ctx, policy).await?;
    let mut old: BTreeMap<(String, String), ClaimStatus> = claims
        .drain(..)
        .map(|c| ((c.namespace.clone(), c.name.clone()), c))
        .collect();
    // 1. Each claim's mode, and its snapshots looked at.
    let mut entries: Vec<(&PersistentVolumeClaim, ClaimStatus, Option<Look>)> = Vec::new();
    for claim in &selected {
        let key = (claim.namespace().unwrap_or_default(), claim.name_any());
        let mut st = old.remove(&key).unwrap_or_else(|| ClaimStatus {
            namespace: key.0.clone(),
            name: key.1.clone(),
            ..Default::default()
        });
        let mut look = None;
        match snapshot_class(
            claim,
            &storage,
            snapshot_classes.as_deref(),
            r.class.as_deref(),
        ) {
            Err(reason) => {
                st.mode = ClaimMode::NodeAgent;
                st.reason = Some(format!(
                    "{reason}: its pods' volumes are read by the node agent on the policy's schedule"
                ));
            }
            Ok((driver, class)) => {
                st.mode = ClaimMode::Snapshot;
                st.reason = Some(format!("VolumeSnapshotClass {class} of driver {driver}"));
                let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
                if bound {
                    look = Some(look_at(ctx, policy, r, claim, class, &mut st).await?);
                }
            }
        }
        entries.push((claim, st, look));
    }
    // 2. The snapshots due, taken at once between their pods' hooks.
    let mut due: Vec<Due> = entries
        .iter_mut()
        .filter_map(|(claim, st, look)| match look {
            Some(l) if l.due => {
                l.busy = true;
                Some(Due {
                    claim,
                    class: &l.class,
                    st,
                })
            }
            _ => None,
        })
        .collect();
    let timeout = r.ready_timeout.to_std().unwrap_or(super::hooks::CUT_WAIT);
    super::hooks::take(ctx, policy, &mut due, timeout).await?;
    // 3. Copies and retention.
    let mut busy = false;
    let mut next: Option<DateTime<Utc>> = None;
    let mut running = active.len();
    for (claim, mut st, look) in entries {
        if let Some(look) = look {
            let step = advance(
                ctx,
                policy,
                repo.as_ref(),
                source,
                r,
                claim,
                look,
                &mut st,
                &active,
                &mut running,
            )
            .await?;
            busy |= step.busy;
            next = earliest(next, step.next);
        }
        claims.push(st);
    }
    Ok(match (busy, next) {
        (true, _) => Some(BUSY_POLL),
        (false, Some(t)) => Some(super::policy::wait_until(ctx.clock.now(), t)),
        (false, None) => None,
    })
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The copies of the policy under way, by name: their snapshots in the
/// policy's namespace and their Jobs.
async fn active_copies(ctx: &Context, policy: &BackupPolicy) -> Result<BTreeSet<String>, Error> {
    let ns = policy.namespace().unwrap_or_default();
    let mine = format!("{POLICY_UID_LABEL}={}", policy.uid().unwrap_or_default());
    let vs: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &ns,
        &snapshot_resource("VolumeSnapshot"),
    );
    let mut names: BTreeSet<String> = match vs.list(&ListParams::default().labels(&mine)).await {
        Ok(l) => l.items.iter().map(|o| o.name_any()).collect(),
        Err(kube::Error::Api(e)) if e.code == 404 => BTreeSet::new(),
        Err(e) => return Err(e.into()),
    };
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let params = ListParams::default().labels(&format!("{mine},{WORK_LABEL}={VOLUME_COPY}"));
    names.extend(jobs.list(&params).await?.items.iter().map(|j| j.name_any()));
    Ok(names)
}

/// What one claim's round asks for.
struct ClaimStep {
    busy: bool,
    next: Option<DateTime<Utc>>,
}

/// A snapshot claim's snapshots, as the round found them.
struct Look {
    class: String,
    /// Its ready snapshots, newest first.
    ready: Vec<Taken>,
    /// Something is under way (a snapshot not ready yet, one just taken).
    busy: bool,
    /// A new snapshot is due.
    due: bool,
}

/// Looks at a claim's snapshots: failed and late ones go (their reason
/// stays); a new one is due when the interval has passed and none is
/// pending.
async fn look_at(
    ctx: &Context,
    policy: &BackupPolicy,
    r: &Rhythms,
    claim: &PersistentVolumeClaim,
    class: String,
    st: &mut ClaimStatus,
) -> Result<Look, Error> {
    let now = ctx.clock.now();
    let ns = claim.namespace().unwrap_or_default();
    let api = snapshot_api(ctx, &ns);
    let labels = format!(
        "{POLICY_UID_LABEL}={},{CLAIM_LABEL}={}",
        policy.uid().unwrap_or_default(),
        claim_label(&claim.name_any())
    );
    let mut list: Vec<Taken> = api
        .list(&ListParams::default().labels(&labels))
        .await?
        .items
        .iter()
        .filter(|o| o.meta().deletion_timestamp.is_none())
        .map(taken)
        .collect();
    list.sort_by_key(|t| std::cmp::Reverse((t.taken, t.name.clone())));
    let mut pending = false;
    for t in list.iter().filter(|t| !t.ready) {
        let late = t.taken.is_some_and(|at| now - at > r.ready_timeout);
        let why = match (&t.error, late) {
            (Some(e), _) => format!("VolumeSnapshot {ns}/{} failed: {e}", t.name),
            (None, true) => format!(
                "VolumeSnapshot {ns}/{} was not ready within {} s (readyTimeout); deleted",
                t.name,
                r.ready_timeout.num_seconds()
            ),
            (None, false) => {
                pending = true;
                continue;
            }
        };
        delete_quietly(&api, &t.name).await?;
        record_error(ctx, st, why);
    }
    list.retain(|t| t.ready);
    let last = st.last_snapshot_time.as_ref().map(from_time);
    let due = !pending && last.is_none_or(|l| now >= l + r.snapshot_every);
    Ok(Look {
        class,
        ready: list,
        busy: pending,
        due,
    })
}

fn snapshot_api(ctx: &Context, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(ctx.client.clone(), ns, &snapshot_resource("VolumeSnapshot"))
}

/// Moves a claim's copy on, or starts one from the newest ready snapshot
/// when the copy interval has passed and fewer than `parallel` copies of
/// the policy run; then applies the snapshots' retention.
#[allow(clippy::too_many_arguments)]
async fn advance(
    ctx: &Context,
    policy: &BackupPolicy,
    repo: Option<&Repository>,
    source: &VolumeSource,
    r: &Rhythms,
    claim: &PersistentVolumeClaim,
    look: Look,
    st: &mut ClaimStatus,
    active: &BTreeSet<String>,
    running: &mut usize,
) -> Result<ClaimStep, Error> {
    let now = ctx.clock.now();
    let ns = claim.namespace().unwrap_or_default();
    let name = claim.name_any();
    let api = snapshot_api(ctx, &ns);
    let Look {
        ready: list,
        mut busy,
        ..
    } = look;
    let mut next =
        Some(st.last_snapshot_time.as_ref().map(from_time).unwrap_or(now) + r.snapshot_every);

    // The copy under way, or a new one from the newest ready snapshot.
    let copy = copy_name(&policy.name_any(), &ns, &name);
    let mut reading = None;
    if let Some(every) = r.copy_every {
        let under_way = active.contains(&copy);
        let last_copy = st.last_copy_time.as_ref().map(from_time);
        let copy_due = last_copy.is_none_or(|l| now >= l + every);
        let start = (!under_way && copy_due && *running < r.parallel)
            .then(|| list.first())
            .flatten();
        if start.is_some() {
            *running += 1;
            st.last_copy_time = Some(to_time(now));
        }
        if under_way || start.is_some() {
            let from = match start {
                Some(t) => {
                    let class = source
                        .copies
                        .as_ref()
                        .and_then(|c| c.storage_class_name.clone());
                    Some(snapshot_source(ctx, claim, &t.name, t.content.as_deref(), class).await?)
                }
                None => None,
            };
            match advance_copy(ctx, policy, repo, &copy, from.as_ref(), st, r.ready_timeout).await?
            {
                CopyStep::Busy(snapshot) => {
                    busy = true;
                    reading = snapshot;
                }
                CopyStep::Done(Ok(id)) => {
                    let points = match repo {
                        Some(repo) => copy_points(ctx, policy, repo, source, &ns, &name, &id).await,
                        None => Err("the policy's Repository is gone".to_string()),
                    };
                    match points {
                        Ok(points) => st.copies = points,
                        Err(e) => record_error(ctx, st, e),
                    }
                }
                CopyStep::Done(Err(reason)) => record_error(ctx, st, reason),
            }
        }
        if let Some(l) = st.last_copy_time.as_ref().map(from_time) {
            next = earliest(next, Some(l + every));
        }
    }

    // Retention, then what status shows.
    let reading = reading
        .as_deref()
        .and_then(|s| s.strip_prefix(&format!("{ns}/")));
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for t in expired(&list, r, now, reading) {
        delete_quietly(&api, &t.name).await?;
        gone.insert(t.name.clone());
    }
    st.snapshots = list
        .iter()
        .filter(|t| !gone.contains(&t.name))
        .map(|t| SnapshotPoint {
            name: t.name.clone(),
            time: t.taken.map(to_time),
            ready_to_use: t.ready,
        })
        .collect();
    Ok(ClaimStep { busy, next })
}

/// What a copy or a restore of snapshot `snapshot` of `claim` (bound to
/// `content`) reads: the handle, driver and class from the content; the
/// volume mode, size (its capacity, else its request) and storage class
/// from the claim, the class overridden by `storage_class`.
pub(super) async fn snapshot_source(
    ctx: &Context,
    claim: &PersistentVolumeClaim,
    snapshot: &str,
    content: Option<&str>,
    storage_class: Option<String>,
) -> Result<CopySource, Error> {
    let contents: Api<DynamicObject> = Api::all_with(
        ctx.client.clone(),
        &snapshot_resource("VolumeSnapshotContent"),
    );
    let content = match content {
        Some(c) => contents.get_opt(c).await?,
        None => None,
    };
    let text = |pointer: &str| {
        content
            .as_ref()
            .and_then(|c| c.data.pointer(pointer)?.as_str())
            .map(str::to_string)
    };
    let spec = claim.spec.clone().unwrap_or_default();
    let size = claim
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .or_else(|| spec.resources.as_ref()?.requests.as_ref()?.get("storage"))
        .map(|q| q.0.clone())
        .unwrap_or_else(|| "1Gi".into());
    Ok(CopySource {
        namespace: claim.namespace().unwrap_or_default(),
        claim: claim.name_any(),
        snapshot: snapshot.to_string(),
        handle: text("/status/snapshotHandle").unwrap_or_default(),
        driver: text("/spec/driver").unwrap_or_default(),
        class: text("/spec/volumeSnapshotClassName"),
        block: spec.volume_mode.as_deref() == Some("Block"),
        storage_class: storage_class.or(spec.storage_class_name),
        size,
    })
}

/// Records a failure in the claim's status (and the operator's log).
pub(super) fn record_error(ctx: &Context, st: &mut ClaimStatus, reason: String) {
    crate::run::log(
        "warn",
        "volume snapshot or copy failed",
        &[
            ("claim", format!("{}/{}", st.namespace, st.name)),
            ("reason", reason.clone()),
        ],
    );
    st.last_error = Some(reason);
    st.last_error_time = Some(to_time(ctx.clock.now()));
}

/// Creates an object, made already (by an earlier round) being fine.
pub(super) async fn create_once<K>(api: &Api<K>, obj: &K) -> Result<(), Error>
where
    K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes an object, gone already being fine.
pub(super) async fn delete_quietly<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The source snapshot named in a copy object's annotation.
pub(super) fn source_of(annotations: &BTreeMap<String, String>) -> Option<String> {
    annotations.get(SOURCE_ANNOTATION).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::snapshots::{CopyRhythm, SnapshotRetention, SnapshotRhythm};
    use chrono::TimeZone;

    fn source() -> VolumeSource {
        VolumeSource {
            snapshots: Some(SnapshotRhythm {
                interval: "4h".into(),
                retention: SnapshotRetention {
                    keep_last: Some(2),
                    max_age: Some("1d".into()),
                },
                ..Default::default()
            }),
            copies: Some(CopyRhythm {
                interval: "1d".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn rhythms_parse_and_what_is_wrong_is_named() {
        let r = rhythms(&source()).unwrap().unwrap();
        assert_eq!(r.snapshot_every, TimeDelta::hours(4));
        assert_eq!(r.copy_every, Some(TimeDelta::days(1)));
        assert_eq!(r.ready_timeout, TimeDelta::minutes(10));
        assert_eq!(r.parallel, 2);
        let mut s = source();
        s.snapshots.as_mut().unwrap().retention = SnapshotRetention::default();
        assert_eq!(
            rhythms(&s).unwrap_err().field,
            "spec.volumes.snapshots.retention"
        );
        let mut s = source();
        s.snapshots.as_mut().unwrap().interval = "4x".into();
        assert_eq!(
            rhythms(&s).unwrap_err().field,
            "spec.volumes.snapshots.interval"
        );
        let mut s = source();
        s.snapshots = None;
        assert_eq!(rhythms(&s).unwrap_err().field, "spec.volumes.copies");
        assert!(rhythms(&VolumeSource::default()).unwrap().is_none());
    }

    #[test]
    fn retention_keeps_by_count_or_age_and_never_the_copys_source() {
        let now = Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
        let at = |h: i64, name: &str| Taken {
            name: name.into(),
            taken: Some(now - TimeDelta::hours(h)),
            ready: true,
            error: None,
            content: None,
        };
        let list = vec![at(1, "a"), at(5, "b"), at(30, "c"), at(40, "d")];
        let r = rhythms(&source()).unwrap().unwrap();
        let names = |v: Vec<&Taken>| v.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(expired(&list, &r, now, None)), ["c", "d"]);
        assert_eq!(names(expired(&list, &r, now, Some("d"))), ["c"]);
        let mut only_count = r.clone();
        only_count.max_age = None;
        only_count.keep_last = Some(1);
        assert_eq!(
            names(expired(&list, &only_count, now, None)),
            ["b", "c", "d"]
        );
    }
}
