//! Measures how small files are best stored: the group settings
//! (`small_blob`, `group_size`, zstd level) on a series of trees, and
//! alternatives that would change the format (member order inside a group,
//! a repository dictionary), measured offline on one tree.
//!
//! ```text
//! # every combination of the given settings, on a series of trees synced in
//! # turn into one live directory (as benches/compare/series.sh does):
//! cargo run --release --example small_blobs -- series --live /tmp/live \
//!     --small 0,16K,64K,256K --group 128K,512K,1M,4M --level 3 DIR1 DIR2 ...
//! # alternatives, on one tree:
//! cargo run --release --example small_blobs -- offline DIR
//! ```
//!
//! `series` prints, per setting, the bytes of packs after each tree, the
//! first backup's and the last restore's time (in memory, one process; the
//! other settings' runs are in the same process, so compare within a run),
//! and the tree packs' share. `offline` prints, for the files below 64 KiB
//! of DIR, what zstd makes of them alone, in groups in walk order, in groups
//! ordered by extension, and with a dictionary trained on a sample.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use hokan::core::fs::{Archiver, Excludes, NoProgress, RestoreOptions, Restorer};
use hokan::core::sample::golden_key;
use hokan::core::{
    BlobReader, BlobType, BlobWriter, Compression, FinishedPack, Index, MasterKey, PackId, TreeId,
    WriterConfig,
};

fn parse_size(s: &str) -> u32 {
    let (n, mul) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    n.parse::<u32>().expect("a size like 64K") * mul
}

fn list<T>(s: &str, f: impl Fn(&str) -> T) -> Vec<T> {
    s.split(',').map(f).collect()
}

/// An in-memory repository: packs by id and their index.
#[derive(Default)]
struct Memory {
    index: Index,
    packs: HashMap<PackId, Vec<u8>>,
    data_bytes: u64,
    tree_bytes: u64,
}

impl Memory {
    fn land(&mut self, packs: Vec<FinishedPack>) {
        for p in packs {
            match p.kind {
                BlobType::Data => self.data_bytes += p.bytes.len() as u64,
                BlobType::Tree => self.tree_bytes += p.bytes.len() as u64,
            }
            self.index.insert_pack(p.id, p.kind, &p.blobs);
            self.packs.insert(p.id, p.bytes);
        }
    }
}

fn sync(from: &Path, live: &Path) {
    let status = Command::new("rsync")
        .arg("-a")
        .arg("--delete")
        .arg(format!("{}/", from.display()))
        .arg(format!("{}/", live.display()))
        .status()
        .expect("running rsync");
    assert!(status.success(), "rsync failed");
}

/// Backs up `live` into `mem` with `parent`; returns the new root and the
/// seconds taken.
fn backup(
    key: &MasterKey,
    config: WriterConfig,
    mem: &mut Memory,
    live: &Path,
    parent: Option<&TreeId>,
) -> (TreeId, f64) {
    let sink = Mutex::new(Vec::new());
    let start = Instant::now();
    let root = {
        let writer = BlobWriter::new(key, config, &mem.index, &sink).unwrap();
        let reader = BlobReader::new(key, &mem.index, &mem.packs);
        let excludes = Excludes::none();
        let archiver = Archiver::new(&writer, Some(&reader), &excludes, &NoProgress);
        let done = archiver.archive(&[live.to_path_buf()], parent).unwrap();
        writer.finish().unwrap();
        done.tree
    };
    let secs = start.elapsed().as_secs_f64();
    mem.land(sink.into_inner().unwrap());
    (root, secs)
}

