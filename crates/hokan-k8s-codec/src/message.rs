//! Protobuf → JSON for Kubernetes API types, by the rules Go's
//! `encoding/json` applies to the structs the API server decodes into.
//!
//! Presence is decided per field from the wire and the Go declaration:
//! Go's generated marshallers always write non-pointer scalars and structs,
//! so a zero value on the wire is printed unless the field is `omitempty`;
//! a field missing from the wire is a nil pointer, nil slice or nil map
//! (printed as `null` unless `omitempty`), or the zero value of a struct.

use crate::schema::{
    Field, INLINE, MESSAGES, Message, OMITEMPTY, OMITZERO, POINTER, REPEATED, Special, Ty,
};
use crate::wire::{self, LEN, MAX_DEPTH, Reader, VARINT, malformed};
use crate::{Error, gotext, quantity};
use base64::Engine;
use serde_json::{Map, Value};

/// The wire value of one field, gathered before the object is built.
enum Slot<'a> {
    Absent,
    Scalar(Value),
    Bytes(&'a [u8]),
    /// A singular message: the last occurrence wins.
    Message(&'a [u8]),
    List(Vec<Value>),
    Map(Map<String, Value>),
}

pub(crate) fn message(id: u16, buf: Option<&[u8]>, depth: u32) -> Result<Value, Error> {
    let msg = &MESSAGES[usize::from(id)];
    if depth > MAX_DEPTH {
        return Err(malformed("messages nested too deeply"));
    }
    match msg.special {
        Special::None => plain(msg, buf.unwrap_or_default(), depth),
        special => special_value(special, msg, buf, depth),
    }
}

fn plain(msg: &'static Message, buf: &[u8], depth: u32) -> Result<Value, Error> {
    let mut slots: Vec<Slot> = msg.fields.iter().map(|_| Slot::Absent).collect();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (number, wire) = r.key()?;
        let Ok(i) = msg.fields.binary_search_by_key(&number, |f| f.number) else {
            r.skip(wire, number, depth)?;
            continue;
        };
        let f = &msg.fields[i];
        read_field(f, &mut slots[i], wire, &mut r, depth).map_err(|e| e.in_field(f.json))?;
    }
    let mut obj = Map::new();
    let mut inline = Vec::new();
    for (f, slot) in msg.fields.iter().zip(slots) {
        let v = render(f, slot, depth).map_err(|e| e.in_field(f.json))?;
        match v {
            Some(v) if f.flags & INLINE != 0 => inline.push(v),
            Some(v) => {
                obj.insert(f.json.to_string(), v);
            }
            None => {}
        }
    }
    // Fields promoted from an embedded struct lose to the outer struct's own
    // fields of the same name, as in encoding/json.
    for v in inline {
        if let Value::Object(m) = v {
            for (k, v) in m {
                obj.entry(k).or_insert(v);
            }
        }
    }
    Ok(Value::Object(obj))
}

fn read_field<'a>(
    f: &Field,
    slot: &mut Slot<'a>,
    wire: u8,
    r: &mut Reader<'a>,
    depth: u32,
) -> Result<(), Error> {
    if let Ty::Map(value_ty) = f.ty {
        let entry = expect_len(wire, r)?;
        let (k, v) = map_entry(value_ty, entry, depth)?;
        if !matches!(slot, Slot::Map(_)) {
            *slot = Slot::Map(Map::new());
        }
        if let Slot::Map(m) = slot {
            m.insert(k, v);
        }
        return Ok(());
    }
    if f.flags & REPEATED != 0 {
        if !matches!(slot, Slot::List(_)) {
            *slot = Slot::List(Vec::new());
        }
        let Slot::List(list) = slot else {
            unreachable!()
        };
        if wire == LEN && matches!(f.ty, Ty::Bool | Ty::Int32 | Ty::Int64) {
            // Packed: accepted like Go's generated code does, though Go writes unpacked.
            let mut p = Reader::new(r.bytes()?);
            while !p.done() {
                list.push(scalar(f.ty, p.varint()?));
            }
        } else {
            list.push(element(f.ty, wire, r, depth)?);
        }
        return Ok(());
    }
    *slot = match f.ty {
        Ty::Bool | Ty::Int32 | Ty::Int64 => Slot::Scalar(scalar(f.ty, expect_varint(wire, r)?)),
        Ty::String => Slot::Scalar(Value::String(gotext::string(expect_len(wire, r)?))),
        Ty::Bytes => Slot::Bytes(expect_len(wire, r)?),
        Ty::Message(_) => Slot::Message(expect_len(wire, r)?),
        Ty::Map(_) => unreachable!("handled above"),
    };
    Ok(())
}

