//! Restores from an object store are planned by pack: many small files per
//! range request, each group of small blobs fetched and opened once, and a
//! restore of one small file reads little more than its group.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hokan_core::fs::{NoProgress, RestoreOptions, Restorer};
use hokan_core::sample::{Kind, generate};
use hokan_core::{BlobReader, MasterKey, PackId, PackSource};

mod support;
use support::backup;

/// A store that counts what it is asked for, as an object store bills it.
struct Counting {
    packs: HashMap<PackId, Vec<u8>>,
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl PackSource for Counting {
    fn read_range(&self, pack: &PackId, offset: u32, length: u32) -> hokan_core::Result<Vec<u8>> {
        self.requests.fetch_add(1, Relaxed);
        self.bytes.fetch_add(length as u64, Relaxed);
        self.packs.read_range(pack, offset, length)
    }
}

impl Counting {
    fn take(&self) -> (u64, u64) {
        (self.requests.swap(0, Relaxed), self.bytes.swap(0, Relaxed))
    }
}

const FILES: usize = 2000;
const DIRS: usize = 40;

/// 2,000 files of 200 B to 6 KB of text-like data in 40 directories.
fn make_tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for i in 0..FILES {
        let dir = root.join(format!("dir{:02}", i % DIRS));
        std::fs::create_dir_all(&dir).unwrap();
        let data = generate(Kind::Text, 200 + (i * 2917) % 6000, i as u64);
        let rel = PathBuf::from(format!("dir{:02}/file{i:04}.txt", i % DIRS));
        std::fs::write(root.join(&rel), &data).unwrap();
        files.push((rel, data));
    }
    files
}

#[test]
fn many_small_files_are_restored_in_few_requests() {
    let key = MasterKey::generate().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let files = make_tree(&src);
    let (index, packs, root) = backup(&key, &src);
    let source = Counting {
        packs,
        requests: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    let stored: u64 = source.packs.values().map(|p| p.len() as u64).sum();

    let reader = BlobReader::new(&key, &index, &source);
    let restorer = Restorer::new(&reader, RestoreOptions::default(), &NoProgress).unwrap();
    let target = tmp.path().join("target");
    let done = restorer.restore(&root, Path::new("/"), &target).unwrap();
    assert_eq!(done.summary.files, FILES as u64);
    assert_eq!(done.summary.failed, 0);
    let restored = target.join(src.strip_prefix("/").unwrap());
    for (rel, data) in &files {
        assert!(
            std::fs::read(restored.join(rel)).unwrap() == *data,
            "{rel:?}"
        );
    }
    let (requests, bytes) = source.take();
    // The data (about 6 MB, a few hundred KB compressed) and the trees take
    // a handful of spans; one request per file or per directory would be
    // thousands or dozens.
    assert!(
        requests <= 12,
        "{requests} requests for {FILES} files in {DIRS} directories"
    );
    assert!(bytes <= stored * 2, "{bytes} bytes read, {stored} stored");
}

#[test]
fn one_small_file_reads_little_more_than_its_group() {
    let key = MasterKey::generate().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let files = make_tree(&src);
    let (index, packs, root) = backup(&key, &src);
    let source = Counting {
        packs,
        requests: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    let data_stored: u64 = source.packs.values().map(|p| p.len() as u64).sum();

    let (rel, data) = &files[1234];
    let wanted = src.join(rel);
    let reader = BlobReader::new(&key, &index, &source);
    let options = RestoreOptions {
        include: vec![wanted.to_string_lossy().into_owned()],
        ..Default::default()
    };
    let restorer = Restorer::new(&reader, options, &NoProgress).unwrap();
    let target = tmp.path().join("target");
    let done = restorer.restore(&root, Path::new("/"), &target).unwrap();
    assert_eq!(done.summary.files, 1);
    let out = target.join(wanted.strip_prefix("/").unwrap());
    assert!(std::fs::read(out).unwrap() == *data);
    let (requests, bytes) = source.take();
    // Its group (at most the default group size, compressed) and the
    // trees on the way, not the whole repository.
    assert!(requests <= 4, "{requests} requests");
    assert!(
        bytes * 3 < data_stored,
        "{bytes} bytes read of {data_stored} stored"
    );
}
