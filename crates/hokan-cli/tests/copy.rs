//! `hokan copy --from-repo` and `hokan init --copy-chunker-params-from`
//! through the binary: between local repositories with different keys
//! (every blob re-identified, every tree rewritten) and with shared ids
//! (trees keep their ids), skipping what was copied, filters, a wrong
//! source password and a damaged source blob (both change nothing), and
//! local → Garage S3 → local when `HOKAN_TEST_S3_URL` is set.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;
use hokan_core::sample::{Kind, generate};
use hokan_repo::conformance::{dump_store, s3_base, unique};
use hokan_repo::{Location, Store};
use serde_json::Value;

const SOURCE_PASSWORD: &str = "source password";

/// A scratch directory with a source and places for targets.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        Setup {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn local(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }

    fn cache(&self) -> PathBuf {
        self.path("cache")
    }

    /// The binary on `repo` with the target's password and the source's.
    fn hokan(&self, repo: &str) -> Command {
        let mut c = hokan(repo, &self.cache());
        c.env("HOKAN_FROM_PASSWORD", SOURCE_PASSWORD);
        c.env_remove("HOKAN_FROM_PASSWORD_FILE");
        c.env_remove("HOKAN_FROM_REPOSITORY");
        c
    }

    /// The binary on the source repository `repo`.
    fn source(&self, repo: &str) -> Command {
        let mut c = self.hokan(repo);
        c.env("HOKAN_PASSWORD", SOURCE_PASSWORD);
        c
    }

    fn ok(&self, mut c: Command, args: &[&str]) -> String {
        c.args(args);
        ok(&run(c))
    }

    fn json(&self, c: Command, args: &[&str]) -> Value {
        let out = self.ok(c, args);
        serde_json::from_str(out.lines().last().unwrap()).unwrap()
    }

    fn copy(&self, target: &str, from: &str, extra: &[&str]) -> Value {
        let mut args = vec!["copy", "--from-repo", from, "--json"];
        args.extend_from_slice(extra);
        self.json(self.hokan(target), &args)
    }

    fn snapshots(&self, c: Command) -> Vec<Value> {
        self.json(c, &["snapshots", "--json"])
            .as_array()
            .unwrap()
            .clone()
    }

    /// A source with a file tree, a tagged stdin stream and an etcd
    /// database, chunked finer than the default so trees share chunks.
    fn fill_source(&self, repo: &str) -> Source {
        let fast = ["--kdf-memory", "1M", "--kdf-iterations", "1"];
        let mut init = vec!["init", "--pack-size", "4M", "--chunk-min", "64K"];
        init.extend(["--chunk-avg", "128K", "--chunk-max", "1M"]);
        init.extend(fast);
        self.ok(self.source(repo), &init);
        let files = self.path("files");
        std::fs::create_dir_all(files.join("sub/deeper")).unwrap();
        std::fs::write(files.join("random.bin"), generate(Kind::Random, 3 << 20, 1)).unwrap();
        std::fs::write(files.join("sub/text.txt"), generate(Kind::Text, 2 << 20, 2)).unwrap();
        std::fs::write(files.join("sub/deeper/small"), b"small file").unwrap();
        std::fs::write(files.join("sub/deeper/empty"), b"").unwrap();
        std::os::unix::fs::symlink("sub/text.txt", files.join("link")).unwrap();
        let fs = self.json(
            self.source(repo),
            &["backup", files.to_str().unwrap(), "--json"],
        );
        let stream = generate(Kind::Text, 1 << 20, 3);
        let mut c = self.source(repo);
        c.args(["backup", "--stdin", "--stdin-filename", "dump.sql"]);
        c.args(["--tag", "db", "--json"]);
        let out = run_with_input(c, &stream);
        let stdin: Value = serde_json::from_str(ok(&out).lines().last().unwrap()).unwrap();
        let db = self.path("etcd.db");
        std::fs::write(&db, hokan_etcd::testdata::tiny_db()).unwrap();
        let etcd = self.json(
            self.source(repo),
            &["etcd", "import", db.to_str().unwrap(), "--json"],
        );
        Source {
            files,
            stream,
            ids: [&fs, &stdin, &etcd].map(|v| v["id"].as_str().unwrap().to_string()),
        }
    }

    /// What a snapshot restores to: its files (for a file tree), its
    /// stream, its etcd database.
    fn restored(&self, c: Command, id: &str, kind: &str, name: &str) -> Vec<(String, Vec<u8>)> {
        match kind {
            "fs" => {
                let dir = self.path(name);
                self.ok(c, &["restore", id, "--target", dir.to_str().unwrap(), "-q"]);
                let mut files: Vec<(String, Vec<u8>)> = walk(&dir)
                    .into_iter()
                    .map(|p| {
                        let rel = p.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
                        let body = match std::fs::read_link(&p) {
                            Ok(target) => target.to_string_lossy().as_bytes().to_vec(),
                            Err(_) => std::fs::read(&p).unwrap(),
                        };
                        (rel, body)
                    })
                    .collect();
                files.sort();
                files
            }
            "stream" => vec![("dump.sql".into(), {
                let mut c = c;
                c.args(["dump", id, "dump.sql"]);
                let out = run(c);
                assert!(out.status.success(), "{}", stderr(&out));
                out.stdout
            })],
            _ => {
                let file = self.path(&format!("{name}.db"));
                self.ok(
                    c,
                    &["etcd", "restore", id, "-o", file.to_str().unwrap(), "-q"],
                );
                vec![("etcd.db".into(), std::fs::read(&file).unwrap())]
            }
        }
    }
}

