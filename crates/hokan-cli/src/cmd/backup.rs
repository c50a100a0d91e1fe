//! `hokan backup`: files and directories, or a stream from stdin.

use std::process::ExitCode;

use anyhow::{Result, bail};
use hokan_repo::StreamSnapshot;

use crate::Global;
use crate::output;

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// Files and directories to back up
    pub paths: Vec<std::path::PathBuf>,
    /// Back up what arrives on stdin as one file
    #[arg(long)]
    pub stdin: bool,
    /// The file name for --stdin
    #[arg(long, default_value = "stdin")]
    pub stdin_filename: String,
    /// Tag the snapshot (repeatable, or comma-separated)
    #[arg(long = "tag", value_delimiter = ',')]
    pub tags: Vec<String>,
}

pub fn run(g: &Global, a: BackupArgs) -> Result<ExitCode> {
    if !a.stdin {
        bail!("file-system backup is not available in this build yet; use --stdin");
    }
    if !a.paths.is_empty() {
        bail!("--stdin takes no paths; name the stream with --stdin-filename");
    }
    let mut repo = super::open(g)?.load_index()?;
    let stdin = std::io::stdin();
    let options = StreamSnapshot {
        tags: a
            .tags
            .iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        ..Default::default()
    };
    let saved = repo.backup_stream(stdin, &a.stdin_filename, options)?;
    let s = &saved.snapshot.summary;
    if g.json {
        let mut v = super::snapshots::snapshot_json(&saved);
        v["message_type"] = "summary".into();
        output::json(&v)?;
    } else if !g.quiet {
        println!(
            "snapshot {} saved: {} read, {} new, {} stored in {} pack(s), {:.1} s",
            saved.id.short(),
            output::size(s.bytes),
            output::size(s.bytes_added),
            output::size(s.bytes_stored),
            s.packs_added,
            s.duration_ms as f64 / 1000.0
        );
    }
    Ok(ExitCode::SUCCESS)
}
