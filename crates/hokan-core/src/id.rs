//! Identifiers: 32-byte BLAKE3 digests, typed by what they name.
//!
//! [`ChunkId`] and [`TreeId`] are keyed BLAKE3 of a blob's plaintext (keys in
//! [`MasterKey`](crate::MasterKey)), so equal data gets an equal id inside one
//! repository and ids reveal nothing across repositories. [`PackId`] is plain
//! BLAKE3 of a pack file's bytes, so a pack can be verified without any key.

use std::fmt;
use std::str::FromStr;

/// Length of every id in bytes.
pub const ID_LEN: usize = 32;

/// An untyped 32-byte id. The typed wrappers below say what it names.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct Id(pub [u8; ID_LEN]);

impl Id {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// Lower-case hex, 64 characters: how ids appear in object names and output.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex characters, for people (like restic's short ids).
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; ID_LEN];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Id(out))
    }

    /// The first 8 bytes as a big-endian integer: ids are uniformly
    /// distributed, so this is a good bucket key for the index.
    pub(crate) fn prefix_u64(&self) -> u64 {
        u64::from_be_bytes(self.0[..8].try_into().expect("8 bytes"))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

/// Error for an id string that is not 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an id: {0:?} (expected 64 hex characters)")]
pub struct ParseIdError(pub String);

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Id::from_hex(s).ok_or_else(|| ParseIdError(s.to_string()))
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
        pub struct $name(pub Id);

        impl $name {
            /// The untyped id.
            pub fn id(&self) -> &Id {
                &self.0
            }
            /// Lower-case hex.
            pub fn to_hex(&self) -> String {
                self.0.to_hex()
            }
            /// The first 8 hex characters.
            pub fn short(&self) -> String {
                self.0.short()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Id::from_str(s).map($name)
            }
        }

        impl From<$name> for Id {
            fn from(v: $name) -> Id {
                v.0
            }
        }
    };
}

typed_id!(
    /// Names a chunk of file or stream data: keyed BLAKE3 of its plaintext.
    ChunkId
);
typed_id!(
    /// Names a tree (directory listing) blob: keyed BLAKE3 of its encoding,
    /// under a key distinct from the chunk key so a file can never collide
    /// with a tree.
    TreeId
);
typed_id!(
    /// Names a pack file: unkeyed BLAKE3 of all of its bytes.
    PackId
);

impl PackId {
    /// The id of a pack with these bytes.
    pub fn of(bytes: &[u8]) -> Self {
        PackId(Id(*blake3::hash(bytes).as_bytes()))
    }
}

/// What a blob holds. Data and tree blobs go to separate packs, so restoring
/// metadata (`ls`, `diff`) never downloads file contents.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum BlobType {
    /// File or stream contents.
    Data = 0,
    /// A directory listing or other metadata.
    Tree = 1,
}

impl BlobType {
    /// The byte stored on disk.
    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// The type for a stored byte, if it is one.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(BlobType::Data),
            1 => Some(BlobType::Tree),
            _ => None,
        }
    }

    /// Lower-case name for messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        }
    }
}

impl fmt::Display for BlobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let id = Id([0xab; 32]);
        assert_eq!(id.to_hex().len(), 64);
        assert_eq!(Id::from_hex(&id.to_hex()), Some(id));
        assert_eq!(id.short(), "abababab");
        assert!("xyz".parse::<ChunkId>().is_err());
        assert!(Id::from_hex(&"a".repeat(63)).is_none());
        let p: PackId = id.to_hex().parse().unwrap();
        assert_eq!(p.0, id);
    }

    #[test]
    fn pack_id_is_plain_blake3() {
        assert_eq!(
            PackId::of(b"").to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }
}
