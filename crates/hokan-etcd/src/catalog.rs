//! The catalog: every record of a snapshot's `key` bucket (revision, etcd
//! key, the `mvccpb.KeyValue` numbers, the value's type and where its bytes
//! are), stored beside the records so that listing, finding and diffing
//! objects read one small blob instead of the whole database.
//!
//! Stored form (version 1): `"HKEC" | version u8 | postcard(CatalogV1)`,
//! column by column and delta-coded, so the repository's compression finds
//! long runs: revisions grow by one, record indices by one, most keys share
//! a prefix with the key before. See `docs/FORMAT.md`, §13.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kv::Revision;

/// First bytes of a stored catalog.
pub const MAGIC: [u8; 4] = *b"HKEC";
/// The catalog version this build writes and reads.
pub const VERSION: u8 = 1;

/// Where a value's bytes are in a stored snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueAt {
    /// In record `index` of the snapshot's record list, from byte `offset`
    /// of the record (after the revision key and the KeyValue's header).
    Record {
        /// The record's position in the list.
        index: u64,
        /// The value's first byte in the record.
        offset: u32,
    },
    /// At this offset of the database file: a value that is not in a cut
    /// record (an inline bucket's, one over 4 MiB, a page kept whole).
    File {
        /// The value's first byte in the file.
        offset: u64,
    },
}

impl Default for ValueAt {
    fn default() -> Self {
        ValueAt::File { offset: 0 }
    }
}

/// What a value is, read from its first bytes when it was stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValueType {
    /// Not a Kubernetes value (another program's data, an empty value).
    Other,
    /// A Kubernetes object.
    Object {
        /// `apiVersion`, e.g. `apps/v1` (empty for the few types stored without).
        api_version: String,
        /// `kind`.
        kind: String,
        /// Stored as JSON (custom resources, CRDs) rather than protobuf.
        json: bool,
    },
    /// Encrypted at rest by the API server.
    Encrypted {
        /// `aescbc`, `aesgcm`, `secretbox`, `kms v1`, `kms v2`.
        provider: String,
        /// The key (or KMS provider) name in the value's prefix.
        key_name: String,
    },
}

impl ValueType {
    /// Reads the type of a value as the API server stores it.
    pub fn of(value: &[u8]) -> ValueType {
        use hokan_k8s_codec::{Encoding, StoredType};
        match hokan_k8s_codec::peek_type(value) {
            Ok(StoredType::Object {
                api_version,
                kind,
                encoding,
            }) => ValueType::Object {
                api_version,
                kind,
                json: encoding == Encoding::Json,
            },
            Ok(StoredType::Encrypted { provider, key_name }) => {
                ValueType::Encrypted { provider, key_name }
            }
            _ => ValueType::Other,
        }
    }
}

/// The distinct value types of a snapshot, numbered.
#[derive(Clone, Debug, Default)]
pub struct TypeTable {
    types: Vec<ValueType>,
    index: HashMap<ValueType, u32>,
}

impl TypeTable {
    /// The number of `value`'s type, added if new.
    pub(crate) fn classify(&mut self, value: &[u8]) -> u32 {
        let t = ValueType::of(value);
        if let Some(&n) = self.index.get(&t) {
            return n;
        }
        self.types.push(t.clone());
        self.index.insert(t, self.types.len() as u32 - 1);
        self.types.len() as u32 - 1
    }

    /// Type number `n`; [`ValueType::Other`] for a number not in the table.
    pub fn get(&self, n: u32) -> &ValueType {
        static OTHER: ValueType = ValueType::Other;
        self.types.get(n as usize).unwrap_or(&OTHER)
    }
}

