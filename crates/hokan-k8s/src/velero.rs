//! Velero backup tarballs: export a backup as the `.tar.gz` Velero writes,
//! and import one into any [`ObjectSink`].
//!
//! The layout is Velero's format 1.1.0 (`pkg/backup`, `pkg/archive`):
//!
//! ```text
//! metadata/version                                          "1.1.0\n"
//! resources/<resource.group>/namespaces/<ns>/<name>.json    preferred version (for readers before 1.1)
//! resources/<resource.group>/cluster/<name>.json
//! resources/<resource.group>/<v>-preferredversion/namespaces/<ns>/<name>.json   the same bytes again
//! resources/<resource.group>/<v>/namespaces/<ns>/<name>.json                    other versions
//! ```
//!
//! `<resource.group>` is Kubernetes' `GroupResource.String()`: just the
//! resource for the core group (`configmaps`). Files are regular entries,
//! mode 0755, with no directory entries, as Velero's tar writer makes them.

use std::io::{Read, Write};
use std::path::Path;

use hokan_core::text::escape;

use crate::backup::BackupSummary;
use crate::layout::check_name;
use crate::names;
use crate::object::{
    GroupResource, ObjectAttrs, ObjectEntry, ObjectHead, ObjectKey, StoredObject, split_api_version,
};
use crate::seam::{ObjectSink, ObjectSource};
use crate::{Error, Result};

/// The backup format version Velero writes and this module reads.
pub const FORMAT_VERSION: &str = "1.1.0";

const PREFERRED_SUFFIX: &str = "-preferredversion";

/// The largest file an import accepts.
const MAX_OBJECT_BYTES: u64 = 64 << 20;

/// The tarball path of one entry; the preferred version yields two.
pub fn tar_paths(entry: &ObjectEntry) -> Vec<String> {
    let gr = entry.key.resource.to_string();
    let scope = match &entry.key.namespace {
        Some(ns) => format!("namespaces/{ns}"),
        None => "cluster".to_string(),
    };
    let name = &entry.key.name;
    if entry.preferred {
        vec![
            format!("resources/{gr}/{scope}/{name}.json"),
            format!(
                "resources/{gr}/{}{PREFERRED_SUFFIX}/{scope}/{name}.json",
                entry.version
            ),
        ]
    } else {
        vec![format!(
            "resources/{gr}/{}/{scope}/{name}.json",
            entry.version
        )]
    }
}

/// Writes every object of `source` as a gzipped Velero tarball to `out`;
/// returns the number of objects (entries) written.
pub async fn export<S: ObjectSource + Sync, W: Write>(source: &S, out: W) -> Result<u64> {
    let what = Path::new("the Velero tarball");
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let append = |tar: &mut tar::Builder<_>, path: &str, bytes: &[u8]| -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o755);
        header.set_size(bytes.len() as u64);
        header.set_mtime(mtime);
        tar.append_data(&mut header, path, bytes)
            .map_err(|e| Error::io("write", what, e))
    };
    append(
        &mut tar,
        "metadata/version",
        format!("{FORMAT_VERSION}\n").as_bytes(),
    )?;
    let mut written = 0;
    let entries = source.list().await?;
    for batch in entries.chunks(crate::seam::FETCH_BATCH) {
        let refs: Vec<&ObjectEntry> = batch.iter().collect();
        let objects = source.fetch_many(&refs).await?;
        for (entry, json) in batch.iter().zip(objects) {
            for path in tar_paths(entry) {
                append(&mut tar, &path, &json)?;
            }
            written += 1;
        }
    }
    let gz = tar.into_inner().map_err(|e| Error::io("write", what, e))?;
    gz.finish().map_err(|e| Error::io("write", what, e))?;
    Ok(written)
}

