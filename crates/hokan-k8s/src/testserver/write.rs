//! The test server's write path, with the real server's checks: create
//! (201, 409 AlreadyExists, a namespace that must exist, no resourceVersion),
//! update (409 Conflict on a stale resourceVersion, 422 without one), the
//! `status` subresource, server-owned metadata and generation, and objects
//! seeded as if created earlier. Patches (`patch.rs`) and deletions
//! (`delete.rs`) end in [`State::commit`] and `State::finish_deletion`.

use serde_json::{Value, json};

use super::crd::CRD;
use super::state::{ApiError, Key, State, Stored, qualified};
use crate::discovery::ResourceInfo;
use crate::object::GroupResource;

pub fn is(r: &ResourceInfo, group: &str, resource: &str) -> bool {
    r.group == group && r.resource == resource
}

impl State {
    /// `POST` to a collection.
    pub fn create(
        &mut self,
        r: &ResourceInfo,
        ns: &str,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        check_type_meta(r, &body)?;
        let meta = body
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::new(400, "BadRequest", "the object has no metadata"))?;
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let prefix = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    r,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
            name = format!("{prefix}{:05x}", self.uids + 1);
            meta.insert("name".into(), json!(name));
        }
        if r.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                    return Err(ApiError::new(
                        400,
                        "BadRequest",
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
            if !self.namespace_exists(ns) {
                return Err(ApiError::namespace_not_found(ns));
            }
            if self.namespace_terminating(ns) {
                return Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        qualified(r)
                    ),
                ));
            }
        } else {
            meta.remove("namespace");
        }
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
        {
            return Err(ApiError::new(
                500,
                "InternalError",
                "Internal error occurred: resourceVersion should not be set on objects to be created",
            ));
        }
        let key = (
            if r.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.clone(),
        );
        if self
            .objects
            .get(&r.group_resource())
            .is_some_and(|m| m.contains_key(&key))
        {
            let mut e = ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", qualified(r)),
            );
            e.details = json!({"name": name, "group": r.group, "kind": r.resource});
            return Err(e);
        }
        // The server owns these fields: whatever the client sent is replaced.
        let uid = self.next_uid();
        let rv = self.next_rv();
        meta.insert("uid".into(), json!(uid));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("creationTimestamp".into(), json!(now()));
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("selfLink");
        // Creating through the main resource never sets status where a
        // status subresource exists.
        if r.subresources.iter().any(|s| s == "status")
            && let Some(o) = body.as_object_mut()
        {
            o.remove("status");
        }
        if is(r, "", "services") {
            self.allocate_service(r, &name, &mut body, None)?;
        }
        if is(r, "", "secrets") {
            super::services::merge_string_data(&mut body);
        }
        if is(r, "", "namespaces") {
            body["status"] = json!({"phase": "Active"});
        }
        if is(r, CRD.0, CRD.1) {
            self.register_crd(&name, &mut body);
        }
        self.put(&r.group_resource(), key.clone(), body);
        let stored = &self.objects[&r.group_resource()][&key];
        Ok(self.served(r, stored))
    }

    /// `PUT` of an object, or of its `status` subresource.
    pub fn update(
        &mut self,
        r: &ResourceInfo,
        ns: &str,
        name: &str,
        body: Value,
        status: bool,
    ) -> Result<Value, ApiError> {
        check_type_meta(r, &body)?;
        let key = key_of(r, ns, name);
        let existing = self.existing(r, &key)?;
        let body_name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if body_name != name {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                ),
            ));
        }
        let sent_rv = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if sent_rv.is_empty() {
            return Err(ApiError::invalid(
                r,
                name,
                "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update",
            ));
        }
        self.commit(r, &key, existing, body, status)
    }

    /// The stored object under `key`, or 404.
    pub fn existing(&self, r: &ResourceInfo, key: &Key) -> Result<Value, ApiError> {
        self.objects
            .get(&r.group_resource())
            .and_then(|m| m.get(key))
            .map(Stored::value)
            .ok_or_else(|| ApiError::not_found(r, &key.1))
    }

    /// Stores `body` as the new version of `existing` (an update or a
    /// patch's result): 409 when `body` names another resourceVersion; the
    /// server's fields kept; status only through the subresource (and only
    /// status there); generation bumped when anything but metadata and
    /// status changed; the object deleted once the last finalizer of an
    /// object being deleted is removed.
    pub fn commit(
        &mut self,
        r: &ResourceInfo,
        key: &Key,
        existing: Value,
        body: Value,
        status: bool,
    ) -> Result<Value, ApiError> {
        let name = key.1.as_str();
        let sent_rv = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !sent_rv.is_empty()
            && existing
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                != Some(sent_rv)
        {
            return Err(conflict(r, name));
        }
        let has_status = r.subresources.iter().any(|s| s == "status");
        let mut updated = if status {
            let mut u = existing.clone();
            u["status"] = body.get("status").cloned().unwrap_or(Value::Null);
            u
        } else {
            let mut u = body;
            if has_status {
                // The main resource ignores status; only /status changes it.
                match existing.get("status") {
                    Some(s) => u["status"] = s.clone(),
                    None => {
                        u.as_object_mut().map(|o| o.remove("status"));
                    }
                }
            }
            check_finalizers(r, name, &existing, &u)?;
            for field in SERVER_FIELDS {
                match existing["metadata"].get(field) {
                    Some(v) => u["metadata"][field] = v.clone(),
                    None => {
                        u["metadata"].as_object_mut().map(|m| m.remove(field));
                    }
                }
            }
            u
        };
        if existing["metadata"].get("generation").is_some() {
            let generation = existing["metadata"]["generation"].as_i64().unwrap_or(1);
            let changed = without_meta(&updated) != without_meta(&existing);
            updated["metadata"]["generation"] =
                json!(if changed { generation + 1 } else { generation });
        }
        if is(r, "", "services") && !status {
            self.allocate_service(r, name, &mut updated, Some(&existing))?;
        }
        if is(r, "", "secrets") {
            super::services::merge_string_data(&mut updated);
        }
        // A write that changes nothing is not stored: same version, no event.
        updated["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"].clone();
        if updated == existing {
            let mut served = existing;
            super::state::set_type_meta(&mut served, r);
            return Ok(served);
        }
        updated["metadata"]["resourceVersion"] = json!(self.next_rv().to_string());
        self.put(&r.group_resource(), key.clone(), updated);
        let stored = &self.objects[&r.group_resource()][key];
        let served = self.served(r, stored);
        // An object being deleted goes once its last finalizer is removed.
        // (A namespace goes once empty, which the collector checks.)
        if served["metadata"].get("deletionTimestamp").is_some() && finalizers(&served).is_empty() {
            if !is(r, "", "namespaces") {
                self.finish_deletion(&r.group_resource(), key);
            }
            self.collect_garbage();
        }
        Ok(served)
    }

    /// Stores an object as if it had been created and then updated by
    /// controllers: server fields are filled in, status is kept, nothing is
    /// validated. For fixtures and generated data.
    pub fn seed(&mut self, r: &ResourceInfo, mut body: Value) {
        let uid = self.next_uid();
        let rv = self.next_rv();
        let meta = &mut body["metadata"];
        meta["uid"] = json!(uid);
        meta["resourceVersion"] = json!(rv.to_string());
        if meta.get("creationTimestamp").is_none_or(Value::is_null) {
            meta["creationTimestamp"] = json!(now());
        }
        if let Some(m) = meta.as_object_mut() {
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            m.remove("selfLink");
            if !r.namespaced {
                m.remove("namespace");
            }
        }
        let ns = if r.namespaced {
            meta["namespace"].as_str().unwrap_or_default().to_string()
        } else {
            String::new()
        };
        let name = meta["name"].as_str().unwrap_or_default().to_string();
        if is(r, CRD.0, CRD.1) {
            self.register_crd(&name, &mut body);
        }
        if is(r, "", "services") {
            self.note_service(&body);
        }
        self.put(&r.group_resource(), (ns, name), body);
    }
}

