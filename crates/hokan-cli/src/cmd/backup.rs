//! `hokan backup`: files and directories, or a stream from stdin.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hokan_core::fs::Excludes;
use hokan_repo::retention::{GroupDecisions, Policy};
use hokan_repo::snapshot::counts;
use hokan_repo::{FsBackup, ParentChoice, Repository, SnapshotEntry, SnapshotSpec};

use crate::Global;
use crate::cmd::forget::{PolicyArgs, group_json, print_group};
use crate::output;
use crate::progress::CliProgress;

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// Files and directories to back up
    pub paths: Vec<PathBuf>,
    /// Back up what arrives on stdin as one file
    #[arg(long)]
    pub stdin: bool,
    /// The file name for --stdin
    #[arg(long, default_value = "stdin")]
    pub stdin_filename: String,
    /// Tag the snapshot (repeatable, or comma-separated)
    #[arg(long = "tag", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Exclude paths matching a pattern (repeatable): `*.o`, `target/debug`, `/abs/path`, `**/cache`
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// Read exclude patterns from a file, one per line (repeatable)
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_files: Vec<PathBuf>,
    /// Exclude directories holding a CACHEDIR.TAG with the standard signature
    #[arg(long)]
    pub exclude_caches: bool,
    /// Exclude directories holding a file of this name (repeatable)
    #[arg(long = "exclude-if-present", value_name = "NAME")]
    pub exclude_if_present: Vec<String>,
    /// Stay on the file system of each path given
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Read block devices (named, or met in the tree) as their content, like
    /// files; all-zero regions are stored as holes
    #[arg(long)]
    pub read_special: bool,
    /// Compare with this snapshot instead of the newest of this host and paths
    #[arg(long, value_name = "SNAPSHOT")]
    pub parent: Option<String>,
    /// Read every file, trusting no parent snapshot
    #[arg(long)]
    pub force: bool,
    /// Record this host name in the snapshot
    #[arg(long)]
    pub host: Option<String>,
    /// Create the repository (with default settings) if there is none yet
    #[arg(long)]
    pub init: bool,
    /// Retention for this host and paths, applied once the snapshot is saved
    /// (so --keep-last N leaves exactly N); data goes at the next prune
    #[command(flatten, next_help_heading = "Retention (after the snapshot is saved)")]
    pub retention: PolicyArgs,
}

/// Opens the repository, creating it first with `--init` if it is missing.
fn open_or_init(g: &Global, a: &BackupArgs) -> Result<hokan_repo::Repository> {
    match super::open(g) {
        Err(e)
            if a.init
                && matches!(
                    e.downcast_ref::<hokan_repo::Error>(),
                    Some(hokan_repo::Error::NotARepository { .. })
                ) =>
        {
            let location = super::location(g)?;
            let password = crate::password::repository(g.password_file.as_deref())?;
            let repo = hokan_repo::Repository::init(
                &location,
                password.bytes(),
                Default::default(),
                super::open_options(g),
            )?;
            if !g.quiet && !g.json {
                eprintln!(
                    "created hokan repository {} at {location}",
                    repo.config().repo_id.short()
                );
            }
            Ok(repo)
        }
        other => other,
    }
}

/// Applies the retention flags, if any, to the new snapshot's group.
fn retain(
    repo: &Repository,
    saved: &SnapshotEntry,
    policy: &Policy,
) -> Result<Option<GroupDecisions>> {
    if policy.is_empty() {
        return Ok(None);
    }
    let group = repo.forget_after_backup(saved, policy).context(
        "the snapshot is saved, but applying the retention policy failed; run `hokan forget` with the same --keep flags",
    )?;
    Ok(Some(group))
}

