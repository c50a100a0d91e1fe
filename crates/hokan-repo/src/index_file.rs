//! Index files: the packs one writer added and the blobs in them.
//!
//! Each writer writes index files for its own packs only after those packs
//! are stored, and before the snapshot that uses them. Opening a repository
//! merges all index files into one in-memory [`Index`](hokan_core::Index).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use hokan_core::{BlobType, Id, PackId, PackedBlob};

/// One pack and its blobs, as the pack's own header lists them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct IndexedPack {
    /// The pack.
    pub id: PackId,
    /// Its blob type.
    pub kind: BlobType,
    /// Its size in bytes.
    pub size: u64,
    /// Its blobs.
    pub blobs: Vec<PackedBlob>,
}

impl IndexedPack {
    /// A pack's entry from the blobs its header lists.
    pub fn from_blobs(id: PackId, size: u64, blobs: Vec<PackedBlob>) -> Self {
        // A pack holds one kind of blob; an empty one is listed as data.
        let kind = blobs.first().map_or(BlobType::Data, |b| b.kind);
        IndexedPack {
            id,
            kind,
            size,
            blobs,
        }
    }
}

/// The content of one index file.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Index files this one replaces (written by prune and repair, which
    /// delete them afterwards); readers ignore the ones listed here.
    pub supersedes: Vec<Id>,
    /// The packs.
    pub packs: Vec<IndexedPack>,
}

/// The packs the index lists now: those of every file no other file
/// supersedes, each pack once (its first listing wins).
pub fn live_packs(files: &[(Id, IndexFile)]) -> Vec<IndexedPack> {
    let superseded: HashSet<Id> = files
        .iter()
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .collect();
    let mut seen = HashSet::new();
    files
        .iter()
        .filter(|(id, _)| !superseded.contains(id))
        .flat_map(|(_, f)| &f.packs)
        .filter(|p| seen.insert(p.id))
        .cloned()
        .collect()
}

/// [`live_packs`], moving the packs out of `files` rather than copying
/// them (every file's list is left empty): prune and check then hold each
/// pack's blobs once, not twice, at their peak.
pub fn take_live_packs(files: &mut [(Id, IndexFile)]) -> Vec<IndexedPack> {
    let superseded: HashSet<Id> = files
        .iter()
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (id, f) in files.iter_mut() {
        let packs = std::mem::take(&mut f.packs);
        if !superseded.contains(id) {
            out.extend(packs.into_iter().filter(|p| seen.insert(p.id)));
        }
    }
    out
}
