//! Messages that mislead no more (issue 22, item 9): each case as a user
//! met it, with what the message must say now.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

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

    fn ok(&self, args: &[&str]) -> String {
        ok(&self.run(args))
    }

    fn root(&self) -> &Path {
        Path::new(&self.path)
    }

    /// A directory of `n` small files, backed up; returns its path.
    fn backed_up_tree(&self, n: usize) -> PathBuf {
        let src = self.dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        for i in 0..n {
            std::fs::write(src.join(format!("f{i}")), format!("file {i}\n").repeat(50)).unwrap();
        }
        self.ok(&["backup", src.to_str().unwrap()]);
        src
    }
}

fn flip_middle(file: &Path) {
    let mut b = std::fs::read(file).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x10;
    std::fs::write(file, b).unwrap();
}

#[test]
fn a_lost_index_leads_to_repair_index_not_repair_packs() {
    let repo = Repo::new();
    repo.backed_up_tree(5);
    for f in walk(&repo.root().join("index")) {
        std::fs::remove_file(f).unwrap();
    }
    let target = repo.dir.path().join("out");
    let out = repo.run(&[
        "--no-cache",
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("repair index"), "{err}");
    assert!(!err.contains("repair packs"), "{err}");
}

#[test]
fn a_lost_pack_is_named_missing_once() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..3 {
        let data = hokan_core::sample::generate(hokan_core::sample::Kind::Random, 300_000, i);
        std::fs::write(src.join(format!("f{i}")), data).unwrap();
    }
    repo.ok(&["backup", src.to_str().unwrap()]);
    // The largest pack holds the files' data (the trees are elsewhere).
    let data = walk(&repo.root().join("data"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    std::fs::remove_file(data).unwrap();
    let target = repo.dir.path().join("out");
    let out = repo.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is missing from the store"), "{err}");
    assert!(
        !err.contains("is missing from the store is missing"),
        "{err}"
    );
}

#[test]
fn init_on_a_file_does_not_hint_the_same_init() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let mut c = hokan(file.to_str().unwrap(), &dir.path().join("cache"));
    c.args(["init", "--kdf-memory", "1M", "--kdf-iterations", "1"]);
    let out = run(c);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("is a file"), "{err}");
    assert!(
        !err.contains("init`"),
        "hints the command that just failed: {err}"
    );
    assert!(
        err.contains("directory"),
        "says what to give instead: {err}"
    );
}

#[test]
fn a_password_with_a_trailing_newline_is_read_as_a_password_file_is() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = dir.path().join("pw");
    std::fs::write(&file, b"s3cret\n").unwrap();
    // Created with the password file (its first line).
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    let mut c = hokan(repo, &cache);
    c.arg("--password-file").arg(&file).args([
        "init",
        "--kdf-memory",
        "1M",
        "--kdf-iterations",
        "1",
    ]);
    ok(&run(c));
    // The same bytes in the variable (as $(cat pw) keeps no newline, but
    // a Secret mounted as a variable does) open it.
    let mut c = hokan(repo, &cache);
    c.env("HOKAN_PASSWORD", "s3cret\n").arg("snapshots");
    ok(&run(c));
    let mut c = hokan(repo, &cache);
    c.env("HOKAN_PASSWORD", "s3cret\r\n").arg("snapshots");
    ok(&run(c));

    // A repository whose key was made from the exact bytes, newline
    // included (as releases that did not trim the variable made it),
    // still opens, from the variable and from a file.
    let old = dir.path().join("old");
    let old = old.to_str().unwrap();
    let init = hokan_repo::InitOptions {
        kdf: hokan_repo::KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    hokan_repo::Repository::init(old, b"s3cret\n", init, Default::default()).unwrap();
    let mut c = hokan(old, &cache);
    c.env("HOKAN_PASSWORD", "s3cret\n").arg("snapshots");
    ok(&run(c));
    let mut c = hokan(old, &cache);
    c.arg("--password-file").arg(&file).arg("snapshots");
    ok(&run(c));
    // A wrong password is still wrong.
    let mut c = hokan(old, &cache);
    c.env("HOKAN_PASSWORD", "s3cret!\n").arg("snapshots");
    let out = run(c);
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
}

#[test]
fn a_read_data_subset_of_zero_is_refused() {
    let repo = Repo::new();
    repo.backed_up_tree(3);
    for size in ["0G", "0"] {
        let out = repo.run(&["check", "--read-data-subset", size]);
        assert_eq!(out.status.code(), Some(1), "{size}");
        let err = stderr(&out);
        assert!(err.contains("above 0"), "{err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("no errors"));
    }
}

#[test]
fn a_damaged_config_hints_repair_config_which_mends_it() {
    let repo = Repo::new();
    let src = repo.backed_up_tree(3);
    flip_middle(&repo.root().join("config"));
    let out = repo.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("config") && err.contains("damaged"), "{err}");
    assert!(err.contains("repair config"), "{err}");
    assert!(
        !err.contains("check --read-data"),
        "a check fails the same way: {err}"
    );
    // What the hint says helps.
    repo.ok(&["repair", "config", "--pack-size", "4M"]);
    let target = repo.dir.path().join("out");
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let back = target.join(src.strip_prefix("/").unwrap()).join("f1");
    assert_eq!(
        std::fs::read(back).unwrap(),
        std::fs::read(src.join("f1")).unwrap()
    );
    // A config that opens is never replaced.
    let out = repo.run(&["repair", "config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
}

#[test]
fn an_unreadable_parent_tree_is_a_warning_not_an_unreadable_file() {
    let repo = Repo::new();
    // Empty files have no data blobs: every pack holds trees only.
    let src = repo.dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..5 {
        std::fs::write(src.join("sub").join(format!("e{i}")), b"").unwrap();
    }
    repo.ok(&["backup", src.to_str().unwrap()]);
    for pack in walk(&repo.root().join("data")) {
        flip_middle(&pack);
    }
    let out = repo.run(&["--no-cache", "backup", src.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("file(s) could not be read"), "{err}");
    assert!(
        err.contains("parent snapshot") && err.contains("snapshot is complete"),
        "{err}"
    );
    assert!(err.contains("check --read-data"), "{err}");
    // The new snapshot restores whole.
    let target = repo.dir.path().join("out");
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let back = target.join(src.strip_prefix("/").unwrap()).join("sub");
    assert_eq!(std::fs::read_dir(back).unwrap().count(), 5);
}

#[test]
fn a_device_restore_selecting_many_files_counts_them_and_names_five() {
    let repo = Repo::new();
    repo.backed_up_tree(7);
    let target = repo.dir.path().join("not-written");
    let out = repo.run(&["restore", "latest", "--to-device", target.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("the patterns select 7 ("), "{err}");
    assert_eq!(err.matches("/f").count(), 5, "five names: {err}");
    assert!(err.contains("narrow them to one"), "{err}");
    assert!(!target.exists(), "nothing written");
}