/// One record of the `key` bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// The revision that wrote it.
    pub revision: Revision,
    /// The etcd key.
    pub key: Vec<u8>,
    /// `create_revision` (0 in a tombstone).
    pub create_revision: i64,
    /// `mod_revision`: the object's `resourceVersion` (0 in a tombstone).
    pub mod_revision: i64,
    /// `version`: changes since creation.
    pub version: i64,
    /// `lease`, 0 for none.
    pub lease: i64,
    /// Length of the value.
    pub value_len: u32,
    /// Its type's number in [`Catalog::types`].
    pub value_type: u32,
    /// Where the value is.
    pub at: ValueAt,
}

/// Every record of a snapshot's `key` bucket, in revision order.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// The value types entries refer to.
    pub types: TypeTable,
    /// The records, oldest revision first.
    pub entries: Vec<Entry>,
}

/// The stored form, one column per field.
#[derive(Serialize, Deserialize)]
struct CatalogV1 {
    types: Vec<ValueType>,
    /// Main revision minus the previous entry's.
    main: Vec<i64>,
    sub: Vec<i64>,
    /// Bit 0: tombstone; bit 1: the value is at a file offset.
    flags: Vec<u8>,
    /// Bytes the key shares with the previous entry's key.
    key_shared: Vec<u32>,
    /// The rest of each key, back to back.
    #[serde(with = "serde_bytes_compat")]
    key_rest: Vec<u8>,
    key_rest_len: Vec<u32>,
    /// Main revision minus create revision, and minus mod revision.
    create_back: Vec<i64>,
    mod_back: Vec<i64>,
    version: Vec<i64>,
    lease: Vec<i64>,
    value_len: Vec<u32>,
    value_type: Vec<u32>,
    /// Record index minus the previous record entry's; or the file offset.
    at: Vec<i64>,
    /// The value's offset in its record (0 for file offsets).
    at_offset: Vec<u32>,
}

/// `Vec<u8>` as one length-prefixed byte string (postcard's `bytes`), not
/// a sequence of varints.
mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        d.deserialize_bytes(V)
    }
}

