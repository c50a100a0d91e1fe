//! The whole write and read path: dedup, parallel writers, memory maps,
//! and the errors a caller sees when storage misbehaves.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Mutex;

use hokan_core::sample::{Kind, generate};
use hokan_core::{
    BlobReader, BlobType, BlobWriter, ChunkerParams, Error, FinishedPack, Index, MasterKey, PackId,
    PackSink, WriterConfig,
};

fn small_config() -> WriterConfig {
    WriterConfig {
        chunker: ChunkerParams::new(16 << 10, 64 << 10, 256 << 10).unwrap(),
        pack_size: 1 << 20,
        batch_size: 1 << 20,
        ..Default::default()
    }
}

/// Packs into the index and a map, as a repository would store them.
fn land(index: &mut Index, store: &mut HashMap<PackId, Vec<u8>>, packs: Vec<FinishedPack>) {
    for p in packs {
        index.insert_pack(p.id, p.kind, &p.blobs);
        store.insert(p.id, p.bytes);
    }
}

fn restore(
    key: &MasterKey,
    index: &Index,
    store: &HashMap<PackId, Vec<u8>>,
    chunks: &[hokan_core::ChunkRef],
) -> Vec<u8> {
    let mut out = Vec::new();
    BlobReader::new(key, index, store)
        .read_chunks(chunks, &mut out)
        .unwrap();
    out
}

#[test]
fn second_backup_of_same_data_stores_nothing() {
    let key = MasterKey::generate().unwrap();
    let mut index = Index::new();
    let mut store = HashMap::new();
    let data = generate(Kind::Random, 5 << 20, 1);

    let sink = Mutex::new(Vec::new());
    let w = BlobWriter::new(&key, small_config(), &index, &sink).unwrap();
    let first = w.write_stream(&data[..]).unwrap();
    // The same data again in the same session dedups against claimed ids.
    let again = w.write_stream(&data[..]).unwrap();
    let s1 = w.finish().unwrap();
    assert_eq!(first, again);
    assert_eq!(s1.blobs, 2 * first.len() as u64);
    assert_eq!(s1.new_blobs, first.len() as u64);
    land(&mut index, &mut store, sink.into_inner().unwrap());

    // A later session with the index stores nothing new.
    let sink = Mutex::new(Vec::new());
    let w = BlobWriter::new(&key, small_config(), &index, &sink).unwrap();
    let second = w.write_stream(&data[..]).unwrap();
    let s2 = w.finish().unwrap();
    assert_eq!(second, first);
    assert_eq!((s2.new_blobs, s2.packs), (0, 0));
    assert!(sink.into_inner().unwrap().is_empty());
    assert_eq!(restore(&key, &index, &store, &second), data);
}

#[test]
fn an_edit_in_the_middle_stores_only_nearby_chunks() {
    let key = MasterKey::generate().unwrap();
    let mut index = Index::new();
    let mut store = HashMap::new();
    let v1 = generate(Kind::Text, 8 << 20, 2);
    let mut v2 = v1.clone();
    v2.splice(
        4 << 20..4 << 20,
        b"an insertion that shifts everything after it"
            .iter()
            .copied(),
    );

    let sink = Mutex::new(Vec::new());
    let w = BlobWriter::new(&key, small_config(), &index, &sink).unwrap();
    let c1 = w.write_stream(&v1[..]).unwrap();
    w.finish().unwrap();
    land(&mut index, &mut store, sink.into_inner().unwrap());

    let sink = Mutex::new(Vec::new());
    let w = BlobWriter::new(&key, small_config(), &index, &sink).unwrap();
    let c2 = w.write_stream(&v2[..]).unwrap();
    let s = w.finish().unwrap();
    land(&mut index, &mut store, sink.into_inner().unwrap());
    assert!(
        s.new_blobs <= 3,
        "{} new chunks for one insertion",
        s.new_blobs
    );
    assert!(s.new_bytes < 1 << 20, "{}", s.new_bytes);
    assert_eq!(restore(&key, &index, &store, &c1), v1);
    assert_eq!(restore(&key, &index, &store, &c2), v2);
}

