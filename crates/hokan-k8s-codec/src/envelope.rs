//! The storage envelope: what the API server writes as an etcd value.
//!
//! Built-in types are stored as `k8s\0` followed by a protobuf
//! `runtime.Unknown` whose `raw` holds the object's own protobuf encoding;
//! custom resources, CRDs, APIServices and other JSON-only types are stored
//! as their JSON; values encrypted at rest start with `k8s:enc:`.

use crate::encryption::EncryptedValue;
use crate::wire::{LEN, Reader, malformed};
use crate::{Error, gotext, message, schema};
use serde_json::Value;

pub(crate) const MAGIC: &[u8] = b"k8s\x00";

/// How a value was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encoding {
    /// `k8s\0` + `runtime.Unknown` (`application/vnd.kubernetes.protobuf`).
    Protobuf,
    /// Plain JSON (`application/json`).
    Json,
}

/// A decoded object: its type and its JSON form as the API server prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// `apiVersion`, e.g. `apps/v1` (`v1` for the core group).
    pub api_version: String,
    pub kind: String,
    pub encoding: Encoding,
    /// The object, with the same fields and values the API server returns.
    pub object: Value,
}

/// The type of a stored value, read without decoding the object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoredType {
    /// A protobuf or JSON object of this apiVersion and kind (either may be
    /// empty for the few types stored without them).
    Object {
        api_version: String,
        kind: String,
        encoding: Encoding,
    },
    /// Encrypted at rest; the type is not visible.
    Encrypted { provider: String, key_name: String },
}

/// The parts of `runtime.Unknown` that matter here.
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
}

fn unknown(body: &[u8]) -> Result<Unknown<'_>, Error> {
    let mut u = Unknown {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
    };
    let (mut encoding, mut content_type) = (String::new(), String::new());
    let mut r = Reader::new(body);
    let text = |w: u8, r: &mut Reader| -> Result<String, Error> {
        if w != LEN {
            return Err(malformed("envelope field has the wrong wire type"));
        }
        Ok(gotext::string(r.bytes()?))
    };
    while !r.done() {
        let (n, w) = r.key()?;
        match n {
            1 => {
                if w != LEN {
                    return Err(malformed("envelope typeMeta has the wrong wire type"));
                }
                let mut t = Reader::new(r.bytes()?);
                while !t.done() {
                    let (n, w) = t.key()?;
                    match n {
                        1 => u.api_version = text(w, &mut t)?,
                        2 => u.kind = text(w, &mut t)?,
                        _ => t.skip(w, n, 0)?,
                    }
                }
            }
            2 if w == LEN => u.raw = r.bytes()?,
            3 => encoding = text(w, &mut r)?,
            4 => content_type = text(w, &mut r)?,
            _ => r.skip(w, n, 0)?,
        }
    }
    // The API server writes no content encoding and either no content type
    // or the protobuf one; anything else would be decoded as garbage.
    if !encoding.is_empty()
        || !(content_type.is_empty() || content_type == "application/vnd.kubernetes.protobuf")
    {
        return Err(Error::UnsupportedEnvelope {
            encoding,
            content_type,
        });
    }
    Ok(u)
}

fn json_type(v: &Value) -> (String, String) {
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (field("apiVersion"), field("kind"))
}

fn first_byte_json(value: &[u8]) -> bool {
    value.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

fn not_an_object(value: &[u8]) -> Error {
    Error::NotAnObject {
        start: String::from_utf8_lossy(&value[..value.len().min(16)]).into_owned(),
    }
}

/// Reads the type of a stored value without decoding the object: cheap
/// enough to run on every key of a snapshot when listing.
pub fn peek_type(value: &[u8]) -> Result<StoredType, Error> {
    if let Some(body) = value.strip_prefix(MAGIC) {
        let u = unknown(body)?;
        return Ok(StoredType::Object {
            api_version: u.api_version,
            kind: u.kind,
            encoding: Encoding::Protobuf,
        });
    }
    if let Some(e) = EncryptedValue::parse(value) {
        return Ok(StoredType::Encrypted {
            provider: e.provider.to_string(),
            key_name: e.key_name.to_string(),
        });
    }
    if first_byte_json(value) {
        // Only the two top-level strings are wanted; serde skips the rest.
        #[derive(serde::Deserialize)]
        struct Head {
            #[serde(rename = "apiVersion", default)]
            api_version: String,
            #[serde(default)]
            kind: String,
        }
        let h: Head = serde_json::from_slice(value)?;
        return Ok(StoredType::Object {
            api_version: h.api_version,
            kind: h.kind,
            encoding: Encoding::Json,
        });
    }
    Err(not_an_object(value))
}

/// Decodes a value as the API server stored it: protobuf envelope or JSON.
///
/// An encrypted value gives [`Error::Encrypted`]; decrypt it first with
/// [`crate::Decryptor`].
pub fn decode(value: &[u8]) -> Result<Object, Error> {
    decode_nested(value, 0)
}

pub(crate) fn decode_nested(value: &[u8], depth: u32) -> Result<Object, Error> {
    if let Some(body) = value.strip_prefix(MAGIC) {
        let u = unknown(body)?;
        let object = decode_raw(u.raw, &u.api_version, &u.kind, depth)?;
        return Ok(Object {
            api_version: u.api_version,
            kind: u.kind,
            encoding: Encoding::Protobuf,
            object,
        });
    }
    if let Some(e) = EncryptedValue::parse(value) {
        return Err(Error::Encrypted {
            provider: e.provider.to_string(),
            key_name: e.key_name.to_string(),
            hint: e.provider.hint(),
        });
    }
    if first_byte_json(value) {
        let object: Value = serde_json::from_slice(value)?;
        let (api_version, kind) = json_type(&object);
        return Ok(Object {
            api_version,
            kind,
            encoding: Encoding::Json,
            object,
        });
    }
    Err(not_an_object(value))
}

/// Decodes a bare protobuf message (an envelope's `raw`) of the given type.
/// `apiVersion` and `kind` are printed when the type embeds TypeMeta and
/// they are not empty, as the API server does.
pub fn decode_protobuf(raw: &[u8], api_version: &str, kind: &str) -> Result<Value, Error> {
    decode_raw(raw, api_version, kind, 0)
}

fn decode_raw(raw: &[u8], api_version: &str, kind: &str, depth: u32) -> Result<Value, Error> {
    let id = schema::find_kind(api_version, kind).ok_or_else(|| Error::UnknownKind {
        api_version: api_version.into(),
        kind: kind.into(),
    })?;
    let mut v = message::message(id, Some(raw), depth)?;
    if let (true, Value::Object(m)) = (schema::MESSAGES[usize::from(id)].kind, &mut v) {
        if !kind.is_empty() {
            m.insert("kind".into(), Value::String(kind.into()));
        }
        if !api_version.is_empty() {
            m.insert("apiVersion".into(), Value::String(api_version.into()));
        }
    }
    Ok(v)
}
