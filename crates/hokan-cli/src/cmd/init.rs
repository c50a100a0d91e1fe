//! `hokan init`: create a repository.

use std::process::ExitCode;

use anyhow::{Context, Result};
use hokan_core::{ChunkerParams, Compression};
use hokan_repo::{InitOptions, KdfParams, Repository};

use crate::Global;
use crate::output;

#[derive(clap::Args, Debug)]
pub struct InitCmdArgs {
    #[command(flatten)]
    pub settings: InitArgs,
    /// Take the chunk sizes, chunker seed and chunk-id key of this
    /// repository, so that `copy` between the two deduplicates and keeps
    /// tree ids (the data key stays the new repository's own)
    #[arg(long, value_name = "REPO", conflicts_with_all = ["chunk_min", "chunk_avg", "chunk_max"])]
    pub copy_chunker_params_from: Option<String>,
    /// The password of --copy-chunker-params-from's repository, from this
    /// file (else $HOKAN_FROM_PASSWORD, else a prompt)
    #[arg(long, value_name = "FILE", env = "HOKAN_FROM_PASSWORD_FILE")]
    pub from_password_file: Option<std::path::PathBuf>,
}

/// The settings of a new repository, shared with `repair config`.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Minimum chunk size
    #[arg(long, value_parser = hokan_repo::parse_size, default_value = "256K")]
    pub chunk_min: u64,
    /// Average chunk size
    #[arg(long, value_parser = hokan_repo::parse_size, default_value = "512K")]
    pub chunk_avg: u64,
    /// Maximum chunk size
    #[arg(long, value_parser = hokan_repo::parse_size, default_value = "4M")]
    pub chunk_max: u64,
    /// zstd compression level (0 turns compression off)
    #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
    pub compression: i32,
    /// Target pack size
    #[arg(long, value_parser = hokan_repo::parse_size, default_value = "16M")]
    pub pack_size: u64,
    /// Argon2id memory for the first key file
    #[arg(long, value_parser = hokan_repo::parse_size, default_value = "64M")]
    pub kdf_memory: u64,
    /// Argon2id passes for the first key file
    #[arg(long, default_value_t = 3)]
    pub kdf_iterations: u32,
    /// Repository format: 2 (groups of small blobs, holes, any source), or
    /// 1 to stay readable by releases before format 2
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=2))]
    pub repository_version: u16,
    /// Immutable mode, for a bucket with S3 Object Lock: no object is ever
    /// overwritten, and only prune deletes, once the lock retention has passed
    #[arg(long, requires = "lock_retention")]
    pub immutable: bool,
    /// The bucket's default Object Lock retention (e.g. 30d), for --immutable
    #[arg(long, requires = "immutable")]
    pub lock_retention: Option<String>,
}

pub fn kdf(memory: u64, iterations: u32) -> KdfParams {
    KdfParams {
        memory_kib: u32::try_from(memory / 1024).unwrap_or(u32::MAX),
        iterations,
        parallelism: 1,
    }
}

/// The settings of a new repository (or a recreated config).
pub fn init_options(a: &InitArgs) -> Result<InitOptions> {
    let to_u32 = |v: u64, what: &str| {
        u32::try_from(v).map_err(|_| anyhow::anyhow!("{what} {v} is too large"))
    };
    Ok(InitOptions {
        chunker: ChunkerParams::new(
            to_u32(a.chunk_min, "--chunk-min")?,
            to_u32(a.chunk_avg, "--chunk-avg")?,
            to_u32(a.chunk_max, "--chunk-max")?,
        )?,
        compression: Compression::zstd(a.compression)?,
        pack_size: to_u32(a.pack_size, "--pack-size")?,
        kdf: kdf(a.kdf_memory, a.kdf_iterations),
        key_label: "initial key".into(),
        format: hokan_core::FormatVersion::from_number(a.repository_version)?,
        immutable: match (&a.immutable, &a.lock_retention) {
            (true, Some(r)) => Some(hokan_repo::config::Immutable {
                retention_secs: super::prune::parse_duration(r)
                    .map_err(|e| anyhow::anyhow!("--lock-retention: {e}"))?
                    .as_secs(),
            }),
            _ => None,
        },
    })
}

/// A retention as `--lock-retention` takes it: 30d, 12h, 90m, 45s.
fn duration(secs: u64) -> String {
    match secs {
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// An error from creating a repository. "No repository here" is what
/// `init` was asked to change, so it is said as why nothing could be
/// created there, with no hint to run `init` again.
fn creating(location: &str, e: hokan_repo::Error) -> anyhow::Error {
    match e {
        hokan_repo::Error::NotARepository { reason, .. } => anyhow::anyhow!(
            "cannot create a repository at {location}: {reason}; give a directory that does not \
             exist yet, or an empty one"
        ),
        other => other.into(),
    }
}

pub fn run(g: &Global, a: InitCmdArgs) -> Result<ExitCode> {
    let location = super::location(g)?;
    let options = init_options(&a.settings)?;
    let password = crate::password::repository(g.password_file.as_deref())?;
    let repo = match &a.copy_chunker_params_from {
        None => Repository::init(&location, password.bytes(), options, super::open_options(g))
            .map_err(|e| creating(&location, e))?,
        Some(from) => {
            let from_password = crate::password::source(a.from_password_file.as_deref())?;
            let source = from_password
                .open(|pw| Repository::open(from, pw, super::open_options(g)))
                .with_context(|| format!("opening {from} (--copy-chunker-params-from)"))?;
            Repository::init_sharing_ids(
                &location,
                password.bytes(),
                options,
                super::open_options(g),
                &source,
            )
            .map_err(|e| creating(&location, e))?
        }
    };
    let c = repo.config();
    if g.json {
        output::json(&serde_json::json!({
            "message_type": "initialized",
            "id": c.repo_id.to_hex(),
            "repository": location,
            "chunk_min": c.chunk_min, "chunk_avg": c.chunk_avg, "chunk_max": c.chunk_max,
            "compression": c.compression,
            "pack_size": c.pack_size,
            "repository_version": c.format.number(),
            "chunker_params_from": a.copy_chunker_params_from,
            "immutable": c.immutable.is_some(),
            "lock_retention_seconds": c.immutable.map(|m| m.retention_secs),
        }))?;
    } else if !g.quiet {
        println!(
            "created hokan repository {} at {location}",
            c.repo_id.short()
        );
        println!(
            "chunks {}/{}/{}, zstd level {}, packs of {}",
            output::size(c.chunk_min as u64),
            output::size(c.chunk_avg as u64),
            output::size(c.chunk_max as u64),
            c.compression,
            output::size(c.pack_size as u64)
        );
        if let Some(from) = &a.copy_chunker_params_from {
            println!(
                "chunk sizes, chunker seed and chunk ids shared with {from}: `hokan copy` between the two deduplicates"
            );
        }
        if let Some(m) = c.immutable {
            println!(
                "immutable: objects are only ever created; prune deletes them {} after they were written (the bucket's Object Lock retention)",
                duration(m.retention_secs)
            );
        }
        println!(
            "Keep the password safe: without it the data cannot be read by anyone, you included."
        );
    }
    Ok(ExitCode::SUCCESS)
}
