//! `hokan init --immutable` through the binary: on a local directory, on
//! moto's bucket with S3 Object Lock default retention (one day, GOVERNANCE;
//! `HOKAN_TEST_MOTO_URL`, `HOKAN_REQUIRE_MOTO=1` makes a skip fail), and a
//! probe of whether moto and Garage honour a conditional create
//! (`If-None-Match: *`).

mod common;

use std::path::Path;

use common::*;
use hokan_core::sample::{Kind, generate};
use hokan_repo::conformance::{Remote, dump_store, unique};
use hokan_repo::{Error, Location, RetryPolicy, Store};

/// The summary `--json` prints last.
fn last_json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.lines().last().unwrap_or_default()).unwrap()
}

fn tree(root: &Path, round: u64) {
    for i in 0..40u64 {
        let p = root.join(format!("d{}/f{i}", i % 5));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let seed = if i % 4 == 0 { 1000 * round + i } else { i };
        std::fs::write(&p, generate(Kind::Random, 30_000, seed)).unwrap();
    }
}

fn init_immutable(repo: &str, cache: &Path, retention: &str) -> serde_json::Value {
    let mut c = hokan(repo, cache);
    c.args([
        "--json",
        "init",
        "--kdf-memory",
        "1M",
        "--kdf-iterations",
        "1",
        "--pack-size",
        "4M",
        "--immutable",
        "--lock-retention",
        retention,
    ]);
    last_json(&ok(&run(c)))
}

fn hokan_json(repo: &str, cache: &Path, args: &[&str]) -> serde_json::Value {
    let mut c = hokan(repo, cache);
    c.arg("--json").args(args);
    last_json(&ok(&run(c)))
}

/// Two backups, forget, tag, prune, check, restore; the lock (one day)
/// keeps everything, and every command says so. Nothing stored before is
/// changed or removed.
fn flow(repo: &str, raw: Option<&Store>) {
    let dir = tempfile::tempdir().unwrap();
    let (src, cache) = (dir.path().join("src"), dir.path().join("cache"));
    let init = init_immutable(repo, &cache, "1d");
    assert_eq!(init["immutable"], true);
    assert_eq!(init["lock_retention_seconds"], 86400);
    for round in 0..2 {
        tree(&src, round);
        let mut c = hokan(repo, &cache);
        c.arg("backup").arg(&src);
        ok(&run(c));
    }
    let before = raw.map(dump_store);
    let forget = hokan_json(repo, &cache, &["forget", "--keep-last", "1"]);
    let removed = forget[0]["remove"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{forget}");
    assert_eq!(removed[0]["kept_by_lock"], true, "{forget}");
    let until = removed[0]["deletable_from"].as_i64().unwrap();
    assert!(until > chrono::Utc::now().timestamp() + 86000, "{forget}");
    // The text summary says it too.
    let mut c = hokan(repo, &cache);
    c.args(["forget", "--keep-last", "1"]);
    let text = ok(&run(c));
    assert!(text.contains("kept by the object lock"), "{text}");
    let tag = hokan_json(repo, &cache, &["tag", "--add", "weekly", "latest"]);
    assert_eq!(tag["snapshots"][0]["old_kept_by_lock"], true, "{tag}");
    // Two backups, one forgotten, one retagged: all three objects stay.
    assert_eq!(snapshots(repo, &cache).len(), 3);

    let prune = hokan_json(repo, &cache, &["prune", "--grace", "0s"]);
    assert_eq!(prune["packs_deleted"], 0, "{prune}");
    let kept = &prune["kept_by_lock"];
    assert!(kept["objects"].as_u64().unwrap() > 0, "{prune}");
    assert!(kept["earliest_deletable"].as_i64().unwrap() > until - 3600);
    let mut c = hokan(repo, &cache);
    c.args(["prune", "--grace", "0s"]);
    let text = ok(&run(c));
    assert!(
        text.contains("immutable repository:") && text.contains("kept by the object lock"),
        "{text}"
    );

    if let (Some(store), Some(before)) = (raw, before) {
        let after = dump_store(store);
        for (path, bytes) in &before {
            assert_eq!(after.get(path), Some(bytes), "{path} changed or vanished");
        }
    }
    let mut c = hokan(repo, &dir.path().join("cache-2"));
    c.args(["check", "--read-data"]);
    ok(&run(c));
    let target = dir.path().join("restored");
    let mut c = hokan(repo, &cache);
    c.args(["restore", "latest", "--target"]).arg(&target);
    ok(&run(c));
    let diff = std::process::Command::new("diff")
        .arg("-r")
        .arg(&src)
        .arg(target.join(src.strip_prefix("/").unwrap()))
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
}

#[test]
fn immutable_flow_local() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let raw = Store::connect(&Location::Local(repo.clone()), true, RetryPolicy::default()).unwrap();
    flow(repo.to_str().unwrap(), Some(&raw));
}

