//! The engine on its worst day: regression tests for the failures of the
//! issue "Nothing lost, nothing hung" that show at the library level. Each
//! test failed (panicked, hung, lost data or misled) on the code before it.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{backup, check_clean, open, options, restore_equals};
use hokan_core::fs::NoProgress;
use hokan_core::sample::{Kind, generate};
use hokan_repo::conformance::{dump_store, test_init_options};
use hokan_repo::faults::{Fault, Faults, FaultyStore};
use hokan_repo::maintenance::{self, PruneOptions, ReadData};
use hokan_repo::{Error, FsBackup, Repository, SnapshotSpec, Store};
use object_store::memory::InMemory;

/// A repository in memory behind a faulty store, and the switches.
fn faulty_repo(name: &str) -> (Store, Arc<Faults>) {
    let faults = Faults::new();
    let store = FaultyStore::new(Arc::new(InMemory::new()), faults.clone()).store(name);
    Repository::init_store(store.clone(), b"pw", test_init_options(), options()).unwrap();
    (store, faults)
}

/// A tree of `files` files of `size` bytes, each different.
fn tree(dir: &Path, files: usize, size: usize) {
    for i in 0..files {
        let sub = dir.join(format!("d{}", i % 7));
        std::fs::create_dir_all(&sub).unwrap();
        let kind = if i % 2 == 0 { Kind::Random } else { Kind::Text };
        std::fs::write(
            sub.join(format!("f{i}")),
            generate(kind, size, 1000 + i as u64),
        )
        .unwrap();
    }
}

/// Item 1: a store that fills up (or fails) while many files go through
/// the writer ends the backup promptly with one clear error: no panic, no
/// hang, nothing committed; the repository stays check-clean and the next
/// run works. Every fault kind, at several points.
#[test]
fn a_failing_store_ends_a_backup_cleanly() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), 120, 60_000);
    for (i, fault) in [Fault::NoSpace, Fault::Fail, Fault::Outage, Fault::Tear]
        .into_iter()
        .enumerate()
    {
        for after in [0, 2, 5] {
            let (store, faults) = faulty_repo(&format!("full-{i}-{after}"));
            let mut repo = open(&store).load_index().unwrap();
            faults.arm(after, fault);
            let start = Instant::now();
            let r = repo.backup_paths(
                &[src.path().to_path_buf()],
                &FsBackup::default(),
                &NoProgress,
            );
            let e = r
                .err()
                .unwrap_or_else(|| panic!("{fault:?} after {after}: saved"));
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{fault:?}: took {:?}",
                start.elapsed()
            );
            let msg = e.to_string();
            assert!(msg.contains("injected fault"), "{fault:?}: {msg}");
            if fault == Fault::NoSpace {
                assert!(matches!(e, Error::Full { .. }), "{e:?}");
                assert!(msg.contains("is full"), "{msg}");
            }
            faults.clear();
            assert!(
                open(&store).snapshots().unwrap().is_empty(),
                "nothing committed"
            );
            if fault == Fault::Tear {
                // A torn object (a store without atomic writes) is found
                // and repaired, never trusted.
                let r = maintenance::check(&open(&store), ReadData::All, &()).unwrap();
                if !r.is_ok() {
                    maintenance::repair_index(&open(&store)).unwrap();
                }
            }
            let mut repo = open(&store).load_index().unwrap();
            let saved = repo
                .backup_paths(
                    &[src.path().to_path_buf()],
                    &FsBackup::default(),
                    &NoProgress,
                )
                .unwrap();
            restore_equals(&store, &saved.entry.snapshot, src.path());
            if fault != Fault::Tear {
                check_clean(&store);
            }
        }
    }
}