impl Catalog {
    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let n = self.entries.len();
        let mut c = CatalogV1 {
            types: self.types.types.clone(),
            main: Vec::with_capacity(n),
            sub: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            key_shared: Vec::with_capacity(n),
            key_rest: Vec::new(),
            key_rest_len: Vec::with_capacity(n),
            create_back: Vec::with_capacity(n),
            mod_back: Vec::with_capacity(n),
            version: Vec::with_capacity(n),
            lease: Vec::with_capacity(n),
            value_len: Vec::with_capacity(n),
            value_type: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            at_offset: Vec::with_capacity(n),
        };
        let (mut main, mut record, mut key): (i64, i64, &[u8]) = (0, -1, &[]);
        for e in &self.entries {
            let m = e.revision.main;
            c.main.push(m.wrapping_sub(main));
            main = m;
            c.sub.push(e.revision.sub);
            let shared = key.iter().zip(&e.key).take_while(|(a, b)| a == b).count();
            c.key_shared.push(shared as u32);
            c.key_rest.extend_from_slice(&e.key[shared..]);
            c.key_rest_len.push((e.key.len() - shared) as u32);
            key = &e.key;
            c.create_back.push(m.wrapping_sub(e.create_revision));
            c.mod_back.push(m.wrapping_sub(e.mod_revision));
            c.version.push(e.version);
            c.lease.push(e.lease);
            c.value_len.push(e.value_len);
            c.value_type.push(e.value_type);
            let mut flags = u8::from(e.revision.tombstone);
            match e.at {
                ValueAt::Record { index, offset } => {
                    c.at.push((index as i64).wrapping_sub(record));
                    record = index as i64;
                    c.at_offset.push(offset);
                }
                ValueAt::File { offset } => {
                    flags |= 2;
                    c.at.push(offset as i64);
                    c.at_offset.push(0);
                }
            }
            c.flags.push(flags);
        }
        let mut out = MAGIC.to_vec();
        out.push(VERSION);
        postcard::to_extend(&c, out).expect("a Vec grows")
    }

    /// Reads a stored catalog.
    pub fn decode(bytes: &[u8]) -> Result<Catalog> {
        let bad = |why: String| Error::BadCatalog { reason: why };
        if bytes.len() < 5 || bytes[..4] != MAGIC {
            return Err(bad("it does not start with \"HKEC\"".into()));
        }
        if bytes[4] != VERSION {
            return Err(Error::UnsupportedVersion {
                found: bytes[4],
                supported: VERSION,
            });
        }
        let c: CatalogV1 = postcard::from_bytes(&bytes[5..]).map_err(|e| bad(e.to_string()))?;
        let n = c.main.len();
        let columns = [
            c.sub.len(),
            c.flags.len(),
            c.key_shared.len(),
            c.key_rest_len.len(),
            c.create_back.len(),
            c.mod_back.len(),
            c.version.len(),
            c.lease.len(),
            c.value_len.len(),
            c.value_type.len(),
            c.at.len(),
            c.at_offset.len(),
        ];
        if columns.iter().any(|&l| l != n) {
            return Err(bad("its columns differ in length".into()));
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(n);
        let (mut main, mut record, mut rest_at) = (0i64, -1i64, 0usize);
        for i in 0..n {
            main = main.wrapping_add(c.main[i]);
            let shared = c.key_shared[i] as usize;
            let rest = c.key_rest_len[i] as usize;
            let prev: &[u8] = entries.last().map_or(&[], |e| &e.key);
            let rest_end = rest_at
                .checked_add(rest)
                .filter(|&e| e <= c.key_rest.len() && shared <= prev.len())
                .ok_or_else(|| bad(format!("key {i} runs past its column")))?;
            let mut key = prev[..shared].to_vec();
            key.extend_from_slice(&c.key_rest[rest_at..rest_end]);
            rest_at = rest_end;
            let at = if c.flags[i] & 2 == 0 {
                record = record.wrapping_add(c.at[i]);
                ValueAt::Record {
                    index: record as u64,
                    offset: c.at_offset[i],
                }
            } else {
                ValueAt::File {
                    offset: c.at[i] as u64,
                }
            };
            entries.push(Entry {
                revision: Revision {
                    main,
                    sub: c.sub[i],
                    tombstone: c.flags[i] & 1 != 0,
                },
                key,
                create_revision: main.wrapping_sub(c.create_back[i]),
                mod_revision: main.wrapping_sub(c.mod_back[i]),
                version: c.version[i],
                lease: c.lease[i],
                value_len: c.value_len[i],
                value_type: c.value_type[i],
                at,
            });
        }
        let index = c
            .types
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Ok(Catalog {
            types: TypeTable {
                types: c.types,
                index,
            },
            entries,
        })
    }

    /// The keys that exist at the snapshot's revision: for each key its
    /// newest record, unless that deletes it; sorted by key.
    pub fn live(&self) -> Vec<&Entry> {
        let mut seen: HashSet<&[u8]> = HashSet::with_capacity(self.entries.len());
        let mut out: Vec<&Entry> = self
            .entries
            .iter()
            .rev()
            .filter(|e| seen.insert(&e.key))
            .filter(|e| !e.revision.tombstone)
            .collect();
        out.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// The newest record of `key`, if the key exists at the snapshot's
    /// revision.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.key == key)
            .filter(|e| !e.revision.tombstone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(main: i64, key: &str, tombstone: bool, at: ValueAt) -> Entry {
        Entry {
            revision: Revision {
                main,
                sub: 0,
                tombstone,
            },
            key: key.as_bytes().to_vec(),
            create_revision: if tombstone { 0 } else { 2 },
            mod_revision: if tombstone { 0 } else { main },
            version: i64::from(!tombstone),
            lease: 0,
            value_len: 10,
            value_type: 0,
            at,
        }
    }

    #[test]
    fn encodes_and_decodes_every_field() {
        let mut types = TypeTable::default();
        let t = types.classify(b"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\"}");
        let mut e = vec![
            entry(
                2,
                "/registry/configmaps/a/x",
                false,
                ValueAt::Record {
                    index: 0,
                    offset: 60,
                },
            ),
            entry(
                3,
                "/registry/configmaps/a/y",
                false,
                ValueAt::File { offset: 1 << 40 },
            ),
            entry(
                4,
                "/registry/configmaps/a/x",
                true,
                ValueAt::Record {
                    index: 1,
                    offset: 40,
                },
            ),
            entry(
                9,
                "/registry/secrets/b/z",
                false,
                ValueAt::Record {
                    index: 7,
                    offset: 3,
                },
            ),
        ];
        e[3].value_type = t;
        e[3].lease = 77;
        let c = Catalog { types, entries: e };
        let d = Catalog::decode(&c.encode()).unwrap();
        assert_eq!(d.entries, c.entries);
        assert_eq!(
            d.types.get(t),
            &ValueType::Object {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                json: true
            }
        );
        let live: Vec<&[u8]> = d.live().iter().map(|e| &e.key[..]).collect();
        assert_eq!(
            live,
            [&b"/registry/configmaps/a/y"[..], b"/registry/secrets/b/z"]
        );
        assert!(d.get(b"/registry/configmaps/a/x").is_none());
    }

    #[test]
    fn damaged_catalogs_are_errors() {
        let c = Catalog {
            types: TypeTable::default(),
            entries: vec![entry(
                2,
                "k",
                false,
                ValueAt::Record {
                    index: 0,
                    offset: 1,
                },
            )],
        };
        let bytes = c.encode();
        for n in 0..bytes.len() {
            assert!(Catalog::decode(&bytes[..n]).is_err());
        }
        let mut v2 = bytes.clone();
        v2[4] = 2;
        assert!(matches!(
            Catalog::decode(&v2),
            Err(Error::UnsupportedVersion { found: 2, .. })
        ));
    }

    /// Golden: a fixed catalog, byte for byte. A change here means stored
    /// catalogs no longer read: bump `VERSION` instead.
    #[test]
    fn the_catalog_format_is_pinned() {
        let mut types = TypeTable::default();
        let cm = types.classify(b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09ConfigMap");
        let enc = types.classify(b"k8s:enc:aescbc:v1:key1:xxxxxxxx");
        let mut e = vec![
            entry(
                2,
                "/registry/configmaps/a/x",
                false,
                ValueAt::Record {
                    index: 0,
                    offset: 43,
                },
            ),
            entry(
                3,
                "/registry/configmaps/a/y",
                true,
                ValueAt::File { offset: 8192 },
            ),
            entry(
                3,
                "/registry/secrets/a/s",
                false,
                ValueAt::Record {
                    index: 2,
                    offset: 40,
                },
            ),
        ];
        e[0].value_type = cm;
        e[2].value_type = enc;
        e[2].revision.sub = 1;
        e[2].lease = 7;
        let bytes = Catalog { types, entries: e }.encode();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // "HKEC", version 1, then the columns (see FORMAT.md): types (a
        // protobuf v1/ConfigMap, aescbc key1), main deltas 2 1 0, sub 0 0 1,
        // flags 0 3 0, keys front-coded, create/mod back, version, lease,
        // value lengths, types, record deltas / file offset, value offsets.
        assert_eq!(
            hex,
            concat!(
                "484b4543",
                "01", // magic, version
                "0201027631",
                "09436f6e6669674d617000",
                "0206616573636263046b657931",
                "03040200",
                "03000002",
                "03000300",
                "0300170a",
                "242f72656769737472792f636f6e6669676d6170732f612f78",
                "79",
                "736563726574732f612f73",
                "0318010b",
                "03000602",
                "03000600",
                "03020002",
                "0300000e",
                "030a0a0a",
                "03000001",
                "0302808001",
                "04",
                "032b0028",
            )
        );
    }
}