#[test]
fn parallel_writers_share_one_blob_writer() {
    let key = MasterKey::generate().unwrap();
    let mut index = Index::new();
    let mut store = HashMap::new();
    let inputs: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            // Half of the inputs share content, so threads race to claim it.
            let seed = if i % 2 == 0 { 100 } else { 100 + i as u64 };
            generate(Kind::Random, 2 << 20, seed)
        })
        .collect();
    let sink = Mutex::new(Vec::new());
    let w = BlobWriter::new(&key, small_config(), &index, &sink).unwrap();
    let lists: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = inputs
            .iter()
            .map(|d| s.spawn(|| w.write_stream(&d[..]).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let tree = w
        .write_blob(BlobType::Tree, b"a directory listing")
        .unwrap();
    let stats = w.finish().unwrap();
    let packs = sink.into_inner().unwrap();
    // Every blob is stored exactly once across all packs.
    let mut seen = std::collections::HashSet::new();
    for p in &packs {
        for b in &p.blobs {
            assert!(seen.insert(b.id), "blob {} stored twice", b.id);
        }
    }
    assert_eq!(seen.len() as u64, stats.new_blobs);
    land(&mut index, &mut store, packs);
    for (d, l) in inputs.iter().zip(&lists) {
        assert_eq!(&restore(&key, &index, &store, l), d);
    }
    let r = BlobReader::new(&key, &index, &store);
    assert_eq!(
        r.read_blob(BlobType::Tree, &tree).unwrap(),
        b"a directory listing"
    );
    // A tree id is not readable as data.
    assert!(matches!(
        r.read_blob(BlobType::Data, &tree),
        Err(Error::BlobNotFound { .. })
    ));
}

#[test]
fn memory_mapped_file_matches_stream() {
    let key = MasterKey::generate().unwrap();
    let index = Index::new();
    let data = generate(Kind::Text, 3 << 20, 3);
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(&data).unwrap();
    let sink = Mutex::new(Vec::new());
    let w = BlobWriter::new(&key, small_config(), &index, &sink).unwrap();
    let mapped = w.write_mmap(&f).unwrap();
    let streamed = w.write_stream(&data[..]).unwrap();
    assert_eq!(mapped, streamed);
    assert!(
        w.write_mmap(&tempfile::tempfile().unwrap())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn damaged_or_missing_packs_give_clear_errors() {
    let key = MasterKey::generate().unwrap();
    let mut index = Index::new();
    let mut store = HashMap::new();
    let data = generate(Kind::Random, 1 << 20, 4);
    let sink = Mutex::new(Vec::new());
    let w = BlobWriter::new(&key, small_config(), &index, &sink).unwrap();
    let chunks = w.write_stream(&data[..]).unwrap();
    w.finish().unwrap();
    land(&mut index, &mut store, sink.into_inner().unwrap());
    let mut sink_out = Vec::new();

    // A flipped bit inside a blob.
    let loc = index.get(&chunks[1].id.0).unwrap();
    let mut damaged = store.clone();
    damaged.get_mut(&loc.pack).unwrap()[loc.offset as usize + 30] ^= 4;
    let e = BlobReader::new(&key, &index, &damaged)
        .read_chunks(&chunks, &mut sink_out)
        .unwrap_err();
    assert!(matches!(e, Error::Corrupted { .. }), "{e}");
    // The error names a blob of the damaged record (small blobs share a
    // group record, and the first one read is reported).
    let in_record = chunks.iter().filter(|c| {
        let l = index.get(&c.id.0).unwrap();
        (l.pack, l.offset) == (loc.pack, loc.offset)
    });
    assert!(
        in_record
            .clone()
            .any(|c| e.to_string().contains(&c.id.short())),
        "{e}"
    );

    // A pack cut short.
    let mut short = store.clone();
    short
        .get_mut(&loc.pack)
        .unwrap()
        .truncate(loc.offset as usize + 5);
    let e = BlobReader::new(&key, &index, &short)
        .read_chunks(&chunks, &mut sink_out)
        .unwrap_err();
    assert!(matches!(e, Error::Truncated { .. }), "{e}");

    // A pack gone.
    let mut gone = store.clone();
    gone.remove(&loc.pack);
    let e = BlobReader::new(&key, &index, &gone)
        .read_chunks(&chunks, &mut sink_out)
        .unwrap_err();
    assert!(e.to_string().contains(&loc.pack.short()), "{e}");

    // A chunk the index does not know.
    let e = BlobReader::new(&key, &Index::new(), &store)
        .read_chunks(&chunks, &mut sink_out)
        .unwrap_err();
    assert!(matches!(e, Error::BlobNotFound { .. }), "{e}");

    // Another repository's key.
    let other = MasterKey::generate().unwrap();
    let e = BlobReader::new(&other, &index, &store)
        .read_chunks(&chunks, &mut sink_out)
        .unwrap_err();
    assert!(matches!(e, Error::Corrupted { .. }), "{e}");
}

struct FailingSink;
impl PackSink for FailingSink {
    fn put_pack(&self, _: FinishedPack) -> hokan_core::Result<()> {
        Err(Error::Storage("disk full".into()))
    }
}

#[test]
fn a_failed_store_poisons_the_writer() {
    let key = MasterKey::generate().unwrap();
    let index = Index::new();
    let w = BlobWriter::new(&key, small_config(), &index, &FailingSink).unwrap();
    let data = generate(Kind::Random, 3 << 20, 5);
    let e = w.write_stream(&data[..]).unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
    // Chunks claimed by the failed call are not trusted for dedup.
    assert!(w.write_stream(&data[..]).is_err());
    assert!(w.finish().is_err());
}

struct BrokenReader(usize);
impl Read for BrokenReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other("device error"));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(7);
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn a_failing_source_is_reported_with_context() {
    let key = MasterKey::generate().unwrap();
    let index = Index::new();
    let sink = Mutex::new(Vec::new());
    let w = BlobWriter::new(&key, small_config(), &index, &sink).unwrap();
    let e = w.write_stream(BrokenReader(3 << 20)).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(e.to_string().contains("reading the input stream"), "{e}");
}

#[test]
fn packs_respect_the_target_size() {
    let key = MasterKey::generate().unwrap();
    let index = Index::new();
    let sink = Mutex::new(Vec::new());
    let w = BlobWriter::new(&key, small_config(), &index, &sink).unwrap();
    w.write_stream(&generate(Kind::Random, 6 << 20, 6)[..])
        .unwrap();
    w.finish().unwrap();
    let packs = sink.into_inner().unwrap();
    assert!(packs.len() >= 5, "{}", packs.len());
    // A pack may exceed its target by one record: a chunk, or a group of
    // small blobs (at most the group size plus one member).
    let c = small_config();
    let record = (c.chunker.max as usize).max((c.group_size + c.small_blob) as usize);
    for p in &packs {
        assert!(
            p.bytes.len() < c.pack_size as usize + record + 4096,
            "{}",
            p.bytes.len()
        );
        assert_eq!(p.kind, BlobType::Data);
    }
}

/// Counts the range requests a restore makes.
struct Counting<'a> {
    store: &'a HashMap<PackId, Vec<u8>>,
    requests: std::sync::atomic::AtomicUsize,
}

impl hokan_core::PackSource for Counting<'_> {
    fn read_range(&self, pack: &PackId, offset: u32, length: u32) -> hokan_core::Result<Vec<u8>> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.store.read_range(pack, offset, length)
    }
}

