//! forget, prune, check and repair: after forget and prune every kept
//! snapshot restores and the repository is smaller; a backup that ran
//! during a prune stays restorable; a prune interrupted at any step leaves
//! a repository that check accepts and the next prune finishes; a deleted
//! index is rebuilt from the packs.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::options;
use futures::StreamExt;
use hokan_repo::faults::{Fault, Faults, FaultyStore};
use object_store::memory::InMemory;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

use hokan_core::sample::{Kind, generate};
use hokan_repo::conformance::{dump_store, test_init_options, test_open_options};
use hokan_repo::maintenance::{self, PruneOptions, ReadData};
use hokan_repo::retention::{Count, GroupBy, Policy};
use hokan_repo::{Error, Repository, SnapshotEntry, SnapshotFilter, SnapshotSpec, Store};

/// A store over `inner` whose writes and deletes fail once `countdown`
/// of them went through, like a process killed or a disk filling there.
fn memory_store(inner: Arc<InMemory>, countdown: i64) -> Store {
    let faults = Faults::new();
    faults.arm(countdown, Fault::Fail);
    FaultyStore::new(inner, faults).store("failing")
}

/// A copy of every object of an in-memory store.
fn copy_store(from: &Arc<InMemory>) -> Arc<InMemory> {
    let to = Arc::new(InMemory::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let all: Vec<ObjectMeta> = from
            .list(None)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        for m in all {
            let b = from.get(&m.location).await.unwrap().bytes().await.unwrap();
            to.put(&m.location, PutPayload::from_bytes(b))
                .await
                .unwrap();
        }
    });
    to
}

/// Six stream snapshots sharing a base, each with data of its own.
fn fill(repo: Repository) -> (Vec<SnapshotEntry>, Vec<Vec<u8>>) {
    let mut repo = repo.load_index().unwrap();
    let base = generate(Kind::Random, 1 << 20, 1);
    let mut saved = Vec::new();
    let mut inputs = Vec::new();
    for i in 0..6u64 {
        let mut data = base.clone();
        data.extend_from_slice(&generate(Kind::Random, 1 << 20, 10 + i));
        data.extend_from_slice(&generate(Kind::Text, 512 << 10, 20 + i));
        saved.push(
            repo.backup_stream(&data[..], "db.dump", SnapshotSpec::default())
                .unwrap(),
        );
        inputs.push(data);
    }
    (saved, inputs)
}

fn restores(repo: Repository, snaps: &[&SnapshotEntry], inputs: &[&Vec<u8>]) {
    let repo = repo.load_index().unwrap();
    for (s, want) in snaps.iter().zip(inputs) {
        let mut out = Vec::new();
        repo.dump(&s.snapshot, "", &mut out)
            .unwrap_or_else(|e| panic!("snapshot {}: {e}", s.id));
        assert!(out == **want, "snapshot {} restores bit for bit", s.id);
    }
}

fn stored_bytes(store: &Store) -> u64 {
    dump_store(store)
        .iter()
        .filter(|(k, _)| k.starts_with("data/"))
        .map(|(_, v)| v.len() as u64)
        .sum()
}

fn check_ok(repo: &Repository, read: ReadData) -> maintenance::CheckReport {
    let r = maintenance::check(repo, read, &()).unwrap();
    assert!(r.is_ok(), "check found problems: {:#?}", r.problems);
    r
}

/// A new repository at `loc` with its cache in `cache`, and a way to open it.
fn new_repo(loc: String, cache: std::path::PathBuf) -> impl Fn() -> Repository {
    Repository::init(&loc, b"pw", test_init_options(), test_open_options(&cache)).unwrap();
    move || Repository::open(&loc, b"pw", test_open_options(&cache)).unwrap()
}

/// A new repository under `dir`, and a way to open it.
fn local_repo(dir: &std::path::Path) -> impl Fn() -> Repository {
    new_repo(
        dir.join("repo").to_str().unwrap().to_string(),
        dir.join("cache"),
    )
}

fn keep_last(n: u32) -> Policy {
    Policy {
        last: Some(Count::Up(n)),
        ..Default::default()
    }
}