pub fn run(g: &Global, a: BackupArgs) -> Result<ExitCode> {
    // Bad retention flags fail before anything is read or written.
    let policy = a.retention.policy()?;
    if a.stdin {
        if !a.paths.is_empty() {
            bail!("--stdin takes no paths; name the stream with --stdin-filename");
        }
        return stdin(g, &a, &policy);
    }
    if a.paths.is_empty() {
        bail!("nothing to back up: give paths, or --stdin");
    }
    for p in &a.paths {
        std::fs::symlink_metadata(p).with_context(|| format!("cannot back up {}", p.display()))?;
    }
    let excludes = Excludes::new(
        &a.excludes,
        &a.exclude_files,
        a.exclude_caches,
        &a.exclude_if_present,
        a.one_file_system,
    )?;
    let repo = open_or_init(g, &a)?;
    let parent = match (&a.parent, a.force) {
        (_, true) => ParentChoice::None,
        (Some(p), false) => ParentChoice::Snapshot(repo.find_snapshot(p, &Default::default())?.id),
        (None, false) => ParentChoice::Auto,
    };
    let mut repo = repo.load_index()?;
    let progress = CliProgress::start(super::progress_mode(g));
    let options = FsBackup {
        excludes,
        tags: a.tags.clone(),
        parent,
        hostname: a.host.clone(),
        read_special: a.read_special,
    };
    let result = progress.with_totals(&a.paths, &options.excludes, a.read_special, || {
        repo.backup_paths(&a.paths, &options, &progress)
    });
    progress.finish();
    let result = result?;
    retain_and_report(g, &repo, &result.entry, progress.elapsed(), &policy)?;
    if !result.warnings.is_empty() {
        if !g.json {
            eprintln!(
                "warning: {} file(s) could not be read completely; the snapshot lacks them or holds them as read (see above)",
                result.warnings.len()
            );
        }
        return Ok(ExitCode::from(3));
    }
    // Exit 0, not restic's 3: restic reports an unreadable parent tree
    // through the same channel as unreadable files, but 3 says "the
    // snapshot lacks files", and this one lacks none (everything below was
    // read again). The damage is in the repository, and the warning names
    // the check that finds all of it.
    if !result.parent_unreadable.is_empty() && !g.json {
        eprintln!(
            "warning: {} tree(s) of the parent snapshot could not be read (see above); every \
             file below them was read again and the snapshot is complete. The repository is \
             damaged there: `hokan check --read-data` names what else it affects",
            result.parent_unreadable.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn stdin(g: &Global, a: &BackupArgs, policy: &Policy) -> Result<ExitCode> {
    let mut repo = open_or_init(g, a)?.load_index()?;
    let options = SnapshotSpec {
        tags: a.tags.clone(),
        hostname: a.host.clone(),
        ..Default::default()
    };
    let start = std::time::Instant::now();
    let saved = repo.backup_stream(std::io::stdin(), &a.stdin_filename, options)?;
    retain_and_report(g, &repo, &saved, start.elapsed().as_secs_f64(), policy)?;
    Ok(ExitCode::SUCCESS)
}

/// Applies the retention flags, then prints the summary with what they
/// removed. A retention failure is returned after the summary: the
/// snapshot is saved either way.
fn retain_and_report(
    g: &Global,
    repo: &Repository,
    saved: &SnapshotEntry,
    seconds: f64,
    policy: &Policy,
) -> Result<()> {
    let retained = retain(repo, saved, policy);
    report(
        g,
        saved,
        seconds,
        retained.as_ref().ok().and_then(Option::as_ref),
    )?;
    retained.map(drop)
}

fn report(
    g: &Global,
    saved: &SnapshotEntry,
    seconds: f64,
    retained: Option<&GroupDecisions>,
) -> Result<()> {
    let s = &saved.snapshot.summary;
    crate::metrics::record_backup(saved);
    if g.json {
        let mut v = super::snapshots::snapshot_json(saved);
        v["message_type"] = "summary".into();
        v["snapshot_id"] = saved.id.to_hex().into();
        if let Some(gr) = retained {
            v["forget"] = group_json(gr, false);
        }
        return output::json(&v);
    }
    if g.quiet {
        return Ok(());
    }
    if saved.snapshot.source == hokan_repo::SourceKind::FS {
        println!(
            "Files:       {} new, {} changed, {} unmodified",
            s.count(counts::FILES_NEW),
            s.count(counts::FILES_CHANGED),
            s.count(counts::FILES_UNMODIFIED)
        );
        println!("Dirs:        {}", s.count(counts::DIRS));
    }
    println!(
        "Added:       {} ({} stored, {} blobs in {} packs)",
        output::size(s.bytes_added),
        output::size(s.bytes_stored),
        s.blobs_added,
        s.packs_added
    );
    println!(
        "processed {} files, {} in {:.1} s ({}/s)",
        s.count(counts::FILES),
        output::size(s.bytes),
        seconds,
        output::size((s.bytes as f64 / seconds.max(1e-3)) as u64)
    );
    println!("snapshot {} saved", saved.id.short());
    if let Some(gr) = retained {
        println!();
        print_group(gr, false);
    }
    Ok(())
}
