//! Deletion as the real server and its garbage collector do it: finalizers
//! (the object stays, with `deletionTimestamp`, until they are gone),
//! `propagationPolicy` Background, Foreground (the `foregroundDeletion`
//! finalizer until dependents with `blockOwnerDeletion` are gone) and Orphan
//! (the `orphan` finalizer while owner references are removed from
//! dependents), dependents deleted once all their owners are gone,
//! `DeleteOptions` preconditions, and namespaces that terminate once empty.
//!
//! The garbage collector runs inside the request that deleted something,
//! until nothing more changes, rather than in the background. The namespace
//! controller does run in the background ([`super::TestServer`] ticks it):
//! a namespace's objects are deleted one tick (100 ms) or two after the
//! namespace, so that a client deleting the namespace and then its objects,
//! as `kubectl delete -k` does, finds them still there, as on a real server.

use serde_json::{Value, json};

use super::crd::CRD;
use super::state::{ApiError, Key, Query, State, Stored};
use super::write::{finalizers, key_of, now};
use crate::discovery::ResourceInfo;
use crate::object::GroupResource;

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// What a `DELETE` asked for, from its body and query.
#[derive(Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl DeleteOptions {
    pub fn parse(body: &[u8], query: &Query) -> Result<Self, ApiError> {
        let bad = |m: String| ApiError::new(400, "BadRequest", m);
        let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(body)
                .map_err(|e| bad(format!("the DeleteOptions body is not valid JSON: {e}")))?
        };
        let policy = v
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .or_else(|| query.get("propagationPolicy"));
        let mut propagation = match policy {
            None | Some("") => None,
            Some("Background") => Some(Propagation::Background),
            Some("Foreground") => Some(Propagation::Foreground),
            Some("Orphan") => Some(Propagation::Orphan),
            Some(other) => {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                    ),
                ));
            }
        };
        let orphan = v
            .get("orphanDependents")
            .and_then(Value::as_bool)
            .or_else(|| query.get("orphanDependents").map(|o| o == "true"));
        if let Some(orphan) = orphan {
            if propagation.is_some() {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Invalid value: \"\": orphanDependents and deletionPropagation cannot be both set",
                ));
            }
            propagation = Some(if orphan {
                Propagation::Orphan
            } else {
                Propagation::Background
            });
        }
        let pre = |k: &str| {
            v.pointer(&format!("/preconditions/{k}"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Ok(DeleteOptions {
            propagation,
            uid: pre("uid"),
            resource_version: pre("resourceVersion"),
        })
    }
}

/// Jobs and replication controllers orphan their pods unless told
/// otherwise, for compatibility (the real server's default); everything
/// else is deleted in the background.
fn default_propagation(gr: &GroupResource) -> Propagation {
    match (gr.group.as_str(), gr.resource.as_str()) {
        ("batch", "jobs") | ("", "replicationcontrollers") => Propagation::Orphan,
        _ => Propagation::Background,
    }
}

fn precondition_failed(what: &str, wanted: &str, actual: &str) -> ApiError {
    ApiError::new(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on the object: Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {actual}"
        ),
    )
}

