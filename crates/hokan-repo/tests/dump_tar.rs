//! A snapshot, or a directory of it, as a tar stream the system's `tar`
//! extracts: contents, hard links, symlinks and device numbers whole.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use common::{backup, memory_store, open};
use hokan_repo::{InitOptions, KdfParams};

fn untar(archive: &[u8], into: &Path) {
    let file = into.with_extension("tar");
    std::fs::write(&file, archive).unwrap();
    std::fs::create_dir_all(into).unwrap();
    let out = std::process::Command::new("tar")
        .arg("-xpf")
        .arg(&file)
        .arg("-C")
        .arg(into)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_directory_and_a_whole_snapshot_extract_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("data");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/file"), b"content\n".repeat(1000)).unwrap();
    std::fs::hard_link(src.join("sub/file"), src.join("sub/again")).unwrap();
    std::os::unix::fs::symlink("sub/file", src.join("link")).unwrap();
    // A device node whose numbers need the high bits of both (as root;
    // elsewhere the device is left out and the rest still checked).
    let rdev = libc::makedev(259, 70000);
    let dev = std::ffi::CString::new(src.join("dev").to_str().unwrap()).unwrap();
    let devices = unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o600, rdev) } == 0;

    let store = memory_store("dump");
    let init = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    hokan_repo::Repository::init_store(store.clone(), b"pw", init, common::options()).unwrap();
    let saved = backup(&store, &src);
    let repo = open(&store).load_index().unwrap();

    let mut archive = Vec::new();
    repo.dump_tar(&saved.snapshot, src.to_str().unwrap(), &mut archive)
        .unwrap();
    let x = dir.path().join("x");
    untar(&archive, &x);
    let got = x.join("data");
    assert_eq!(
        std::fs::read(got.join("sub/file")).unwrap(),
        b"content\n".repeat(1000)
    );
    let (a, b) = (
        std::fs::metadata(got.join("sub/file")).unwrap(),
        std::fs::metadata(got.join("sub/again")).unwrap(),
    );
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "one file, linked twice");
    assert_eq!(
        std::fs::read_link(got.join("link")).unwrap(),
        Path::new("sub/file")
    );
    if devices {
        let md = std::fs::symlink_metadata(got.join("dev")).unwrap();
        assert!(md.file_type().is_char_device());
        assert_eq!(md.rdev(), rdev, "major 259, minor 70000");
    }

    // The whole snapshot: its paths from the root down.
    let mut whole = Vec::new();
    repo.dump_tar(&saved.snapshot, "/", &mut whole).unwrap();
    let y = dir.path().join("y");
    untar(&whole, &y);
    let inside = y.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(inside.join("sub/again")).unwrap(),
        b"content\n".repeat(1000)
    );

    // A path that is not there is named.
    let err = repo
        .dump_tar(&saved.snapshot, "/nothing/here", &mut Vec::new())
        .unwrap_err();
    assert!(err.to_string().contains("/nothing/here"), "{err}");
}