#[test]
fn forget_then_prune_shrinks_and_keeps_every_kept_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let open = local_repo(dir.path());
    let (saved, inputs) = fill(open());
    let before = stored_bytes(open().store());

    // Dry run: nothing changes, the decisions come with reasons.
    let d = open()
        .forget(
            &keep_last(3),
            GroupBy::default(),
            &SnapshotFilter::default(),
            true,
        )
        .unwrap();
    assert_eq!(d[0].decisions.iter().filter(|x| x.keep()).count(), 3);
    assert!(
        d[0].decisions[0]
            .reasons
            .iter()
            .any(|r| r == "last snapshot")
    );
    assert_eq!(open().snapshots().unwrap().len(), 6);
    open()
        .forget(
            &keep_last(3),
            GroupBy::default(),
            &SnapshotFilter::default(),
            false,
        )
        .unwrap();
    assert_eq!(open().snapshots().unwrap().len(), 3);

    // A dry run returns the plan and changes nothing; the real run then
    // does exactly that plan.
    let dry = maintenance::prune(
        open(),
        &PruneOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(stored_bytes(open().store()), before);
    assert!(!dry.plan.mark.is_empty(), "{:?}", dry.plan);

    // Phase one marks (and repacks mostly unused packs): nothing is
    // deleted yet, all still reads.
    let r = maintenance::prune(open(), &PruneOptions::default()).unwrap();
    assert_eq!(r.plan, dry.plan, "the dry run's plan is what was done");
    assert!(r.marked >= 1 && r.deleted == 0, "{r:?}");
    let marked: Vec<_> = open()
        .marked_packs()
        .unwrap()
        .into_iter()
        .map(|m| m.pack.id)
        .collect();
    for id in r.plan.mark.iter().chain(&r.plan.repack) {
        assert!(marked.contains(id), "pack {id:?} was marked as planned");
    }
    assert!(stored_bytes(open().store()) >= before);
    // The report measures the store it leaves (marked packs take space).
    assert_eq!(r.repository_bytes, stored_bytes(open().store()));
    let c = check_ok(&open(), ReadData::None);
    assert!(
        c.notes.iter().any(|n| n.contains("marked for deletion")),
        "{:?}",
        c.notes
    );
    restores(
        open(),
        &[&saved[3], &saved[4], &saved[5]],
        &[&inputs[3], &inputs[4], &inputs[5]],
    );

    // Phase two, once the grace period is over, deletes.
    let r = common::prune_now(open());
    assert!(r.deleted >= 1 && r.waiting == 0, "{r:?}");
    let after = stored_bytes(open().store());
    assert_eq!(r.repository_bytes, after);
    assert!(
        after < before * 3 / 4,
        "{before} bytes before, {after} after"
    );
    check_ok(&open(), ReadData::All);
    restores(
        open(),
        &[&saved[3], &saved[4], &saved[5]],
        &[&inputs[3], &inputs[4], &inputs[5]],
    );
}

/// Retention right after a backup judges only the snapshots of the same
/// host, paths and source, and never removes the snapshot just saved.
#[test]
fn forget_after_backup_keeps_the_new_snapshot_and_its_group_only() {
    let dir = tempfile::tempdir().unwrap();
    let open = local_repo(dir.path());
    let mut repo = open().load_index().unwrap();
    let mut save = |name: &str, seed: u64, tags: &[&str]| {
        let options = SnapshotSpec {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        };
        repo.backup_stream(&generate(Kind::Random, 4096, seed)[..], name, options)
            .unwrap()
    };
    let other = save("other.db", 1, &[]);
    let tagged = save("etcd.db", 2, &["release"]);
    let plain = save("etcd.db", 3, &[]);
    let new = save("etcd.db", 4, &[]);

    let policy = Policy {
        tags: vec!["release".into()],
        ..Default::default()
    };
    let group = open().forget_after_backup(&new, &policy).unwrap();
    let decided: Vec<_> = group
        .decisions
        .iter()
        .map(|d| (d.entry.id, d.reasons.clone()))
        .collect();
    assert_eq!(
        decided,
        vec![
            (new.id, vec!["the snapshot just saved".to_string()]),
            (plain.id, vec![]),
            (tagged.id, vec!["tagged".to_string()]),
        ]
    );
    let mut left: Vec<_> = open().snapshots().unwrap().iter().map(|e| e.id).collect();
    left.sort();
    let mut want = vec![other.id, tagged.id, new.id];
    want.sort();
    assert_eq!(left, want);
}

