//! bbolt files, as `etcd import` and a live snapshot hand them over: no
//! input panics or loops; the database walk and the status a backup
//! learns from the streamed pages agree wherever both read the file; and
//! any bytes split into layout and records rebuild to exactly themselves.
#![no_main]

use hokan_etcd::bbolt::{Bucket, Db};
use hokan_etcd::{IterSource, MemorySink, SplitOptions, rebuild, split, status, streamed_status};
use libfuzzer_sys::fuzz_target;

use hokan_fuzz as _;

/// Reads every key of `bucket` and its nested buckets, as far as a reader
/// without `check` would go; `budget` bounds the work on a file whose
/// nested buckets point back at their parents.
fn walk<'a>(db: &Db<'a>, bucket: Bucket<'a>, depth: u32, budget: &mut u32) {
    for entry in db.entries(bucket) {
        let Ok(entry) = entry else { return };
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        if entry.is_bucket && depth < 4 {
            if let Ok(b) = db.bucket(&entry) {
                walk(db, b, depth + 1, budget);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(db) = Db::open(data, "fuzzed.db") {
        let _ = db.freelist();
        let _ = db.check();
        let _ = db.buckets();
        walk(&db, db.root(), 0, &mut 100_000);
    }
    let walked = status(data, "fuzzed.db");
    let streamed = streamed_status(data, "fuzzed.db");
    if let (Ok(a), Ok(Ok(b))) = (&walked, &streamed) {
        assert_eq!(a, b, "the streamed status differs from the walked one");
    }

    let mut sink = MemorySink::default();
    let summary = split(data, &mut sink, &SplitOptions::any("fuzzed.db")).unwrap();
    assert_eq!(summary.total_bytes, data.len() as u64);
    assert_eq!(summary.records, sink.records.len() as u64);
    let mut out = Vec::new();
    rebuild(
        &sink.layout[..],
        &mut IterSource(sink.records.iter()),
        &mut out,
    )
    .unwrap();
    assert!(out == data, "the rebuild differs from the input");
});
