//! The repository's settings, stored once at `init` as the `config` object.

use serde::{Deserialize, Serialize};

use hokan_core::pack::DEFAULT_PACK_SIZE;
use hokan_core::{ChunkerParams, Compression, Id, WriterConfig};

use crate::error::{Error, Result};
use crate::keys::KdfParams;

/// The `config` object's content. Its presence makes a repository.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Config {
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

impl Config {
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
            ..WriterConfig::default()
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
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            compression: Compression::default(),
            pack_size: DEFAULT_PACK_SIZE,
            kdf: KdfParams::default(),
            key_label: "initial key".into(),
        }
    }
}
