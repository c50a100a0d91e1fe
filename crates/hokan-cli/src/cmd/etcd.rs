//! `hokan etcd ...`: etcd snapshots (backup, import, status, restore) and
//! the Kubernetes objects inside them (ls, get, diff, export). Glue over
//! `hokan_etcd`.

mod backup;
mod objects;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use hokan_etcd::EtcdSnapshot;
use hokan_repo::IndexedRepository;

use crate::Global;
use crate::output;
use crate::progress::CliProgress;

#[derive(clap::Subcommand, Debug)]
pub enum EtcdCommand {
    /// Take a live snapshot of one etcd member and store it (etcdctl snapshot save, deduplicated)
    Backup(backup::BackupArgs),
    /// Store a snapshot file: etcdctl snapshot save's, or a member's member/snap/db
    Import(backup::ImportArgs),
    /// Hash, revision, keys and size of a stored snapshot, as etcdctl snapshot status prints them
    Status(StatusArgs),
    /// Write a stored snapshot to a file that etcdctl snapshot restore takes
    Restore(RestoreArgs),
    /// List the Kubernetes objects in a snapshot
    Ls(objects::LsArgs),
    /// Print one object of a snapshot, decoded
    Get(objects::GetArgs),
    /// Objects added, removed and changed between two snapshots
    Diff(objects::DiffArgs),
    /// Write objects of a snapshot as manifests, sanitized for a restore into a live cluster
    Export(objects::ExportArgs),
}

pub fn run(g: &Global, c: EtcdCommand) -> Result<ExitCode> {
    match c {
        EtcdCommand::Backup(a) => backup::backup(g, a),
        EtcdCommand::Import(a) => backup::import(g, a),
        EtcdCommand::Status(a) => status(g, a),
        EtcdCommand::Restore(a) => restore(g, a),
        EtcdCommand::Ls(a) => objects::ls(g, a),
        EtcdCommand::Get(a) => objects::get(g, a),
        EtcdCommand::Diff(a) => objects::diff(g, a),
        EtcdCommand::Export(a) => objects::export(g, a),
    }
}

/// The library's error, with a repository error unwrapped so the CLI's
/// hints and exit codes apply to it.
pub(crate) fn err(e: hokan_etcd::Error) -> anyhow::Error {
    match e {
        hokan_etcd::Error::Repo(r) => r.into(),
        other => other.into(),
    }
}

/// The command or flag that helps with an etcd error, where one does.
pub(crate) fn hint(e: &hokan_etcd::Error) -> Option<String> {
    use hokan_etcd::Error as E;
    Some(match e {
        E::BadLayout { .. } | E::BadCatalog { .. } => {
            "`hokan check --read-data` finds the damaged object".into()
        }
        E::NotEtcd { .. } => "`hokan snapshots` lists each snapshot with its source".into(),
        E::Incomplete { .. } => "`hokan check` tells whether its tree is damaged".into(),
        E::NoCatalog { snapshot, .. } => {
            format!("`hokan etcd restore {snapshot} --output FILE.db` writes it as a database file")
        }
        E::NotFound {
            snapshot,
            resource: Some(resource),
            ..
        } => format!("`hokan etcd ls {snapshot} --resource {resource}` lists them"),
        E::AmbiguousObject { keys, .. } => format!(
            "`--key {}` names one by its etcd key",
            keys.first().map_or("KEY", String::as_str)
        ),
        E::Tls {
            client_certificate: false,
            ..
        } => "with --client-cert-auth etcd needs a client certificate: give --cert and --key \
              (and --cacert, the CA that signed etcd's certificate)"
            .into(),
        E::Tls { .. } => "check that --cacert is the CA that signed etcd's server certificate \
              and that --cert and --key are a client certificate etcd trusts"
            .into(),
        E::Invalid { what, .. } if what == "client certificate" => {
            "--cert and --key go together: give both or neither".into()
        }
        _ => return None,
    })
}

/// Opens the repository and the etcd snapshot `query` names.
fn open_snapshot(g: &Global, query: &str) -> Result<(IndexedRepository, EtcdSnapshot)> {
    let repo = super::open(g)?.load_index()?;
    let snap = EtcdSnapshot::find(&repo, query).map_err(err)?;
    Ok((repo, snap))
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Snapshot id, unique prefix, or "latest" (the newest etcd snapshot)
    pub snapshot: String,
}

fn status(g: &Global, a: StatusArgs) -> Result<ExitCode> {
    let (repo, snap) = open_snapshot(g, &a.snapshot)?;
    let st = hokan_etcd::stored_status(&repo, &snap).map_err(err)?;
    if g.json {
        // etcdctl snapshot status -w json, field for field.
        output::json(&st)?;
    } else if !g.quiet {
        output::table(
            &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
            &[vec![
                format!("{:x}", st.hash),
                st.revision.to_string(),
                st.total_key.to_string(),
                si_size(st.total_size),
            ]],
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Sizes as etcdctl prints them (go-humanize: powers of 1000).
fn si_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 || v >= 10.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id, unique prefix, or "latest" (the newest etcd snapshot)
    pub snapshot: String,
    /// The file to write (must not exist): give it to `etcdctl snapshot restore`
    #[arg(short, long, value_name = "FILE.db")]
    pub output: PathBuf,
    /// Also restore the static pod resources stored with the snapshot into this directory
    #[arg(long, value_name = "DIR")]
    pub static_pods_to: Option<PathBuf>,
    /// Password file of the repository holding the static pod resources, if it is another one
    #[arg(long, value_name = "FILE")]
    pub static_pod_password_file: Option<PathBuf>,
}

fn restore(g: &Global, a: RestoreArgs) -> Result<ExitCode> {
    let (repo, snap) = open_snapshot(g, &a.snapshot)?;
    let progress = CliProgress::start(super::progress_mode(g));
    let done = hokan_etcd::restore_file(&repo, &snap, &a.output, &progress);
    progress.finish();
    let done = done.map_err(err)?;
    let seconds = progress.elapsed();
    let pods = match &a.static_pods_to {
        Some(dir) => Some(backup::restore_static_pods(
            g,
            &repo,
            &snap,
            dir,
            a.static_pod_password_file.as_deref(),
        )?),
        None => None,
    };
    if g.json {
        output::json(&serde_json::json!({
            "message_type": "summary",
            "snapshot_id": snap.entry.id.to_hex(),
            "output": a.output.display().to_string(),
            "bytes": done.total_bytes,
            "records": done.records,
            "sha256": hokan_etcd_hex(&done.sha256),
            "seconds_elapsed": seconds,
            "static_pods": pods.as_ref().map(|(id, files)| serde_json::json!({"snapshot_id": id, "files": files})),
        }))?;
    } else if !g.quiet {
        println!(
            "restored snapshot {} to {}: {} in {:.1} s, SHA-256 {} verified",
            snap.short_id(),
            a.output.display(),
            output::size(done.total_bytes),
            seconds,
            &hokan_etcd_hex(&done.sha256)[..16]
        );
        if let Some((id, files)) = &pods {
            println!(
                "restored static pod resources (snapshot {}, {files} files) into {}",
                &id[..8],
                a.static_pods_to.as_ref().expect("given").display()
            );
        }
        println!("next: etcdctl snapshot restore {}", a.output.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn hokan_etcd_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_print_as_etcdctl_does() {
        assert_eq!(super::si_size(20480), "20 kB");
        assert_eq!(super::si_size(1_234_567), "1.2 MB");
        assert_eq!(super::si_size(999), "999 B");
    }
}
