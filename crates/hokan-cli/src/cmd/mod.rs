//! One module per command; shared helpers here.

pub mod backup;
pub mod cat;
pub mod check;
pub mod completions;
pub mod copy;
pub mod diff;
pub mod dump;
pub mod etcd;
pub mod find;
pub mod forget;
pub mod init;
pub mod k8s;
pub mod key;
pub mod ls;
pub mod man;
pub mod mount;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod snapshots;
pub mod stats;
pub mod tag;
pub mod version;

use std::process::ExitCode;

use anyhow::{Result, bail};
use hokan_repo::{CacheMode, Error as RepoError, OpenOptions, Repository, SnapshotFilter};

use crate::{Cli, Command, Global};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => init::run(g, a),
        Command::Key(k) => key::run(g, k),
        Command::Snapshots(a) => snapshots::run(g, a),
        Command::Backup(a) => backup::run(g, a),
        Command::Dump(a) => dump::run(g, a),
        Command::Mount(a) => mount::run(g, a),
        Command::Restore(a) => restore::run(g, a),
        Command::Ls(a) => ls::run(g, a),
        Command::Diff(a) => diff::run(g, a),
        Command::Find(a) => find::run(g, a),
        Command::Forget(a) => forget::run(g, a),
        Command::Tag(a) => tag::run(g, a),
        Command::Copy(a) => copy::run(g, a),
        Command::Cat(a) => cat::run(g, a),
        Command::Stats(a) => stats::run(g, a),
        Command::Version(a) => version::run(g, a),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => man::run(g, a),
        Command::Prune(a) => prune::run(g, a),
        Command::Check(a) => check::run(g, a),
        Command::Repair(c) => repair::run(g, c),
        Command::Unlock(a) => repair::unlock(g, a),
        Command::Migrate(a) => repair::migrate(g, a),
        Command::Etcd(c) => etcd::run(g, c),
        Command::K8s(c) => k8s::run(g, c),
    }
}

/// The repository location, or a clear error.
pub fn location(g: &Global) -> Result<String> {
    match &g.repo {
        Some(r) if !r.is_empty() => Ok(r.clone()),
        _ => bail!("no repository given: pass -r/--repo or set HOKAN_REPOSITORY"),
    }
}

/// How to show progress, from the global flags.
pub fn progress_mode(g: &Global) -> crate::progress::Mode {
    use crate::progress::Mode;
    if g.json {
        Mode::Json
    } else if g.quiet {
        Mode::Quiet
    } else {
        Mode::Bar
    }
}

/// Store options from the global flags.
pub fn open_options(g: &Global) -> OpenOptions {
    let cache = if g.no_cache {
        CacheMode::Off
    } else if let Some(d) = &g.cache_dir {
        CacheMode::Dir(d.clone())
    } else {
        CacheMode::Auto
    };
    OpenOptions {
        cache,
        ..OpenOptions::default()
    }
}

/// Opens the repository with the password from the usual sources.
pub fn open(g: &Global) -> Result<Repository> {
    let location = location(g)?;
    let password = crate::password::repository(g.password_file.as_deref())?;
    Ok(password.open(|pw| Repository::open(&location, pw, open_options(g)))?)
}

/// Snapshot selection flags shared by several commands.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots from this host (repeatable)
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with these tags: comma-separated tags must all match;
    /// repeat the flag for alternatives
    #[arg(long = "tag", value_name = "TAG[,TAG]")]
    pub tags: Vec<String>,
    /// Only snapshots of this path (repeatable: all must match)
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            paths: self.paths.clone(),
            ..Default::default()
        }
    }
}

/// Warns about objects a listing could not read, with what helps.
pub fn warn_unreadable(g: &Global, what: &str, list: &[hokan_repo::Unreadable]) {
    if g.quiet {
        return;
    }
    for u in list {
        eprintln!(
            "warning: {what} {} ({}) cannot be read and is left out: {}",
            u.id.short(),
            u.path,
            u.reason
        );
    }
    if !list.is_empty() && what == "snapshot" {
        eprintln!(
            "hint: `hokan forget ID` removes a damaged snapshot file; `hokan check` lists every problem"
        );
    }
}

/// The command that helps with an error, where one does. The library's
/// errors say what happened and what helps in words; which command or flag
/// does it is the CLI's to say. The first error in the chain that has a
/// hint gives it (a repository error inside a Kubernetes one, say).
pub fn hint(e: &anyhow::Error) -> Option<String> {
    e.chain().find_map(|cause| {
        if let Some(r) = cause.downcast_ref::<RepoError>() {
            repo_hint(r)
        } else if let Some(c) = cause.downcast_ref::<hokan_core::Error>() {
            core_hint(c)
        } else if let Some(etcd) = cause.downcast_ref::<hokan_etcd::Error>() {
            etcd::hint(etcd)
        } else if let Some(k) = cause.downcast_ref::<hokan_k8s::Error>() {
            k8s::hint(k)
        } else {
            None
        }
    })
}

