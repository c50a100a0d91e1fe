//! Builds a series of compacted and defragmented etcd snapshots and measures
//! what a content-addressed store keeps of them after the bbolt-aware split.
//!
//! ```text
//! cargo run --release -p hokan-etcd --example series -- build DIR [KEYS [SNAPSHOTS [VALUE_SIZE]]]
//! cargo run --release -p hokan-etcd --example series -- measure FILE.db...
//! ```
//!
//! `build` starts a real etcd (Debian's 3.4) on loopback, loads KEYS
//! ConfigMap-shaped JSON values (default 40000 of ~3000 bytes), and saves
//! SNAPSHOTS snapshots (default 6) with `etcdctl snapshot save`; between two
//! snapshots it rewrites 2% of the keys and adds 1%, then compacts and
//! defragments. `measure` splits the files in order and counts what a store
//! keeps: each unique record once, zstd-compressed (level 3, raw if that is
//! smaller); the layout cut by hokan's FastCDC chunker, unique chunks
//! compressed; and per snapshot a list of 36 bytes per record (32-byte id,
//! 4-byte length). `bench/series.sh` runs both and restic beside them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use hokan_core::{Chunker, ChunkerParams};
use hokan_etcd::testdata::configmap_json;
use hokan_etcd::testing::EtcdProcess;
use hokan_etcd::{RecordSink, SplitOptions, split};

/// hokan's per-blob cost beyond the compressed payload: codec byte, nonce
/// and tag of the sealed record, and the pack header entry (docs/FORMAT.md).
const BLOB_OVERHEAD: u64 = 1 + 24 + 16 + 41;
const LIST_ENTRY: u64 = 36;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("build") if args.len() >= 2 => {
            let num = |i: usize, d: u64| args.get(i).map_or(d, |s| s.parse().expect("a number"));
            build(
                Path::new(&args[1]),
                num(2, 40_000),
                num(3, 6),
                num(4, 3000) as usize,
            );
        }
        Some("measure") if args.len() >= 2 => {
            measure(&args[1..].iter().map(PathBuf::from).collect::<Vec<_>>());
        }
        _ => {
            eprintln!(
                "usage: series build DIR [KEYS [SNAPSHOTS [VALUE_SIZE]]] | series measure FILE.db..."
            );
            std::process::exit(2);
        }
    }
}

fn build(dir: &Path, keys: u64, snapshots: u64, size: usize) {
    std::fs::create_dir_all(dir).expect("output directory");
    let etcd =
        EtcdProcess::start().expect("etcd is installed (apt-get install etcd-server etcd-client)");
    let mut client = etcd.client();
    let key = |i: u64| format!("/registry/configmaps/team-{}/app-{i}-config", i % 97);
    client.put_all((0..keys).map(|i| (key(i), configmap_json(i, 0, size))));
    let mut total = keys;
    // A fixed sequence of "random" keys to rewrite: xorshift.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for s in 0..snapshots {
        if s > 0 {
            let rewrite: Vec<_> = (0..total / 50)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = x % total;
                    (key(i), configmap_json(i, s, size))
                })
                .collect();
            client.put_all(rewrite);
            let added = total / 100;
            client.put_all((total..total + added).map(|i| (key(i), configmap_json(i, 0, size))));
            total += added;
        }
        // Compacted and defragmented, as a cluster's maintenance leaves it.
        let rev = client.revision().to_string();
        etcd.etcdctl_ok(&["compact", &rev, "--physical"]);
        etcd.etcdctl_ok(&["defrag"]);
        let file = dir.join(format!("snapshot-{s}.db"));
        let _ = std::fs::remove_file(&file);
        etcd.etcdctl_ok(&["snapshot", "save", file.to_str().unwrap()]);
        println!(
            "{} {} bytes, {total} keys",
            file.display(),
            std::fs::metadata(&file).unwrap().len()
        );
    }
}

#[derive(Default)]
struct Store {
    records: HashSet<[u8; 32]>,
    chunks: HashSet<[u8; 32]>,
    stored_records: u64,
    new_records: u64,
    record_blobs: u64,
    list: u64,
    layout: Vec<u8>,
}

impl RecordSink for Store {
    fn layout(&mut self, bytes: &[u8]) -> hokan_etcd::Result<()> {
        self.layout.extend_from_slice(bytes);
        Ok(())
    }

    fn record(&mut self, record: &[u8]) -> hokan_etcd::Result<()> {
        self.list += LIST_ENTRY;
        if self.records.insert(*blake3::hash(record).as_bytes()) {
            self.stored_records += compressed(record);
            self.new_records += 1;
            self.record_blobs += 1;
        }
        Ok(())
    }
}

fn compressed(data: &[u8]) -> u64 {
    let z = zstd::bulk::compress(data, 3).expect("zstd");
    z.len().min(data.len()) as u64
}

fn measure(files: &[PathBuf]) {
    let chunker = Chunker::new(ChunkerParams::default(), 0x006b_6f6b_616e).expect("chunker");
    let mut store = Store::default();
    let (mut logical, mut stored_all) = (0u64, 0u64);
    println!(
        "{:<28} {:>11} {:>8} {:>11} {:>9} {:>9} {:>9} {:>11}",
        "snapshot", "logical", "records", "new recs", "records", "layout", "list", "stored"
    );
    for f in files {
        let before = (
            store.stored_records,
            store.new_records,
            store.list,
            store.record_blobs,
        );
        let file = std::fs::File::open(f).expect("snapshot file");
        let t = std::time::Instant::now();
        let summary = split(
            std::io::BufReader::new(file),
            &mut store,
            &SplitOptions::bbolt(f.display().to_string()),
        )
        .expect("split");
        let split_time = t.elapsed();
        let mut layout_stored = 0;
        let layout = std::mem::take(&mut store.layout);
        let mut layout_blobs = 0;
        for c in chunker.chunks(&layout) {
            if store
                .chunks
                .insert(*blake3::hash(&layout[c.clone()]).as_bytes())
            {
                layout_stored += compressed(&layout[c]);
                layout_blobs += 1;
            }
        }
        let rec = store.stored_records - before.0;
        let blobs = store.record_blobs - before.3 + layout_blobs;
        let list = store.list - before.2;
        let stored = rec + layout_stored + list + blobs * BLOB_OVERHEAD;
        logical += summary.total_bytes;
        stored_all += stored;
        println!(
            "{:<28} {:>11} {:>8} {:>11} {:>9} {:>9} {:>9} {:>11}   (split {:.0} MB/s, layout {} B raw)",
            f.file_name().unwrap().to_string_lossy(),
            summary.total_bytes,
            summary.records,
            store.new_records - before.1,
            rec,
            layout_stored,
            list,
            stored,
            summary.total_bytes as f64 / 1e6 / split_time.as_secs_f64(),
            layout.len(),
        );
    }
    println!(
        "total: logical {logical} B, stored {stored_all} B (with {BLOB_OVERHEAD} B per blob), \
         ratio {:.2}x",
        logical as f64 / stored_all as f64
    );
}
