//! The repository through the `hokan` binary: two writer processes at once,
//! nothing readable in the store, and a clear error (with the store left
//! unchanged) for every way opening or reading can fail. The S3 variants
//! run against the server in `HOKAN_TEST_S3_URL` (see scripts/garage.sh).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use hokan_core::sample::{Kind, generate};
use hokan_repo::conformance::dump_store;
use hokan_repo::conformance::{s3_base, unique};
use hokan_repo::{Location, Store};

fn store_of(repo: &str) -> Store {
    Store::connect(&Location::parse(repo).unwrap(), false, Default::default()).unwrap()
}

fn everything(repo: &str) -> BTreeMap<String, bytes::Bytes> {
    dump_store(&store_of(repo))
}

/// Two `hokan backup --stdin` processes write into one repository at the
/// same time; both finish and both snapshots restore bit for bit.
fn two_writer_processes(repo: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    init(repo, &cache);
    // Half of each input is shared, so the writers race for the same chunks.
    let shared = generate(Kind::Random, 12 << 20, 1);
    let inputs: Vec<Vec<u8>> = (0..2u64)
        .map(|i| {
            let mut v = generate(Kind::Text, 12 << 20, 2 + i);
            v.extend_from_slice(&shared);
            v
        })
        .collect();
    let mut children = Vec::new();
    for (i, data) in inputs.iter().enumerate() {
        let f = dir.path().join(format!("input-{i}"));
        std::fs::write(&f, data).unwrap();
        let mut c = hokan(repo, &dir.path().join(format!("cache-{i}")));
        c.args([
            "backup",
            "--stdin",
            "--stdin-filename",
            &format!("writer-{i}.bin"),
            "--json",
        ]);
        children.push(spawn_with_file(c, &f));
    }
    let ids: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    let listed = snapshots(repo, &cache);
    assert_eq!(listed.len(), 2);
    for (i, (id, data)) in ids.iter().zip(&inputs).enumerate() {
        assert!(listed.iter().any(|s| s["id"] == id.as_str()));
        let mut c = hokan(repo, &cache);
        c.args(["dump", &id[..12], &format!("writer-{i}.bin")]);
        let out = run(c);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            out.stdout == *data,
            "writer {i}'s snapshot restores bit for bit"
        );
    }
}

#[test]
fn two_writer_processes_local() {
    let dir = tempfile::tempdir().unwrap();
    two_writer_processes(dir.path().join("repo").to_str().unwrap());
}

#[test]
fn two_writer_processes_s3() {
    let Some(base) = s3_base() else { return };
    two_writer_processes(&format!("{base}/{}", unique("two-writers")));
}

/// Names, tags and contents backed up appear nowhere in the stored bytes
/// or in the local cache.
fn nothing_in_plaintext(repo: &str, cache: &Path) {
    init(repo, cache);
    let name = "payroll-export-7f3a9c.sql";
    let tag = "tag-visible-q9z";
    // Text compresses, so also store an incompressible part: it goes into the
    // pack as is, and only encryption hides it.
    let mut content = b"INSERT INTO salaries VALUES ('alice-5d1e', 123456);\n".repeat(20_000);
    content.extend_from_slice(&generate(Kind::Random, 1 << 20, 77));
    let mut c = hokan(repo, cache);
    c.args(["backup", "--stdin", "--stdin-filename", name, "--tag", tag]);
    ok(&run_with_input(c, &content));
    // Read it back so the cache fills too.
    let mut c = hokan(repo, cache);
    c.args(["snapshots"]);
    ok(&run(c));

    let mut needles: Vec<Vec<u8>> = vec![
        name.into(),
        tag.into(),
        b"alice-5d1e".to_vec(),
        b"salaries".to_vec(),
    ];
    // Windows of the random part, which zstd stores raw.
    let random = &content[content.len() - (1 << 20)..];
    needles.extend((0..16).map(|i| random[i * 60_000..i * 60_000 + 24].to_vec()));
    let mut haystacks: Vec<(String, Vec<u8>)> = everything(repo)
        .into_iter()
        .map(|(k, v)| (k, v.to_vec()))
        .collect();
    for p in walk(cache) {
        haystacks.push((p.display().to_string(), std::fs::read(&p).unwrap()));
    }
    assert!(
        haystacks.iter().any(|(k, _)| k.starts_with("data/")),
        "packs were stored"
    );
    for (path, bytes) in &haystacks {
        assert!(
            !path.contains(name) && !path.contains(tag),
            "{path} names what was backed up"
        );
        for n in &needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == &n[..]),
                "{path} contains {:?} in plaintext",
                String::from_utf8_lossy(n)
            );
        }
    }
}

