//! A source written here, in a few dozen lines, through the public session
//! API: an "inventory" of a few hundred records, each stored as an object
//! node with typed attributes, grouped by shelf. It is backed up twice
//! (the second time with records changed, removed and added), then browsed,
//! searched, diffed, dumped and restored like any other snapshot. This is
//! the API every source (files, streams, Kubernetes, etcd) stands on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hokan_core::browse::{self, ChangeKind};
use hokan_core::{Attr, AttrValue, Node, NodeKind};
use hokan_repo::conformance::test_init_options;
use hokan_repo::{
    CacheMode, IndexedRepository, OpenOptions, Repository, SnapshotEntry, SnapshotSpec, SourceKind,
    Staged,
};

const PASSWORD: &[u8] = b"an inventory";

/// The source's records: path (shelf/name) → (body, revision).
type Inventory = BTreeMap<String, (Vec<u8>, i64)>;

fn inventory(records: usize) -> Inventory {
    (0..records)
        .map(|i| {
            let body = format!(
                "{{\"item\":{i},\"label\":\"part {i}\",\"notes\":\"{}\"}}",
                "x".repeat(i % 300)
            );
            (
                format!("shelf-{}/item-{i:04}.json", i % 7),
                (body.into_bytes(), 1),
            )
        })
        .collect()
}

/// The source: stores each record as an object node, one tree per shelf,
/// and says how many objects it took.
fn back_up(repo: &mut IndexedRepository, records: &Inventory) -> SnapshotEntry {
    let spec = SnapshotSpec {
        identity: "warehouse-1".into(),
        labels: vec![("site".into(), "north".into())],
        ..SnapshotSpec::new(SourceKind::new("inventory").unwrap())
    };
    let committed = repo
        .backup(spec, |s| -> hokan_repo::Result<_> {
            let mut shelves: BTreeMap<&str, Vec<Node>> = BTreeMap::new();
            for (path, (body, revision)) in records {
                let (shelf, name) = path.split_once('/').unwrap();
                let attrs = vec![
                    Attr {
                        key: "revision".into(),
                        value: AttrValue::Int(*revision),
                    },
                    Attr {
                        key: "kind".into(),
                        value: AttrValue::Str("Item".into()),
                    },
                ];
                shelves.entry(shelf).or_default().push(Node::object(
                    name,
                    s.store_bytes(body)?,
                    attrs,
                ));
            }
            let mut root = Vec::new();
            for (shelf, mut nodes) in shelves {
                nodes.sort_by(|a, b| a.name.cmp(&b.name));
                root.push(Node::dir(shelf, s.store_tree(nodes)?));
            }
            let mut staged = Staged::new(s.store_tree(root)?);
            staged.bytes = records.values().map(|(b, _)| b.len() as u64).sum();
            staged.counts = vec![("objects".into(), records.len() as u64)];
            Ok((staged, s.parent().map(|p| p.id)))
        })
        .unwrap();
    committed.entry
}

fn open(dir: &Path) -> IndexedRepository {
    let options = OpenOptions {
        cache: CacheMode::Off,
        ..Default::default()
    };
    Repository::open(dir.to_str().unwrap(), PASSWORD, options)
        .unwrap()
        .load_index()
        .unwrap()
}

/// Every object in a snapshot, by path, with its attributes' revision.
fn listing(repo: &IndexedRepository, entry: &SnapshotEntry) -> BTreeMap<PathBuf, i64> {
    let mut found = BTreeMap::new();
    browse::walk(
        &repo.reader(),
        &entry.snapshot.tree,
        Path::new("/"),
        &mut |path, node| -> hokan_core::Result<bool> {
            if node.kind == NodeKind::Object {
                let Some(AttrValue::Int(r)) = node.attr("revision") else {
                    panic!("{} has no revision", path.display());
                };
                found.insert(path.to_path_buf(), *r);
            }
            Ok(true)
        },
    )
    .unwrap();
    found
}

