//! A parser for the subset of proto2 that go-to-protobuf writes into Kubernetes'
//! `generated.proto` files: one package, flat messages, `optional`/`repeated`
//! scalar and message fields, and `map<string, T>` fields. Anything else is an
//! error, so a future upstream file that uses more of the language is noticed
//! when the schema is generated instead of being decoded wrongly.

use std::collections::BTreeMap;

#[derive(Debug)]
pub struct ProtoFile {
    pub package: String,
    pub go_package: String,
    pub messages: BTreeMap<String, Vec<ProtoField>>,
}

#[derive(Debug, Clone)]
pub struct ProtoField {
    pub name: String,
    pub number: u32,
    pub repeated: bool,
    /// The value type: a scalar name (`string`, `int32`, …) or a fully
    /// qualified message name without the leading dot.
    pub ty: String,
    /// For `map<string, V>` fields: true, and `ty` is V.
    pub map: bool,
}

const SCALARS: &[&str] = &["string", "bytes", "bool", "int32", "int64"];

fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut it = src.chars().peekable();
    let mut in_str = false;
    while let Some(c) = it.next() {
        if in_str {
            out.push(c);
            if c == '\\' {
                if let Some(n) = it.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match (c, it.peek()) {
            ('"', _) => {
                in_str = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in it.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                it.next();
                let mut prev = ' ';
                for n in it.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

fn tokens(src: &str) -> Vec<String> {
    let mut toks = Vec::new();
    let mut cur = String::new();
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            let mut s = String::from('"');
            for n in chars.by_ref() {
                s.push(n);
                if n == '"' {
                    break;
                }
            }
            toks.push(s);
        } else if c.is_whitespace() || "{};=<>,[]()".contains(c) {
            if !cur.is_empty() {
                toks.push(std::mem::take(&mut cur));
            }
            if !c.is_whitespace() {
                toks.push(c.to_string());
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        toks.push(cur);
    }
    toks
}

pub fn parse(path: &str, src: &str) -> Result<ProtoFile, String> {
    let toks = tokens(&strip_comments(src));
    let mut i = 0;
    let mut file = ProtoFile {
        package: String::new(),
        go_package: String::new(),
        messages: BTreeMap::new(),
    };
    let err = |i: usize, what: &str| format!("{path}: token {i}: {what}");
    let tok = |i: usize| toks.get(i).map(String::as_str).unwrap_or("");
    let mut raw: BTreeMap<String, Vec<ProtoField>> = BTreeMap::new();
    while i < toks.len() {
        match tok(i) {
            "syntax" => {
                if tok(i + 2) != "\"proto2\"" {
                    return Err(err(i, "only proto2 is supported"));
                }
                i += 4;
            }
            "package" => {
                file.package = tok(i + 1).to_string();
                i += 3;
            }
            "import" => i += 3,
            "option" => {
                if tok(i + 1) == "go_package" {
                    file.go_package = tok(i + 3).trim_matches('"').to_string();
                }
                while tok(i) != ";" {
                    i += 1;
                }
                i += 1;
            }
            "message" => {
                let name = tok(i + 1).to_string();
                if tok(i + 2) != "{" {
                    return Err(err(i, "expected { after message name"));
                }
                i += 3;
                let mut fields = Vec::new();
                while tok(i) != "}" {
                    let (f, next) = parse_field(&toks, i)
                        .map_err(|e| err(i, &format!("message {name}: {e}")))?;
                    fields.push(f);
                    i = next;
                }
                i += 1;
                raw.insert(name, fields);
            }
            other => return Err(err(i, &format!("unexpected `{other}`"))),
        }
    }
    // Resolve relative type names against this file's package: Kubernetes'
    // files declare no nested scopes, so a bare name is always a sibling.
    for (name, mut fields) in raw {
        for f in &mut fields {
            if let Some(abs) = f.ty.strip_prefix('.') {
                f.ty = abs.to_string();
            } else if !SCALARS.contains(&f.ty.as_str()) {
                f.ty = format!("{}.{}", file.package, f.ty);
            }
        }
        file.messages.insert(name, fields);
    }
    Ok(file)
}

fn parse_field(toks: &[String], mut i: usize) -> Result<(ProtoField, usize), String> {
    let tok = |i: usize| toks.get(i).map(String::as_str).unwrap_or("");
    let (repeated, map, ty) = match tok(i) {
        "optional" | "required" => (false, false, tok(i + 1).to_string()),
        "repeated" => (true, false, tok(i + 1).to_string()),
        "map" => {
            // map < string , V >
            if tok(i + 1) != "<" || tok(i + 2) != "string" || tok(i + 3) != "," || tok(i + 5) != ">"
            {
                return Err("only map<string, V> is supported".into());
            }
            i += 4;
            (true, true, tok(i).to_string())
        }
        other => return Err(format!("unexpected field label `{other}`")),
    };
    let name = tok(i + 2).to_string();
    if tok(i + 3) != "=" || tok(i + 5) != ";" {
        return Err(format!(
            "field {name}: options and unusual syntax are not supported"
        ));
    }
    let number = tok(i + 4)
        .parse()
        .map_err(|_| format!("field {name}: bad number"))?;
    if !ty.starts_with('.') && !ty.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return Err(format!("field {name}: bad type {ty}"));
    }
    if ty.chars().next().is_some_and(|c| c.is_ascii_lowercase()) && !SCALARS.contains(&ty.as_str())
    {
        return Err(format!("field {name}: scalar type {ty} is not supported"));
    }
    Ok((
        ProtoField {
            name,
            number,
            repeated,
            ty,
            map,
        },
        i + 6,
    ))
}
