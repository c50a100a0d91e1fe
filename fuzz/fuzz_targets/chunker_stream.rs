//! The stream chunker cuts exactly where the slice chunker does, for any
//! input, seed and batch size, and the chunks cover the input.
#![no_main]

use hokan_core::{Chunker, ChunkerParams};
use libfuzzer_sys::fuzz_target;

use hokan_fuzz as _;

fuzz_target!(|input: (Vec<u8>, u64, u16)| {
    let (data, seed, batch) = input;
    let c = Chunker::new(ChunkerParams::new(64, 256, 1024).unwrap(), seed | 1).unwrap();
    let expected: Vec<_> = c.chunks(&data).collect();
    let mut s = c.stream(&data[..], batch as usize);
    let mut got = Vec::new();
    while let Some(b) = s.next_batch(Vec::new()).unwrap() {
        got.extend(
            b.chunks
                .iter()
                .map(|r| b.offset as usize + r.start..b.offset as usize + r.end),
        );
    }
    assert_eq!(got, expected);
    assert_eq!(expected.last().map_or(0, |r| r.end), data.len());
});