impl State {
    fn namespace_terminating(&self, ns: &str) -> bool {
        self.objects
            .get(&GroupResource::new("", "namespaces"))
            .and_then(|m| m.get(&(String::new(), ns.to_string())))
            .is_some_and(|s| s.deleting)
    }
}

/// Metadata only the server sets: kept from the stored object on update.
const SERVER_FIELDS: [&str; 5] = [
    "uid",
    "creationTimestamp",
    "namespace",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// `(namespace, name)` of an object of `r`.
pub fn key_of(r: &ResourceInfo, ns: &str, name: &str) -> Key {
    let ns = if r.namespaced { ns } else { "" };
    (ns.to_string(), name.to_string())
}

/// The object without metadata and status: what generation counts.
fn without_meta(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    v
}

/// `metadata.finalizers`.
pub fn finalizers(v: &Value) -> Vec<String> {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// No finalizer may be added to an object being deleted.
fn check_finalizers(
    r: &ResourceInfo,
    name: &str,
    existing: &Value,
    new: &Value,
) -> Result<(), ApiError> {
    if existing["metadata"].get("deletionTimestamp").is_none() {
        return Ok(());
    }
    let old = finalizers(existing);
    if finalizers(new).iter().any(|f| !old.contains(f)) {
        return Err(ApiError::invalid(
            r,
            name,
            "metadata.finalizers",
            "Forbidden: no new finalizers can be added if the object is being deleted",
        ));
    }
    Ok(())
}

/// 409 Conflict on a stale resourceVersion, worded as the real server.
pub fn conflict(r: &ResourceInfo, name: &str) -> ApiError {
    let mut e = ApiError::new(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            qualified(r)
        ),
    );
    e.details = json!({"name": name, "group": r.group, "kind": r.resource});
    e
}

/// The body's `apiVersion` and `kind`, when given, must be the endpoint's.
fn check_type_meta(r: &ResourceInfo, body: &Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::new(
            400,
            "BadRequest",
            "the request body is not a JSON object",
        ));
    }
    if let Some(v) = body.get("apiVersion").and_then(Value::as_str)
        && v != r.api_version()
    {
        return Err(ApiError::new(
            400,
            "BadRequest",
            format!(
                "the API version in the data ({v}) does not match the expected API version ({})",
                r.api_version()
            ),
        ));
    }
    if let Some(k) = body.get("kind").and_then(Value::as_str)
        && k != r.kind
    {
        return Err(ApiError::new(
            400,
            "BadRequest",
            format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                r.kind
            ),
        ));
    }
    Ok(())
}

pub(super) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