/// Item 2: damaged data is healed. Check records the damage and names the
/// file; repair salvages the rest of the pack; the next backup stores the
/// damaged data afresh, which heals the old snapshot too.
#[test]
fn damaged_data_is_healed() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), 30, 40_000);
    let (store, _) = faulty_repo("heal");
    let first = backup(&store, src.path());
    // One flipped byte in a data pack.
    let objects = dump_store(&store);
    let repo = open(&store).load_index().unwrap();
    let (path, bytes) = objects
        .iter()
        .find(|(k, v)| {
            k.starts_with("data/") && {
                let id = hokan_core::PackId(
                    hokan_core::Id::from_hex(k.rsplit('/').next().unwrap()).unwrap(),
                );
                repo.index()
                    .iter()
                    .any(|(_, l)| l.pack == id && l.kind == hokan_core::BlobType::Data)
                    && v.len() > 1000
            }
        })
        .unwrap();
    let mut b = bytes.to_vec();
    b[200] ^= 0x40;
    store.put(path, b.into()).unwrap();

    let r = maintenance::check(&open(&store), ReadData::All, &()).unwrap();
    assert!(!r.is_ok());
    assert!(!r.affected.is_empty(), "the damaged files are named");
    assert!(r.affected.iter().all(|a| a.snapshot == first.id));
    let damaged_files: Vec<_> = r.affected.iter().map(|a| a.path.clone()).collect();
    // A backup now does not dedup against the damaged blobs.
    let mut repo = open(&store).load_index().unwrap();
    let healed = repo
        .backup_paths(
            &[src.path().to_path_buf()],
            &FsBackup {
                parent: hokan_repo::ParentChoice::None,
                ..Default::default()
            },
            &NoProgress,
        )
        .unwrap();
    assert!(
        healed.entry.snapshot.summary.bytes_added > 0,
        "the damaged data was stored again"
    );
    restore_equals(&store, &healed.entry.snapshot, src.path());
    // The repair salvages what else the pack held and drops the damage.
    let rp = maintenance::repair_packs(open(&store), None, &()).unwrap();
    assert_eq!(rp.damaged.len(), 1, "{rp:?}");
    restore_equals(&store, &first.snapshot, src.path());
    let after = maintenance::check(&open(&store), ReadData::All, &()).unwrap();
    assert!(
        after.affected.is_empty(),
        "no file of any snapshot is affected any more: {} file(s) still are (was {})",
        after.affected.len(),
        damaged_files.len()
    );
    maintenance::prune(
        open(&store),
        &PruneOptions {
            instant_delete: true,
            ..Default::default()
        },
    )
    .unwrap();
    check_clean(&store);
}

/// Item 2, trees: a damaged tree blob is not reused by the next backup.
#[test]
fn a_damaged_tree_is_stored_again() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), 10, 1000);
    let (store, _) = faulty_repo("tree");
    let first = backup(&store, src.path());
    let repo = open(&store).load_index().unwrap();
    let loc = repo.index().get(&first.snapshot.tree.0).unwrap();
    let path = hokan_repo::layout::pack(&loc.pack);
    let mut b = store.get(&path).unwrap().to_vec();
    b[loc.offset as usize + 30] ^= 1;
    store.put(&path, b.into()).unwrap();
    let mut repo = open(&store).load_index().unwrap();
    let second = repo
        .backup_paths(
            &[src.path().to_path_buf()],
            &FsBackup::default(),
            &NoProgress,
        )
        .unwrap();
    assert!(
        !second.parent_unreadable.is_empty() && second.warnings.is_empty(),
        "the damaged parent tree is reported, as no unreadable file"
    );
    restore_equals(&store, &second.entry.snapshot, src.path());
    // What the new snapshot shares with the old one (unchanged
    // directories: same listing, same tree id) is healed for both; the
    // old snapshot's own ancestors, where their access times changed, stay
    // damaged, and check names that snapshot alone.
    let r = maintenance::check(&open(&store), ReadData::All, &()).unwrap();
    assert!(
        r.affected.iter().all(|a| a.snapshot == first.id),
        "{:?}",
        r.affected
    );
}

/// Item 4: check --read-data reads marked packs that a live snapshot
/// still uses.
#[test]
fn check_reads_marked_packs_that_snapshots_use() {
    let (store, _) = faulty_repo("marked");
    let mut repo = open(&store).load_index().unwrap();
    let a = repo
        .backup_stream(
            &generate(Kind::Random, 300_000, 1)[..],
            "a",
            SnapshotSpec::default(),
        )
        .unwrap();
    // A backup that loaded the index before a prune marked `a`'s packs...
    let mut late = open(&store).load_index().unwrap();
    repo.delete_snapshot(&a.id).unwrap();
    maintenance::prune(open(&store), &PruneOptions::default()).unwrap();
    assert!(!open(&store).marked_packs().unwrap().is_empty());
    // ... and reused them.
    let b = late
        .backup_stream(
            &generate(Kind::Random, 300_000, 1)[..],
            "a",
            SnapshotSpec::default(),
        )
        .unwrap();
    let marked = open(&store).marked_packs().unwrap();
    let data = marked
        .iter()
        .find(|m| m.pack.kind == hokan_core::BlobType::Data)
        .unwrap();
    let pack = hokan_repo::layout::pack(&data.pack.id);
    let mut bytes = store.get(&pack).unwrap().to_vec();
    bytes[100] ^= 1;
    store.put(&pack, bytes.into()).unwrap();
    let r = maintenance::check(&open(&store), ReadData::All, &()).unwrap();
    assert!(!r.is_ok(), "the damage in the marked pack is found");
    assert!(
        r.affected.iter().any(|x| x.snapshot == b.id),
        "{:?}",
        r.affected
    );
}

