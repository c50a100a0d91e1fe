//! End to end, through the library: a tree with every file type and the
//! metadata hokan keeps round-trips exactly, and a second snapshot of an
//! edited tree restores the edit while the first still restores the
//! original.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hokan::core::fs::{NoProgress, Overwrite, RestoreOptions, Restorer};
use hokan::core::sample::{Kind, generate};
use hokan::repo::conformance::{test_init_options, test_open_options};
use hokan::repo::{FsBackup, IndexedRepository, Repository, SnapshotEntry};

/// Everything we compare about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    atime: (i64, i64),
    rdev: u64,
    target: Option<PathBuf>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Hash of the content, for files.
    content: Option<String>,
    /// Index of this entry's hard-link group (by inode), if it has links.
    link_group: Option<usize>,
    sparse: bool,
}

fn kind(md: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = md.file_type();
    match () {
        _ if t.is_dir() => "dir",
        _ if t.is_symlink() => "symlink",
        _ if t.is_fifo() => "fifo",
        _ if t.is_char_device() => "chardev",
        _ if t.is_block_device() => "blockdev",
        _ if t.is_socket() => "socket",
        _ => "file",
    }
}

/// Metadata of every entry below `root`, keyed by relative path. Content
/// is read last and with O_NOATIME, so reading does not disturb times.
fn snapshot_of(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, usize> = BTreeMap::new();
    let mut paths = Vec::new();
    collect(root, root, &mut paths);
    for rel in paths {
        let p = root.join(&rel);
        let md = p.symlink_metadata().unwrap();
        let k = kind(&md);
        let mut xattrs = BTreeMap::new();
        if k != "symlink" {
            for name in xattr::list(&p).unwrap() {
                xattrs.insert(
                    name.as_bytes().to_vec(),
                    xattr::get(&p, &name).unwrap().unwrap(),
                );
            }
        }
        // readlink updates a symlink's atime: put it back, so looking at the
        // source does not change what the backup then records.
        let target = (k == "symlink").then(|| {
            let t = std::fs::read_link(&p).unwrap();
            let ts = |s: i64, n: i64| rustix::fs::Timespec {
                tv_sec: s,
                tv_nsec: n,
            };
            rustix::fs::utimensat(
                rustix::fs::CWD,
                &p,
                &rustix::fs::Timestamps {
                    last_access: ts(md.atime(), md.atime_nsec()),
                    last_modification: ts(md.mtime(), md.mtime_nsec()),
                },
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .unwrap();
            t
        });
        let link_group = (k == "file" && md.nlink() > 1).then(|| {
            let n = inodes.len();
            *inodes.entry(md.ino()).or_insert(n)
        });
        out.insert(
            rel,
            Entry {
                kind: k,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                size: if k == "file" || k == "symlink" {
                    md.size()
                } else {
                    0
                },
                mtime: (md.mtime(), md.mtime_nsec()),
                atime: if k == "dir" {
                    (0, 0)
                } else {
                    (md.atime(), md.atime_nsec())
                },
                rdev: if k == "chardev" || k == "blockdev" {
                    md.rdev()
                } else {
                    0
                },
                target,
                xattrs,
                content: None,
                link_group,
                sparse: k == "file" && md.size() > (8 << 20) && md.blocks() * 512 < md.size() / 2,
            },
        );
    }
    for (rel, e) in out.iter_mut() {
        if e.kind == "file" {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::File::options()
                .read(true)
                .custom_flags(libc::O_NOATIME)
                .open(root.join(rel))
                .unwrap();
            let mut h = blake3::Hasher::new();
            std::io::copy(&mut f, &mut h).unwrap();
            e.content = Some(h.finalize().to_hex().to_string());
        }
    }
    out
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        out.push(p.strip_prefix(root).unwrap().to_path_buf());
        if p.symlink_metadata().unwrap().is_dir() {
            collect(root, &p, out);
        }
    }
}

