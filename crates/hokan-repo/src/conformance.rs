//! A conformance suite every store must pass: the same functions run
//! against `memory://`, a local directory, Garage (S3), Azurite (Azure
//! Blob), a GCS emulator and moto (S3 with Object Lock), each a real server
//! on loopback (see `tests/conformance.rs` and [`Remote`]). Each function takes a fresh, empty
//! location of its own (a unique prefix), so the suite never touches
//! anything else in a shared bucket.
//!
//! The functions panic on failure, like assertions in a test.

use std::collections::BTreeMap;

use bytes::Bytes;

use hokan_core::sample::{Kind as SampleKind, generate};

use crate::{
    Error, InitOptions, KdfParams, OpenOptions, ParentChoice, Repository, SnapshotFilter,
    SnapshotSpec, SourceKind, Store,
};

/// `name` with a random suffix: a fresh location in a shared bucket.
pub fn unique(name: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).expect("the system's random source");
    format!("{name}-{}", hex::encode(b))
}

/// A remote store the suite runs against, each started by its script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remote {
    /// Garage, the S3-compatible server (`scripts/garage.sh`).
    S3,
    /// Azurite, the Azure Blob Storage emulator (`scripts/azurite.sh`).
    Azure,
    /// The GCS emulator (`scripts/gcs-emulator.sh`).
    Gcs,
    /// moto's S3, in a bucket with Object Lock default retention
    /// (`scripts/moto.sh`).
    Moto,
}

impl Remote {
    /// The variable naming the base location, and the one that makes a
    /// missing server a failure.
    fn vars(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Remote::S3 => ("HOKAN_TEST_S3_URL", "HOKAN_REQUIRE_S3", "scripts/garage.sh"),
            Remote::Azure => (
                "HOKAN_TEST_AZURE_URL",
                "HOKAN_REQUIRE_AZURE",
                "scripts/azurite.sh",
            ),
            Remote::Gcs => (
                "HOKAN_TEST_GCS_URL",
                "HOKAN_REQUIRE_GCS",
                "scripts/gcs-emulator.sh",
            ),
            Remote::Moto => (
                "HOKAN_TEST_MOTO_URL",
                "HOKAN_REQUIRE_MOTO",
                "scripts/moto.sh",
            ),
        }
    }

    /// The base location tests run under (set by the script's `env`), or
    /// `None` to skip them; with the `HOKAN_REQUIRE_*` variable at `1`
    /// (CI) a missing server is a failure, not a skip.
    pub fn base(self) -> Option<String> {
        let (url, require, script) = self.vars();
        match std::env::var(url) {
            Ok(u) if !u.is_empty() => Some(u.trim_end_matches('/').to_string()),
            _ => {
                if std::env::var(require).is_ok_and(|v| v == "1") {
                    panic!("{require}=1 but {url} is not set: start {script} and source its env");
                }
                eprintln!("skipping: {url} is not set (see {script})");
                None
            }
        }
    }

    /// A fresh location of its own under the base, for one test.
    pub fn fresh(self, name: &str) -> Option<String> {
        Some(format!("{}/{}", self.base()?, unique(name)))
    }
}

/// The S3 location tests run against (`HOKAN_TEST_S3_URL`, set by
/// `scripts/garage.sh env`), or `None` to skip them; with
/// `HOKAN_REQUIRE_S3=1` (CI) a missing server is a failure, not a skip.
pub fn s3_base() -> Option<String> {
    Remote::S3.base()
}

/// Cheap key stretching: the suite opens repositories dozens of times.
pub fn test_init_options() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        },
        // Small packs, so modest inputs make several.
        pack_size: 1 << 20,
        ..Default::default()
    }
}

/// Options with a private cache directory and quick retries.
pub fn test_open_options(cache: &std::path::Path) -> OpenOptions {
    OpenOptions {
        cache: crate::CacheMode::Dir(cache.to_path_buf()),
        retry: crate::RetryPolicy {
            attempts: 3,
            first_backoff: std::time::Duration::from_millis(50),
        },
        ..Default::default()
    }
}