#[test]
fn neighbouring_chunks_are_fetched_together() {
    let key = MasterKey::generate().unwrap();
    let mut index = Index::new();
    let mut store = HashMap::new();
    let data = generate(Kind::Random, 6 << 20, 5);
    let sink = Mutex::new(Vec::new());
    let config = WriterConfig {
        pack_size: 16 << 20,
        ..small_config()
    };
    let w = BlobWriter::new(&key, config, &index, &sink).unwrap();
    let chunks = w.write_stream(&data[..]).unwrap();
    w.finish().unwrap();
    land(&mut index, &mut store, sink.into_inner().unwrap());
    assert_eq!(store.len(), 1, "one pack");
    assert!(chunks.len() >= 24, "{} chunks", chunks.len());

    let source = Counting {
        store: &store,
        requests: Default::default(),
    };
    let mut out = Vec::new();
    BlobReader::new(&key, &index, &source)
        .read_chunks(&chunks, &mut out)
        .unwrap();
    assert!(out == data);
    // Parallel writers may interleave chunks in the pack, but most sit
    // next to their successor: far fewer requests than chunks.
    let requests = source.requests.into_inner();
    assert!(
        requests * 4 <= chunks.len(),
        "{requests} requests for {} chunks",
        chunks.len()
    );

    // A damaged byte in a run is still found, and named.
    let pack = *store.keys().next().unwrap();
    let loc = index.get(&chunks[3].id.0).unwrap();
    store.get_mut(&pack).unwrap()[loc.offset as usize + 40] ^= 1;
    let e = BlobReader::new(&key, &index, &store)
        .read_chunks(&chunks, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains(&pack.short()), "{e}");
}

