//! The test server's write path, with the real server's checks: create
//! (201, 409 AlreadyExists, a namespace that must exist, no resourceVersion),
//! update (409 Conflict on a stale resourceVersion, 422 without one), the
//! `status` subresource, delete, cluster IP and node port allocation, and
//! CRDs that become Established and start serving their resources.

use serde_json::{Value, json};

use super::state::{ApiError, State, Stored, qualified};
use crate::discovery::ResourceInfo;
use crate::object::GroupResource;

const CRD: (&str, &str) = ("apiextensions.k8s.io", "customresourcedefinitions");

fn is(r: &ResourceInfo, group: &str, resource: &str) -> bool {
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
        if is(r, "", "namespaces") {
            body["status"] = json!({"phase": "Active"});
        }
        if is(r, CRD.0, CRD.1) {
            self.register_crd(&name, &mut body);
        }
        self.objects
            .entry(r.group_resource())
            .or_default()
            .insert(key.clone(), Stored::from_value(body));
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
        let key = (
            if r.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.to_string(),
        );
        let existing = self
            .objects
            .get(&r.group_resource())
            .and_then(|m| m.get(&key))
            .map(Stored::value)
            .ok_or_else(|| ApiError::not_found(r, name))?;
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
        if existing
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            != Some(sent_rv)
        {
            let mut e = ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    qualified(r)
                ),
            );
            e.details = json!({"name": name, "group": r.group, "kind": r.resource});
            return Err(e);
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
            for field in ["uid", "creationTimestamp", "namespace"] {
                match existing["metadata"].get(field) {
                    Some(v) => u["metadata"][field] = v.clone(),
                    None => {
                        u["metadata"].as_object_mut().map(|m| m.remove(field));
                    }
                }
            }
            let generation = existing["metadata"]["generation"].as_i64().unwrap_or(1);
            let changed = u.get("spec") != existing.get("spec");
            u["metadata"]["generation"] = json!(if changed { generation + 1 } else { generation });
            u
        };
        if is(r, "", "services") && !status {
            self.allocate_service(r, name, &mut updated, Some(&existing))?;
        }
        updated["metadata"]["resourceVersion"] = json!(self.next_rv().to_string());
        self.objects
            .entry(r.group_resource())
            .or_default()
            .insert(key.clone(), Stored::from_value(updated));
        let stored = &self.objects[&r.group_resource()][&key];
        Ok(self.served(r, stored))
    }

    /// `DELETE` of an object: answers the object as it was. Deleting a
    /// namespace removes what is in it; deleting a CRD stops serving its
    /// resource. (A real server finalizes both in the background.)
    pub fn delete(&mut self, r: &ResourceInfo, ns: &str, name: &str) -> Result<Value, ApiError> {
        let key = (
            if r.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.to_string(),
        );
        let stored = self
            .objects
            .get_mut(&r.group_resource())
            .and_then(|m| m.remove(&key))
            .ok_or_else(|| ApiError::not_found(r, name))?;
        let value = self.served(r, &stored);
        if is(r, "", "namespaces") {
            for objects in self.objects.values_mut() {
                objects.retain(|(object_ns, _), _| object_ns != name);
            }
        }
        if is(r, CRD.0, CRD.1)
            && let Some((plural, group)) = name.split_once('.')
        {
            self.objects.remove(&GroupResource::new(group, plural));
            self.custom.remove(&GroupResource::new(group, plural));
            self.docs.remove_crd(group, plural);
            self.refresh_discovery();
        }
        if is(r, "", "services") {
            self.release_service(&value);
        }
        self.next_rv();
        Ok(value)
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
        self.objects
            .entry(r.group_resource())
            .or_default()
            .insert((ns, name), Stored::from_value(body));
    }

    /// Records a CRD; it is Established at once, or after
    /// `crd_establish_after` GETs (a real server takes a moment).
    fn register_crd(&mut self, name: &str, body: &mut Value) {
        let kind = |k: &str| {
            body.pointer(&format!("/spec/names/{k}"))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let accepted = json!({"plural": kind("plural"), "singular": kind("singular"), "kind": kind("kind"), "listKind": kind("listKind")});
        let stored: Vec<Value> = body
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v["storage"] == true)
            .map(|v| v["name"].clone())
            .collect();
        body["status"] = json!({
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now()},
                {"type": "Established", "status": "False", "reason": "Installing", "message": "the initial names have been accepted", "lastTransitionTime": now()},
            ],
            "acceptedNames": accepted,
            "storedVersions": stored,
        });
        if self.crd_establish_after == 0 {
            set_established(body);
            self.serve_crd(body);
        } else {
            self.crd_gets.insert(name.to_string(), 0);
        }
    }

    pub(super) fn establish_crd(&mut self, name: &str) {
        let gr = GroupResource::new(CRD.0, CRD.1);
        let Some(stored) = self
            .objects
            .get(&gr)
            .and_then(|m| m.get(&(String::new(), name.to_string())))
        else {
            return;
        };
        let mut body = stored.value();
        set_established(&mut body);
        self.serve_crd(&body);
        self.objects
            .entry(gr)
            .or_default()
            .insert((String::new(), name.to_string()), Stored::from_value(body));
    }

    fn serve_crd(&mut self, body: &Value) {
        self.docs.add_crd(body);
        self.refresh_discovery();
        if let (Some(group), Some(plural)) = (
            body.pointer("/spec/group").and_then(Value::as_str),
            body.pointer("/spec/names/plural").and_then(Value::as_str),
        ) {
            self.custom.insert(GroupResource::new(group, plural));
        }
    }

    /// Cluster IPs and node ports: kept from the old object on update when
    /// left empty, allocated when absent, refused when taken (422).
    fn allocate_service(
        &mut self,
        r: &ResourceInfo,
        name: &str,
        body: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let spec = &mut body["spec"];
        let old_ip = old
            .and_then(|o| o.pointer("/spec/clusterIP"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let ip = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if spec.get("type").and_then(Value::as_str) != Some("ExternalName") {
            match (ip.as_str(), &old_ip) {
                ("", Some(old_ip)) => spec["clusterIP"] = json!(old_ip),
                ("", None) => {
                    let ip = (10..)
                        .map(|n: u32| format!("10.96.{}.{}", n / 250, n % 250 + 1))
                        .find(|ip| !self.cluster_ips.contains(ip))
                        .unwrap_or_default();
                    self.cluster_ips.insert(ip.clone());
                    spec["clusterIP"] = json!(ip);
                }
                ("None", _) => {}
                (ip, Some(old_ip)) if ip != old_ip => {
                    return Err(ApiError::invalid(
                        r,
                        name,
                        "spec.clusterIPs[0]",
                        format!("Invalid value: {ip:?}: may not change once set"),
                    ));
                }
                (_, Some(_)) => {}
                (ip, None) => {
                    if !self.cluster_ips.insert(ip.to_string()) {
                        return Err(ApiError::invalid(
                            r,
                            name,
                            "spec.clusterIPs",
                            format!(
                                "Invalid value: [\"{ip}\"]: failed to allocate IP {ip}: provided IP is already allocated"
                            ),
                        ));
                    }
                }
            }
            let ip = spec["clusterIP"].clone();
            spec["clusterIPs"] = json!([ip]);
        }
        let wants_ports = matches!(
            spec.get("type").and_then(Value::as_str),
            Some("NodePort" | "LoadBalancer")
        );
        let old_ports: Vec<u64> = old
            .and_then(|o| o.pointer("/spec/ports"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|p| p["nodePort"].as_u64()).collect())
            .unwrap_or_default();
        let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) else {
            return Ok(());
        };
        for (i, port) in ports.iter_mut().enumerate() {
            match port.get("nodePort").and_then(Value::as_u64) {
                Some(p) if old_ports.contains(&p) => {}
                // A node port outside the range, or taken, is refused; a
                // free one is taken.
                Some(p) if !(30000..=32767).contains(&p) || !self.node_ports.insert(p) => {
                    return Err(ApiError::invalid(
                        r,
                        name,
                        &format!("spec.ports[{i}].nodePort"),
                        format!("Invalid value: {p}: provided port is already allocated"),
                    ));
                }
                Some(_) => {}
                None if wants_ports => {
                    let p = old_ports.get(i).copied().unwrap_or_else(|| {
                        (30000..=32767)
                            .find(|p| !self.node_ports.contains(p))
                            .unwrap_or(30000)
                    });
                    self.node_ports.insert(p);
                    port["nodePort"] = json!(p);
                }
                None => {}
            }
        }
        Ok(())
    }

    fn note_service(&mut self, body: &Value) {
        if let Some(ip) = body.pointer("/spec/clusterIP").and_then(Value::as_str) {
            self.cluster_ips.insert(ip.to_string());
        }
        for p in body
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = p["nodePort"].as_u64() {
                self.node_ports.insert(n);
            }
        }
    }

    fn release_service(&mut self, body: &Value) {
        if let Some(ip) = body.pointer("/spec/clusterIP").and_then(Value::as_str) {
            self.cluster_ips.remove(ip);
        }
        for p in body
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = p["nodePort"].as_u64() {
                self.node_ports.remove(&n);
            }
        }
    }
}

fn set_established(body: &mut Value) {
    for c in body
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if c["type"] == "Established" {
            c["status"] = json!("True");
            c["reason"] = json!("InitialNamesAccepted");
            c["message"] = json!("the initial names have been accepted");
        }
    }
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
