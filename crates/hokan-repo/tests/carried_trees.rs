//! Small directories carried inside their parent's tree (tree version 3)
//! through a repository's whole life: backups store far fewer tree blobs,
//! and forget, prune, check and restore see every directory.

mod common;

use std::path::Path;

use common::{backup, check_clean, memory_store, open, options, prune_now, restore_equals};
use hokan_core::BlobType;
use hokan_repo::conformance::test_init_options;
use hokan_repo::retention::{Count, GroupBy, Policy};
use hokan_repo::{Repository, Store};

/// 40 small directories (two files each, like a locale's messages) under
/// four nested ones; `round` changes the files of every fifth directory.
fn tree(dir: &Path, round: u32) -> usize {
    for i in 0..40u32 {
        let sub = dir.join(format!("pkg{}/locale/l{i:02}/LC_MESSAGES", i % 4));
        std::fs::create_dir_all(&sub).unwrap();
        let text = if i % 5 == 0 { round } else { 0 };
        std::fs::write(sub.join("django.po"), format!("msgid {i} {text}\n")).unwrap();
        std::fs::write(sub.join("django.mo"), format!("{i}:{text}")).unwrap();
    }
    // pkg*, pkg*/locale, l**, LC_MESSAGES
    4 + 4 + 40 + 40
}

fn tree_blobs(store: &Store) -> usize {
    let repo = open(store).load_index().unwrap();
    repo.index()
        .iter()
        .filter(|(_, l)| l.kind == BlobType::Tree)
        .count()
}

#[test]
fn carried_directories_live_through_backup_forget_prune_and_check() {
    let store = memory_store("carried");
    Repository::init_store(store.clone(), b"pw", test_init_options(), options()).unwrap();
    let src = tempfile::tempdir().unwrap();
    let dirs = tree(src.path(), 0);
    let first = backup(&store, src.path());
    // The leaves and their parents are carried: the directories above the
    // source and the four `locale` directories carrying ten locales each
    // are blobs, not the 80 small ones.
    let blobs = tree_blobs(&store);
    assert!(
        blobs < dirs / 4,
        "{blobs} tree blobs for {dirs} directories"
    );

    tree(src.path(), 1);
    let second = backup(&store, src.path());
    tree(src.path(), 2);
    let third = backup(&store, src.path());
    check_clean(&store);
    restore_equals(&store, &third.snapshot, src.path());

    let before = tree_blobs(&store);
    assert!(before > blobs, "the later backups stored trees too");
    let repo = open(&store);
    repo.forget(
        &Policy {
            last: Some(Count::Up(1)),
            ..Default::default()
        },
        GroupBy::default(),
        &Default::default(),
        false,
    )
    .unwrap();
    let report = prune_now(open(&store));
    assert!(report.used_blobs > 0, "{report:#?}");
    // What the two forgotten snapshots alone used may go (whole packs of
    // it); everything the kept one carries is still there.
    assert!(tree_blobs(&store) <= before);
    check_clean(&store);
    restore_equals(&store, &third.snapshot, src.path());
    let left: Vec<_> = open(&store).snapshots().unwrap();
    assert_eq!(left.len(), 1);
    assert_ne!(first.id, second.id);
}
