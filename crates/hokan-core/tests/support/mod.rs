//! What the restore tests share: a backup of a directory into memory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use hokan_core::fs::{Archiver, Excludes, NoProgress};
use hokan_core::{BlobWriter, FinishedPack, Index, MasterKey, PackId, TreeId, WriterConfig};

/// Backs `src` up; returns the index, the packs by id, and the root tree.
pub fn backup(key: &MasterKey, src: &Path) -> (Index, HashMap<PackId, Vec<u8>>, TreeId) {
    let index = Index::new();
    let sink: Mutex<Vec<FinishedPack>> = Mutex::new(Vec::new());
    let root = {
        let writer = BlobWriter::new(key, WriterConfig::default(), &index, &sink).unwrap();
        let excludes = Excludes::none();
        let archiver = Archiver::new(&writer, None, &excludes, &NoProgress);
        let done = archiver.archive(&[src.to_path_buf()], None).unwrap();
        writer.finish().unwrap();
        done.tree
    };
    let mut index = index;
    let mut packs = HashMap::new();
    for p in sink.into_inner().unwrap() {
        index.insert_pack(p.id, p.kind, &p.blobs);
        packs.insert(p.id, p.bytes);
    }
    (index, packs, root)
}
