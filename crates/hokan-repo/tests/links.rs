//! Linked snapshots go with the snapshot linking to them, whichever way it
//! is forgotten (by a policy, after a backup, by id), and stay while it
//! stays; a link into another repository is reported, not followed.

mod common;

use common::{memory_store, open};
use hokan_repo::retention::{Count, GroupBy, Policy};
use hokan_repo::{
    IndexedRepository, InitOptions, KdfParams, Link, LinkFate, SnapshotEntry, SnapshotFilter,
    SnapshotSpec, SourceKind, Staged, Store,
};

fn repository() -> (Store, IndexedRepository) {
    let store = memory_store("links");
    let init = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    hokan_repo::Repository::init_store(store.clone(), b"pw", init, common::options()).unwrap();
    let repo = open(&store).load_index().unwrap();
    (store, repo)
}

/// An empty snapshot of `kind` at `path`, with `links`.
fn snap(repo: &mut IndexedRepository, kind: &str, path: &str, links: &[Link]) -> SnapshotEntry {
    let spec = SnapshotSpec {
        paths: vec![path.into()],
        // The keys carry a tag, for a rule that would keep them all.
        tags: if path == "/keys" {
            vec!["keys".into()]
        } else {
            Vec::new()
        },
        labels: links.iter().flat_map(Link::labels).collect(),
        ..SnapshotSpec::new(SourceKind::new(kind).unwrap())
    };
    repo.backup(spec, |s| {
        Ok::<_, hokan_repo::Error>((Staged::new(s.store_tree(Vec::new())?), ()))
    })
    .unwrap()
    .entry
}

/// A run of a source that stores its keys first and links them.
fn run(repo: &mut IndexedRepository) -> (SnapshotEntry, SnapshotEntry) {
    let keys = snap(repo, "fs", "/keys", &[]);
    let db = snap(repo, "etcd", "db", &[Link::new("keys", &keys.id)]);
    (db, keys)
}

fn ids(repo: &IndexedRepository) -> Vec<hokan_core::Id> {
    repo.snapshots().unwrap().iter().map(|e| e.id).collect()
}

fn last(n: u32) -> Policy {
    Policy {
        last: Some(Count::Up(n)),
        ..Default::default()
    }
}

#[test]
fn a_policy_forgets_what_the_forgotten_link_to() {
    let (_store, mut repo) = repository();
    let runs: Vec<_> = (0..3).map(|_| run(&mut repo)).collect();
    let only_db = SnapshotFilter {
        paths: vec!["db".into()],
        ..Default::default()
    };

    // A dry run says what would go and deletes nothing.
    let dry = repo
        .forget(&last(1), GroupBy::default(), &only_db, true)
        .unwrap();
    assert_eq!(ids(&repo).len(), 6);
    let gone: Vec<_> = dry[0].decisions.iter().filter(|d| !d.keep()).collect();
    assert_eq!(gone.len(), 2);
    assert_eq!(gone[0].linked[0].fate, LinkFate::Forgotten);

    let groups = repo
        .forget(&last(1), GroupBy::default(), &only_db, false)
        .unwrap();
    let left = ids(&repo);
    assert_eq!(left, [runs[2].1.id, runs[2].0.id], "the keys went too");
    let forgotten = groups[0]
        .decisions
        .iter()
        .find(|d| d.entry.id == runs[0].0.id);
    let linked = &forgotten.unwrap().linked;
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0].link.snapshot, runs[0].1.id.to_hex());
    assert_eq!(linked[0].fate, LinkFate::Forgotten);
}

#[test]
fn a_linked_snapshot_lives_as_long_as_what_links_to_it() {
    let (_store, mut repo) = repository();
    let runs: Vec<_> = (0..3).map(|_| run(&mut repo)).collect();

    // Keys' own rules keep only the newest; the snapshots linking to the
    // others stay, so the others stay too, and say why.
    let only_keys = SnapshotFilter {
        paths: vec!["/keys".into()],
        ..Default::default()
    };
    let groups = repo
        .forget(&last(1), GroupBy::default(), &only_keys, false)
        .unwrap();
    assert_eq!(ids(&repo).len(), 6, "nothing went");
    let d = groups[0]
        .decisions
        .iter()
        .find(|d| d.entry.id == runs[0].1.id);
    let reasons = d.unwrap().reasons.join(", ");
    assert!(
        reasons.contains(&format!("linked from snapshot {}", runs[0].0.id.short())),
        "{reasons}"
    );

    // One group, the newest kept and every key by its tag: the older
    // etcd snapshots go, and their keys with them, whatever the tag says.
    let policy = Policy {
        tags: vec!["keys".into()],
        ..last(1)
    };
    let everything = GroupBy::parse("").unwrap();
    let groups = repo
        .forget(&policy, everything, &Default::default(), false)
        .unwrap();
    assert_eq!(ids(&repo), [runs[2].1.id, runs[2].0.id]);
    let d = groups[0]
        .decisions
        .iter()
        .find(|d| d.entry.id == runs[1].1.id);
    let d = d.unwrap();
    assert!(!d.keep());
    assert_eq!(d.forgotten_with, Some(runs[1].0.id));
}

#[test]
fn after_a_backup_the_rotation_takes_the_links_along() {
    let (_store, mut repo) = repository();
    let runs: Vec<_> = (0..3).map(|_| run(&mut repo)).collect();
    let group = repo.forget_after_backup(&runs[2].0, &last(2)).unwrap();
    assert_eq!(group.decisions.iter().filter(|d| !d.keep()).count(), 1);
    assert_eq!(
        ids(&repo),
        [runs[1].1.id, runs[1].0.id, runs[2].1.id, runs[2].0.id]
    );
}

#[test]
fn by_id_the_links_go_and_other_repositories_are_reported() {
    let (_store, mut repo) = repository();
    let (db, keys) = run(&mut repo);
    let elsewhere = Link {
        repository: Some("s3:http://keys.example/bucket".into()),
        ..Link::new("vault", &keys.id)
    };
    let gone = Link::new("gone", &hokan_core::Id([9; 32]));
    let other = snap(&mut repo, "etcd", "db", &[elsewhere.clone(), gone]);

    let done = repo.forget_snapshots(&[db.id, other.id], false).unwrap();
    assert_eq!(done.len(), 2);
    assert_eq!(done[0].linked[0].fate, LinkFate::Forgotten);
    let fates: Vec<_> = done[1].linked.iter().map(|l| l.fate.clone()).collect();
    assert!(fates.contains(&LinkFate::Elsewhere), "{fates:?}");
    assert!(fates.contains(&LinkFate::Missing), "{fates:?}");
    assert!(ids(&repo).is_empty());

    // Named by id, a linked snapshot goes even while its linker stays.
    let (db, keys) = run(&mut repo);
    let done = repo.forget_snapshots(&[keys.id], false).unwrap();
    assert!(done[0].linked.is_empty());
    assert_eq!(ids(&repo), [db.id]);
}