/// Item 6: an instant prune beside a running backup is refused; and a
/// backup whose packs a prune removed anyway (its lock taken away) does not
/// save a snapshot that cannot be restored.
#[test]
fn a_prune_cannot_silently_destroy_a_running_backup() {
    let (store, _) = faulty_repo("beside");
    let mut repo = open(&store).load_index().unwrap();
    let old = repo
        .backup_stream(
            &generate(Kind::Random, 400_000, 3)[..],
            "a",
            SnapshotSpec::default(),
        )
        .unwrap();
    open(&store).delete_snapshot(&old.id).unwrap();
    let data = generate(Kind::Random, 400_000, 3);
    let (started, go) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    let outcome = std::thread::scope(|s| {
        let backup = s.spawn(|| {
            let mut repo = open(&store).load_index().unwrap();
            repo.backup(
                SnapshotSpec::default(),
                |session| -> hokan_repo::Result<_> {
                    started.wait();
                    go.wait();
                    let content = session.store_bytes(&data)?;
                    let node = hokan_core::Node::object("a", content, Vec::new());
                    Ok((hokan_repo::Staged::new(session.store_tree(vec![node])?), ()))
                },
            )
        });
        started.wait();
        let instant = PruneOptions {
            instant_delete: true,
            ..Default::default()
        };
        let refused = maintenance::prune(open(&store), &instant).err().unwrap();
        assert!(matches!(refused, Error::Locked(_)), "{refused}");
        assert!(refused.to_string().contains("backup"), "{refused}");
        // Someone removes the running backup's lock and deletes anyway.
        open(&store).remove_locks(false).unwrap();
        maintenance::prune(open(&store), &instant).unwrap();
        go.wait();
        backup.join().unwrap()
    });
    match outcome {
        Err(Error::RemovedDuringBackup { .. }) => {
            assert!(open(&store).snapshots().unwrap().is_empty());
        }
        Ok(saved) => {
            // It stored everything itself (nothing to dedup against).
            let repo = open(&store).load_index().unwrap();
            let mut out = Vec::new();
            repo.dump(&saved.entry.snapshot, "a", &mut out).unwrap();
            assert!(out == data);
        }
        Err(e) => panic!("{e}"),
    }
    check_clean(&store);
}

/// Item 7: a location holding a repository's data but no config refuses
/// init (which would make a second master key) and names the problem; the
/// config can be written again from a key file.
#[test]
fn a_lost_config_is_never_replaced_by_a_new_repository() {
    let (store, _) = faulty_repo("config");
    let mut repo = open(&store).load_index().unwrap();
    let data = generate(Kind::Text, 200_000, 9);
    let saved = repo
        .backup_stream(&data[..], "x", SnapshotSpec::default())
        .unwrap();
    store.delete("config").unwrap();
    let before = dump_store(&store);
    let e = Repository::open_store(store.clone(), b"pw", options()).unwrap_err();
    assert!(matches!(e, Error::ConfigLost { .. }), "{e}");
    let e =
        Repository::init_store(store.clone(), b"pw", test_init_options(), options()).unwrap_err();
    assert!(matches!(e, Error::ConfigLost { .. }), "{e}");
    assert!(e.to_string().contains("keys/"), "{e}");
    assert_eq!(dump_store(&store), before, "nothing changed");
    // Rebuilt from a key file (a local directory here: the library's
    // recreate_config takes a location).
    let dir = tempfile::tempdir().unwrap();
    for (k, v) in &before {
        let p = dir.path().join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, v).unwrap();
    }
    let loc = dir.path().to_str().unwrap();
    assert!(Repository::recreate_config(loc, b"wrong", test_init_options(), options()).is_err());
    Repository::recreate_config(loc, b"pw", test_init_options(), options()).unwrap();
    let repo = Repository::open(loc, b"pw", options())
        .unwrap()
        .load_index()
        .unwrap();
    let mut out = Vec::new();
    repo.dump(
        &repo
            .find_snapshot(&saved.id.to_hex(), &Default::default())
            .unwrap()
            .snapshot,
        "",
        &mut out,
    )
    .unwrap();
    assert!(out == data);
}

