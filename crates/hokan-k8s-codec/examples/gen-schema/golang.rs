//! A reader for the struct definitions in Kubernetes' Go API packages
//! (`types.go` and friends). The JSON form of an object is decided by the Go
//! struct tags, which the `.proto` files do not carry: the JSON name, whether
//! a zero value is omitted (`omitempty`, `omitzero`), whether a field is a
//! pointer (so an explicit zero differs from "not set"), and whether an
//! embedded struct is flattened into its parent. Only declarations at the top
//! level are read: `type Name struct { … }` and `type Name <type>`.

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct GoPackage {
    pub structs: BTreeMap<String, Vec<GoField>>,
    /// Named non-struct types: `type ExtraValue []string` → `[]string`.
    pub named: BTreeMap<String, String>,
    /// Import alias → import path, for named types defined as another
    /// package's struct (`type MatchCondition v1.MatchCondition`).
    pub imports: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct GoField {
    /// Empty for an embedded field.
    pub name: String,
    pub ty: String,
    pub embedded: bool,
    pub json: Option<String>,
    pub protobuf: Option<String>,
}

/// Removes comments, keeping string and raw-string literals (struct tags are
/// raw strings, and constants hold URLs with `//` in them).
fn strip_comments(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                if b[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if c == '"' || c == '`' || c == '\'' {
            out.push(c);
            i += 1;
            while i < b.len() && b[i] != c {
                if b[i] == '\\' && c != '`' {
                    out.push(b[i]);
                    i += 1;
                }
                if i < b.len() {
                    out.push(b[i]);
                }
                i += 1;
            }
            if i < b.len() {
                out.push(c);
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

pub fn parse_into(pkg: &mut GoPackage, path: &str, src: &str) -> Result<(), String> {
    let src = strip_comments(src);
    let lines: Vec<&str> = src.lines().collect();
    let mut i = 0;
    let mut in_imports = false;
    while i < lines.len() {
        let line = lines[i].trim();
        i += 1;
        if line == "import (" {
            in_imports = true;
            continue;
        }
        if in_imports {
            if line == ")" {
                in_imports = false;
            } else if let Some((alias, path)) = import_line(line) {
                pkg.imports.insert(alias, path);
            }
            continue;
        }
        if let Some(l) = line.strip_prefix("import ") {
            if let Some((alias, path)) = import_line(l) {
                pkg.imports.insert(alias, path);
            }
            continue;
        }
        let Some(rest) = line.strip_prefix("type ") else {
            continue;
        };
        if rest.starts_with('(') {
            return Err(format!(
                "{path}:{i}: grouped type declarations are not supported"
            ));
        }
        let (name, def) = rest
            .split_once(char::is_whitespace)
            .ok_or(format!("{path}:{i}: bad type line"))?;
        let def = def.trim();
        if def == "struct{}" || def == "struct {}" {
            pkg.structs.insert(name.to_string(), Vec::new());
        } else if def.starts_with("struct") && def.ends_with('{') {
            let mut fields = Vec::new();
            let mut depth = 1;
            while i < lines.len() {
                let l = lines[i].trim();
                i += 1;
                if l == "}" && depth == 1 {
                    break;
                }
                depth += l.matches('{').count();
                depth -= l.matches('}').count();
                if l.is_empty() {
                    continue;
                }
                if depth != 1 {
                    return Err(format!("{path}:{i}: nested struct types are not supported"));
                }
                fields.extend(parse_field(l).map_err(|e| format!("{path}:{i}: {e}"))?);
            }
            pkg.structs.insert(name.to_string(), fields);
        } else if !def.starts_with("interface") && !def.starts_with("func") && !def.starts_with('=')
        {
            pkg.named.insert(name.to_string(), def.to_string());
        }
    }
    Ok(())
}

fn import_line(line: &str) -> Option<(String, String)> {
    let (alias, path) = match line.split_once(char::is_whitespace) {
        Some((a, p)) => (Some(a), p.trim()),
        None => (None, line),
    };
    let path = path.trim_matches('"').to_string();
    let alias = alias
        .map(str::to_string)
        .unwrap_or_else(|| path.rsplit('/').next().unwrap_or("").to_string());
    Some((alias, path))
}

fn parse_field(line: &str) -> Result<Vec<GoField>, String> {
    let (decl, tag) = match line.find('`') {
        Some(p) => (line[..p].trim(), line[p..].trim_matches('`')),
        None => (line, ""),
    };
    let json = tag_value(tag, "json");
    let protobuf = tag_value(tag, "protobuf");
    let parts: Vec<&str> = decl.split_whitespace().collect();
    match parts.as_slice() {
        [ty] => Ok(vec![GoField {
            name: String::new(),
            ty: ty.to_string(),
            embedded: true,
            json,
            protobuf,
        }]),
        [names @ .., ty] => {
            let names = names.join(" ");
            Ok(names
                .split(',')
                .map(|n| GoField {
                    name: n.trim().to_string(),
                    ty: ty.to_string(),
                    embedded: false,
                    json: json.clone(),
                    protobuf: protobuf.clone(),
                })
                .collect())
        }
        [] => Err(format!("bad field `{line}`")),
    }
}

/// `json:"name,omitempty" protobuf:"bytes,1,opt,name=x"` → the value for `key`.
fn tag_value(tag: &str, key: &str) -> Option<String> {
    let mut rest = tag;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let colon = rest.find(':')?;
        let k = &rest[..colon];
        let after = &rest[colon + 1..];
        let after = after.strip_prefix('"')?;
        let end = after.find('"')?;
        if k == key {
            return Some(after[..end].to_string());
        }
        rest = &after[end + 1..];
    }
    None
}
