//! Printing an object the way `kubectl get -o json|yaml` does: keys in
//! sorted order (kubectl re-encodes through maps), JSON indented by four
//! spaces, YAML in the block style of `sigs.k8s.io/yaml` (go-yaml v2):
//! two-space indentation, list items flush with their parent key, and
//! strings quoted only when they would otherwise read as another type.

use serde_json::Value;
use std::fmt::Write;

/// JSON as `kubectl get -o json` prints it.
pub fn to_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(v, &mut ser).expect("a JSON value always serializes");
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

/// YAML as `kubectl get -o yaml` prints it.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => seq(a, 0, &mut out),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

fn map(m: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (k, v) in m {
        let _ = write!(out, "{:indent$}{}:", "", string(k));
        value_after_key(v, indent, out);
    }
}

fn value_after_key(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            map(m, indent + 2, out);
        }
        // go-yaml v2 writes a sequence under a key at the key's own indentation.
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            seq(a, indent, out);
        }
        Value::String(s) if s.contains('\n') && block_ok(s) => literal(s, indent + 2, out),
        scalar => {
            out.push(' ');
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
}

fn seq(a: &[Value], indent: usize, out: &mut String) {
    for v in a {
        let _ = write!(out, "{:indent$}-", "");
        match v {
            Value::Object(m) if !m.is_empty() => {
                // The first key shares the dash's line.
                let mut first = true;
                for (k, val) in m {
                    if first {
                        let _ = write!(out, " {}:", string(k));
                        first = false;
                    } else {
                        let _ = write!(out, "{:w$}{}:", "", string(k), w = indent + 2);
                    }
                    value_after_key(val, indent + 2, out);
                }
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                seq(inner, indent + 2, out);
            }
            Value::String(s) if s.contains('\n') && block_ok(s) => literal(s, indent + 2, out),
            scalar => {
                out.push(' ');
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

/// A multi-line string as a literal block (`|`), as go-yaml v2 does.
fn literal(s: &str, indent: usize, out: &mut String) {
    out.push_str(if s.ends_with('\n') {
        if s.ends_with("\n\n") { " |+\n" } else { " |\n" }
    } else {
        " |-\n"
    });
    for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{:indent$}{line}", "");
        }
    }
}

/// Literal blocks cannot hold leading spaces on the first line, tabs at line
/// starts, or non-printable characters faithfully; those use a quoted string.
fn block_ok(s: &str) -> bool {
    !s.starts_with([' ', '\t'])
        && !s
            .chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{feff}')
        && !s.contains(" \n")
        && !s.ends_with(' ')
}

fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string plain when YAML would read it back as the same string, else
/// double-quoted with JSON escapes (valid YAML).
fn string(s: &str) -> String {
    if plain_ok(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("strings serialize")
    }
}

fn plain_ok(s: &str) -> bool {
    if s.is_empty() || s != s.trim() {
        return false;
    }
    // Words YAML 1.1 (go-yaml v2) or 1.2 resolve to null, booleans or numbers.
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "~" | "null"
            | "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | ".inf"
            | "-.inf"
            | "+.inf"
            | ".nan"
    ) {
        return false;
    }
    if looks_numeric(s) {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    // Indicator characters start a plain scalar only as `-word` (a dash not
    // followed by a space, and not a document marker).
    let dash_word = first == '-' && s.len() > 1 && !s.starts_with("- ") && !s.starts_with("---");
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) && !dash_word {
        return false;
    }
    if s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.chars()
            .any(|c| c.is_control() || c == '\u{feff}' || c == '\u{fffd}')
    {
        return false;
    }
    true
}

/// Anything a YAML resolver could take for a number or a timestamp (ints in
/// any base, floats, sexagesimal, `1_000`, `2008-01-01T01:01:01Z`): every
/// string starting like a number is quoted, as go-yaml does for timestamps.
fn looks_numeric(s: &str) -> bool {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    let t = t.strip_prefix('.').unwrap_or(t);
    t.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_looks_like_kubectl() {
        let v = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "true", "b": "007"}},
            "spec": {"containers": [{"name": "c", "args": ["-x", "1"], "ports": []}], "script": "echo hi\nexit 0\n"}, "status": {}});
        let want = "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    a: \"true\"\n    b: \"007\"\n  name: p\nspec:\n  containers:\n  - args:\n    - -x\n    - \"1\"\n    name: c\n    ports: []\n  script: |\n    echo hi\n    exit 0\nstatus: {}\n";
        assert_eq!(to_yaml(&v), want);
    }

    #[test]
    fn json_uses_four_spaces() {
        assert_eq!(
            to_json(&json!({"b": 1, "a": [true]})),
            "{\n    \"a\": [\n        true\n    ],\n    \"b\": 1\n}"
        );
    }
}
