//! Figures about snapshots, as restic's `stats` computes them:
//!
//! * restore size: what restoring the snapshots would write (every file
//!   counted in every snapshot, hard links once per snapshot);
//! * files by contents: files with distinct contents, each counted once;
//! * raw data: the unique blobs the snapshots reference (file chunks and
//!   trees), their plaintext size and what they take in the store.

use std::collections::HashSet;

use hokan_core::{BlobType, ChunkRef, Id, NodeKind, PackId, Tree, TreeId};

use crate::error::{Result, from_core};
use crate::index_load::IndexedRepository;
use crate::snapshot::SnapshotEntry;

/// Which figures to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsMode {
    /// The size of the files as restored.
    RestoreSize,
    /// Unique file contents.
    FilesByContents,
    /// Unique blobs, stored and plaintext sizes.
    RawData,
}

/// The figures for a set of snapshots; which fields are filled depends on
/// the [`StatsMode`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Snapshots counted.
    pub snapshots: usize,
    /// Files (entries other than directories): every one in restore-size
    /// mode, distinct contents in files-by-contents mode.
    pub files: u64,
    /// Their bytes (restore-size, files-by-contents); in raw-data mode the
    /// plaintext bytes of the unique blobs.
    pub bytes: u64,
    /// Unique blobs (raw-data).
    pub blobs: u64,
    /// Bytes those blobs take in the store, compressed and encrypted; a
    /// group of small blobs counts once (raw-data).
    pub stored_bytes: u64,
}

impl Stats {
    /// Plaintext bytes per stored byte (raw-data); 0 when nothing is stored.
    pub fn compression_ratio(&self) -> f64 {
        if self.stored_bytes == 0 {
            0.0
        } else {
            self.bytes as f64 / self.stored_bytes as f64
        }
    }
}

/// State while walking: what has been counted once already.
struct Walk<'r> {
    repo: &'r IndexedRepository,
    mode: StatsMode,
    stats: Stats,
    /// Trees and chunks counted (raw-data), contents seen (files-by-contents).
    seen: HashSet<Id>,
    /// Stored records counted: group members share one.
    records: HashSet<(PackId, u32)>,
    /// Hard links met in the current snapshot (restore-size).
    links: HashSet<(u64, u64)>,
}

impl Walk<'_> {
    fn tree(&mut self, id: &TreeId) -> Result<()> {
        if self.mode == StatsMode::RawData && !self.seen.insert(id.0) {
            return Ok(()); // its blobs are counted already
        }
        let bytes = self
            .repo
            .reader()
            .read_blob(BlobType::Tree, &id.0)
            .map_err(from_core)?;
        // A carried tree's bytes are counted in the tree carrying it.
        if self.mode == StatsMode::RawData && self.repo.index().contains(&id.0) {
            self.blob(&id.0, bytes.len() as u64);
        }
        let tree = Tree::decode(&bytes, id).map_err(from_core)?;
        for node in &tree.nodes {
            if let Some(sub) = &node.subtree {
                self.tree(sub)?;
            }
            if node.kind == NodeKind::Dir {
                continue;
            }
            match self.mode {
                StatsMode::RestoreSize => {
                    if node.hard_link_key().is_none_or(|k| self.links.insert(k)) {
                        self.stats.files += 1;
                        self.stats.bytes += node.size;
                    }
                }
                StatsMode::FilesByContents => {
                    if self.seen.insert(contents_id(&node.content)) {
                        self.stats.files += 1;
                        self.stats.bytes += node.size;
                    }
                }
                StatsMode::RawData => {
                    for c in &node.content {
                        if c.id != ChunkRef::HOLE_ID && self.seen.insert(c.id.0) {
                            self.blob(&c.id.0, c.len as u64);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Counts a blob met for the first time.
    fn blob(&mut self, id: &Id, plain: u64) {
        self.stats.blobs += 1;
        self.stats.bytes += plain;
        if let Some(loc) = self.repo.index().get(id)
            && self.records.insert((loc.pack, loc.offset))
        {
            self.stats.stored_bytes += loc.length as u64;
        }
    }
}

/// One id for a file's whole content: equal chunk lists, equal contents.
fn contents_id(content: &[ChunkRef]) -> Id {
    let mut h = blake3::Hasher::new();
    for c in content {
        h.update(&c.id.0.0);
        h.update(&c.len.to_le_bytes());
    }
    Id(*h.finalize().as_bytes())
}

impl IndexedRepository {
    /// Figures for `snapshots` in `mode` (see [`StatsMode`]).
    pub fn stats(&self, snapshots: &[SnapshotEntry], mode: StatsMode) -> Result<Stats> {
        let mut w = Walk {
            repo: self,
            mode,
            stats: Stats {
                snapshots: snapshots.len(),
                ..Stats::default()
            },
            seen: HashSet::new(),
            records: HashSet::new(),
            links: HashSet::new(),
        };
        for e in snapshots {
            w.links.clear();
            w.tree(&e.snapshot.tree)?;
        }
        Ok(w.stats)
    }
}
