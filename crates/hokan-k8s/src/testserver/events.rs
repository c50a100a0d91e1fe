//! `events.k8s.io/v1` Events and core `v1` Events are one resource, stored
//! in the core form, as on a real server: what an operator records through
//! kube's `Recorder` (events.k8s.io) is what `kubectl describe` reads (core,
//! by `involvedObject` field selectors). The two forms differ only in field
//! names (`regarding`/`involvedObject`, `note`/`message`, ...).

use serde_json::{Map, Value, json};

use super::state::State;
use crate::discovery::ResourceInfo;

/// events.k8s.io name → core name.
const RENAMED: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn is_events_v1(r: &ResourceInfo) -> bool {
    r.group == "events.k8s.io" && r.resource == "events"
}

/// Renames the top-level fields: to the core names, or from them.
fn rename(v: Value, to_core: bool) -> Value {
    let Value::Object(o) = v else {
        return v;
    };
    let mut out = Map::new();
    for (k, v) in o {
        let name = RENAMED
            .iter()
            .find_map(|(events, core)| {
                let (from, to) = if to_core {
                    (events, core)
                } else {
                    (core, events)
                };
                (*from == k).then(|| to.to_string())
            })
            .unwrap_or(k);
        out.insert(name, v);
    }
    Value::Object(out)
}

/// The object as the client's resource `r` shows it (stored form in).
pub fn view(r: &ResourceInfo, v: Value) -> Value {
    if !is_events_v1(r) {
        return v;
    }
    let mut v = rename(v, false);
    v["apiVersion"] = json!(r.api_version());
    v["kind"] = json!("Event");
    v
}

/// The object as stored, from the form the client's resource `r` sends.
pub fn unview(r: &ResourceInfo, v: Value) -> Value {
    if !is_events_v1(r) {
        return v;
    }
    let mut v = rename(v, true);
    if v.get("apiVersion").is_some() {
        v["apiVersion"] = json!("v1");
    }
    if v.get("kind").is_some() {
        v["kind"] = json!("Event");
    }
    v
}

/// A list body (bytes, as [`State::list`] makes it) in the view's form.
pub fn view_list(r: &ResourceInfo, list: Vec<u8>) -> Vec<u8> {
    if !is_events_v1(r) {
        return list;
    }
    let mut v: Value = serde_json::from_slice(&list).unwrap_or(Value::Null);
    v["apiVersion"] = json!(r.api_version());
    v["kind"] = json!("EventList");
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        for item in items.iter_mut() {
            let mut converted = view(r, item.take());
            // Built-in kinds are listed without apiVersion/kind per item.
            if let Some(o) = converted.as_object_mut() {
                o.remove("apiVersion");
                o.remove("kind");
            }
            *item = converted;
        }
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

impl State {
    /// The resource whose storage serves `r`: core Events for
    /// events.k8s.io's, `r` itself otherwise.
    pub fn storage_of(&self, r: &ResourceInfo) -> ResourceInfo {
        if is_events_v1(r) {
            self.resource("", "v1", "events")
                .unwrap_or_else(|| r.clone())
        } else {
            r.clone()
        }
    }
}
