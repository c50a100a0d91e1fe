//! Throughput of each stage of the data path, on deterministic inputs of
//! three kinds (random, text-like, zeros). `benches/limits.sh` runs this
//! together with `zstd -b3` and `openssl speed` on the same inputs, so the
//! figures can be read against the machine's limits.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hokan::core::compress::{self, Compression};
use hokan::core::sample::{Kind, generate, golden_key};
use hokan::core::{BlobType, Chunker, ChunkerParams, PackWriter, blob};
use std::hint::black_box;
use std::time::Duration;

/// Size of every input: large enough for the default 1 MiB chunks.
const LEN: usize = 32 << 20;

fn inputs() -> Vec<(Kind, Vec<u8>)> {
    Kind::ALL
        .iter()
        .map(|&k| (k, generate(k, LEN, 1)))
        .collect()
}

/// 1 MiB pieces, the default average chunk size.
fn pieces(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.chunks(1 << 20)
}

fn stages(c: &mut Criterion) {
    let key = golden_key();
    let inputs = inputs();

    let mut g = c.benchmark_group("chunk");
    for (kind, data) in &inputs {
        g.throughput(Throughput::Bytes(data.len() as u64));
        let chunker = Chunker::new(ChunkerParams::default(), key.chunker_seed()).unwrap();
        g.bench_with_input(BenchmarkId::from_parameter(kind.name()), data, |b, d| {
            b.iter(|| chunker.chunks(black_box(d)).count())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("hash");
    let (_, data) = &inputs[0];
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("keyed-blake3-1MiB", |b| {
        b.iter(|| {
            pieces(data)
                .map(|p| key.chunk_id(black_box(p)).0.0[0])
                .fold(0u8, |a, x| a ^ x)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("compress-zstd3");
    for (kind, data) in &inputs {
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(kind.name()), data, |b, d| {
            b.iter(|| {
                pieces(d)
                    .map(|p| {
                        compress::encode(black_box(p), Compression::Zstd(3))
                            .unwrap()
                            .len()
                    })
                    .sum::<usize>()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("decompress-zstd3");
    for (kind, data) in &inputs {
        let encoded: Vec<Vec<u8>> = pieces(data)
            .map(|p| compress::encode(p, Compression::Zstd(3)).unwrap())
            .collect();
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(kind.name()),
            &encoded,
            |b, e| {
                b.iter(|| {
                    e.iter()
                        .map(|p| compress::decode(p.clone()).unwrap().len())
                        .sum::<usize>()
                })
            },
        );
    }
    g.finish();

    let mut g = c.benchmark_group("encrypt");
    let cipher = key.cipher();
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("xchacha20poly1305-1MiB", |b| {
        let mut out = Vec::with_capacity((1 << 20) + 64);
        b.iter(|| {
            for p in pieces(data) {
                out.clear();
                cipher.seal_into(&mut out, b"aad", black_box(p)).unwrap();
            }
        })
    });
    g.finish();

    // Building packs from sealed blobs: copying into the pack, the sealed
    // header, and the BLAKE3 pack id over every byte.
    let mut g = c.benchmark_group("pack");
    let blobs: Vec<_> = pieces(data)
        .map(|p| blob::encode_new(&key, BlobType::Data, p, Compression::Off).unwrap())
        .collect();
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("build-16MiB-packs", |b| {
        b.iter(|| {
            let mut packs = 0;
            for group in blobs.chunks(16) {
                let mut w = PackWriter::new(BlobType::Data, 17 << 20);
                for bl in group {
                    w.add(bl).unwrap();
                }
                packs += w.finish(&key).unwrap().bytes.len();
            }
            packs
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = stages
}
criterion_main!(benches);
