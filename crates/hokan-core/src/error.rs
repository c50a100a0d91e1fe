//! The crate's one public error type.

use std::path::PathBuf;

use crate::id::Id;

/// Everything that can go wrong on hokan's data path.
///
/// Each variant names what happened, so a caller can react (a wrong key asks
/// for another password, a corrupted pack for a check and a repair). The
/// messages say what happened and where; which command helps is the
/// command-line tool's to say, since a library cannot know its caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key cannot decrypt data whose bytes are known to be intact, so the
    /// key is the problem, not the data.
    #[error(
        "wrong key: {what} is intact but cannot be decrypted with this key; \
         use the password (key file) of the repository that wrote it"
    )]
    WrongKey {
        /// What was being opened, e.g. `pack 3fa2…`.
        what: String,
    },

    /// Stored bytes changed after they were written: a flipped bit, an
    /// overwritten region, a blob swapped for another.
    #[error("corrupted {what}: {reason}")]
    Corrupted {
        /// The damaged object.
        what: String,
        /// How the damage showed itself.
        reason: String,
    },

    /// An object ends early: a copy or upload was cut short.
    #[error("truncated {what}: {reason} (the object was cut short while being written or copied)")]
    Truncated {
        /// The short object.
        what: String,
        /// What was missing.
        reason: String,
    },

    /// The bytes do not start like anything hokan writes.
    #[error("{what} is not a hokan {expected}: {reason}")]
    NotHokan {
        /// The object that was read.
        what: String,
        /// What it should have been.
        expected: &'static str,
        /// What was found instead.
        reason: String,
    },

    /// Written by a newer (or unknown) format version than this build reads.
    #[error(
        "unsupported format version {found} in {what}: this build reads versions {supported}; \
         upgrade hokan to read it"
    )]
    UnsupportedVersion {
        /// The object carrying the version.
        what: String,
        /// The version found in the data.
        found: u32,
        /// The versions this build understands, for the message.
        supported: &'static str,
    },

    /// A blob the caller asked for is not in the index.
    #[error("blob {id} is not in the index: the repository is missing data")]
    BlobNotFound {
        /// The missing blob.
        id: Id,
    },

    /// A setting is out of range; nothing was written.
    #[error("invalid {what}: {reason}")]
    InvalidParameter {
        /// The setting.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },

    /// A restore onto a device was given something that is not a block
    /// device; nothing was written.
    #[error("{} is not a block device; restore to a directory instead", path.display())]
    NotADevice {
        /// The path given.
        path: std::path::PathBuf,
    },

    /// A pack grew beyond what its 32-bit offsets can address.
    #[error("pack would exceed {limit} bytes; lower the pack target size")]
    PackTooLarge {
        /// The limit that would have been crossed.
        limit: u64,
    },

    /// Reading or writing a file or stream failed.
    #[error("{context}: {source}")]
    Io {
        /// What hokan was doing, with the path where there is one.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A pack the index names is not in the store: the data in it is lost
    /// (as opposed to a store that cannot be reached).
    #[error("{what} is missing from the store")]
    MissingPack {
        /// The pack, with its path where known.
        what: String,
    },

    /// Something only a newer repository format can hold.
    #[error(
        "{what} needs repository format {needed}, and this repository uses an older one; \
         upgrade the repository's format to store it"
    )]
    NeedsFormat {
        /// What could not be stored.
        what: String,
        /// The format version that can hold it.
        needed: u16,
    },

    /// A sink or source supplied by the caller (the repository layer) failed.
    #[error("{0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with what hokan was doing at the time.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An I/O error on a path.
    pub fn io_path(action: &str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            context: format!("{action} {}", path.into().display()),
            source,
        }
    }

    pub(crate) fn corrupted(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupted {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn truncated(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Truncated {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            what,
            reason: reason.into(),
        }
    }

    /// True where the stored data itself is damaged (as opposed to a wrong
    /// key, a missing object or an I/O failure).
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupted { .. } | Error::Truncated { .. })
    }
}

pub(crate) fn random_fill(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Random(e.to_string()))
}