struct Source {
    files: PathBuf,
    stream: Vec<u8>,
    /// File tree, stream, etcd.
    ids: [String; 3],
}

fn by_original(list: &[Value], source_id: &str) -> Value {
    list.iter()
        .find(|s| s["labels"]["original"] == source_id)
        .unwrap_or_else(|| panic!("no copy of {source_id} in {list:?}"))
        .clone()
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    stderr(out)
}

/// Copies everything from `from` to `to` (a target without shared ids)
/// and checks each copy restores as its original, then that a second
/// copy copies nothing and says so.
fn round_trip(s: &Setup, from: &str, to: &str, source: &Source) {
    s.ok(
        s.hokan(to),
        &["init", "--kdf-memory", "1M", "--kdf-iterations", "1"],
    );
    let report = s.copy(to, from, &[]);
    assert_eq!(report["snapshots_copied"], 3, "{report}");
    assert_eq!(report["same_ids"], false);
    assert!(
        report["bytes_added"].as_u64().unwrap() > 5 << 20,
        "{report}"
    );
    let originals = s.snapshots(s.source(from));
    let copies = s.snapshots(s.hokan(to));
    assert_eq!(copies.len(), 3);
    for (n, o) in originals.iter().enumerate() {
        let id = o["id"].as_str().unwrap();
        let c = by_original(&copies, id);
        for field in ["time", "hostname", "paths", "tags", "source"] {
            assert_eq!(c[field], o[field], "{field} of the copy of {id}");
        }
        assert_ne!(c["tree"], o["tree"], "different id keys: trees rewritten");
        let kind = o["source"].as_str().unwrap();
        let want = s.restored(s.source(from), id, kind, &format!("orig-{n}"));
        let got = s.restored(
            s.hokan(to),
            c["id"].as_str().unwrap(),
            kind,
            &format!("copy-{n}"),
        );
        if kind == "fs" {
            let text = std::fs::read(source.files.join("sub/text.txt")).unwrap();
            assert!(
                want.iter()
                    .any(|(p, b)| p.ends_with("sub/text.txt") && *b == text),
                "the original restores the backed-up bytes"
            );
        }
        assert!(!want.is_empty());
        assert!(
            want == got,
            "the copy of {kind} snapshot {id} restores the same"
        );
    }
    assert!(
        source
            .ids
            .iter()
            .all(|id| by_original(&copies, id)["id"].is_string())
    );

    let again = s.copy(to, from, &[]);
    assert_eq!(again["snapshots_copied"], 0, "{again}");
    assert_eq!(again["snapshots_skipped"], 3);
    assert_eq!(again["bytes_stored"], 0);
    let text = s.ok(s.hokan(to), &["copy", "--from-repo", from]);
    assert!(text.contains("nothing to copy"), "{text}");
    s.ok(s.hokan(to), &["check", "--read-data", "-q"]);
}

#[test]
fn copies_between_local_repositories_with_different_keys() {
    let s = Setup::new();
    let from = s.local("source");
    let source = s.fill_source(&from);
    round_trip(&s, &from, &s.local("target"), &source);
    let target = s.local("target");
    let copy = by_original(&s.snapshots(s.hokan(&target)), &source.ids[1]);
    let dumped = s.restored(
        s.hokan(&target),
        copy["id"].as_str().unwrap(),
        "stream",
        "x",
    );
    assert!(dumped[0].1 == source.stream);
}

