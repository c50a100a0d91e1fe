//! The test server's storage and its read path: objects per resource in key
//! order (as etcd keeps them), lists with `limit`/`continue` and label
//! selectors, gets, and the Status errors the real server sends.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use base64::Engine;
use serde_json::{Value, json};

use super::docs::Docs;
use crate::discovery::{Discovery, ResourceInfo};
use crate::object::GroupResource;
use crate::selector::Selector;

/// An error answered as a `Status` object.
#[derive(Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn not_found(r: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: details(r, name),
            ..ApiError::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", qualified(r)),
            )
        }
    }

    pub fn namespace_not_found(ns: &str) -> Self {
        ApiError {
            details: json!({"name": ns, "kind": "namespaces"}),
            ..ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
        }
    }

    pub fn invalid(r: &ResourceInfo, name: &str, field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut details = details(r, name);
        details["causes"] =
            json!([{"reason": "FieldValueInvalid", "message": message, "field": field}]);
        ApiError {
            details,
            ..ApiError::new(
                422,
                "Invalid",
                format!("{} \"{name}\" is invalid: {field}: {message}", r.kind),
            )
        }
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if !self.details.is_null() {
            status["details"] = self.details.clone();
        }
        status
    }
}

/// `configmaps` or `deployments.apps`, as messages name resources.
pub fn qualified(r: &ResourceInfo) -> String {
    r.group_resource().to_string()
}

fn details(r: &ResourceInfo, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": r.resource});
    if !r.group.is_empty() {
        d["group"] = json!(r.group);
    }
    d
}

