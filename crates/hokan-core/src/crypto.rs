//! Authenticated encryption: XChaCha20-Poly1305 with random 24-byte nonces.
//!
//! A sealed record is `nonce (24) || ciphertext || tag (16)`. The associated
//! data names what the record is (a blob of a type and id, a pack header, a
//! repository object), so a record moved to another place fails to open.
//! Random 192-bit nonces are safe at any volume, which is why this cipher
//! was chosen over 96-bit-nonce ChaCha20-Poly1305 or AES-GCM.

use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, KeyInit, Tag, XChaCha20Poly1305, XNonce};

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

/// XChaCha20-Poly1305 under one key.
#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
}

impl Cipher {
    /// A cipher under a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Cipher {
            aead: XChaCha20Poly1305::new(key.into()),
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

    fn encrypt_tail(&self, buf: &mut Vec<u8>, start: usize, aad: &[u8]) {
        let (head, body) = buf.split_at_mut(start + NONCE_LEN);
        let nonce = XNonce::try_from(&head[start..]).expect("24-byte nonce");
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce, aad, InOutBuf::from(body))
            .expect("XChaCha20-Poly1305 accepts messages up to 256 GiB");
        buf.extend_from_slice(tag.as_slice());
    }

    /// Opens a sealed record into a new buffer.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < OVERHEAD {
            return Err(OpenError);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut out = vec![0u8; ciphertext.len()];
        let buf = InOutBuf::new(ciphertext, &mut out).expect("equal lengths");
        self.aead
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
