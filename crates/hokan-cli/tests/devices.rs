//! Block devices through the `hokan` binary, on loop devices: `backup
//! --read-special` stores a device's content (zeros as holes), an unchanged
//! device stores nothing new, `dump` and `restore --to-device` give the
//! content back, a restore to a directory writes a sparse image file.
//!
//! Loop devices need root: without them the tests say why and pass, unless
//! `HOKAN_REQUIRE_LOOP=1` asks for them.

mod common;

use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use hokan_core::sample::{Kind, generate};

const MIB: u64 = 1 << 20;

/// An attached loop device, detached when dropped.
struct Loop(PathBuf);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

/// Attaches `image`, or says why not (then the test should return).
fn attach(image: &Path) -> Option<Loop> {
    let skip = |why: String| {
        if std::env::var("HOKAN_REQUIRE_LOOP").as_deref() == Ok("1") {
            panic!("HOKAN_REQUIRE_LOOP=1, but {why}");
        }
        eprintln!("skipped: {why} (loop devices need root and losetup)");
        None
    };
    if !hokan_core::fs::is_root() {
        return skip("not running as root".into());
    }
    // Tests running at once may race for the same free device: retry.
    let mut last = String::new();
    for _ in 0..5 {
        match Command::new("losetup")
            .args(["--find", "--show"])
            .arg(image)
            .output()
        {
            Ok(out) if out.status.success() => {
                let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
                return Some(Loop(PathBuf::from(dev)));
            }
            Ok(out) => last = String::from_utf8_lossy(&out.stderr).into_owned(),
            Err(e) => return skip(format!("losetup cannot run: {e}")),
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    skip(format!("losetup failed: {}", last.trim()))
}

/// A sparse image of `size` bytes with random data at a few offsets.
fn image(path: &Path, size: u64, seed: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    for (i, (at, len)) in [(MIB, 2 * MIB), (20 * MIB + 4096, MIB), (size - MIB, MIB)]
        .into_iter()
        .enumerate()
    {
        if at + len <= size {
            f.write_all_at(&generate(Kind::Random, len as usize, seed + i as u64), at)
                .unwrap();
        }
    }
    f.sync_all().unwrap();
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.lines().last().expect("a summary line")).unwrap()
}

fn same(a: &Path, b: &Path) {
    let out = Command::new("cmp").arg(a).arg(b).output().unwrap();
    assert!(
        out.status.success(),
        "{} and {} differ: {}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn device_backup_dump_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let (img, img2) = (dir.path().join("disk.img"), dir.path().join("copy.img"));
    image(&img, 64 * MIB, 1);
    // The target holds other data, which the holes must overwrite.
    image(&img2, 64 * MIB, 100);
    let Some(dev) = attach(&img) else { return };
    let Some(dev2) = attach(&img2) else { return };
    let repo = dir.path().join("repo").to_string_lossy().into_owned();
    let cache = dir.path().join("cache");
    init(&repo, &cache);
    let backup = || {
        let mut c = hokan(&repo, &cache);
        c.args(["--json", "backup", "--read-special"]).arg(&dev.0);
        json(&ok(&run(c)))["summary"].clone()
    };
    let first = backup();
    assert_eq!(first["total_bytes"], 64 * MIB, "{first}");
    // 4 MiB of random data; the zeros around it are holes.
    let added = first["data_added"].as_u64().unwrap();
    assert!((4 * MIB..32 * MIB).contains(&added), "{first}");

    let mut c = hokan(&repo, &cache);
    c.args(["ls", "--long", "--json", "latest"]);
    let node = ok(&run(c))
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["path"] == dev.0.to_string_lossy().as_ref())
        .expect("the device is listed");
    assert_eq!(node["type"], "blockdev");
    assert_eq!(node["size"], 64 * MIB);

    let second = backup();
    assert_eq!(second["data_added"], 0, "unchanged device: {second}");
    assert_eq!(second["files_unmodified"], 1, "{second}");

    let dumped = dir.path().join("dumped");
    let mut c = hokan(&repo, &cache);
    c.args(["dump", "latest"]).arg(&dev.0);
    c.stdout(std::fs::File::create(&dumped).unwrap());
    assert!(c.status().unwrap().success());
    same(&dumped, &dev.0);

    let mut c = hokan(&repo, &cache);
    c.args(["restore", "latest", "--include"])
        .arg(&dev.0)
        .arg("--to-device")
        .arg(&dev2.0);
    ok(&run(c));
    same(&dev.0, &dev2.0);

    let target = dir.path().join("restored");
    let mut c = hokan(&repo, &cache);
    c.args(["restore", "latest", "--target"]).arg(&target);
    ok(&run(c));
    let file = target.join(dev.0.strip_prefix("/").unwrap());
    let md = std::fs::symlink_metadata(&file).unwrap();
    assert!(md.is_file(), "an image file, not a device node");
    same(&file, &dev.0);
    // Holes at block size, also inside chunks that mix data and zeros:
    // 4 MiB of data, a few partial blocks around it.
    assert!(
        md.blocks() * 512 <= 4 * MIB + 64 * 1024,
        "the image is sparse to the block: {} bytes allocated of {}",
        md.blocks() * 512,
        md.len()
    );
}

#[test]
fn device_restore_refusals_and_default_node() {
    let dir = tempfile::tempdir().unwrap();
    let (img, small) = (dir.path().join("disk.img"), dir.path().join("small.img"));
    image(&img, 16 * MIB, 7);
    image(&small, 8 * MIB, 8);
    let Some(dev) = attach(&img) else { return };
    let Some(small_dev) = attach(&small) else {
        return;
    };
    let repo = dir.path().join("repo").to_string_lossy().into_owned();
    let cache = dir.path().join("cache");
    init(&repo, &cache);

    // Without the flag, the device node alone.
    let mut c = hokan(&repo, &cache);
    c.args(["--json", "backup"]).arg(&dev.0);
    let plain = json(&ok(&run(c)));
    assert_eq!(plain["summary"]["total_bytes"], 0, "{plain}");
    let mut c = hokan(&repo, &cache);
    c.args(["restore", "latest", "--include"])
        .arg(&dev.0)
        .arg("--to-device")
        .arg(&small_dev.0);
    let out = run(c);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("select 0"), "{}", stderr(&out));

    let mut c = hokan(&repo, &cache);
    c.args(["backup", "--read-special"]).arg(&dev.0);
    ok(&run(c));
    let restore_to = |target: &Path| {
        let mut c = hokan(&repo, &cache);
        c.args(["restore", "latest", "--include"])
            .arg(&dev.0)
            .arg("--to-device")
            .arg(target);
        stderr(&run(c))
    };
    let too_small = restore_to(&small_dev.0);
    assert!(
        too_small.contains(&format!("holds {} bytes", 8 * MIB))
            && too_small.contains(&format!("is {} bytes", 16 * MIB)),
        "{too_small}"
    );
    let not_device = restore_to(&small);
    assert!(not_device.contains("not a block device"), "{not_device}");

    // A restore to a directory (to `/` in the worst case) leaves a device
    // node it meets in place instead of swapping it for an image file.
    let target = dir.path().join("root");
    let node = target.join(dev.0.strip_prefix("/").unwrap());
    std::fs::create_dir_all(node.parent().unwrap()).unwrap();
    let rdev = std::fs::metadata(&dev.0).unwrap().rdev();
    // `cp -a` copies a device node as a node (-R: special files as such).
    let cp = Command::new("cp").arg("-a").arg(&dev.0).arg(&node).status();
    assert!(
        cp.unwrap().success(),
        "cp -a {} {}",
        dev.0.display(),
        node.display()
    );
    let mut c = hokan(&repo, &cache);
    c.args(["restore", "latest", "--target"]).arg(&target);
    let out = run(c);
    assert!(
        !out.status.success(),
        "a skipped entry is reported by the exit code"
    );
    assert!(
        stderr(&out).contains("a block device is there") && stderr(&out).contains("--to-device"),
        "{}",
        stderr(&out)
    );
    let md = std::fs::symlink_metadata(&node).unwrap();
    assert!(
        md.file_type().is_block_device(),
        "the node is still a device"
    );
    assert_eq!(md.rdev(), rdev);

    // A device named through a symlink (as LVM names them) is read too.
    let link = dir.path().join("volume");
    std::os::unix::fs::symlink(&dev.0, &link).unwrap();
    let mut c = hokan(&repo, &cache);
    c.args(["backup", "--read-special"]).arg(&link);
    ok(&run(c));
    let dumped = dir.path().join("dumped");
    let mut c = hokan(&repo, &cache);
    c.args(["dump", "latest"]).arg(&link);
    c.stdout(std::fs::File::create(&dumped).unwrap());
    assert!(c.status().unwrap().success());
    same(&dumped, &dev.0);
}
