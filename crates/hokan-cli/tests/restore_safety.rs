//! Restores that never leave their target, and that cost only what is
//! damaged (issue 22, items 4, 6 and 7), through the `hokan` binary: a
//! directory swapped for a symlink while a restore runs lets nothing out;
//! a truncated pack and a damaged tree lose only the files and the
//! directory they hold; `etcd export` and `etcd restore` write private
//! files and never through a planted symlink.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use hokan_core::sample::{Kind, generate};

/// An outside directory only its owner may enter, as the issue's.
fn outside(dir: &Path) -> PathBuf {
    let out = dir.join("outside");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o700)).unwrap();
    out
}

/// Nothing was written into `outside`, and its mode is still 0700.
fn untouched(outside: &Path) {
    let found: Vec<_> = std::fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        found.is_empty(),
        "{} entries written outside the target, e.g. {:?}",
        found.len(),
        &found[..found.len().min(5)]
    );
    let mode = std::fs::metadata(outside).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o700, "the outside directory's mode changed");
}

/// Item 6: while `restore` runs, a thread replaces the directory it writes
/// into by a symlink to an outside directory, again whenever a directory
/// is back at that name. Nothing may appear outside, and the outside
/// directory's mode must stay 0700 (on the old main, 2,269–2,933 of the
/// 3,000 files were written there, and its mode became 0755).
#[test]
fn a_directory_swapped_for_a_symlink_lets_nothing_out() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let files = src.join("d");
    std::fs::create_dir_all(&files).unwrap();
    for i in 0..3000 {
        std::fs::write(files.join(format!("f{i:04}")), format!("file {i}\n")).unwrap();
    }
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    let cache = dir.path().join("cache");
    init(repo, &cache);
    let mut c = hokan(repo, &cache);
    c.args(["backup"]).arg(&src);
    ok(&run(c));
    let outside = outside(dir.path());

    for round in 0..3 {
        let target = dir.path().join(format!("target-{round}"));
        let mut c = hokan(repo, &cache);
        c.arg("restore")
            .arg(format!("latest:{}", src.display()))
            .arg("--target")
            .arg(&target)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (stop, outside, target) = (stop.clone(), outside.clone(), target.clone());
            std::thread::spawn(move || {
                let victim = target.join("d");
                let mut swaps = 0;
                while !stop.load(Ordering::Relaxed) {
                    match std::fs::symlink_metadata(&victim) {
                        Ok(md) if md.is_dir() => {
                            let aside = target.join(format!("moved-{swaps}"));
                            if std::fs::rename(&victim, &aside).is_ok() {
                                let _ = symlink(&outside, &victim);
                                swaps += 1;
                            }
                        }
                        _ => std::thread::sleep(Duration::from_micros(50)),
                    }
                }
                swaps
            })
        };
        let out = child.wait_with_output().unwrap();
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{err}");
        untouched(&outside);
        if swaps > 0 && out.status.success() {
            // Swapped only after the restore was done with the directory.
            assert!(!err.contains("replaced"), "{err}");
        }
        if err.contains("replaced or removed while the restore ran") {
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.contains(&*target.join("d").to_string_lossy()), "{err}");
        }
    }
}

/// Files of the truncated-pack test: 24 kB each, random, so a pack of
/// about 3 MB holds them all in groups of about 20.
fn small_files(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        std::fs::write(
            dir.join(format!("f{i:03}")),
            generate(Kind::Random, 24_000, 100 + i as u64),
        )
        .unwrap();
    }
}

/// Compares `restored` with `src`: every file there is whole, and every
/// missing one is named on a "not restored" line. Returns (restored,
/// missing).
fn restored_or_named(src: &Path, restored: &Path, err: &str) -> (usize, usize) {
    let named: Vec<&str> = err.lines().filter(|l| l.contains("not restored")).collect();
    let (mut here, mut missing) = (0, 0);
    for f in walk(src) {
        let rel = f.strip_prefix(src).unwrap();
        match std::fs::read(restored.join(rel)) {
            Ok(data) => {
                assert!(data == std::fs::read(&f).unwrap(), "{rel:?} differs");
                here += 1;
            }
            Err(_) => {
                missing += 1;
                assert!(
                    named.iter().any(|l| l.contains(&*rel.to_string_lossy())),
                    "{rel:?} is missing and not named: {err}"
                );
            }
        }
    }
    (here, missing)
}

