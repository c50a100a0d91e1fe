//! Split and rebuild throughput on a real etcd snapshot.
//!
//! The snapshot is `HOKAN_ETCD_BENCH_DB` if set (e.g. a file from
//! `bench/series.sh`), else one made here: a real etcd started on loopback
//! with 8000 ConfigMap-shaped values of ~3 KB (~30 MB), saved with
//! `etcdctl snapshot save`. Without etcd installed the bench says so and
//! does nothing.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hokan_etcd::testdata::configmap_json;
use hokan_etcd::testing::EtcdProcess;
use hokan_etcd::{IterSource, MemorySink, RecordSink, SplitOptions, rebuild, split};

fn snapshot() -> Option<Vec<u8>> {
    if let Ok(path) = std::env::var("HOKAN_ETCD_BENCH_DB") {
        return Some(std::fs::read(path).expect("HOKAN_ETCD_BENCH_DB names a readable file"));
    }
    let etcd = EtcdProcess::start()?;
    etcd.client().put_all((0..125 * 64u64).map(|i| {
        (
            format!("/registry/configmaps/bench/cm-{i}"),
            configmap_json(i, 0, 3000),
        )
    }));
    let path = etcd.scratch().join("bench.db");
    etcd.etcdctl_ok(&["snapshot", "save", path.to_str().unwrap()]);
    std::fs::read(path).ok()
}

/// Counts what it is sent, as a repository sink would cost at least.
struct Counting(u64);

impl RecordSink for Counting {
    fn layout(&mut self, bytes: &[u8]) -> hokan_etcd::Result<()> {
        self.0 += black_box(bytes).len() as u64;
        Ok(())
    }

    fn record(&mut self, record: &[u8]) -> hokan_etcd::Result<()> {
        self.0 += black_box(record).len() as u64;
        Ok(())
    }
}

fn bench(c: &mut Criterion) {
    let Some(db) = snapshot() else {
        eprintln!("skipped: etcd is not installed and HOKAN_ETCD_BENCH_DB is not set");
        return;
    };
    let mut g = c.benchmark_group("etcd");
    g.throughput(Throughput::Bytes(db.len() as u64));
    g.sample_size(10);
    g.bench_function("split", |b| {
        b.iter(|| {
            let mut sink = Counting(0);
            split(&db[..], &mut sink, &SplitOptions::bbolt("bench")).unwrap();
            sink.0
        })
    });
    let mut parts = MemorySink::default();
    split(&db[..], &mut parts, &SplitOptions::bbolt("bench")).unwrap();
    let mut out = Vec::with_capacity(db.len());
    g.bench_function("rebuild", |b| {
        b.iter(|| {
            out.clear();
            rebuild(
                &parts.layout[..],
                &mut IterSource(parts.records.iter()),
                &mut out,
            )
            .unwrap()
        })
    });
    g.bench_function("status", |b| {
        b.iter(|| hokan_etcd::status(&db, "bench").unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
