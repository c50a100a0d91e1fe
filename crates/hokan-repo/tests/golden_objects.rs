//! Golden pins of the repository objects the golden repositories do not
//! hold: the config of an immutable repository (config object version 3,
//! docs/FORMAT.md §10a) and every lock object (§11): prune and writer
//! locks, deletion markers, damage records and releases.
//!
//! Each object is committed under `tests/golden/objects/`, sealed under the
//! golden key. Both ways are checked: what the library writes for a value
//! (through a real repository, in the version it picks) is exactly the
//! plaintext written out here by hand from FORMAT.md, and the committed
//! bytes open to that plaintext and decode to the value. `HOKAN_BLESS=1`
//! writes a missing object (never an existing one: a committed object is a
//! promise). `HOKAN_FUZZ_SEEDS=<dir>` also writes each object and its
//! plaintext (behind the plain header) as seeds for the fuzz targets.

mod common;

use std::path::PathBuf;

use common::{memory_store, options};
use hokan_core::sample::golden_key;
use hokan_core::{BlobType, FormatVersion, Id, MasterKey, PackId, PackedBlob};
use hokan_repo::config::{ConfigV1, Immutable};
use hokan_repo::conformance::test_init_options;
use hokan_repo::index_file::IndexedPack;
use hokan_repo::locks::{LockObject, MarkedPack};
use hokan_repo::object::{self, Kind};
use hokan_repo::{Config, InitOptions, Repository, layout};

/// Postcard, written out by hand (docs/FORMAT.md §7).
#[derive(Default)]
struct Wire(Vec<u8>);

impl Wire {
    fn varint(mut self, mut v: u64) -> Self {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
        self
    }
    fn zigzag(self, v: i64) -> Self {
        self.varint(((v << 1) ^ (v >> 63)) as u64)
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, s: &str) -> Self {
        self.varint(s.len() as u64).raw(s.as_bytes())
    }
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/objects")
        .join(name)
}

/// Checks the committed object `name` (writing it when blessing, sealed in
/// `version`): its header is `kind` at `version`, it opens under the
/// golden key to `plain`; returns the plaintext for decoding.
fn pin(name: &str, kind: Kind, version: u16, plain: &[u8]) -> Vec<u8> {
    let key = golden_key();
    let path = golden(name);
    if std::env::var_os("HOKAN_BLESS").is_some() && !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            object::seal_plain(&key, kind, version, plain).unwrap(),
        )
        .unwrap();
    }
    let committed = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with HOKAN_BLESS=1)", path.display()));
    assert_eq!(&committed[..7], &object::header(kind, version), "{name}");
    let (v, opened) = object::open_raw(&key, kind, &committed, name).unwrap();
    assert_eq!(v, version);
    assert_eq!(opened, plain, "{name}: the committed plaintext");
    if let Some(dir) = std::env::var_os("HOKAN_FUZZ_SEEDS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), &committed).unwrap();
        let mut unsealed = object::header(kind, version).to_vec();
        unsealed.extend_from_slice(plain);
        std::fs::write(dir.join(format!("{name}.plain")), unsealed).unwrap();
    }
    opened
}

/// The version and plaintext of the object at `path` in `repo`'s store.
fn stored(repo: &Repository, kind: Kind, path: &str) -> (u16, Vec<u8>) {
    let bytes = repo.store().get(path).unwrap();
    object::open_raw(repo.master_key(), kind, &bytes, path).unwrap()
}

/// The version-3 config plaintext (§10a): the version-1 fields, the group
/// settings, then the retention.
fn config_v3_wire(c: &Config) -> Vec<u8> {
    Wire::default()
        .raw(&c.repo_id.0)
        .varint(c.chunk_min.into())
        .varint(c.chunk_avg.into())
        .varint(c.chunk_max.into())
        .zigzag(c.compression.into())
        .varint(c.pack_size.into())
        .zigzag(c.created)
        .varint(c.small_blob.into())
        .varint(c.group_size.into())
        .varint(c.immutable.unwrap().retention_secs)
        .0
}

#[test]
fn config_v3_is_pinned() {
    // What `init` writes for an immutable repository.
    let init = InitOptions {
        immutable: Some(Immutable {
            retention_secs: 7 * 86400,
        }),
        ..test_init_options()
    };
    let repo = Repository::init_store(memory_store("config-v3"), b"pw", init, options()).unwrap();
    let (version, plain) = stored(&repo, Kind::Config, layout::CONFIG);
    assert_eq!(version, 3);
    assert_eq!(plain, config_v3_wire(repo.config()));

    let config = Config {
        format: FormatVersion::V2,
        base: ConfigV1 {
            repo_id: Id([0x42; 32]),
            chunk_min: 512 << 10,
            chunk_avg: 1 << 20,
            chunk_max: 8 << 20,
            compression: 3,
            pack_size: 16 << 20,
            created: 1_700_000_000,
        },
        small_blob: 64 << 10,
        group_size: 512 << 10,
        immutable: Some(Immutable {
            retention_secs: 30 * 86400,
        }),
    };
    let key = golden_key();
    let sealed = config.seal(&key).unwrap();
    let (v, plain) = object::open_raw(&key, Kind::Config, &sealed, "config").unwrap();
    assert_eq!((v, &plain), (3, &config_v3_wire(&config)));
    let committed = pin("config-v3", Kind::Config, 3, &plain);
    assert_eq!(committed, plain);
    let bytes = std::fs::read(golden("config-v3")).unwrap();
    assert_eq!(&bytes[..7], b"HKOB\x01\x03\x00");
    assert_eq!(Config::open(&key, &bytes, "config-v3").unwrap(), config);
}