/// Reads a gzipped Velero tarball (`name` for messages) into `sink`, one
/// object at a time, then calls [`ObjectSink::finish`]. The
/// `-preferredversion` copies are skipped: they repeat the unversioned files.
pub async fn import<R: Read, K: ObjectSink + Send>(
    name: &Path,
    reader: R,
    sink: &mut K,
) -> Result<BackupSummary> {
    let not_velero = |reason: String| Error::NotVelero {
        path: name.to_path_buf(),
        reason,
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let entries = archive.entries().map_err(|e| {
        not_velero(format!(
            "not a gzipped tar archive: {}",
            escape(&e.to_string())
        ))
    })?;
    let mut summary = BackupSummary {
        cluster: format!("velero:{}", name.display()),
        ..Default::default()
    };
    let mut version_seen = false;
    for file in entries {
        let mut file = file
            .map_err(|e| not_velero(format!("unreadable archive: {}", escape(&e.to_string()))))?;
        if !file.header().entry_type().is_file() {
            continue;
        }
        let path = file
            .path()
            .map_err(|e| not_velero(escape(&e.to_string()).into_owned()))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        // The path comes from the tarball: shown escaped in every message.
        let shown = escape(&path).into_owned();
        // etcd refuses values over 1.5 MiB; anything far larger is not an
        // object, and its claimed size must not be trusted for allocation.
        if file.size() > MAX_OBJECT_BYTES {
            return Err(not_velero(format!(
                "{shown} claims {} bytes, more than any Kubernetes object",
                file.size()
            )));
        }
        let mut bytes = Vec::with_capacity(file.size() as usize);
        file.read_to_end(&mut bytes)
            .map_err(|e| not_velero(format!("{shown}: {e}")))?;
        if path == "metadata/version" {
            let version = String::from_utf8_lossy(&bytes).trim().to_string();
            if !version.starts_with("1.") {
                return Err(not_velero(format!(
                    "format version {version:?} is not 1.x; this reader knows {FORMAT_VERSION}"
                )));
            }
            version_seen = true;
            continue;
        }
        let Some(parsed) =
            parse_tar_path(&path).map_err(|reason| not_velero(format!("{shown}: {reason}")))?
        else {
            continue;
        };
        // What the API server would refuse, a restore cannot create (nor
        // write as a manifest): refused here, with the object named.
        let refuse = |reason: String| Error::BadObject {
            what: format!("{} ({shown})", parsed.key),
            reason: format!("{reason}; nothing was imported"),
        };
        names::check_key(&parsed.key).map_err(refuse)?;
        if names::json_depth_exceeds(&bytes, names::MAX_JSON_DEPTH) {
            return Err(refuse(format!(
                "its JSON nests deeper than {} levels, which no Kubernetes object does",
                names::MAX_JSON_DEPTH
            )));
        }
        let head = ObjectHead::parse(&shown, &bytes)?;
        let (_, object_version) = split_api_version(&head.api_version);
        let preferred = parsed.version.is_none();
        let entry = ObjectEntry {
            version: parsed.version.unwrap_or_else(|| object_version.to_string()),
            preferred,
            key: parsed.key,
            attrs: ObjectAttrs {
                api_version: head.api_version,
                kind: head.kind,
                uid: head.metadata.uid,
                resource_version: head.metadata.resource_version,
            },
        };
        summary.entries += 1;
        summary.bytes += bytes.len() as u64;
        if preferred {
            summary.objects += 1;
            *summary
                .resources
                .entry(entry.key.resource.to_string())
                .or_default() += 1;
        }
        sink.put(StoredObject { entry, json: bytes }).await?;
    }
    if !version_seen {
        return Err(not_velero("no metadata/version file".into()));
    }
    sink.finish(&summary).await?;
    Ok(summary)
}

struct TarPath {
    key: ObjectKey,
    /// `None` for the unversioned (preferred) copy.
    version: Option<String>,
}

/// `Ok(None)` for files that are not objects or repeat one
/// (`-preferredversion`); `Err` for paths that would escape or make no sense.
fn parse_tar_path(path: &str) -> std::result::Result<Option<TarPath>, String> {
    let parts: Vec<&str> = path.split('/').collect();
    let (gr, version, rest) = match parts.as_slice() {
        ["resources", gr, "namespaces" | "cluster", ..] => (*gr, None, &parts[2..]),
        ["resources", _, v, ..] if v.ends_with(PREFERRED_SUFFIX) => return Ok(None),
        ["resources", gr, v, ..] => (*gr, Some(v.to_string()), &parts[3..]),
        _ => return Ok(None),
    };
    let (namespace, file) = match rest {
        ["namespaces", ns, file] => (Some(ns.to_string()), *file),
        ["cluster", file] => (None, *file),
        _ => return Err("expected namespaces/<ns>/<name>.json or cluster/<name>.json".into()),
    };
    let name = file
        .strip_suffix(".json")
        .ok_or("the file name does not end in .json")?;
    for part in [gr, name]
        .into_iter()
        .chain(namespace.as_deref())
        .chain(version.as_deref())
    {
        check_name(part)?;
    }
    Ok(Some(TarPath {
        key: ObjectKey {
            resource: GroupResource::parse(gr),
            namespace,
            name: name.to_string(),
        },
        version,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_paths_follow_velero() {
        let key = ObjectKey {
            resource: GroupResource::new("apps", "deployments"),
            namespace: Some("shop".into()),
            name: "web".into(),
        };
        let entry = ObjectEntry {
            key,
            version: "v1".into(),
            preferred: true,
            attrs: ObjectAttrs::default(),
        };
        assert_eq!(
            tar_paths(&entry),
            [
                "resources/deployments.apps/namespaces/shop/web.json",
                "resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json"
            ]
        );
        let pv = ObjectEntry {
            key: ObjectKey {
                resource: GroupResource::new("", "persistentvolumes"),
                namespace: None,
                name: "pv1".into(),
            },
            version: "v1".into(),
            preferred: false,
            attrs: ObjectAttrs::default(),
        };
        assert_eq!(
            tar_paths(&pv),
            ["resources/persistentvolumes/v1/cluster/pv1.json"]
        );
        let parsed = parse_tar_path("resources/deployments.apps/namespaces/shop/web.json")
            .unwrap()
            .unwrap();
        assert_eq!(
            parsed.key.resource,
            GroupResource::new("apps", "deployments")
        );
        assert!(
            parse_tar_path(
                "resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json"
            )
            .unwrap()
            .is_none()
        );
        assert!(parse_tar_path("resources/x/namespaces/../../etc/passwd.json").is_err());
        assert!(parse_tar_path("resources/x/namespaces/ns/..json").is_err());
        assert!(parse_tar_path("backup-logs.gz").unwrap().is_none());
    }
}
