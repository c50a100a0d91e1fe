//! `hokan dump SNAPSHOT FILE`: one file of a snapshot to stdout.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::Global;
use crate::cmd::FilterArgs;

#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    /// Snapshot id, unique prefix, or "latest"
    pub snapshot: String,
    /// Path of the file inside the snapshot
    pub file: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &Global, a: DumpArgs) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let entry = repo.find_snapshot(&a.snapshot, &a.filter.filter())?;
    let repo = repo.load_index()?;
    let tree = repo.read_tree(&entry.snapshot.tree)?;
    let name = a.file.trim_matches('/');
    let Some(node) = tree.get(name.as_bytes()) else {
        bail!("{:?} is not in snapshot {}", a.file, entry.id.short());
    };
    if node.kind != hokan_core::NodeKind::File {
        bail!("{:?} is a {}, not a file", a.file, node.kind.name());
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    repo.reader().read_chunks(&node.content, &mut out)?;
    std::io::Write::flush(&mut out)?;
    Ok(ExitCode::SUCCESS)
}
