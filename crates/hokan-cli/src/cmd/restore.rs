//! `hokan restore SNAPSHOT[:PATH] --target DIR`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use hokan_core::NodeKind;
use hokan_core::fs::{Overwrite, RestoreOptions, Restorer, browse};

use crate::Global;
use crate::cmd::FilterArgs;
use crate::output;
use crate::progress::CliProgress;

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id, unique prefix or "latest", optionally with a path in it: latest:/home/alice
    pub snapshot: String,
    /// Directory to restore into
    #[arg(short, long)]
    pub target: PathBuf,
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

fn restore_options(a: &RestoreArgs, include: Vec<String>) -> RestoreOptions {
    RestoreOptions {
        include,
        exclude: a.exclude.clone(),
        overwrite: match a.overwrite {
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::Never => Overwrite::Never,
        },
        verify: a.verify,
        owners: hokan_core::fs::is_root(),
        sparse: !a.no_sparse,
    }
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
    let reader = repo.reader();
    let options = restore_options(&a, a.include.clone());
    let progress = CliProgress::start(super::progress_mode(g));
    let restorer = Restorer::new(&reader, options, &progress)?;
    // A path inside the snapshot: its directory's content goes into the
    // target, as restic does; a single file goes into the target by name.
    let (tree, snap_root) = match sub {
        None => (entry.snapshot.tree, PathBuf::from("/")),
        Some(p) => {
            let path = Path::new("/").join(p.trim_start_matches('/'));
            let node =
                browse::find_node(&reader, &entry.snapshot.tree, &path)?.ok_or_else(|| {
                    anyhow!("{} is not in snapshot {}", path.display(), entry.id.short())
                })?;
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(t)) => (t, path),
                _ => {
                    let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
                    let parent_tree = if parent == Path::new("/") {
                        entry.snapshot.tree
                    } else {
                        browse::find_node(&reader, &entry.snapshot.tree, &parent)?
                            .and_then(|n| n.subtree)
                            .ok_or_else(|| anyhow!("{} is not a directory", parent.display()))?
                    };
                    let mut only = a.include.clone();
                    if only.is_empty() {
                        only.push(path.to_string_lossy().into_owned());
                    }
                    return single(g, &reader, &progress, &a, parent_tree, &parent, only);
                }
            }
        }
    };
    let (files, bytes) = restorer.totals(&tree, &snap_root)?;
    progress.set_totals(files, bytes);
    let restored = restorer.restore(&tree, &snap_root, &a.target)?;
    progress.finish();
    finish(g, &restored.summary, &a, progress.elapsed())
}

fn single(
    g: &Global,
    reader: &hokan_core::BlobReader<'_>,
    progress: &CliProgress,
    a: &RestoreArgs,
    tree: hokan_core::TreeId,
    snap_root: &Path,
    include: Vec<String>,
) -> Result<ExitCode> {
    let options = restore_options(a, include);
    let restorer = Restorer::new(reader, options, progress)?;
    let restored = restorer.restore(&tree, snap_root, &a.target)?;
    progress.finish();
    finish(g, &restored.summary, a, progress.elapsed())
}

fn finish(
    g: &Global,
    s: &hokan_core::fs::RestoreSummary,
    a: &RestoreArgs,
    seconds: f64,
) -> Result<ExitCode> {
    if g.json {
        output::json(&serde_json::json!({
            "message_type": "summary",
            "seconds_elapsed": seconds,
            "files_restored": s.files, "dirs_restored": s.dirs, "bytes_restored": s.bytes,
            "files_skipped": s.skipped, "files_verified": s.verified,
            "verify_failures": s.verify_failures, "warnings": s.warnings,
        }))?;
    } else if !g.quiet {
        println!(
            "restored {} files and {} directories, {} in {:.1} s into {}{}",
            s.files,
            s.dirs,
            output::size(s.bytes),
            seconds,
            a.target.display(),
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
