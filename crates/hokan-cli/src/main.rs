//! `hokan`: the command-line face of the hokan crates. Flag definitions and
//! glue only: parse, call the library, print. Shaped like restic so its
//! users feel at home:
//!
//! ```text
//! hokan -r REPO init
//! hokan -r REPO backup PATH...            hokan -r REPO backup --stdin --stdin-filename dump.sql
//! hokan -r REPO snapshots                  hokan -r REPO restore latest --target DIR
//! ```
//!
//! Exit codes (as restic's): 0 success, 1 error, 2 usage, 3 backup finished
//! but some files could not be read, 10 no repository, 12 wrong password.

mod cmd;
#[cfg(test)]
mod library_messages;
mod metrics;
mod output;
mod password;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Content-addressed, deduplicated, encrypted backups.
#[derive(Parser, Debug)]
#[command(name = "hokan", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Repository: a directory, s3://bucket/prefix, s3:http://host:port/bucket/prefix,
    /// gs://bucket/prefix, az://container/prefix
    #[arg(short = 'r', long = "repo", env = "HOKAN_REPOSITORY", global = true)]
    pub repo: Option<String>,
    /// Read the password from this file (else $HOKAN_PASSWORD, else a prompt)
    #[arg(long, env = "HOKAN_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Cache directory: the mapped index, and copies of index files and
    /// snapshots (default `$HOKAN_CACHE_DIR`, `$XDG_CACHE_HOME/hokan` or
    /// `~/.cache/hokan`; for a local repository there, only the index)
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Do not use a local cache (the index is still mapped from a file,
    /// written to the temporary directory and removed at once)
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Write the command's outcome as Prometheus metrics to this file
    /// (for node-exporter's textfile collector; written atomically)
    #[arg(long, value_name = "FILE", env = "HOKAN_METRICS_FILE", global = true)]
    pub metrics_file: Option<PathBuf>,
    /// Push the same metrics to this Prometheus Pushgateway (e.g.
    /// http://pushgateway:9091)
    #[arg(long, value_name = "URL", env = "HOKAN_METRICS_PUSH", global = true)]
    pub metrics_push: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new repository
    Init(cmd::init::InitCmdArgs),
    /// Manage the key files (passwords) that open the repository
    #[command(subcommand)]
    Key(cmd::key::KeyCommand),
    /// List snapshots
    Snapshots(cmd::snapshots::SnapshotsArgs),
    /// Back up files, directories or a stream from stdin
    Backup(cmd::backup::BackupArgs),
    /// Restore a snapshot (or a path in it) into a directory
    Restore(cmd::restore::RestoreArgs),
    /// List the files of a snapshot
    Ls(cmd::ls::LsArgs),
    /// Show what changed between two snapshots
    Diff(cmd::diff::DiffArgs),
    /// Find files by name in snapshots
    Find(cmd::find::FindArgs),
    /// Write one file of a snapshot to stdout
    Dump(cmd::dump::DumpArgs),
    /// Mount the repository read-only (FUSE): snapshots/<time>/..., latest, ids, hosts, tags
    Mount(cmd::mount::MountArgs),
    /// Remove snapshots by a retention policy (keep-last, keep-daily, keep-size, ...)
    Forget(cmd::forget::ForgetArgs),
    /// Add, remove or set snapshots' tags (each changed snapshot gets a new id)
    Tag(cmd::tag::TagArgs),
    /// Copy snapshots from another repository, re-encrypted with this one's keys
    Copy(cmd::copy::CopyArgs),
    /// Print one repository object, decrypted (JSON; a blob as raw bytes)
    Cat(cmd::cat::CatArgs),
    /// How big snapshots are: restored, as unique contents, or as stored data
    Stats(cmd::stats::StatsArgs),
    /// This build's version, the repository formats it reads, compiler and target
    Version(cmd::version::VersionArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(cmd::completions::CompletionsArgs),
    /// Print the man page, or write one per command into a directory
    Man(cmd::man::ManArgs),
    /// Remove data no snapshot needs (two-phase, safe beside running backups)
    Prune(cmd::prune::PruneCommand),
    /// Check the repository's structure, and with --read-data its data
    Check(cmd::check::CheckArgs),
    /// Repair the repository
    #[command(subcommand)]
    Repair(cmd::repair::RepairCommand),
    /// Remove locks left by a crashed prune or backup
    Unlock(cmd::repair::UnlockArgs),
    /// Upgrade the repository to the current format (older releases can
    /// then no longer open it)
    Migrate(cmd::repair::MigrateArgs),
    /// etcd snapshots (backup, import, status, restore) and the Kubernetes objects inside them
    #[command(subcommand)]
    Etcd(cmd::etcd::EtcdCommand),
    /// Kubernetes resources: back up, restore in order, Velero tarballs
    #[command(subcommand)]
    K8s(cmd::k8s::K8sCommand),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let global = cli.global.clone();
    let wants_metrics = global.metrics_file.is_some() || global.metrics_push.is_some();
    if wants_metrics {
        metrics::enable();
    }
    let start = std::time::SystemTime::now();
    let code = match cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", output::error_chain(&e));
            if let Some(hint) = cmd::hint(&e) {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(cmd::exit_code(&e))
        }
    };
    if wants_metrics {
        // ExitCode hides its number; find it among the codes hokan uses.
        let exit_code = (0..=255u8)
            .find(|&n| ExitCode::from(n) == code)
            .unwrap_or(1);
        let outcome = metrics::Outcome {
            command: &metrics::command_name(&matches),
            repository: global.repo.as_deref().unwrap_or(""),
            start,
            end: std::time::SystemTime::now(),
            exit_code,
        };
        // The command's own result stands: monitoring notices metrics
        // that stop arriving, and a saved backup must not look failed.
        if let Err(e) = metrics::finish(&global, &outcome) {
            eprintln!("warning: metrics not written: {}", output::error_chain(&e));
        }
    }
    code
}