/// Every node of the tree `root` and its subtrees, one line each in tree
/// order, with what does not depend on the repository's key: path, kind,
/// mode, size, times, the number and total length of its chunks, and its
/// typed attributes. Golden tests of a source's snapshot tree compare it
/// with a committed listing, so a change to what the source writes shows
/// as a readable difference.
pub fn tree_listing(repo: &crate::IndexedRepository, root: &hokan_core::TreeId) -> String {
    fn walk(
        repo: &crate::IndexedRepository,
        id: &hokan_core::TreeId,
        prefix: &str,
        out: &mut String,
    ) {
        use std::fmt::Write;
        let tree = repo.read_tree(id).expect("the tree reads");
        for n in &tree.nodes {
            let path = format!("{prefix}{}", n.name_lossy());
            let _ = write!(
                out,
                "{path} {} mode={:o} size={}",
                n.kind.name(),
                n.mode,
                n.size
            );
            if n.mtime != Default::default() {
                let _ = write!(out, " mtime={}.{:09}", n.mtime.secs, n.mtime.nanos);
            }
            if !n.content.is_empty() {
                let total: u64 = n.content.iter().map(|c| u64::from(c.len)).sum();
                let _ = write!(out, " chunks={}/{total}", n.content.len());
            }
            for a in &n.attrs {
                let _ = write!(out, " {}={:?}", a.key, a.value);
            }
            out.push('\n');
            if let Some(sub) = &n.subtree {
                walk(repo, sub, &format!("{path}/"), out);
            }
        }
    }
    let mut out = String::new();
    walk(repo, root, "", &mut out);
    out
}

/// Every object under a store, with its bytes: for "nothing changed" checks
/// and for scanning what a repository stored.
pub fn dump_store(store: &Store) -> BTreeMap<String, Bytes> {
    let mut out = BTreeMap::new();
    for dir in ["config", "keys", "data", "index", "snapshots", "locks"] {
        if dir == "config" {
            if let Some(b) = store.get_opt("config").expect("reading config") {
                out.insert("config".to_string(), b);
            }
            continue;
        }
        for l in store.list(dir).expect("listing") {
            let path = format!("{dir}/{}", l.name);
            let bytes = store.get(&path).expect("reading a listed object");
            out.insert(path, bytes);
        }
    }
    out
}

/// Basic object operations: put, get, ranges, listing, overwrite, delete.
pub fn store_operations(location: &str) {
    let loc = crate::Location::parse(location).unwrap();
    let store = Store::connect(&loc, true, Default::default()).unwrap();
    assert!(
        store.list("index").unwrap().is_empty(),
        "location must start empty"
    );
    assert_eq!(store.get_opt("index/none").unwrap(), None);
    assert!(matches!(
        store.get("index/none"),
        Err(Error::Missing { .. })
    ));
    assert!(!store.exists("config").unwrap());

    store.put("index/a", Bytes::from_static(b"alpha")).unwrap();
    store.put("index/empty", Bytes::new()).unwrap();
    let big = Bytes::from(generate(SampleKind::Random, 9 << 20, 1));
    store.put("data/00/big", big.clone()).unwrap();
    assert_eq!(store.get("index/a").unwrap(), Bytes::from_static(b"alpha"));
    assert_eq!(store.get("index/empty").unwrap().len(), 0);
    assert_eq!(store.get("data/00/big").unwrap(), big);
    assert!(store.exists("index/a").unwrap());
    assert_eq!(
        store.get_range("data/00/big", 1000..5000).unwrap(),
        big.slice(1000..5000)
    );
    assert!(
        store.get_range("index/a", 2..100).is_err(),
        "a range past the end is an error"
    );
    assert!(matches!(
        store.get_range("data/00/none", 0..1),
        Err(Error::Missing { .. })
    ));

    // Listing: names relative to the directory, nested paths included, sorted.
    let names: Vec<_> = store
        .list("index")
        .unwrap()
        .into_iter()
        .map(|l| (l.name, l.size))
        .collect();
    assert_eq!(names, vec![("a".to_string(), 5), ("empty".to_string(), 0)]);
    let data: Vec<_> = store
        .list("data")
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(data, vec!["00/big".to_string()]);
    assert!(store.list("snapshots").unwrap().is_empty());

    // Overwriting replaces the whole object.
    store
        .put("index/a", Bytes::from_static(b"beta, longer"))
        .unwrap();
    assert_eq!(
        store.get("index/a").unwrap(),
        Bytes::from_static(b"beta, longer")
    );

    let many = store.get_many(
        &["index/a".into(), "index/none".into(), "index/empty".into()],
        4,
    );
    assert_eq!(
        many[0].as_ref().unwrap().as_deref(),
        Some(&b"beta, longer"[..])
    );
    assert!(many[1].as_ref().unwrap().is_none());

    store.delete("index/a").unwrap();
    store.delete("index/a").unwrap(); // deleting what is gone is fine
    assert!(!store.exists("index/a").unwrap());
    store.delete("index/empty").unwrap();
    store.delete("data/00/big").unwrap();
    assert!(store.list("index").unwrap().is_empty());
    assert!(store.list("data").unwrap().is_empty());
}

