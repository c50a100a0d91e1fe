//! A restore works window by window, keeping only directories and the
//! first file of each set of hard links between windows: whatever the
//! window's size, it restores exactly what one window does (hard links
//! across windows, directory metadata set after their content, sparse
//! files, include patterns, `--verify`, the summary and the totals).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, FileTimes};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hokan_core::fs::{NoProgress, RestoreOptions, RestoreSummary, Restorer};
use hokan_core::sample::{Kind, generate};
use hokan_core::{BlobReader, Index, MasterKey, PackId, TreeId};

mod support;
use support::backup;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn set_mtime(path: &Path, secs: u64) {
    let f = File::open(path).unwrap();
    f.set_times(
        FileTimes::new()
            .set_modified(at(secs))
            .set_accessed(at(secs)),
    )
    .unwrap();
}

/// Directories three deep, files in each, a set of hard links spread over
/// the tree, a sparse file, a symlink, an empty directory; directory times
/// and modes set last.
fn make_tree(root: &Path) {
    let mut dirs = Vec::new();
    for a in 0..4 {
        for b in 0..3 {
            let d = root.join(format!("d{a}/s{b}"));
            fs::create_dir_all(&d).unwrap();
            for i in 0..5 {
                let data = generate(Kind::Text, 100 + (a * 31 + b * 7 + i) * 97, i as u64);
                let f = d.join(format!("f{i}"));
                fs::write(&f, data).unwrap();
                set_mtime(&f, 1_600_000_000 + i as u64);
            }
            dirs.push(d);
        }
        dirs.push(root.join(format!("d{a}")));
    }
    // Links in the first directory, one in the middle and one at the end.
    let first = root.join("d0/s0/f0");
    fs::hard_link(&first, root.join("d0/s0/link")).unwrap();
    fs::hard_link(&first, root.join("d2/s1/link")).unwrap();
    fs::hard_link(&first, root.join("d3/s2/link")).unwrap();
    // 3 MiB with a hole in the middle.
    let sparse = File::create(root.join("d1/sparse")).unwrap();
    sparse.set_len(3 << 20).unwrap();
    drop(sparse);
    fs::write(root.join("d1/data"), generate(Kind::Random, 200_000, 9)).unwrap();
    symlink("../d0/s0/f1", root.join("d1/s0/up")).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    dirs.push(root.join("empty"));
    fs::set_permissions(root.join("d2/s1"), fs::Permissions::from_mode(0o750)).unwrap();
    for (n, d) in dirs.iter().enumerate() {
        set_mtime(d, 1_500_000_000 + n as u64);
    }
}

/// Everything below `root` as it can be compared: kind, mode, time,
/// content, blocks used (sparse), and which hard-link set it is in.
fn listing(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<u64, PathBuf> = HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let what = if md.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if md.file_type().is_symlink() {
                format!("link to {:?}", fs::read_link(&p).unwrap())
            } else {
                let group = inodes.entry(md.ino()).or_insert_with(|| rel.clone());
                let data = fs::read(&p).unwrap();
                format!(
                    "file {} bytes {:x} blocks {} set {:?}",
                    data.len(),
                    data.iter()
                        .fold(0u64, |h, b| h.wrapping_mul(31) ^ *b as u64),
                    md.blocks() > 0,
                    group
                )
            };
            let line = format!("{what} mode {:o} mtime {}", md.mode(), md.mtime());
            out.insert(rel, line);
        }
    }
    out
}

struct Repo {
    key: MasterKey,
    index: Index,
    packs: HashMap<PackId, Vec<u8>>,
    root: TreeId,
}

impl Repo {
    fn restore(
        &self,
        options: RestoreOptions,
        window: Option<usize>,
        target: &Path,
    ) -> (RestoreSummary, (u64, u64)) {
        let reader = BlobReader::new(&self.key, &self.index, &self.packs);
        let mut restorer = Restorer::new(&reader, options, &NoProgress).unwrap();
        if let Some(w) = window {
            restorer = restorer.with_window(w);
        }
        let totals = restorer.totals(&self.root, Path::new("/")).unwrap();
        let done = restorer
            .restore(&self.root, Path::new("/"), target)
            .unwrap();
        assert!(done.warnings.is_empty(), "{:?}", done.warnings);
        (done.summary, totals)
    }
}

#[test]
fn small_windows_restore_what_one_window_does() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let key = MasterKey::generate().unwrap();
    let (index, packs, root) = backup(&key, &src);
    let repo = Repo {
        key,
        index,
        packs,
        root,
    };
    let inside = |target: &Path| target.join(src.strip_prefix("/").unwrap());
    let options = || RestoreOptions {
        verify: true,
        sparse: true,
        ..Default::default()
    };

    let whole = tmp.path().join("whole");
    let (summary, totals) = repo.restore(options(), None, &whole);
    let expected = listing(&inside(&whole));
    assert_eq!(expected, listing(&src), "one window restores the source");
    assert_eq!(summary.failed, 0);
    assert!(summary.verified > 0);
    assert_eq!(summary.verify_failures, 0);

    for window in [1, 2, 3, 7] {
        let target = tmp.path().join(format!("w{window}"));
        let got = repo.restore(options(), Some(window), &target);
        assert_eq!(got, (summary.clone(), totals), "window {window}");
        assert_eq!(listing(&inside(&target)), expected, "window {window}");
    }

    // Include patterns: a directory with nothing selected below it is left
    // out, one included is kept even when empty, and the totals agree.
    let patterns = || RestoreOptions {
        include: vec![
            src.join("d2/s1/*").to_string_lossy().into_owned(),
            src.join("empty").to_string_lossy().into_owned(),
            src.join("d3/s2/link").to_string_lossy().into_owned(),
        ],
        ..Default::default()
    };
    let one = tmp.path().join("some-whole");
    let (summary, totals) = repo.restore(patterns(), None, &one);
    let expected = listing(&inside(&one));
    assert!(expected.contains_key(Path::new("empty")));
    assert!(!expected.contains_key(Path::new("d1")));
    for window in [1, 2] {
        let target = tmp.path().join(format!("some-w{window}"));
        let got = repo.restore(patterns(), Some(window), &target);
        assert_eq!(got, (summary.clone(), totals), "window {window}");
        assert_eq!(listing(&inside(&target)), expected, "window {window}");
    }

    // Restoring again over the same target: links and files are replaced
    // (or kept) the same way whatever the window.
    for window in [None, Some(1)] {
        let again = repo.restore(options(), window, &whole);
        assert_eq!(again.0.files, summary_files(&repo, &whole));
        assert_eq!(listing(&inside(&whole)), listing(&src));
    }
}

/// The files a fresh restore writes (for the restore over an existing
/// target, which writes them all again).
fn summary_files(repo: &Repo, scratch: &Path) -> u64 {
    let fresh = scratch.with_extension("fresh");
    let _ = fs::remove_dir_all(&fresh);
    let (s, _) = repo.restore(RestoreOptions::default(), None, &fresh);
    fs::remove_dir_all(&fresh).unwrap();
    s.files
}
