//! Payload decoding never panics or allocates without bound, and
//! encode → decode is the identity.
#![no_main]

use hokan_core::compress::{self, Compression};
use libfuzzer_sys::fuzz_target;

use hokan_fuzz as _;

fuzz_target!(|input: (Vec<u8>, i8)| {
    let (data, level) = input;
    let _ = compress::decode(data.clone());
    let c = Compression::zstd((level % 10) as i32).unwrap_or(Compression::Off);
    let enc = compress::encode(&data, c).unwrap();
    assert!(enc.len() <= data.len() + 1);
    assert_eq!(compress::decode(enc).unwrap(), data);
});
