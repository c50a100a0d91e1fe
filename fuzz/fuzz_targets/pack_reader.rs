//! A valid pack with fuzzer-chosen byte edits, and raw fuzzer bytes: the
//! reader must never panic, and whatever it returns must be the original
//! data (an edit is either detected or does not touch what was read).
#![no_main]

use std::sync::OnceLock;

use hokan_core::sample::golden_key;
use hokan_core::{BlobType, Compression, MasterKey, PackReader, PackWriter, blob};
use libfuzzer_sys::fuzz_target;

use hokan_fuzz as _;

const INPUTS: [&[u8]; 3] = [
    b"first blob of the pack",
    b"",
    b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];

fn pack() -> &'static (MasterKey, Vec<u8>) {
    static PACK: OnceLock<(MasterKey, Vec<u8>)> = OnceLock::new();
    PACK.get_or_init(|| {
        let key = golden_key();
        let mut w = PackWriter::new(BlobType::Data, 0);
        for d in INPUTS {
            w.add(&blob::encode_new(&key, BlobType::Data, d, Compression::default()).unwrap())
                .unwrap();
        }
        let bytes = w.finish(&key).unwrap().bytes;
        (key, bytes)
    })
}

fuzz_target!(|input: (bool, Vec<(u16, u8)>, Vec<u8>)| {
    let (key, original) = pack();
    let (raw, edits, bytes) = input;
    let data = if raw {
        bytes
    } else {
        let mut b = original.clone();
        for (at, x) in edits {
            let i = at as usize % b.len();
            b[i] ^= x;
        }
        b
    };
    if let Ok(reader) = PackReader::open(&data, None, key) {
        for b in reader.blobs() {
            if let Ok(plain) = reader.read(key, b) {
                assert!(INPUTS.contains(&&plain[..]), "wrong data returned");
            }
        }
    }
});