/// Item 4: a data pack cut to its first half loses the files past the cut;
/// the files in the intact part are restored, the others named, and the
/// restore exits 1 (on the old main: "truncated data/…", 0 files written).
#[test]
fn a_truncated_pack_costs_only_the_files_past_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    small_files(&src, 120);
    let repo = dir.path().join("repo");
    let repo_s = repo.to_str().unwrap();
    let cache = dir.path().join("cache");
    init(repo_s, &cache);
    let mut c = hokan(repo_s, &cache);
    c.args(["backup"]).arg(&src);
    ok(&run(c));
    let mut packs = walk(&repo.join("data"));
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let victim = packs.last().unwrap();
    let len = std::fs::metadata(victim).unwrap().len();
    assert!(
        len > 2_000_000,
        "one data pack holds the files: {len} bytes"
    );
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);

    let target = dir.path().join("out");
    let mut c = hokan(repo_s, &cache);
    c.arg("restore")
        .arg(format!("latest:{}", src.display()))
        .arg("--target")
        .arg(&target);
    let out = run(c);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("could not be restored"), "{err}");
    assert!(err.contains("truncated"), "{err}");
    let (here, missing) = restored_or_named(&src, &target, &err);
    assert!(here > 0, "nothing restored from the intact half: {err}");
    assert!(missing > 0, "the files past the cut cannot be whole");
}

/// The pack ids of one type ("tree" or "data") that the index lists.
fn packs_of(repo: &str, cache: &Path, kind: &str) -> Vec<String> {
    let mut out = Vec::new();
    for file in walk(&Path::new(repo).join("index")) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let mut c = hokan(repo, cache);
        c.args(["cat", "index", &name]);
        let json: serde_json::Value = serde_json::from_str(&ok(&run(c))).unwrap();
        for p in json["packs"].as_array().unwrap() {
            if p["type"] == kind {
                out.push(p["id"].as_str().unwrap().to_string());
            }
        }
    }
    out
}

/// Flips a byte in every 16 of a pack's records (not its header), so
/// every blob in it fails to authenticate.
fn damage_records(pack: &Path) {
    let mut b = std::fs::read(pack).unwrap();
    let n = b.len();
    let header = u32::from_le_bytes(b[n - 8..n - 4].try_into().unwrap()) as usize;
    for i in (8..n - 8 - header).step_by(16) {
        b[i] ^= 0x40;
    }
    std::fs::write(pack, b).unwrap();
}

/// Directory `dir` with 40 files of long names: a tree too big to be
/// carried inside its parent's, so it is stored on its own.
fn wide_dir(dir: &Path, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..40 {
        std::fs::write(
            dir.join(format!("a-file-with-a-rather-long-name-{i:03}.txt")),
            format!("{seed} {i}\n"),
        )
        .unwrap();
    }
}

