//! `IndexedRepository::copy_from`: snapshots moved between repositories of
//! either format, with shared or separate id keys; contents compared by
//! walking the trees of both sides.

use std::path::PathBuf;

use hokan_core::sample::{Kind, generate};
use hokan_core::{Attr, AttrValue, FormatVersion, Node, TreeId};
use hokan_repo::conformance::test_init_options;
use hokan_repo::copy::CopyBounds;
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

/// A snapshot of nested directories: `d0`..`d3`, each with `e0`..`e2` of
/// five objects, the same `e1` tree twice under `d0`, and a copy of `d1` at
/// the top (subtrees met twice in one walk). `round` changes a few bodies.
fn nested(repo: &mut IndexedRepository, round: usize) {
    let spec = SnapshotSpec::new(SourceKind::new("records").unwrap());
    repo.backup(spec, |s| -> hokan_repo::Result<_> {
        let mut top = Vec::new();
        let mut d1 = None;
        for d in 0..4 {
            let mut dirs = Vec::new();
            for e in 0..3 {
                let mut files = Vec::new();
                for f in 0..5 {
                    // Mostly shared between rounds; one object in each
                    // directory of d2 changes every round.
                    let seed = if d == 2 && f == 0 {
                        round * 100 + e
                    } else {
                        d * 15 + e * 5 + f
                    };
                    let body = generate(Kind::Text, 3_000 + seed * 7, seed as u64);
                    files.push(Node::object(format!("f{f}"), s.store_bytes(&body)?, vec![]));
                }
                dirs.push(Node::dir(format!("e{e}"), s.store_tree(files)?));
            }
            if d == 0 {
                let again = dirs[1].subtree.unwrap();
                dirs.push(Node::dir("e1-again", again));
            }
            let tree = s.store_tree(dirs)?;
            if d == 1 {
                d1 = Some(tree);
            }
            top.push(Node::dir(format!("d{d}"), tree));
        }
        top.push(Node::dir("d1-copy", d1.unwrap()));
        Ok((Staged::new(s.store_tree(top)?), ()))
    })
    .unwrap();
}

#[test]
fn the_tightest_bounds_copy_exactly_what_the_default_ones_do() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let src = src.to_str().unwrap();
    init(src, FormatVersion::V2);
    let mut source = open(src, PASSWORD);
    for round in 0..3 {
        nested(&mut source, round);
    }
    let snaps = source.snapshots().unwrap();
    // Every blob a window of its own, every finished tree a flush, a memo
    // that forgets at once.
    let tight = CopyBounds {
        window_blobs: 1,
        window_bytes: 1,
        tree_bytes: 1,
        memo_entries: 1,
    };
    let mid = CopyBounds {
        window_blobs: 7,
        window_bytes: 20_000,
        tree_bytes: 2_000,
        memo_entries: 16,
    };
    for shared in [false, true] {
        let mut reports = Vec::new();
        for (i, bounds) in [CopyBounds::default(), tight.clone(), mid.clone()]
            .iter()
            .enumerate()
        {
            let dst = dir.path().join(format!("dst-{shared}-{i}"));
            let dst = dst.to_str().unwrap();
            if shared {
                Repository::init_sharing_ids(
                    dst,
                    PASSWORD,
                    test_init_options(),
                    options(),
                    &source,
                )
                .unwrap();
            } else {
                init(dst, FormatVersion::V2);
            }
            let mut target = open(dst, PASSWORD);
            let report = target.copy_within(&source, &snaps, &(), bounds).unwrap();
            assert_eq!(report.same_ids, shared);
            assert_eq!(report.copied.len(), 3);
            for (s, c) in snaps.iter().zip(&report.copied) {
                assert_eq!(
                    contents(&source, s.snapshot.tree),
                    contents(&target, c.entry.snapshot.tree),
                    "bounds {bounds:?}, shared ids {shared}"
                );
            }
            let checked = hokan_repo::maintenance::check(
                &Repository::open(dst, PASSWORD, options()).unwrap(),
                hokan_repo::maintenance::ReadData::All,
                &(),
            )
            .unwrap();
            assert!(checked.problems.is_empty(), "{:?}", checked.problems);
            let trees: Vec<_> = report
                .copied
                .iter()
                .map(|c| c.entry.snapshot.tree)
                .collect();
            reports.push((report.blobs_added, report.packs_added > 0, trees));
        }
        // What a forgetful memo reads again, the target's writer finds
        // already stored: the same blobs and (ids being deterministic in
        // one repository) nothing more.
        assert_eq!(reports[0].0, reports[1].0, "shared ids {shared}");
        assert_eq!(reports[0].0, reports[2].0, "shared ids {shared}");
        if shared {
            assert_eq!(reports[0].2, reports[1].2);
        }
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
