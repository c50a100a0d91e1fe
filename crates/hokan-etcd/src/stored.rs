//! An etcd snapshot as a repository stores it: the tree, its node names and
//! attributes, and opening one for reading.
//!
//! ```text
//! /layout            object: the layout stream's chunks (cut by the repository's
//!                    chunker); attributes: the database's facts (DbFacts)
//! /records/          directory of parts, each 65,536 records at most
//!     000000/records object: the records' chunks, one per record, in file order
//!     000001/records ...
//! /objects           object: the catalog (crate::catalog) of the `key` bucket
//! ```
//!
//! Records are split into parts so that no tree blob grows with the
//! database (a part's tree is about 2.3 MB), and so that reading one object
//! reads one part. Every record is a chunk of some node's content, so
//! `prune` and `check` see them as they see any file's data.

use hokan_core::{Attr, AttrValue, ChunkRef, Node, NodeKind, TreeId};
use hokan_repo::{IndexedRepository, SnapshotEntry, SourceKind};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::split::{Trailer, hex};
use crate::status::Status;

/// The layout node.
pub const LAYOUT: &str = "layout";
/// The directory of record parts, and the object node inside each part.
pub const RECORDS: &str = "records";
/// The catalog node.
pub const OBJECTS: &str = "objects";
/// Records per part.
pub const RECORDS_PER_PART: usize = 1 << 16;

/// What the layout node's attributes say about the database.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DbFacts {
    /// Bytes of the snapshot file (SHA-256 trailer included).
    pub size: u64,
    /// SHA-256 of those bytes, hex.
    pub sha256: String,
    /// bbolt page size.
    pub page_size: u32,
    /// Whether the file ends in etcdctl's SHA-256 trailer.
    pub trailer: bool,
    /// Records cut out, and their bytes.
    pub records: u64,
    /// Bytes of the records.
    pub record_bytes: u64,
    /// Bytes of the layout stream.
    pub layout_bytes: u64,
    /// `etcdctl snapshot status`, when it was computed while storing.
    pub status: Option<Status>,
    /// Why there is no status or catalog, when there is none.
    pub inventory_error: Option<String>,
    /// The cluster, member and etcd version the snapshot came from (hex
    /// ids as etcdctl prints them), where known.
    pub cluster_id: Option<String>,
    /// How the cluster id was learned: `etcd` (asked), `members` (derived
    /// from the members bucket), `given`.
    pub cluster_id_source: Option<String>,
    /// The member that sent a live snapshot.
    pub member_id: Option<String>,
    /// Its name.
    pub member_name: Option<String>,
    /// Its etcd version.
    pub etcd_version: Option<String>,
}

fn int(key: &str, v: impl TryInto<i64>) -> Attr {
    Attr {
        key: key.into(),
        value: AttrValue::Int(v.try_into().unwrap_or(i64::MAX)),
    }
}

fn text(key: &str, v: &str) -> Attr {
    Attr {
        key: key.into(),
        value: AttrValue::Str(v.into()),
    }
}

impl DbFacts {
    /// The facts as the layout node's typed attributes.
    pub fn attrs(&self) -> Vec<Attr> {
        let mut a = vec![
            int("format", crate::layout::VERSION),
            int("size", self.size),
            text("sha256", &self.sha256),
            int("page_size", self.page_size),
            text("trailer", if self.trailer { "sha256" } else { "none" }),
            int("records", self.records),
            int("record_bytes", self.record_bytes),
            int("layout_bytes", self.layout_bytes),
        ];
        if let Some(s) = &self.status {
            a.extend([
                int("hash", s.hash),
                int("revision", s.revision),
                int("total_key", s.total_key),
                int("total_size", s.total_size),
            ]);
        }
        let texts = [
            ("inventory_error", &self.inventory_error),
            ("cluster_id", &self.cluster_id),
            ("cluster_id_source", &self.cluster_id_source),
            ("member_id", &self.member_id),
            ("member_name", &self.member_name),
            ("etcd_version", &self.etcd_version),
        ];
        for (k, v) in texts {
            if let Some(v) = v {
                a.push(text(k, v));
            }
        }
        a
    }

