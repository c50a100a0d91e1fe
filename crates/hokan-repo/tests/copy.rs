//! `IndexedRepository::copy_from`: snapshots moved between repositories of
//! either format, with shared or separate id keys; contents compared by
//! walking the trees of both sides.

use std::path::PathBuf;

use hokan_core::sample::{Kind, generate};
use hokan_core::{Attr, AttrValue, FormatVersion, Node, TreeId};
use hokan_repo::conformance::test_init_options;
use hokan_repo::{
    CacheMode, IndexedRepository, InitOptions, OpenOptions, Repository, SnapshotSpec, SourceKind,
    Staged,
};
use object_store::memory::InMemory;

const PASSWORD: &[u8] = b"copy test";

fn options() -> OpenOptions {
    OpenOptions {
        cache: CacheMode::Off,
        ..Default::default()
    }
}

fn open(location: &str, password: &[u8]) -> IndexedRepository {
    Repository::open(location, password, options())
        .unwrap()
        .load_index()
        .unwrap()
}

/// Every entry under `tree`: path, kind and content bytes.
fn contents(repo: &IndexedRepository, tree: TreeId) -> Vec<(PathBuf, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![(tree, PathBuf::from("/"))];
    while let Some((t, path)) = todo.pop() {
        for n in repo.read_tree(&t).unwrap().nodes {
            let p = path.join(&*n.name_lossy());
            let mut body = Vec::new();
            repo.reader().read_chunks(&n.content, &mut body).unwrap();
            out.push((p.clone(), n.kind.name().to_string(), body));
            if let Some(sub) = n.subtree {
                todo.push((sub, p));
            }
        }
    }
    out.sort();
    out
}

/// A snapshot of `n` objects (shared bodies across calls) in a namespace
/// directory: object nodes, so format 2 only.
fn objects(repo: &mut IndexedRepository, n: usize, extra: &[u8]) {
    let spec = SnapshotSpec {
        identity: "cluster-a".into(),
        ..SnapshotSpec::new(SourceKind::new("records").unwrap())
    };
    repo.backup(spec, |s| -> hokan_repo::Result<_> {
        let mut nodes = Vec::new();
        for i in 0..n {
            let body = generate(Kind::Text, 20_000 + i, i as u64);
            let kind = Attr {
                key: "kind".into(),
                value: AttrValue::Str("ConfigMap".into()),
            };
            nodes.push(Node::object(
                format!("cm-{i}.json"),
                s.store_bytes(&body)?,
                vec![kind],
            ));
        }
        nodes.push(Node::object("extra", s.store_bytes(extra)?, vec![]));
        let ns = s.store_tree(nodes)?;
        Ok((
            Staged::new(s.store_tree(vec![Node::dir("default", ns)])?),
            (),
        ))
    })
    .unwrap();
}

fn init(location: &str, format: FormatVersion) {
    let init = InitOptions {
        format,
        ..test_init_options()
    };
    Repository::init(location, PASSWORD, init, options()).unwrap();
}

#[test]
fn separate_keys_rewrite_trees_and_reuse_what_earlier_snapshots_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    let (src, dst) = (src.to_str().unwrap(), dst.to_str().unwrap());
    init(src, FormatVersion::V2);
    init(dst, FormatVersion::V2);
    let mut source = open(src, PASSWORD);
    objects(&mut source, 40, &generate(Kind::Random, 3 << 20, 7));
    objects(&mut source, 40, b"only this changed");
    let snaps = source.snapshots().unwrap();
    let mut target = open(dst, PASSWORD);
    let report = target.copy_from(&source, &snaps, &()).unwrap();
    assert!(!report.same_ids);
    assert_eq!(report.copied.len(), 2);
    // The second snapshot shares its 40 bodies with the first: only the
    // changed object and its two trees are read again.
    assert_eq!(report.copied[1].blobs, 3, "{report:?}");
    for (s, c) in snaps.iter().zip(&report.copied) {
        assert_ne!(s.snapshot.tree, c.entry.snapshot.tree);
        assert_eq!(
            contents(&source, s.snapshot.tree),
            contents(&target, c.entry.snapshot.tree)
        );
        assert_eq!(c.entry.snapshot.identity, "cluster-a");
        assert_eq!(c.entry.snapshot.label("original"), Some(&*s.id.to_hex()));
    }
    assert_eq!(
        report.copied[1].entry.snapshot.parent,
        Some(report.copied[0].entry.id)
    );
    // Once more: everything is recognised, nothing is stored.
    let again = target.copy_from(&source, &snaps, &()).unwrap();
    assert!(again.copied.is_empty());
    assert_eq!(again.skipped.len(), 2);
    // A fresh handle sees the same (what was stored is indexed).
    let reopened = open(dst, PASSWORD);
    assert_eq!(reopened.snapshots().unwrap().len(), 2);
}

