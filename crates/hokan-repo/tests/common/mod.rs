//! What the library tests against in-memory stores share: how they open a
//! repository, and the checks that nothing was lost.

// Not every test binary uses every helper.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hokan_core::fs::NoProgress;
use hokan_repo::maintenance::{self, PruneOptions, PruneReport, ReadData};
use hokan_repo::{
    CacheMode, FsBackup, OpenOptions, Repository, RetryPolicy, Snapshot, SnapshotEntry, Store,
};
use object_store::memory::InMemory;

/// No cache (the store is what is tested) and one attempt per request, so
/// an injected fault shows at once.
pub fn options() -> OpenOptions {
    OpenOptions {
        cache: CacheMode::Off,
        retry: RetryPolicy {
            attempts: 1,
            first_backoff: Duration::from_millis(1),
        },
        ..Default::default()
    }
}

/// The repository in `store`, with the tests' password.
pub fn open(store: &Store) -> Repository {
    Repository::open_store(store.clone(), b"pw", options()).unwrap()
}

/// An empty in-memory store called `name`, retried as [`options`] says.
pub fn memory_store(name: &str) -> Store {
    Store::from_object_store(
        Arc::new(InMemory::new()),
        hokan_repo::Location::Memory(name.into()),
        options().retry,
    )
}

/// A backup of `src` with the default options (its parent found as usual).
pub fn backup(store: &Store, src: &Path) -> SnapshotEntry {
    open(store)
        .load_index()
        .unwrap()
        .backup_paths(&[src.to_path_buf()], &FsBackup::default(), &NoProgress)
        .unwrap()
        .entry
}

/// A prune with no grace period: packs an earlier run marked unused may
/// go at once.
pub fn prune_now(repo: Repository) -> PruneReport {
    maintenance::prune(
        repo,
        &PruneOptions {
            grace: Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap()
}

/// `check --read-data` finds nothing wrong.
pub fn check_clean(store: &Store) {
    let r = maintenance::check(&open(store), ReadData::All, &()).unwrap();
    assert!(r.is_ok(), "check: {:#?}", r.problems);
}

/// `snapshot` restores `source` (a path it backed up) completely and
/// exactly.
pub fn restore_equals(store: &Store, snapshot: &Snapshot, source: &Path) {
    let repo = open(store).load_index().unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = repo
        .restore(
            snapshot,
            &source.to_string_lossy(),
            out.path(),
            Default::default(),
            &NoProgress,
        )
        .unwrap();
    assert_eq!(r.summary.failed, 0);
    let diff = std::process::Command::new("diff")
        .arg("-r")
        .arg(source)
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
}
