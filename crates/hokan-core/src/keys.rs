//! The repository's master secrets and the ids derived from them.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::Cipher;
use crate::error::{Error, Result, random_fill};
use crate::id::{BlobType, ChunkId, Id, TreeId};

/// Length of [`MasterKey::to_bytes`].
pub const MASTER_KEY_LEN: usize = 72;

/// Context string for deriving the tree-id key from the chunk-id key.
/// Part of the format: changing it changes every tree id.
const TREE_ID_CONTEXT: &str = "hokan 2026-11-22 tree id key v1";

/// The secrets that make a repository: one random master key per repository,
/// wrapped by password-derived key files in the repository layer.
///
/// * `data key` — encrypts every blob and object (XChaCha20-Poly1305);
/// * `id key` — keys BLAKE3 for chunk ids, so ids leak nothing across
///   repositories; the tree-id key is derived from it;
/// * `chunker seed` — perturbs FastCDC's gear table, so chunk boundaries
///   (and thus sizes) do not fingerprint known files.
///
/// Secrets are wiped from memory on drop and never printed by `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    data_key: [u8; 32],
    id_key: [u8; 32],
    tree_id_key: [u8; 32],
    chunker_seed: u64,
}

impl MasterKey {
    /// New random secrets from the operating system's generator.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        random_fill(&mut bytes[..])?;
        // A zero seed would select fastcdc's unseeded table; make it nonzero.
        if bytes[64..72] == [0; 8] {
            bytes[64] = 1;
        }
        Self::from_bytes(&bytes[..])
    }

    /// New secrets that identify and cut data exactly as `other` does: a
    /// fresh data key, `other`'s id key and chunker seed. Two repositories
    /// keyed this way give the same data the same chunk and tree ids, so a
    /// copy between them only re-encrypts (`init --copy-chunker-params-from`).
    pub fn generate_sharing_ids(other: &MasterKey) -> Result<Self> {
        let mut bytes = Self::generate()?.to_bytes();
        bytes[32..72].copy_from_slice(&other.to_bytes()[32..72]);
        Self::from_bytes(&bytes[..])
    }

    /// Whether `other` gives data the same ids and chunk boundaries (same
    /// id key and chunker seed), whatever its data key.
    pub fn same_ids(&self, other: &MasterKey) -> bool {
        self.id_key == other.id_key && self.chunker_seed == other.chunker_seed
    }

    /// Rebuilds the key from [`to_bytes`](Self::to_bytes): data key (32),
    /// id key (32), chunker seed (u64 little-endian).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != MASTER_KEY_LEN {
            return Err(Error::invalid(
                "master key",
                format!("expected {MASTER_KEY_LEN} bytes, got {}", bytes.len()),
            ));
        }
        let mut data_key = [0u8; 32];
        let mut id_key = [0u8; 32];
        data_key.copy_from_slice(&bytes[..32]);
        id_key.copy_from_slice(&bytes[32..64]);
        let chunker_seed = u64::from_le_bytes(bytes[64..72].try_into().expect("8 bytes"));
        let tree_id_key = blake3::derive_key(TREE_ID_CONTEXT, &id_key);
        Ok(MasterKey {
            data_key,
            id_key,
            tree_id_key,
            chunker_seed,
        })
    }

    /// The 72 secret bytes, for wrapping in a key file. Wiped when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; MASTER_KEY_LEN]> {
        let mut out = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        out[..32].copy_from_slice(&self.data_key);
        out[32..64].copy_from_slice(&self.id_key);
        out[64..72].copy_from_slice(&self.chunker_seed.to_le_bytes());
        out
    }

    /// The seed for the chunker's gear table.
    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// The id of a chunk of data: keyed BLAKE3 of the plaintext.
    pub fn chunk_id(&self, data: &[u8]) -> ChunkId {
        ChunkId(Id(*blake3::keyed_hash(&self.id_key, data).as_bytes()))
    }

    /// The id of a tree blob, under the derived tree-id key.
    pub fn tree_id(&self, data: &[u8]) -> TreeId {
        TreeId(Id(*blake3::keyed_hash(&self.tree_id_key, data).as_bytes()))
    }

    /// The id of a blob of the given type.
    pub fn blob_id(&self, kind: BlobType, data: &[u8]) -> Id {
        match kind {
            BlobType::Data => self.chunk_id(data).0,
            BlobType::Tree => self.tree_id(data).0,
        }
    }

    /// The authenticated cipher under the data key.
    pub fn cipher(&self) -> Cipher {
        Cipher::new(&self.data_key)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip() {
        let k = MasterKey::generate().unwrap();
        let k2 = MasterKey::from_bytes(&k.to_bytes()[..]).unwrap();
        assert_eq!(k.chunk_id(b"x"), k2.chunk_id(b"x"));
        assert_eq!(k.tree_id(b"x"), k2.tree_id(b"x"));
        assert_eq!(k.chunker_seed(), k2.chunker_seed());
        assert_ne!(k.chunker_seed(), 0);
        assert!(MasterKey::from_bytes(&[0u8; 71]).is_err());
    }

    #[test]
    fn ids_depend_on_key_and_type() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate().unwrap();
        assert_ne!(a.chunk_id(b"same"), b.chunk_id(b"same"));
        assert_ne!(a.chunk_id(b"same").0, a.tree_id(b"same").0);
        assert_eq!(format!("{a:?}"), "MasterKey(<secret>)");
    }

    #[test]
    fn sharing_ids_shares_ids_and_seed_but_not_the_data_key() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate_sharing_ids(&a).unwrap();
        assert!(a.same_ids(&b));
        assert!(!a.same_ids(&MasterKey::generate().unwrap()));
        assert_eq!(a.chunk_id(b"x"), b.chunk_id(b"x"));
        assert_eq!(a.tree_id(b"x"), b.tree_id(b"x"));
        assert_eq!(a.chunker_seed(), b.chunker_seed());
        assert_ne!(a.to_bytes()[..32], b.to_bytes()[..32]);
        let sealed = a.cipher().seal(b"aad", b"secret").unwrap();
        assert!(b.cipher().open(b"aad", &sealed).is_err());
    }
}