#[test]
fn the_golden_v1_repository_copies_into_v2_with_shared_ids_and_back_into_v1() {
    let dir = tempfile::tempdir().unwrap();
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/repo-v1");
    let source = open(golden.to_str().unwrap(), b"golden repository v1");
    let snaps = source.snapshots().unwrap();
    assert!(!snaps.is_empty());
    let v2 = dir.path().join("v2");
    let v2 = v2.to_str().unwrap();
    Repository::init_sharing_ids(v2, PASSWORD, test_init_options(), options(), &source).unwrap();
    let mut target = open(v2, PASSWORD);
    assert_eq!(
        target.config().chunker().unwrap(),
        source.config().chunker().unwrap()
    );
    let report = target.copy_from(&source, &snaps, &()).unwrap();
    assert!(report.same_ids);
    assert_eq!(report.copied.len(), snaps.len());
    for (s, c) in snaps.iter().zip(&report.copied) {
        // Trees are re-encoded in version 2; data keeps its ids.
        assert_eq!(
            contents(&source, s.snapshot.tree),
            contents(&target, c.entry.snapshot.tree)
        );
    }
    let data_ids = |r: &IndexedRepository| {
        let mut ids: Vec<_> = r
            .index()
            .iter()
            .filter(|(_, l)| l.kind == hokan_core::BlobType::Data)
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        data_ids(&source),
        data_ids(&target),
        "same ids, same data blobs"
    );

    // And into a fresh version-1 repository with keys of its own.
    let v1 = dir.path().join("v1");
    let v1 = v1.to_str().unwrap();
    init(v1, FormatVersion::V1);
    let mut back = open(v1, PASSWORD);
    let copies = target.snapshots().unwrap();
    let report = back.copy_from(&target, &copies, &()).unwrap();
    assert_eq!(report.copied.len(), snaps.len());
    for (s, c) in snaps.iter().zip(&report.copied) {
        assert_eq!(
            contents(&source, s.snapshot.tree),
            contents(&back, c.entry.snapshot.tree)
        );
        // `original` names the first repository's snapshot.
        assert_eq!(c.entry.snapshot.label("original"), Some(&*s.id.to_hex()));
    }
}

#[test]
fn what_a_v1_target_cannot_hold_is_refused_and_nothing_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    let (src, dst) = (src.to_str().unwrap(), dst.to_str().unwrap());
    init(src, FormatVersion::V2);
    init(dst, FormatVersion::V1);
    let mut source = open(src, PASSWORD);
    objects(&mut source, 3, b"x");
    let snaps = source.snapshots().unwrap();
    let mut target = open(dst, PASSWORD);
    let err = target.copy_from(&source, &snaps, &()).unwrap_err();
    assert!(err.to_string().contains("format"), "{err}");
    assert!(target.snapshots().unwrap().is_empty());
}

/// A target store that fails part-way (each fault kind, at several
/// points) ends the copy promptly with the store's error; the snapshots
/// saved before it are whole (check reads every blob), the one that failed
/// is not saved, and the next run completes the copy.
#[test]
fn a_failing_target_store_ends_the_copy_cleanly_and_the_next_run_completes_it() {
    use hokan_repo::faults::{Fault, Faults, FaultyStore};
    use hokan_repo::maintenance::{self, ReadData};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let src = src.to_str().unwrap();
    init(src, FormatVersion::V2);
    let mut source = open(src, PASSWORD);
    objects(&mut source, 30, &generate(Kind::Random, 3 << 20, 8));
    objects(&mut source, 30, &generate(Kind::Random, 2 << 20, 9));
    let snaps = source.snapshots().unwrap();
    let opts = OpenOptions {
        retry: hokan_repo::RetryPolicy {
            attempts: 1,
            first_backoff: Duration::from_millis(1),
        },
        ..options()
    };
    for fault in [Fault::Fail, Fault::NoSpace, Fault::Outage] {
        for after in [0, 3, 6] {
            let faults = Faults::new();
            let store = FaultyStore::new(Arc::new(InMemory::new()), faults.clone())
                .store(&format!("copy-{fault:?}-{after}"));
            Repository::init_store(store.clone(), PASSWORD, test_init_options(), opts.clone())
                .unwrap();
            let reopen = || {
                Repository::open_store(store.clone(), PASSWORD, opts.clone())
                    .unwrap()
                    .load_index()
                    .unwrap()
            };
            let mut target = reopen();
            faults.arm(after, fault);
            let start = Instant::now();
            let err = target.copy_from(&source, &snaps, &()).unwrap_err();
            assert!(start.elapsed() < Duration::from_secs(60));
            assert!(
                err.to_string().contains("injected fault"),
                "{fault:?} after {after}: {err}"
            );
            faults.clear();
            let saved = reopen().snapshots().unwrap();
            assert!(saved.len() < snaps.len(), "{fault:?} after {after}");
            let r = maintenance::check(&reopen(), ReadData::All, &()).unwrap();
            assert!(r.is_ok(), "{fault:?} after {after}: {:#?}", r.problems);
            let mut target = reopen();
            let report = target.copy_from(&source, &snaps, &()).unwrap();
            assert_eq!(report.skipped.len(), saved.len());
            let copies = target.snapshots().unwrap();
            assert_eq!(copies.len(), snaps.len());
            for (s, c) in snaps.iter().zip(&copies) {
                assert_eq!(
                    contents(&source, s.snapshot.tree),
                    contents(&target, c.snapshot.tree)
                );
            }
        }
    }
}
