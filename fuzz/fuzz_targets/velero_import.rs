//! Velero backup tarballs (`hokan k8s import-velero`), from whoever made
//! them: no input panics or allocates by what a tar header claims; and an
//! imported backup exported again imports to the same objects. Half the
//! runs take the fuzzer's bytes as the tar inside the gzip stream, so
//! mutations reach tar headers and paths, not only the deflate stream.
#![no_main]

use std::io::Write;
use std::path::Path;

use futures::executor::block_on;
use hokan_k8s::{MemoryStore, velero};
use libfuzzer_sys::fuzz_target;

use hokan_fuzz as _;

fn objects(store: &MemoryStore) -> Vec<(String, Vec<u8>, bool, String)> {
    store
        .objects()
        .map(|o| {
            (
                o.entry.path(),
                o.json.clone(),
                o.entry.preferred,
                format!("{:?}", o.entry.attrs),
            )
        })
        .collect()
}

fuzz_target!(|input: (bool, &[u8])| {
    let (gzipped, bytes) = input;
    let tarball = if gzipped {
        bytes.to_vec()
    } else {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    };
    let name = Path::new("fuzzed.tar.gz");
    let mut first = MemoryStore::new();
    if block_on(velero::import(name, &tarball[..], &mut first)).is_err() {
        return;
    }
    let mut again = Vec::new();
    block_on(velero::export(&first, &mut again)).unwrap();
    let mut second = MemoryStore::new();
    block_on(velero::import(name, &again[..], &mut second)).unwrap();
    assert_eq!(objects(&first), objects(&second));
});
