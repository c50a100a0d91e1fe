//! Blobs: one chunk or tree, compressed then sealed, as stored in a pack.
//!
//! A stored blob is `nonce (24) || encrypt(codec (1) || body) || tag (16)`,
//! with associated data naming its type and id (see [`crate::crypto`]).
//! Reading one back authenticates it, decompresses it and checks that the
//! plaintext hashes to the id it was asked for.
//!
//! Small blobs (format version 2) are compressed together: a *group*
//! record seals one payload holding a small directory and the members'
//! bytes back to back, so zstd sees the shared context of many small files
//! instead of each alone. Every member keeps its own id and is checked
//! against it when taken out of the group.

use crate::compress::{self, Compression};
use crate::crypto::{NONCE_LEN, OVERHEAD, blob_aad, group_aad};
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

/// A group record ready to be appended to a pack.
#[derive(Clone, Debug)]
pub struct EncodedGroup {
    /// Data or tree.
    pub kind: BlobType,
    /// Each member's id and plaintext length, in order.
    pub members: Vec<(Id, u32)>,
    /// The sealed record.
    pub sealed: Vec<u8>,
}

/// Most members a group may hold (the count is a u16).
pub const MAX_GROUP_MEMBERS: usize = u16::MAX as usize;

/// Bytes of a member's id kept in the group's directory: enough to tell
/// the members of one group apart; the full id is checked on extraction.
const PREFIX_LEN: usize = 8;
/// One directory entry: id prefix and length (u32 LE).
const DIR_ENTRY_LEN: usize = PREFIX_LEN + 4;

/// Compresses `members` together and seals them as one group record.
///
/// Plaintext: `count (u16 LE) || count × (id[..8] || length (u32 LE)) ||
/// the members' bytes back to back`.
pub fn encode_group(
    key: &MasterKey,
    kind: BlobType,
    members: &[(Id, &[u8])],
    compression: Compression,
) -> Result<EncodedGroup> {
    if members.len() < 2 || members.len() > MAX_GROUP_MEMBERS {
        return Err(Error::invalid(
            "group",
            format!("{} members (2 to {MAX_GROUP_MEMBERS})", members.len()),
        ));
    }
    let data_len: usize = members.iter().map(|(_, d)| d.len()).sum();
    let plain_len = 2 + members.len() * DIR_ENTRY_LEN + data_len;
    if plain_len > MAX_BLOB_LEN {
        return Err(Error::invalid("group", format!("{plain_len} bytes")));
    }
    let mut plain = Vec::with_capacity(plain_len);
    plain.extend_from_slice(&(members.len() as u16).to_le_bytes());
    for (id, d) in members {
        plain.extend_from_slice(&id.as_bytes()[..PREFIX_LEN]);
        plain.extend_from_slice(&(d.len() as u32).to_le_bytes());
    }
    for (_, d) in members {
        plain.extend_from_slice(d);
    }
    let mut sealed = Vec::with_capacity(plain_len / 2 + OVERHEAD + 1);
    sealed.resize(NONCE_LEN, 0);
    compress::encode_into(&mut sealed, &plain, compression)?;
    key.cipher()
        .seal_in_place(&mut sealed, 0, &group_aad(kind))?;
    Ok(EncodedGroup {
        kind,
        members: members
            .iter()
            .map(|(id, d)| (*id, d.len() as u32))
            .collect(),
        sealed,
    })
}

/// An opened group record: its members' bytes, found by id.
#[derive(Debug)]
pub struct Group {
    kind: BlobType,
    plain: Vec<u8>,
    /// Id prefix, start and length of each member in `plain`.
    members: Vec<([u8; PREFIX_LEN], usize, usize)>,
}

impl Group {
    /// Bytes of decoded plaintext held (for caches).
    pub fn len(&self) -> usize {
        self.plain.len()
    }

    /// The kind of its members.
    pub fn kind(&self) -> BlobType {
        self.kind
    }