/// One stored object: its JSON without `apiVersion`/`kind` (it is served in
/// whatever version is asked for), and what selectors and the garbage
/// collector look at, read once.
#[derive(Clone, Debug)]
pub struct Stored {
    pub body: Vec<u8>,
    pub labels: BTreeMap<String, String>,
    pub uid: String,
    /// `(uid, blockOwnerDeletion)` of each owner reference.
    pub owners: Vec<(String, bool)>,
    pub finalizers: Vec<String>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

impl Stored {
    pub fn from_value(mut v: Value) -> Self {
        if let Some(o) = v.as_object_mut() {
            o.remove("apiVersion");
            o.remove("kind");
        }
        let meta = &v["metadata"];
        let labels = meta
            .get("labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let owners = meta
            .get("ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|o| {
                (
                    o["uid"].as_str().unwrap_or_default().to_string(),
                    o["blockOwnerDeletion"] == true,
                )
            })
            .collect();
        let finalizers = meta
            .get("finalizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect();
        Stored {
            uid: meta["uid"].as_str().unwrap_or_default().to_string(),
            owners,
            finalizers,
            deleting: meta.get("deletionTimestamp").is_some_and(|t| !t.is_null()),
            labels,
            body: serde_json::to_vec(&v).unwrap_or_default(),
        }
    }

    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type Key = (String, String);

/// Everything the server holds.
pub struct State {
    pub docs: Docs,
    pub discovery: Discovery,
    pub objects: HashMap<GroupResource, BTreeMap<Key, Stored>>,
    /// Resources served by CRDs: listed with `apiVersion`/`kind` per item.
    pub custom: BTreeSet<GroupResource>,
    pub resource_version: u64,
    pub uids: u64,
    /// How many GETs of a new CRD answer "not yet Established".
    pub crd_establish_after: u32,
    pub crd_gets: HashMap<String, u32>,
    pub cluster_ips: BTreeSet<String>,
    pub node_ports: BTreeSet<u64>,
    /// Whether aggregated discovery is offered.
    pub aggregated: bool,
    /// Resources every request to which is refused with 403, as RBAC would.
    pub forbidden: BTreeSet<GroupResource>,
    /// Resources every request to which fails with this 5xx status, as an
    /// overloaded server or a broken aggregated API would.
    pub failing: BTreeMap<GroupResource, u16>,
    /// Recent changes, for watches.
    pub history: super::watch::History,
    /// Uids of objects deleted here, whose dependents the garbage collector
    /// deletes.
    pub gone_uids: BTreeSet<String>,
    /// Namespaces the namespace controller saw terminating at its last tick.
    pub terminating_seen: BTreeSet<String>,
    /// Containers' output, written by the kubelet stand-in, served at `pods/NAME/log`.
    pub pod_logs: super::pod_routes::PodLogs,
    /// Who runs `pods/NAME/exec` (the kubelet stand-in, once started).
    pub exec: Option<std::sync::Arc<dyn super::exec::Exec>>,
}

impl State {
    pub fn new(docs: Docs) -> Self {
        let discovery = Discovery::from_aggregated(&[docs.core.clone(), docs.apis.clone()]);
        State {
            docs,
            discovery,
            objects: HashMap::new(),
            custom: BTreeSet::new(),
            resource_version: 1000,
            uids: 0,
            crd_establish_after: 0,
            crd_gets: HashMap::new(),
            cluster_ips: BTreeSet::new(),
            node_ports: BTreeSet::new(),
            aggregated: true,
            forbidden: BTreeSet::new(),
            failing: BTreeMap::new(),
            history: super::watch::History::new(),
            gone_uids: BTreeSet::new(),
            terminating_seen: BTreeSet::new(),
            pod_logs: Default::default(),
            exec: None,
        }
    }

    pub fn refresh_discovery(&mut self) {
        self.discovery =
            Discovery::from_aggregated(&[self.docs.core.clone(), self.docs.apis.clone()]);
    }

    pub fn next_rv(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    pub fn next_uid(&mut self) -> String {
        self.uids += 1;
        let n = self.uids;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            n as u32,
            (n >> 32) as u16,
            n % 0xfff,
            n % 0xfff,
            n
        )
    }

    pub fn resource(&self, group: &str, version: &str, resource: &str) -> Option<ResourceInfo> {
        self.discovery
            .find(&GroupResource::new(group, resource), version)
            .cloned()
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.objects
            .get(&GroupResource::new("", "namespaces"))
            .is_some_and(|m| m.contains_key(&(String::new(), ns.to_string())))
    }

    /// The object as served in `r`'s version.
    pub fn served(&self, r: &ResourceInfo, stored: &Stored) -> Value {
        let mut v = stored.value();
        set_type_meta(&mut v, r);
        v
    }

    /// `GET` of one object.
    pub fn get(&mut self, r: &ResourceInfo, ns: &str, name: &str) -> Result<Value, ApiError> {
        if r.resource == "customresourcedefinitions" && r.group == "apiextensions.k8s.io" {
            self.count_crd_get(name);
        }
        let stored = self
            .objects
            .get(&r.group_resource())
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .ok_or_else(|| ApiError::not_found(r, name))?;
        Ok(self.served(r, stored))
    }

    /// `GET` of a collection: one page, as JSON bytes.
    pub fn list(
        &self,
        r: &ResourceInfo,
        ns: Option<&str>,
        query: &Query,
    ) -> Result<Vec<u8>, ApiError> {
        let selector = Selector::parse(query.get("labelSelector").unwrap_or_default())
            .map_err(|m| ApiError::new(400, "BadRequest", m))?;
        let fields = parse_field_selector(r, query.get("fieldSelector").unwrap_or_default())?;
        let limit: usize = match query.get("limit") {
            Some(l) => l
                .parse()
                .map_err(|_| ApiError::new(400, "BadRequest", format!("invalid limit {l:?}")))?,
            None => 0,
        };
        let (list_rv, start) = match query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => decode_continue(token)?,
            None => (self.resource_version, None),
        };
        let empty = BTreeMap::new();
        let all = self.objects.get(&r.group_resource()).unwrap_or(&empty);
        let lower = match &start {
            Some(key) => Bound::Excluded(key.clone()),
            None => Bound::Included((ns.unwrap_or_default().to_string(), String::new())),
        };
        let mut items: Vec<(&Key, &Stored)> = Vec::new();
        let mut remaining = 0usize;
        let mut next: Option<Key> = None;
        for (key, stored) in all.range((lower, Bound::Unbounded)) {
            if ns.is_some_and(|ns| key.0 != ns) {
                break;
            }
            if !selector.matches(&stored.labels) || !fields_match(&fields, stored) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                if next.is_none() {
                    next = items.last().map(|(k, _)| (*k).clone());
                }
                remaining += 1;
                continue;
            }
            items.push((key, stored));
        }
        let mut meta = json!({"resourceVersion": list_rv.to_string()});
        if let Some(last) = next {
            meta["continue"] = json!(encode_continue(list_rv, &last));
            if query.get("labelSelector").unwrap_or_default().is_empty() && fields.is_empty() {
                meta["remainingItemCount"] = json!(remaining);
            }
        }
        let mut out = serde_json::to_vec(&json!({
            "kind": format!("{}List", r.kind), "apiVersion": r.api_version(), "metadata": meta,
        }))
        .unwrap_or_default();
        out.pop(); // the closing brace; items follow
        out.extend_from_slice(b",\"items\":[");
        let custom = self.custom.contains(&r.group_resource());
        for (i, (_, stored)) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Real servers list built-in kinds without apiVersion/kind in the
            // items, and custom resources with them.
            if custom {
                out.extend_from_slice(&with_type_meta(&stored.body, &r.api_version(), &r.kind));
            } else {
                out.extend_from_slice(&stored.body);
            }
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }

