//! `hokan restore SNAPSHOT[:PATH] --target DIR`, or one file or device
//! onto a block device with `--to-device DEV`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use hokan_core::fs::{Overwrite, RestoreOptions};

use crate::Global;
use crate::cmd::FilterArgs;
use crate::output;
use crate::progress::CliProgress;

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id, unique prefix or "latest", optionally with a path in it: latest:/home/alice
    pub snapshot: String,
    /// Directory to restore into
    #[arg(short, long, required_unless_present = "to_device")]
    pub target: Option<PathBuf>,
    /// Write the one file or device (backed up with --read-special) that
    /// --include selects onto this block device, at least as large; its
    /// holes are zeroed there
    #[arg(long, value_name = "DEV", conflicts_with_all = ["target", "overwrite", "no_sparse", "verify"])]
    pub to_device: Option<PathBuf>,
    /// Restore only paths matching a pattern (repeatable)
    #[arg(short = 'i', long = "include", value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Leave out paths matching a pattern (repeatable)
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Read every restored file back and check it against the snapshot
    #[arg(long)]
    pub verify: bool,
    /// Existing files: always replace, replace if-changed (size or mtime differ), or never
    #[arg(long, value_enum, default_value = "always")]
    pub overwrite: OverwriteArg,
    /// Write zeros instead of holes
    #[arg(long)]
    pub no_sparse: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum OverwriteArg {
    Always,
    IfChanged,
    Never,
}

/// Splits `SNAPSHOT:PATH`.
pub fn split_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((s, p)) if !p.is_empty() => (s, Some(p)),
        Some((s, _)) => (s, None),
        None => (spec, None),
    }
}

pub fn run(g: &Global, a: RestoreArgs) -> Result<ExitCode> {
    let (query, sub) = split_spec(&a.snapshot);
    let repo = super::open(g)?;
    let entry = repo.find_snapshot(query, &a.filter.filter())?;
    let repo = repo.load_index()?;
    let options = RestoreOptions {
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        overwrite: match a.overwrite {
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::Never => Overwrite::Never,
        },
        verify: a.verify,
        owners: hokan_core::fs::is_root(),
        sparse: !a.no_sparse,
    };
    let progress = CliProgress::start(super::progress_mode(g));
    let Some(target) = &a.target else {
        let device = a.to_device.as_deref().expect("clap requires one");
        let done = repo.restore_to_device(
            &entry.snapshot,
            sub.unwrap_or("/"),
            device,
            options,
            &progress,
        );
        progress.finish();
        let (path, bytes) = done?;
        let seconds = progress.elapsed();
        if g.json {
            output::json(&serde_json::json!({
                "message_type": "summary",
                "seconds_elapsed": seconds,
                "path": path.to_string_lossy(), "device": device.to_string_lossy(),
                "bytes_restored": bytes,
            }))?;
        } else if !g.quiet {
            println!(
                "restored {} ({}) onto {} in {:.1} s",
                path.display(),
                output::size(bytes),
                device.display(),
                seconds
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let restored = repo.restore(
        &entry.snapshot,
        sub.unwrap_or("/"),
        target,
        options,
        &progress,
    );
    progress.finish();
    let s = restored?.summary;
    let seconds = progress.elapsed();
    if g.json {
        output::json(&serde_json::json!({
            "message_type": "summary",
            "seconds_elapsed": seconds,
            "files_restored": s.files, "dirs_restored": s.dirs, "bytes_restored": s.bytes,
            "files_skipped": s.skipped, "files_failed": s.failed, "files_verified": s.verified,
            "verify_failures": s.verify_failures, "warnings": s.warnings,
        }))?;
    } else if !g.quiet {
        println!(
            "restored {} files and {} directories, {} in {:.1} s into {}{}",
            s.files,
            s.dirs,
            output::size(s.bytes),
            seconds,
            target.display(),
            if s.skipped > 0 {
                format!(" ({} existing files kept)", s.skipped)
            } else {
                String::new()
            }
        );
        if a.verify {
            println!(
                "verified {} files, {} differ",
                s.verified, s.verify_failures
            );
        }
    }
    if s.failed > 0 {
        bail!(
            "{} file(s) could not be restored (each is named above); the others were. \
             `hokan check --read-data` names every damaged file of every snapshot",
            s.failed
        );
    }
    if s.verify_failures > 0 {
        bail!(
            "{} restored file(s) failed verification (see the warnings above)",
            s.verify_failures
        );
    }
    Ok(if s.warnings > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
