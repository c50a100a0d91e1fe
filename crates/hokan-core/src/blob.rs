//! Blobs: one chunk or tree, compressed then sealed, as stored in a pack.
//!
//! A stored blob is `nonce (24) || encrypt(codec (1) || body) || tag (16)`,
//! with associated data naming its type and id (see [`crate::crypto`]).
//! Reading one back authenticates it, decompresses it and checks that the
//! plaintext hashes to the id it was asked for.

use crate::compress::{self, Compression};
use crate::crypto::{NONCE_LEN, OVERHEAD, blob_aad};
use crate::error::{Error, Result};
use crate::id::{BlobType, Id};
use crate::keys::MasterKey;

/// A blob ready to be appended to a pack.
#[derive(Clone, Debug)]
pub struct EncodedBlob {
    /// Data or tree.
    pub kind: BlobType,
    /// Keyed BLAKE3 of the plaintext.
    pub id: Id,
    /// Length of the plaintext.
    pub raw_len: u32,
    /// The sealed record, as written into the pack.
    pub sealed: Vec<u8>,
}

/// Largest plaintext a blob may hold (fits the pack header's u32 lengths
/// together with codec byte and seal overhead).
pub const MAX_BLOB_LEN: usize = compress::MAX_PAYLOAD_LEN;

/// Compresses and seals `data`, whose id the caller computed.
pub fn encode(
    key: &MasterKey,
    kind: BlobType,
    id: Id,
    data: &[u8],
    compression: Compression,
) -> Result<EncodedBlob> {
    if data.len() > MAX_BLOB_LEN {
        return Err(Error::invalid(
            "blob",
            format!("{} bytes exceeds the {MAX_BLOB_LEN}-byte limit", data.len()),
        ));
    }
    let mut sealed = Vec::with_capacity(data.len() + 1 + OVERHEAD);
    sealed.resize(NONCE_LEN, 0);
    compress::encode_into(&mut sealed, data, compression)?;
    key.cipher()
        .seal_in_place(&mut sealed, 0, &blob_aad(kind, &id))?;
    Ok(EncodedBlob {
        kind,
        id,
        raw_len: data.len() as u32,
        sealed,
    })
}

/// Hashes, compresses and seals `data` as a blob of `kind`.
pub fn encode_new(
    key: &MasterKey,
    kind: BlobType,
    data: &[u8],
    compression: Compression,
) -> Result<EncodedBlob> {
    encode(key, kind, key.blob_id(kind, data), data, compression)
}

/// Opens a stored blob and checks it is the blob `id` of type `kind`.
///
/// `where_` names its place for messages, e.g. `pack 3fa2c1d0 at 8`.
pub fn decode(
    key: &MasterKey,
    kind: BlobType,
    id: &Id,
    sealed: &[u8],
    where_: &dyn Fn() -> String,
) -> Result<Vec<u8>> {
    let what = || format!("{kind} blob {} in {}", id.short(), where_());
    let payload = key
        .cipher()
        .open(&blob_aad(kind, id), sealed)
        .map_err(|_| Error::corrupted(what(), "authentication failed"))?;
    let plain = compress::decode(payload).map_err(|e| Error::corrupted(what(), e.to_string()))?;
    if key.blob_id(kind, &plain) != *id {
        return Err(Error::corrupted(what(), "content does not match its id"));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = MasterKey::generate().unwrap();
        let data = b"some file contents, some file contents, some file contents".repeat(10);
        let b = encode_new(&key, BlobType::Data, &data, Compression::default()).unwrap();
        assert!(b.sealed.len() < data.len());
        let here = || "test".to_string();
        assert_eq!(
            decode(&key, BlobType::Data, &b.id, &b.sealed, &here).unwrap(),
            data
        );
        // Same bytes asked for as a tree, or under another id: refused.
        assert!(decode(&key, BlobType::Tree, &b.id, &b.sealed, &here).is_err());
        assert!(decode(&key, BlobType::Data, &Id([1; 32]), &b.sealed, &here).is_err());
        let other = MasterKey::generate().unwrap();
        let err = decode(&other, BlobType::Data, &b.id, &b.sealed, &here).unwrap_err();
        assert!(err.is_corruption(), "{err}");
    }
}