#[test]
fn repacking_keeps_live_blobs_and_frees_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let open = new_repo(
        format!("memory://repack-{}", std::process::id()),
        dir.path().to_path_buf(),
    );
    // One session writes two streams: their blobs share packs.
    let mut repo = open().load_index().unwrap();
    let a = generate(Kind::Random, 3 << 20, 1);
    let b = generate(Kind::Random, 1 << 20, 2);
    let sa = repo
        .backup_stream(&a[..], "a", SnapshotSpec::default())
        .unwrap();
    let sb = repo
        .backup_stream(&b[..], "b", SnapshotSpec::default())
        .unwrap();
    drop(repo);
    open().delete_snapshot(&sa.id).unwrap();
    let r = maintenance::prune(
        open(),
        &PruneOptions {
            instant_delete: true,
            max_unused: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.deleted >= 1, "{r:?}");
    check_ok(&open(), ReadData::All);
    restores(open(), &[&sb], &[&b]);
}

#[test]
fn a_backup_during_prune_stays_restorable() {
    let dir = tempfile::tempdir().unwrap();
    let open = new_repo(
        format!("memory://concurrent-{}", std::process::id()),
        dir.path().to_path_buf(),
    );
    let old = generate(Kind::Random, 2 << 20, 7);
    let s1 = open()
        .load_index()
        .unwrap()
        .backup_stream(&old[..], "old", SnapshotSpec::default())
        .unwrap();
    let other = generate(Kind::Random, 1 << 20, 8);
    open()
        .load_index()
        .unwrap()
        .backup_stream(&other[..], "other", SnapshotSpec::default())
        .unwrap();

    // A backup loads the index now, and finishes after the prune.
    let mut early = open().load_index().unwrap();
    open().delete_snapshot(&s1.id).unwrap();
    let r = maintenance::prune(open(), &PruneOptions::default()).unwrap();
    assert!(r.marked >= 1, "{r:?}");
    // It stores the same data again: deduped against the marked pack.
    let s3 = early
        .backup_stream(&old[..], "again", SnapshotSpec::default())
        .unwrap();
    // Only the new tree (another file name) is new: the data was deduped.
    assert!(
        s3.snapshot.summary.bytes_added < 4096,
        "deduped against what the prune marked: {:?}",
        s3.snapshot.summary
    );
    drop(early);
    restores(open(), &[&s3], &[&old]);
    check_ok(&open(), ReadData::All);

    // After the grace period the marked pack is used again: put back, not deleted.
    let r = common::prune_now(open());
    assert!(r.resurrected >= 1, "{r:?}");
    restores(open(), &[&s3], &[&old]);
    check_ok(&open(), ReadData::All);

    // Marked again; a backup that starts after the marking does not depend
    // on the marked pack: it stores the data anew.
    open().delete_snapshot(&s3.id).unwrap();
    let r = maintenance::prune(open(), &PruneOptions::default()).unwrap();
    assert!(r.marked >= 1, "{r:?}");
    let s4 = open()
        .load_index()
        .unwrap()
        .backup_stream(&old[..], "late", SnapshotSpec::default())
        .unwrap();
    assert!(
        s4.snapshot.summary.bytes_added >= old.len() as u64,
        "stored anew: {:?}",
        s4.snapshot.summary
    );
    // So the marked pack can go: its blobs resolve to the new copy.
    let r = common::prune_now(open());
    assert!(r.deleted >= 1 && r.resurrected == 0, "{r:?}");
    restores(open(), &[&s4], &[&old]);
    check_ok(&open(), ReadData::All);
}

