//! Builds a repository of N small blobs across M snapshots quickly, and
//! measures opening its index: the measuring stick of issue 26 (memory that
//! does not grow with the repository). `benches/scale.sh` drives it.
//!
//! ```text
//! cargo run --release --example scale_repo -- generate REPO N M
//! cargo run --release --example scale_repo -- open REPO [CACHE_DIR]
//! ```
//!
//! `generate` stores everything through write sessions, as a source would
//! (so every pack, index file, tree and snapshot is what hokan writes and
//! `check` passes): snapshot g adds a directory `gen-g` of N/M new blobs of
//! 64 bytes each, cut by the generator (64 blobs a file, 256 files a
//! directory), and carries every earlier generation's directory unchanged.
//! Snapshot 0 also holds a directory `scratch` of N/100 blobs no later
//! snapshot keeps, so forgetting snapshot 0 gives prune work to do.
//!
//! `open` opens with the password and loads the index, printing the time
//! and the process's peak RSS (VmHWM).

use std::time::Instant;

use hokan::core::sample::SplitMix64;
use hokan::core::{ChunkRef, Node, NodeKind, TreeId};
use hokan::repo::{
    CacheMode, InitOptions, KdfParams, OpenOptions, Repository, Session, SnapshotSpec, SourceKind,
    Staged,
};

const BLOB: usize = 64;
const PER_FILE: usize = 64;
const FILES_PER_DIR: usize = 256;
const PASSWORD: &[u8] = b"scale";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") => {
            let n: usize = args[3].parse().expect("N, a number of blobs");
            let m: usize = args[4].parse().expect("M, a number of snapshots");
            generate(&args[2], n, m);
        }
        Some("open") => open(&args[2], args.get(3)),
        _ => eprintln!("usage: scale_repo generate REPO N M | open REPO [CACHE_DIR]"),
    }
}

/// Stores `count` new blobs (numbered from `*next`) as files of a
/// directory tree; returns the directory's tree.
fn store_blobs(s: &Session<'_>, rng: &mut SplitMix64, next: &mut u64, count: usize) -> TreeId {
    let batch_blobs = PER_FILE * FILES_PER_DIR;
    let mut left = count;
    let chunks: Vec<ChunkRef> = s
        .store_cut_batches(|| {
            if left == 0 {
                return Ok(None);
            }
            let take = left.min(batch_blobs);
            left -= take;
            let mut data = vec![0u8; take * BLOB];
            rng.fill(&mut data);
            for (i, blob) in data.chunks_mut(BLOB).enumerate() {
                // A counter makes every blob unique, whatever the filler.
                blob[..8].copy_from_slice(&(*next + i as u64).to_le_bytes());
            }
            *next += take as u64;
            let cuts = (0..take).map(|i| i * BLOB..(i + 1) * BLOB).collect();
            Ok(Some((data, cuts)))
        })
        .expect("storing blobs");
    let mut dirs = Vec::new();
    for (d, dir) in chunks.chunks(batch_blobs).enumerate() {
        let files: Vec<Node> = dir
            .chunks(PER_FILE)
            .enumerate()
            .map(|(f, content)| {
                let mut node = Node::new(format!("f{f:04}"), NodeKind::File);
                node.mode = 0o644;
                node.size = content.iter().map(|c| c.len as u64).sum();
                node.content = content.to_vec();
                node
            })
            .collect();
        let tree = s.store_tree(files).expect("storing a directory");
        dirs.push(Node::dir(format!("d{d:06}"), tree));
    }
    // Directories of at most 4096 subdirectories, so no tree grows large.
    while dirs.len() > 4096 {
        dirs = dirs
            .chunks(4096)
            .enumerate()
            .map(|(i, group)| {
                let tree = s.store_tree(group.to_vec()).expect("storing a directory");
                Node::dir(format!("g{i:06}"), tree)
            })
            .collect();
    }
    s.store_tree(dirs).expect("storing a directory")
}

fn generate(location: &str, n: usize, m: usize) {
    let init = InitOptions {
        // The benchmark opens many times: the password's cost is not the
        // subject here.
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    let repo = Repository::init(location, PASSWORD, init, OpenOptions::default())
        .expect("creating the repository");
    let mut repo = repo.load_index().expect("loading the empty index");
    let mut rng = SplitMix64::new(26);
    let mut next = 0u64;
    let t = Instant::now();
    for g in 0..m {
        let count = n / m + if g < n % m { 1 } else { 0 };
        let mut spec = SnapshotSpec::new(SourceKind::STREAM);
        spec.identity = "scale".into();
        spec.paths = vec!["scale".into()];
        spec.hostname = Some("scale".into());
        let done = repo
            .backup(spec, |s| -> hokan::repo::Result<_> {
                // Earlier generations as the parent holds them, stored
                // again (unchanged, so deduplicated): a small tree is
                // carried inside its parent, not indexed, so a session
                // names only trees it stored or the index lists.
                let mut root: Vec<Node> = Vec::new();
                if let Some(parent) = s.parent_tree() {
                    for node in s.read_tree(&parent)?.nodes {
                        if let (true, Some(sub)) = (node.name.starts_with(b"gen-"), node.subtree) {
                            let again = s.store_tree(s.read_tree(&sub)?.nodes)?;
                            root.push(Node::dir(node.name, again));
                        }
                    }
                }
                let dir = store_blobs(s, &mut rng, &mut next, count);
                root.push(Node::dir(format!("gen-{g:04}"), dir));
                if g == 0 {
                    let scratch = store_blobs(s, &mut rng, &mut next, n / 100);
                    root.push(Node::dir("scratch", scratch));
                }
                let mut staged = Staged::new(s.store_tree(root)?);
                staged.bytes = next * BLOB as u64;
                Ok((staged, ()))
            })
            .expect("committing a snapshot");
        eprintln!(
            "snapshot {} of {m}: {} ({} blobs so far, {:.0} s)",
            g + 1,
            done.entry.id.short(),
            next,
            t.elapsed().as_secs_f64()
        );
    }
    println!(
        "{location}: {next} blobs in {m} snapshots, {} index entries, in {:.0} s",
        repo.index().len(),
        t.elapsed().as_secs_f64()
    );
}

fn open(location: &str, cache: Option<&String>) {
    let options = OpenOptions {
        cache: match cache {
            Some(dir) => CacheMode::Dir(dir.into()),
            None => CacheMode::Off,
        },
        ..Default::default()
    };
    let t = Instant::now();
    let repo = Repository::open(location, PASSWORD, options).expect("opening the repository");
    let opened = t.elapsed();
    let t = Instant::now();
    let repo = repo.load_index().expect("loading the index");
    let loaded = t.elapsed();
    // Before the lookups below: collecting their ids walks every entry,
    // touching every page of a mapped index.
    let peak = peak_rss_kb();
    // One lookup of every thousandth entry, so lookups are part of the
    // figure as they are of a backup.
    let probe: Vec<_> = repo
        .index()
        .iter()
        .step_by(1000)
        .map(|(id, _)| id)
        .collect();
    let t = Instant::now();
    let found = probe.iter().filter(|id| repo.index().contains(id)).count();
    let looked = t.elapsed();
    println!(
        "open {:.2} s; index of {} entries in {} files loaded in {:.2} s; {} lookups in {:.1} ms; peak RSS {} MB",
        opened.as_secs_f64(),
        repo.index().len(),
        repo.index_files().len(),
        loaded.as_secs_f64(),
        found,
        looked.as_secs_f64() * 1e3,
        peak / 1024
    );
}

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