fn expect_len<'a>(wire: u8, r: &mut Reader<'a>) -> Result<&'a [u8], Error> {
    if wire != LEN {
        return Err(malformed(&format!(
            "wire type {wire} where a length-delimited field was expected"
        )));
    }
    r.bytes()
}

fn expect_varint(wire: u8, r: &mut Reader) -> Result<u64, Error> {
    if wire != VARINT {
        return Err(malformed(&format!(
            "wire type {wire} where a varint was expected"
        )));
    }
    r.varint()
}

fn scalar(ty: Ty, v: u64) -> Value {
    match ty {
        Ty::Bool => Value::Bool(v != 0),
        // Go's generated code truncates to the field's width.
        Ty::Int32 => Value::from(v as i64 as i32),
        _ => Value::from(v as i64),
    }
}

/// One value of a repeated field or a map entry.
fn element(ty: Ty, wire: u8, r: &mut Reader, depth: u32) -> Result<Value, Error> {
    Ok(match ty {
        Ty::Bool | Ty::Int32 | Ty::Int64 => scalar(ty, expect_varint(wire, r)?),
        Ty::String => Value::String(gotext::string(expect_len(wire, r)?)),
        Ty::Bytes => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(expect_len(wire, r)?))
        }
        Ty::Message(id) => message(id, Some(expect_len(wire, r)?), depth + 1)?,
        Ty::Map(_) => return Err(malformed("map inside a list")),
    })
}

fn map_entry(value_ty: &Ty, entry: &[u8], depth: u32) -> Result<(String, Value), Error> {
    let mut r = Reader::new(entry);
    let mut key = String::new();
    let mut value = None;
    while !r.done() {
        let (n, w) = r.key()?;
        match n {
            1 => key = gotext::string(expect_len(w, &mut r)?),
            2 => value = Some(element(*value_ty, w, &mut r, depth)?),
            _ => r.skip(w, n, depth)?,
        }
    }
    // A missing value is the zero value of the map's value type.
    let value = match value {
        Some(v) => v,
        None => match value_ty {
            Ty::Bool => Value::Bool(false),
            Ty::Int32 | Ty::Int64 => Value::from(0),
            Ty::String => Value::String(String::new()),
            // Go's generated code starts a bytes map value as `[]byte{}`.
            Ty::Bytes => Value::String(String::new()),
            Ty::Message(id) => message(*id, None, depth + 1)?,
            Ty::Map(_) => Value::Null,
        },
    };
    Ok((key, value))
}

