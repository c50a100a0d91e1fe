//! Repository format versions: which encodings a writer may use.
//!
//! A repository's config records its format version, and every writer
//! writes only what that version can express, so a repository made by an
//! older release stays readable by that release until someone upgrades it
//! on purpose (`hokan migrate`). Readers understand every version.
//!
//! | feature                                   | version 1 | version 2 |
//! |-------------------------------------------|-----------|-----------|
//! | tree encoding                             | 1         | 2         |
//! | object nodes with typed attributes        | no        | yes       |
//! | holes (zero runs stored as nothing)       | no        | yes       |
//! | pack encoding                             | 1         | 2         |
//! | small blobs compressed together in groups | no        | yes       |
//! | snapshots with open source kinds          | no        | yes       |
//!
//! `docs/FORMAT.md` describes each encoding byte by byte.

use crate::error::{Error, Result};

/// A repository format version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FormatVersion {
    /// The first format: one blob per record, trees of POSIX nodes.
    V1,
    /// Groups of small blobs, holes, object nodes, open source kinds.
    V2,
}

impl FormatVersion {
    /// The version new repositories get.
    pub const CURRENT: FormatVersion = FormatVersion::V2;

    /// The number stored on disk.
    pub fn number(self) -> u16 {
        match self {
            FormatVersion::V1 => 1,
            FormatVersion::V2 => 2,
        }
    }

    /// The version for a stored number.
    pub fn from_number(n: u16) -> Result<Self> {
        match n {
            1 => Ok(FormatVersion::V1),
            2 => Ok(FormatVersion::V2),
            other => Err(Error::UnsupportedVersion {
                what: "repository format".into(),
                found: other as u32,
                supported: "1 and 2",
            }),
        }
    }

    /// Whether this version can store runs of zeros as holes.
    pub fn has_holes(self) -> bool {
        self >= FormatVersion::V2
    }

    /// Whether this version can compress small blobs together.
    pub fn has_groups(self) -> bool {
        self >= FormatVersion::V2
    }

    /// The tree encoding this version writes.
    pub fn tree_version(self) -> u8 {
        match self {
            FormatVersion::V1 => 1,
            FormatVersion::V2 => 2,
        }
    }

    /// Whether this version's repositories may hold trees of encoding
    /// `version` as written (version 2 writes trees 2 and 3, §8).
    pub fn writes_tree(self, version: u8) -> bool {
        match self {
            FormatVersion::V1 => version == 1,
            FormatVersion::V2 => version == 2 || version == 3,
        }
    }

    /// The pack encoding this version writes.
    pub fn pack_version(self) -> u16 {
        self.number()
    }
}

impl std::fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.number())
    }
}