/// init, open, wrong password, existing and missing repositories.
pub fn repository_lifecycle(location: &str, cache: &std::path::Path) {
    let open = test_open_options(cache);
    assert!(matches!(
        Repository::open(location, b"pw", open.clone()),
        Err(Error::NotARepository { .. })
    ));
    let repo = Repository::init(location, b"pw", test_init_options(), open.clone()).unwrap();
    let before = dump_store(repo.store());
    assert_eq!(before.len(), 2, "config and one key file");

    let e = Repository::init(location, b"pw", test_init_options(), open.clone()).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    let e = Repository::open(location, b"not the password", open.clone()).unwrap_err();
    assert!(matches!(e, Error::WrongPassword { keys: 1, .. }), "{e}");
    assert!(e.to_string().contains("wrong password"), "{e}");
    assert_eq!(
        dump_store(repo.store()),
        before,
        "failed operations change nothing"
    );

    let again = Repository::open(location, b"pw", open).unwrap();
    assert_eq!(again.config(), repo.config());
    assert_eq!(again.key_id(), repo.key_id());
}

/// Key files: add, list, open with each, remove, change password.
pub fn key_management(location: &str, cache: &std::path::Path) {
    let open = test_open_options(cache);
    let kdf = test_init_options().kdf;
    let mut repo = Repository::init(location, b"first", test_init_options(), open.clone()).unwrap();
    let second = repo.add_key(b"second", kdf, "ops laptop").unwrap();
    let keys = repo.keys().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|k| k.current).count(), 1);
    assert!(
        keys.iter()
            .any(|k| k.id == second && k.info.label == "ops laptop")
    );
    // Both passwords open the same repository.
    let via_second = Repository::open(location, b"second", open.clone()).unwrap();
    assert_eq!(via_second.config(), repo.config());
    assert_eq!(via_second.key_id(), &second);

    // The key in use and unknown keys cannot be removed.
    assert!(matches!(
        repo.remove_key(&repo.key_id().to_hex()),
        Err(Error::KeyInUse { .. })
    ));
    assert!(matches!(
        repo.remove_key("ffffffffffff"),
        Err(Error::KeyNotFound { .. })
    ));
    assert_eq!(repo.remove_key(&second.short()).unwrap(), second);
    assert!(matches!(
        Repository::open(location, b"second", open.clone()),
        Err(Error::WrongPassword { .. })
    ));
    // The last key cannot be removed.
    let only = *repo.key_id();
    assert!(matches!(
        repo.remove_key(&only.to_hex()),
        Err(Error::Key(_))
    ));

    let new_id = repo.change_password(b"third", kdf).unwrap();
    assert_ne!(new_id, only);
    assert!(matches!(
        Repository::open(location, b"first", open.clone()),
        Err(Error::WrongPassword { .. })
    ));
    let reopened = Repository::open(location, b"third", open).unwrap();
    assert_eq!(reopened.key_id(), &new_id);
    assert_eq!(reopened.keys().unwrap().len(), 1);
}

