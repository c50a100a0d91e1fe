//! Decode throughput over Kubernetes' own fixtures (every built-in kind, all
//! fields set, so larger than typical objects): objects per second for a
//! full decode to JSON, for reading only the type (what listing needs), and
//! for YAML output.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn fixtures() -> Vec<Vec<u8>> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/k8s/api-testdata"
    );
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pb"))
        .collect();
    names.sort();
    // Only values with a type in the envelope, as everything in etcd has.
    names
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .filter(|v| hokan_k8s_codec::decode(v).is_ok())
        .collect()
}

fn bench(c: &mut Criterion) {
    let values = fixtures();
    let bytes: usize = values.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("fixtures");
    g.throughput(Throughput::Elements(values.len() as u64));
    g.bench_function(
        format!("decode {} objects ({} KiB)", values.len(), bytes / 1024),
        |b| {
            b.iter(|| {
                for v in &values {
                    black_box(hokan_k8s_codec::decode(black_box(v)).unwrap());
                }
            })
        },
    );
    g.bench_function("peek_type", |b| {
        b.iter(|| {
            for v in &values {
                black_box(hokan_k8s_codec::peek_type(black_box(v)).unwrap());
            }
        })
    });
    let decoded: Vec<_> = values
        .iter()
        .map(|v| hokan_k8s_codec::decode(v).unwrap().object)
        .collect();
    g.bench_function("to_yaml", |b| {
        b.iter(|| {
            for v in &decoded {
                black_box(hokan_k8s_codec::to_yaml(black_box(v)));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