fn set_times(p: &Path, secs: i64, nanos: i64) {
    let ts = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// Builds the tree under `root`. Returns whether device nodes were made
/// (they need CAP_MKNOD).
fn build_tree(root: &Path) -> bool {
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    };
    w("docs/readme.txt", b"hello, hokan\n");
    w("docs/empty", b"");
    w(
        "docs/big.bin",
        &[
            generate(Kind::Random, 5 << 20, 1),
            generate(Kind::Text, 15 << 20, 2),
        ]
        .concat(),
    );
    let setuid = w("bin/tool", b"#!/bin/sh\necho tool\n");
    std::fs::set_permissions(&setuid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let secret = w("private/key", b"do not read");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ro = w("docs/readonly", b"frozen");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(root.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    std::fs::create_dir_all(root.join("sticky")).unwrap();
    std::fs::set_permissions(root.join("sticky"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    // Names that are not UTF-8, and that are.
    w("names/caf\u{e9} \u{65e5}\u{672c}.txt", b"unicode");
    let odd = root
        .join("names")
        .join(OsStr::from_bytes(b"bad-\xff\xfe-name"));
    std::fs::write(&odd, b"latin-1 name").unwrap();
    // Links of every kind.
    std::os::unix::fs::symlink("../docs/readme.txt", root.join("names/link-to-readme")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("names/dangling")).unwrap();
    std::os::unix::fs::symlink("docs", root.join("dir-link")).unwrap();
    let first = w("links/a", b"shared by three names");
    std::fs::create_dir_all(root.join("links/sub")).unwrap();
    std::fs::hard_link(&first, root.join("links/sub/b")).unwrap();
    std::fs::hard_link(&first, root.join("links/c")).unwrap();
    // Special files.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("special-fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    let devices = rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("dev-null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .is_ok()
        && rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("dev-loop"),
            rustix::fs::FileType::BlockDevice,
            rustix::fs::Mode::from_raw_mode(0o660),
            rustix::fs::makedev(7, 9),
        )
        .is_ok();
    // Extended attributes on a file and a directory.
    xattr::set(root.join("docs/readme.txt"), "user.comment", b"a readme").unwrap();
    xattr::set(root.join("docs/readme.txt"), "user.binary", &[0, 1, 2, 255]).unwrap();
    xattr::set(root.join("docs"), "user.dir", b"on a directory").unwrap();
    // A sparse file: data at both ends, 30 MiB of hole between.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(root.join("sparse.img")).unwrap();
        f.write_all(&generate(Kind::Random, 1 << 20, 3)).unwrap();
        f.seek(SeekFrom::Start(31 << 20)).unwrap();
        f.write_all(&generate(Kind::Random, 1 << 20, 4)).unwrap();
    }
    // Owners other than ours (we run as root in CI).
    if hokan::core::fs::is_root() {
        std::os::unix::fs::lchown(root.join("docs/readme.txt"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("names/link-to-readme"), Some(4321), Some(8765))
            .unwrap();
        std::os::unix::fs::chown(root.join("private"), Some(2000), Some(2000)).unwrap();
    }
    // Times with nanoseconds on everything, children before parents.
    let mut all = Vec::new();
    collect(root, root, &mut all);
    for (i, rel) in all.iter().enumerate().rev() {
        set_times(
            &root.join(rel),
            1_600_000_000 + i as i64 * 1000,
            123_456_789 - i as i64,
        );
    }
    devices
}

fn repo(dir: &Path) -> IndexedRepository {
    let loc = dir.join("repo");
    let loc = loc.to_str().unwrap();
    Repository::init(
        loc,
        b"pw",
        test_init_options(),
        test_open_options(&dir.join("cache")),
    )
    .unwrap();
    Repository::open(loc, b"pw", test_open_options(&dir.join("cache")))
        .unwrap()
        .load_index()
        .unwrap()
}

fn backup(repo: &mut IndexedRepository, path: &Path) -> SnapshotEntry {
    let r = repo
        .backup_paths(&[path.to_path_buf()], &FsBackup::default(), &NoProgress)
        .unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    r.entry
}

fn restore(
    repo: &IndexedRepository,
    s: &SnapshotEntry,
    target: &Path,
) -> hokan::core::fs::RestoreSummary {
    let reader = repo.reader();
    let options = RestoreOptions {
        verify: true,
        owners: hokan::core::fs::is_root(),
        sparse: true,
        ..Default::default()
    };
    let r = Restorer::new(&reader, options, &NoProgress)
        .unwrap()
        .restore(&s.snapshot.tree, Path::new("/"), target)
        .unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.summary.verify_failures, 0);
    r.summary
}

/// Restored trees hold the backed-up path under its absolute parents.
fn restored_root(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").unwrap())
}

fn assert_same(expected: &BTreeMap<PathBuf, Entry>, actual: &BTreeMap<PathBuf, Entry>) {
    let keys_e: Vec<_> = expected.keys().collect();
    let keys_a: Vec<_> = actual.keys().collect();
    assert_eq!(keys_a, keys_e, "the same entries");
    for (path, e) in expected {
        assert_eq!(&actual[path], e, "{}", path.display());
    }
}

#[test]
fn every_file_type_and_its_metadata_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let devices = build_tree(&src);
    // A socket is recorded but never restored (it belongs to a process).
    let _listener = std::os::unix::net::UnixListener::bind(src.join("a.sock")).unwrap();
    set_times(&src, 1_600_000_000, 5);
    let mut expected = snapshot_of(&src);
    assert_eq!(expected[Path::new("a.sock")].kind, "socket");
    expected.remove(Path::new("a.sock"));
    assert!(
        expected[Path::new("sparse.img")].sparse,
        "the source file is sparse"
    );
    assert_eq!(
        expected.values().filter(|e| e.link_group.is_some()).count(),
        3
    );
    if devices {
        assert_eq!(expected[Path::new("dev-null")].kind, "chardev");
    }

    let mut repo = repo(dir.path());
    let snap = backup(&mut repo, &src);
    assert_eq!(
        snap.snapshot.paths,
        vec![src.to_string_lossy().into_owned()]
    );
    let target = dir.path().join("restored");
    let summary = restore(&repo, &snap, &target);
    assert!(summary.verified >= 10, "{summary:?}");
    let actual = snapshot_of(&restored_root(&target, &src));
    assert_same(&expected, &actual);
}

#[test]
fn an_edited_tree_restores_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    build_tree(&src);
    let original = snapshot_of(&src);
    let mut repo = repo(dir.path());
    let first = backup(&mut repo, &src);

    // Edit: change content, append, delete, add, chmod, retarget a link.
    std::fs::write(src.join("docs/readme.txt"), b"hello again, hokan\n").unwrap();
    let mut big = std::fs::read(src.join("docs/big.bin")).unwrap();
    big.splice(7 << 20..7 << 20, b"inserted in the middle".iter().copied());
    std::fs::write(src.join("docs/big.bin"), &big).unwrap();
    std::fs::remove_file(src.join("private/key")).unwrap();
    std::fs::write(src.join("private/new-key"), b"rotated").unwrap();
    std::fs::set_permissions(src.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_file(src.join("names/dangling")).unwrap();
    std::os::unix::fs::symlink("/elsewhere", src.join("names/dangling")).unwrap();
    let edited = snapshot_of(&src);
    let second = backup(&mut repo, &src);
    assert_eq!(
        second.snapshot.parent,
        Some(first.id),
        "the first snapshot is the parent"
    );
    let s = &second.snapshot.summary;
    // 12 regular files: 3 changed (content, or mode and so ctime), 1 new.
    assert_eq!(
        (s.count("files_unmodified"), s.count("files_changed")),
        (8, 3),
        "unchanged files were not read again: {s:?}"
    );
    assert_eq!(s.count("files_new"), 1, "{s:?}");
    // The chunks around the insertion (usually one or two, each up to the
    // 4 MiB maximum; where they fall depends on the repository's random
    // chunker seed), the small files and the trees: far less than the file.
    assert!(
        s.bytes_added < big.len() as u64 / 4,
        "only the edits were stored: {s:?}"
    );

    for (snap, want) in [(&second, &edited), (&first, &original)] {
        let target = dir.path().join(format!("restore-{}", snap.id.short()));
        restore(&repo, snap, &target);
        assert_same(want, &snapshot_of(&restored_root(&target, &src)));
    }

    // Restoring over an existing tree: `never` keeps what is there,
    // `always` (the default) brings back the snapshot.
    let target = dir.path().join("restore-over");
    restore(&repo, &second, &target);
    let reader = repo.reader();
    let never = RestoreOptions {
        overwrite: Overwrite::Never,
        ..Default::default()
    };
    let r = Restorer::new(&reader, never, &NoProgress)
        .unwrap()
        .restore(&first.snapshot.tree, Path::new("/"), &target)
        .unwrap();
    assert!(r.summary.skipped > 10, "{:?}", r.summary);
    let root = restored_root(&target, &src);
    assert_eq!(
        std::fs::read(root.join("docs/readme.txt")).unwrap(),
        b"hello again, hokan\n"
    );
    let if_changed = RestoreOptions {
        overwrite: Overwrite::IfChanged,
        owners: hokan::core::fs::is_root(),
        ..Default::default()
    };
    let r = Restorer::new(&reader, if_changed, &NoProgress)
        .unwrap()
        .restore(&first.snapshot.tree, Path::new("/"), &target)
        .unwrap();
    assert!(
        r.summary.files >= 2 && r.summary.skipped >= 5,
        "{:?}",
        r.summary
    );
    // Unchanged content kept, metadata brought back: the tree is the first
    // snapshot's again, but for the file it never had (restore deletes nothing).
    let mut now = snapshot_of(&root);
    assert!(now.remove(Path::new("private/new-key")).is_some());
    assert_same(&original, &now);
}