#[test]
fn shared_ids_keep_trees_and_copy_only_what_changed() {
    let s = Setup::new();
    let from = s.local("source");
    let source = s.fill_source(&from);
    let to = s.local("target");
    let mut init = vec!["init", "--kdf-memory", "1M", "--kdf-iterations", "1"];
    init.extend(["--copy-chunker-params-from", &from, "--json"]);
    // The source's password is checked before anything is created.
    let mut c = s.hokan(&to);
    c.env("HOKAN_FROM_PASSWORD", "not it").args(&init);
    let out = run(c);
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    assert!(stderr(&out).contains("--copy-chunker-params-from"));
    assert!(!s.path("target").join("config").exists());
    let mut c = s.hokan(&to);
    c.args(&init).args(["--chunk-avg", "1M"]);
    let err = failed(&run(c));
    assert!(err.contains("cannot be used with"), "{err}");
    let made = s.json(s.hokan(&to), &init);
    assert_eq!(
        made["chunk_avg"],
        128 << 10,
        "chunk sizes come from the source"
    );
    assert_eq!(made["chunk_min"], 64 << 10);
    let report = s.copy(&to, &from, &[]);
    assert_eq!(report["snapshots_copied"], 3, "{report}");
    assert_eq!(report["same_ids"], true);
    let copies = s.snapshots(s.hokan(&to));
    for o in s.snapshots(s.source(&from)) {
        let c = by_original(&copies, o["id"].as_str().unwrap());
        assert_eq!(c["tree"], o["tree"], "shared ids: the tree keeps its id");
    }
    // The data key is the target's own: its objects do not open with the
    // source's password, nor the source's with the target's.
    let mut c = s.hokan(&to);
    c.env("HOKAN_PASSWORD", SOURCE_PASSWORD).arg("snapshots");
    assert_eq!(run(c).status.code(), Some(12));

    // A second backup changes one file: the next copy reads little.
    std::fs::write(source.files.join("sub/deeper/small"), b"changed").unwrap();
    s.ok(
        s.source(&from),
        &["backup", source.files.to_str().unwrap(), "-q"],
    );
    let next = s.copy(&to, &from, &[]);
    assert_eq!(next["snapshots_copied"], 1, "{next}");
    assert_eq!(next["snapshots_skipped"], 3);
    assert!(
        next["bytes_copied"].as_u64().unwrap() < 64 << 10,
        "only the changed file and its trees are read: {next}"
    );
    let latest = by_original(
        &s.snapshots(s.hokan(&to)),
        s.snapshots(s.source(&from)).last().unwrap()["id"]
            .as_str()
            .unwrap(),
    );
    let first = by_original(&copies, &source.ids[0]);
    assert_eq!(
        latest["parent"], first["id"],
        "the copy's parent is the copy of the original's parent"
    );
    s.ok(s.hokan(&to), &["check", "--read-data", "-q"]);
}

#[test]
fn filters_and_snapshot_arguments_choose_what_is_copied() {
    let s = Setup::new();
    let from = s.local("source");
    let source = s.fill_source(&from);
    let to = s.local("target");
    s.ok(
        s.hokan(&to),
        &["init", "--kdf-memory", "1M", "--kdf-iterations", "1"],
    );
    let tagged = s.copy(&to, &from, &["--tag", "db"]);
    assert_eq!(tagged["snapshots_copied"], 1, "{tagged}");
    assert_eq!(tagged["copied"][0]["source"], source.ids[1].as_str());
    let none = s.copy(&to, &from, &["--host", "no-such-host"]);
    assert_eq!(none["snapshots_selected"], 0, "{none}");
    assert_eq!(none["snapshots_copied"], 0);
    let text = s.ok(
        s.hokan(&to),
        &["copy", "--from-repo", &from, "--path", "/nowhere"],
    );
    assert!(text.contains("nothing to copy"), "{text}");
    let by_prefix = s.copy(&to, &from, &[&source.ids[0][..10]]);
    assert_eq!(by_prefix["snapshots_copied"], 1, "{by_prefix}");
    assert_eq!(by_prefix["copied"][0]["source"], source.ids[0].as_str());
    let latest = s.copy(&to, &from, &["latest", &source.ids[1][..10]]);
    assert_eq!(latest["snapshots_copied"], 1, "{latest}");
    assert_eq!(latest["snapshots_skipped"], 1);
    assert_eq!(latest["copied"][0]["source"], source.ids[2].as_str());
    let out = run({
        let mut c = s.hokan(&to);
        c.args(["copy", "--from-repo", &from, "ffffffffff"]);
        c
    });
    let err = failed(&out);
    assert!(err.contains("in the source repository"), "{err}");
}

