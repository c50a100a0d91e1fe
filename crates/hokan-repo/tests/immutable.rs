//! Immutable mode against stores that enforce it: a write-once policy
//! that refuses every overwrite and delete ([`WormStore`]), and a store
//! that deletes whatever it is asked to, where only the configured
//! retention holds prune back.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use common::{backup, check_clean, memory_store, open, options, prune_now, restore_equals};
use hokan_core::sample::{Kind, generate};
use hokan_repo::config::Immutable;
use hokan_repo::conformance::{dump_store, test_init_options};
use hokan_repo::faults::WormStore;
use hokan_repo::maintenance::{self, PruneOptions};
use hokan_repo::retention::{Count, GroupBy, Policy};
use hokan_repo::{Error, InitOptions, Removal, Repository};
use object_store::memory::InMemory;

fn immutable(retention_secs: u64) -> InitOptions {
    InitOptions {
        immutable: Some(Immutable { retention_secs }),
        ..test_init_options()
    }
}

/// Files of distinct content; `round` changes a third of them.
fn tree(dir: &Path, round: u64) {
    for i in 0..24u64 {
        let sub = dir.join(format!("d{}", i % 4));
        std::fs::create_dir_all(&sub).unwrap();
        let seed = if i % 3 == 0 { 1000 * round + i } else { i };
        let kind = if i % 2 == 0 { Kind::Random } else { Kind::Text };
        std::fs::write(sub.join(format!("f{i}")), generate(kind, 50_000, seed)).unwrap();
    }
}

fn keep_last(n: u32) -> Policy {
    Policy {
        last: Some(Count::Up(n)),
        ..Default::default()
    }
}

/// The whole life of a repository on a store that never lets anything be
/// overwritten or deleted: every write is a conditional create, nothing
/// stored changes, forget and prune succeed and say what they kept.
#[test]
fn a_write_once_store_takes_the_whole_flow() {
    let worm = WormStore::new(Arc::new(InMemory::new()));
    let store = worm.store("worm");
    // A retention that has passed by the time prune runs: prune asks, the
    // store refuses, prune reports the refusals.
    Repository::init_store(store.clone(), b"pw", immutable(1), options()).unwrap();
    let src = tempfile::tempdir().unwrap();
    let mut entries = Vec::new();
    for round in 0..3 {
        tree(src.path(), round);
        entries.push(backup(&store, src.path()));
    }
    let before = dump_store(&store);
    std::thread::sleep(Duration::from_millis(1100));

    let groups = open(&store)
        .forget(
            &keep_last(1),
            GroupBy::default(),
            &Default::default(),
            false,
        )
        .unwrap();
    let forgotten: Vec<_> = groups
        .iter()
        .flat_map(|g| &g.decisions)
        .filter(|d| !d.keep())
        .collect();
    assert_eq!(forgotten.len(), 2);
    assert!(
        forgotten.iter().all(|d| d.kept_by_lock == Some(None)),
        "a refused delete is reported as kept: {forgotten:#?}"
    );
    // Tagging writes a new snapshot beside the old one.
    let repo = open(&store);
    let latest = repo.snapshots().unwrap().pop().unwrap();
    let (_, changed, old) = repo
        .retag_snapshot(
            &latest,
            &hokan_repo::TagChange {
                add: vec!["kept".into()],
                ..Default::default()
            },
        )
        .unwrap();
    assert!(changed);
    assert_eq!(old, Removal::Kept { until: None });

    let report = prune_now(open(&store));
    // Writer locks of the three backups and the prune lock of ... none yet:
    // released locks are asked to go, and refused.
    assert!(report.kept.refused > 0, "{report:#?}");
    assert_eq!(report.deleted, 0);
    // A second prune sees the first one's released lock as nothing.
    maintenance::prune(open(&store), &PruneOptions::default()).unwrap();

    let log = worm.log();
    assert_eq!(
        log.unconditional_puts.load(SeqCst),
        0,
        "every put is a create"
    );
    assert_eq!(log.copies.load(SeqCst), 0);
    assert!(
        log.deletes.load(SeqCst) > 0,
        "deletes were asked for and refused"
    );
    let after = dump_store(&store);
    for (path, bytes) in &before {
        assert_eq!(after.get(path), Some(bytes), "{path} changed or vanished");
    }
    check_clean(&store);
    tree(src.path(), 2);
    restore_equals(&store, &entries[2].snapshot, src.path());

    // Direct deletes are refused without asking the store.
    let asked = log.deletes.load(SeqCst);
    let e = open(&store).store().delete("config").unwrap_err();
    assert!(matches!(e, Error::Immutable { .. }), "{e}");
    assert!(e.to_string().contains("prune"), "{e}");
    assert_eq!(log.deletes.load(SeqCst), asked);
}

/// A retention that has not passed: nothing is even asked for, and the
/// summary says when the first object becomes deletable.
#[test]
fn nothing_is_deleted_before_the_retention_ends() {
    let worm = WormStore::new(Arc::new(InMemory::new()));
    let store = worm.store("worm-long");
    Repository::init_store(store.clone(), b"pw", immutable(86400), options()).unwrap();
    let src = tempfile::tempdir().unwrap();
    for round in 0..2 {
        tree(src.path(), round);
        backup(&store, src.path());
    }
    let groups = open(&store)
        .forget(
            &keep_last(1),
            GroupBy::default(),
            &Default::default(),
            false,
        )
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let d = groups[0].decisions.iter().find(|d| !d.keep()).unwrap();
    let until = d.kept_by_lock.flatten().expect("kept until a date");
    assert!((now + 86000..=now + 86401).contains(&until), "{until}");
    let r = maintenance::prune(open(&store), &PruneOptions::default()).unwrap();
    assert!(r.kept.objects > 0 && r.kept.refused == 0, "{r:#?}");
    assert!(r.kept.earliest.unwrap() > now + 86000);
    assert_eq!(worm.log().deletes.load(SeqCst), 0, "no delete was sent");
    assert_eq!(worm.log().unconditional_puts.load(SeqCst), 0);
    check_clean(&store);
}

