//! Bad input that is refused, and input that must not block (issue 22,
//! item 8): `etcd import` of a FIFO or of a bbolt file with a damaged page
//! id, retention rules of 0, `backup --stdin --host`, Velero tarballs with
//! objects Kubernetes refuses, and `k8s restore --to-dir` of long and bad
//! names. etcd runs from Debian's package on loopback (skipped, saying why,
//! where it is missing unless HOKAN_REQUIRE_ETCD=1).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hokan_etcd::testing::EtcdProcess;
use hokan_k8s::testserver::TestServer;
use serde_json::{Value, json};

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

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = hokan(&self.path, &self.cache);
        c.args(args).env_remove("KUBECONFIG");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        run(self.cmd(args))
    }

    fn snapshots(&self) -> Vec<Value> {
        snapshots(&self.path, &self.cache)
    }

    fn packs(&self) -> Vec<PathBuf> {
        walk(&Path::new(&self.path).join("data"))
    }
}

/// Runs with a deadline: a hang fails the test instead of the CI job.
fn run_deadline(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("hung for {limit:?}: {}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn etcd_import_refuses_a_fifo_and_a_character_device_without_blocking() {
    let repo = Repo::new();
    let fifo = repo.file("snapshot.db");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // No one ever writes to it: opening it for reading would block.
    let out = run_deadline(
        repo.cmd(&["etcd", "import", fifo.to_str().unwrap()]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("FIFO") && err.contains("snapshot.db"), "{err}");
    let out = run_deadline(
        repo.cmd(&["etcd", "import", "/dev/zero"]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("character device"),
        "{}",
        stderr(&out)
    );
    assert!(repo.snapshots().is_empty());
}

/// An attached loop device, detached when dropped.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

#[test]
fn etcd_import_reads_a_block_device() {
    let repo = Repo::new();
    let image = repo.file("member.img");
    let db = hokan_etcd::testdata::tiny_db();
    std::fs::write(&image, &db).unwrap();
    let attached = Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&image)
        .output();
    let dev = match attached {
        Ok(out) if out.status.success() => {
            Loop(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        _ => {
            eprintln!("skipped: no loop device (needs root and losetup)");
            return;
        }
    };
    // Its length is not in its metadata (0): read by seeking to the end.
    ok(&repo.run(&["etcd", "import", &dev.0]));
    let back = repo.file("back.db");
    ok(&repo.run(&["etcd", "restore", "latest", "-o", back.to_str().unwrap()]));
    assert!(std::fs::read(back).unwrap() == db);
}

/// The current meta's (page size, root page id, high-water mark).
fn current_meta(db: &[u8]) -> (usize, u64, u64) {
    let u32_at = |at: usize| u32::from_le_bytes(db[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(db[at..at + 8].try_into().unwrap());
    let page_size = u32_at(16 + 8) as usize;
    // After the 16-byte page header: magic, version, page size, flags
    // (u32 each), root page and sequence, freelist, pgid, txid (u64 each).
    let field = |page: usize, at: usize| u64_at(page * page_size + 16 + at);
    let current = if field(1, 48) > field(0, 48) { 1 } else { 0 };
    (page_size, field(current, 16), field(current, 40))
}

#[test]
fn etcd_import_refuses_a_page_whose_header_names_another_page() {
    let Some(mut etcd) = EtcdProcess::start() else {
        return;
    };
    for i in 0..50 {
        etcd.etcdctl_ok(&["put", &format!("/registry/configmaps/a/cm-{i}"), "v"]);
    }
    let repo = Repo::new();
    let saved = repo.file("saved.db");
    etcd.etcdctl_ok(&["snapshot", "save", saved.to_str().unwrap()]);
    etcd.stop();
    // A raw database (no trailer to disagree with): the root bucket's page
    // says it is another page.
    let mut db = std::fs::read(&saved).unwrap();
    db.truncate(db.len() - 32);
    let (page_size, root, pgid) = current_meta(&db);
    let at = root as usize * page_size;
    let wrong = pgid + 7;
    db[at..at + 8].copy_from_slice(&wrong.to_le_bytes());
    let bad = repo.file("bad.db");
    std::fs::write(&bad, &db).unwrap();
    // etcdctl calls it damaged,
    let status = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!status.status.success(), "etcdctl accepted it");
    // and so does hokan: nothing stored.
    let out = repo.run(&["etcd", "import", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("page {root}: its header names it page {wrong}")),
        "{err}"
    );
    assert!(repo.snapshots().is_empty());
    assert!(repo.packs().is_empty(), "{:?}", repo.packs());
}

#[test]
fn retention_rules_of_zero_are_refused_and_nothing_is_forgotten() {
    let repo = Repo::new();
    for data in ["a", "b"] {
        let c = repo.cmd(&["backup", "--stdin", "--stdin-filename", "dump"]);
        ok(&run_with_input(c, data.as_bytes()));
    }
    for flags in [
        &["--keep-last", "0"][..],
        &["--keep-daily", "0"],
        &["--keep-last", "0", "--keep-daily", "0"],
    ] {
        let mut args = vec!["forget"];
        args.extend_from_slice(flags);
        let out = repo.run(&args);
        assert_eq!(out.status.code(), Some(1), "{flags:?}");
        let err = stderr(&out);
        assert!(
            err.contains("keeps no snapshot") && err.contains("nothing was changed"),
            "{err}"
        );
        assert_eq!(repo.snapshots().len(), 2, "{flags:?} forgot snapshots");
    }
    // A backup with such a rule is refused before it stores anything.
    let c = repo.cmd(&[
        "backup",
        "--stdin",
        "--stdin-filename",
        "dump",
        "--keep-last",
        "0",
    ]);
    let out = run_with_input(c, b"c");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("keeps no snapshot"),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.snapshots().len(), 2);
    // A zero beside a rule that keeps is no rule: the newest stays.
    let out = repo.run(&["forget", "--keep-last", "1", "--keep-daily", "0"]);
    ok(&out);
    assert_eq!(repo.snapshots().len(), 1);
}

#[test]
fn backup_from_stdin_records_the_host_given() {
    let repo = Repo::new();
    let c = repo.cmd(&[
        "backup",
        "--stdin",
        "--stdin-filename",
        "dump.sql",
        "--host",
        "db-primary",
    ]);
    ok(&run_with_input(c, b"select 1;"));
    let snaps = repo.snapshots();
    assert_eq!(snaps[0]["hostname"], "db-primary", "{snaps:?}");
}

/// A gzipped Velero tarball holding `objects` as (path below resources/,
/// bytes).
fn velero_tarball(file: &Path, objects: &[(String, Vec<u8>)]) {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(file).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    let mut add = |path: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o755);
        h.set_size(bytes.len() as u64);
        tar.append_data(&mut h, path, bytes).unwrap();
    };
    add("metadata/version", b"1.1.0\n");
    for (path, bytes) in objects {
        add(&format!("resources/{path}"), bytes);
    }
    tar.into_inner().unwrap().finish().unwrap();
}

fn configmap(name: &str) -> (String, Vec<u8>) {
    let object = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "shop", "uid": "u-1"},
        "data": {"k": "v"},
    });
    (
        format!("configmaps/namespaces/shop/{name}.json"),
        serde_json::to_vec(&object).unwrap(),
    )
}