impl State {
    /// `DELETE` of an object: 200 with the object when it is gone, 202 with
    /// it when finalizers keep it.
    pub fn delete(
        &mut self,
        r: &ResourceInfo,
        ns: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<(u16, Value), ApiError> {
        let key = key_of(r, ns, name);
        let gr = r.group_resource();
        let existing = self.existing(r, &key)?;
        let meta = &existing["metadata"];
        let field = |k: &str| meta[k].as_str().unwrap_or_default().to_string();
        if let Some(uid) = &options.uid
            && *uid != field("uid")
        {
            return Err(precondition_failed("UID", uid, &field("uid")));
        }
        if let Some(rv) = &options.resource_version
            && *rv != field("resourceVersion")
        {
            return Err(precondition_failed(
                "ResourceVersion",
                rv,
                &field("resourceVersion"),
            ));
        }
        let propagation = options
            .propagation
            .unwrap_or_else(|| default_propagation(&gr));
        self.delete_object(&gr, &key, propagation);
        self.collect_garbage();
        match self.objects.get(&gr).and_then(|m| m.get(&key)) {
            Some(stored) => Ok((202, self.served(r, stored))),
            None => {
                let mut last = existing;
                super::state::set_type_meta(&mut last, r);
                Ok((200, last))
            }
        }
    }

    /// `DELETE` of a collection (`deletecollection`): every object the
    /// selectors match, each as a `DELETE` of it would; answers the list of
    /// them as they were.
    pub fn delete_collection(
        &mut self,
        r: &ResourceInfo,
        ns: Option<&str>,
        query: &Query,
        options: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let list = self.list(r, ns, query)?;
        let list: Value = serde_json::from_slice(&list).unwrap_or(Value::Null);
        let gr = r.group_resource();
        let propagation = options
            .propagation
            .unwrap_or_else(|| default_propagation(&gr));
        for item in list["items"].as_array().into_iter().flatten() {
            let name = item["metadata"]["name"].as_str().unwrap_or_default();
            let ns = item["metadata"]["namespace"].as_str().unwrap_or_default();
            self.delete_object(&gr, &key_of(r, ns, name), propagation);
        }
        self.collect_garbage();
        Ok(list)
    }

    /// Deletes the object now, or marks it for deletion when finalizers
    /// (its own or the policy's) must run first.
    fn delete_object(&mut self, gr: &GroupResource, key: &Key, propagation: Propagation) {
        let Some(stored) = self.objects.get(gr).and_then(|m| m.get(key)) else {
            return;
        };
        if stored.deleting {
            return;
        }
        let mut v = stored.value();
        let mut pending = finalizers(&v);
        let policy_finalizer = match propagation {
            Propagation::Background => None,
            Propagation::Foreground => Some(FOREGROUND),
            Propagation::Orphan => Some(ORPHAN),
        };
        if let Some(f) = policy_finalizer
            && !pending.iter().any(|p| p == f)
        {
            pending.push(f.to_string());
        }
        let namespace = gr == &GroupResource::new("", "namespaces");
        if pending.is_empty() && !namespace {
            self.finish_deletion(gr, key);
            return;
        }
        let meta = &mut v["metadata"];
        meta["finalizers"] = json!(pending);
        meta["deletionTimestamp"] = json!(now());
        meta["deletionGracePeriodSeconds"] = json!(0);
        if let Some(g) = meta.get("generation").and_then(Value::as_i64) {
            meta["generation"] = json!(g + 1);
        }
        if pending.is_empty() {
            meta.as_object_mut().map(|m| m.remove("finalizers"));
        }
        if namespace {
            v["status"]["phase"] = json!("Terminating");
        }
        v["metadata"]["resourceVersion"] = json!(self.next_rv().to_string());
        self.put(gr, key.clone(), v);
    }

    /// Removes the object for good, with what that entails for namespaces,
    /// CRDs and services.
    pub(super) fn finish_deletion(&mut self, gr: &GroupResource, key: &Key) {
        let Some(last) = self.remove(gr, key) else {
            return;
        };
        if let Some(uid) = last.pointer("/metadata/uid").and_then(Value::as_str) {
            self.gone_uids.insert(uid.to_string());
        }
        if *gr == GroupResource::new(CRD.0, CRD.1) {
            self.unserve_crd(&key.1);
        }
        if *gr == GroupResource::new("", "services") {
            self.release_service(&last);
        }
    }

    /// Changes a stored object in place (new resourceVersion); finishes its
    /// deletion when that left it without finalizers.
    fn edit(&mut self, gr: &GroupResource, key: &Key, change: impl FnOnce(&mut Value)) {
        let Some(stored) = self.objects.get(gr).and_then(|m| m.get(key)) else {
            return;
        };
        let mut v = stored.value();
        change(&mut v);
        if v["metadata"]
            .get("finalizers")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            v["metadata"]
                .as_object_mut()
                .map(|m| m.remove("finalizers"));
        }
        let done = v["metadata"].get("deletionTimestamp").is_some() && finalizers(&v).is_empty();
        v["metadata"]["resourceVersion"] = json!(self.next_rv().to_string());
        self.put(gr, key.clone(), v);
        if done && *gr != GroupResource::new("", "namespaces") {
            self.finish_deletion(gr, key);
        }
    }

    /// Runs the garbage collector and the namespace finalizer until nothing
    /// more changes.
    pub fn collect_garbage(&mut self) {
        // Each pass removes or edits something, and objects are finite.
        for _ in 0..1000 {
            if !self.collect_once() {
                return;
            }
        }
    }

    fn all_keys(
        &self,
        pick: impl Fn(&GroupResource, &Key, &Stored) -> bool,
    ) -> Vec<(GroupResource, Key)> {
        let mut out = Vec::new();
        for (gr, objects) in &self.objects {
            for (key, stored) in objects {
                if pick(gr, key, stored) {
                    out.push((gr.clone(), key.clone()));
                }
            }
        }
        out
    }