fn series(args: &[String]) {
    let mut live = PathBuf::from("/tmp/small_blobs-live");
    let (mut smalls, mut groups, mut levels) = (
        list("0,16K,64K,128K,256K", parse_size),
        list("512K", parse_size),
        vec![3],
    );
    let mut dirs = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().expect("a value").clone();
        match a.as_str() {
            "--live" => live = value().into(),
            "--small" => smalls = list(&value(), parse_size),
            "--group" => groups = list(&value(), parse_size),
            "--level" => levels = list(&value(), |s| s.parse().expect("a zstd level")),
            d => dirs.push(PathBuf::from(d)),
        }
    }
    assert!(!dirs.is_empty(), "name the trees of the series");
    let key = golden_key();
    let target = live.with_extension("restore");
    println!(
        "{:>6} {:>6} {:>5}  {:>10} {:>10} {:>8}  {:>8} {:>9}  stored MB after each tree",
        "small", "group", "level", "stored MB", "trees MB", "first MB", "backup s", "restore s"
    );
    for &level in &levels {
        for &group in &groups {
            for &small in &smalls {
                let config = WriterConfig {
                    compression: Compression::zstd(level).unwrap(),
                    small_blob: small,
                    group_size: group,
                    ..WriterConfig::default()
                };
                let _ = std::fs::remove_dir_all(&live);
                std::fs::create_dir_all(&live).unwrap();
                let mut mem = Memory::default();
                let mut parent = None;
                let mut after = Vec::new();
                let mut first_secs = 0.0;
                for (n, dir) in dirs.iter().enumerate() {
                    sync(dir, &live);
                    let (root, secs) = backup(&key, config, &mut mem, &live, parent.as_ref());
                    if n == 0 {
                        first_secs = secs;
                    }
                    parent = Some(root);
                    after.push((mem.data_bytes + mem.tree_bytes) as f64 / 1e6);
                }
                let _ = std::fs::remove_dir_all(&target);
                let start = Instant::now();
                {
                    let reader = BlobReader::new(&key, &mem.index, &mem.packs);
                    let restorer =
                        Restorer::new(&reader, RestoreOptions::default(), &NoProgress).unwrap();
                    let root = parent.as_ref().unwrap();
                    restorer.restore(root, Path::new("/"), &target).unwrap();
                }
                let restore_secs = start.elapsed().as_secs_f64();
                let _ = std::fs::remove_dir_all(&target);
                println!(
                    "{:>6} {:>6} {:>5}  {:>10.3} {:>10.3} {:>8.3}  {:>8.3} {:>9.3}  {}",
                    format!("{}K", small >> 10),
                    format!("{}K", group >> 10),
                    level,
                    after.last().unwrap(),
                    mem.tree_bytes as f64 / 1e6,
                    after[0],
                    first_secs,
                    restore_secs,
                    after
                        .iter()
                        .map(|b| format!("{b:.2}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
    }
}

/// The files of `dir` below `limit` bytes, in walk order (by name, depth
/// first, as the archiver walks), with their paths.
fn small_files(dir: &Path, limit: usize, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let md = std::fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            small_files(&p, limit, out);
        } else if md.is_file() && (md.len() as usize) < limit {
            let data = std::fs::read(&p).unwrap();
            out.push((p, data));
        }
    }
}

/// Compressed bytes of `files` cut into groups of about `group` bytes.
fn grouped(files: &[&[u8]], group: usize, level: i32, dict: Option<&[u8]>) -> usize {
    let mut c = match dict {
        Some(d) => zstd::bulk::Compressor::with_dictionary(level, d).unwrap(),
        None => zstd::bulk::Compressor::new(level).unwrap(),
    };
    let mut total = 0;
    let mut buf = Vec::new();
    for (i, f) in files.iter().enumerate() {
        buf.extend_from_slice(f);
        if buf.len() >= group || i + 1 == files.len() {
            total += c.compress(&buf).unwrap().len();
            buf.clear();
        }
    }
    total
}

fn extension(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn offline(args: &[String]) {
    let dir = PathBuf::from(args.first().expect("a directory"));
    let mut files = Vec::new();
    small_files(&dir, 64 << 10, &mut files);
    let raw: usize = files.iter().map(|(_, d)| d.len()).sum();
    println!(
        "{} files below 64 KiB, {:.2} MB; compressed MB (sizes include no seal or header):",
        files.len(),
        raw as f64 / 1e6
    );
    let walk: Vec<&[u8]> = files.iter().map(|(_, d)| &d[..]).collect();
    let mut by_ext: Vec<&(PathBuf, Vec<u8>)> = files.iter().collect();
    by_ext.sort_by_key(|(p, _)| (extension(p), p.file_name().map(|n| n.to_owned())));
    let by_ext: Vec<&[u8]> = by_ext.iter().map(|(_, d)| &d[..]).collect();

    // A dictionary as a repository might keep one: trained on every tenth
    // file of the first backup.
    let sample: Vec<&[u8]> = walk.iter().step_by(10).copied().collect();
    let dict = zstd::dict::from_samples(&sample, 112 << 10).unwrap();
    println!("  dictionary: {} bytes", dict.len());

    println!("  {:<34} {:>8}", "each file alone, zstd 3", {
        let n: usize = walk.iter().map(|f| grouped(&[f], 0, 3, None)).sum();
        format!("{:.3}", n as f64 / 1e6)
    });
    println!("  {:<34} {:>8}", "each file alone, zstd 3 + dict", {
        let n: usize = walk.iter().map(|f| grouped(&[f], 0, 3, Some(&dict))).sum();
        format!("{:.3}", n as f64 / 1e6)
    });
    println!(
        "  {:<20} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "groups of", "level", "walk", "by ext", "walk+dict", "ext+dict"
    );
    for group in [64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 4 << 20] {
        for level in [1, 3, 6, 9, 19] {
            let mb = |files: &[&[u8]], dict: Option<&[u8]>| {
                format!("{:.3}", grouped(files, group, level, dict) as f64 / 1e6)
            };
            println!(
                "  {:<20} {:>6} {:>10} {:>10} {:>10} {:>10}",
                format!("{} KiB", group >> 10),
                level,
                mb(&walk, None),
                mb(&by_ext, None),
                mb(&walk, Some(&dict)),
                mb(&by_ext, Some(&dict)),
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("series") => series(&args[1..]),
        Some("offline") => offline(&args[1..]),
        _ => eprintln!(
            "usage: small_blobs series [--live DIR] [--small LIST] [--group LIST] [--level LIST] DIR...\n       small_blobs offline DIR"
        ),
    }
}
