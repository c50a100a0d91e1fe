//! Every repository ever written stays readable and writable: version 1
//! (committed under tests/golden/repo-v1) and version 2 (tests/golden/
//! repo-v2), every object kind in each. If a test here fails, the change
//! broke existing repositories; see docs/FORMAT.md.
//!
//! `HOKAN_BLESS=1` writes a missing golden repository (never an existing
//! one): a committed repository is a promise.
//!
//! The objects of later encodings that these repositories do not hold are
//! pinned beside them: config version 3 and lock objects in
//! `tests/golden_objects.rs`, the etcd and Kubernetes snapshot trees in
//! hokan-etcd's and hokan-k8s's `tests/golden.rs`.

use std::path::{Path, PathBuf};

use hokan_core::sample::{Kind, generate};
use hokan_core::{Attr, AttrValue, FormatVersion, Node, NodeKind};
use hokan_repo::conformance::test_init_options;
use hokan_repo::{
    CacheMode, InitOptions, KdfParams, OpenOptions, Repository, SnapshotSpec, SourceKind, Staged,
};

const PASSWORD_V1: &[u8] = b"golden repository v1";
const PASSWORD_V2: &[u8] = b"golden repository v2";

fn content() -> Vec<u8> {
    let mut v = generate(Kind::Text, 200_000, 21);
    v.extend_from_slice(&generate(Kind::Random, 50_000, 22));
    v
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn options() -> OpenOptions {
    OpenOptions {
        cache: CacheMode::Off,
        ..Default::default()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir`, relative, with its first bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn v1_init() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        format: FormatVersion::V1,
        ..Default::default()
    }
}

#[test]
fn repository_v1_stays_readable() {
    let dir = golden("repo-v1");
    let location = dir.to_str().unwrap();
    if std::env::var_os("HOKAN_BLESS").is_some() && !dir.exists() {
        Repository::init(location, PASSWORD_V1, v1_init(), options()).unwrap();
        let mut repo = Repository::open(location, PASSWORD_V1, options())
            .unwrap()
            .load_index()
            .unwrap();
        let spec = SnapshotSpec {
            tags: vec!["golden".into()],
            labels: vec![("format".into(), "1".into())],
            ..Default::default()
        };
        repo.backup_stream(&content()[..], "golden.bin", spec)
            .unwrap();
    }
    let repo = Repository::open(location, PASSWORD_V1, options()).unwrap();
    assert_eq!(repo.format(), FormatVersion::V1);
    assert_eq!(repo.config().chunk_avg, 512 << 10);
    let snaps = repo.snapshots().unwrap();
    assert_eq!(snaps.len(), 1);
    let s = &snaps[0].snapshot;
    assert_eq!(s.paths, vec!["golden.bin".to_string()]);
    assert_eq!(s.tags, vec!["golden".to_string()]);
    assert_eq!(s.label("format"), Some("1"));
    assert_eq!(s.source, SourceKind::STREAM);
    assert_eq!(repo.keys().unwrap().len(), 1);
    let repo = repo.load_index().unwrap();
    let mut out = Vec::new();
    repo.dump(s, "", &mut out).unwrap();
    assert!(
        out == content(),
        "the golden snapshot restores to its content"
    );
}

/// A version-1 repository takes new backups in version-1 encodings, so a
/// release that reads only version 1 still reads it; object sources are
/// refused with a clear error until the repository is upgraded.
#[test]
fn repository_v1_takes_backups_in_version_1() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    copy_dir(&golden("repo-v1"), &repo_dir);
    let before = files(&repo_dir);
    let location = repo_dir.to_str().unwrap();
    let tree = work.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("small.txt"), b"a small file").unwrap();
    std::fs::write(tree.join("sub/big.bin"), generate(Kind::Text, 900_000, 5)).unwrap();
    let mut repo = Repository::open(location, PASSWORD_V1, options())
        .unwrap()
        .load_index()
        .unwrap();
    let fs = repo
        .backup_paths(
            std::slice::from_ref(&tree),
            &Default::default(),
            &hokan_core::fs::NoProgress,
        )
        .unwrap();
    let stream = repo
        .backup_stream(&b"a second stream"[..], "second.bin", Default::default())
        .unwrap();
    let objects = repo.backup(
        SnapshotSpec::new(SourceKind::K8S),
        |s| -> hokan_repo::Result<_> {
            let content = s.store_bytes(b"{}")?;
            let node = Node::object("cm.json", content, Vec::new());
            Ok((Staged::new(s.store_tree(vec![node])?), ()))
        },
    );
    let e = objects.unwrap_err();
    assert!(e.to_string().contains("format 2"), "{e}");

    // Everything written is version 1: no object of a newer format.
    let after = files(&repo_dir);
    assert!(after.len() > before.len());
    for (name, bytes) in after.iter().filter(|f| !before.contains(f)) {
        if name.starts_with("data/") {
            assert_eq!(&bytes[..8], b"HKPACK\x01\x00", "{name}");
        } else if !name.starts_with("locks/") {
            assert_eq!(&bytes[5..7], &[1, 0], "{name} is a version-1 object");
        }
    }
    let repo = Repository::open(location, PASSWORD_V1, options())
        .unwrap()
        .load_index()
        .unwrap();
    assert_eq!(repo.format(), FormatVersion::V1);
    let restored = work.path().join("restored");
    repo.restore(
        &fs.entry.snapshot,
        &tree.to_string_lossy(),
        &restored,
        Default::default(),
        &hokan_core::fs::NoProgress,
    )
    .unwrap();
    assert_eq!(
        std::fs::read(restored.join("small.txt")).unwrap(),
        b"a small file"
    );
    let mut out = Vec::new();
    repo.dump(&stream.snapshot, "", &mut out).unwrap();
    assert_eq!(out, b"a second stream");
    let old = &repo.snapshots().unwrap()[0];
    let mut out = Vec::new();
    repo.dump(&old.snapshot, "", &mut out).unwrap();
    assert!(out == content());
}

/// Upgrading rewrites only the config; old data stays readable and new
/// data uses version 2.
#[test]
fn repository_v1_upgrades_to_version_2() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    copy_dir(&golden("repo-v1"), &repo_dir);
    let before = files(&repo_dir);
    let location = repo_dir.to_str().unwrap();
    let mut repo = Repository::open(location, PASSWORD_V1, options()).unwrap();
    assert_eq!(repo.upgrade().unwrap(), FormatVersion::V1);
    let changed: Vec<_> = files(&repo_dir)
        .into_iter()
        .filter(|f| !before.contains(f))
        .map(|f| f.0)
        .collect();
    assert_eq!(changed, ["config"]);
    let mut repo = Repository::open(location, PASSWORD_V1, options())
        .unwrap()
        .load_index()
        .unwrap();
    assert_eq!(repo.format(), FormatVersion::V2);
    let saved = repo
        .backup(
            SnapshotSpec::new(SourceKind::K8S),
            |s| -> hokan_repo::Result<_> {
                let content = s.store_bytes(b"{\"kind\":\"ConfigMap\"}")?;
                let node = Node::object("cm.json", content, Vec::new());
                Ok((Staged::new(s.store_tree(vec![node])?), ()))
            },
        )
        .unwrap();
    let mut out = Vec::new();
    repo.dump(&saved.entry.snapshot, "cm.json", &mut out)
        .unwrap();
    assert_eq!(out, b"{\"kind\":\"ConfigMap\"}");
    let old = &repo.snapshots().unwrap()[0];
    let mut out = Vec::new();
    repo.dump(&old.snapshot, "", &mut out).unwrap();
    assert!(out == content());
}

/// The objects of the version-2 golden repository: a stream, a file tree
/// with small files (groups) and a sparse file (holes), and objects with
/// typed attributes. The objects' snapshot is built by hand through the
/// generic session and only labelled `k8s`: flat `default/cm-N.json` paths
/// and an integer `resourceVersion` pin the tree encoding of object nodes
/// and typed attributes, not what the Kubernetes source writes (its paths
/// and string attributes are pinned by hokan-k8s's `tests/golden.rs`).
fn v2_tree(root: &Path) {
    std::fs::create_dir_all(root.join("src")).unwrap();
    for i in 0..40u64 {
        let text = generate(Kind::Text, 3_000 + i as usize * 97, 100 + i);
        std::fs::write(root.join(format!("src/file{i:02}.txt")), text).unwrap();
    }
    let sparse = std::fs::File::create(root.join("sparse.img")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    sparse
        .write_all_at(&generate(Kind::Random, 4096, 7), 1 << 20)
        .unwrap();
}

fn v2_objects() -> Vec<(String, Vec<u8>, i64)> {
    (0..30)
        .map(|i| {
            let body = format!("{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"cm-{i}\"}}}}");
            (format!("cm-{i}.json"), body.into_bytes(), 1000 + i)
        })
        .collect()
}

#[test]
fn repository_v2_stays_readable() {
    let dir = golden("repo-v2");
    let location = dir.to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    v2_tree(&tree);
    if std::env::var_os("HOKAN_BLESS").is_some() && !dir.exists() {
        let init = InitOptions {
            format: FormatVersion::V2,
            ..test_init_options()
        };
        Repository::init(location, PASSWORD_V2, init, options()).unwrap();
        let mut repo = Repository::open(location, PASSWORD_V2, options())
            .unwrap()
            .load_index()
            .unwrap();
        repo.backup_stream(&content()[..], "golden.bin", Default::default())
            .unwrap();
        let fs = hokan_repo::FsBackup {
            hostname: Some("golden".into()),
            ..Default::default()
        };
        repo.backup_paths(
            std::slice::from_ref(&tree),
            &fs,
            &hokan_core::fs::NoProgress,
        )
        .unwrap();
        let spec = SnapshotSpec {
            identity: "golden-cluster".into(),
            labels: vec![("format".into(), "2".into())],
            ..SnapshotSpec::new(SourceKind::K8S)
        };
        repo.backup(spec, |s| -> hokan_repo::Result<_> {
            let mut nodes = Vec::new();
            for (name, body, rv) in v2_objects() {
                let attrs = vec![
                    Attr {
                        key: "kind".into(),
                        value: AttrValue::Str("ConfigMap".into()),
                    },
                    Attr {
                        key: "resourceVersion".into(),
                        value: AttrValue::Int(rv),
                    },
                ];
                nodes.push(Node::object(name, s.store_bytes(&body)?, attrs));
            }
            let ns = s.store_tree(nodes)?;
            let mut staged = Staged::new(s.store_tree(vec![Node::dir("default", ns)])?);
            staged.counts = vec![("objects".into(), 30)];
            Ok((staged, ()))
        })
        .unwrap();
    }
    let repo = Repository::open(location, PASSWORD_V2, options())
        .unwrap()
        .load_index()
        .unwrap();
    assert_eq!(repo.format(), FormatVersion::V2);
    let snaps = repo.snapshots().unwrap();
    assert_eq!(snaps.len(), 3);
    let by_kind = |k: &SourceKind| snaps.iter().find(|e| e.snapshot.source == *k).unwrap();
    let mut out = Vec::new();
    repo.dump(&by_kind(&SourceKind::STREAM).snapshot, "", &mut out)
        .unwrap();
    assert!(out == content());

    let fs = &by_kind(&SourceKind::FS).snapshot;
    let restored = work.path().join("restored");
    // The snapshot recorded the directory it was blessed from.
    let blessed_at = &fs.paths[0];
    repo.restore(
        fs,
        blessed_at,
        &restored,
        Default::default(),
        &hokan_core::fs::NoProgress,
    )
    .unwrap();
    for i in 0..40u64 {
        let name = format!("src/file{i:02}.txt");
        assert_eq!(
            std::fs::read(restored.join(&name)).unwrap(),
            std::fs::read(tree.join(&name)).unwrap()
        );
    }
    let img = repo.node(fs, &format!("{blessed_at}/sparse.img")).unwrap();
    assert_eq!(img.size, 8 << 20);
    assert!(
        img.content.iter().any(|c| c.is_hole()),
        "holes are stored as holes"
    );

    let k8s = &by_kind(&SourceKind::K8S).snapshot;
    assert_eq!(k8s.identity, "golden-cluster");
    assert_eq!(k8s.summary.count("objects"), 30);
    for (name, body, rv) in v2_objects() {
        let node = repo.node(k8s, &format!("default/{name}")).unwrap();
        assert_eq!(node.kind, NodeKind::Object);
        assert_eq!(node.attr("resourceVersion"), Some(&AttrValue::Int(rv)));
        let mut out = Vec::new();
        repo.dump(k8s, &format!("default/{name}"), &mut out)
            .unwrap();
        assert_eq!(out, body);
    }
    // Small objects were compressed together.
    let packs = repo.pack_files().unwrap();
    let data =
        std::fs::read(dir.join(hokan_repo::layout::pack(packs.keys().next().unwrap()))).unwrap();
    assert_eq!(&data[6..8], &[2, 0]);
}