#[test]
fn immutable_flow_moto_object_lock() {
    let Some(repo) = Remote::Moto.fresh("immutable") else {
        return;
    };
    let raw = Store::connect(
        &Location::parse(&repo).unwrap(),
        false,
        RetryPolicy::default(),
    )
    .unwrap();
    flow(&repo, Some(&raw));
}

/// A second conditional create of the same name: a server that honours
/// `If-None-Match: *` answers 412 and the first object stays; one that
/// ignores the header overwrites it. Which one it is, is printed; on moto
/// (the Object Lock stand-in) the condition must hold.
fn probe_conditional_create(base: &str, must_hold: bool) {
    let loc = Location::parse(&format!("{base}/{}", unique("if-none-match"))).unwrap();
    let mut store = Store::connect(&loc, false, RetryPolicy::default()).unwrap();
    store.set_immutable(Some(86400));
    store.put("probe/obj", "first".into()).unwrap();
    let second = store.put("probe/obj", "second, longer".into());
    let now = store.get("probe/obj").unwrap();
    match second {
        Err(e @ Error::Immutable { .. }) => {
            assert_eq!(&now[..], b"first");
            assert!(e.to_string().contains("probe/obj"), "{e}");
            eprintln!("{base}: If-None-Match honoured (second create refused: {e})");
        }
        Ok(()) => {
            eprintln!(
                "{base}: NOTE the server ignores If-None-Match: the second create replaced \
                 the object ({:?})",
                String::from_utf8_lossy(&now)
            );
            assert!(!must_hold, "{base} must refuse the second create");
        }
        Err(e) => panic!("{base}: {e}"),
    }
    // The same bytes again: fine (names are hashes of content).
    if &now[..] == b"first" {
        store.put("probe/obj", "first".into()).unwrap();
    }
}

#[test]
fn conditional_create_moto() {
    let Some(base) = Remote::Moto.base() else {
        return;
    };
    probe_conditional_create(&base, true);
}

#[test]
fn conditional_create_garage() {
    let Some(base) = Remote::S3.base() else {
        return;
    };
    probe_conditional_create(&base, false);
}

#[test]
fn immutable_needs_a_retention() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let mut c = hokan(repo.to_str().unwrap(), &dir.path().join("cache"));
    c.args(["init", "--immutable"]);
    let out = run(c);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--lock-retention"),
        "{}",
        stderr(&out)
    );
    assert!(!repo.join("config").exists());
}

/// Immutable mode needs conditional creates: a client configured without
/// them is refused at the first write with the fix, and nothing is made.
#[test]
fn immutable_refuses_a_client_without_conditional_puts() {
    let Some(repo) = Remote::Moto.fresh("no-conditional") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut c = hokan(&repo, &dir.path().join("cache"));
    c.env("AWS_CONDITIONAL_PUT", "disabled").args([
        "init",
        "--kdf-memory",
        "1M",
        "--kdf-iterations",
        "1",
        "--immutable",
        "--lock-retention",
        "1d",
    ]);
    let out = run(c);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unset AWS_CONDITIONAL_PUT"), "{err}");
    let raw = Store::connect(
        &Location::parse(&repo).unwrap(),
        false,
        RetryPolicy::default(),
    )
    .unwrap();
    assert!(dump_store(&raw).is_empty(), "nothing was created");
}
