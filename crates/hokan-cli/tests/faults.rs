//! The `hokan` binary on its worst day: full disks, damaged packs and
//! snapshots, odd paths, sparse files. Regression tests for the issue
//! "Nothing lost, nothing hung"; tests that need root (mounting a tmpfs)
//! say why they skip without it.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hokan_core::sample::{Kind, generate};

/// Runs with a deadline: a hang is a failure, not a stuck CI job.
fn run_deadline(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "hung for {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A tmpfs of `size` mounted for the test, unmounted on drop; `None` (with
/// the reason printed) where this process may not mount. The temporary
/// directory under it is removed after the unmount.
struct Tmpfs(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
            return None;
        }
        Some(Tmpfs(dir.path().to_path_buf(), dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

fn tree(dir: &Path, files: usize, size: usize) {
    for i in 0..files {
        let sub = dir.join(format!("d{}", i % 9));
        std::fs::create_dir_all(&sub).unwrap();
        let kind = if i % 3 == 0 { Kind::Text } else { Kind::Random };
        std::fs::write(
            sub.join(format!("f{i}")),
            generate(kind, size, 7 + i as u64),
        )
        .unwrap();
    }
}

/// Item 1 (and 10): a backup into a disk that fills up ends promptly with
/// an error that says the disk is full; it does not panic or hang; the
/// repository stays readable and the next backup, with room, works.
/// A restore into a full disk stops with the count of what was restored.
#[test]
fn a_full_disk_ends_backup_and_restore_cleanly() {
    let Some(small) = Tmpfs::mount("24m") else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), 400, 150_000);
    let cache = tempfile::tempdir().unwrap();
    let repo = small.0.join("repo");
    let repo = repo.to_str().unwrap();
    init(repo, cache.path());
    let mut c = hokan(repo, cache.path());
    c.args(["backup"]).arg(src.path());
    let out = run_deadline(c, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("is full"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        snapshots(repo, cache.path()).is_empty(),
        "nothing committed"
    );
    let mut c = hokan(repo, cache.path());
    c.args(["check"]);
    ok(&run(c));

    // With room, the same repository takes the backup.
    let big = tempfile::tempdir().unwrap();
    let moved = big.path().join("repo");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(repo)
        .arg(&moved)
        .output()
        .unwrap();
    assert!(cp.status.success());
    let moved = moved.to_str().unwrap();
    let mut c = hokan(moved, cache.path());
    c.args(["backup"]).arg(src.path());
    ok(&run_deadline(c, Duration::from_secs(120)));

    // A restore into the full disk: a clear error, not "restored N files".
    std::fs::remove_dir_all(small.0.join("repo")).unwrap();
    let mut c = hokan(moved, cache.path());
    c.args(["restore", "latest", "--target"])
        .arg(small.0.join("out"));
    let out = run_deadline(c, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("No space left"), "{}", stderr(&out));
}

/// Item 5: a restore goes on past damaged data, names every file it could
/// not restore, restores the others bit for bit, and exits 1.
#[test]
fn restore_goes_on_past_damage_and_names_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tree(&src, 60, 90_000);
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    let cache = dir.path().join("cache");
    init(repo, &cache);
    let mut c = hokan(repo, &cache);
    c.args(["backup"]).arg(&src);
    ok(&run(c));
    // Damage one data pack (the biggest).
    let mut packs = walk(&dir.path().join("repo/data"));
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let victim = packs.last().unwrap();
    let mut b = std::fs::read(victim).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x20;
    std::fs::write(victim, &b).unwrap();
    let target = dir.path().join("out");
    let mut c = hokan(repo, &cache);
    c.args(["restore", "latest", "--target"]).arg(&target);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("could not be restored"), "{err}");
    let named: Vec<&str> = err.lines().filter(|l| l.contains("not restored")).collect();
    assert!(!named.is_empty(), "{err}");
    // Every file that is there is whole; the missing ones are the named ones.
    let restored_root = target.join(src.strip_prefix("/").unwrap());
    let mut missing = 0;
    for f in walk(&src) {
        let rel = f.strip_prefix(&src).unwrap();
        match std::fs::read(restored_root.join(rel)) {
            Ok(data) => assert!(data == std::fs::read(&f).unwrap(), "{rel:?}"),
            Err(_) => {
                missing += 1;
                assert!(
                    named.iter().any(|l| l.contains(&*rel.to_string_lossy())),
                    "{rel:?}"
                );
            }
        }
    }
    assert_eq!(missing, named.len());
    assert!(missing < 60, "the others were restored");
    // check names the same files and advises the repair that helps.
    let mut c = hokan(repo, &cache);
    c.args(["check", "--read-data"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("affected:"));
    assert!(stderr(&out).contains("repair packs"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("check --read-data` also"),
        "{}",
        stderr(&out)
    );
}

/// Directories `levels` deep, each name `len` long, and a file at the
/// bottom: deeper than any absolute path may be (PATH_MAX), made with
/// relative calls from directory handles.
fn deep_tree(top: &Path, levels: usize, len: usize) {
    use std::ffi::CString;
    let name = CString::new("d".repeat(len)).unwrap();
    let top = CString::new(top.to_str().unwrap()).unwrap();
    // SAFETY: plain system calls on descriptors this function owns.
    unsafe {
        let mut fd = libc::open(top.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
        assert!(fd >= 0);
        for _ in 0..levels {
            assert_eq!(libc::mkdirat(fd, name.as_ptr(), 0o755), 0);
            let next = libc::openat(fd, name.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
            assert!(next >= 0);
            libc::close(fd);
            fd = next;
        }
        let f = CString::new("f").unwrap();
        let file = libc::openat(fd, f.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644);
        assert!(file >= 0);
        libc::close(file);
        libc::close(fd);
    }
}

/// Item 10: messages say what happened.
#[test]
fn messages_name_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // A repository path that is a file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let mut c = hokan(file.to_str().unwrap(), &cache);
    c.args(["snapshots"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(10));
    assert!(stderr(&out).contains("is a file"), "{}", stderr(&out));

    // A path too long to reach is not "vanished".
    let src = dir.path().join("deep");
    std::fs::create_dir(&src).unwrap();
    deep_tree(&src, 25, 200);
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    init(repo, &cache);
    let mut c = hokan(repo, &cache);
    c.args(["backup"]).arg(&src);
    let out = run(c);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("too long"), "{err}");
    assert!(!err.contains("vanished"), "{err}");

    // prune with a lost index: one clear sentence.
    for p in walk(&dir.path().join("repo/index")) {
        std::fs::remove_file(p).unwrap();
    }
    let mut c = hokan(repo, &cache);
    c.args(["prune"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("in no index") && err.contains("nothing was deleted"),
        "{err}"
    );
    assert!(err.contains("repair index"), "{err}");
    assert!(!err.contains("(nothing was deleted) is missing"), "{err}");
}

/// Item 10: a read-only file system is named as such, not as an outage.
#[test]
fn a_read_only_repository_is_named() {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let repo = fs.0.join("repo");
    let repo = repo.to_str().unwrap();
    init(repo, cache.path());
    let remount = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&fs.0)
        .status()
        .unwrap();
    assert!(remount.success());
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), b"data").unwrap();
    let mut c = hokan(repo, cache.path());
    c.args(["backup"]).arg(src.path());
    let out = run_deadline(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("read-only"), "{err}");
    assert!(!err.contains("unreachable"), "{err}");
}

/// Item 8: objects are flushed to stable storage (files and directories).
#[test]
fn writes_are_flushed_to_stable_storage() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("skipped: strace is not installed (.ci/run installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    let cache = dir.path().join("cache");
    init(repo, &cache);
    let src = dir.path().join("src");
    tree(&src, 5, 10_000);
    let log = dir.path().join("strace.log");
    let mut c = Command::new("strace");
    c.args(["-f", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_hokan"))
        .args(["-r", repo, "--cache-dir"])
        .arg(&cache)
        .env("HOKAN_PASSWORD", "test password")
        .arg("backup")
        .arg(&src);
    ok(&run(c));
    let calls = std::fs::read_to_string(&log).unwrap();
    let syncs = calls.lines().filter(|l| l.contains("fsync(")).count();
    // At least a pack, an index file, a snapshot and their directories.
    assert!(syncs >= 6, "{syncs} fsync calls:\n{calls}");
}

/// Item 11: a sparse file is read by its data, not in full; its holes are
/// stored as holes and restored as holes.
#[test]
fn sparse_files_are_read_by_their_data() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let big = src.join("disk.img");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(10 << 30).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&generate(Kind::Random, 8192, 1), 5 << 30)
        .unwrap();
    drop(f);
    if std::fs::metadata(&big).unwrap().blocks() * 512 > 1 << 20 {
        eprintln!("skipped: this file system does not keep sparse files sparse");
        return;
    }
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    let cache = dir.path().join("cache");
    init(repo, &cache);
    let mut c = hokan(repo, &cache);
    c.args(["--json", "backup"]).arg(&src);
    let out = ok(&run_deadline(c, Duration::from_secs(120)));
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(
        summary["summary"]["data_added"].as_u64().unwrap() < 1 << 20,
        "{summary}"
    );
    let target = dir.path().join("out");
    let mut c = hokan(repo, &cache);
    c.args(["restore", "latest", "--target"]).arg(&target);
    ok(&run_deadline(c, Duration::from_secs(120)));
    let restored = target.join(big.strip_prefix("/").unwrap());
    let md = std::fs::metadata(&restored).unwrap();
    assert_eq!(md.len(), 10 << 30);
    assert!(
        md.blocks() * 512 < 1 << 20,
        "restored sparse: {} blocks",
        md.blocks()
    );
    let f = std::fs::File::open(&restored).unwrap();
    let mut buf = vec![0u8; 8192];
    f.read_exact_at(&mut buf, 5 << 30).unwrap();
    assert!(buf == generate(Kind::Random, 8192, 1));
    let mut zero = vec![1u8; 4096];
    f.read_exact_at(&mut zero, 7 << 30).unwrap();
    assert!(zero.iter().all(|&b| b == 0));
}

/// Item 3: a damaged snapshot file is named and the others listed.
#[test]
fn a_damaged_snapshot_file_is_named_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    let cache = dir.path().join("cache");
    init(repo, &cache);
    for name in ["a", "b"] {
        let mut c = hokan(repo, &cache);
        c.args(["backup", "--stdin", "--stdin-filename", name]);
        ok(&run_with_input(c, name.as_bytes()));
    }
    let snaps = walk(&dir.path().join("repo/snapshots"));
    std::fs::write(&snaps[0], b"").unwrap();
    let mut c = hokan(repo, &cache);
    c.args(["--no-cache", "snapshots"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 snapshot"));
    assert!(stderr(&out).contains("cannot be read"), "{}", stderr(&out));
    let id = snaps[0].file_name().unwrap().to_string_lossy()[..8].to_string();
    let mut c = hokan(repo, &cache);
    c.args(["forget", &id]);
    ok(&run(c));
    let mut c = hokan(repo, &cache);
    c.args(["prune", "--instant-delete"]);
    ok(&run(c));
    let mut c = hokan(repo, &cache);
    c.args(["check", "--read-data"]);
    ok(&run(c));
}