fn everything(repo: &str) -> Vec<(String, bytes::Bytes)> {
    let store = Store::connect(&Location::parse(repo).unwrap(), false, Default::default()).unwrap();
    dump_store(&store)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("locks/"))
        .collect()
}

#[test]
fn a_wrong_source_password_or_damaged_source_changes_nothing() {
    let s = Setup::new();
    let from = s.local("source");
    let source = s.fill_source(&from);
    let to = s.local("target");
    s.ok(
        s.hokan(&to),
        &["init", "--kdf-memory", "1M", "--kdf-iterations", "1"],
    );
    let before = everything(&to);

    let mut c = s.hokan(&to);
    c.env("HOKAN_FROM_PASSWORD", "not it");
    c.args(["copy", "--from-repo", &from]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("source repository") && err.contains("wrong password"),
        "{err}"
    );
    assert!(everything(&to) == before, "a wrong password writes nothing");

    // Damage the middle of the biggest data pack of the source.
    let biggest = walk(&s.path("source/data"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&biggest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&biggest, &bytes).unwrap();
    let mut c = s.hokan(&to);
    c.args(["copy", "--from-repo", &from, &source.ids[0][..10]]);
    let out = run(c);
    let err = failed(&out);
    assert!(
        err.contains(&format!(
            "in snapshot {} of the source repository",
            &source.ids[0][..8]
        )),
        "the error names the snapshot: {err}"
    );
    assert!(
        err.contains(".bin") || err.contains(".txt"),
        "and the file: {err}"
    );
    assert!(
        err.contains(&format!("hokan -r {from} check --read-data")),
        "and how to check the source: {err}"
    );
    assert!(
        s.snapshots(s.hokan(&to)).is_empty(),
        "no snapshot is saved for a copy that failed"
    );
    s.ok(s.hokan(&to), &["check", "-q"]);
    // The source is read only: it still holds its damage, nothing else.
    assert_eq!(std::fs::read(&biggest).unwrap(), bytes);
}

#[test]
fn refuses_to_copy_a_repository_into_itself() {
    let s = Setup::new();
    let repo = s.local("repo");
    s.ok(
        s.hokan(&repo),
        &["init", "--kdf-memory", "1M", "--kdf-iterations", "1"],
    );
    let mut c = s.hokan(&repo);
    c.env("HOKAN_FROM_PASSWORD", "test password");
    c.args(["copy", "--from-repo", &repo]);
    let err = failed(&run(c));
    assert!(err.contains("is the target repository itself"), "{err}");
}

/// local → S3 → local, each with its own keys.
#[test]
fn copies_local_to_s3_and_back() {
    let Some(base) = s3_base() else { return };
    let s = Setup::new();
    let local = s.local("source");
    let source = s.fill_source(&local);
    let remote = format!("{base}/{}", unique("copy-to-s3"));
    round_trip(&s, &local, &remote, &source);
    // And back: the S3 copy is now the source of a new local repository
    // (its password is the target's of the first round).
    let back = s.local("back");
    let mut init = s.hokan(&back);
    init.args(["init", "--kdf-memory", "1M", "--kdf-iterations", "1"]);
    ok(&run(init));
    let mut c = s.hokan(&back);
    c.env("HOKAN_FROM_PASSWORD", "test password");
    c.args(["copy", "--from-repo", &remote, "--json"]);
    let report: Value = serde_json::from_str(ok(&run(c)).lines().last().unwrap()).unwrap();
    assert_eq!(report["snapshots_copied"], 3, "{report}");
    let back_list = s.snapshots(s.hokan(&back));
    for id in &source.ids {
        // `original` follows the chain back to the first repository.
        let c = by_original(&back_list, id);
        let kind = c["source"].as_str().unwrap().to_string();
        let got = s.restored(s.hokan(&back), c["id"].as_str().unwrap(), &kind, "back-r");
        let want = s.restored(s.source(&local), id, &kind, "orig-r");
        assert!(
            got == want,
            "{kind} snapshot restores the same after two copies"
        );
        let _ = std::fs::remove_dir_all(s.path("back-r"));
        let _ = std::fs::remove_dir_all(s.path("orig-r"));
    }
}