#[test]
fn a_source_written_here_backs_up_browses_diffs_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    Repository::init(
        repo_dir.to_str().unwrap(),
        PASSWORD,
        test_init_options(),
        Default::default(),
    )
    .unwrap();
    let mut repo = open(&repo_dir);

    // The first backup: 300 records.
    let first_records = inventory(300);
    let first = back_up(&mut repo, &first_records);
    assert_eq!(first.snapshot.source.name(), "inventory");
    assert_eq!(first.snapshot.summary.count("objects"), 300);
    assert_eq!(first.snapshot.parent, None);

    // The second: 10 changed, 5 removed, 7 added.
    let mut second_records = first_records.clone();
    let keys: Vec<String> = second_records.keys().cloned().collect();
    for k in keys.iter().step_by(30) {
        let (body, revision) = second_records.get_mut(k).unwrap();
        body.extend_from_slice(b" ");
        *revision += 1;
    }
    for k in keys.iter().skip(3).step_by(61) {
        second_records.remove(k);
    }
    for i in 1000..1007 {
        second_records.insert(format!("shelf-new/item-{i}.json"), (b"{}".to_vec(), 1));
    }
    assert_eq!(second_records.len(), 300 - 5 + 7);
    let second = back_up(&mut repo, &second_records);
    // The parent was found by the source's kind and identity.
    assert_eq!(second.snapshot.parent, Some(first.id));
    assert_eq!(second.snapshot.summary.count("objects"), 302);
    // Unchanged records deduplicate: only the 10 changed bodies, one body
    // for the 7 identical new records, the 7 touched shelves and the root
    // were stored. The new shelf (7 records, under CARRY_MAX) is carried
    // inside the root rather than stored as a blob.
    assert_eq!(second.snapshot.summary.blobs_added, 10 + 1 + 7 + 1);

    // A fresh process sees the same.
    let repo = open(&repo_dir);
    let snaps = repo.snapshots().unwrap();
    assert_eq!(snaps.len(), 2);

    // Browse: every object with its typed attributes.
    let listed = listing(&repo, &second);
    let expected: BTreeMap<PathBuf, i64> = second_records
        .iter()
        .map(|(p, (_, r))| (Path::new("/").join(p), *r))
        .collect();
    assert_eq!(listed, expected);

    // Find: one glob dialect, case-insensitive on request, `*` not
    // crossing `/`.
    let glob = hokan_core::glob::compile(&["/SHELF-3/item-00*.json".to_string()], true)
        .unwrap()
        .unwrap();
    let matched: Vec<&PathBuf> = listed.keys().filter(|p| glob.is_match(p)).collect();
    let want: Vec<&PathBuf> = expected
        .keys()
        .filter(|p| {
            let s = p.to_str().unwrap();
            s.starts_with("/shelf-3/item-00")
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(matched, want);
    let crossing = hokan_core::glob::compile(&["/*.json".to_string()], false)
        .unwrap()
        .unwrap();
    assert!(!listed.keys().any(|p| crossing.is_match(p)));

    // Diff: exactly the changes the source made.
    let changes =
        browse::diff(&repo.reader(), &first.snapshot.tree, &second.snapshot.tree).unwrap();
    let count = |kind: ChangeKind, node: NodeKind| {
        changes
            .iter()
            .filter(|c| c.kind == kind && c.node_kind == node)
            .count()
    };
    assert_eq!(
        count(ChangeKind::Modified, NodeKind::Object),
        10,
        "{changes:#?}"
    );
    assert_eq!(
        count(ChangeKind::Removed, NodeKind::Object),
        5,
        "{changes:#?}"
    );
    // The new shelf is one added directory; its objects are added below it.
    assert_eq!(count(ChangeKind::Added, NodeKind::Dir), 1, "{changes:#?}");
    assert_eq!(
        count(ChangeKind::Added, NodeKind::Object),
        7,
        "{changes:#?}"
    );

    // Dump: each object's body, exactly.
    for (path, (body, _)) in second_records.iter().step_by(17) {
        let mut out = Vec::new();
        repo.dump(&second.snapshot, path, &mut out).unwrap();
        assert_eq!(&out, body, "{path}");
    }
    let node = repo
        .node(&second.snapshot, "shelf-0/item-0000.json")
        .unwrap();
    assert_eq!(node.attr("kind"), Some(&AttrValue::Str("Item".into())));

    // Restore of a subtree: objects come back as files with their bodies.
    let target = dir.path().join("restored");
    let restored = repo
        .restore(
            &first.snapshot,
            "shelf-2",
            &target,
            Default::default(),
            &hokan_core::fs::NoProgress,
        )
        .unwrap();
    let mut files = 0;
    for (path, (body, _)) in first_records
        .iter()
        .filter(|(p, _)| p.starts_with("shelf-2/"))
    {
        let name = path.strip_prefix("shelf-2/").unwrap();
        assert_eq!(&std::fs::read(target.join(name)).unwrap(), body, "{path}");
        files += 1;
    }
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), files);
    assert!(restored.warnings.is_empty(), "{:?}", restored.warnings);
}
