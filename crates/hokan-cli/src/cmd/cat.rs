//! `hokan cat config|snapshot|index|pack|key|blob|tree ID`: one repository
//! object, decrypted. Structured objects print as JSON (always: they have
//! no other useful text form); a blob prints as its raw bytes.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use hokan_core::pack::{PackReader, group_members};
use hokan_core::{Id, PackId, PackedBlob, TreeId};
use hokan_repo::layout;

use crate::Global;

#[derive(clap::Args, Debug)]
pub struct CatArgs {
    /// What to print: config, snapshot, index, pack, key, blob or tree
    #[arg(value_parser = ["config", "snapshot", "index", "pack", "key", "blob", "tree"])]
    pub kind: String,
    /// The object's id or a unique prefix of it ("latest" for a snapshot);
    /// not for config
    pub id: Option<String>,
}

/// The one id in `ids` that starts with `query`, or an error that says
/// which command lists them.
fn resolve(ids: impl IntoIterator<Item = Id>, query: &str, what: &str) -> Result<Id> {
    let q = query.to_ascii_lowercase();
    if q.is_empty() || !q.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{query:?} is not a {what} id: give its hex id or a unique prefix");
    }
    let mut found: Vec<Id> = ids
        .into_iter()
        .filter(|id| id.to_hex().starts_with(&q))
        .collect();
    found.sort();
    found.dedup();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no {what} with an id starting {query:?}"),
        many => bail!(
            "{} {what}s have ids starting {query:?}: give more of the id",
            many.len()
        ),
    }
}

/// A pack's blob list as JSON.
fn blobs_json(blobs: &[PackedBlob]) -> Vec<serde_json::Value> {
    blobs
        .iter()
        .zip(group_members(blobs))
        .map(|(b, grouped)| {
            serde_json::json!({
                "type": b.kind.name(), "id": b.id.to_hex(), "offset": b.offset,
                "length": b.length, "uncompressed_length": b.raw_len, "in_group": grouped,
            })
        })
        .collect()
}

pub fn run(g: &Global, a: CatArgs) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let need_id = || {
        a.id.as_deref()
            .ok_or_else(|| anyhow!("`hokan cat {}` needs an id", a.kind))
    };
    let value = match a.kind.as_str() {
        "config" => {
            let c = repo.config();
            serde_json::json!({
                "format": c.format.number(), "id": c.repo_id.to_hex(),
                "chunk_min": c.chunk_min, "chunk_avg": c.chunk_avg, "chunk_max": c.chunk_max,
                "compression": c.compression, "pack_size": c.pack_size,
                "created": c.created, "small_blob": c.small_blob, "group_size": c.group_size,
                "immutable": c.immutable.is_some(),
                "lock_retention_seconds": c.immutable.map(|m| m.retention_secs),
            })
        }
        "snapshot" => {
            let e = repo.find_snapshot(need_id()?, &Default::default())?;
            super::snapshots::snapshot_json(&e)
        }
        "index" => {
            let files = repo.index_files()?;
            let ids = files
                .files
                .iter()
                .map(|(id, _)| *id)
                .chain(files.unreadable.iter().map(|u| u.id));
            let id = resolve(ids, need_id()?, "index file")?;
            let Some((_, f)) = files.files.iter().find(|(i, _)| *i == id) else {
                let u = files
                    .unreadable
                    .iter()
                    .find(|u| u.id == id)
                    .expect("listed");
                bail!("index file {} cannot be read: {}", id.short(), u.reason);
            };
            serde_json::json!({
                "id": id.to_hex(),
                "supersedes": f.supersedes.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
                "packs": f.packs.iter().map(|p| serde_json::json!({
                    "id": p.id.to_hex(), "type": p.kind.name(), "size": p.size,
                    "blobs": blobs_json(&p.blobs),
                })).collect::<Vec<_>>(),
            })
        }
        "pack" => {
            let packs = repo.pack_files()?;
            let id = PackId(resolve(packs.keys().map(|p| p.0), need_id()?, "pack")?);
            let bytes = repo.store().get(&layout::pack(&id))?;
            let (version, _) = hokan_core::pack::header_range(&bytes, "pack")?;
            // The header read from the pack itself, not from the index: this
            // is what `repair index` would rebuild from.
            let reader = PackReader::open(&bytes, Some(&id), repo.master_key())?;
            serde_json::json!({
                "id": id.to_hex(), "size": bytes.len(), "version": version,
                "blobs": blobs_json(reader.blobs()),
            })
        }
        "key" => {
            let keys = repo.keys()?;
            let id = resolve(keys.iter().map(|k| k.id), need_id()?, "key")?;
            let k = keys.iter().find(|k| k.id == id).expect("resolved");
            // Never the master key itself: only what `key list` shows, in full.
            serde_json::json!({
                "id": k.id.to_hex(), "current": k.current,
                "hostname": k.info.hostname, "username": k.info.username,
                "created": k.info.created, "label": k.info.label,
                "kdf": {"algorithm": "argon2id", "memory_kib": k.kdf.memory_kib,
                        "iterations": k.kdf.iterations, "parallelism": k.kdf.parallelism},
            })
        }
        "blob" | "tree" => {
            let repo = repo.load_index()?;
            let index = repo.index();
            let query = need_id()?;
            let mut ids: Vec<Id> = index.iter().map(|(id, _)| id).collect();
            // A small tree carried inside its parent is in no index: look
            // through the snapshots' trees for it, only when the index
            // has no match (the walk reads every tree).
            let q = query.to_ascii_lowercase();
            if a.kind == "tree" && !ids.iter().any(|id| id.to_hex().starts_with(&q)) {
                ids.extend(repo.carried_trees()?.into_iter().map(|t| t.0));
            }
            let id = resolve(ids, query, &a.kind)?;
            if a.kind == "tree" {
                let tree = repo.read_tree(&TreeId(id))?;
                serde_json::json!({
                    "id": id.to_hex(),
                    "nodes": tree.nodes.iter().map(|n| {
                        let mut j = super::ls::node_json(std::path::Path::new(&*n.name_lossy()), n);
                        if let Some(sub) = n.subtree {
                            j["subtree"] = sub.0.to_hex().into();
                        }
                        j
                    }).collect::<Vec<_>>(),
                })
            } else {
                let loc = index.get(&id).expect("resolved from the index");
                let bytes = repo.reader().read_blob(loc.kind, &id)?;
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)
                    .context("writing the blob to stdout")?;
                out.flush()?;
                return Ok(ExitCode::SUCCESS);
            }
        }
        other => bail!("cannot cat {other:?}"),
    };
    // Pretty unless --json asks for one line: people read these.
    let text = if g.json {
        serde_json::to_string(&value)?
    } else {
        serde_json::to_string_pretty(&value)?
    };
    // Piped into `head` or `less` and closed early is not an error.
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        other => other
            .context("writing to stdout")
            .map(|_| ExitCode::SUCCESS),
    }
}
