//! Exporting objects of a stored etcd snapshot as manifests a restore takes:
//! one JSON file per object in the layout `hokan-k8s` reads
//! (`<group>/<resource>/<namespace>/<name>.json`, see `hokan_k8s::layout`),
//! sanitized as `hokan_k8s::restore::sanitize` does for a restore into a
//! live cluster (server-owned metadata, status, cluster IPs and the like
//! removed), so one deleted object, a namespace or everything can be
//! applied again without restoring etcd.

use std::collections::BTreeMap;
use std::path::Path;

use hokan_core::fs::beneath::{Beneath, PRIVATE_DIR, PRIVATE_FILE};

use hokan_k8s::restore::{SanitizeOptions, sanitize};
use hokan_k8s::{GroupResource, ObjectKey, layout};
use hokan_k8s_codec::Decryptor;
use serde::Serialize;

use crate::catalog::Entry;
use crate::error::{Error, Result};
use crate::objects::{Filter, ObjectInfo, Objects, decode_value};

/// Objects fetched per batch.
const BATCH: usize = 2048;

/// How to export.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExportOptions<'a> {
    /// Keys to decrypt values encrypted at rest with.
    pub decryptor: Option<&'a Decryptor>,
    /// Write the objects as the API server serves them, not sanitized.
    pub raw: bool,
}

/// What an export did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExportReport {
    /// Files written, relative to the output directory.
    pub written: Vec<String>,
    /// Objects that could not be written (encrypted without a key, not
    /// decodable), with the reason.
    pub skipped: Vec<Skipped>,
    /// Keys left out by design: not API objects (`/registry/masterleases/…`,
    /// other programs' keys), or objects a restore never creates (token
    /// secrets the cluster generates).
    pub left_out: Vec<Skipped>,
}

/// What became of one object.
enum Outcome {
    Written(String),
    Skipped(String),
    LeftOut(String),
}

/// An object an export left out.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    /// Its etcd key.
    pub key: String,
    /// Why.
    pub reason: String,
}

/// Writes the objects `filter` selects into `dir` (created if missing;
/// existing files of the same objects are replaced).
///
/// `dir` is opened once and nothing below it is reached through a symlink:
/// a symlink in place of a directory or a manifest is replaced, never
/// followed, as a restore does. Manifests may hold Secrets: they are
/// written readable by their owner only (0600, as etcdctl writes
/// snapshots) in directories only the owner may open (0700).
pub fn export(
    objects: &Objects<'_>,
    filter: &Filter,
    dir: &Path,
    options: ExportOptions<'_>,
) -> Result<ExportReport> {
    let mut report = ExportReport::default();
    let base = Beneath::create(dir, PRIVATE_DIR)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let selected: Vec<(ObjectInfo, &Entry)> = objects
        .catalog
        .live()
        .into_iter()
        .map(|e| {
            (
                ObjectInfo::new(e, objects.catalog.types.get(e.value_type)),
                e,
            )
        })
        .filter(|(o, _)| o.matches(filter))
        .collect();
    for batch in selected.chunks(BATCH) {
        let entries: Vec<&Entry> = batch.iter().map(|(_, e)| *e).collect();
        let values = objects.values(&entries)?;
        for ((info, entry), value) in batch.iter().zip(values) {
            let outcome = value.and_then(|v| write_one(info, entry, &v, &base, options));
            let note = |reason| Skipped {
                key: info.key.clone(),
                reason,
            };
            match outcome {
                Ok(Outcome::Written(path)) => report.written.push(path),
                Ok(Outcome::Skipped(reason)) => report.skipped.push(note(reason)),
                Ok(Outcome::LeftOut(reason)) => report.left_out.push(note(reason)),
                // A value that cannot be decoded or decrypted is skipped
                // with the decoder's words; a failing disk ends the export.
                Err(Error::Kubernetes { source, .. }) => {
                    report.skipped.push(note(source.to_string()))
                }
                Err(e @ Error::BadCatalog { .. }) => report.skipped.push(note(e.to_string())),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(report)
}

/// Writes one object.
fn write_one(
    info: &ObjectInfo,
    entry: &Entry,
    value: &[u8],
    base: &Beneath,
    options: ExportOptions<'_>,
) -> Result<Outcome> {
    let Some(group) = &info.group else {
        return Ok(Outcome::LeftOut(if info.resource.is_empty() {
            "not a Kubernetes registry key".into()
        } else {
            format!(
                "{:?} is not an API resource this build knows",
                info.resource
            )
        }));
    };
    if let Some(e) = &info.encryption
        && options.decryptor.is_none()
    {
        return Ok(Outcome::Skipped(format!(
            "encrypted with {} key {:?}; give the cluster's EncryptionConfiguration",
            e.provider, e.key_name
        )));
    }
    let decoded = decode_value(entry, value, options.decryptor)?;
    let mut object = decoded.served;
    let gr = GroupResource::new(group.clone(), info.resource.clone());
    if !options.raw {
        let mapping = BTreeMap::new();
        let opts = SanitizeOptions {
            keep_status: false,
            preserve_node_ports: false,
            namespace_mapping: &mapping,
        };
        if let Some(why) = sanitize(&gr, &mut object, &opts).skip {
            return Ok(Outcome::LeftOut(why));
        }
    }
    let version = decoded
        .stored
        .api_version
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let key = ObjectKey {
        resource: gr,
        namespace: info.namespace.clone(),
        name: info.name.clone(),
    };
    let path = layout::object_path(&key, &version, true);
    // Refuses names that would leave the directory.
    if let Err(e) = layout::parse_path(&path) {
        return Ok(Outcome::Skipped(e.to_string()));
    }
    let json = serde_json::to_vec(&object).expect("JSON values serialize");
    base.write_file(Path::new(&path), &json, PRIVATE_FILE)
        .map_err(|e| Error::io(format!("writing {}", base.path().join(&path).display()), e))?;
    Ok(Outcome::Written(path))
}
