//! `hokan-operator`: the operator, and the CRDs printed or written. Pod
//! volumes are backed up by Jobs it makes (`hokan k8s volumes backup`), not
//! by a resident agent. Glue only: the work is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hokan_operator::clock::SystemClock;
use hokan_operator::http::Endpoints;
use hokan_operator::run::{RunOptions, log};
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "hokan-operator",
    version,
    about = "hokan's Kubernetes operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: reconcile Repositories and BackupPolicies while
    /// holding the Lease; serve /metrics, /healthz and /readyz.
    Run {
        /// Where to serve /metrics, /healthz and /readyz.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// The operator's namespace (its Lease lives there).
        #[arg(long, env = "POD_NAMESPACE", default_value = "hokan-system")]
        namespace: String,
        /// This replica's name in the Lease.
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// The Lease's name.
        #[arg(long, default_value = "hokan-operator")]
        lease: String,
        /// The repositories' local cache.
        #[arg(long, env = "HOKAN_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        /// The image the Jobs run.
        #[arg(long, env = "HOKAN_IMAGE", default_value = concat!("localhost/hokan:", env!("CARGO_PKG_VERSION")))]
        image: String,
        /// Backups reconciled at once.
        #[arg(long, default_value_t = 2)]
        max_concurrent_runs: u16,
        /// Pods a Job may make after a failed one (its backoffLimit), for
        /// work a second attempt cannot harm.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(0..=10))]
        job_retries: i32,
    },
    /// Print the CustomResourceDefinitions as YAML, or write one file per
    /// CRD into a directory (deploy/crds).
    Crds {
        /// Write `<plural>.yaml` files here instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { dir } => crds(dir),
        Command::Run {
            listen,
            namespace,
            identity,
            lease,
            cache_dir,
            image,
            max_concurrent_runs,
            job_retries,
        } => {
            let identity = identity.unwrap_or_else(hokan_repo::hostname);
            let mut open_options = hokan_repo::OpenOptions::default();
            if let Some(d) = cache_dir {
                open_options.cache = hokan_repo::CacheMode::Dir(d);
            }
            let options = RunOptions {
                listen,
                namespace,
                identity,
                lease_name: lease,
                open_options,
                image,
                max_concurrent_runs,
                job_retries,
                // The Deployment gives 30 s; the Lease is released after this.
                shutdown_grace: std::time::Duration::from_secs(20),
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(run(options))
        }
    }
}

async fn run(options: RunOptions) -> Result<()> {
    hokan_k8s::cluster::install_crypto_provider();
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster service account or KUBECONFIG)")?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        log("info", "stop signal: finishing running reconciles", &[]);
        tx.send_replace(true);
    });
    hokan_operator::run::run(
        client,
        Arc::new(SystemClock),
        options,
        Endpoints::default(),
        rx,
    )
    .await?;
    Ok(())
}

/// SIGTERM (what the kubelet sends) or Ctrl-C.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn crds(dir: Option<PathBuf>) -> Result<()> {
    for (file, crd) in hokan_operator::api::crds() {
        let yaml = hokan_operator::api::crd_yaml(&crd).map_err(anyhow::Error::msg)?;
        match &dir {
            Some(d) => {
                let path = d.join(file);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}