/// Items 8 and 9: the local store writes through temporary files that are
/// flushed before they get their names; what a dead writer leaves is
/// reported by check and removed by prune.
#[test]
fn interrupted_local_writes_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("repo");
    let loc = loc.to_str().unwrap();
    Repository::init(loc, b"pw", test_init_options(), options()).unwrap();
    let mut repo = Repository::open(loc, b"pw", options())
        .unwrap()
        .load_index()
        .unwrap();
    repo.backup_stream(
        &generate(Kind::Text, 300_000, 2)[..],
        "x",
        SnapshotSpec::default(),
    )
    .unwrap();
    // What a writer killed in the middle leaves (ours, and an earlier
    // release's `name#N`).
    let data = dir.path().join("repo/data/ab");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join(".tmp-abcdef-0011223344556677"),
        vec![7u8; 100_000],
    )
    .unwrap();
    std::fs::write(data.join("ab00#1"), vec![7u8; 50_000]).unwrap();
    let r = maintenance::check(&open_local(loc), ReadData::All, &()).unwrap();
    assert!(r.is_ok(), "{:?}", r.problems);
    assert!(
        r.notes.iter().any(|n| n.contains("2 temporary file(s)")),
        "{:?}",
        r.notes
    );
    // Young ones stay (a writer may be working on them) ...
    let p = maintenance::prune(open_local(loc), &PruneOptions::default()).unwrap();
    assert_eq!(p.temporary_deleted, 0);
    // ... old ones go.
    let old = std::time::SystemTime::now() - Duration::from_secs(7200);
    for f in std::fs::read_dir(&data).unwrap() {
        std::fs::File::options()
            .write(true)
            .open(f.unwrap().path())
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let p = maintenance::prune(open_local(loc), &PruneOptions::default()).unwrap();
    assert_eq!(p.temporary_deleted, 2);
    let r = maintenance::check(&open_local(loc), ReadData::All, &()).unwrap();
    assert!(
        r.is_ok() && !r.notes.iter().any(|n| n.contains("temporary")),
        "{:?}",
        r.notes
    );
}

fn open_local(loc: &str) -> Repository {
    Repository::open(loc, b"pw", options()).unwrap()
}

/// Item 3: one damaged snapshot file blocks nothing but prune, which says
/// why and what to do; forgetting it by id works.
#[test]
fn one_damaged_snapshot_blocks_nothing_else() {
    let (store, _) = faulty_repo("snap");
    let mut repo = open(&store).load_index().unwrap();
    let a = repo
        .backup_stream(&b"first"[..], "a", SnapshotSpec::default())
        .unwrap();
    let b = repo
        .backup_stream(&b"second"[..], "b", SnapshotSpec::default())
        .unwrap();
    let path = format!("snapshots/{}", a.id.to_hex());
    store.put(&path, bytes::Bytes::new()).unwrap();
    let list = open(&store).snapshot_list().unwrap();
    assert_eq!(list.entries.len(), 1);
    assert_eq!(list.unreadable.len(), 1);
    let mut repo = open(&store).load_index().unwrap();
    repo.backup_stream(&b"third"[..], "c", SnapshotSpec::default())
        .unwrap();
    let mut out = Vec::new();
    repo.dump(&b.snapshot, "", &mut out).unwrap();
    assert_eq!(out, b"second");
    let e = maintenance::prune(open(&store), &PruneOptions::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains(&a.id.short()), "{e}");
    assert!(e.to_string().contains("nothing was deleted"), "{e}");
    let id = open(&store).find_snapshot_id(&a.id.short()).unwrap();
    open(&store).delete_snapshot(&id).unwrap();
    maintenance::prune(open(&store), &PruneOptions::default()).unwrap();
}
