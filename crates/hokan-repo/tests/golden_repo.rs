//! A repository written by an earlier build stays readable: every object
//! kind (config, key file, pack, index file, snapshot, tree) in format
//! version 1, committed under tests/golden/repo-v1. If this test fails, the
//! change broke existing repositories; see docs/FORMAT.md.

use std::path::PathBuf;

use hokan_core::sample::{Kind, generate};
use hokan_repo::{CacheMode, InitOptions, KdfParams, OpenOptions, Repository, StreamSnapshot};

const PASSWORD: &[u8] = b"golden repository v1";

fn content() -> Vec<u8> {
    let mut v = generate(Kind::Text, 200_000, 21);
    v.extend_from_slice(&generate(Kind::Random, 50_000, 22));
    v
}

#[test]
fn repository_v1_stays_readable() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/repo-v1");
    let location = dir.to_str().unwrap();
    let options = OpenOptions {
        cache: CacheMode::Off,
        ..Default::default()
    };
    if std::env::var_os("HOKAN_BLESS").is_some() && !dir.exists() {
        let init = InitOptions {
            kdf: KdfParams {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            ..Default::default()
        };
        Repository::init(location, PASSWORD, init, options.clone()).unwrap();
        let mut repo = Repository::open(location, PASSWORD, options.clone())
            .unwrap()
            .load_index()
            .unwrap();
        let tags = StreamSnapshot {
            tags: vec!["golden".into()],
            meta: vec![("format".into(), "1".into())],
            ..Default::default()
        };
        repo.backup_stream(&content()[..], "golden.bin", tags)
            .unwrap();
    }
    let repo = Repository::open(location, PASSWORD, options).unwrap();
    assert_eq!(repo.config().chunk_avg, 512 << 10);
    let snaps = repo.snapshots().unwrap();
    assert_eq!(snaps.len(), 1);
    let s = &snaps[0].snapshot;
    assert_eq!(s.paths, vec!["golden.bin".to_string()]);
    assert_eq!(s.tags, vec!["golden".to_string()]);
    assert_eq!(s.meta("format"), Some("1"));
    assert_eq!(repo.keys().unwrap().len(), 1);
    let repo = repo.load_index().unwrap();
    let mut out = Vec::new();
    repo.restore_stream(s, &mut out).unwrap();
    assert!(
        out == content(),
        "the golden snapshot restores to its content"
    );
}