/// Fails every pack after the first `ok` ones.
struct FailsAfter {
    ok: std::sync::atomic::AtomicUsize,
    kept: Mutex<Vec<FinishedPack>>,
}

impl PackSink for FailsAfter {
    fn put_pack(&self, pack: FinishedPack) -> hokan_core::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        if self
            .ok
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Err(Error::Storage("no space left on device".into()));
        }
        self.kept.lock().unwrap().push(pack);
        Ok(())
    }
}

/// Regression (issue "Nothing lost, nothing hung", item 1): a store that
/// fails while several files go through one writer used to panic with
/// "every task ran" in the files whose tasks the failure had stopped.
/// Every call now ends with a result, and the writer stays failed.
#[test]
fn a_store_failure_during_parallel_writes_is_an_error_not_a_panic() {
    for round in 0..8 {
        let key = MasterKey::generate().unwrap();
        let index = Index::new();
        let sink = FailsAfter {
            ok: (round % 3).into(),
            kept: Mutex::new(Vec::new()),
        };
        let w = BlobWriter::new(&key, small_config(), &index, &sink).unwrap();
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let w = &w;
                    s.spawn(move || {
                        let data = generate(Kind::Random, 4 << 20, 100 + i);
                        w.write_stream(&data[..])
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join()).collect()
        });
        assert!(
            results.iter().all(|r| r.is_ok()),
            "a writer thread panicked"
        );
        assert!(
            results.iter().any(|r| matches!(r, Ok(Err(_)))),
            "16 MiB cannot fit in {} packs",
            round % 3
        );
        assert!(w.finish().is_err(), "a failed writer never finishes");
    }
}

/// Zero runs cost nothing in format 2: no blob, no read; chunk lists say
/// "hole" and the reader gives zeros back (or a hole to a sparse writer).
#[test]
fn holes_are_not_stored() {
    let key = MasterKey::generate().unwrap();
    let mut index = Index::new();
    let mut store = HashMap::new();
    let sink = Mutex::new(Vec::new());
    let w = BlobWriter::new(&key, small_config(), &index, &sink).unwrap();
    let mut data = generate(Kind::Random, 300_000, 8);
    data.extend(std::iter::repeat_n(0u8, 3 << 20));
    data.extend(generate(Kind::Text, 200_000, 9));
    let mut chunks = w.write_stream(&data[..]).unwrap();
    assert!(chunks.iter().any(|c| c.is_hole()));
    chunks.extend(w.write_zeros(5 << 30).unwrap());
    let stats = w.finish().unwrap();
    assert!(stats.stored_bytes < 600_000, "{stats:?}");
    land(&mut index, &mut store, sink.into_inner().unwrap());
    let total: u64 = chunks.iter().map(|c| c.len as u64).sum();
    assert_eq!(total, data.len() as u64 + (5 << 30));
    let (head, tail) = chunks.split_at(chunks.len() - 5);
    assert_eq!(restore(&key, &index, &store, head), data);
    assert!(tail.iter().all(|c| c.is_hole()));

    // Version 1 has no holes: zeros are stored as (deduplicated) chunks.
    let index = Index::new();
    let sink = Mutex::new(Vec::new());
    let v1 = WriterConfig {
        format: hokan_core::FormatVersion::V1,
        ..small_config()
    };
    let w = BlobWriter::new(&key, v1, &index, &sink).unwrap();
    let zeros = w.write_zeros(3 << 20).unwrap();
    assert!(zeros.iter().all(|c| !c.is_hole()));
    assert_eq!(
        w.finish().unwrap().new_blobs,
        1,
        "one chunk of zeros, reused"
    );
}

