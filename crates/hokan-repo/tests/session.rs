//! The one way in: a source's own error type comes back through
//! `IndexedRepository::backup` and `backup_each` unchanged, and tags are
//! normalised once, by the snapshot spec, for every source.

mod common;

use common::{memory_store, open};
use hokan_core::Node;
use hokan_core::fs::NoProgress;
use hokan_repo::conformance::test_init_options;
use hokan_repo::{
    FsBackup, IndexedRepository, Repository, SnapshotSpec, SourceKind, Staged, TagChange,
};

/// A source's own error, as a crate beside hokan-repo would define it.
#[derive(Debug)]
enum SourceError {
    /// Something the source itself found, with what it names.
    BadRecord { name: String },
    /// The repository failed.
    Repo(hokan_repo::Error),
}

impl From<hokan_repo::Error> for SourceError {
    fn from(e: hokan_repo::Error) -> Self {
        SourceError::Repo(e)
    }
}

fn repository(name: &str) -> IndexedRepository {
    let store = memory_store(name);
    Repository::init_store(store.clone(), b"pw", test_init_options(), common::options()).unwrap();
    open(&store).load_index().unwrap()
}

/// A source that stores one object, then fails with its own error when
/// `fail` is set.
fn source(s: &hokan_repo::Session<'_>, fail: bool) -> Result<(Staged, &'static str), SourceError> {
    let content = s.store_bytes(b"{\"kind\":\"ConfigMap\"}")?;
    if fail {
        return Err(SourceError::BadRecord {
            name: "shop/web".into(),
        });
    }
    let tree = s.store_tree(vec![Node::object("cm.json", content, Vec::new())])?;
    Ok((Staged::new(tree), "stored"))
}

#[test]
fn a_sources_own_error_comes_back_unchanged_and_saves_nothing() {
    let mut repo = repository("own-error");
    let spec = SnapshotSpec::new(SourceKind::K8S);
    let failed = repo.backup(spec.clone(), |s| source(s, true));
    match failed {
        Err(SourceError::BadRecord { name }) => assert_eq!(name, "shop/web"),
        other => panic!("expected the source's own error, got {other:?}"),
    }
    assert!(repo.snapshots().unwrap().is_empty());

    let saved = repo.backup(spec, |s| source(s, false)).unwrap();
    assert_eq!(saved.value, "stored");
    assert_eq!(repo.snapshots().unwrap().len(), 1);
}

#[test]
fn the_sessions_errors_arrive_converted_into_the_sources_type() {
    let mut repo = repository("session-error");
    let done = repo.backup(SnapshotSpec::new(SourceKind::K8S), |s| {
        // A name no tree may hold: the session refuses it.
        let tree = s.store_tree(vec![Node::object("a/b", Vec::new(), Vec::new())])?;
        Ok::<_, SourceError>((Staged::new(tree), ()))
    });
    assert!(
        matches!(
            &done,
            Err(SourceError::Repo(hokan_repo::Error::Core(
                hokan_core::Error::InvalidParameter { .. }
            )))
        ),
        "{done:?}"
    );
}

#[test]
fn each_job_of_a_batch_returns_its_own_error() {
    let mut repo = repository("batch-errors");
    let jobs: Vec<_> = [false, true, false]
        .into_iter()
        .enumerate()
        .map(|(i, fail)| {
            let spec = SnapshotSpec {
                identity: format!("job-{i}"),
                ..SnapshotSpec::new(SourceKind::K8S)
            };
            (spec, move |s: &hokan_repo::Session<'_>| source(s, fail))
        })
        .collect();
    let results = repo.backup_each(jobs, 2).unwrap();
    assert!(results[0].is_ok() && results[2].is_ok());
    assert!(
        matches!(&results[1], Err(SourceError::BadRecord { name }) if name == "shop/web"),
        "{:?}",
        results[1]
    );
    assert_eq!(repo.snapshots().unwrap().len(), 2);
}

/// Tags as a user types them: spaces around, empty ones from `a,,b`, twice.
fn typed_tags() -> Vec<String> {
    [" daily", "", "weekly ", "daily", "  "]
        .map(String::from)
        .to_vec()
}

#[test]
fn tags_are_normalised_by_the_spec_for_every_source() {
    let mut repo = repository("tags");
    let normal = vec!["daily".to_string(), "weekly".to_string()];

    // A source of its own.
    let spec = SnapshotSpec {
        tags: typed_tags(),
        ..SnapshotSpec::new(SourceKind::K8S)
    };
    let own = repo.backup(spec, |s| source(s, false)).unwrap();
    assert_eq!(own.entry.snapshot.tags, normal);

    // A stream.
    let spec = SnapshotSpec {
        tags: typed_tags(),
        ..SnapshotSpec::default()
    };
    let stream = repo.backup_stream(&b"dump"[..], "dump.sql", spec).unwrap();
    assert_eq!(stream.snapshot.tags, normal);

    // A file system.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"file").unwrap();
    let options = FsBackup {
        tags: typed_tags(),
        ..Default::default()
    };
    let fs = repo
        .backup_paths(&[dir.path().to_path_buf()], &options, &NoProgress)
        .unwrap();
    assert_eq!(fs.entry.snapshot.tags, normal);

    // And a change of tags the same way.
    let mut tags = normal.clone();
    let change = TagChange {
        add: vec![" monthly ".into(), String::new()],
        remove: vec!["daily ".into()],
        set: None,
    };
    assert!(change.apply(&mut tags));
    assert_eq!(tags, ["monthly", "weekly"]);
}
