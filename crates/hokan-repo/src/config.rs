//! The repository's settings, stored once at `init` as the `config` object.
//!
//! The config object's version is the repository's format version
//! ([`FormatVersion`]): version 1 holds the fields of [`ConfigV1`]; version
//! 2 adds the settings of groups of small blobs. Upgrading a repository
//! rewrites only this object. Config object version 3 is a version-2
//! repository in immutable mode ([`Immutable`]); older builds refuse it.

use serde::{Deserialize, Serialize};

use hokan_core::pack::DEFAULT_PACK_SIZE;
use hokan_core::pipeline::{DEFAULT_GROUP_SIZE, DEFAULT_SMALL_BLOB};
use hokan_core::{ChunkerParams, Compression, FormatVersion, Id, MasterKey, WriterConfig};

use crate::error::{Error, Result};
use crate::keys::KdfParams;
use crate::object::Kind;

/// The `config` object's content. Its presence makes a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The repository's format: what writers may use.
    pub format: FormatVersion,
    /// The settings every version has.
    pub base: ConfigV1,
    /// Blobs shorter than this are compressed together (format 2).
    pub small_blob: u32,
    /// Target plaintext size of a group of small blobs (format 2).
    pub group_size: u32,
    /// Immutable mode: no object is ever overwritten, and deleted only once
    /// the store's object lock lets it (config object version 3).
    pub immutable: Option<Immutable>,
}

/// The immutable mode's settings: the store keeps every object for
/// `retention_secs` after it was written (S3 Object Lock default
/// retention), so nothing is deleted before.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Immutable {
    /// The bucket's default retention, in seconds.
    pub retention_secs: u64,
}

/// The config object version of a repository in immutable mode.
pub const IMMUTABLE_CONFIG_VERSION: u16 = 3;

/// The version-3 encoding: the version-2 fields, then the mode.
#[derive(Serialize, Deserialize)]
struct ConfigV3 {
    base: ConfigV1,
    small_blob: u32,
    group_size: u32,
    immutable: Immutable,
}

/// The version-2 encoding: the version-1 fields, then the group settings.
#[derive(Serialize, Deserialize)]
struct ConfigV2 {
    base: ConfigV1,
    small_blob: u32,
    group_size: u32,
}

/// The version-1 config, and the first fields of every later version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ConfigV1 {
    /// A random id, naming the repository's local cache.
    pub repo_id: Id,
    /// Chunker minimum size.
    pub chunk_min: u32,
    /// Chunker average size.
    pub chunk_avg: u32,
    /// Chunker maximum size.
    pub chunk_max: u32,
    /// zstd level; 0 stores everything raw.
    pub compression: i32,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// Creation time, Unix seconds.
    pub created: i64,
}

impl std::ops::Deref for Config {
    type Target = ConfigV1;
    fn deref(&self) -> &ConfigV1 {
        &self.base
    }
}

impl Config {
    /// A config of the current format with these settings.
    pub fn new(base: ConfigV1) -> Self {
        Config {
            format: FormatVersion::CURRENT,
            base,
            small_blob: DEFAULT_SMALL_BLOB,
            group_size: DEFAULT_GROUP_SIZE,
            immutable: None,
        }
    }

    /// The version of the config object that holds this config.
    pub(crate) fn object_version(&self) -> u16 {
        match self.immutable {
            Some(_) => IMMUTABLE_CONFIG_VERSION,
            None => Kind::Config.version_for(self.format),
        }
    }

    /// Checks the settings (a config written by a newer or buggy build).
    pub fn validate(&self) -> Result<()> {
        self.chunker()?;
        Compression::zstd(self.compression)?;
        if self.pack_size < 4096 {
            return Err(Error::Invalid {
                what: "pack size",
                reason: format!("{} bytes; at least 4096", self.pack_size),
            });
        }
        if self.format >= FormatVersion::V2
            && (self.small_blob > 16 << 20 || self.group_size > 64 << 20)
        {
            return Err(Error::Invalid {
                what: "group settings",
                reason: format!(
                    "small blobs below {} bytes in groups of {} bytes",
                    self.small_blob, self.group_size
                ),
            });
        }
        if let Some(m) = self.immutable {
            if self.format < FormatVersion::V2 {
                return Err(Error::Invalid {
                    what: "immutable mode",
                    reason: format!("it needs repository format 2 or later, not {}", self.format),
                });
            }
            if m.retention_secs == 0 || m.retention_secs > 100 * 365 * 86400 {
                return Err(Error::Invalid {
                    what: "lock retention",
                    reason: format!(
                        "{} seconds; give the bucket's default retention (1 second to 100 years)",
                        m.retention_secs
                    ),
                });
            }
        }
        Ok(())
    }