    fn count_crd_get(&mut self, name: &str) {
        let Some(count) = self.crd_gets.get_mut(name) else {
            return;
        };
        *count += 1;
        if *count >= self.crd_establish_after {
            self.crd_gets.remove(name);
            self.establish_crd(name);
        }
    }
}

/// Sets `apiVersion` and `kind` as served for `r`.
pub fn set_type_meta(v: &mut Value, r: &ResourceInfo) {
    if let Some(o) = v.as_object_mut() {
        let rest = std::mem::take(o);
        o.insert("kind".into(), json!(r.kind));
        o.insert("apiVersion".into(), json!(r.api_version()));
        o.extend(rest);
    }
}

fn with_type_meta(body: &[u8], api_version: &str, kind: &str) -> Vec<u8> {
    let head = format!(
        "{{\"apiVersion\":{},\"kind\":{}",
        json!(api_version),
        json!(kind)
    );
    let mut out = head.into_bytes();
    let rest = &body[1.min(body.len())..];
    if rest.first().is_some_and(|b| *b != b'}') {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    out
}

/// The continue token has the real server's shape: base64 of
/// `{"v":"meta.k8s.io/v1","rv":N,"start":"ns/name\u0000"}`.
fn encode_continue(rv: u64, last: &Key) -> String {
    let start = if last.0.is_empty() {
        format!("{}\u{0}", last.1)
    } else {
        format!("{}/{}\u{0}", last.0, last.1)
    };
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, Option<Key>), ApiError> {
    let bad = |why: &str| {
        ApiError::new(
            400,
            "BadRequest",
            format!("continue key is not valid: {why}"),
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad("not base64"))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad("not JSON"))?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(bad("unknown version"));
    }
    let rv = v["rv"].as_u64().ok_or_else(|| bad("no resource version"))?;
    let start = v["start"]
        .as_str()
        .ok_or_else(|| bad("no start key"))?
        .trim_end_matches('\u{0}');
    let key = match start.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => (String::new(), start.to_string()),
    };
    Ok((rv, Some(key)))
}

/// The decoded query string.
#[derive(Debug, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(query: &str) -> Self {
        Query(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated key, in order (`command=a&command=b`).
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One `field=value` or `field!=value` term of a field selector, with the
/// JSON pointer of the field.
pub struct FieldTerm {
    pointer: String,
    value: String,
    equal: bool,
}

/// Parses a `fieldSelector` as the real server does: `metadata.name` and
/// `metadata.namespace` for every resource, plus the few fields a resource
/// indexes (pods: `spec.nodeName`, `status.phase`...); any other field is
/// 400 "field label not supported".
pub fn parse_field_selector(r: &ResourceInfo, raw: &str) -> Result<Vec<FieldTerm>, ApiError> {
    let mut terms = Vec::new();
    for term in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==") {
            (f, v, true)
        } else if let Some((f, v)) = term.split_once('=') {
            (f, v, true)
        } else {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!("invalid field selector: {term:?}: expected field=value"),
            ));
        };
        let field = field.trim();
        let pointer = match (r.group.as_str(), r.resource.as_str(), field) {
            (_, _, "metadata.name" | "metadata.namespace") => dotted(field),
            ("", "pods", "spec.nodeName" | "spec.serviceAccountName")
            | ("", "pods", "status.phase" | "status.podIP") => dotted(field),
            // Events are indexed by what kubectl describe asks for.
            ("" | "events.k8s.io", "events", f)
                if f.starts_with("involvedObject.")
                    || matches!(f, "reason" | "type" | "reportingComponent" | "source") =>
            {
                if f == "source" {
                    "/source/component".to_string()
                } else {
                    dotted(f)
                }
            }
            (_, _, other) => {
                return Err(ApiError::new(
                    400,
                    "BadRequest",
                    format!("field label not supported: {other}"),
                ));
            }
        };
        terms.push(FieldTerm {
            pointer,
            value: value.trim().to_string(),
            equal,
        });
    }
    Ok(terms)
}

/// `a.b` as the JSON pointer `/a/b`.
fn dotted(field: &str) -> String {
    format!("/{}", field.replace('.', "/"))
}

pub fn fields_match(terms: &[FieldTerm], stored: &Stored) -> bool {
    if terms.is_empty() {
        return true;
    }
    let v = stored.value();
    terms.iter().all(|t| {
        let actual = v.pointer(&t.pointer).and_then(Value::as_str).unwrap_or("");
        (actual == t.value) == t.equal
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let token = encode_continue(42, &("ns".into(), "b".into()));
        assert_eq!(
            decode_continue(&token).unwrap(),
            (42, Some(("ns".into(), "b".into())))
        );
        assert_eq!(decode_continue("!!").unwrap_err().code, 400);
        assert_eq!(percent_decode("a%3Db%2Cc"), "a=b,c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(
            with_type_meta(b"{}", "v1", "X"),
            br#"{"apiVersion":"v1","kind":"X"}"#
        );
        assert_eq!(
            with_type_meta(br#"{"a":1}"#, "v1", "X"),
            br#"{"apiVersion":"v1","kind":"X","a":1}"#
        );
    }
}
