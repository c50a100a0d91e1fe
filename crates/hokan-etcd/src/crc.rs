//! CRC-32C of a concatenation from the CRCs of its parts.
//!
//! Why not `crc32c::crc32c_combine`: it squares 32×32 bit matrices for
//! every bit of the length, about 10 µs a call; the status of a database
//! with 100k keys needs 100k calls. This is zlib's newer method
//! (`crc32_combine_gen`/`multmodp`, Mark Adler): multiply the first CRC by
//! x^(8·len) modulo the polynomial, with x^(2^k) from a table, well under
//! a microsecond.

/// CRC-32C's polynomial, bit-reflected.
const POLY: u32 = 0x82F6_3B78;

/// `a × b` modulo the polynomial, both reflected (bit 31 is x^0).
fn multmodp(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0u32;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                return p;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
}

/// x^(2^k) modulo the polynomial, for every k a u64 length needs (zlib
/// wraps at 32, which holds for its polynomial but not for Castagnoli's).
const fn x2n_table() -> [u32; 67] {
    // A const version of multmodp for the table's squarings.
    const fn mul(a: u32, mut b: u32) -> u32 {
        let mut m = 1u32 << 31;
        let mut p = 0u32;
        loop {
            if a & m != 0 {
                p ^= b;
                if a & (m - 1) == 0 {
                    return p;
                }
            }
            m >>= 1;
            b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
        }
    }
    let mut t = [0u32; 67];
    // x^1.
    let mut p = 1u32 << 30;
    let mut k = 0;
    while k < 67 {
        t[k] = p;
        p = mul(p, p);
        k += 1;
    }
    t
}

const X2N: [u32; 67] = x2n_table();

/// x^(n · 2^k) modulo the polynomial.
fn x2nmodp(mut n: u64, mut k: usize) -> u32 {
    let mut p = 1u32 << 31; // x^0
    while n != 0 {
        if n & 1 != 0 {
            p = multmodp(X2N[k], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// The CRC-32C of `a || b` from `crc(a)`, `crc(b)` and `b`'s length.
pub(crate) fn combine(crc_a: u32, crc_b: u32, len_b: u64) -> u32 {
    // 2^3 = 8 bits a byte.
    multmodp(x2nmodp(len_b, 3), crc_a) ^ crc_b
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn combine_is_the_crc_of_the_concatenation(
            a in proptest::collection::vec(any::<u8>(), 0..3000),
            b in proptest::collection::vec(any::<u8>(), 0..3000),
        ) {
            let whole = crc32c::crc32c(&[a.as_slice(), &b].concat());
            let (ca, cb) = (crc32c::crc32c(&a), crc32c::crc32c(&b));
            prop_assert_eq!(super::combine(ca, cb, b.len() as u64), whole);
            prop_assert_eq!(
                super::combine(ca, cb, b.len() as u64),
                crc32c::crc32c_combine(ca, cb, b.len())
            );
        }
    }

    #[test]
    fn long_lengths_agree_with_the_crate() {
        for len in [1u64 << 20, (1 << 32) + 7, u64::from(u32::MAX)] {
            assert_eq!(
                super::combine(0x1234_5678, 0x9abc_def0, len),
                crc32c::crc32c_combine(0x1234_5678, 0x9abc_def0, len as usize)
            );
        }
    }
}
