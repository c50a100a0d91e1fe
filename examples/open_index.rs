//! Measures opening a repository whose index holds many entries.
//!
//! ```text
//! cargo run --release --example open_index -- populate REPO 1000000
//! /usr/bin/time -v cargo run --release --example open_index -- open REPO CACHE_DIR
//! ```
//!
//! `populate` writes index files as backups would (256 packs of 16 blobs per
//! file) without writing the packs themselves: opening reads only index
//! files. `open` opens with the password (timed separately: Argon2id is
//! deliberately slow), loads the index, and prints times and memory.

use std::time::Instant;

use hokan::core::sample::SplitMix64;
use hokan::core::{BlobType, Id, PackId, PackedBlob};
use hokan::repo::index_file::{IndexFile, IndexedPack};
use hokan::repo::object::{self, Kind};
use hokan::repo::{CacheMode, InitOptions, OpenOptions, Repository, layout};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let password = b"measure";
    match args.get(1).map(String::as_str) {
        Some("populate") => {
            let n: usize = args[3].parse().unwrap();
            let repo = Repository::init(
                &args[2],
                password,
                InitOptions::default(),
                OpenOptions::default(),
            )
            .unwrap();
            let mut r = SplitMix64::new(1);
            let mut id = || {
                let mut b = [0u8; 32];
                r.fill(&mut b);
                Id(b)
            };
            let packs: Vec<IndexedPack> = (0..n / 16)
                .map(|_| IndexedPack {
                    id: PackId(id()),
                    kind: BlobType::Data,
                    size: 16 << 20,
                    blobs: (0..16u32)
                        .map(|i| PackedBlob {
                            kind: BlobType::Data,
                            id: id(),
                            offset: 8 + i * (1 << 20),
                            length: 1 << 20,
                            raw_len: 1 << 20,
                        })
                        .collect(),
                })
                .collect();
            // Index files with no packs behind them: written as raw
            // objects (sealed, named by their hash), since no write
            // session indexes packs it did not store.
            for batch in packs.chunks(256) {
                let file = IndexFile {
                    supersedes: Vec::new(),
                    packs: batch.to_vec(),
                };
                let bytes = object::seal(repo.master_key(), Kind::Index, 1, &file).unwrap();
                let path = layout::object(Kind::Index, &object::object_id(&bytes));
                repo.store().put(&path, bytes.into()).unwrap();
            }
            println!(
                "wrote {} index files for {} entries",
                packs.len().div_ceil(256),
                n
            );
        }
        Some("open") => {
            let options = OpenOptions {
                cache: CacheMode::Dir(args[3].clone().into()),
                ..Default::default()
            };
            let t = Instant::now();
            let repo = Repository::open(&args[2], password, options).unwrap();
            let opened = t.elapsed();
            let t = Instant::now();
            let repo = repo.load_index().unwrap();
            let loaded = t.elapsed();
            println!(
                "open (Argon2id, config) {:.2} s; index of {} entries in {} files loaded in {:.2} s; {:.1} bytes/entry in memory",
                opened.as_secs_f64(),
                repo.index().len(),
                repo.index_files().len(),
                loaded.as_secs_f64(),
                repo.index().bytes_per_entry()
            );
        }
        _ => eprintln!("usage: open_index populate REPO N | open REPO CACHE_DIR"),
    }
}