/// Runs `prune` with a fault after `n` writes, for every `n` until it
/// succeeds; after each interruption `check` passes, the next prune
/// finishes, and the kept snapshots restore.
fn interrupt_at_every_step(prune_options: PruneOptions, prepare_twice: bool) {
    let base = Arc::new(InMemory::new());
    let repo = Repository::init_store(
        memory_store(base.clone(), i64::MAX),
        b"pw",
        test_init_options(),
        options(),
    )
    .unwrap();
    let (saved, inputs) = fill(repo);
    let open = |s: &Arc<InMemory>, n| {
        Repository::open_store(memory_store(s.clone(), n), b"pw", options()).unwrap()
    };
    open(&base, i64::MAX)
        .forget(
            &keep_last(3),
            GroupBy::default(),
            &SnapshotFilter::default(),
            false,
        )
        .unwrap();
    if prepare_twice {
        // Mark first, so the interrupted prune is the one that deletes.
        maintenance::prune(open(&base, i64::MAX), &PruneOptions::default()).unwrap();
    }
    let kept: Vec<&SnapshotEntry> = saved[3..].iter().collect();
    let kept_inputs: Vec<&Vec<u8>> = inputs[3..].iter().collect();
    for n in 0.. {
        let copy = copy_store(&base);
        let result = maintenance::prune(open(&copy, n), &prune_options);
        check_ok(&open(&copy, i64::MAX), ReadData::All);
        restores(open(&copy, i64::MAX), &kept, &kept_inputs);
        // The crashed prune's lock stays behind; after a real crash it is
        // stale at once (its process is gone). Here the "crashed" prune was
        // this very process, so clear it as `hokan unlock` would.
        open(&copy, i64::MAX).remove_locks(false).unwrap();
        // The next prune finishes and leaves a sound, smaller repository.
        let finish = PruneOptions {
            instant_delete: true,
            ..Default::default()
        };
        maintenance::prune(open(&copy, i64::MAX), &finish)
            .unwrap_or_else(|e| panic!("after a fault at write {n}: {e}"));
        check_ok(&open(&copy, i64::MAX), ReadData::All);
        restores(open(&copy, i64::MAX), &kept, &kept_inputs);
        if result.is_ok() {
            assert!(n > 3, "the prune made several writes");
            break;
        }
    }
}

#[test]
fn an_interrupted_marking_prune_is_harmless() {
    interrupt_at_every_step(
        PruneOptions {
            max_unused: 0.0,
            ..Default::default()
        },
        false,
    );
}

#[test]
fn an_interrupted_deleting_prune_is_harmless() {
    interrupt_at_every_step(
        PruneOptions {
            grace: Duration::ZERO,
            ..Default::default()
        },
        true,
    );
}

#[test]
fn an_interrupted_instant_prune_is_harmless() {
    interrupt_at_every_step(
        PruneOptions {
            instant_delete: true,
            max_unused: 0.0,
            ..Default::default()
        },
        false,
    );
}

#[test]
fn repair_index_rebuilds_a_lost_index() {
    let dir = tempfile::tempdir().unwrap();
    let open = local_repo(dir.path());
    let (saved, inputs) = fill(open());
    let store = open().store().clone();
    for (k, _) in dump_store(&store)
        .iter()
        .filter(|(k, _)| k.starts_with("index/"))
    {
        store.delete(k).unwrap();
    }
    let e = open()
        .load_index()
        .unwrap()
        .dump(&saved[0].snapshot, "", &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(e, Error::Core(hokan_core::Error::BlobNotFound { .. })),
        "{e}"
    );
    let c = maintenance::check(&open(), ReadData::None, &()).unwrap();
    assert!(
        !c.is_ok() && c.problems.len() >= 6,
        "every snapshot's missing data is reported: {:?}",
        c.problems
    );
    // Prune refuses to run on a repository whose index lacks used data.
    let before = dump_store(&store);
    let e = maintenance::prune(
        open(),
        &PruneOptions {
            instant_delete: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::NotIndexed { .. }), "{e}");
    let after = dump_store(&store);
    assert_eq!(
        before.keys().filter(|k| k.starts_with("data/")).count(),
        after.keys().filter(|k| k.starts_with("data/")).count(),
        "nothing was deleted"
    );

    let r = maintenance::repair_index(&open()).unwrap();
    assert!(r.unreadable.is_empty() && r.packs >= 6, "{r:?}");
    check_ok(&open(), ReadData::All);
    let all: Vec<&SnapshotEntry> = saved.iter().collect();
    let all_inputs: Vec<&Vec<u8>> = inputs.iter().collect();
    restores(open(), &all, &all_inputs);
}

