//! Authenticated encryption: XChaCha20-Poly1305 with random 24-byte nonces.
//!
//! A sealed record is `nonce (24) || ciphertext || tag (16)`. The associated
//! data names what the record is (a blob of a type and id, a pack header, a
//! repository object), so a record moved to another place fails to open.
//! Random 192-bit nonces are safe at any volume, which is why this cipher
//! was chosen over 96-bit-nonce ChaCha20-Poly1305 or AES-GCM.
//!
//! XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha §2.3) is HChaCha20, which
//! derives a subkey from the key and the nonce's first 16 bytes, followed
//! by the IETF ChaCha20-Poly1305 of RFC 8439 under that subkey with the
//! nonce `0 (4) || the nonce's last 8 bytes`. [`Backend::Ring`] builds it
//! that way on `ring`'s assembly ChaCha20-Poly1305, several times faster
//! than the portable [`Backend::RustCrypto`]; both write the same bytes
//! (`docs/DECISIONS.md`, "Encryption speed").

use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, KeyInit, Tag, XChaCha20Poly1305, XNonce};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Result, random_fill};
use crate::id::{BlobType, Id};

/// Nonce length.
pub const NONCE_LEN: usize = 24;
/// Authentication tag length.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed record adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Domain prefix of a blob's associated data.
const BLOB_DOMAIN: &[u8; 11] = b"hokan blob\0";
/// Domain prefix of a group record's associated data.
const GROUP_DOMAIN: &[u8; 12] = b"hokan group\0";
/// Domain prefix of a pack header's associated data.
const PACK_HEADER_DOMAIN: &[u8; 18] = b"hokan pack header\0";
/// Domain prefix of a repository object's associated data.
const OBJECT_DOMAIN: &[u8; 13] = b"hokan object\0";

/// Associated data for a blob: `"hokan blob\0" || type (u8) || id (32)`.
pub fn blob_aad(kind: BlobType, id: &Id) -> [u8; 44] {
    let mut aad = [0u8; 44];
    aad[..11].copy_from_slice(BLOB_DOMAIN);
    aad[11] = kind.to_byte();
    aad[12..].copy_from_slice(id.as_bytes());
    aad
}

/// Associated data for a group of small blobs (pack version 2):
/// `"hokan group\0" || type (u8)`. The members are bound by their ids,
/// which are checked when each is taken out.
pub fn group_aad(kind: BlobType) -> [u8; 13] {
    let mut aad = [0u8; 13];
    aad[..12].copy_from_slice(GROUP_DOMAIN);
    aad[12] = kind.to_byte();
    aad
}

/// Associated data for a pack header: `"hokan pack header\0" || version (u16 LE)`.
pub fn pack_header_aad(version: u16) -> [u8; 20] {
    let mut aad = [0u8; 20];
    aad[..18].copy_from_slice(PACK_HEADER_DOMAIN);
    aad[18..].copy_from_slice(&version.to_le_bytes());
    aad
}

/// Associated data for a repository object (config, key file, index file,
/// snapshot): `"hokan object\0" || kind || "\0" || version (u16 LE)`, where
/// `kind` is the object's kind name, e.g. `snapshot`.
pub fn object_aad(kind: &str, version: u16) -> Vec<u8> {
    let mut aad = Vec::with_capacity(OBJECT_DOMAIN.len() + kind.len() + 3);
    aad.extend_from_slice(OBJECT_DOMAIN);
    aad.extend_from_slice(kind.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_le_bytes());
    aad
}

/// A record failed authentication: wrong key, wrong associated data, or
/// changed bytes. The caller knows which object it was and says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError;

/// Which implementation of XChaCha20-Poly1305 a [`Cipher`] uses. Both
/// produce the same bytes; they differ only in speed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// HChaCha20 (RustCrypto's `chacha20`) and `ring`'s ChaCha20-Poly1305,
    /// in assembly where the CPU has it (AVX2 on x86-64, NEON on ARM).
    #[default]
    Ring,
    /// RustCrypto's `chacha20poly1305`, portable Rust with SIMD backends.
    RustCrypto,
}

/// XChaCha20-Poly1305 under one key.
#[derive(Clone)]
pub struct Cipher {
    key: Zeroizing<[u8; 32]>,
    backend: Backend,
}

impl Cipher {
    /// A cipher under a 32-byte key, with the fastest backend.
    pub fn new(key: &[u8; 32]) -> Self {
        Self::with_backend(key, Backend::default())
    }

    /// A cipher under a 32-byte key with a chosen backend (for tests and
    /// benches that compare them).
    pub fn with_backend(key: &[u8; 32], backend: Backend) -> Self {
        Cipher {
            key: Zeroizing::new(*key),
            backend,
        }
    }

