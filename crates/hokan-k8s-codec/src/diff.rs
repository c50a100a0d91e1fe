//! A field-level diff of two decoded objects, by JSON Pointer (RFC 6901).
//!
//! Objects are compared key by key; arrays index by index (an insertion in
//! the middle shows as changes plus an addition, which is what a reader of
//! two snapshots of one object expects to see for lists of containers).

use serde_json::Value;

/// What happened at one path.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Change {
    Added {
        path: String,
        new: Value,
    },
    Removed {
        path: String,
        old: Value,
    },
    Changed {
        path: String,
        old: Value,
        new: Value,
    },
}

impl Change {
    /// The JSON Pointer of the field, e.g. `/spec/template/spec/containers/0/image`.
    pub fn path(&self) -> &str {
        match self {
            Change::Added { path, .. }
            | Change::Removed { path, .. }
            | Change::Changed { path, .. } => path,
        }
    }
}

/// The differences between `old` and `new`, in path order.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(old, new, &mut String::new(), &mut out);
    out
}

/// RFC 6901 escaping of one reference token.
fn push_token(path: &mut String, token: &str) {
    path.push('/');
    for c in token.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

fn walk(old: &Value, new: &Value, path: &mut String, out: &mut Vec<Change>) {
    let len = path.len();
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            // Both maps iterate in key order; merge them.
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                push_token(path, k);
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => walk(x, y, path, out),
                    (Some(x), None) => out.push(Change::Removed {
                        path: path.clone(),
                        old: x.clone(),
                    }),
                    (None, Some(y)) => out.push(Change::Added {
                        path: path.clone(),
                        new: y.clone(),
                    }),
                    (None, None) => {}
                }
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                push_token(path, &i.to_string());
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => walk(x, y, path, out),
                    (Some(x), None) => out.push(Change::Removed {
                        path: path.clone(),
                        old: x.clone(),
                    }),
                    (None, Some(y)) => out.push(Change::Added {
                        path: path.clone(),
                        new: y.clone(),
                    }),
                    (None, None) => {}
                }
                path.truncate(len);
            }
        }
        (a, b) if a != b => out.push(Change::Changed {
            path: path.clone(),
            old: a.clone(),
            new: b.clone(),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_added_removed_and_changed_fields_by_pointer() {
        let old = json!({"metadata": {"name": "a", "labels": {"x/y": "1", "gone": "g"}}, "spec": {"replicas": 1, "ports": [80, 443]}});
        let new = json!({"metadata": {"name": "a", "labels": {"x/y": "2", "new~": "n"}}, "spec": {"replicas": 1, "ports": [80]}, "status": {}});
        let got = diff(&old, &new);
        assert_eq!(
            got,
            vec![
                Change::Removed {
                    path: "/metadata/labels/gone".into(),
                    old: json!("g")
                },
                Change::Added {
                    path: "/metadata/labels/new~0".into(),
                    new: json!("n")
                },
                Change::Changed {
                    path: "/metadata/labels/x~1y".into(),
                    old: json!("1"),
                    new: json!("2")
                },
                Change::Removed {
                    path: "/spec/ports/1".into(),
                    old: json!(443)
                },
                Change::Added {
                    path: "/status".into(),
                    new: json!({})
                },
            ]
        );
        assert!(diff(&old, &old).is_empty());
        assert_eq!(
            diff(&json!(1), &json!("1")),
            vec![Change::Changed {
                path: String::new(),
                old: json!(1),
                new: json!("1")
            }]
        );
    }
}