#[test]
fn nothing_in_plaintext_local() {
    let dir = tempfile::tempdir().unwrap();
    nothing_in_plaintext(
        dir.path().join("repo").to_str().unwrap(),
        &dir.path().join("cache"),
    );
}

#[test]
fn nothing_in_plaintext_s3() {
    let Some(base) = s3_base() else { return };
    let dir = tempfile::tempdir().unwrap();
    nothing_in_plaintext(&format!("{base}/{}", unique("plaintext")), dir.path());
}

/// Runs a failing command and checks exit code, message, and that the
/// store is byte for byte what it was.
fn fails_cleanly(repo: &str, cmd: std::process::Command, code: i32, message: &str) {
    let before = everything(repo);
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(message), "expected {message:?} in: {err}");
    assert!(everything(repo) == before, "the store changed");
}

fn error_cases(repo: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    init(repo, &cache);
    let data = generate(Kind::Random, 2 << 20, 5);
    let mut c = hokan(repo, &cache);
    c.args(["backup", "--stdin", "--stdin-filename", "data.bin"]);
    ok(&run_with_input(c, &data));

    // Wrong password.
    let mut c = hokan(repo, &cache);
    c.env("HOKAN_PASSWORD", "not it").arg("snapshots");
    fails_cleanly(repo, c, 12, "wrong password");

    // init over an existing repository.
    let mut c = hokan(repo, &cache);
    c.args(["init", "--kdf-memory", "1M"]);
    fails_cleanly(repo, c, 1, "already exists");

    // A newer repository format: refused before any password is tried.
    let store = store_of(repo);
    let config = store.get("config").unwrap();
    let mut newer = config.to_vec();
    newer[5] = 7;
    store.put("config", newer.into()).unwrap();
    let mut c = hokan(repo, &cache);
    c.env("HOKAN_PASSWORD", "not it").arg("snapshots");
    fails_cleanly(repo, c, 1, "upgrade hokan");
    store.put("config", config).unwrap();

    // A corrupted pack: dump reports it and writes nothing wrong.
    let objects = everything(repo);
    for (path, bytes) in objects.iter().filter(|(k, _)| k.starts_with("data/")) {
        let mut b = bytes.to_vec();
        let mid = b.len() / 2;
        b[mid] ^= 0x40;
        store.put(path, b.into()).unwrap();
    }
    let mut c = hokan(repo, &cache);
    c.args(["dump", "latest", "data.bin"]);
    let before = everything(repo);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("corrupted"), "{}", stderr(&out));
    assert!(everything(repo) == before);
    // A missing pack.
    for path in objects.keys().filter(|k| k.starts_with("data/")) {
        store.delete(path).unwrap();
    }
    let mut c = hokan(repo, &cache);
    c.args(["dump", "latest", "data.bin"]);
    fails_cleanly(repo, c, 1, "missing");
}

#[test]
fn error_cases_local() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    error_cases(repo.to_str().unwrap());
    // Not a repository: a directory that is not one, and one that is absent.
    let cache = dir.path().join("cache");
    let mut c = hokan(dir.path().to_str().unwrap(), &cache);
    c.arg("snapshots");
    let out = run(c);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(stderr(&out).contains("no hokan repository"));
    let mut c = hokan(dir.path().join("absent").to_str().unwrap(), &cache);
    c.arg("snapshots");
    assert_eq!(run(c).status.code(), Some(10));
    assert!(
        !dir.path().join("absent").exists(),
        "opening created nothing"
    );
}

#[test]
fn error_cases_s3() {
    let Some(base) = s3_base() else { return };
    let repo = format!("{base}/{}", unique("errors"));
    error_cases(&repo);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");

    // Denied: the right server, a wrong secret.
    let mut c = hokan(&repo, &cache);
    c.env("AWS_SECRET_ACCESS_KEY", "0".repeat(64))
        .arg("snapshots");
    fails_cleanly(&repo, c, 1, "denied access");

    // Not a repository: an empty prefix of the bucket.
    let mut c = hokan(&format!("{base}/{}", unique("empty")), &cache);
    c.arg("snapshots");
    let out = run(c);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
}

#[test]
fn unreachable_storage_is_reported() {
    // Port 9 (discard) has no listener here: connections are refused.
    let dir = tempfile::tempdir().unwrap();
    let mut c = hokan(
        "s3:http://127.0.0.1:9/bucket/repo",
        &dir.path().join("cache"),
    );
    c.env("AWS_ACCESS_KEY_ID", "GKx")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_DEFAULT_REGION", "garage");
    c.arg("snapshots");
    let start = std::time::Instant::now();
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unreachable"), "{}", stderr(&out));
    assert!(
        start.elapsed().as_secs() < 60,
        "gave up in reasonable time: {:?}",
        start.elapsed()
    );
}