/// On a store that deletes when asked, immutable mode waits for the
/// retention, then prune finishes the job in later runs; the repository is
/// consistent at every step, also while superseded index files the lock
/// keeps are still there.
#[test]
fn prune_finishes_the_job_once_the_retention_has_passed() {
    let store = memory_store("imm-expiring");
    Repository::init_store(store.clone(), b"pw", immutable(2), options()).unwrap();
    let src = tempfile::tempdir().unwrap();
    let forget = || {
        open(&store)
            .forget(
                &keep_last(1),
                GroupBy::default(),
                &Default::default(),
                false,
            )
            .unwrap()
    };
    tree(src.path(), 0);
    backup(&store, src.path());
    tree(src.path(), 1);
    backup(&store, src.path());
    // Too early: the old snapshot stays, and says until when.
    assert!(
        forget()[0]
            .decisions
            .iter()
            .any(|d| d.kept_by_lock.is_some())
    );
    assert_eq!(open(&store).snapshots().unwrap().len(), 2);
    std::thread::sleep(Duration::from_millis(2100));
    tree(src.path(), 2);
    let last = backup(&store, src.path());
    assert!(
        forget()[0]
            .decisions
            .iter()
            .all(|d| d.kept_by_lock.is_none())
    );
    assert_eq!(open(&store).snapshots().unwrap().len(), 1);

    // The newest backup's index files are too young to delete: they stay,
    // superseded, beside the new ones.
    let first = prune_now(open(&store));
    assert!(first.marked > 0, "{first:#?}");
    assert_eq!(first.deleted, 0, "never newly unused and deleted at once");
    assert!(
        first.kept.objects > 0 && first.kept.earliest.is_some(),
        "{first:#?}"
    );
    check_clean(&store);
    restore_equals(&store, &last.snapshot, src.path());
    std::thread::sleep(Duration::from_millis(2100));
    let second = prune_now(open(&store));
    assert!(second.deleted > 0, "{second:#?}");
    assert!(second.index_files_removed > 0, "{second:#?}");
    assert!(second.locks_removed > 0, "{second:#?}");
    check_clean(&store);
    std::thread::sleep(Duration::from_millis(2100));
    // What the second prune could not yet delete (the marker it wrote, its
    // own released lock) goes now.
    let third = prune_now(open(&store));
    assert!(third.kept.objects <= 1, "{third:#?}");
    check_clean(&store);
    restore_equals(&store, &last.snapshot, src.path());
    eprintln!("prunes:\n{first:?}\n{second:?}\n{third:?}");
    let index_files = store.list("index").unwrap().len();
    assert!(index_files <= 3, "{index_files} index files left");
}

/// A key file the lock keeps still opens the repository: removing it is
/// an error that says so and when to retry.
#[test]
fn a_kept_key_file_is_an_error_that_says_so() {
    let worm = WormStore::new(Arc::new(InMemory::new()));
    let store = worm.store("worm-keys");
    Repository::init_store(store.clone(), b"pw", immutable(86400), options()).unwrap();
    let repo = open(&store);
    let second = repo
        .add_key(b"other", test_init_options().kdf, "second")
        .unwrap();
    let e = repo.remove_key(&second.to_hex()).unwrap_err();
    match &e {
        Error::Immutable { path, .. } => {
            assert_eq!(
                path,
                &hokan_repo::layout::object(hokan_repo::object::Kind::Key, &second)
            )
        }
        other => panic!("expected Immutable, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("still opens") && msg.contains(&format!("remove key {}", second.short())),
        "{msg}"
    );
    assert_eq!(worm.log().deletes.load(SeqCst), 0);
}

/// A build that does not know immutable mode must refuse the repository:
/// its config object has a version such builds reject as newer, while
/// repositories without the mode keep the config version they had.
#[test]
fn the_mode_is_a_config_version_older_builds_refuse() {
    let normal = memory_store("normal");
    Repository::init_store(normal.clone(), b"pw", test_init_options(), options()).unwrap();
    assert_eq!(&normal.get("config").unwrap()[5..7], &[2, 0]);
    let worm = WormStore::new(Arc::new(InMemory::new()));
    let store = worm.store("worm-config");
    Repository::init_store(store.clone(), b"pw", immutable(3600), options()).unwrap();
    assert_eq!(&store.get("config").unwrap()[5..7], &[3, 0]);
    let repo = open(&store);
    assert_eq!(
        repo.config().immutable,
        Some(Immutable {
            retention_secs: 3600
        })
    );
    assert_eq!(repo.store().immutable(), Some(3600));
    // A config that claims a version beyond this build's: refused as newer.
    let mut newer = store.get("config").unwrap().to_vec();
    newer[5] = 4;
    let e = hokan_repo::object::check_header(&newer, hokan_repo::object::Kind::Config, "config")
        .unwrap_err();
    assert!(matches!(e, Error::NewerVersion { .. }), "{e}");
}
