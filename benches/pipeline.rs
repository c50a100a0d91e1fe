//! The whole data path on all cores: stream in, packs out (chunk, hash,
//! dedup, compress, encrypt, pack), and the reverse path.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hokan::core::sample::{Kind, generate, golden_key};
use hokan::core::{BlobReader, BlobWriter, Index, WriterConfig};

const LEN: usize = 64 << 20;

/// Discards packs after counting them: the bench measures CPU work, not disk.
struct CountingSink(Mutex<u64>);
impl hokan::core::PackSink for CountingSink {
    fn put_pack(&self, pack: hokan::core::FinishedPack) -> hokan::core::Result<()> {
        *self.0.lock().unwrap() += pack.bytes.len() as u64;
        Ok(())
    }
}

fn pipeline(c: &mut Criterion) {
    let key = golden_key();
    let empty = Index::new();
    let mut g = c.benchmark_group("backup-stream");
    for kind in Kind::ALL {
        let data = generate(kind, LEN, 2);
        g.throughput(Throughput::Bytes(LEN as u64));
        g.bench_with_input(BenchmarkId::from_parameter(kind.name()), &data, |b, d| {
            b.iter(|| {
                let sink = CountingSink(Mutex::new(0));
                let w = BlobWriter::new(&key, WriterConfig::default(), &empty, &sink).unwrap();
                let chunks = w.write_stream(&d[..]).unwrap();
                w.finish().unwrap();
                chunks.len()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("restore-stream");
    for kind in Kind::ALL {
        let data = generate(kind, LEN, 3);
        let sink = Mutex::new(Vec::new());
        let w = BlobWriter::new(&key, WriterConfig::default(), &empty, &sink).unwrap();
        let chunks = w.write_stream(&data[..]).unwrap();
        w.finish().unwrap();
        let mut index = Index::new();
        let mut store = HashMap::new();
        for p in sink.into_inner().unwrap() {
            index.insert_pack(p.id, p.kind, &p.blobs);
            store.insert(p.id, p.bytes);
        }
        g.throughput(Throughput::Bytes(LEN as u64));
        g.bench_function(BenchmarkId::from_parameter(kind.name()), |b| {
            b.iter(|| {
                let mut out = std::io::sink();
                BlobReader::new(&key, &index, &store)
                    .read_chunks(&chunks, &mut out)
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(6)).warm_up_time(Duration::from_secs(1));
    targets = pipeline
}
criterion_main!(benches);
