//! Measures dedup ratio and speed for candidate chunk sizes on a series of
//! versions of three kinds of large file, the data the chunk size matters
//! for (small files are one chunk whatever the setting):
//!
//! * `db`: a 256 MiB page file (4 KiB pages, text-like content) with 0.2%
//!   of its pages rewritten per version, like a database or bbolt file;
//! * `log`: a text file that grows by 2% per version, with 0.05% of its
//!   lines edited in place;
//! * `image`: a 256 MiB incompressible image with 8 runs of 64 KiB inserted
//!   or deleted at random places per version, shifting everything after.
//!
//! ```text
//! cargo run --release --example chunk_sizes
//! ```

use std::sync::Mutex;
use std::time::Instant;

use hokan::core::sample::{Kind, SplitMix64, generate, golden_key};
use hokan::core::{BlobWriter, ChunkerParams, FinishedPack, Index, WriterConfig};

const VERSIONS: usize = 8;

fn versions(kind: &str) -> Vec<Vec<u8>> {
    let mut r = SplitMix64::new(11);
    let mut out = Vec::new();
    match kind {
        "db" => {
            let mut v = generate(Kind::Text, 256 << 20, 1);
            for _ in 0..VERSIONS {
                out.push(v.clone());
                let pages = v.len() / 4096;
                for _ in 0..pages / 500 {
                    let p = (r.next_u64() as usize) % pages;
                    let fresh = generate(Kind::Text, 4096, r.next_u64());
                    v[p * 4096..(p + 1) * 4096].copy_from_slice(&fresh);
                }
            }
        }
        "log" => {
            let mut v = generate(Kind::Text, 128 << 20, 2);
            for _ in 0..VERSIONS {
                out.push(v.clone());
                for _ in 0..v.len() / 2000 / 80 {
                    let at = (r.next_u64() as usize) % (v.len() - 80);
                    let fresh = generate(Kind::Text, 80, r.next_u64());
                    v[at..at + 80].copy_from_slice(&fresh);
                }
                let grow = generate(Kind::Text, v.len() / 50, r.next_u64());
                v.extend_from_slice(&grow);
            }
        }
        _ => {
            let mut v = generate(Kind::Random, 256 << 20, 3);
            for _ in 0..VERSIONS {
                out.push(v.clone());
                for i in 0..8 {
                    let at = (r.next_u64() as usize) % (v.len() - (64 << 10));
                    if i % 2 == 0 {
                        let fresh = generate(Kind::Random, 64 << 10, r.next_u64());
                        v.splice(at..at, fresh);
                    } else {
                        v.drain(at..at + (64 << 10));
                    }
                }
            }
        }
    }
    out
}

fn main() {
    let key = golden_key();
    let candidates = [
        (64 << 10, 256 << 10, 1 << 20),
        (128 << 10, 512 << 10, 2 << 20),
        (256 << 10, 512 << 10, 4 << 20),
        (512 << 10, 1 << 20, 8 << 20),
        (1 << 20, 2 << 20, 8 << 20),
        (1 << 20, 4 << 20, 16 << 20),
    ];
    println!(
        "{:<6} {:>22} {:>10} {:>10} {:>12} {:>10} {:>8}",
        "input", "min/avg/max", "chunks", "logical", "stored", "ratio", "MiB/s"
    );
    for kind in ["db", "log", "image"] {
        let vs = versions(kind);
        let logical: usize = vs.iter().map(Vec::len).sum();
        for &(min, avg, max) in &candidates {
            let cfg = WriterConfig {
                chunker: ChunkerParams::new(min, avg, max).unwrap(),
                ..Default::default()
            };
            let index = Index::new();
            let sink: Mutex<Vec<FinishedPack>> = Mutex::new(Vec::new());
            let w = BlobWriter::new(&key, cfg, &index, &sink).unwrap();
            let t = Instant::now();
            let mut chunks = 0;
            for v in &vs {
                chunks += w.write_slice(v).unwrap().len();
            }
            let s = w.finish().unwrap();
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{kind:<6} {:>22} {:>10} {:>9}M {:>11.1}M {:>9.2}x {:>8.0}",
                format!("{}K/{}K/{}K", min >> 10, avg >> 10, max >> 10),
                chunks,
                logical >> 20,
                s.stored_bytes as f64 / 1048576.0,
                logical as f64 / s.stored_bytes as f64,
                logical as f64 / secs / 1048576.0
            );
        }
    }
}