#[test]
fn check_reports_every_problem_and_prune_is_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let open = local_repo(dir.path());
    fill(open());

    // Two prunes cannot run at once.
    let repo = open();
    let held = maintenance::PruneLock::acquire(&repo).unwrap();
    let e = maintenance::prune(open(), &PruneOptions::default())
        .err()
        .unwrap();
    assert!(matches!(e, Error::Locked(_)), "{e}");
    drop(held);
    assert_eq!(
        repo.remove_locks(false).unwrap(),
        0,
        "the lock went with its holder"
    );
    maintenance::prune(open(), &PruneOptions::default()).unwrap();

    let store = open().store().clone();
    let packs: BTreeMap<String, Bytes> = dump_store(&store)
        .into_iter()
        .filter(|(k, _)| k.starts_with("data/"))
        .collect();
    let mut names = packs.keys();
    // Two packs damaged, one gone.
    for name in [names.next().unwrap(), names.next().unwrap()] {
        let mut b = packs[name].to_vec();
        b[40] ^= 1;
        store.put(name, b.into()).unwrap();
    }
    store.delete(names.next().unwrap()).unwrap();
    // Structure first: reading data records the damage it finds, which a
    // later structure check then knows about too.
    let structure = maintenance::check(&open(), ReadData::None, &()).unwrap();
    let r = maintenance::check(&open(), ReadData::All, &()).unwrap();
    let objects: std::collections::BTreeSet<_> =
        r.problems.iter().map(|p| p.object.clone()).collect();
    assert!(
        objects.len() >= 3,
        "each damaged object is reported: {:#?}",
        r.problems
    );
    assert!(!r.affected.is_empty(), "and the files it affects");
    let after = maintenance::check(&open(), ReadData::None, &()).unwrap();
    assert!(
        after.problems.len() > structure.problems.len(),
        "recorded damage is known without reading again"
    );
    // The smallest memory bound, spilling into a directory of its own,
    // finds the same.
    let spill = tempfile::tempdir().unwrap();
    let options = maintenance::CheckOptions {
        max_memory: 1,
        temp_dir: Some(spill.path().to_path_buf()),
        ..Default::default()
    };
    let small = maintenance::check_with(&open(), &options, &()).unwrap();
    assert_eq!(small.problems, after.problems);
    assert_eq!(small.affected, after.affected);
    assert_eq!(small.notes, after.notes);
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
    assert!(
        structure
            .problems
            .iter()
            .any(|p| p.message.contains("not in the store")),
        "the missing pack shows without reading data: {:?}",
        structure.problems
    );
    assert!(
        structure.problems.len() < r.problems.len(),
        "reading data finds more"
    );
    let subset = maintenance::check(&open(), ReadData::parse_subset("1/2").unwrap(), &()).unwrap();
    assert!(subset.packs_read < r.packs_read);
}

/// Records the phases a maintenance command reports and what each counted.
#[derive(Default)]
struct Phases(std::sync::Mutex<Vec<(String, u64, maintenance::Unit, u64)>>);

impl maintenance::PhaseProgress for Phases {
    fn phase(&self, name: &str, total: u64, unit: maintenance::Unit) {
        self.0
            .lock()
            .unwrap()
            .push((name.to_string(), total, unit, 0));
    }
    fn advance(&self, n: u64) {
        self.0.lock().unwrap().last_mut().unwrap().3 += n;
    }
}

#[test]
fn check_and_prune_report_their_phases() {
    use maintenance::Unit;
    let dir = tempfile::tempdir().unwrap();
    let open = local_repo(dir.path());
    let (saved, _) = fill(open());

    let phases = Phases::default();
    let r = maintenance::check(&open(), ReadData::All, &phases).unwrap();
    let got = phases.0.into_inner().unwrap();
    let names: Vec<&str> = got.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["index files", "snapshots", "reading packs"]);
    for (name, total, _, done) in &got {
        assert_eq!(done, total, "{name}: every step counted");
    }
    assert_eq!(got[1].1, saved.len() as u64);
    assert_eq!((got[2].1, got[2].2), (r.bytes_read, Unit::Bytes));

    // Forget all but the newest, repack everything partly used, delete now.
    open()
        .forget(
            &keep_last(1),
            GroupBy::default(),
            &SnapshotFilter::default(),
            false,
        )
        .unwrap();
    let phases = Phases::default();
    let options = PruneOptions {
        instant_delete: true,
        max_unused: 0.0,
        ..Default::default()
    };
    let p = maintenance::prune_with(open(), &options, &phases).unwrap();
    let got = phases.0.into_inner().unwrap();
    let names: Vec<&str> = got.iter().map(|p| p.0.as_str()).collect();
    // Whether a pack is partly used depends on where the chunker (seeded
    // per repository) and the parallel writers put the chunks.
    let mut want = vec!["trees of every snapshot"];
    if p.repacked > 0 {
        want.push("repacking");
    }
    want.push("deleting packs");
    assert_eq!(names, want, "{p:?}");
    assert_eq!(got[0].3, 1, "one snapshot, one tree");
    for (name, total, _, done) in &got[1..] {
        assert!(*total > 0, "{name}");
        assert_eq!(done, total, "{name}: every step counted");
    }
    assert_eq!(got.last().unwrap().1, p.deleted as u64);
    check_ok(&open(), ReadData::All);
}
