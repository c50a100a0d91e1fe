//! `hokan-operator`: the operator, and its CRDs printed or written.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

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
