//! Kubernetes objects inside a stored etcd snapshot: listed from the
//! catalog, read one record at a time, decoded (and decrypted) with
//! `hokan-k8s-codec`, compared between snapshots. Nothing rebuilds the
//! database: a listing reads the catalog blob, a `get` one record part
//! and one record.

use std::collections::HashMap;

use hokan_core::{BlobType, ChunkRef, TreeId};
use hokan_k8s_codec::{Decryptor, RegistryKey};
use hokan_repo::IndexedRepository;
use serde::Serialize;
use serde_json::Value;

use crate::catalog::{Catalog, Entry, ValueAt, ValueType};
use crate::error::{Error, Result};
use crate::stored::{EtcdSnapshot, RECORDS_PER_PART};

/// Which objects a listing or an export takes.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// A resource (`configmaps`, `deployments.apps`) or kind (`ConfigMap`,
    /// case-insensitive); any when `None`.
    pub resource: Option<String>,
    /// A namespace; any when `None`.
    pub namespace: Option<String>,
}

/// One object of a snapshot, as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectInfo {
    /// The etcd key (invalid UTF-8 replaced).
    pub key: String,
    /// API group (`""` for core); `None` when the key is not a Kubernetes
    /// registry key, or names a resource this build does not know.
    pub group: Option<String>,
    /// The resource (`configmaps`), or empty for keys that are not registry keys.
    pub resource: String,
    /// The namespace, for namespaced objects.
    pub namespace: Option<String>,
    /// The object's name (the key itself for keys that are not registry keys).
    pub name: String,
    /// `apiVersion` stored in the value, when it is readable.
    pub api_version: Option<String>,
    /// `kind` stored in the value, when it is readable.
    pub kind: Option<String>,
    /// The etcd revision that last wrote it: its `resourceVersion`.
    pub resource_version: i64,
    /// The revision that created it.
    pub create_revision: i64,
    /// Bytes of the stored value.
    pub size: u32,
    /// `protobuf`, `json`, `encrypted` or `other`.
    pub encoding: &'static str,
    /// How it is encrypted at rest, when it is.
    pub encryption: Option<Encryption>,
}

/// An encrypted value's provider and key name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Encryption {
    /// `aescbc`, `aesgcm`, `secretbox`, `kms v1`, `kms v2`.
    pub provider: String,
    /// The key name in the value's prefix.
    pub key_name: String,
}

impl ObjectInfo {
    pub(crate) fn new(e: &Entry, t: &ValueType) -> ObjectInfo {
        let key = String::from_utf8_lossy(&e.key).into_owned();
        let parsed = RegistryKey::parse(&key).ok();
        let (api_version, kind, encoding, encryption) = match t {
            ValueType::Object {
                api_version,
                kind,
                json,
            } => (
                Some(api_version.clone()),
                Some(kind.clone()),
                if *json { "json" } else { "protobuf" },
                None,
            ),
            ValueType::Encrypted { provider, key_name } => (
                None,
                None,
                "encrypted",
                Some(Encryption {
                    provider: provider.clone(),
                    key_name: key_name.clone(),
                }),
            ),
            ValueType::Other => (None, None, "other", None),
        };
        ObjectInfo {
            group: parsed.as_ref().and_then(|p| p.group.clone()),
            resource: parsed
                .as_ref()
                .map(|p| p.resource.clone())
                .unwrap_or_default(),
            namespace: parsed.as_ref().and_then(|p| p.namespace.clone()),
            name: parsed.map(|p| p.name).unwrap_or_else(|| key.clone()),
            key,
            api_version,
            kind,
            resource_version: e.mod_revision,
            create_revision: e.create_revision,
            size: e.value_len,
            encoding,
            encryption,
        }
    }

    /// `resource.group` as kubectl writes it (`deployments.apps`, `configmaps`).
    pub fn resource_name(&self) -> String {
        match self.group.as_deref() {
            Some(g) if !g.is_empty() => format!("{}.{g}", self.resource),
            _ => self.resource.clone(),
        }
    }

    pub(crate) fn matches(&self, f: &Filter) -> bool {
        let resource = f.resource.as_deref().is_none_or(|r| {
            let r = r.to_ascii_lowercase();
            self.resource == r
                || self.resource_name() == r
                || self
                    .kind
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case(&r))
        });
        resource
            && f.namespace
                .as_deref()
                .is_none_or(|n| self.namespace.as_deref() == Some(n))
    }
}

/// An object decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// The etcd key.
    pub key: String,
    /// The object as stored, decoded.
    pub stored: hokan_k8s_codec::Object,
    /// The object as the API server serves it: `metadata.resourceVersion`
    /// set to the revision that wrote it.
    pub served: Value,
    /// How the value was encrypted at rest, when it was (and decrypted).
    pub encryption: Option<Encryption>,
}

