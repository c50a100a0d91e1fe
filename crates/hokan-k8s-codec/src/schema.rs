//! The decoding schema: one entry per protobuf message of the Kubernetes API.
//! Each field carries both its wire form (number, type) and its JSON form
//! (name and the Go struct-tag rules that decide when it is printed). The
//! tables are in `schema_generated.rs`, written by the `gen-schema` example
//! from the upstream API definitions (see `SOURCE.md`) and committed, so
//! nothing is parsed at build time.

/// Messages whose JSON is produced by a hand-written marshaller upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    None,
    Time,
    MicroTime,
    Duration,
    FieldsV1,
    RawExtension,
    IntOrString,
    Quantity,
    /// A named Go slice: a message with one repeated field 1 on the wire, an array in JSON.
    Items,
    /// A message with no Go struct behind it; decoding it is refused. The
    /// generator emits it only when an upstream update brings such a type.
    #[allow(dead_code)]
    Unsupported,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    Bool,
    Int32,
    Int64,
    String,
    Bytes,
    Message(u16),
    /// `map<string, T>`.
    Map(&'static Ty),
}

/// `json:",omitempty"`: a zero scalar, nil pointer or empty list/map is left out.
pub(crate) const OMITEMPTY: u8 = 1;
/// `json:",omitzero"`: left out when zero (for times: the zero time).
pub(crate) const OMITZERO: u8 = 2;
/// A Go pointer: present on the wire only when set, so a zero value is printed.
pub(crate) const POINTER: u8 = 4;
pub(crate) const REPEATED: u8 = 8;
/// An embedded struct whose fields are printed in the parent object.
pub(crate) const INLINE: u8 = 16;

#[derive(Debug)]
pub(crate) struct Field {
    pub number: u32,
    pub json: &'static str,
    pub flags: u8,
    pub ty: Ty,
}

#[derive(Debug)]
pub(crate) struct Message {
    /// Fully qualified proto name, e.g. `k8s.io.api.apps.v1.Deployment`.
    pub name: &'static str,
    pub special: Special,
    /// The Go struct embeds TypeMeta: a top-level kind (or a list of them).
    pub kind: bool,
    /// Sorted by field number.
    pub fields: &'static [Field],
}

/// A message in the generated tables: `m!("name" [fields])`,
/// `m!("name" kind [fields])` for a top-level type, `m!("name" Special)` for
/// one with a hand-written JSON form, `m!("name" Special [fields])` otherwise.
macro_rules! m {
    ($name:literal [$($field:expr),* $(,)?]) => {
        m!(@ $name, None, false, [$($field),*])
    };
    ($name:literal kind [$($field:expr),* $(,)?]) => {
        m!(@ $name, None, true, [$($field),*])
    };
    ($name:literal $special:ident $([$($field:expr),* $(,)?])?) => {
        m!(@ $name, $special, false, [$($($field),*)?])
    };
    (@ $name:literal, $special:ident, $kind:literal, [$($field:expr),*]) => {
        $crate::schema::Message {
            name: $name,
            special: $crate::schema::Special::$special,
            kind: $kind,
            fields: &[$($field),*],
        }
    };
}

/// A field in the generated tables: `f!(number, "json name", type[, flags])`.
macro_rules! f {
    ($number:literal, $json:literal, $ty:expr) => {
        f!($number, $json, $ty, 0)
    };
    ($number:literal, $json:literal, $ty:expr, $flags:expr) => {
        $crate::schema::Field {
            number: $number,
            json: $json,
            flags: $flags,
            ty: $ty,
        }
    };
}

#[rustfmt::skip]
#[path = "schema_generated.rs"]
mod generated;

pub(crate) use generated::{MESSAGES, PACKAGES};

/// The message for a top-level type: looked up in the package of its
/// apiVersion, then among apimachinery's meta/v1 types (Status,
/// DeleteOptions, WatchEvent, …), which every group version registers.
pub(crate) fn find_kind(api_version: &str, kind: &str) -> Option<u16> {
    let by_name = |name: &str| {
        MESSAGES
            .binary_search_by(|m| m.name.cmp(name))
            .ok()
            .map(|i| i as u16)
    };
    let pkg = PACKAGES
        .binary_search_by(|(v, _)| (*v).cmp(api_version))
        .ok()
        .map(|i| PACKAGES[i].1);
    if kind.is_empty() || kind.contains('.') {
        return None;
    }
    pkg.and_then(|p| by_name(&format!("{p}.{kind}")))
        .or_else(|| by_name(&format!("k8s.io.apimachinery.pkg.apis.meta.v1.{kind}")))
}

