//! PATCH in the four formats the real server takes:
//!
//! - `application/json-patch+json` (RFC 6902) and
//!   `application/merge-patch+json` (RFC 7386), exactly;
//! - `application/strategic-merge-patch+json`, for built-in kinds only (a
//!   custom resource answers 415, as on a real server): a merge patch whose
//!   lists with a known merge key (containers, volumes, env, ports,
//!   conditions, owner references...) merge item by item, `finalizers`
//!   merges as a set, and the directives `$patch: delete|replace`,
//!   `$deleteFromPrimitiveList/<field>` are obeyed; `$setElementOrder` and
//!   `$retainKeys` are accepted and ignored. Merge keys are known by field
//!   name, not from the kind's schema;
//! - `application/apply-patch+yaml` (server-side apply, in JSON form):
//!   `fieldManager` required; the object is created when absent, else the
//!   applied configuration is merged in as a strategic merge patch. Field
//!   ownership is not modelled: no `managedFields`, no conflicts between
//!   managers (so `force` changes nothing), and fields a manager stops
//!   applying are kept rather than removed.
//!
//! On the `status` subresource only the patched status is kept. A patch
//! that carries `metadata.resourceVersion` is a precondition: 409 Conflict
//! when the object has moved on.

use serde_json::{Map, Value};

use super::events::{unview, view};
use super::state::{ApiError, Query, State};
use super::write::key_of;
use crate::discovery::ResourceInfo;

/// The patch formats, by content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Result<Self, ApiError> {
        let mime = content_type.split(';').next().unwrap_or_default().trim();
        match mime {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchKind::Apply),
            other => Err(unsupported(other)),
        }
    }
}

fn unsupported(mime: &str) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format ({mime:?}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        ),
    )
}

fn bad_request(m: String) -> ApiError {
    ApiError::new(400, "BadRequest", m)
}

impl State {
    /// `PATCH` of an object or of its `status`: answers the status code
    /// (201 when an apply created the object) and the object.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        r: &ResourceInfo,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        query: &Query,
        status: bool,
    ) -> Result<(u16, Value), ApiError> {
        if kind == PatchKind::Strategic && self.custom.contains(&r.group_resource()) {
            return Err(unsupported("application/strategic-merge-patch+json"));
        }
        let patch: Value = serde_json::from_slice(body).map_err(|e| {
            bad_request(format!(
                "the patch is not valid JSON (this server reads apply configurations in their JSON form only): {e}"
            ))
        })?;
        if kind == PatchKind::Apply && query.get("fieldManager").unwrap_or_default().is_empty() {
            return Err(ApiError::new(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        // The patch is in the client's form (`r`); the object is stored
        // in its storage resource's.
        let store = self.storage_of(r);
        let key = key_of(&store, ns, name);
        let existing = match self.existing(&store, &key) {
            Ok(v) => v,
            Err(e) if e.code == 404 && kind == PatchKind::Apply && !status => {
                let (code, created) = self.apply_create(r, ns, name, patch)?;
                return Ok((code, view(r, created)));
            }
            Err(e) => return Err(e),
        };
        let mut doc = existing.clone();
        super::state::set_type_meta(&mut doc, &store);
        let doc = apply_patch(r, name, kind, view(r, doc), patch)?;
        let mut doc = unview(r, doc);
        if let Some(o) = doc.as_object_mut() {
            o.remove("apiVersion");
            o.remove("kind");
        }
        let patched = self.commit(&store, &key, existing, doc, status)?;
        Ok((200, view(r, patched)))
    }

    fn apply_create(
        &mut self,
        r: &ResourceInfo,
        ns: &str,
        name: &str,
        mut body: Value,
    ) -> Result<(u16, Value), ApiError> {
        check_apply_identity(r, name, &body)?;
        strip_directives(&mut body);
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        let store = self.storage_of(r);
        Ok((201, self.create(&store, ns, unview(r, body))?))
    }
}

/// Applies a patch to `doc` (the object as served in `r`'s version).
pub fn apply_patch(
    r: &ResourceInfo,
    name: &str,
    kind: PatchKind,
    mut doc: Value,
    patch: Value,
) -> Result<Value, ApiError> {
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| bad_request(format!("the JSON patch is not valid: {e}")))?;
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the JSON patch could not be applied: {e}"),
                )
            })?;
        }
        PatchKind::Merge => json_patch::merge(&mut doc, &patch),
        PatchKind::Strategic | PatchKind::Apply => {
            if !patch.is_object() {
                return Err(bad_request("the patch is not a JSON object".into()));
            }
            if kind == PatchKind::Apply {
                check_apply_identity(r, name, &patch)?;
            }
            strategic_merge(&mut doc, &patch);
        }
    }
    if doc.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
        return Err(ApiError::invalid(
            r,
            name,
            "metadata.name",
            "Invalid value: the name may not be changed by a patch",
        ));
    }
    Ok(doc)
}

