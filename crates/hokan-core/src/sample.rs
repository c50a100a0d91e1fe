//! Deterministic sample inputs for tests, golden files and benchmarks.
//!
//! The same seed gives the same bytes on every machine and in every
//! version: golden tests pin chunk boundaries of these inputs, so the
//! generators below must never change.

/// splitmix64: tiny, fast, and fully specified.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// The kinds of input benchmarks and golden tests use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Uniformly random bytes: incompressible, like media or encrypted files.
    Random,
    /// Words, identifiers and punctuation with a skewed vocabulary: about as
    /// compressible as source code or logs.
    Text,
    /// All zeros: the best case for compression, the worst for the chunker
    /// (no boundaries, every chunk is the maximum size).
    Zeros,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 3] = [Kind::Random, Kind::Text, Kind::Zeros];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Random => "random",
            Kind::Text => "text",
            Kind::Zeros => "zeros",
        }
    }
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "return",
    "if",
    "else",
    "let",
    "mut",
    "fn",
    "struct",
    "impl",
    "self",
    "data",
    "error",
    "value",
    "result",
    "node",
    "pod",
    "namespace",
    "kubernetes",
    "etcd",
    "snapshot",
    "backup",
    "restore",
    "chunk",
    "pack",
    "index",
    "tree",
    "metadata",
    "spec",
    "status",
    "container",
    "image",
    "volume",
    "config",
    "name",
    "labels",
    "annotations",
    "apiVersion",
    "kind",
    "replicas",
    "selector",
    "template",
    "ports",
    "0",
    "1",
    "42",
    "true",
    "false",
    "null",
    "int",
    "u64",
    "String",
    "Vec",
    "Option",
    "Some",
    "None",
];
const PUNCT: &[&str] = &[
    " ", " ", " ", " ", ", ", ". ", "(", ") ", ": ", ";\n", "\n", "\n    ", " = ", "{\n", "}\n",
];

/// `len` bytes of the given kind from `seed`.
pub fn generate(kind: Kind, len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    match kind {
        Kind::Zeros => vec![0; len],
        Kind::Random => {
            let mut v = vec![0; len];
            rng.fill(&mut v);
            v
        }
        Kind::Text => {
            let mut v = Vec::with_capacity(len + 32);
            while v.len() < len {
                let r = rng.next_u64();
                // Skew towards the first words: min of two uniform draws.
                let a = (r & 0xffff) as usize % WORDS.len();
                let b = ((r >> 16) & 0xffff) as usize % WORDS.len();
                v.extend_from_slice(WORDS[a.min(b)].as_bytes());
                if (r >> 32).is_multiple_of(7) {
                    // A number or an identifier suffix, as in real code.
                    v.extend_from_slice(format!("{}", (r >> 40) % 10_000).as_bytes());
                }
                v.extend_from_slice(PUNCT[((r >> 56) as usize) % PUNCT.len()].as_bytes());
            }
            v.truncate(len);
            v
        }
    }
}

/// A fixed, well-known master key for golden tests: bytes 0, 1, 2, … 71.
/// Never use it for a real repository.
pub fn golden_key() -> crate::MasterKey {
    let bytes: Vec<u8> = (0u8..72).collect();
    crate::MasterKey::from_bytes(&bytes).expect("72 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // First outputs of splitmix64 seeded with 0 (published test vector).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn text_compresses_like_text() {
        let t = generate(Kind::Text, 1 << 20, 1);
        assert_eq!(t.len(), 1 << 20);
        let z = zstd::bulk::compress(&t, 3).unwrap();
        let ratio = t.len() as f64 / z.len() as f64;
        assert!((2.0..8.0).contains(&ratio), "ratio {ratio}");
    }
}
