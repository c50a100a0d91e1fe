//! The envelope of every repository object other than packs.
//!
//! ```text
//! object = magic "HKOB" (4) || kind (u8) || version (u16 LE) || body
//! ```
//!
//! The plain header says only what kind of object this is and which format
//! it uses, so a newer repository is recognised before any password is
//! asked for. For config, index files and snapshots the body is one sealed
//! record (data key, associated data naming kind and version) of a payload
//! (`codec || body`, zstd when it helps) of the postcard encoding. Key files
//! have their own body (see [`crate::keys`]). Objects are named by the
//! BLAKE3 of all their bytes, so the store can be checked without a key.

use serde::Serialize;
use serde::de::DeserializeOwned;

use hokan_core::compress::{self, Compression};
use hokan_core::crypto::object_aad;
use hokan_core::{FormatVersion, Id, MasterKey};

use crate::error::{Error, Result};

/// First four bytes of every repository object.
pub const OBJECT_MAGIC: &[u8; 4] = b"HKOB";
/// Length of the plain header.
pub const HEADER_LEN: usize = 7;

/// The kinds of repository object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The repository's settings: `config`.
    Config = 1,
    /// A key file wrapping the master key: `keys/<id>`.
    Key = 2,
    /// An index file listing packs: `index/<id>`.
    Index = 3,
    /// A snapshot: `snapshots/<id>`.
    Snapshot = 4,
    /// A lock or a prune marker: `locks/<id>`.
    Lock = 5,
}

impl Kind {
    /// The name used in associated data and messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::Key => "key",
            Kind::Index => "index",
            Kind::Snapshot => "snapshot",
            Kind::Lock => "lock",
        }
    }

    /// The newest version of this kind that this build reads and writes.
    /// Config version 3 and lock version 3 are written only by immutable
    /// repositories (see [`crate::config::Immutable`]): a build that does
    /// not know the mode refuses them as newer, instead of ignoring it.
    pub fn current_version(self) -> u16 {
        match self {
            Kind::Config | Kind::Lock => 3,
            Kind::Snapshot => 2,
            Kind::Key | Kind::Index => 1,
        }
    }

    /// The version a repository of `format` writes objects of this kind in
    /// (objects that need a feature of a later version say so themselves).
    pub fn version_for(self, format: FormatVersion) -> u16 {
        match (format, self) {
            (FormatVersion::V1, _) => 1,
            (_, Kind::Key | Kind::Index) => 1,
            _ => 2,
        }
    }
}

/// The id of an object: BLAKE3 of its bytes.
pub fn object_id(bytes: &[u8]) -> Id {
    Id(*blake3::hash(bytes).as_bytes())
}

/// The plain header for an object of `kind` at `version`.
pub fn header(kind: Kind, version: u16) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(OBJECT_MAGIC);
    h[4] = kind as u8;
    h[5..].copy_from_slice(&version.to_le_bytes());
    h
}

/// The version in an object's plain header (checked by [`check_header`]).
pub fn version_of(bytes: &[u8]) -> u16 {
    u16::from_le_bytes([bytes[5], bytes[6]])
}

/// Checks an object's plain header and returns its body. `what` names the
/// object in errors.
pub fn check_header<'a>(bytes: &'a [u8], kind: Kind, what: &str) -> Result<&'a [u8]> {
    if bytes.len() < HEADER_LEN || &bytes[..4] != OBJECT_MAGIC {
        return Err(Error::corrupted(
            what,
            "it does not start with a hokan object header",
        ));
    }
    if bytes[4] != kind as u8 {
        return Err(Error::corrupted(
            what,
            format!("it is object kind {}, not a {}", bytes[4], kind.name()),
        ));
    }
    let version = u16::from_le_bytes([bytes[5], bytes[6]]);
    if version > kind.current_version() || version == 0 {
        return Err(Error::NewerVersion {
            what: what.to_string(),
            found: version as u32,
            supported: kind.current_version() as u32,
        });
    }
    Ok(&bytes[HEADER_LEN..])
}

/// Encodes, compresses and seals a value as an object of `kind` in
/// `version` (the caller picks the encoding of `value` to match).
pub fn seal<T: Serialize>(key: &MasterKey, kind: Kind, version: u16, value: &T) -> Result<Vec<u8>> {
    let plain = postcard::to_stdvec(value).map_err(|e| Error::Invalid {
        what: "object",
        reason: e.to_string(),
    })?;
    seal_plain(key, kind, version, &plain)
}

/// Seals postcard bytes the caller encoded as an object of `kind`.
pub fn seal_plain(key: &MasterKey, kind: Kind, version: u16, plain: &[u8]) -> Result<Vec<u8>> {
    let payload = compress::encode(plain, Compression::default())?;
    let mut out = header(kind, version).to_vec();
    key.cipher()
        .seal_into(&mut out, &object_aad(kind.name(), version), &payload)?;
    Ok(out)
}

/// Checks and opens an object of `kind`; returns its version and the
/// postcard bytes, for kinds whose encoding depends on the version.
pub fn open_raw(key: &MasterKey, kind: Kind, bytes: &[u8], what: &str) -> Result<(u16, Vec<u8>)> {
    let body = check_header(bytes, kind, what)?;
    let version = version_of(bytes);
    let payload = key
        .cipher()
        .open(&object_aad(kind.name(), version), body)
        .map_err(|_| Error::corrupted(what, "it failed authentication"))?;
    let plain = compress::decode(payload).map_err(|e| Error::corrupted(what, e.to_string()))?;
    Ok((version, plain))
}

/// Decodes postcard bytes of an object.
pub fn decode<T: DeserializeOwned>(plain: &[u8], what: &str) -> Result<T> {
    postcard::from_bytes(plain).map_err(|e| Error::corrupted(what, format!("undecodable: {e}")))
}

/// Checks, opens and decodes an object of `kind` whose encoding is the
/// same in every version (later versions only add enum variants).
pub fn open<T: DeserializeOwned>(
    key: &MasterKey,
    kind: Kind,
    bytes: &[u8],
    what: &str,
) -> Result<T> {
    decode(&open_raw(key, kind, bytes, what)?.1, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let key = MasterKey::generate().unwrap();
        let v = (String::from("paths"), vec![1u32, 2, 3]);
        let bytes = seal(&key, Kind::Snapshot, 1, &v).unwrap();
        assert_eq!(&bytes[..7], b"HKOB\x04\x01\x00");
        let back: (String, Vec<u32>) = open(&key, Kind::Snapshot, &bytes, "s").unwrap();
        assert_eq!(back, v);
        // Read as another kind: refused.
        assert!(matches!(
            open::<(String, Vec<u32>)>(&key, Kind::Index, &bytes, "s"),
            Err(Error::Corrupted { .. })
        ));
        // A newer version: recognised without opening.
        let mut newer = bytes.clone();
        newer[5] = 3;
        assert!(matches!(
            open::<(String, Vec<u32>)>(&key, Kind::Snapshot, &newer, "s"),
            Err(Error::NewerVersion { found: 3, .. })
        ));
        // A flipped bit.
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            open::<(String, Vec<u32>)>(&key, Kind::Snapshot, &bad, "s"),
            Err(Error::Corrupted { .. })
        ));
    }
}