    /// Reads the facts back from a layout node.
    pub fn from_node(node: &Node) -> Result<DbFacts> {
        let missing = |k: &str| Error::layout(format!("the layout node has no {k} attribute"));
        let num = |k: &str| match node.attr(k) {
            Some(AttrValue::Int(i)) => Ok(*i),
            _ => Err(missing(k)),
        };
        let opt_text = |k: &str| node.attr_str(k).map(str::to_string);
        let format = num("format")?;
        if format != i64::from(crate::layout::VERSION) {
            return Err(Error::UnsupportedVersion {
                found: u8::try_from(format).unwrap_or(u8::MAX),
                supported: crate::layout::VERSION,
            });
        }
        let status = match (
            num("hash"),
            num("revision"),
            num("total_key"),
            num("total_size"),
        ) {
            (Ok(h), Ok(r), Ok(k), Ok(s)) => Some(Status {
                hash: h as u32,
                revision: r,
                total_key: k as u64,
                total_size: s as u64,
            }),
            _ => None,
        };
        Ok(DbFacts {
            size: num("size")? as u64,
            sha256: opt_text("sha256").ok_or_else(|| missing("sha256"))?,
            page_size: num("page_size")? as u32,
            trailer: node.attr_str("trailer") == Some("sha256"),
            records: num("records")? as u64,
            record_bytes: num("record_bytes")? as u64,
            layout_bytes: num("layout_bytes")? as u64,
            status,
            inventory_error: opt_text("inventory_error"),
            cluster_id: opt_text("cluster_id"),
            cluster_id_source: opt_text("cluster_id_source"),
            member_id: opt_text("member_id"),
            member_name: opt_text("member_name"),
            etcd_version: opt_text("etcd_version"),
        })
    }
}

/// The trailer state as the facts record it.
pub(crate) fn has_trailer(t: Trailer) -> bool {
    t == Trailer::Valid
}

/// A stored etcd snapshot opened for reading.
#[derive(Clone, Debug)]
pub struct EtcdSnapshot {
    /// The snapshot.
    pub entry: SnapshotEntry,
    /// What its layout node says.
    pub facts: DbFacts,
    layout: Vec<ChunkRef>,
    records: Option<TreeId>,
    objects: Option<Node>,
}

impl EtcdSnapshot {
    /// Opens `entry`, which must be an etcd snapshot.
    pub fn open(repo: &IndexedRepository, entry: SnapshotEntry) -> Result<EtcdSnapshot> {
        let short = entry.id.short();
        if entry.snapshot.source != SourceKind::ETCD {
            return Err(Error::NotEtcd {
                snapshot: short,
                source_kind: entry.snapshot.source.name().to_string(),
            });
        }
        let tree = repo.read_tree(&entry.snapshot.tree)?;
        let incomplete = |what: &str| Error::Incomplete {
            snapshot: short.clone(),
            reason: format!(
                "its tree has no {what}; it was not written by hokan's etcd backup, or its tree \
                 is damaged"
            ),
        };
        let layout = tree
            .get(LAYOUT.as_bytes())
            .filter(|n| n.kind == NodeKind::Object)
            .ok_or_else(|| incomplete("layout object"))?;
        let records = tree
            .get(RECORDS.as_bytes())
            .filter(|n| n.kind == NodeKind::Dir)
            .ok_or_else(|| incomplete("records directory"))?
            .subtree;
        let objects = tree
            .get(OBJECTS.as_bytes())
            .filter(|n| n.kind == NodeKind::Object)
            .cloned();
        Ok(EtcdSnapshot {
            facts: DbFacts::from_node(layout)?,
            layout: layout.content.clone(),
            records,
            objects,
            entry,
        })
    }