/// An apply configuration names its kind, version and object.
fn check_apply_identity(r: &ResourceInfo, name: &str, patch: &Value) -> Result<(), ApiError> {
    let field = |k: &str| patch.get(k).and_then(Value::as_str).unwrap_or_default();
    if field("apiVersion").is_empty() || field("kind").is_empty() {
        return Err(bad_request(
            "invalid object type: the apply configuration must set apiVersion and kind".into(),
        ));
    }
    if field("apiVersion") != r.api_version() || field("kind") != r.kind {
        return Err(bad_request(format!(
            "the apply configuration is a {} {}, not the endpoint's {} {}",
            field("apiVersion"),
            field("kind"),
            r.api_version(),
            r.kind
        )));
    }
    // Without a name the URL's is used, as the real server merges the
    // configuration into the live object (kube's `patch_status` example
    // sends none); a different one is refused.
    match patch.pointer("/metadata/name").and_then(Value::as_str) {
        Some(n) if n != name => Err(bad_request(format!(
            "the apply configuration's metadata.name must be the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

/// The merge key of a list field, by the field's name (and, for `ports`,
/// by what its items carry: containers' ports merge by `containerPort`,
/// services' by `port`).
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ports" if items.iter().any(|i| i.get("containerPort").is_some()) => "containerPort",
        "ports" => "port",
        _ => return None,
    })
}

/// Lists of strings merged as sets.
const SET_LISTS: [&str; 1] = ["finalizers"];

/// Applies a strategic merge patch to `target` in place.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut v = patch.clone();
        strip_directives(&mut v);
        *target = v;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(t) = target.as_object_mut() else {
        return;
    };
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(gone)) =
                (t.get_mut(field).and_then(Value::as_array_mut), v.as_array())
            {
                list.retain(|x| !gone.contains(x));
            }
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(_) if t.get(k).is_some_and(Value::is_object) => {
                if v.get("$patch").and_then(Value::as_str) == Some("delete") {
                    t.remove(k);
                } else if let Some(tv) = t.get_mut(k) {
                    strategic_merge(tv, v);
                }
            }
            Value::Array(items) => {
                let merged = match t.get(k).and_then(Value::as_array) {
                    Some(old) => merge_list(k, old, items),
                    None => {
                        let mut v = v.clone();
                        strip_directives(&mut v);
                        v
                    }
                };
                t.insert(k.clone(), merged);
            }
            _ => {
                let mut v = v.clone();
                strip_directives(&mut v);
                t.insert(k.clone(), v);
            }
        }
    }
}

fn merge_list(field: &str, old: &[Value], items: &[Value]) -> Value {
    if SET_LISTS.contains(&field) {
        let mut out = old.to_vec();
        for i in items {
            if !out.contains(i) {
                out.push(i.clone());
            }
        }
        return Value::Array(out);
    }
    let Some(key) = merge_key(field, items).or_else(|| merge_key(field, old)) else {
        let mut v = Value::Array(items.to_vec());
        strip_directives(&mut v);
        return v;
    };
    let mut out = old.to_vec();
    for item in items {
        let id = item.get(key);
        let pos = out.iter().position(|o| id.is_some() && o.get(key) == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut out[i], item),
            (None, false) => {
                let mut v = item.clone();
                strip_directives(&mut v);
                out.push(v);
            }
        }
    }
    Value::Array(out)
}

/// Removes `$`-directives left in a value that is stored as it is.
fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.retain(|k, _| !k.starts_with('$'));
            o.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strategic_merge_merges_keyed_lists_and_obeys_directives() {
        let mut pod = json!({"metadata": {"finalizers": ["a"]}, "spec": {"containers": [
            {"name": "app", "image": "v1", "env": [{"name": "A", "value": "1"}]},
            {"name": "side", "image": "s1"},
        ], "tolerations": [{"key": "x"}]}});
        strategic_merge(
            &mut pod,
            &json!({"metadata": {"finalizers": ["b"]}, "spec": {
                "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
                "containers": [
                    {"name": "app", "env": [{"name": "B", "value": "2"}]},
                    {"name": "side", "$patch": "delete"},
                ],
                "tolerations": [{"key": "y"}],
            }}),
        );
        assert_eq!(
            pod,
            json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"containers": [
                {"name": "app", "image": "v1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            ], "tolerations": [{"key": "y"}]}})
        );
        strategic_merge(
            &mut pod,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}, "spec": {"$patch": "replace", "x": 1}}),
        );
        assert_eq!(
            pod,
            json!({"metadata": {"finalizers": ["b"]}, "spec": {"x": 1}})
        );
    }
}