/// Stream backups, snapshot listing and lookup, index cache, restore.
pub fn snapshots_and_data(location: &str, cache: &std::path::Path) {
    let open = test_open_options(cache);
    Repository::init(location, b"pw", test_init_options(), open.clone()).unwrap();
    let mut repo = Repository::open(location, b"pw", open.clone())
        .unwrap()
        .load_index()
        .unwrap();
    let first = generate(SampleKind::Text, 5 << 20, 1);
    let mut second = first.clone();
    second.extend_from_slice(&generate(SampleKind::Random, 2 << 20, 2));

    let tags = SnapshotSpec {
        tags: vec!["nightly".into(), "db".into()],
        labels: vec![("database".into(), "pods".into())],
        ..Default::default()
    };
    let s1 = repo
        .backup_stream(&first[..], "pods.sql", tags.clone())
        .unwrap();
    assert!(s1.snapshot.summary.packs_added >= 1);
    let s2 = repo
        .backup_stream(
            &second[..],
            "pods.sql",
            SnapshotSpec {
                parent: ParentChoice::Snapshot(s1.id),
                ..tags
            },
        )
        .unwrap();
    // The second backup stored only what was new: every chunk of the first
    // stream but its last (whose end moved) is reused. Boundaries depend on
    // the repository's random chunker seed, so the bound is computed.
    let first_tree = repo.read_tree(&s1.snapshot.tree).unwrap();
    let last_chunk = first_tree.nodes[0].content.last().unwrap().len as u64;
    let appended = (second.len() - first.len()) as u64;
    assert!(
        s2.snapshot.summary.bytes_added <= last_chunk + appended + 4096,
        "added {} bytes; the last chunk of the first stream is {last_chunk}, {appended} were appended",
        s2.snapshot.summary.bytes_added
    );
    let s3 = repo
        .backup_stream(&b"other"[..], "other.bin", SnapshotSpec::default())
        .unwrap();

    // A fresh open (cold, then warm cache) sees all three.
    for _ in 0..2 {
        let r = Repository::open(location, b"pw", open.clone()).unwrap();
        let all = r.snapshots().unwrap();
        assert_eq!(
            all.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![s1.id, s2.id, s3.id]
        );
        assert_eq!(
            all[0].snapshot.tags,
            vec!["db".to_string(), "nightly".to_string()]
        );
        assert_eq!(all[0].snapshot.label("database"), Some("pods"));
        assert_eq!(all[1].snapshot.parent, Some(s1.id));
        assert_eq!(all[2].snapshot.source, SourceKind::STREAM);
        let latest_db = r
            .find_snapshot(
                "latest",
                &SnapshotFilter {
                    tags: vec!["db".into()],
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(latest_db.id, s2.id);
        assert_eq!(
            r.find_snapshot(&s1.id.to_hex()[..10], &Default::default())
                .unwrap()
                .id,
            s1.id
        );
        let e = r.find_snapshot(
            "latest",
            &SnapshotFilter {
                hosts: vec!["nohost".into()],
                ..Default::default()
            },
        );
        assert!(matches!(e, Err(Error::SnapshotNotFound { .. })));

        let r = r.load_index().unwrap();
        for (s, data) in [(&s1, &first), (&s2, &second)] {
            let mut out = Vec::new();
            r.dump(&s.snapshot, "", &mut out).unwrap();
            assert!(out == **data, "snapshot {} restores bit for bit", s.id);
        }
    }
    // The cache holds the index files and snapshots, still encrypted.
    let cached: Vec<_> = walk(cache);
    assert!(cached.iter().any(|p| p.contains("/index/")), "{cached:?}");
    assert!(
        cached.iter().any(|p| p.contains("/snapshots/")),
        "{cached:?}"
    );
}

/// Two writers in one process, on separate handles, at the same time.
pub fn concurrent_writers(location: &str, cache: &std::path::Path) {
    let open = test_open_options(cache);
    Repository::init(location, b"pw", test_init_options(), open.clone()).unwrap();
    let shared = generate(SampleKind::Random, 3 << 20, 9);
    let inputs: Vec<Vec<u8>> = (0..2u64)
        .map(|i| {
            let mut v = shared.clone();
            v.extend_from_slice(&generate(SampleKind::Text, 3 << 20, 10 + i));
            v
        })
        .collect();
    let ids: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = inputs
            .iter()
            .enumerate()
            .map(|(i, data)| {
                let open = open.clone();
                s.spawn(move || {
                    let mut repo = Repository::open(location, b"pw", open)
                        .unwrap()
                        .load_index()
                        .unwrap();
                    repo.backup_stream(&data[..], &format!("writer-{i}"), SnapshotSpec::default())
                        .unwrap()
                        .id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let repo = Repository::open(location, b"pw", open)
        .unwrap()
        .load_index()
        .unwrap();
    for (id, data) in ids.iter().zip(&inputs) {
        let s = repo
            .find_snapshot(&id.to_hex(), &Default::default())
            .unwrap();
        let mut out = Vec::new();
        repo.dump(&s.snapshot, "", &mut out).unwrap();
        assert!(out == *data, "writer snapshot {id} restores bit for bit");
    }
}

/// Damaged and missing objects give their own errors.
pub fn damage_is_reported(location: &str, cache: &std::path::Path) {
    let open = OpenOptions {
        cache: crate::CacheMode::Off,
        ..test_open_options(cache)
    };
    Repository::init(location, b"pw", test_init_options(), open.clone()).unwrap();
    let mut repo = Repository::open(location, b"pw", open.clone())
        .unwrap()
        .load_index()
        .unwrap();
    let data = generate(SampleKind::Random, 3 << 20, 4);
    let saved = repo
        .backup_stream(&data[..], "x", SnapshotSpec::default())
        .unwrap();
    let store = repo.store().clone();
    let objects = dump_store(&store);

    // A flipped bit in every pack: restore names the damage.
    let packs: Vec<_> = objects
        .keys()
        .filter(|k| k.starts_with("data/"))
        .cloned()
        .collect();
    for p in &packs {
        let mut b = objects[p].to_vec();
        b[100] ^= 0x10;
        store.put(p, Bytes::from(b)).unwrap();
    }
    let e = repo.dump(&saved.snapshot, "", &mut Vec::new()).unwrap_err();
    assert!(
        matches!(e, Error::Core(hokan_core::Error::Corrupted { .. })),
        "{e}"
    );
    // A pack gone.
    store.delete(&packs[0]).unwrap();
    let e = repo.dump(&saved.snapshot, "", &mut Vec::new()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Core(hokan_core::Error::MissingPack { .. })
                | Error::Core(hokan_core::Error::Corrupted { .. })
        ),
        "{e}"
    );
    for p in &packs {
        store.put(p, objects[p].clone()).unwrap();
    }
    let mut out = Vec::new();
    repo.dump(&saved.snapshot, "", &mut out).unwrap();
    assert!(out == data);

    // A damaged snapshot, index file and config.
    let snap = objects
        .keys()
        .find(|k| k.starts_with("snapshots/"))
        .unwrap()
        .clone();
    let mut b = objects[&snap].to_vec();
    let last = b.len() - 1;
    b[last] ^= 1;
    store.put(&snap, Bytes::from(b)).unwrap();
    // It is named, and does not hide the others (there are none here).
    let reopened = Repository::open(location, b"pw", open.clone()).unwrap();
    let list = reopened.snapshot_list().unwrap();
    assert!(list.entries.is_empty());
    assert_eq!(list.unreadable.len(), 1);
    assert!(snap.ends_with(&list.unreadable[0].id.to_hex()));
    let e = reopened
        .find_snapshot(&saved.id.to_hex()[..8], &Default::default())
        .unwrap_err();
    assert!(matches!(e, Error::Corrupted { .. }), "{e}");
    store.put(&snap, objects[&snap].clone()).unwrap();

    let ix = objects
        .keys()
        .find(|k| k.starts_with("index/"))
        .unwrap()
        .clone();
    let mut b = objects[&ix].to_vec();
    b[20] ^= 1;
    store.put(&ix, Bytes::from(b)).unwrap();
    // A damaged index file is reported, not fatal: its packs look
    // unindexed, so the data reads as missing until the index is repaired.
    let loaded = Repository::open(location, b"pw", open.clone())
        .unwrap()
        .load_index()
        .unwrap();
    assert_eq!(loaded.problems().len(), 1, "{:?}", loaded.problems());
    assert!(ix.ends_with(&loaded.problems()[0].id.to_hex()));
    assert!(
        loaded.problems()[0]
            .reason
            .contains("does not match its name")
    );
    store.put(&ix, objects[&ix].clone()).unwrap();

    let mut b = objects["config"].to_vec();
    b[30] ^= 1;
    store.put("config", Bytes::from(b)).unwrap();
    let e = Repository::open(location, b"pw", open.clone()).unwrap_err();
    assert!(matches!(e, Error::ConfigDamaged { .. }), "{e}");
    let mut b = objects["config"].to_vec();
    b[5] = 9; // a newer config version
    store.put("config", Bytes::from(b)).unwrap();
    let e = Repository::open(location, b"pw", open.clone()).unwrap_err();
    assert!(matches!(e, Error::NewerVersion { found: 9, .. }), "{e}");
    store.put("config", objects["config"].clone()).unwrap();
    Repository::open(location, b"pw", open)
        .unwrap()
        .load_index()
        .unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}
