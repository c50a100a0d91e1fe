//! `hokan dump SNAPSHOT PATH`: one file of a snapshot to stdout, or a
//! directory as a tar archive (as restic's `dump`); an object (a Kubernetes
//! resource) as stored, or with `-o yaml|json` as kubectl prints it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use hokan_core::browse;
use hokan_core::{BlobReader, Node, NodeKind, TreeId};

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
    if path == Path::new("/") {
        let mut tar = tar::Builder::new(&mut out);
        tar_tree(&reader, &mut tar, &entry.snapshot.tree, Path::new(""))?;
        tar.finish()?;
        drop(tar);
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(node) = browse::find_node(&reader, &entry.snapshot.tree, &path)? else {
        bail!("{} is not in snapshot {}", path.display(), entry.id.short());
    };
    // A block device read as data (`backup --read-special`) has content;
    // a device node alone does not.
    let has_data = node.kind.has_content()
        && (node.kind != NodeKind::BlockDevice || hokan_core::fs::device_with_data(&node));
    match (a.format, node.kind) {
        (Some(format), NodeKind::Object) => {
            print_object(&reader, &node, &path, format, &mut out)?;
            out.flush()?;
            return Ok(ExitCode::SUCCESS);
        }
        (Some(_), other) => bail!(
            "--format applies to objects (Kubernetes resources); {} is a {}",
            path.display(),
            other.name()
        ),
        (None, _) => {}
    }
    match node.kind {
        _ if has_data => {
            reader.read_chunks(&node.content, &mut out)?;
        }
        NodeKind::Dir => {
            let name = Path::new(path.file_name().expect("not the root"));
            let mut tar = tar::Builder::new(&mut out);
            tar_entry(&reader, &mut tar, name, &node, &mut HashMap::new())?;
            if let Some(sub) = &node.subtree {
                tar_tree(&reader, &mut tar, sub, name)?;
            }
            tar.finish()?;
        }
        other => bail!("{} is a {}, not a file", path.display(), other.name()),
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Every node below `root`, with paths under `base`; hard links as links
/// to the first path of their set.
fn tar_tree<W: Write + Send>(
    reader: &BlobReader<'_>,
    tar: &mut tar::Builder<W>,
    root: &TreeId,
    base: &Path,
) -> Result<()> {
    let mut leaders: HashMap<(u64, u64), PathBuf> = HashMap::new();
    browse::walk(reader, root, base, &mut |path, node| {
        tar_entry(reader, tar, path, node, &mut leaders)
            .map_err(|e| hokan_core::Error::Io {
                context: format!("writing {} to the archive", path.display()),
                source: std::io::Error::other(e.to_string()),
            })
            .map(|()| true)
    })?;
    Ok(())
}

/// One node: its header, then (for files) its content padded to a block.
fn tar_entry<W: Write + Send>(
    reader: &BlobReader<'_>,
    tar: &mut tar::Builder<W>,
    path: &Path,
    node: &Node,
    leaders: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    use tar::EntryType;
    let mut h = tar::Header::new_gnu();
    h.set_mode(node.mode & 0o7777);
    h.set_uid(node.uid.into());
    h.set_gid(node.gid.into());
    h.set_mtime(node.mtime.secs.max(0) as u64);
    // Names that do not fit the header are left out; the ids stay.
    let _ = h.set_username(&node.user);
    let _ = h.set_groupname(&node.group);
    h.set_size(0);
    let link = |tar: &mut tar::Builder<W>, h: &mut tar::Header, kind, target: &Path| {
        h.set_entry_type(kind);
        tar.append_link(h, path, target)
    };
    match node.kind {
        NodeKind::Dir => {
            h.set_entry_type(EntryType::Directory);
            tar.append_data(&mut h, path, std::io::empty())?;
        }
        NodeKind::Symlink => link(
            tar,
            &mut h,
            EntryType::Symlink,
            Path::new(std::ffi::OsStr::from_bytes(&node.target)),
        )?,
        NodeKind::File | NodeKind::Object => {
            // The first path of a hard-link set holds the data.
            let first = node
                .hard_link_key()
                .and_then(|key| match leaders.entry(key) {
                    Entry::Occupied(e) => Some(e.get().clone()),
                    Entry::Vacant(e) => {
                        e.insert(path.to_path_buf());
                        None
                    }
                });
            match first {
                Some(first) => link(tar, &mut h, EntryType::Link, &first)?,
                None => tar_file(reader, tar, &mut h, path, node)?,
            }
        }
        // A block device read as data: its content, as an image file.
        NodeKind::BlockDevice if hokan_core::fs::device_with_data(node) => {
            tar_file(reader, tar, &mut h, path, node)?
        }
        NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
            h.set_entry_type(match node.kind {
                NodeKind::Fifo => EntryType::Fifo,
                NodeKind::CharDevice => EntryType::Char,
                _ => EntryType::Block,
            });
            // Linux's encoding of device numbers (glibc's major/minor).
            let r = node.rdev;
            h.set_device_major((((r >> 8) & 0xfff) | ((r >> 32) & !0xfff)) as u32)?;
            h.set_device_minor(((r & 0xff) | ((r >> 12) & !0xff)) as u32)?;
            tar.append_data(&mut h, path, std::io::empty())?;
        }
        // tar has no sockets; restore skips them too.
        NodeKind::Socket => {}
    }
    Ok(())
}

/// A regular file: the header with its size, then its content streamed
/// straight from the repository and padded to the 512-byte block.
fn tar_file<W: Write + Send>(
    reader: &BlobReader<'_>,
    tar: &mut tar::Builder<W>,
    h: &mut tar::Header,
    path: &Path,
    node: &Node,
) -> Result<()> {
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(node.size);
    // The header alone: `append_data` pads after the bytes it copied (none).
    tar.append_data(h, path, std::io::empty())?;
    let out = tar.get_mut();
    let written = reader.read_chunks(&node.content, out)?;
    if written != node.size {
        bail!(
            "{}: {written} bytes stored, its metadata says {}; the archive would be corrupt (`hokan check` finds the damage)",
            path.display(),
            node.size
        );
    }
    let pad = (512 - written % 512) % 512;
    out.write_all(&[0u8; 512][..pad as usize])?;
    Ok(())
}