/// Item 4: a directory whose tree cannot be read (its tree pack damaged)
/// is named by its path in the snapshot and counted as failed; everything
/// else is restored, and the exit code is that of damaged files (on the
/// old main: "corrupted tree group in pack …", 0 files).
#[test]
fn a_damaged_tree_costs_only_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    wide_dir(&src.join("big"), 1);
    wide_dir(&src.join("other"), 2);
    std::fs::write(src.join("top.txt"), "top\n").unwrap();
    let repo = dir.path().join("repo");
    let repo_s = repo.to_str().unwrap();
    let cache = dir.path().join("cache");
    init(repo_s, &cache);
    let mut c = hokan(repo_s, &cache);
    c.args(["backup"]).arg(&src);
    ok(&run(c));
    let first_trees = packs_of(repo_s, &cache, "tree");
    assert!(!first_trees.is_empty());
    // The second backup stores new trees for src and other (changed) and
    // keeps big's tree where the first one stored it.
    std::fs::write(src.join("new.txt"), "new\n").unwrap();
    std::fs::write(src.join("other/changed.txt"), "changed\n").unwrap();
    let mut c = hokan(repo_s, &cache);
    c.args(["backup"]).arg(&src);
    ok(&run(c));
    for id in &first_trees {
        damage_records(&repo.join("data").join(&id[..2]).join(id));
    }

    let target = dir.path().join("out");
    let mut c = hokan(repo_s, &cache);
    c.arg("restore")
        .arg(format!("latest:{}", src.display()))
        .arg("--target")
        .arg(&target);
    let out = run(c);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let big = src.join("big");
    let named: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("directory not restored"))
        .collect();
    assert_eq!(named.len(), 1, "{err}");
    assert!(named[0].contains(&format!("{}:", big.display())), "{err}");
    assert!(err.contains("1 file(s) could not be restored"), "{err}");
    for f in walk(&src).iter().filter(|f| !f.starts_with(&big)) {
        let rel = f.strip_prefix(&src).unwrap();
        let got = std::fs::read(target.join(rel)).unwrap_or_default();
        assert!(got == std::fs::read(f).unwrap(), "{rel:?} not restored");
    }
}

/// Puts `pairs` into the etcd at `url`.
fn put_all(url: &str, pairs: Vec<(String, Vec<u8>)>) {
    hokan_etcd::testing::KvClient::connect(url).put_all(pairs)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/k8s/api-testdata")
            .join(name),
    )
    .unwrap()
}

/// The mode bits of `path` itself (not following a symlink), and whether
/// it is a regular file.
fn file_mode(path: &Path) -> (bool, u32) {
    let md = std::fs::symlink_metadata(path).unwrap();
    (md.is_file(), md.mode() & 0o7777)
}

/// Item 7: `etcd export -o DIR` replaces a symlink planted in place of a
/// directory (`core`) or of a manifest instead of writing through it, and
/// writes manifests 0600; `etcd restore -o FILE` writes the database 0600,
/// as etcdctl does.
#[test]
fn etcd_export_and_restore_write_private_files_through_no_symlink() {
    let Some(etcd) = hokan_etcd::testing::EtcdProcess::start() else {
        return;
    };
    put_all(
        &etcd.url,
        vec![
            (
                "/registry/secrets/prod/db".into(),
                fixture("core.v1.Secret.pb"),
            ),
            (
                "/registry/deployments/prod/web".into(),
                fixture("apps.v1.Deployment.pb"),
            ),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    let cache = dir.path().join("cache");
    init(repo, &cache);
    let mut c = hokan(repo, &cache);
    c.args(["etcd", "backup", "--endpoints", &etcd.url]);
    ok(&run(c));
    let outside = outside(dir.path());
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let secret = export.join("core/secrets/prod/db.json");
    let deployment = export.join("apps/deployments/prod/web.json");

    // A symlink `core` → elsewhere, and one in place of a manifest.
    symlink(&outside, export.join("core")).unwrap();
    std::fs::create_dir_all(deployment.parent().unwrap()).unwrap();
    symlink(outside.join("web.json"), &deployment).unwrap();
    let mut c = hokan(repo, &cache);
    c.args(["etcd", "export", "latest", "-o"]).arg(&export);
    ok(&run(c));
    untouched(&outside);
    assert!(
        std::fs::symlink_metadata(export.join("core"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(file_mode(&secret), (true, 0o600));
    assert_eq!(file_mode(&deployment), (true, 0o600));

    // Again over the first export, a symlink now in place of the Secret.
    std::fs::remove_file(&secret).unwrap();
    symlink(outside.join("db.json"), &secret).unwrap();
    let mut c = hokan(repo, &cache);
    c.args(["etcd", "export", "latest", "-o"]).arg(&export);
    ok(&run(c));
    untouched(&outside);
    assert_eq!(file_mode(&secret), (true, 0o600));

    let db = dir.path().join("restored.db");
    let mut c = hokan(repo, &cache);
    c.args(["etcd", "restore", "latest", "-o"]).arg(&db);
    ok(&run(c));
    assert_eq!(file_mode(&db), (true, 0o600));
}