/// A snapshot's objects, ready to list and read.
pub struct Objects<'r> {
    repo: &'r IndexedRepository,
    snap: &'r EtcdSnapshot,
    /// The snapshot's catalog.
    pub catalog: Catalog,
    parts: Vec<TreeId>,
}

impl<'r> Objects<'r> {
    /// Reads the catalog of `snap`.
    pub fn open(repo: &'r IndexedRepository, snap: &'r EtcdSnapshot) -> Result<Objects<'r>> {
        Ok(Objects {
            catalog: snap.catalog(repo)?,
            parts: snap.parts(repo)?,
            repo,
            snap,
        })
    }

    /// The objects that exist at the snapshot's revision and pass the
    /// filter, by key.
    pub fn list(&self, filter: &Filter) -> Vec<ObjectInfo> {
        self.catalog
            .live()
            .into_iter()
            .map(|e| ObjectInfo::new(e, self.catalog.types.get(e.value_type)))
            .filter(|o| o.matches(filter))
            .collect()
    }

    /// The live entry of an etcd key.
    pub fn by_key(&self, key: &str) -> Result<&Entry> {
        self.catalog
            .get(key.as_bytes())
            .ok_or_else(|| self.not_found(format!("key {key:?}"), None))
    }

    /// The live entry named `RESOURCE/NAMESPACE/NAME` (or `RESOURCE/NAME`
    /// for a cluster-scoped object); `RESOURCE` as [`Filter::resource`].
    pub fn by_name(&self, spec: &str) -> Result<&Entry> {
        let parts: Vec<&str> = spec.split('/').collect();
        let (resource, namespace, name) = match parts.as_slice() {
            [r, ns, n] => (*r, Some(*ns), *n),
            [r, n] => (*r, None, *n),
            _ => {
                return Err(Error::invalid(
                    "object",
                    format!(
                        "{spec:?}: write RESOURCE/NAMESPACE/NAME, or RESOURCE/NAME for a cluster-scoped object"
                    ),
                ));
            }
        };
        let filter = Filter {
            resource: Some(resource.to_string()),
            namespace: namespace.map(str::to_string),
        };
        let suffix = format!("/{name}");
        let found: Vec<&Entry> = self
            .catalog
            .live()
            .into_iter()
            .filter(|e| e.key.ends_with(suffix.as_bytes()))
            .filter(|e| {
                let o = ObjectInfo::new(e, self.catalog.types.get(e.value_type));
                o.name == name
                    && o.matches(&filter)
                    && (namespace.is_some() || o.namespace.is_none())
            })
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(self.not_found(spec.to_string(), Some(resource.to_string()))),
            many => Err(Error::AmbiguousObject {
                spec: spec.to_string(),
                keys: many
                    .iter()
                    .map(|e| String::from_utf8_lossy(&e.key).into_owned())
                    .collect(),
            }),
        }
    }

    fn not_found(&self, what: String, resource: Option<String>) -> Error {
        Error::NotFound {
            what,
            snapshot: self.snap.short_id(),
            resource,
        }
    }

    /// The stored values of `entries`, fetched together (records planned
    /// by pack); one result per entry, in order.
    pub fn values(&self, entries: &[&Entry]) -> Result<Vec<Result<Vec<u8>>>> {
        let mut out: Vec<Option<Result<Vec<u8>>>> = entries.iter().map(|_| None).collect();
        let mut by_part: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            match e.at {
                ValueAt::Record { index, .. } => by_part
                    .entry((index / RECORDS_PER_PART as u64) as usize)
                    .or_default()
                    .push(i),
                ValueAt::File { offset } => {
                    out[i] = Some(crate::restore::read_file_range(
                        self.repo,
                        self.snap,
                        offset,
                        e.value_len as usize,
                    ));
                }
            }
        }
        let reader = self.repo.reader();
        for (part, members) in by_part {
            let tree = self.parts.get(part).ok_or_else(|| Error::Incomplete {
                snapshot: self.snap.short_id(),
                reason: format!("its catalog names record part {part}, which it lacks"),
            })?;
            let refs: Vec<ChunkRef> = self.snap.part(self.repo, tree)?;
            let mut ids = Vec::with_capacity(members.len());
            for &i in &members {
                let ValueAt::Record { index, .. } = entries[i].at else {
                    unreachable!("grouped as a record")
                };
                let r = refs.get(index as usize % RECORDS_PER_PART).ok_or_else(|| {
                    Error::Incomplete {
                        snapshot: self.snap.short_id(),
                        reason: format!("its catalog names record {index}, past its part"),
                    }
                })?;
                ids.push(r.id.0);
            }
            let blobs = reader
                .read_blobs(BlobType::Data, &ids)
                .map_err(Error::from)?;
            for (&i, blob) in members.iter().zip(blobs) {
                out[i] = Some(
                    blob.map_err(Error::from)
                        .and_then(|r| value_of(entries[i], r)),
                );
            }
        }
        Ok(out
            .into_iter()
            .map(|v| v.expect("every entry answered"))
            .collect())
    }

    /// The stored value of one entry.
    pub fn value(&self, entry: &Entry) -> Result<Vec<u8>> {
        self.values(&[entry])?.pop().expect("one value")
    }

    /// One entry's object, decrypted with `decryptor` when it is encrypted.
    pub fn decode(&self, entry: &Entry, decryptor: Option<&Decryptor>) -> Result<Decoded> {
        let value = self.value(entry)?;
        decode_value(entry, &value, decryptor)
    }
}