#[test]
fn import_velero_refuses_what_kubernetes_refuses_and_restores_long_names() {
    let repo = Repo::new();
    let deep = {
        let (path, _) = configmap("deep");
        let nested = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let text = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"deep","namespace":"shop"}},"x":{nested}}}"#
        );
        (path, text.into_bytes())
    };
    let refused = [
        (deep, "nests deeper than 100 levels"),
        (
            configmap("web\nevil"),
            r#""web\nevil" contains the control character"#,
        ),
        (
            configmap("x\u{1b}[2Jy"),
            r#""x\u{1b}[2Jy" contains the control character"#,
        ),
        (configmap("Web"), "is not an RFC 1123 subdomain"),
        (configmap(&"a".repeat(254)), "is not an RFC 1123 subdomain"),
    ];
    for (i, (object, says)) in refused.into_iter().enumerate() {
        let file = repo.file(&format!("bad-{i}.tar.gz"));
        velero_tarball(&file, &[configmap("fine"), object]);
        let out = repo.run(&["k8s", "import-velero", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{says}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{err}");
        assert!(err.contains("configmaps shop/"), "names the object: {err}");
        assert!(err.contains("nothing was imported"), "{err}");
        assert!(
            !err.contains('\u{1b}') && err.lines().count() <= 3,
            "control characters escaped: {err:?}"
        );
    }
    assert!(repo.snapshots().is_empty());

    // A valid name as long as Kubernetes allows: imported and restored as
    // a manifest whose file name fits.
    let long = "a".repeat(253);
    let file = repo.file("long.tar.gz");
    velero_tarball(&file, &[configmap("fine"), configmap(&long)]);
    ok(&repo.run(&["k8s", "import-velero", file.to_str().unwrap()]));
    let out_dir = repo.file("manifests");
    let out = repo.run(&[
        "k8s",
        "restore",
        "latest",
        "--to-dir",
        out_dir.to_str().unwrap(),
    ]);
    ok(&out);
    assert_order_consistent(&out_dir, 2);
    let restored = walk(&out_dir.join("core/configmaps/shop"));
    let long_file = restored.iter().find(|p| !p.ends_with("fine.json")).unwrap();
    assert!(long_file.file_name().unwrap().len() <= 255);
    let object: Value = serde_json::from_slice(&std::fs::read(long_file).unwrap()).unwrap();
    assert_eq!(object["metadata"]["name"], long.as_str());
}

/// restore-order.txt lists `count` manifests, one a line, each a file.
fn assert_order_consistent(dir: &Path, count: usize) {
    let order = std::fs::read_to_string(dir.join("restore-order.txt")).unwrap();
    let lines: Vec<&str> = order.lines().collect();
    assert_eq!(lines.len(), count, "{order}");
    for l in lines {
        assert!(dir.join(l).is_file(), "{l} listed but not written");
    }
}

#[test]
fn k8s_restore_to_dir_skips_a_bad_object_names_it_and_goes_on() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::start()).unwrap();
    let repo = Repo::new();
    let config = repo.file("kubeconfig");
    server.write_kubeconfig(&config, "prod").unwrap();
    // A snapshot holding a name no API server serves (as an import before
    // names were checked could store), and the longest valid one.
    let long = "b".repeat(253);
    let cm = |name: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "shop"}, "data": {"k": "v"}})
    };
    server
        .seed([
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            cm("web"),
            cm("evil\nline"),
            cm(&long),
        ])
        .unwrap();
    ok(&repo.run(&["k8s", "backup", "--kubeconfig", config.to_str().unwrap()]));
    let out_dir = repo.file("manifests");
    let out = repo.run(&[
        "k8s",
        "restore",
        "latest",
        "--to-dir",
        out_dir.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}{}", stderr(&out));
    assert!(
        text.contains(r#"configmaps shop/evil\nline"#) && text.contains("FAILED"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("1 object(s) could not be restored"),
        "{}",
        stderr(&out)
    );
    // The namespace, web and the long one are written and listed in order.
    assert_order_consistent(&out_dir, 3);
    assert!(out_dir.join("core/configmaps/shop/web.json").is_file());
}
