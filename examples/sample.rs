//! Writes one of the deterministic benchmark inputs to stdout, so external
//! tools (`zstd -b3`, the comparison harness) measure the very same bytes:
//!
//! ```text
//! cargo run --release --example sample -- text 33554432 > text.bin
//! ```

use std::io::Write;

use hokan::core::sample::{Kind, generate};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = match args.get(1).map(String::as_str) {
        Some("random") => Kind::Random,
        Some("text") => Kind::Text,
        Some("zeros") => Kind::Zeros,
        _ => {
            eprintln!("usage: sample random|text|zeros LEN [SEED]");
            std::process::exit(2);
        }
    };
    let len: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32 << 20);
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    std::io::stdout()
        .write_all(&generate(kind, len, seed))
        .expect("writing to stdout");
}
