//! Small trees carried inside the tree that names them (tree version 3):
//! what the writer stores, what every reader of the index finds, and what
//! it refuses.

use std::collections::HashMap;
use std::sync::Mutex;

use hokan_core::tree::CARRY_MAX;
use hokan_core::{
    BlobReader, BlobType, BlobWriter, Error, FinishedPack, FormatVersion, Index, MasterKey, Node,
    NodeKind, PackId, Tree, TreeId, WriterConfig,
};

type Store = HashMap<PackId, Vec<u8>>;

/// Runs `f` with a writer over `index`, then lands its packs in `index`
/// and `store`.
fn write<T>(
    key: &MasterKey,
    format: FormatVersion,
    index: &mut Index,
    store: &mut Store,
    f: impl FnOnce(&BlobWriter<'_>) -> T,
) -> T {
    let sink: Mutex<Vec<FinishedPack>> = Mutex::new(Vec::new());
    let config = WriterConfig {
        format,
        ..Default::default()
    };
    let out = {
        let writer = BlobWriter::new(key, config, index, &sink).unwrap();
        let out = f(&writer);
        writer.finish().unwrap();
        out
    };
    for p in sink.into_inner().unwrap() {
        index.insert_pack(p.id, p.kind, &p.blobs);
        store.insert(p.id, p.bytes);
    }
    out
}

fn leaf(name: &str) -> Tree {
    Tree::new(vec![Node::new(name, NodeKind::File)]).unwrap()
}

/// A tree too big to be carried.
fn big() -> Tree {
    let nodes = (0..CARRY_MAX / 8)
        .map(|i| Node::new(format!("file-{i:05}"), NodeKind::File))
        .collect();
    Tree::new(nodes).unwrap()
}

/// A root naming one small tree (a directory holding one file), written
/// in `format`: (the root, the small tree).
fn root_over_leaf(
    key: &MasterKey,
    format: FormatVersion,
    index: &mut Index,
    store: &mut Store,
) -> (TreeId, TreeId) {
    write(key, format, index, store, |w| {
        let small = w.write_tree(&leaf("f")).unwrap();
        let root = w
            .write_tree(&Tree::new(vec![Node::dir("a", small)]).unwrap())
            .unwrap();
        (root, small)
    })
}

fn stored(index: &Index, id: &TreeId) -> bool {
    index.get(&id.0).is_some_and(|l| l.kind == BlobType::Tree)
}

#[test]
fn small_trees_ride_in_their_parent_and_every_reader_finds_them() {
    let key = MasterKey::generate().unwrap();
    let (mut index, mut store) = (Index::new(), Store::new());
    let (root, small, inner, large) = write(&key, FormatVersion::V2, &mut index, &mut store, |w| {
        let small = w.write_tree(&leaf("f")).unwrap();
        // A small tree carrying a small tree: carried in turn.
        let inner = w
            .write_tree(&Tree::new(vec![Node::dir("x", small)]).unwrap())
            .unwrap();
        let large = w.write_tree(&big()).unwrap();
        // The same small tree named twice is carried once.
        let root = w
            .write_tree(
                &Tree::new(vec![
                    Node::dir("a", small),
                    Node::dir("b", small),
                    Node::dir("c", inner),
                    Node::dir("d", large),
                ])
                .unwrap(),
            )
            .unwrap();
        (root, small, inner, large)
    });
    // The root (no tree carries it) and the big tree are blobs; the small
    // ones are not.
    assert!(stored(&index, &root) && stored(&index, &large));
    assert!(!stored(&index, &small) && !stored(&index, &inner));

    let reader = BlobReader::new(&key, &index, &store);
    // Not reachable before the tree carrying it is read.
    assert!(matches!(
        reader.read_blob(BlobType::Tree, &inner.0),
        Err(Error::BlobNotFound { .. })
    ));
    let bytes = reader.read_blob(BlobType::Tree, &root.0).unwrap();
    assert_eq!(bytes[0], 3);
    assert!(reader.is_carried(&inner.0) && !reader.is_carried(&large.0));
    let t = Tree::decode(&reader.read_blob(BlobType::Tree, &inner.0).unwrap(), &inner).unwrap();
    assert_eq!(t.nodes[0].subtree, Some(small));
    // Another reader of the same index finds them too (taking them out of
    // their carrier again), and so does a batch read.
    let other = BlobReader::new(&key, &index, &store);
    let got = other.read_blob(BlobType::Tree, &small.0).unwrap();
    assert_eq!(Tree::decode(&got, &small).unwrap(), leaf("f"));
    let batch = other
        .read_blobs(BlobType::Tree, &[small.0, large.0, inner.0])
        .unwrap();
    assert!(batch.iter().all(|r| r.is_ok()));
    assert_eq!(
        Tree::decode(batch[1].as_ref().unwrap(), &large).unwrap(),
        big()
    );
}

#[test]
fn a_carried_tree_is_checked_against_its_id() {
    let key = MasterKey::generate().unwrap();
    let (mut index, mut store) = (Index::new(), Store::new());
    let (root, small) = root_over_leaf(&key, FormatVersion::V2, &mut index, &mut store);
    let reader = BlobReader::new(&key, &index, &store);
    reader.read_blob(BlobType::Tree, &root.0).unwrap();
    // A wrong place on record (as if the carrier changed) is damage, found
    // by the id check, not a wrong tree handed out.
    let wrong = key.tree_id(&leaf("g").encode(FormatVersion::V2).unwrap());
    let index2 = index.clone();
    index2.note_carried(wrong.0, root.0, 0);
    let fresh = BlobReader::new(&key, &index2, &store);
    let e = fresh.read_blob(BlobType::Tree, &wrong.0).unwrap_err();
    assert!(e.is_corruption(), "{e}");
    assert!(fresh.read_blob(BlobType::Tree, &small.0).is_ok());
}

#[test]
fn a_tree_naming_what_is_neither_stored_nor_written_is_refused() {
    let key = MasterKey::generate().unwrap();
    let (mut index, mut store) = (Index::new(), Store::new());
    write(&key, FormatVersion::V2, &mut index, &mut store, |w| {
        let stray = TreeId(hokan_core::Id([7; 32]));
        let e = w
            .write_tree(&Tree::new(vec![Node::dir("a", stray)]).unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("neither stored nor written"), "{e}");
    });
}

#[test]
fn an_encoded_tree_naming_a_small_tree_it_does_not_carry_keeps_it_stored() {
    let key = MasterKey::generate().unwrap();
    let (mut index, mut store) = (Index::new(), Store::new());
    let (a, b, small) = write(&key, FormatVersion::V2, &mut index, &mut store, |w| {
        let small = w.write_tree(&leaf("f")).unwrap();
        let t = Tree::new(vec![Node::dir("s", small)]).unwrap();
        // One tree carries it, one (copied as encoded) only names it.
        let a = w.write_tree(&t).unwrap();
        let plain = t.encode(FormatVersion::V2).unwrap();
        let b = w.write_tree_encoded(&plain).unwrap();
        (a, b, small)
    });
    assert_ne!(a, b);
    assert!(stored(&index, &a) && stored(&index, &b) && stored(&index, &small));
    let reader = BlobReader::new(&key, &index, &store);
    reader.read_blob(BlobType::Tree, &small.0).unwrap();
}

#[test]
fn version_1_repositories_store_every_tree() {
    let key = MasterKey::generate().unwrap();
    let (mut index, mut store) = (Index::new(), Store::new());
    let (root, small) = root_over_leaf(&key, FormatVersion::V1, &mut index, &mut store);
    assert!(stored(&index, &root) && stored(&index, &small));
    let reader = BlobReader::new(&key, &index, &store);
    assert_eq!(reader.read_blob(BlobType::Tree, &root.0).unwrap()[0], 1);
}