fn pack(id: u8) -> PackId {
    PackId(Id([id; 32]))
}

/// One lock object of each variant, with every field set, and its
/// plaintext written out from §11.
fn locks() -> Vec<(&'static str, LockObject, Vec<u8>)> {
    let nonce = [0x5a; 16];
    let blobs = vec![
        PackedBlob {
            kind: BlobType::Data,
            id: Id([0xb1; 32]),
            offset: 8,
            length: 1041,
            raw_len: 1000,
        },
        PackedBlob {
            kind: BlobType::Data,
            id: Id([0xb2; 32]),
            offset: 1049,
            length: 300,
            raw_len: 700,
        },
    ];
    let blob_wire = |w: Wire, b: &PackedBlob| {
        w.varint(0)
            .raw(&b.id.0)
            .varint(b.offset.into())
            .varint(b.length.into())
            .varint(b.raw_len.into())
    };
    let mut deletion = Wire::default()
        .varint(1)
        .varint(1)
        .zigzag(1_700_000_000)
        .raw(&pack(0xaa).0.0)
        .varint(0)
        .varint(16_777_300)
        .varint(2);
    for b in &blobs {
        deletion = blob_wire(deletion, b);
    }
    vec![
        (
            "lock-prune",
            LockObject::Prune {
                hostname: "golden-host".into(),
                pid: 4242,
                created: 1_700_000_000,
                nanos: 123_456_789,
                nonce,
            },
            Wire::default()
                .varint(0)
                .str("golden-host")
                .varint(4242)
                .zigzag(1_700_000_000)
                .varint(123_456_789)
                .raw(&nonce)
                .0,
        ),
        (
            "lock-deletion",
            LockObject::Deletion {
                marked: vec![MarkedPack {
                    marked_at: 1_700_000_000,
                    pack: IndexedPack {
                        id: pack(0xaa),
                        kind: BlobType::Data,
                        size: 16_777_300,
                        blobs,
                    },
                }],
            },
            deletion.0,
        ),
        (
            "lock-writer",
            LockObject::Writer {
                hostname: "golden-host".into(),
                pid: 4243,
                started: 1_700_000_000,
                refreshed: 1_700_000_300,
                nonce,
            },
            Wire::default()
                .varint(2)
                .str("golden-host")
                .varint(4243)
                .zigzag(1_700_000_000)
                .zigzag(1_700_000_300)
                .raw(&nonce)
                .0,
        ),
        (
            "lock-damaged",
            LockObject::Damaged {
                found_at: 1_700_000_100,
                blobs: vec![(pack(0xaa), Id([0xb1; 32])), (pack(0xcc), Id([0xd2; 32]))],
            },
            Wire::default()
                .varint(3)
                .zigzag(1_700_000_100)
                .varint(2)
                .raw(&[0xaa; 32])
                .raw(&[0xb1; 32])
                .raw(&[0xcc; 32])
                .raw(&[0xd2; 32])
                .0,
        ),
        (
            "lock-released",
            LockObject::Released {
                released_at: 1_700_000_400,
                locks: vec![Id([1; 32]), Id([2; 32])],
            },
            Wire::default()
                .varint(4)
                .zigzag(1_700_000_400)
                .varint(2)
                .raw(&[1; 32])
                .raw(&[2; 32])
                .0,
        ),
    ]
}

/// The lock object version each variant is written in by a format-1, a
/// format-2 and an immutable repository.
fn versions(name: &str) -> [u16; 3] {
    match name {
        "lock-prune" | "lock-deletion" => [1, 2, 2],
        "lock-writer" | "lock-damaged" => [2, 2, 2],
        "lock-released" => [3, 3, 3],
        _ => unreachable!(),
    }
}

#[test]
fn lock_objects_are_pinned() {
    let repos: Vec<Repository> = [
        (FormatVersion::V1, None),
        (FormatVersion::V2, None),
        (
            FormatVersion::V2,
            Some(Immutable {
                retention_secs: 86400,
            }),
        ),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (format, immutable))| {
        let init = InitOptions {
            format,
            immutable,
            ..test_init_options()
        };
        Repository::init_store(memory_store(&format!("locks-{i}")), b"pw", init, options()).unwrap()
    })
    .collect();
    let key: MasterKey = golden_key();
    for (name, lock, wire) in locks() {
        // What the library writes, in each kind of repository.
        for (repo, want) in repos.iter().zip(versions(name)) {
            let id = repo.save_lock_for_golden_test(&lock).unwrap();
            let (version, plain) = stored(repo, Kind::Lock, &layout::object(Kind::Lock, &id));
            assert_eq!(
                (version, &plain),
                (want, &wire),
                "{name} in {}",
                repo.format()
            );
            let listed = repo.locks().unwrap();
            assert!(listed.objects.contains(&(id, lock.clone())), "{name}");
        }
        // What the committed bytes hold, as a format-2 repository wrote them.
        let version = versions(name)[1];
        let plain = pin(name, Kind::Lock, version, &wire);
        let bytes = std::fs::read(golden(name)).unwrap();
        let back: LockObject = object::open(&key, Kind::Lock, &bytes, name).unwrap();
        assert_eq!(back, lock, "{name}");
        assert_eq!(object::decode::<LockObject>(&plain, name).unwrap(), lock);
    }
}
