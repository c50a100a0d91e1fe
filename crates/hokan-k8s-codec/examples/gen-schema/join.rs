//! Joins a package's proto messages with its Go structs and writes the
//! generated file, in the macros and types `src/schema.rs` defines.

use crate::golang::{self, GoPackage};
use crate::proto::{self, ProtoField, ProtoFile};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

pub struct Package {
    pub import_path: String,
    pub api_version: String,
    pub proto: ProtoFile,
    pub go: GoPackage,
}

pub fn load_package(import_path: &str, dir: &Path) -> Result<Package, String> {
    let import_path = import_path.to_string();
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .map_err(|e| format!("{}/{name}: {e}", dir.display()))
    };
    let proto = proto::parse(
        &format!("{import_path}/generated.proto"),
        &read("generated.proto")?,
    )?;
    if proto.go_package != import_path {
        return Err(format!("{import_path}: go_package is {}", proto.go_package));
    }
    let mut go = GoPackage::default();
    let mut group = None;
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        if !name.ends_with(".go") || name.ends_with("_test.go") {
            continue;
        }
        let src = read(&name)?;
        let meta = name == "doc.go" || name == "register.go";
        // Only the files declaring protobuf-tagged structs (types.go and, in
        // apimachinery, a few more) say anything about the wire form.
        if !meta && !src.contains("protobuf:\"") {
            continue;
        }
        // The API group comes from `+groupName=` in doc.go, or from
        // `const GroupName = "…"` in register.go where doc.go has none.
        for line in src.lines() {
            if let Some(g) = line.trim().strip_prefix("// +groupName=") {
                group = Some(g.trim().to_string());
            }
            if let Some(rest) = line.trim().strip_prefix("const GroupName = ") {
                group.get_or_insert_with(|| rest.trim().trim_matches('"').to_string());
            }
        }
        if !meta {
            golang::parse_into(&mut go, &format!("{import_path}/{name}"), &src)?;
        }
    }
    let version = import_path.rsplit('/').next().unwrap().to_string();
    let api_version = match group.as_deref() {
        None => String::new(),
        Some("") => version,
        Some(g) => format!("{g}/{version}"),
    };
    Ok(Package {
        import_path,
        api_version,
        proto,
        go,
    })
}

/// Messages whose JSON form is written by hand-coded marshallers in
/// apimachinery rather than by their struct tags.
fn special(full: &str) -> Option<&'static str> {
    Some(match full {
        "k8s.io.apimachinery.pkg.apis.meta.v1.Time" => "Time",
        "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime" => "MicroTime",
        "k8s.io.apimachinery.pkg.apis.meta.v1.Duration" => "Duration",
        "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1" => "FieldsV1",
        "k8s.io.apimachinery.pkg.runtime.RawExtension" => "RawExtension",
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => "IntOrString",
        "k8s.io.apimachinery.pkg.api.resource.Quantity"
        | "k8s.io.apimachinery.pkg.api.resource.QuantityValue" => "Quantity",
        _ => return None,
    })
}

/// Field flags, with the values `src/schema.rs` gives them, and the short
/// names the generated file imports them as.
const OMITEMPTY: u8 = 1;
const OMITZERO: u8 = 2;
const POINTER: u8 = 4;
const REPEATED: u8 = 8;
const INLINE: u8 = 16;
const FLAG_NAMES: &[(u8, &str, &str)] = &[
    (OMITEMPTY, "E", "OMITEMPTY"),
    (OMITZERO, "Z", "OMITZERO"),
    (POINTER, "P", "POINTER"),
    (REPEATED, "R", "REPEATED"),
    (INLINE, "I", "INLINE"),
];

/// A field's value type; `Message` holds the target's index in the table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Base {
    Bool,
    Int32,
    Int64,
    String,
    Bytes,
    Message(usize),
}

impl Base {
    /// How the generated file spells it, and the import that spelling needs.
    fn code(self) -> (String, &'static str) {
        match self {
            Base::Bool => ("Bool".into(), "Bool"),
            Base::Int32 => ("Int32".into(), "Int32"),
            Base::Int64 => ("Int64".into(), "Int64"),
            Base::String => ("Str".into(), "String as Str"),
            Base::Bytes => ("Bytes".into(), "Bytes"),
            Base::Message(i) => (format!("M({i})"), "Message as M"),
        }
    }