    /// Finds a snapshot by id, prefix or `latest` (the newest etcd
    /// snapshot) and opens it.
    pub fn find(repo: &IndexedRepository, query: &str) -> Result<EtcdSnapshot> {
        let entry = repo.find_snapshot_of(&SourceKind::ETCD, query, &Default::default())?;
        EtcdSnapshot::open(repo, entry)
    }

    /// The snapshot's short id.
    pub fn short_id(&self) -> String {
        self.entry.id.short()
    }

    /// The layout stream's chunks.
    pub fn layout(&self) -> &[ChunkRef] {
        &self.layout
    }

    /// The record parts: one chunk list per part, in order, read lazily by
    /// [`EtcdSnapshot::part`].
    pub fn parts(&self, repo: &IndexedRepository) -> Result<Vec<TreeId>> {
        let Some(tree) = self.records else {
            return Ok(Vec::new());
        };
        let tree = repo.read_tree(&tree)?;
        tree.nodes
            .iter()
            .map(|n| {
                n.subtree.ok_or_else(|| Error::Incomplete {
                    snapshot: self.short_id(),
                    reason: format!("record part {} is not a directory", n.name_lossy()),
                })
            })
            .collect()
    }

    /// The records of one part, in order.
    pub fn part(&self, repo: &IndexedRepository, part: &TreeId) -> Result<Vec<ChunkRef>> {
        let tree = repo.read_tree(part)?;
        match tree.get(RECORDS.as_bytes()) {
            Some(n) if n.kind == NodeKind::Object => Ok(n.content.clone()),
            _ => Err(Error::Incomplete {
                snapshot: self.short_id(),
                reason: format!("record part {} holds no records object", part.short()),
            }),
        }
    }

    /// Every record, in order.
    pub fn records(&self, repo: &IndexedRepository) -> Result<Vec<ChunkRef>> {
        let mut out = Vec::with_capacity(self.facts.records as usize);
        for p in self.parts(repo)? {
            out.extend(self.part(repo, &p)?);
        }
        if out.len() as u64 != self.facts.records {
            return Err(Error::Incomplete {
                snapshot: self.short_id(),
                reason: format!(
                    "its parts list {} records, its layout node {}",
                    out.len(),
                    self.facts.records
                ),
            });
        }
        Ok(out)
    }

    /// The record at `index`, read alone.
    pub fn record(&self, repo: &IndexedRepository, index: u64) -> Result<Vec<u8>> {
        let parts = self.parts(repo)?;
        let part = usize::try_from(index / RECORDS_PER_PART as u64)
            .ok()
            .and_then(|p| parts.get(p))
            .ok_or_else(|| Error::Incomplete {
                snapshot: self.short_id(),
                reason: format!("record {index} is past its {} parts", parts.len()),
            })?;
        let refs = self.part(repo, part)?;
        let r = refs
            .get(index as usize % RECORDS_PER_PART)
            .ok_or_else(|| Error::Incomplete {
                snapshot: self.short_id(),
                reason: format!("record {index} is past the end of its part"),
            })?;
        let mut out = Vec::with_capacity(r.len as usize);
        repo.reader()
            .read_chunks(std::slice::from_ref(r), &mut out)
            .map_err(Error::from)?;
        Ok(out)
    }

    /// The catalog of the `key` bucket.
    pub fn catalog(&self, repo: &IndexedRepository) -> Result<Catalog> {
        let Some(node) = &self.objects else {
            return Err(Error::NoCatalog {
                snapshot: self.short_id(),
                reason: self
                    .facts
                    .inventory_error
                    .clone()
                    .unwrap_or_else(|| "it was stored without one".into()),
            });
        };
        let mut bytes = Vec::with_capacity(node.size as usize);
        repo.reader()
            .read_chunks(&node.content, &mut bytes)
            .map_err(Error::from)?;
        Catalog::decode(&bytes)
    }

    /// Whether the snapshot has a catalog.
    pub fn has_catalog(&self) -> bool {
        self.objects.is_some()
    }
}

/// Lower-case hex, for ids and hashes.
pub(crate) fn hex_of(bytes: &[u8]) -> String {
    hex(bytes)
}