/// A source that cuts its own records (etcd's key/value pairs) stores each
/// as its own blob, deduplicated across calls, small ones in groups.
#[test]
fn precut_records_dedup_and_group() {
    let key = MasterKey::generate().unwrap();
    let mut index = Index::new();
    let mut store = HashMap::new();
    let mut data = Vec::new();
    let mut cuts = Vec::new();
    for i in 0..2000u32 {
        let start = data.len();
        data.extend_from_slice(
            format!(
                "{{\"key\":\"/registry/configmaps/ns/cm-{i}\",\"value\":\"{}\"}}",
                "x".repeat((i % 50) as usize)
            )
            .as_bytes(),
        );
        cuts.push(start..data.len());
    }
    let sink = Mutex::new(Vec::new());
    let w = BlobWriter::new(&key, small_config(), &index, &sink).unwrap();
    let refs = w.write_cut(&data, &cuts).unwrap();
    assert_eq!(refs.len(), cuts.len());
    for (r, c) in refs.iter().zip(&cuts) {
        assert_eq!(r.len as usize, c.len());
    }
    // The same records again, in another order and in batches: no new blobs.
    let mut shuffled: Vec<_> = cuts.iter().rev().cloned().collect();
    shuffled.truncate(500);
    let mut batch = Some((data.clone(), shuffled.clone()));
    let again = w.write_cut_batches(|| Ok(batch.take())).unwrap();
    assert_eq!(again.len(), 500);
    let past_the_end = std::ops::Range {
        start: 0,
        end: data.len() + 1,
    };
    assert!(
        w.write_cut(&data, std::slice::from_ref(&past_the_end))
            .is_err()
    );
    let stats = w.finish().unwrap();
    assert_eq!(stats.new_blobs, 2000);
    // Grouped: far fewer, far smaller records than blobs.
    assert!(stats.stored_bytes * 4 < data.len() as u64, "{stats:?}");
    let packs = sink.into_inner().unwrap();
    let records: std::collections::HashSet<_> = packs
        .iter()
        .flat_map(|p| p.blobs.iter().map(move |b| (p.id, b.offset)))
        .collect();
    assert!(
        records.len() < 20,
        "{} records for 2000 blobs",
        records.len()
    );
    land(&mut index, &mut store, packs);
    let reader = BlobReader::new(&key, &index, &store);
    let ids: Vec<_> = refs.iter().map(|r| r.id.0).collect();
    for (got, c) in reader
        .read_blobs(BlobType::Data, &ids)
        .unwrap()
        .into_iter()
        .zip(&cuts)
    {
        assert_eq!(got.unwrap(), &data[c.clone()]);
    }
}

/// A blob found damaged is never deduplicated against again by writers
/// sharing the index: the next write stores the data afresh.
#[test]
fn damaged_blobs_are_stored_again() {
    let key = MasterKey::generate().unwrap();
    let mut index = Index::new();
    let mut store = HashMap::new();
    let data = generate(Kind::Text, 400_000, 12);
    let sink = Mutex::new(Vec::new());
    let w = BlobWriter::new(&key, small_config(), &index, &sink).unwrap();
    let chunks = w.write_stream(&data[..]).unwrap();
    w.finish().unwrap();
    land(&mut index, &mut store, sink.into_inner().unwrap());
    let loc = index.get(&chunks[0].id.0).unwrap();
    store.get_mut(&loc.pack).unwrap()[loc.offset as usize + 30] ^= 1;
    assert!(
        BlobReader::new(&key, &index, &store)
            .read_chunks(&chunks, &mut Vec::new())
            .is_err()
    );
    assert!(index.is_damaged(&chunks[0].id.0));
    let sink = Mutex::new(Vec::new());
    let w = BlobWriter::new(&key, small_config(), &index, &sink).unwrap();
    assert!(!w.contains(&chunks[0].id.0));
    w.write_stream(&data[..]).unwrap();
    let stats = w.finish().unwrap();
    assert!(stats.new_blobs >= 1, "{stats:?}");
}
