//! `hokan mount MOUNTPOINT`: the repository as a read-only file system
//! (`snapshots/<time>/…`, `latest`, `ids/`, `hosts/`, `tags/`), served
//! until Ctrl-C, SIGTERM or `fusermount -u`. The file system itself is
//! the hokan-mount crate; this parses flags, opens the repository and
//! waits for the signal.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use hokan_mount::{MountOptions, Unmounted};
use hokan_repo::Repository;

use crate::Global;
use crate::cmd::FilterArgs;
use crate::output;

#[derive(clap::Args, Debug)]
pub struct MountArgs {
    /// An empty directory to mount the repository on
    pub mountpoint: PathBuf,
    /// Bytes of a file fetched ahead of a reader that reads in order
    /// (more helps on object stores)
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = hokan_repo::parse_size)]
    pub readahead: u64,
    /// Memory for decoded chunks, shared by all open files (at least three
    /// times --readahead is used)
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = hokan_repo::parse_size)]
    pub cache_size: u64,
    /// Let other users read the mount (needs user_allow_other in
    /// /etc/fuse.conf unless run as root)
    #[arg(long)]
    pub allow_other: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// The signals that end the mount. They are blocked in every thread (the
/// mask is inherited by threads started later) and taken synchronously
/// by the main thread, which then unmounts: a handler could do neither.
fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Waits up to `ms` for one of `set`; the signal's name if one came.
fn wait_signal(set: &libc::sigset_t, ms: i64) -> Option<&'static str> {
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: ms * 1_000_000,
    };
    // SAFETY: valid set and timeout; no siginfo wanted.
    match unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &timeout) } {
        libc::SIGINT => Some("SIGINT"),
        libc::SIGTERM => Some("SIGTERM"),
        libc::SIGHUP => Some("SIGHUP"),
        _ => None,
    }
}

pub fn run(g: &Global, a: MountArgs) -> Result<ExitCode> {
    // Before the password prompt: a mount that cannot work should not
    // ask for it first.
    hokan_mount::preflight(&a.mountpoint)?;
    let location = super::location(g)?;
    let password = crate::password::repository(g.password_file.as_deref())?;
    // After the prompt (Ctrl-C there still ends the command at once),
    // before any thread starts.
    let signals = stop_signals();
    // SAFETY: a valid set; only this thread's mask changes.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &signals, std::ptr::null_mut()) };

    let repo = password.open(|pw| Repository::open(&location, pw, super::open_options(g)))?;
    let list = repo.snapshot_list()?;
    super::warn_unreadable(g, "snapshot", &list.unreadable);
    // As `restore latest` refuses then: a damaged one may be the newest.
    let latest_links = list.unreadable.is_empty();
    if !latest_links && !g.quiet {
        eprintln!(
            "warning: the `latest` links are left out: a snapshot file that cannot be read may \
             be the newest"
        );
    }
    let filter = a.filter.filter();
    let snapshots: Vec<_> = list
        .entries
        .into_iter()
        .filter(|e| filter.matches(&e.snapshot))
        .collect();
    let count = snapshots.len();
    let repo = repo.load_index()?;
    let options = MountOptions {
        readahead: a.readahead.max(1),
        cache: a.cache_size,
        allow_other: a.allow_other,
        latest_links,
        ..MountOptions::default()
    };
    let mounted = hokan_mount::mount(repo, snapshots, &a.mountpoint, &options)?;
    let started = Instant::now();
    let shown = a.mountpoint.display().to_string();
    if g.json {
        output::json(&serde_json::json!({
            "event": "mounted", "mountpoint": shown, "snapshots": count,
        }))?;
    } else if !g.quiet {
        println!(
            "mounted {count} snapshot{} read-only at {shown}; Ctrl-C (or `fusermount -u {shown}`) unmounts",
            if count == 1 { "" } else { "s" }
        );
    }
    std::io::stdout().flush().ok();

    let signal = loop {
        if let Some(s) = wait_signal(&signals, 200) {
            break Some(s);
        }
        if mounted.is_finished() {
            break None;
        }
    };
    let how = match signal {
        Some(_) => mounted.unmount().context("unmounting after the signal")?,
        None => {
            mounted.wait();
            Unmounted::Cleanly
        }
    };
    let secs = started.elapsed().as_secs();
    let how_name = match how {
        Unmounted::Cleanly => "clean",
        Unmounted::Lazily => "lazy",
    };
    if g.json {
        output::json(&serde_json::json!({
            "event": "unmounted", "mountpoint": shown, "how": how_name,
            "signal": signal, "seconds": secs,
        }))?;
    } else if !g.quiet {
        let by = signal.map_or("by `fusermount -u`/`umount`".to_string(), |s| {
            format!("on {s}")
        });
        match how {
            Unmounted::Cleanly => println!("unmounted {shown} {by} after {secs} s"),
            Unmounted::Lazily => println!(
                "{shown} was in use, so it was detached {by} (as `umount -l`): \
                 gone from the tree, its readers get errors from now on"
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