fn is_zero_scalar(v: &Value) -> bool {
    match v {
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// The JSON for one field, or None when Go would leave it out.
fn render(f: &Field, slot: Slot, depth: u32) -> Result<Option<Value>, Error> {
    let omit = f.flags & (OMITEMPTY | OMITZERO) != 0;
    let nil = if omit { None } else { Some(Value::Null) };
    Ok(match slot {
        Slot::Absent => {
            if f.flags & (REPEATED | POINTER) != 0 || matches!(f.ty, Ty::Map(_) | Ty::Bytes) {
                nil
            } else {
                match f.ty {
                    Ty::Bool => (!omit).then_some(Value::Bool(false)),
                    Ty::Int32 | Ty::Int64 => (!omit).then(|| Value::from(0)),
                    Ty::String => (!omit).then(|| Value::String(String::new())),
                    Ty::Message(id) if MESSAGES[usize::from(id)].special == Special::Items => nil,
                    Ty::Message(id) => struct_value(f, id, None, depth)?,
                    Ty::Bytes | Ty::Map(_) => unreachable!("handled above"),
                }
            }
        }
        Slot::Scalar(v) => (f.flags & POINTER != 0 || !omit || !is_zero_scalar(&v)).then_some(v),
        Slot::Bytes(b) => (f.flags & POINTER != 0 || !omit || !b.is_empty())
            .then(|| Value::String(base64::engine::general_purpose::STANDARD.encode(b))),
        Slot::Message(b) => match f.ty {
            Ty::Message(id) => struct_value(f, id, Some(b), depth)?,
            _ => unreachable!("only message fields hold message bytes"),
        },
        Slot::List(v) if v.is_empty() => nil,
        Slot::List(v) => Some(Value::Array(v)),
        Slot::Map(m) => Some(Value::Object(m)),
    })
}

/// A struct-typed field. Go's `omitempty` never drops a struct (only a nil
/// pointer to one); `omitzero` drops a zero time.
fn struct_value(f: &Field, id: u16, b: Option<&[u8]>, depth: u32) -> Result<Option<Value>, Error> {
    let v = message(id, b, depth + 1)?;
    let special = MESSAGES[usize::from(id)].special;
    if f.flags & OMITZERO != 0
        && f.flags & POINTER == 0
        && matches!(special, Special::Time | Special::MicroTime)
        && v.is_null()
    {
        return Ok(None);
    }
    if special == Special::Items && v.is_null() && f.flags & OMITEMPTY != 0 {
        return Ok(None);
    }
    Ok(Some(v))
}

/// The hand-written marshallers of apimachinery. `buf` is None for a field
/// missing from the wire, which in Go is the type's zero value.
fn special_value(
    special: Special,
    msg: &Message,
    buf: Option<&[u8]>,
    depth: u32,
) -> Result<Value, Error> {
    let b = buf.unwrap_or_default();
    let int = |v: &wire::Value| match v {
        wire::Value::Varint(v) => Ok(*v),
        wire::Value::Bytes(_) => Err(malformed("wrong wire type for an integer")),
    };
    let bytes = |v: wire::Value<'_>| match v {
        wire::Value::Bytes(b) => Ok(b.to_vec()),
        wire::Value::Varint(_) => Err(malformed("wrong wire type for bytes")),
    };
    Ok(match special {
        Special::Time | Special::MicroTime => {
            if b.is_empty() {
                return Ok(Value::Null);
            }
            let (mut secs, mut nanos) = (0i64, 0i64);
            wire::small_fields(b, |n, v| {
                match n {
                    1 => secs = int(&v)? as i64,
                    2 => nanos = i64::from(int(&v)? as i32),
                    _ => {}
                }
                Ok(())
            })?;
            let text = if special == Special::Time {
                gotext::time(secs)
            } else {
                gotext::micro_time(secs, nanos)
            };
            text.map_or(Value::Null, Value::String)
        }
        Special::Duration => {
            let mut nanos = 0i64;
            wire::small_fields(b, |n, v| {
                if n == 1 {
                    nanos = int(&v)? as i64;
                }
                Ok(())
            })?;
            Value::String(gotext::duration(nanos))
        }
        Special::IntOrString => {
            let (mut ty, mut int_val, mut str_val) = (0i64, 0i32, String::new());
            wire::small_fields(b, |n, v| {
                match n {
                    1 => ty = int(&v)? as i64,
                    2 => int_val = int(&v)? as i64 as i32,
                    3 => str_val = gotext::string(&bytes(v)?),
                    _ => {}
                }
                Ok(())
            })?;
            match ty {
                0 => Value::from(int_val),
                1 => Value::String(str_val),
                _ => return Err(malformed(&format!("impossible IntOrString.Type {ty}"))),
            }
        }
        Special::Quantity => {
            let mut s = None;
            wire::small_fields(b, |n, v| {
                if n == 1 {
                    s = Some(gotext::string(&bytes(v)?));
                }
                Ok(())
            })?;
            match s {
                None => Value::String("0".into()),
                Some(s) => match quantity::canonical(&s) {
                    Ok(c) => Value::String(c),
                    Err(e) => {
                        return Err(Error::InvalidQuantity {
                            path: String::new(),
                            value: s,
                            reason: e.to_string(),
                        });
                    }
                },
            }
        }
        Special::RawExtension | Special::FieldsV1 => {
            let mut raw = None;
            wire::small_fields(b, |n, v| {
                if n == 1 {
                    raw = Some(bytes(v)?);
                }
                Ok(())
            })?;
            match raw {
                Some(raw) if !raw.is_empty() => embedded(&raw, special, depth)?,
                _ => Value::Null,
            }
        }
        Special::Items => {
            let mut list = Vec::new();
            let f = msg
                .fields
                .first()
                .ok_or_else(|| malformed("list type without items"))?;
            let mut r = Reader::new(b);
            while !r.done() {
                let (n, w) = r.key()?;
                if n == f.number {
                    list.push(element(f.ty, w, &mut r, depth)?);
                } else {
                    r.skip(w, n, depth)?;
                }
            }
            if list.is_empty() {
                Value::Null
            } else {
                Value::Array(list)
            }
        }
        Special::Unsupported => {
            return Err(malformed(&format!(
                "{} has no JSON form in this build",
                msg.name
            )));
        }
        Special::None => unreachable!("plain messages are decoded by `plain`"),
    })
}

/// The bytes of a RawExtension or FieldsV1: JSON, printed as is, or for a
/// RawExtension an embedded protobuf object, decoded in turn.
fn embedded(raw: &[u8], special: Special, depth: u32) -> Result<Value, Error> {
    if special == Special::RawExtension && raw.starts_with(crate::envelope::MAGIC) {
        return crate::envelope::decode_nested(raw, depth + 1).map(|o| o.object);
    }
    if special == Special::FieldsV1 && matches!(raw[0], 0xa0..=0xbf | 0xc6..=0xdb | 0xf6) {
        return Err(malformed("managedFields encoded as CBOR are not supported"));
    }
    serde_json::from_slice(raw).map_err(|e| malformed(&format!("embedded JSON is invalid: {e}")))
}