fn core_hint(e: &hokan_core::Error) -> Option<String> {
    use hokan_core::Error as CoreError;
    Some(match e {
        // In no index: an index file is lost or damaged (the pack may be
        // fine), which `repair index` mends; salvaging packs does not.
        CoreError::BlobNotFound { .. } => {
            "`hokan repair index` rebuilds the index from the packs themselves; `hokan check \
             --read-data` then names any data that is really lost"
                .into()
        }
        CoreError::Corrupted { .. }
        | CoreError::Truncated { .. }
        | CoreError::MissingPack { .. } => {
            "`hokan check --read-data` names every damaged file; `hokan repair packs` salvages \
             damaged packs"
                .into()
        }
        CoreError::NeedsFormat { .. } => {
            "`hokan migrate` upgrades the repository (releases that read only the old format \
             can then no longer open it)"
                .into()
        }
        CoreError::NotADevice { .. } => "`--target DIR` restores to a directory".into(),
        _ => return None,
    })
}

fn repo_hint(repo: &RepoError) -> Option<String> {
    Some(match repo {
        // Where a file stands, init fails the same way: the fix is
        // another path, which the error says.
        RepoError::NotARepository { location, .. } if std::path::Path::new(location).is_file() => {
            return None;
        }
        RepoError::NotARepository { location, .. } => {
            format!("create one with `hokan -r {location} init`")
        }
        RepoError::ConfigLost { location, .. } => format!(
            "`hokan -r {location} repair config` writes a new config with the chunk sizes you give \
             (the defaults unless you changed them at init)"
        ),
        RepoError::ConfigDamaged { location, .. } => format!(
            "`hokan -r {location} repair config` replaces the damaged config with one written \
             from the key files, with the chunk sizes you give (the defaults unless you changed \
             them at init)"
        ),
        RepoError::NotIndexed { .. } => {
            "`hokan repair index` rebuilds the index from the packs themselves".into()
        }
        RepoError::Corrupted { .. } | RepoError::Missing { .. } => {
            "`hokan check --read-data` finds every damaged object and names what it affects".into()
        }
        RepoError::Core(c) => return core_hint(c),
        RepoError::Locked(_) => "if that process crashed, `hokan unlock` removes its lock".into(),
        RepoError::SnapshotNotFound { .. } => "`hokan snapshots` lists them".into(),
        RepoError::NoSnapshotOfKind { kind, .. } => {
            let takes = match kind.as_str() {
                "k8s" => "`hokan k8s backup` takes one, ",
                "etcd" => "`hokan etcd backup` takes one, ",
                "volume" => "`hokan k8s volumes backup` takes one, ",
                _ => "",
            };
            format!("{takes}`hokan snapshots` lists what there is")
        }
        RepoError::OtherKind { .. } => {
            "`hokan snapshots` lists every snapshot with its kind; `hokan restore` restores any \
             snapshot"
                .into()
        }
        RepoError::LatestUnreadable {
            unreadable,
            newest_readable,
        } => {
            let damaged: Vec<String> = unreadable.iter().map(|u| u.id.short()).collect();
            let older = newest_readable.map_or("ID".to_string(), |id| id.short());
            format!(
                "to use the older snapshot, give its id in place of `latest` ({older}; `hokan \
                 snapshots` lists them); `hokan forget {}` removes the damaged snapshot file",
                damaged.join(" ")
            )
        }
        RepoError::Unreachable { .. } => {
            "check that the store is running and reachable, then run the command again".into()
        }
        RepoError::KeyNotFound { .. } => "`hokan key list` lists the key files".into(),
        RepoError::KeyInUse { .. } => "`hokan key passwd` replaces this key's password; to \
             remove the key, run `hokan key remove` with another key's password (--password-file)"
            .into(),
        // A key file the object lock keeps: removing it again later works.
        RepoError::Immutable { path, .. } if key_file_id(path).is_some() => format!(
            "`hokan key remove {}` removes it once the lock has expired",
            key_file_id(path).map(|id| id.short()).unwrap_or_default()
        ),
        RepoError::Immutable {
            action: "overwritten",
            ..
        } => "`hokan check --read-data` finds the damaged object".into(),
        RepoError::DeleteDenied { .. } => "on such a bucket, use a repository made with `hokan \
             init --immutable --lock-retention <the bucket's default retention>`"
            .into(),
        RepoError::NotOneFile { .. } => {
            "`--include PATH` narrows the selection to the one file to write".into()
        }
        RepoError::Invalid {
            what: "retention policy",
            ..
        } => "give a rule that keeps snapshots: --keep-last N, --keep-daily N, ... (`hokan \
             forget --help` lists them all)"
            .into(),
        _ => return None,
    })
}

/// The id of the key file at `path`, if that is where key files live.
fn key_file_id(path: &str) -> Option<hokan_core::Id> {
    use hokan_repo::{layout, object::Kind};
    let name = path
        .strip_prefix(layout::dir(Kind::Key))?
        .strip_prefix('/')?;
    hokan_core::Id::from_hex(name)
}

/// Exit code for an error, as restic's.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<RepoError>() {
        Some(RepoError::NotARepository { .. }) => 10,
        Some(RepoError::WrongPassword { .. }) => 12,
        _ => 1,
    }
}
