//! The etcd snapshot as this crate's backup stores it (docs/FORMAT.md §13,
//! "The snapshot's tree"), pinned by a committed repository,
//! `tests/golden/repo-etcd`, holding the backup of a committed snapshot
//! file, `tests/golden/etcd-snapshot.db`: Kubernetes objects put into a
//! real etcd and saved with `etcdctl snapshot save`.
//!
//! Both ways are checked: the committed snapshot reads back (its facts, its
//! catalog of objects, the file restored byte for byte) and lists as
//! `tests/golden/etcd-snapshot-tree.txt`; and today's backup of the same
//! file into a copy of the repository writes exactly the committed trees
//! (the same root tree id under the same key). `HOKAN_BLESS=1` writes what
//! is missing (with a real etcd and etcdctl), never what exists.

mod common;

use std::path::{Path, PathBuf};

use hokan_core::fs::NoProgress;
use hokan_etcd::testing::EtcdProcess;
use hokan_etcd::{BackupOptions, EtcdSnapshot, Objects, import_file, restore_file};
use hokan_repo::conformance::{test_init_options, tree_listing};
use hokan_repo::{CacheMode, OpenOptions, Repository, SourceKind};

const PASSWORD: &[u8] = b"golden etcd repository";

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn options() -> OpenOptions {
    OpenOptions {
        cache: CacheMode::Off,
        ..Default::default()
    }
}

/// The objects put into etcd: Kubernetes' own fixtures of a ConfigMap, a
/// Secret and a Deployment, as the API server stores them.
const FIXTURES: [(&str, &str); 3] = [
    ("core.v1.ConfigMap", "/registry/configmaps/shop/web"),
    ("core.v1.Secret", "/registry/secrets/shop/token"),
    ("apps.v1.Deployment", "/registry/deployments/shop/web"),
];

/// Saves the snapshot file from a real etcd (blessing only).
fn make_snapshot(path: &Path) {
    let etcd = EtcdProcess::start().expect("blessing the etcd golden needs etcd and etcdctl");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/k8s/api-testdata");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let pairs = FIXTURES.iter().map(|(fixture, key)| {
        let value = std::fs::read(dir.join(format!("{fixture}.pb"))).unwrap();
        (key.to_string(), value)
    });
    common::put_all(&etcd, pairs);
    common::save(&etcd, path);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn check_text(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("HOKAN_BLESS").is_some() && !path.exists() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with HOKAN_BLESS=1)", path.display()));
    assert!(
        expected == actual,
        "{name} changed: what the etcd backup writes is no longer what it wrote; \
         see docs/FORMAT.md §13\n--- committed\n{expected}\n--- now\n{actual}"
    );
}

#[test]
fn the_etcd_snapshot_tree_is_pinned() {
    let db = golden("etcd-snapshot.db");
    let dir = golden("repo-etcd");
    if std::env::var_os("HOKAN_BLESS").is_some() {
        if !db.exists() {
            make_snapshot(&db);
        }
        if !dir.exists() {
            let location = dir.to_str().unwrap();
            Repository::init(location, PASSWORD, test_init_options(), options()).unwrap();
            let mut repo = Repository::open(location, PASSWORD, options())
                .unwrap()
                .load_index()
                .unwrap();
            import_file(&mut repo, &db, &BackupOptions::default(), &NoProgress).unwrap();
        }
    }

    // The committed snapshot, read back.
    let repo = Repository::open(dir.to_str().unwrap(), PASSWORD, options())
        .unwrap()
        .load_index()
        .unwrap();
    let stored = EtcdSnapshot::find(&repo, "latest").unwrap();
    let s = &stored.entry.snapshot;
    assert_eq!(s.source, SourceKind::ETCD);
    assert_eq!(
        Some(s.identity.as_str()),
        stored.facts.cluster_id.as_deref()
    );
    check_text("etcd-snapshot-tree.txt", &tree_listing(&repo, &s.tree));
    let status = stored.facts.status.expect("the status was stored");
    assert_eq!(status, hokan_etcd::status_file(&db).unwrap());
    let work = tempfile::tempdir().unwrap();
    let restored = work.path().join("restored.db");
    restore_file(&repo, &stored, &restored, &NoProgress).unwrap();
    assert!(std::fs::read(&restored).unwrap() == std::fs::read(&db).unwrap());
    let objects = Objects::open(&repo, &stored).unwrap();
    let keys: Vec<String> = objects
        .list(&Default::default())
        .into_iter()
        .map(|o| o.key)
        .collect();
    for (_, key) in FIXTURES {
        assert!(keys.iter().any(|k| k == key), "{key} in {keys:?}");
    }

    // Today's backup writes the same trees: the same root under the same key.
    let copy = work.path().join("repo");
    copy_dir(&dir, &copy);
    let mut again = Repository::open(copy.to_str().unwrap(), PASSWORD, options())
        .unwrap()
        .load_index()
        .unwrap();
    let now = import_file(&mut again, &db, &BackupOptions::default(), &NoProgress).unwrap();
    assert_eq!(
        now.entry.snapshot.tree, s.tree,
        "the etcd backup writes another tree"
    );
    assert_eq!(now.entry.snapshot.summary.blobs_added, 0);
}