    /// The spelling in the canonical text the digest is taken of; the
    /// schema tests print `Ty` values the same way.
    fn canonical(self) -> String {
        match self {
            Base::Bool => "bool".into(),
            Base::Int32 => "int32".into(),
            Base::Int64 => "int64".into(),
            Base::String => "string".into(),
            Base::Bytes => "bytes".into(),
            Base::Message(i) => format!("#{i}"),
        }
    }
}

struct OutField {
    number: u32,
    json: String,
    flags: u8,
    ty: Base,
    /// `map<string, ty>`.
    map: bool,
}

/// 64-bit FNV-1a, the digest the generated file records of its tables.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The generated file: see `src/schema.rs` for the types and the `m!` and
/// `f!` macros it is written in. `sources` names the repositories and
/// commits the packages were read from.
pub fn generate(packages: &[Package], sources: &[(&str, &str)]) -> Result<String, String> {
    let mut index = BTreeMap::new();
    for p in packages {
        for m in p.proto.messages.keys() {
            index.insert(format!("{}.{m}", p.proto.package), index.len());
        }
    }
    // Message ids are positions in name order, so the runtime can binary-search by name.
    let order: Vec<String> = index.keys().cloned().collect();
    if order.len() > usize::from(u16::MAX) {
        return Err(format!("{} messages do not fit the u16 ids", order.len()));
    }
    let id: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut body = String::new();
    let mut canon = String::new();
    let mut imports = std::collections::BTreeSet::new();
    let mut flags_used = 0u8;
    let mut field_count = 0;
    let mut last_package = "";
    for (i, full) in order.iter().enumerate() {
        let p = packages
            .iter()
            .find(|p| {
                full.strip_prefix(&p.proto.package)
                    .is_some_and(|r| r.starts_with('.') && !r[1..].contains('.'))
            })
            .unwrap();
        if p.proto.package != last_package {
            last_package = &p.proto.package;
            let version = if p.api_version.is_empty() {
                String::new()
            } else {
                format!(" ({})", p.api_version)
            };
            writeln!(body, "    // {}{version}", p.import_path).unwrap();
        }
        let name = &full[p.proto.package.len() + 1..];
        let pfields = &p.proto.messages[name];
        let (special, fields, kind) = message(packages, p, full, name, pfields, &id)?;
        writeln!(canon, "{full} {special} {}", u8::from(kind)).unwrap();
        let head = match (special, kind) {
            ("None", false) => format!("{full:?}"),
            ("None", true) => format!("{full:?} kind"),
            (s, false) => format!("{full:?} {s}"),
            (s, true) => return Err(format!("{full}: special type {s} with TypeMeta")),
        };
        if special != "None" && special != "Items" {
            writeln!(body, "    /* {i} */ m!({head}),").unwrap();
            continue;
        }
        writeln!(body, "    /* {i} */ m!({head} [").unwrap();
        for f in &fields {
            field_count += 1;
            let (ty, import) = f.ty.code();
            imports.insert(import);
            let (ty, canon_ty) = if f.map {
                imports.insert("Map");
                (format!("Map(&{ty})"), format!("map<{}>", f.ty.canonical()))
            } else {
                (ty, f.ty.canonical())
            };
            writeln!(canon, " {} {} {} {canon_ty}", f.number, f.json, f.flags).unwrap();
            write!(body, "        f!({}, {:?}, {ty}", f.number, f.json).unwrap();
            if f.flags != 0 {
                flags_used |= f.flags;
                let names: Vec<&str> = FLAG_NAMES
                    .iter()
                    .filter(|(bit, ..)| f.flags & bit != 0)
                    .map(|(_, short, _)| *short)
                    .collect();
                write!(body, ", {}", names.join(" | ")).unwrap();
            }
            body.push_str("),\n");
        }
        body.push_str("    ]),\n");
    }
    let mut pkgs: Vec<(&str, &str)> = packages
        .iter()
        .filter(|p| !p.api_version.is_empty())
        .map(|p| (p.api_version.as_str(), p.proto.package.as_str()))
        .collect();
    pkgs.sort();
    for (v, pkg) in &pkgs {
        writeln!(canon, "{v} {pkg}").unwrap();
    }

    let mut out = String::new();
    out.push_str(
        "// @generated by `cargo run -p hokan-k8s-codec --example gen-schema`; do not edit by hand.\n\
         //\n\
         // The decoding schema of the Kubernetes API (types and macros in `schema.rs`),\n\
         // joined from the `generated.proto` files and Go struct tags of\n",
    );
    for (repo, commit) in sources {
        writeln!(out, "//     {repo:<24} {commit}").unwrap();
    }
    out.push_str(
        "// To regenerate, or to move to newer Kubernetes, see `SOURCE.md` at the crate root.\n\
         //\n\
         // m!(\"name\" [fields]): a message; m!(\"name\" kind [..]): a top-level type (its\n\
         // Go struct embeds TypeMeta); m!(\"name\" Time): JSON written by hand-coded\n\
         // marshallers; m!(\"name\" Items [..]): a named Go slice. f!(number, \"json name\",\n\
         // type[, flags]), where M(n) is MESSAGES[n] and the flags are\n\
         // E omitempty, Z omitzero, P pointer, R repeated, I inline.\n\n",
    );
    let mut ty_imports: Vec<&str> = imports.into_iter().collect();
    ty_imports.sort_by_key(|i| i.to_ascii_lowercase());
    writeln!(out, "use super::Ty::{{{}}};", ty_imports.join(", ")).unwrap();
    let flag_imports: Vec<String> = FLAG_NAMES
        .iter()
        .filter(|(bit, ..)| flags_used & bit != 0)
        .map(|(_, short, long)| format!("{long} as {short}"))
        .collect();
    if !flag_imports.is_empty() {
        writeln!(out, "use super::{{{}}};", flag_imports.join(", ")).unwrap();
    }
    writeln!(
        out,
        "\n/// Sorted by name; a message's id is its position.\n\
         pub(crate) static MESSAGES: &[super::Message] = &[\n{body}];\n"
    )
    .unwrap();
    out.push_str(
        "/// (apiVersion, proto package), sorted by apiVersion.\n\
         pub(crate) static PACKAGES: &[(&str, &str)] = &[\n",
    );
    for (v, pkg) in &pkgs {
        writeln!(out, "    ({v:?}, {pkg:?}),").unwrap();
    }
    out.push_str("];\n\n");
    writeln!(
        out,
        "// What the schema tests check the tables against.\n\
         #[cfg(test)]\n\
         pub(crate) const MESSAGE_COUNT: usize = {};\n\
         #[cfg(test)]\n\
         pub(crate) const FIELD_COUNT: usize = {field_count};\n\
         /// FNV-1a of the tables' canonical text (`schema::tests::canonical`).\n\
         #[cfg(test)]\n\
         pub(crate) const DIGEST: u64 = {:#018x};",
        order.len(),
        fnv1a(&canon)
    )
    .unwrap();
    Ok(out)
}