    /// Appends the sealed record for `plaintext` to `out`, under a fresh
    /// random nonce.
    pub fn seal_into(&self, out: &mut Vec<u8>, aad: &[u8], plaintext: &[u8]) -> Result<()> {
        out.reserve(plaintext.len() + OVERHEAD);
        let start = out.len();
        out.extend_from_slice(&[0u8; NONCE_LEN]);
        out.extend_from_slice(plaintext);
        self.seal_in_place(out, start, aad)
    }

    /// The sealed record for `plaintext` under a fresh random nonce.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        self.seal_into(&mut out, aad, plaintext)?;
        Ok(out)
    }

    /// Appends a sealed record under a caller-chosen nonce.
    ///
    /// Only for reproducing known records (golden tests, test vectors): a
    /// nonce must never be used twice under one key.
    pub fn seal_into_with_nonce(
        &self,
        out: &mut Vec<u8>,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) {
        out.reserve(plaintext.len() + OVERHEAD);
        let start = out.len();
        out.extend_from_slice(nonce);
        out.extend_from_slice(plaintext);
        self.encrypt_tail(out, start, aad);
    }

    /// Seals in place without copying the plaintext: `buf[start..start + 24]`
    /// is overwritten with a fresh random nonce, `buf[start + 24..]` (the
    /// plaintext the caller placed there) is encrypted, and the tag is
    /// appended.
    pub fn seal_in_place(&self, buf: &mut Vec<u8>, start: usize, aad: &[u8]) -> Result<()> {
        assert!(buf.len() >= start + NONCE_LEN, "room for the nonce");
        random_fill(&mut buf[start..start + NONCE_LEN])?;
        self.encrypt_tail(buf, start, aad);
        Ok(())
    }

    /// The IETF ChaCha20-Poly1305 key and nonce that XChaCha20-Poly1305
    /// under `nonce` amounts to.
    fn ietf(&self, nonce: &[u8]) -> (LessSafeKey, Nonce) {
        let (prefix, suffix) = nonce.split_at(16);
        let mut subkey = chacha20::hchacha::<chacha20::R20>(
            &(*self.key).into(),
            &<[u8; 16]>::try_from(prefix).expect("16 bytes").into(),
        );
        let key = UnboundKey::new(&CHACHA20_POLY1305, &subkey).expect("a 32-byte key");
        // ring keeps its own copy (not wiped on drop); ours is. The subkey
        // opens only records under this one nonce.
        subkey.as_mut_slice().zeroize();
        let mut ietf = [0u8; 12];
        ietf[4..].copy_from_slice(suffix);
        (LessSafeKey::new(key), Nonce::assume_unique_for_key(ietf))
    }

    fn encrypt_tail(&self, buf: &mut Vec<u8>, start: usize, aad: &[u8]) {
        let (head, body) = buf.split_at_mut(start + NONCE_LEN);
        let nonce = &head[start..];
        let tag: [u8; TAG_LEN] = match self.backend {
            Backend::Ring => {
                let (key, nonce) = self.ietf(nonce);
                let tag = key
                    .seal_in_place_separate_tag(nonce, Aad::from(aad), body)
                    .expect("ChaCha20-Poly1305 accepts messages up to 256 GiB");
                tag.as_ref().try_into().expect("16-byte tag")
            }
            Backend::RustCrypto => XChaCha20Poly1305::new((&*self.key).into())
                .encrypt_inout_detached(
                    &XNonce::try_from(nonce).expect("24-byte nonce"),
                    aad,
                    InOutBuf::from(body),
                )
                .expect("XChaCha20-Poly1305 accepts messages up to 256 GiB")
                .into(),
        };
        buf.extend_from_slice(&tag);
    }

    /// Opens a sealed record into a new buffer.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < OVERHEAD {
            return Err(OpenError);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        match self.backend {
            Backend::Ring => {
                let mut out = ciphertext.to_vec();
                let (key, nonce) = self.ietf(nonce);
                let tag = ring::aead::Tag::try_from(tag).map_err(|_| OpenError)?;
                key.open_in_place_separate_tag(nonce, Aad::from(aad), tag, &mut out, 0..)
                    .map_err(|_| OpenError)?;
                Ok(out)
            }
            Backend::RustCrypto => {
                let mut out = vec![0u8; ciphertext.len()];
                let buf = InOutBuf::new(ciphertext, &mut out).expect("equal lengths");
                XChaCha20Poly1305::new((&*self.key).into())
                    .decrypt_inout_detached(
                        &XNonce::try_from(nonce).expect("24-byte nonce"),
                        aad,
                        buf,
                        &Tag::try_from(tag).expect("16-byte tag"),
                    )
                    .map_err(|_| OpenError)?;
                Ok(out)
            }
        }
    }
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_bind_to_aad() {
        let c = Cipher::new(&[7u8; 32]);
        let sealed = c.seal(b"a", b"hello").unwrap();
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        assert_eq!(c.open(b"a", &sealed).unwrap(), b"hello");
        assert_eq!(c.open(b"b", &sealed), Err(OpenError));
        assert_eq!(Cipher::new(&[8u8; 32]).open(b"a", &sealed), Err(OpenError));
        assert_eq!(c.open(b"a", &sealed[..OVERHEAD - 1]), Err(OpenError));
        // Two seals of the same plaintext differ (random nonces).
        assert_ne!(sealed, c.seal(b"a", b"hello").unwrap());
    }

    #[test]
    fn empty_plaintext() {
        let c = Cipher::new(&[1u8; 32]);
        let sealed = c.seal(b"", b"").unwrap();
        assert_eq!(sealed.len(), OVERHEAD);
        assert_eq!(c.open(b"", &sealed).unwrap(), b"");
    }

    /// draft-irtf-cfrg-xchacha-03, A.3.1: the AEAD test vector.
    #[test]
    fn both_backends_match_the_xchacha_test_vector() {
        let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
        let nonce: [u8; 24] = std::array::from_fn(|i| 0x40 + i as u8);
        let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap();
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you \
only one tip for the future, sunscreen would be it.";
        let expected = hex::decode(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb\
             731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452\
             2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9\
             21f9664c97637da9768812f615c68b13b52ec0875924c1c7987947deafd8780a\
             cf49",
        )
        .unwrap();
        let tag = hex::decode("c0875924c1c7987947deafd8780acf49").unwrap();
        for backend in [Backend::Ring, Backend::RustCrypto] {
            let c = Cipher::with_backend(&key, backend);
            let mut out = Vec::new();
            c.seal_into_with_nonce(&mut out, &nonce, &aad, plaintext);
            assert_eq!(&out[..24], &nonce, "{backend:?}");
            assert_eq!(&out[24..], &expected[..], "{backend:?}");
            assert_eq!(&out[out.len() - 16..], &tag[..], "{backend:?}");
            assert_eq!(c.open(&aad, &out).unwrap(), plaintext, "{backend:?}");
        }
    }

    /// The fast backend writes exactly the bytes of the reference one, and
    /// each opens what the other sealed, at every length around the block
    /// sizes the assembly paths switch on; changed bytes fail in both.
    #[test]
    fn backends_write_the_same_bytes_and_open_each_other() {
        let key: [u8; 32] = std::array::from_fn(|i| (i * 7 + 3) as u8);
        let ring = Cipher::with_backend(&key, Backend::Ring);
        let rust = Cipher::with_backend(&key, Backend::RustCrypto);
        let data: Vec<u8> = (0..4200u32).map(|i| (i * 31 % 251) as u8).collect();
        let lens = (0..=130).chain([191, 192, 255, 256, 257, 511, 512, 513, 1023, 1024, 4200]);
        for (n, len) in lens.enumerate() {
            let nonce: [u8; 24] = std::array::from_fn(|i| (i + n) as u8 ^ 0x5a);
            let aad = &data[..n % 50];
            let (mut a, mut b) = (Vec::new(), Vec::new());
            ring.seal_into_with_nonce(&mut a, &nonce, aad, &data[..len]);
            rust.seal_into_with_nonce(&mut b, &nonce, aad, &data[..len]);
            assert_eq!(a, b, "length {len}");
            assert_eq!(ring.open(aad, &b).unwrap(), &data[..len]);
            assert_eq!(rust.open(aad, &a).unwrap(), &data[..len]);
            // Random nonces too: each opens the other's.
            let sealed = ring.seal(aad, &data[..len]).unwrap();
            assert_eq!(rust.open(aad, &sealed).unwrap(), &data[..len]);
            let sealed = rust.seal(aad, &data[..len]).unwrap();
            assert_eq!(ring.open(aad, &sealed).unwrap(), &data[..len]);
            // A flipped bit anywhere (nonce, ciphertext, tag) fails in both.
            let at = (n * 13) % a.len();
            a[at] ^= 0x10;
            assert_eq!(
                ring.open(aad, &a),
                Err(OpenError),
                "length {len}, byte {at}"
            );
            assert_eq!(
                rust.open(aad, &a),
                Err(OpenError),
                "length {len}, byte {at}"
            );
        }
    }

    #[test]
    fn aad_layouts() {
        let a = blob_aad(BlobType::Tree, &Id([9; 32]));
        assert_eq!(&a[..11], b"hokan blob\0");
        assert_eq!(a[11], 1);
        assert_eq!(&pack_header_aad(1)[18..], &[1, 0]);
        assert_eq!(
            object_aad("snapshot", 1),
            b"hokan object\0snapshot\0\x01\x00"
        );
    }
}