/// The value's bytes inside its record.
fn value_of(e: &Entry, record: Vec<u8>) -> Result<Vec<u8>> {
    let ValueAt::Record { offset, .. } = e.at else {
        return Ok(record);
    };
    let start = offset as usize;
    record
        .get(start..start + e.value_len as usize)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| Error::BadCatalog {
            reason: format!(
                "the value of {} lies past its {}-byte record",
                String::from_utf8_lossy(&e.key),
                record.len()
            ),
        })
}

/// Decodes a stored value (decrypting it first if it is encrypted and a
/// decryptor is given), as the API server would serve it.
pub fn decode_value(entry: &Entry, value: &[u8], decryptor: Option<&Decryptor>) -> Result<Decoded> {
    let key = String::from_utf8_lossy(&entry.key).into_owned();
    let k8s = |source| Error::Kubernetes {
        key: key.clone(),
        source,
    };
    let encryption = hokan_k8s_codec::EncryptedValue::parse(value).map(|e| Encryption {
        provider: e.provider.to_string(),
        key_name: e.key_name.to_string(),
    });
    let plain = match (&encryption, decryptor) {
        (Some(_), Some(d)) => d.decrypt(&key, value).map_err(k8s)?,
        _ => std::borrow::Cow::Borrowed(value),
    };
    let stored = hokan_k8s_codec::decode(&plain).map_err(k8s)?;
    let mut served = stored.object.clone();
    if let Some(meta) = served.get_mut("metadata").and_then(Value::as_object_mut) {
        // The API server never stores resourceVersion; it serves the
        // revision that wrote the object (etcd3 store, `UpdateObject`).
        meta.insert(
            "resourceVersion".into(),
            Value::String(entry.mod_revision.to_string()),
        );
    }
    Ok(Decoded {
        key,
        stored,
        served,
        encryption,
    })
}

/// How an object differs between two snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only in the second.
    Added,
    /// Only in the first.
    Removed,
    /// Written again between them (its revision differs).
    Changed,
}

/// One object that differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectChange {
    /// What happened.
    pub change: ChangeKind,
    /// The object in the second snapshot (or the first, when removed).
    #[serde(flatten)]
    pub object: ObjectInfo,
    /// Its resourceVersion in the first snapshot, when it was there.
    pub old_resource_version: Option<i64>,
}

/// The objects added, removed and changed from `a` to `b`, by key. An
/// object counts as changed when a write reached it (its `mod_revision` or
/// `create_revision` differs), as the API server's resourceVersion would
/// show.
pub fn diff(a: &Catalog, b: &Catalog, filter: &Filter) -> Vec<ObjectChange> {
    let (la, lb) = (a.live(), b.live());
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    let info = |c: &Catalog, e: &Entry| ObjectInfo::new(e, c.types.get(e.value_type));
    while i < la.len() || j < lb.len() {
        let order = match (la.get(i), lb.get(j)) {
            (Some(x), Some(y)) => x.key.cmp(&y.key),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let change = match order {
            std::cmp::Ordering::Less => {
                i += 1;
                ObjectChange {
                    change: ChangeKind::Removed,
                    object: info(a, la[i - 1]),
                    old_resource_version: Some(la[i - 1].mod_revision),
                }
            }
            std::cmp::Ordering::Greater => {
                j += 1;
                ObjectChange {
                    change: ChangeKind::Added,
                    object: info(b, lb[j - 1]),
                    old_resource_version: None,
                }
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (la[i], lb[j]);
                i += 1;
                j += 1;
                if x.mod_revision == y.mod_revision && x.create_revision == y.create_revision {
                    continue;
                }
                ObjectChange {
                    change: ChangeKind::Changed,
                    object: info(b, y),
                    old_resource_version: Some(x.mod_revision),
                }
            }
        };
        if change.object.matches(filter) {
            out.push(change);
        }
    }
    out
}
