//! `hokan dump SNAPSHOT FILE`: one file of a snapshot to stdout.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use hokan_core::NodeKind;
use hokan_core::fs::browse;

use crate::Global;
use crate::cmd::FilterArgs;

#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    /// Snapshot id, unique prefix, or "latest"
    pub snapshot: String,
    /// Path of the file inside the snapshot (for --stdin backups, the --stdin-filename)
    pub file: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &Global, a: DumpArgs) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let entry = repo.find_snapshot(&a.snapshot, &a.filter.filter())?;
    let repo = repo.load_index()?;
    let reader = repo.reader();
    let path = Path::new("/").join(a.file.trim_start_matches('/'));
    let Some(node) = browse::find_node(&reader, &entry.snapshot.tree, &path)? else {
        bail!("{} is not in snapshot {}", path.display(), entry.id.short());
    };
    match node.kind {
        NodeKind::File => {}
        NodeKind::Dir => bail!(
            "{} is a directory; restore it with `hokan restore {}:{} --target DIR`",
            path.display(),
            entry.id.short(),
            path.display()
        ),
        other => bail!("{} is a {}, not a file", path.display(), other.name()),
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    reader.read_chunks(&node.content, &mut out)?;
    std::io::Write::flush(&mut out)?;
    Ok(ExitCode::SUCCESS)
}
