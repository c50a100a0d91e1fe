//! The dedup index: lookups, inserts, bulk loading, and bytes per entry
//! (printed before the timings; the target is below rustic's 48).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hokan::core::sample::SplitMix64;
use hokan::core::{BlobType, Id, Index, PackId, PackedBlob};

const ENTRIES: usize = 1_000_000;
const PER_PACK: usize = 16; // 16 MiB packs of 1 MiB chunks

fn random_id(r: &mut SplitMix64) -> Id {
    let mut b = [0u8; 32];
    r.fill(&mut b);
    Id(b)
}

fn packs(r: &mut SplitMix64) -> Vec<(PackId, Vec<PackedBlob>)> {
    (0..ENTRIES / PER_PACK)
        .map(|_| {
            let blobs = (0..PER_PACK)
                .map(|i| PackedBlob {
                    kind: BlobType::Data,
                    id: random_id(r),
                    offset: 8 + (i as u32) * (1 << 20),
                    length: 1 << 20,
                    raw_len: 1 << 20,
                })
                .collect();
            (PackId(random_id(r)), blobs)
        })
        .collect()
}

fn index(c: &mut Criterion) {
    let mut r = SplitMix64::new(7);
    let packs = packs(&mut r);

    let mut bulk = Index::new();
    bulk.extend_packs(packs.iter().map(|(p, b)| (*p, BlobType::Data, &b[..])));
    let mut incremental = Index::new();
    for (p, b) in &packs {
        incremental.insert_pack(*p, BlobType::Data, b);
    }
    eprintln!(
        "index of {} entries: {:.1} bytes/entry loaded in bulk, {:.1} bytes/entry built by inserts",
        bulk.len(),
        bulk.bytes_per_entry(),
        incremental.bytes_per_entry()
    );

    let probes: Vec<Id> = packs.iter().step_by(7).map(|(_, b)| b[3].id).collect();
    let misses: Vec<Id> = (0..probes.len()).map(|_| random_id(&mut r)).collect();
    let mut g = c.benchmark_group("index");
    g.throughput(Throughput::Elements(probes.len() as u64));
    g.bench_function("lookup-hit-1M", |b| {
        b.iter(|| {
            probes
                .iter()
                .filter(|id| bulk.get(black_box(id)).is_some())
                .count()
        })
    });
    g.bench_function("lookup-miss-1M", |b| {
        b.iter(|| {
            misses
                .iter()
                .filter(|id| bulk.contains(black_box(id)))
                .count()
        })
    });
    g.throughput(Throughput::Elements(ENTRIES as u64));
    g.bench_function("bulk-load-1M", |b| {
        b.iter(|| {
            let mut ix = Index::new();
            ix.extend_packs(packs.iter().map(|(p, b)| (*p, BlobType::Data, &b[..])));
            ix.len()
        })
    });
    g.bench_function("insert-1M", |b| {
        b.iter(|| {
            let mut ix = Index::new();
            for (p, bl) in &packs {
                ix.insert_pack(*p, BlobType::Data, bl);
            }
            ix.len()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = index
}
criterion_main!(benches);