    /// The chunk sizes.
    pub fn chunker(&self) -> Result<ChunkerParams> {
        Ok(ChunkerParams::new(
            self.chunk_min,
            self.chunk_avg,
            self.chunk_max,
        )?)
    }

    /// Settings for the data path.
    pub fn writer_config(&self) -> Result<WriterConfig> {
        Ok(WriterConfig {
            chunker: self.chunker()?,
            compression: Compression::zstd(self.compression)?,
            pack_size: self.pack_size,
            format: self.format,
            small_blob: self.small_blob,
            group_size: self.group_size,
            ..WriterConfig::default()
        })
    }

    /// The config object (`config`): the plain header of its version, then
    /// the settings sealed under `key`.
    pub fn seal(&self, key: &MasterKey) -> Result<Vec<u8>> {
        crate::object::seal_plain(key, Kind::Config, self.object_version(), &self.encode()?)
    }

    /// Reads a config object: the plain header first (so a newer format is
    /// named, not reported as damage), then the sealed settings, checked.
    /// `what` names it in errors.
    pub fn open(key: &MasterKey, bytes: &[u8], what: &str) -> Result<Self> {
        let (version, plain) = crate::object::open_raw(key, Kind::Config, bytes, what)?;
        let config = Config::decode(version, &plain, what)?;
        config.validate()?;
        Ok(config)
    }

    /// The postcard encoding for the config object of this format.
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let r = match (self.format, self.immutable) {
            (_, Some(immutable)) => postcard::to_stdvec(&ConfigV3 {
                base: self.base.clone(),
                small_blob: self.small_blob,
                group_size: self.group_size,
                immutable,
            }),
            (FormatVersion::V1, None) => postcard::to_stdvec(&self.base),
            _ => postcard::to_stdvec(&ConfigV2 {
                base: self.base.clone(),
                small_blob: self.small_blob,
                group_size: self.group_size,
            }),
        };
        r.map_err(|e| Error::Invalid {
            what: "config",
            reason: e.to_string(),
        })
    }

    /// Decodes a config object's postcard bytes of `version`.
    pub(crate) fn decode(version: u16, plain: &[u8], what: &str) -> Result<Self> {
        if version == IMMUTABLE_CONFIG_VERSION {
            let v3: ConfigV3 = crate::object::decode(plain, what)?;
            return Ok(Config {
                format: FormatVersion::V2,
                base: v3.base,
                small_blob: v3.small_blob,
                group_size: v3.group_size,
                immutable: Some(v3.immutable),
            });
        }
        let format = FormatVersion::from_number(version)?;
        Ok(match format {
            FormatVersion::V1 => Config {
                format,
                base: crate::object::decode(plain, what)?,
                small_blob: 0,
                group_size: 0,
                immutable: None,
            },
            _ => {
                let v2: ConfigV2 = crate::object::decode(plain, what)?;
                Config {
                    format,
                    base: v2.base,
                    small_blob: v2.small_blob,
                    group_size: v2.group_size,
                    immutable: None,
                }
            }
        })
    }
}

/// Settings for a new repository.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Chunk sizes.
    pub chunker: ChunkerParams,
    /// Compression.
    pub compression: Compression,
    /// Target pack size.
    pub pack_size: u32,
    /// Cost of the first key file's password stretching.
    pub kdf: KdfParams,
    /// Label of the first key file.
    pub key_label: String,
    /// The format to create (the current one unless a repository must stay
    /// readable by older releases).
    pub format: FormatVersion,
    /// Immutable mode, for a store with object lock (see [`Immutable`]).
    pub immutable: Option<Immutable>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            compression: Compression::default(),
            pack_size: DEFAULT_PACK_SIZE,
            kdf: KdfParams::default(),
            key_label: "initial key".into(),
            format: FormatVersion::CURRENT,
            immutable: None,
        }
    }
}