    /// True for a group without members (never written).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member `id`, checked against its id. `where_` names the group
    /// for messages.
    pub fn member(&self, key: &MasterKey, id: &Id, where_: &dyn Fn() -> String) -> Result<Vec<u8>> {
        let what = || format!("{} blob {} in {}", self.kind, id.short(), where_());
        let prefix = &id.as_bytes()[..PREFIX_LEN];
        // Prefixes can repeat only by accident; try every match.
        let mut found = false;
        for (p, start, len) in &self.members {
            if p == prefix {
                found = true;
                let data = &self.plain[*start..start + len];
                if key.blob_id(self.kind, data) == *id {
                    return Ok(data.to_vec());
                }
            }
        }
        Err(Error::corrupted(
            what(),
            if found {
                "content does not match its id"
            } else {
                "it is not in the group its index entry names"
            },
        ))
    }
}

/// Opens a group record of `kind`. `where_` names it for messages.
pub fn decode_group(
    key: &MasterKey,
    kind: BlobType,
    sealed: &[u8],
    where_: &dyn Fn() -> String,
) -> Result<Group> {
    let what = || format!("{kind} group in {}", where_());
    let payload = key
        .cipher()
        .open(&group_aad(kind), sealed)
        .map_err(|_| Error::corrupted(what(), "authentication failed"))?;
    let plain = compress::decode(payload).map_err(|e| Error::corrupted(what(), e.to_string()))?;
    let bad = |why: String| Error::corrupted(what(), why);
    if plain.len() < 2 {
        return Err(bad("no member count".into()));
    }
    let count = u16::from_le_bytes([plain[0], plain[1]]) as usize;
    let dir_end = 2 + count * DIR_ENTRY_LEN;
    if plain.len() < dir_end {
        return Err(bad(format!("too short for {count} members")));
    }
    let mut members = Vec::with_capacity(count);
    let mut start = dir_end;
    for e in plain[2..dir_end].chunks_exact(DIR_ENTRY_LEN) {
        let len = u32::from_le_bytes(e[PREFIX_LEN..].try_into().expect("4 bytes")) as usize;
        members.push((e[..PREFIX_LEN].try_into().expect("8 bytes"), start, len));
        start = start
            .checked_add(len)
            .filter(|&end| end <= plain.len())
            .ok_or_else(|| bad("a member runs past the end".into()))?;
    }
    if start != plain.len() {
        return Err(bad(format!(
            "{} bytes after the last member",
            plain.len() - start
        )));
    }
    Ok(Group {
        kind,
        plain,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_round_trip_and_check_members() {
        let key = MasterKey::generate().unwrap();
        let a = b"first small file, first small file".to_vec();
        let b = b"second small file".to_vec();
        let (ia, ib) = (
            key.blob_id(BlobType::Data, &a),
            key.blob_id(BlobType::Data, &b),
        );
        let g = encode_group(
            &key,
            BlobType::Data,
            &[(ia, &a), (ib, &b)],
            Compression::default(),
        )
        .unwrap();
        assert_eq!(g.members, vec![(ia, a.len() as u32), (ib, b.len() as u32)]);
        let here = || "test".to_string();
        let opened = decode_group(&key, BlobType::Data, &g.sealed, &here).unwrap();
        assert_eq!(opened.member(&key, &ia, &here).unwrap(), a);
        assert_eq!(opened.member(&key, &ib, &here).unwrap(), b);
        assert!(opened.member(&key, &Id([7; 32]), &here).is_err());
        // A group is not a single blob, nor a group of the other type.
        assert!(decode(&key, BlobType::Data, &ia, &g.sealed, &here).is_err());
        assert!(decode_group(&key, BlobType::Tree, &g.sealed, &here).is_err());
        let mut flipped = g.sealed.clone();
        flipped[30] ^= 1;
        assert!(decode_group(&key, BlobType::Data, &flipped, &here).is_err());
        // One member is not a group.
        assert!(encode_group(&key, BlobType::Data, &[(ia, &a)], Compression::default()).is_err());
    }

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
