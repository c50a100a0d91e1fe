//! `hokan dump SNAPSHOT PATH`: one file of a snapshot to stdout, or a
//! directory as a tar archive (as restic's `dump`); an object (a Kubernetes
//! resource) as stored, or with `-o yaml|json` as kubectl prints it.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use hokan_core::browse;
use hokan_core::{BlobReader, Node, NodeKind};

use crate::Global;
use crate::cmd::FilterArgs;

#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    /// Snapshot id, unique prefix, or "latest"
    pub snapshot: String,
    /// Path inside the snapshot (for --stdin backups, the --stdin-filename);
    /// a directory, or "/", is written as a tar archive
    pub file: String,
    /// Print an object (a Kubernetes resource) as kubectl does: yaml or
    /// json (default: the bytes as stored, the API server's compact JSON)
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub format: Option<ObjectFormat>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectFormat {
    Yaml,
    Json,
}

/// An object's stored JSON, printed as `kubectl get -o yaml|json` would.
fn print_object(
    reader: &BlobReader<'_>,
    node: &Node,
    path: &Path,
    format: ObjectFormat,
    out: &mut impl Write,
) -> Result<()> {
    let mut bytes = Vec::with_capacity(node.size as usize);
    reader.read_chunks(&node.content, &mut bytes)?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not JSON ({e}); dump it without --format to get its bytes",
            path.display()
        )
    })?;
    let text = match format {
        ObjectFormat::Yaml => hokan_k8s_codec::to_yaml(&value),
        ObjectFormat::Json => hokan_k8s_codec::to_json(&value) + "\n",
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

pub fn run(g: &Global, a: DumpArgs) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let entry = repo.find_snapshot(&a.snapshot, &a.filter.filter())?;
    let repo = repo.load_index()?;
    let reader = repo.reader();
    let path = Path::new("/").join(a.file.trim_start_matches('/'));
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    if a.format.is_some() && path == Path::new("/") {
        bail!(
            "--format prints one object; name its path (`hokan ls {}` lists them)",
            a.snapshot
        );
    }
    let node = match browse::find_node(&reader, &entry.snapshot.tree, &path)? {
        Some(node) => Some(node),
        None if path == Path::new("/") => None,
        None => bail!("{} is not in snapshot {}", path.display(), entry.id.short()),
    };
    match (a.format, node.as_ref().map(|n| n.kind)) {
        (Some(format), Some(NodeKind::Object)) => {
            print_object(
                &reader,
                node.as_ref().expect("found"),
                &path,
                format,
                &mut out,
            )?;
        }
        (Some(_), Some(other)) => bail!(
            "--format applies to objects (Kubernetes resources); {} is a {}",
            path.display(),
            other.name()
        ),
        // The root, or a directory: a tar archive.
        (_, None | Some(NodeKind::Dir)) => {
            repo.dump_tar(&entry.snapshot, &a.file, &mut out)?;
        }
        // A block device read as data (`backup --read-special`) has
        // content; a device node alone does not.
        (None, Some(kind)) if kind.has_content() => {
            let node = node.as_ref().expect("found");
            if kind == NodeKind::BlockDevice && !hokan_core::fs::device_with_data(node) {
                bail!("{} is a {}, not a file", path.display(), kind.name());
            }
            reader.read_chunks(&node.content, &mut out)?;
        }
        (None, Some(kind)) => bail!("{} is a {}, not a file", path.display(), kind.name()),
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
