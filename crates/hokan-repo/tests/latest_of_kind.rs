//! "The latest snapshot of this kind and identity", in one place: what the
//! etcd, Kubernetes and volume sources resolve `latest` and ids through.

mod common;

use hokan_repo::{
    Error, IndexedRepository, InitOptions, KdfParams, SnapshotEntry, SnapshotFilter, SnapshotSpec,
    SourceKind, Staged,
};

fn repository() -> IndexedRepository {
    let store = common::memory_store("latest");
    let init = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    hokan_repo::Repository::init_store(store, b"pw", init, common::options())
        .unwrap()
        .load_index()
        .unwrap()
}

fn snap(repo: &mut IndexedRepository, kind: SourceKind, identity: &str) -> SnapshotEntry {
    let spec = SnapshotSpec {
        identity: identity.into(),
        ..SnapshotSpec::new(kind)
    };
    repo.backup(spec, |s| {
        Ok::<_, hokan_repo::Error>((Staged::new(s.store_tree(Vec::new())?), ()))
    })
    .unwrap()
    .entry
}

#[test]
fn latest_is_the_newest_of_the_kind_and_identity_asked_for() {
    let mut repo = repository();
    let no_filter = SnapshotFilter::default();
    let err = repo
        .find_snapshot_of(&SourceKind::ETCD, "latest", &no_filter)
        .unwrap_err();
    assert!(matches!(err, Error::NoSnapshotOfKind { .. }), "{err}");
    assert!(err.to_string().contains("no etcd snapshot"), "{err}");

    let a = snap(&mut repo, SourceKind::ETCD, "cluster-a");
    let b = snap(&mut repo, SourceKind::ETCD, "cluster-b");
    let pvc = snap(&mut repo, SourceKind::VOLUME, "shop/data");
    let found = |kind: &SourceKind, query: &str, filter: &SnapshotFilter| {
        repo.find_snapshot_of(kind, query, filter)
    };
    // The newest of the kind, not the newest of all.
    assert_eq!(
        found(&SourceKind::ETCD, "latest", &no_filter).unwrap().id,
        b.id
    );
    assert_eq!(
        found(&SourceKind::VOLUME, "latest", &no_filter).unwrap().id,
        pvc.id
    );
    let of_a = SnapshotFilter {
        identity: Some("cluster-a".into()),
        ..Default::default()
    };
    assert_eq!(found(&SourceKind::ETCD, "latest", &of_a).unwrap().id, a.id);

    // An id of another kind is refused, saying what it is.
    let err = found(&SourceKind::ETCD, &pvc.id.to_hex()[..12], &no_filter).unwrap_err();
    assert!(matches!(err, Error::OtherKind { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("is a volume snapshot, not an etcd one"),
        "{err}"
    );
    assert_eq!(
        found(&SourceKind::ETCD, &a.id.to_hex(), &no_filter)
            .unwrap()
            .id,
        a.id
    );
}
