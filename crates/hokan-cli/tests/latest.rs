//! `latest` with a damaged snapshot file (issue 22, item 5): the damaged
//! one may be the newest, so `restore latest`, `dump latest`, `etcd restore
//! latest` and `etcd status latest` refuse, naming the file, instead of
//! quietly using an older snapshot; the older one is restored when asked
//! for by id. etcd runs from Debian's package on loopback (skipped, saying
//! why, where it is missing unless HOKAN_REQUIRE_ETCD=1).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use hokan_etcd::testing::EtcdProcess;
use serde_json::Value;

struct Repo {
    dir: tempfile::TempDir,
    path: String,
    cache: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo").to_str().unwrap().to_string();
        let cache = dir.path().join("cache");
        init(&path, &cache);
        Repo { dir, path, cache }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = hokan(&self.path, &self.cache);
        c.args(args);
        run(c)
    }

    /// The snapshot id from a `--json` command's last line.
    fn saved(&self, args: &[&str]) -> String {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = ok(&self.run(&all));
        let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        last["snapshot_id"].as_str().unwrap().to_string()
    }

    /// Flips a byte in the middle of snapshot `id`'s file.
    fn damage(&self, id: &str) -> PathBuf {
        let file = Path::new(&self.path).join("snapshots").join(id);
        let mut b = std::fs::read(&file).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x40;
        std::fs::write(&file, b).unwrap();
        file
    }
}

/// The refusal every `latest` gives: exit 1, the damaged file named with
/// its reason, "may be the newest", and both ways on.
fn assert_refused(out: &Output, damaged: &str, older: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("snapshots/{damaged}")), "{err}");
    assert!(err.contains("corrupted"), "the reason: {err}");
    assert!(err.contains("may be the newest"), "{err}");
    assert!(
        err.contains(&older[..8]),
        "names the older one to use: {err}"
    );
    assert!(
        err.contains(&format!("hokan forget {}", &damaged[..8])),
        "{err}"
    );
}

#[test]
fn restore_and_dump_latest_refuse_past_a_damaged_newest_snapshot() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"old").unwrap();
    let older = repo.saved(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("f"), b"new").unwrap();
    let newest = repo.saved(&["backup", src.to_str().unwrap()]);
    repo.damage(&newest);

    let target = repo.dir.path().join("out");
    let out = repo.run(&[
        "--no-cache",
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_refused(&out, &newest, &older);
    assert!(!target.exists(), "nothing was restored");

    let file = format!("{}/f", src.display());
    let out = repo.run(&["--no-cache", "dump", "latest", &file]);
    assert_refused(&out, &newest, &older);
    assert!(out.stdout.is_empty(), "nothing was dumped");

    // Asked for by id, the older one restores.
    let out = repo.run(&["--no-cache", "dump", &older[..8], &file]);
    assert_eq!(ok(&out), "old");
    // Once the damaged file is forgotten, latest is the older one again.
    ok(&repo.run(&["forget", &newest[..8]]));
    let out = repo.run(&["--no-cache", "dump", "latest", &file]);
    assert_eq!(ok(&out), "old");
}

#[test]
fn etcd_restore_and_status_latest_refuse_past_a_damaged_newest_snapshot() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let repo = Repo::new();
    let older = repo.saved(&["etcd", "backup", "--endpoints", &etcd.url]);
    etcd.etcdctl_ok(&["put", "/registry/configmaps/a/b", "value"]);
    let newest = repo.saved(&["etcd", "backup", "--endpoints", &etcd.url]);
    repo.damage(&newest);

    let db = repo.dir.path().join("restored.db");
    let out = repo.run(&[
        "--no-cache",
        "etcd",
        "restore",
        "latest",
        "-o",
        db.to_str().unwrap(),
    ]);
    assert_refused(&out, &newest, &older);
    assert!(!db.exists(), "nothing was restored");

    let out = repo.run(&["--no-cache", "etcd", "status", "latest"]);
    assert_refused(&out, &newest, &older);
    assert!(out.stdout.is_empty(), "no status of the older snapshot");

    // The older one, by id.
    ok(&repo.run(&[
        "--no-cache",
        "etcd",
        "restore",
        &older[..8],
        "-o",
        db.to_str().unwrap(),
    ]));
    assert!(db.is_file());
}
