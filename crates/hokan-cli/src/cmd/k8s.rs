//! `hokan k8s ...`: Kubernetes resources. Flags and printing only; the work
//! is hokan-k8s's (`backup_to_repository`, `plan`/`execute_with` over a
//! `SnapshotSource`, `velero::{export, import}`, `volumes`).

mod backup;
mod restore;
mod velero;
mod volumes;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use hokan_k8s::{Cluster, ConnectOptions};

use crate::Global;

#[derive(Subcommand, Debug)]
pub enum K8sCommand {
    /// Back up a cluster's resources as a snapshot, one object per blob
    Backup(backup::BackupArgs),
    /// Restore a resource snapshot into a cluster, or as manifests into a
    /// directory, in Velero's order
    Restore(restore::RestoreArgs),
    /// Write a resource snapshot as a Velero backup tarball
    ExportVelero(velero::ExportArgs),
    /// Import a Velero backup tarball as a resource snapshot
    ImportVelero(velero::ImportArgs),
    /// Pod volumes, file by file: back up a node's, restore one
    #[command(subcommand)]
    Volumes(volumes::VolumesCommand),
}

pub fn run(g: &Global, c: K8sCommand) -> Result<ExitCode> {
    match c {
        K8sCommand::Backup(a) => backup::run(g, a),
        K8sCommand::Restore(a) => restore::run(g, a),
        K8sCommand::ExportVelero(a) => velero::export(g, a),
        K8sCommand::ImportVelero(a) => velero::import(g, a),
        K8sCommand::Volumes(c) => volumes::run(g, c),
    }
}

/// Which cluster: a kubeconfig and a context, else the usual order
/// (`$KUBECONFIG`, `~/.kube/config`, the pod's service account).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// The kubeconfig file to use (default: $KUBECONFIG, then ~/.kube/config,
    /// then the pod's service account)
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current one)
    #[arg(long, value_name = "CONTEXT")]
    pub context: Option<String>,
}

impl ClusterArgs {
    async fn connect(&self) -> Result<Cluster> {
        let options = ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        };
        Cluster::connect(&options).await.map_err(k8s_error)
    }
}

/// Namespace and resource filters, shared by backup and restore.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ScopeArgs {
    /// Namespaces to take, as globs (comma-separated or repeated; default: all)
    #[arg(long, value_delimiter = ',', value_name = "GLOBS")]
    pub include_namespaces: Vec<String>,
    /// Namespaces to leave out, as globs
    #[arg(long, value_delimiter = ',', value_name = "GLOBS")]
    pub exclude_namespaces: Vec<String>,
    /// Resources to take, as resource.group, short names or globs
    /// (deployments.apps, cm, *.example.com; default: all)
    #[arg(long, value_delimiter = ',', value_name = "R.GROUP")]
    pub include_resources: Vec<String>,
    /// Resources to leave out
    #[arg(long, value_delimiter = ',', value_name = "R.GROUP")]
    pub exclude_resources: Vec<String>,
}

/// The multi-threaded runtime hokan-k8s needs (the repository blocks while
/// the API is read); two workers are plenty for one API server.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hokan-k8s")
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The library's error, with repository errors unwrapped so the CLI's
/// hints and exit codes (wrong password, no repository) apply to them.
pub fn k8s_error(e: hokan_k8s::Error) -> anyhow::Error {
    match e {
        hokan_k8s::Error::Repository(r) => r.into(),
        other => other.into(),
    }
}

/// The command or flag that helps with a Kubernetes error, where one does.
pub(crate) fn hint(e: &hokan_k8s::Error) -> Option<String> {
    use hokan_k8s::Error as E;
    Some(match e {
        E::NotK8s { .. } => "`hokan snapshots` lists each snapshot with its source".into(),
        E::Config { .. } => "--kubeconfig FILE and --context NAME choose the cluster".into(),
        E::NoUidRange { .. } => "--uid-range FROM:TO gives the ranges (start/size each, as in \
             openshift.io/sa.scc.uid-range)"
            .into(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_k8s_flags_are_consistent() {
        // clap checks names, groups and conflicts only when a command is
        // built: build them all here rather than at a user's first run.
        crate::Cli::command().debug_assert();
    }
}
