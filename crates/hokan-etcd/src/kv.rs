//! etcd's records in the `key` bucket: a revision key and an
//! `mvccpb.KeyValue`, read without a protobuf library.
//!
//! The key is the revision that wrote the record: 8-byte main revision (big
//! endian), `_`, 8-byte sub revision, and a trailing `t` when the record is
//! a tombstone (the key was deleted at that revision). The value is
//! `mvccpb.KeyValue` (etcd `mvcc/mvccpb/kv.proto`): `key` (1, bytes),
//! `create_revision` (2), `mod_revision` (3), `version` (4), `value`
//! (5, bytes), `lease` (6), the numbers as varint int64.

use std::ops::Range;

/// A revision key of the `key` bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Revision {
    /// The transaction's revision.
    pub main: i64,
    /// The change's index inside the transaction.
    pub sub: i64,
    /// The record deletes its key.
    pub tombstone: bool,
}

impl Revision {
    /// Parses a `key` bucket key; `None` unless it is 17 bytes with `_` at
    /// byte 8, or 18 bytes ending in `t`.
    pub fn parse(key: &[u8]) -> Option<Revision> {
        let tombstone = match key.len() {
            17 => false,
            18 if key[17] == b't' => true,
            _ => return None,
        };
        if key[8] != b'_' {
            return None;
        }
        let be = |b: &[u8]| i64::from_be_bytes(b.try_into().expect("8 bytes"));
        Some(Revision {
            main: be(&key[..8]),
            sub: be(&key[9..17]),
            tombstone,
        })
    }
}

/// The fields of an `mvccpb.KeyValue`, with where its value lies.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyValue<'a> {
    /// The etcd key (`/registry/configmaps/ns/name`).
    pub key: &'a [u8],
    /// Revision of the key's creation (0 in a tombstone).
    pub create_revision: i64,
    /// Revision of this change (0 in a tombstone).
    pub mod_revision: i64,
    /// Changes since creation, 1 for a new key (0 in a tombstone).
    pub version: i64,
    /// The lease the key is attached to, 0 for none.
    pub lease: i64,
    /// The value's byte range in the message.
    pub value: Range<usize>,
}

impl<'a> KeyValue<'a> {
    /// Parses the message; `None` when it is not a well-formed KeyValue
    /// (an unknown field or a wrong wire type included: etcd writes none).
    pub fn parse(msg: &'a [u8]) -> Option<KeyValue<'a>> {
        let mut kv = KeyValue::default();
        let mut at = 0usize;
        while at < msg.len() {
            let tag = varint(msg, &mut at)?;
            let (field, wire) = (tag >> 3, tag & 7);
            match (field, wire) {
                (1 | 5, 2) => {
                    let len = usize::try_from(varint(msg, &mut at)?).ok()?;
                    let end = at.checked_add(len).filter(|&e| e <= msg.len())?;
                    if field == 1 {
                        kv.key = &msg[at..end];
                    } else {
                        kv.value = at..end;
                    }
                    at = end;
                }
                (2..=4 | 6, 0) => {
                    let v = varint(msg, &mut at)? as i64;
                    match field {
                        2 => kv.create_revision = v,
                        3 => kv.mod_revision = v,
                        4 => kv.version = v,
                        _ => kv.lease = v,
                    }
                }
                _ => return None,
            }
        }
        Some(kv)
    }
}

/// Reads an unsigned LEB128 varint at `*at`, advancing it.
fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A KeyValue as etcd's gogo-protobuf marshals it (fields in order,
    /// zero numbers left out).
    fn encode(key: &[u8], create: i64, modr: i64, version: i64, value: &[u8]) -> Vec<u8> {
        let mut m = vec![0x0a];
        put_varint(&mut m, key.len() as u64);
        m.extend_from_slice(key);
        for (tag, v) in [(0x10, create), (0x18, modr), (0x20, version)] {
            if v != 0 {
                m.push(tag);
                put_varint(&mut m, v as u64);
            }
        }
        if !value.is_empty() {
            m.push(0x2a);
            put_varint(&mut m, value.len() as u64);
            m.extend_from_slice(value);
        }
        m
    }

    #[test]
    fn revisions_and_tombstones() {
        let mut k = 300i64.to_be_bytes().to_vec();
        k.push(b'_');
        k.extend(2i64.to_be_bytes());
        assert_eq!(
            Revision::parse(&k),
            Some(Revision {
                main: 300,
                sub: 2,
                tombstone: false
            })
        );
        k.push(b't');
        assert!(Revision::parse(&k).unwrap().tombstone);
        k[17] = b'x';
        assert_eq!(Revision::parse(&k), None);
        assert_eq!(Revision::parse(b"consistent_index"), None);
    }

    #[test]
    fn key_values_parse_and_refuse_other_messages() {
        let m = encode(b"/registry/a", 5, 9, 3, b"hello");
        let kv = KeyValue::parse(&m).unwrap();
        assert_eq!(kv.key, b"/registry/a");
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 9, 3));
        assert_eq!(&m[kv.value.clone()], b"hello");
        // A tombstone holds only the key.
        let tombstone = encode(b"k", 0, 0, 0, b"");
        let t = KeyValue::parse(&tombstone).unwrap();
        assert_eq!((t.key, t.value.len()), (&b"k"[..], 0));
        // Cut short, a wrong wire type, an unknown field.
        assert_eq!(KeyValue::parse(&m[..m.len() - 1]), None);
        assert_eq!(KeyValue::parse(&[0x12, 0x01, 0x00]), None);
        assert_eq!(KeyValue::parse(&[0x38, 0x01]), None);
        assert_eq!(KeyValue::parse(&[0x10, 0xff]), None);
    }
}
