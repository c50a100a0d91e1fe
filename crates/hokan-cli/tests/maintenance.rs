//! forget, prune, check, repair and unlock through the `hokan` binary,
//! including a backup process that runs while another process prunes.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use hokan_core::sample::{Kind, generate};
use hokan_repo::conformance::{s3_base, unique};

fn backup_stdin(
    repo: &str,
    cache: &std::path::Path,
    name: &str,
    data: &[u8],
    tags: &[&str],
) -> String {
    let mut c = hokan(repo, cache);
    c.args(["--json", "backup", "--stdin", "--stdin-filename", name]);
    for t in tags {
        c.args(["--tag", t]);
    }
    let out = ok(&run_with_input(c, data));
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    v["snapshot_id"].as_str().unwrap().to_string()
}

fn dump(repo: &str, cache: &std::path::Path, snap: &str, name: &str) -> Vec<u8> {
    let mut c = hokan(repo, cache);
    c.args(["dump", snap, name]);
    let out = run(c);
    assert!(out.status.success(), "{}", stderr(&out));
    out.stdout
}

fn check(repo: &str, cache: &std::path::Path, read_data: bool) -> serde_json::Value {
    let mut c = hokan(repo, cache);
    c.args(["--json", "check"]);
    if read_data {
        c.arg("--read-data");
    }
    let out = run(c);
    // Long checks print status lines first; the summary is the last line.
    let v: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(serde_json::Value::Null);
    assert!(
        out.status.success() && v["ok"] == true,
        "check failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    v
}

/// A backup process reads its input slowly while another process forgets
/// the snapshot holding the same data and prunes. The backup dedups against
/// packs the prune marks; it completes, and its snapshot restores.
fn backup_during_prune(repo: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    init(repo, &cache);
    let old = generate(Kind::Random, 6 << 20, 1);
    let s1 = backup_stdin(repo, &cache, "old.bin", &old, &[]);
    backup_stdin(
        repo,
        &cache,
        "other.bin",
        &generate(Kind::Text, 2 << 20, 2),
        &[],
    );

    // The backup starts (and loads the index), then waits on its input.
    let mut c = hokan(repo, &dir.path().join("cache-backup"));
    c.args([
        "--json",
        "backup",
        "--stdin",
        "--stdin-filename",
        "again.bin",
    ]);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = old.clone();
    let feeder = std::thread::spawn(move || {
        for part in data.chunks(512 << 10) {
            input.write_all(part).unwrap();
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    std::thread::sleep(Duration::from_millis(400));
    let mut c = hokan(repo, &cache);
    c.args(["forget", &s1, "--prune"]);
    let pruned = ok(&run(c));
    assert!(pruned.contains("marked for deletion"), "{pruned}");
    feeder.join().unwrap();
    let out = child.wait_with_output().unwrap();
    let line = ok(&out);
    let v: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    let s3 = v["snapshot_id"].as_str().unwrap().to_string();

    assert!(
        dump(repo, &cache, &s3, "again.bin") == old,
        "the backup's snapshot restores"
    );
    check(repo, &cache, true);
    // A later prune (grace over) finds the marked pack in use and keeps it.
    let mut c = hokan(repo, &cache);
    c.args(["--json", "prune", "--grace", "0s"]);
    let out = ok(&run(c));
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(v["packs_resurrected"].as_u64().unwrap() >= 1, "{v}");
    assert!(dump(repo, &cache, &s3, "again.bin") == old);
    check(repo, &cache, true);
}

#[test]
fn backup_during_prune_local() {
    let dir = tempfile::tempdir().unwrap();
    backup_during_prune(dir.path().join("repo").to_str().unwrap());
}

#[test]
fn backup_during_prune_s3() {
    let Some(base) = s3_base() else { return };
    backup_during_prune(&format!("{base}/{}", unique("prune")));
}

#[test]
fn forget_policies_prune_check_repair() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, cache) = (dir.path().join("repo"), dir.path().join("cache"));
    let repo = repo.to_str().unwrap();
    init(repo, &cache);
    let mut ids = Vec::new();
    for i in 0..5u64 {
        let tags: &[&str] = if i == 1 { &["release"] } else { &[] };
        ids.push(backup_stdin(
            repo,
            &cache,
            "etcd.db",
            &generate(Kind::Random, 1 << 20, 10 + i),
            tags,
        ));
    }
    // Dry run in JSON: the decisions and their reasons, nothing removed.
    let mut c = hokan(repo, &cache);
    c.args([
        "--json",
        "forget",
        "--keep-last",
        "2",
        "--keep-tag",
        "release",
        "--dry-run",
    ]);
    let v: serde_json::Value = serde_json::from_str(&ok(&run(c))).unwrap();
    let keep: Vec<&str> = v[0]["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        keep,
        vec![ids[4].as_str(), ids[3].as_str(), ids[1].as_str()]
    );
    assert_eq!(v[0]["keep"][2]["reasons"][0], "tagged");
    assert_eq!(v[0]["remove"].as_array().unwrap().len(), 2);
    assert_eq!(snapshots(repo, &cache).len(), 5);

    // Keep what fits in 2.5 MiB: the newest two (1 MiB each).
    let mut c = hokan(repo, &cache);
    c.args(["forget", "--keep-size", "2560K"]);
    let text = ok(&run(c));
    assert!(text.contains("2 kept, 3 removed"), "{text}");
    let left: Vec<String> = snapshots(repo, &cache)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec![ids[3].clone(), ids[4].clone()]);

    // Prune at once; the repository shrinks; check is clean.
    let size = |dir: &std::path::Path| -> u64 {
        walk(dir)
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum()
    };
    let before = size(&dir.path().join("repo/data"));
    let mut c = hokan(repo, &cache);
    c.args(["prune", "--instant-delete"]);
    ok(&run(c));
    let after = size(&dir.path().join("repo/data"));
    assert!(after * 10 < before * 5, "{before} -> {after}");
    check(repo, &cache, true);
    for id in &left {
        assert_eq!(dump(repo, &cache, id, "etcd.db").len(), 1 << 20);
    }

    // Damage: check names the problem and exits 1; repair index recovers a
    // deleted index.
    for p in walk(&dir.path().join("repo/index")) {
        std::fs::remove_file(p).unwrap();
    }
    let mut c = hokan(repo, &cache);
    c.args(["check"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("in no index"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr(&out).contains("repair index"), "{}", stderr(&out));
    let mut c = hokan(repo, &cache);
    c.args(["--json", "repair", "index"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&run(c))).unwrap();
    assert!(v["packs"].as_u64().unwrap() >= 2, "{v}");
    check(repo, &cache, true);
    assert_eq!(dump(repo, &cache, &left[1], "etcd.db").len(), 1 << 20);

    // unlock: nothing to remove when no prune crashed.
    let mut c = hokan(repo, &cache);
    c.args(["--json", "unlock"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&run(c))).unwrap();
    assert_eq!(v["removed"], 0);
}

/// `backup --keep-last N`, the etcd rotation: the policy runs once the new
/// snapshot is saved, so exactly N remain; other streams are untouched; a
/// bad rule fails before anything is stored; prune and check stay clean.
#[test]
fn backup_applies_retention_after_saving() {
    let dir = tempfile::tempdir().unwrap();
    let repo_path = dir.path().join("repo");
    let repo = repo_path.to_str().unwrap();
    let cache = dir.path().join("cache");
    init(repo, &cache);
    let other = backup_stdin(
        repo,
        &cache,
        "other.db",
        &generate(Kind::Random, 64 << 10, 99),
        &[],
    );
    let data = |i: u64| generate(Kind::Random, 256 << 10, 20 + i);
    let save = |i: u64, extra: &[&str]| -> serde_json::Value {
        let mut c = hokan(repo, &cache);
        c.args(["--json", "backup", "--stdin", "--stdin-filename", "etcd.db"])
            .args(extra);
        let out = ok(&run_with_input(c, &data(i)));
        serde_json::from_str(out.lines().last().unwrap()).unwrap()
    };
    let ids_of = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };

    let mut ids: Vec<String> = Vec::new();
    for i in 0..5 {
        let v = save(i, &["--keep-last", "3"]);
        ids.push(v["snapshot_id"].as_str().unwrap().to_string());
        let newest: Vec<String> = ids.iter().rev().take(3).cloned().collect();
        assert_eq!(ids_of(&v["forget"]["keep"]), newest, "{v}");
        assert_eq!(
            ids_of(&v["forget"]["remove"]).len(),
            usize::from(i >= 3),
            "{v}"
        );
    }
    let mut left: Vec<String> = snapshots(repo, &cache)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    left.sort();
    let mut want = vec![
        other.clone(),
        ids[2].clone(),
        ids[3].clone(),
        ids[4].clone(),
    ];
    want.sort();
    assert_eq!(left, want, "exactly three of etcd.db, and the other stream");

    // Size rule: 256 KiB each, 600 KiB fit the new one and the one before.
    let v = save(5, &["--keep-size", "600K"]);
    ids.push(v["snapshot_id"].as_str().unwrap().to_string());
    assert_eq!(
        ids_of(&v["forget"]["keep"]),
        vec![ids[5].clone(), ids[4].clone()]
    );
    assert_eq!(
        ids_of(&v["forget"]["remove"]),
        vec![ids[3].clone(), ids[2].clone()]
    );

    // The text output shows the decisions.
    let mut c = hokan(repo, &cache);
    c.args([
        "backup",
        "--stdin",
        "--stdin-filename",
        "etcd.db",
        "--keep-last",
        "1",
    ]);
    let text = ok(&run_with_input(c, &data(6)));
    assert!(text.contains("1 kept, 2 removed"), "{text}");

    // A bad rule: a clear error, and nothing stored or removed.
    let before = snapshots(repo, &cache).len();
    let mut c = hokan(repo, &cache);
    c.args([
        "backup",
        "--stdin",
        "--stdin-filename",
        "etcd.db",
        "--keep-last",
        "-5",
    ]);
    let out = run_with_input(c, &data(7));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--keep-last -5"), "{}", stderr(&out));
    assert_eq!(snapshots(repo, &cache).len(), before);

    // Prune drops the forgotten data; what is left is whole.
    let mut c = hokan(repo, &cache);
    c.args(["prune", "--instant-delete"]);
    ok(&run(c));
    check(repo, &cache, true);
    let newest = snapshots(repo, &cache)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .find(|id| *id != other)
        .unwrap();
    assert_eq!(dump(repo, &cache, &newest, "etcd.db"), data(6));
    assert_eq!(
        dump(repo, &cache, &other, "other.db"),
        generate(Kind::Random, 64 << 10, 99)
    );
}
