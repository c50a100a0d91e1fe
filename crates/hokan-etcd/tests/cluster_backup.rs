//! cluster-backup.sh's run through the library: the etcd snapshot with the
//! static pod resources linked to it (in the same repository or another),
//! retention that takes them along, a restore that finds them, and a
//! failed run that leaves nothing behind.

use std::path::Path;

use hokan_core::fs::NoProgress;
use hokan_etcd::static_pods::{restore_linked_static_pods, static_pods_link};
use hokan_etcd::{
    BackupOptions, EtcdSource, StaticPods, cluster_backup, latest_static_pod_resources,
};
use hokan_repo::retention::{Count, Policy};
use hokan_repo::{
    IndexedRepository, InitOptions, KdfParams, LinkFate, OpenOptions, Repository, SourceKind,
};

fn repository(dir: &Path, name: &str) -> (String, IndexedRepository) {
    let location = dir.join(name).to_str().unwrap().to_string();
    let init = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    Repository::init(
        &location,
        b"pw",
        init,
        OpenOptions {
            cache: hokan_repo::CacheMode::Off,
            ..Default::default()
        },
    )
    .unwrap();
    let repo = Repository::open(
        &location,
        b"pw",
        OpenOptions {
            cache: hokan_repo::CacheMode::Off,
            ..Default::default()
        },
    )
    .unwrap()
    .load_index()
    .unwrap();
    (location, repo)
}

/// A node's static pod resources, one revision of each component.
fn resources(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("static-pod-resources");
    for c in hokan_etcd::static_pods::STATIC_POD_COMPONENTS {
        let d = root.join(format!("{c}-pod-7/secrets"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("key"), format!("{c} key")).unwrap();
    }
    root
}

fn pods(root: &Path) -> StaticPods<'static> {
    StaticPods {
        resources: root.to_path_buf(),
        chosen: latest_static_pod_resources(root, None).unwrap(),
        elsewhere: None,
    }
}

fn count(repo: &IndexedRepository, kind: SourceKind) -> usize {
    let all = repo.snapshots().unwrap();
    all.iter().filter(|e| e.snapshot.source == kind).count()
}

fn keep_last(n: u32) -> Policy {
    Policy {
        last: Some(Count::Up(n)),
        ..Default::default()
    }
}

#[test]
fn the_static_pods_are_linked_kept_and_forgotten_with_their_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut repo) = repository(dir.path(), "repo");
    let root = resources(dir.path());
    let db = dir.path().join("snapshot.db");
    std::fs::write(&db, hokan_etcd::testdata::tiny_db()).unwrap();
    let options = BackupOptions::default();

    let mut runs = Vec::new();
    for _ in 0..2 {
        let done = cluster_backup(
            &mut repo,
            EtcdSource::File(&db),
            &options,
            Some(pods(&root)),
            &keep_last(1),
            &NoProgress,
        )
        .unwrap();
        runs.push(done);
    }
    // The second run's retention forgot the first etcd snapshot, and its
    // static pods with it.
    let group = runs[1].retention.take().unwrap().unwrap();
    let gone: Vec<_> = group.decisions.iter().filter(|d| !d.keep()).collect();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].linked[0].fate, LinkFate::Forgotten);
    assert_eq!(count(&repo, SourceKind::ETCD), 1);
    assert_eq!(count(&repo, SourceKind::FS), 1);

    // The link leads to them, and they restore where cluster-restore.sh
    // expects them.
    let saved = &runs[1].backed.entry.snapshot;
    let link = static_pods_link(saved).unwrap();
    assert_eq!(link.id(), Some(runs[1].static_pods.as_ref().unwrap().id));
    let target = dir.path().join("restored");
    let (_, restored) = restore_linked_static_pods(&repo, &link, &target, &NoProgress).unwrap();
    assert_eq!(restored.summary.files, 4);
    let key = std::fs::read_to_string(target.join("etcd-pod-7/secrets/key")).unwrap();
    assert_eq!(key, "etcd key");

    // A run whose etcd snapshot fails leaves no static pods behind.
    let bad = dir.path().join("not-a-db");
    std::fs::write(&bad, b"not bbolt at all".repeat(300)).unwrap();
    let failed = cluster_backup(
        &mut repo,
        EtcdSource::File(&bad),
        &options,
        Some(pods(&root)),
        &Policy::default(),
        &NoProgress,
    );
    assert!(failed.is_err());
    assert_eq!(
        count(&repo, SourceKind::FS),
        1,
        "the run's static pods went"
    );
}

#[test]
fn in_another_repository_they_are_forgotten_there_too() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut repo) = repository(dir.path(), "repo");
    let (keys_at, mut keys) = repository(dir.path(), "keys");
    let root = resources(dir.path());
    let db = dir.path().join("snapshot.db");
    std::fs::write(&db, hokan_etcd::testdata::tiny_db()).unwrap();
    for _ in 0..3 {
        let elsewhere = StaticPods {
            elsewhere: Some((keys_at.clone(), &mut keys)),
            ..pods(&root)
        };
        let done = cluster_backup(
            &mut repo,
            EtcdSource::File(&db),
            &BackupOptions::default(),
            Some(elsewhere),
            &keep_last(2),
            &NoProgress,
        )
        .unwrap();
        let link = static_pods_link(&done.backed.entry.snapshot).unwrap();
        assert_eq!(link.repository.as_deref(), Some(keys_at.as_str()));
        done.retention.unwrap().unwrap();
    }
    assert_eq!(count(&repo, SourceKind::ETCD), 2);
    assert_eq!(count(&repo, SourceKind::FS), 0, "kept apart");
    assert_eq!(count(&keys, SourceKind::FS), 2, "the forgotten run's went");

    // A plain forget in the etcd snapshots' repository cannot open the
    // other one: it says where they are instead of leaving them silently.
    let oldest = repo.snapshots().unwrap()[0].id;
    let done = repo.forget_snapshots(&[oldest], false).unwrap();
    assert_eq!(done[0].linked[0].fate, LinkFate::Elsewhere);
    assert_eq!(
        done[0].linked[0].link.repository.as_deref(),
        Some(keys_at.as_str())
    );
}