/// Every (apiVersion, kind) this build can decode from protobuf.
pub(crate) fn kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    PACKAGES.iter().flat_map(|(v, pkg)| {
        MESSAGES
            .iter()
            .filter(move |m| {
                m.kind
                    && m.name
                        .strip_prefix(pkg)
                        .is_some_and(|r| r.starts_with('.') && !r[1..].contains('.'))
            })
            .map(move |m| (*v, &m.name[pkg.len() + 1..]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    fn ty_text(ty: &Ty) -> String {
        match ty {
            Ty::Bool => "bool".into(),
            Ty::Int32 => "int32".into(),
            Ty::Int64 => "int64".into(),
            Ty::String => "string".into(),
            Ty::Bytes => "bytes".into(),
            Ty::Message(i) => format!("#{i}"),
            Ty::Map(t) => format!("map<{}>", ty_text(t)),
        }
    }

    /// The tables as text, the way `gen-schema` prints them before taking
    /// the digest it writes into `schema_generated.rs`.
    fn canonical() -> String {
        let mut out = String::new();
        for m in MESSAGES {
            writeln!(out, "{} {:?} {}", m.name, m.special, u8::from(m.kind)).unwrap();
            for f in m.fields {
                let ty = ty_text(&f.ty);
                writeln!(out, " {} {} {} {ty}", f.number, f.json, f.flags).unwrap();
            }
        }
        for (v, pkg) in PACKAGES {
            writeln!(out, "{v} {pkg}").unwrap();
        }
        out
    }

    fn fnv1a(text: &str) -> u64 {
        text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    /// `schema_generated.rs` is regenerated, never edited: its tables must
    /// still be the ones whose counts and digest the generator recorded.
    #[test]
    fn generated_tables_match_their_digest() {
        let fields: usize = MESSAGES.iter().map(|m| m.fields.len()).sum();
        let hint = "schema_generated.rs was edited by hand; regenerate it (see SOURCE.md)";
        assert_eq!(MESSAGES.len(), generated::MESSAGE_COUNT, "{hint}");
        assert_eq!(fields, generated::FIELD_COUNT, "{hint}");
        assert_eq!(fnv1a(&canonical()), generated::DIGEST, "{hint}");
    }

    /// What the decoder relies on: names sorted for binary search, fields
    /// sorted and unique, message references in range, special types shaped
    /// as their decoders expect, packages sorted and pointing at messages.
    #[test]
    fn generated_tables_are_consistent() {
        assert!(MESSAGES.len() <= usize::from(u16::MAX));
        for w in MESSAGES.windows(2) {
            assert!(w[0].name < w[1].name, "{} / {}", w[0].name, w[1].name);
        }
        let in_range = |ty: &Ty| match ty {
            Ty::Message(i) | Ty::Map(Ty::Message(i)) => usize::from(*i) < MESSAGES.len(),
            Ty::Map(Ty::Map(_)) => false,
            _ => true,
        };
        for m in MESSAGES {
            for w in m.fields.windows(2) {
                assert!(w[0].number < w[1].number, "{}: field order", m.name);
            }
            for f in m.fields {
                assert!(
                    f.number > 0 && in_range(&f.ty),
                    "{}: field {}",
                    m.name,
                    f.number
                );
                assert!(f.flags < 32, "{}: field {} flags", m.name, f.number);
                assert_eq!(
                    f.json.is_empty(),
                    f.flags & INLINE != 0 || m.special == Special::Items
                );
            }
            match m.special {
                Special::None => {}
                Special::Items => {
                    assert!(matches!(m.fields, [f] if f.number == 1 && f.flags == REPEATED))
                }
                _ => assert!(m.fields.is_empty() && !m.kind, "{}", m.name),
            }
        }
        for w in PACKAGES.windows(2) {
            assert!(w[0].0 < w[1].0);
        }
        for (v, pkg) in PACKAGES {
            let prefix = format!("{pkg}.");
            assert!(
                MESSAGES.iter().any(|m| m.name.starts_with(&prefix)),
                "{v}: no messages in {pkg}"
            );
        }
    }
}