type Joined = (&'static str, Vec<OutField>, bool);

/// The Go struct behind `name`, following a named type defined as another
/// struct (`type MatchCondition v1.MatchCondition`).
fn go_struct<'a>(
    packages: &'a [Package],
    p: &'a Package,
    name: &str,
) -> Option<(&'a Package, &'a Vec<golang::GoField>)> {
    if let Some(s) = p.go.structs.get(name) {
        return Some((p, s));
    }
    let def = p.go.named.get(name)?;
    if !def
        .chars()
        .all(|c| c.is_alphanumeric() || c == '.' || c == '_')
    {
        return None;
    }
    match def.split_once('.') {
        None => go_struct(packages, p, def),
        Some((alias, target)) => {
            let path = p.go.imports.get(alias)?;
            let q = packages.iter().find(|q| &q.import_path == path)?;
            go_struct(packages, q, target)
        }
    }
}

fn message(
    packages: &[Package],
    p: &Package,
    full: &str,
    name: &str,
    pfields: &[ProtoField],
    id: &BTreeMap<&str, usize>,
) -> Result<Joined, String> {
    if let Some(s) = special(full) {
        return Ok((s, Vec::new(), false));
    }
    let err = |what: String| format!("{}: message {name}: {what}", p.import_path);
    let Some((gp, gofields)) = go_struct(packages, p, name) else {
        // A named slice (`type ExtraValue []string`) is wrapped in a message
        // with one repeated `items` field on the wire, and is a plain array in JSON.
        if p.go.named.get(name).is_some_and(|t| t.starts_with("[]"))
            && pfields.len() == 1
            && pfields[0].number == 1
            && pfields[0].repeated
        {
            let f = &pfields[0];
            return Ok((
                "Items",
                vec![OutField {
                    number: 1,
                    json: String::new(),
                    flags: REPEATED,
                    ty: ty(f, id)?,
                    map: false,
                }],
                false,
            ));
        }
        // No Go struct: a type Kubernetes keeps only for compatibility (meta
        // v1 `Fields`). Decoding it is refused at run time.
        return Ok(("Unsupported", Vec::new(), false));
    };
    let mut out = Vec::new();
    let mut kind = false;
    let mut seen = Vec::new();
    for g in gofields {
        let json = g.json.clone();
        let (jname, opts) = match &json {
            Some(j) => {
                let mut parts = j.split(',');
                (
                    parts.next().unwrap_or("").to_string(),
                    parts.map(str::to_string).collect::<Vec<_>>(),
                )
            }
            None if g.embedded => (String::new(), Vec::new()),
            None => (g.name.clone(), Vec::new()),
        };
        if jname == "-" {
            // Not in JSON; its wire number still counts as known.
            if let Some(n) = g
                .protobuf
                .as_deref()
                .and_then(|t| t.split(',').nth(1))
                .and_then(|n| n.parse().ok())
            {
                seen.push(n);
            }
            continue;
        }
        let Some(ptag) = &g.protobuf else {
            if g.embedded && g.ty.trim_start_matches('*').rsplit('.').next() == Some("TypeMeta") {
                // apiVersion and kind live in the storage envelope, not in the message.
                kind = true;
                continue;
            }
            return Err(err(format!(
                "field {} ({}) has JSON but no protobuf tag",
                g.name, g.ty
            )));
        };
        let number: u32 = ptag
            .split(',')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| err(format!("bad protobuf tag {ptag}")))?;
        let pf = pfields.iter().find(|f| f.number == number).ok_or_else(|| {
            err(format!(
                "field {} has protobuf number {number} missing from the .proto",
                g.name
            ))
        })?;
        seen.push(number);
        let mut flags = 0;
        for o in &opts {
            match o.as_str() {
                "omitempty" => flags |= OMITEMPTY,
                "omitzero" => flags |= OMITZERO,
                "inline" | "" => {}
                other => {
                    return Err(err(format!(
                        "field {}: unknown json option {other}",
                        g.name
                    )));
                }
            }
        }
        if g.ty.starts_with('*') {
            flags |= POINTER;
        }
        if pf.repeated && !pf.map {
            flags |= REPEATED;
        }
        if g.embedded && jname.is_empty() {
            flags |= INLINE;
        }
        let is_slice = g.ty.starts_with("[]") && g.ty != "[]byte";
        if (pf.repeated && !pf.map) != is_slice && !is_named_slice(gp, &g.ty) {
            return Err(err(format!(
                "field {}: Go type {} and proto repeated={} disagree",
                g.name, g.ty, pf.repeated
            )));
        }
        out.push(OutField {
            number,
            json: jname,
            flags,
            ty: ty(pf, id).map_err(&err)?,
            map: pf.map,
        });
    }
    for f in pfields {
        if !seen.contains(&f.number) {
            return Err(err(format!(
                "proto field {} ({}) has no Go field",
                f.name, f.number
            )));
        }
    }
    out.sort_by_key(|f| f.number);
    Ok(("None", out, kind))
}

fn is_named_slice(p: &Package, ty: &str) -> bool {
    p.go.named
        .get(ty.trim_start_matches('*'))
        .is_some_and(|t| t.starts_with("[]") && t != "[]byte")
}

fn ty(f: &ProtoField, id: &BTreeMap<&str, usize>) -> Result<Base, String> {
    Ok(match f.ty.as_str() {
        "string" => Base::String,
        "bytes" => Base::Bytes,
        "bool" => Base::Bool,
        "int32" => Base::Int32,
        "int64" => Base::Int64,
        m => Base::Message(
            *id.get(m)
                .ok_or_else(|| format!("unknown message type {m}"))?,
        ),
    })
}
