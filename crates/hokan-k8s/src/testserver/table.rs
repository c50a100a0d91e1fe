//! The `Table` form of lists and gets (`Accept:
//! application/json;as=Table;v=v1;g=meta.k8s.io`), which `kubectl get`
//! prints: a custom resource's `additionalPrinterColumns` (simple JSONPath:
//! fields, `[n]`, `[*]`, `[?(@.k=="v")]`), or Name and Age for a built-in
//! kind or a CRD without columns. Dates print as ages, as the real server
//! renders them.

use serde_json::{Value, json};

use super::crd::CRD;
use super::state::State;
use crate::discovery::ResourceInfo;
use crate::object::GroupResource;

/// Whether the client asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|a| {
        let a = a.replace(' ', "");
        a.contains("as=Table") && a.contains("g=meta.k8s.io")
    })
}

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

struct Column {
    name: String,
    kind: String,
    format: String,
    description: String,
    priority: i64,
    path: String,
}

impl Column {
    fn age() -> Self {
        Column {
            name: "Age".into(),
            kind: "date".into(),
            format: String::new(),
            description: "CreationTimestamp is a timestamp representing the server time when this object was created.".into(),
            priority: 0,
            path: ".metadata.creationTimestamp".into(),
        }
    }
}

impl State {
    /// The Table for a list body (`{"metadata": .., "items": [..]}`).
    pub fn table(&self, r: &ResourceInfo, list: &[u8]) -> Value {
        let list: Value = serde_json::from_slice(list).unwrap_or(Value::Null);
        let mut columns = self.printer_columns(r);
        if columns.is_empty() {
            columns.push(Column::age());
        }
        let mut definitions = vec![json!({
            "name": "Name", "type": "string", "format": "name",
            "description": NAME_DESCRIPTION, "priority": 0,
        })];
        definitions.extend(columns.iter().map(|c| {
            json!({"name": c.name, "type": c.kind, "format": c.format,
                   "description": c.description, "priority": c.priority})
        }));
        let now = chrono::Utc::now();
        let rows: Vec<Value> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| {
                let mut cells = vec![item["metadata"]["name"].clone()];
                cells.extend(columns.iter().map(|c| cell(item, c, now)));
                json!({
                    "cells": cells,
                    "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": item["metadata"]},
                })
            })
            .collect();
        let mut metadata = json!({});
        for k in ["resourceVersion", "continue", "remainingItemCount"] {
            if let Some(v) = list["metadata"].get(k) {
                metadata[k] = v.clone();
            }
        }
        json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "columnDefinitions": definitions, "rows": rows,
        })
    }

    /// A custom resource's printer columns in `r`'s version.
    fn printer_columns(&self, r: &ResourceInfo) -> Vec<Column> {
        if !self.custom.contains(&r.group_resource()) {
            return Vec::new();
        }
        let name = format!("{}.{}", r.resource, r.group);
        let Some(crd) = self
            .objects
            .get(&GroupResource::new(CRD.0, CRD.1))
            .and_then(|m| m.get(&(String::new(), name)))
            .map(|s| s.value())
        else {
            return Vec::new();
        };
        let version = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|v| v["name"] == r.version.as_str());
        version
            .and_then(|v| v["additionalPrinterColumns"].as_array())
            .into_iter()
            .flatten()
            .map(|c| {
                let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                Column {
                    name: s("name"),
                    kind: s("type"),
                    format: s("format"),
                    description: s("description"),
                    priority: c["priority"].as_i64().unwrap_or(0),
                    path: s("jsonPath"),
                }
            })
            .collect()
    }
}

fn cell(item: &Value, c: &Column, now: chrono::DateTime<chrono::Utc>) -> Value {
    let found = json_path(item, &c.path);
    let Some(first) = found.first() else {
        return Value::Null;
    };
    match c.kind.as_str() {
        "date" => first
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| json!(human_duration(now.signed_duration_since(t).num_seconds())))
            .unwrap_or(Value::Null),
        "string" if found.len() > 1 => {
            let parts: Vec<String> = found.iter().map(|v| text(v)).collect();
            json!(parts.join(","))
        }
        "string" => json!(text(first)),
        _ => (*first).clone(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Evaluates a simple JSONPath (`.a.b`, `.a[0]`, `.a[*].b`,
/// `.a[?(@.k=="v")].b`) to the values it selects.
pub fn json_path<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    // `status.phase` means `.status.phase`.
    let owned = if path.starts_with(['.', '[']) {
        path.to_string()
    } else {
        format!(".{path}")
    };
    let mut current = vec![root];
    let mut rest = owned.as_str();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let field = &r[..end];
            rest = &r[end..];
            if field.is_empty() {
                continue;
            }
            current = current.iter().filter_map(|v| v.get(field)).collect();
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return Vec::new();
            };
            let inner = &r[..end];
            rest = &r[end + 1..];
            current = select(current, inner);
        } else {
            return Vec::new();
        }
    }
    current
}

fn select<'a>(values: Vec<&'a Value>, inner: &str) -> Vec<&'a Value> {
    let items = values.into_iter().filter_map(Value::as_array);
    if inner == "*" {
        return items.flatten().collect();
    }
    if let Ok(i) = inner.parse::<usize>() {
        return items.filter_map(|a| a.get(i)).collect();
    }
    let filter = inner
        .strip_prefix("?(@.")
        .and_then(|f| f.strip_suffix(')'))
        .and_then(|f| f.split_once("=="));
    let Some((field, wanted)) = filter else {
        return Vec::new();
    };
    let wanted = wanted.trim().trim_matches(['"', '\'']);
    items
        .flatten()
        .filter(|item| {
            json_path(item, &format!(".{}", field.trim()))
                .first()
                .map(|v| text(v))
                .as_deref()
                == Some(wanted)
        })
        .collect()
}

/// A duration as `kubectl` shows ages (the apimachinery `HumanDuration`).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let minutes = s / 60;
    if minutes < 10 {
        return match s % 60 {
            0 => format!("{minutes}m"),
            rest => format!("{minutes}m{rest}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let years = hours / 24 / 365;
        return match (hours / 24) % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_and_ages_read_as_kubectl_shows_them() {
        let v = json!({"status": {"phase": "Done", "conditions": [
            {"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]},
            "spec": {"ids": ["a", "b"]}});
        assert_eq!(json_path(&v, ".status.phase"), vec![&json!("Done")]);
        assert_eq!(
            json_path(&v, ".status.conditions[?(@.type==\"Synced\")].status"),
            vec![&json!("False")]
        );
        assert_eq!(json_path(&v, ".spec.ids[1]"), vec![&json!("b")]);
        assert_eq!(json_path(&v, ".spec.ids[*]").len(), 2);
        assert!(json_path(&v, ".status.missing").is_empty());
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 3 + 60 * 5), "3h5m");
        assert_eq!(human_duration(86400 * 3), "3d");
    }
}