    fn collect_once(&mut self) -> bool {
        // Owners being deleted with a policy finalizer.
        let owners = self.all_keys(|_, _, s| {
            s.deleting && s.finalizers.iter().any(|f| f == FOREGROUND || f == ORPHAN)
        });
        for (gr, key) in owners {
            let Some(owner) = self.objects.get(&gr).and_then(|m| m.get(&key)).cloned() else {
                continue;
            };
            let uid = owner.uid.clone();
            let dependents = self.all_keys(|_, _, s| s.owners.iter().any(|(u, _)| *u == uid));
            if owner.finalizers.iter().any(|f| f == ORPHAN) {
                for (dgr, dkey) in &dependents {
                    self.edit(dgr, dkey, |v| drop_owner_refs(v, |u| u == uid));
                }
                self.edit(&gr, &key, |v| drop_finalizer(v, ORPHAN));
                return true;
            }
            let mut blocking = false;
            let mut changed = false;
            for (dgr, dkey) in &dependents {
                let Some(d) = self.objects.get(dgr).and_then(|m| m.get(dkey)) else {
                    continue;
                };
                blocking |= d.owners.iter().any(|(u, b)| *u == uid && *b);
                if !d.deleting {
                    self.delete_object(dgr, dkey, Propagation::Foreground);
                    changed = true;
                }
            }
            if changed {
                return true;
            }
            if !blocking {
                self.edit(&gr, &key, |v| drop_finalizer(v, FOREGROUND));
                return true;
            }
        }
        // Dependents whose owners are gone.
        let gone = &self.gone_uids;
        let orphans = self.all_keys(|_, _, s| s.owners.iter().any(|(u, _)| gone.contains(u)));
        if !orphans.is_empty() {
            for (gr, key) in orphans {
                let Some(s) = self.objects.get(&gr).and_then(|m| m.get(&key)) else {
                    continue;
                };
                if s.owners.iter().all(|(u, _)| self.gone_uids.contains(u)) {
                    if !s.deleting {
                        self.delete_object(&gr, &key, Propagation::Background);
                    }
                    // Marked: it keeps its references until its finalizers go.
                    continue;
                }
                let gone = self.gone_uids.clone();
                self.edit(&gr, &key, |v| drop_owner_refs(v, |u| gone.contains(u)));
            }
            // Marked objects keep references; only stop when nothing moved.
            let still = self.all_keys(|_, _, s| {
                !s.deleting && s.owners.iter().any(|(u, _)| self.gone_uids.contains(u))
            });
            return !still.is_empty();
        }
        false
    }

    /// The namespace controller's tick: namespaces seen terminating at the
    /// last tick have their objects deleted, and go once empty.
    pub fn finalize_namespaces(&mut self) {
        let ns_gr = GroupResource::new("", "namespaces");
        let terminating: Vec<Key> = self
            .objects
            .get(&ns_gr)
            .into_iter()
            .flatten()
            .filter(|(_, s)| s.deleting)
            .map(|(k, _)| k.clone())
            .collect();
        let seen = std::mem::take(&mut self.terminating_seen);
        self.terminating_seen = terminating.iter().map(|k| k.1.clone()).collect();
        let ripe: Vec<Key> = terminating
            .into_iter()
            .filter(|k| seen.contains(&k.1))
            .collect();
        if ripe.is_empty() {
            return;
        }
        self.terminate_namespaces(&ripe);
        self.collect_garbage();
        // A namespace emptied by the collector goes now too.
        self.terminate_namespaces(&ripe);
    }

    /// Terminating namespaces: their objects are deleted; the namespace
    /// goes once it is empty.
    fn terminate_namespaces(&mut self, terminating: &[Key]) {
        let ns_gr = GroupResource::new("", "namespaces");
        for ns_key in terminating {
            let ns = ns_key.1.clone();
            let inside = self.all_keys(|_, k, _| k.0 == ns);
            let mut left = false;
            for (gr, key) in inside {
                let deleting = self.objects[&gr][&key].deleting;
                if !deleting {
                    self.delete_object(&gr, &key, Propagation::Background);
                }
                left |= self.objects.get(&gr).is_some_and(|m| m.contains_key(&key));
            }
            let own = self.objects.get(&ns_gr).and_then(|m| m.get(ns_key));
            if !left && own.is_some_and(|s| s.finalizers.is_empty()) {
                self.finish_deletion(&ns_gr, ns_key);
            }
        }
    }
}

fn drop_finalizer(v: &mut Value, name: &str) {
    if let Some(list) = v
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    {
        list.retain(|f| f != name);
    }
}

fn drop_owner_refs(v: &mut Value, gone: impl Fn(&str) -> bool) {
    if let Some(refs) = v
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    {
        refs.retain(|r| !gone(r["uid"].as_str().unwrap_or_default()));
        if refs.is_empty() {
            v["metadata"]
                .as_object_mut()
                .map(|m| m.remove("ownerReferences"));
        }
    }
}
