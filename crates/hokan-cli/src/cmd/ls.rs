//! `hokan ls SNAPSHOT [DIR]`: list what a snapshot holds.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use hokan_core::browse;
use hokan_core::{Node, NodeKind};

use crate::Global;
use crate::cmd::FilterArgs;
use crate::output;

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Snapshot id, unique prefix or "latest"
    pub snapshot: String,
    /// Only below this directory of the snapshot
    pub dir: Option<String>,
    /// With --dir, list everything below it, not just its entries
    #[arg(long)]
    pub recursive: bool,
    /// Mode, owner, size and time, like ls -l
    #[arg(short, long)]
    pub long: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `drwxr-xr-x`-style permissions.
pub fn permissions(node: &Node) -> String {
    let t = match node.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::Socket => 's',
        NodeKind::File => '-',
        NodeKind::Object => 'o',
    };
    let m = node.mode;
    let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
    let exec = |x: u32, special: u32, s: char| match (m & x != 0, m & special != 0) {
        (true, true) => s,
        (false, true) => s.to_ascii_uppercase(),
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        t,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        exec(0o100, 0o4000, 's'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        exec(0o010, 0o2000, 's'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        exec(0o001, 0o1000, 't'),
    ]
    .iter()
    .collect()
}

fn rfc3339(t: hokan_core::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.secs, t.nanos)
        .map(|d| d.to_rfc3339())
        .unwrap_or_default()
}

/// A node as JSON, with restic's field names.
pub fn node_json(path: &Path, n: &Node) -> serde_json::Value {
    serde_json::json!({
        "struct_type": "node",
        "name": n.name_lossy(),
        "type": n.kind.name(),
        "path": path.to_string_lossy(),
        "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group,
        "size": n.size, "mode": n.mode, "permissions": permissions(n),
        "mtime": rfc3339(n.mtime), "atime": rfc3339(n.atime), "ctime": rfc3339(n.ctime),
        "inode": n.inode, "links": n.links,
        "link_target": (n.kind == NodeKind::Symlink).then(|| String::from_utf8_lossy(&n.target).into_owned()),
        "attributes": attrs_json(n),
    })
}

/// A node's typed attributes as a JSON object (empty for files).
pub fn attrs_json(n: &Node) -> serde_json::Value {
    use hokan_core::AttrValue;
    let mut m = serde_json::Map::new();
    for a in &n.attrs {
        let v = match &a.value {
            AttrValue::Str(s) => s.clone().into(),
            AttrValue::Int(i) => (*i).into(),
            AttrValue::Bool(b) => (*b).into(),
            AttrValue::Bytes(b) => hex::encode(b).into(),
            AttrValue::Time(t) => rfc3339(*t).into(),
        };
        m.insert(a.key.clone(), v);
    }
    serde_json::Value::Object(m)
}

/// `key=value` pairs of a node's attributes, for long listings.
pub fn attrs_text(n: &Node) -> String {
    n.attrs
        .iter()
        .map(|a| format!("{}={}", a.key, a.value))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(g: &Global, a: LsArgs) -> Result<ExitCode> {
    let repo = super::open(g)?;
    let entry = repo.find_snapshot(&a.snapshot, &a.filter.filter())?;
    let repo = repo.load_index()?;
    let reader = repo.reader();
    let (root, base, recursive) = match &a.dir {
        None => (entry.snapshot.tree, PathBuf::from("/"), true),
        Some(d) => {
            let path = Path::new("/").join(d.trim_start_matches('/'));
            if path == Path::new("/") {
                (entry.snapshot.tree, path, a.recursive)
            } else {
                let node =
                    browse::find_node(&reader, &entry.snapshot.tree, &path)?.ok_or_else(|| {
                        anyhow!("{} is not in snapshot {}", path.display(), entry.id.short())
                    })?;
                let sub = node
                    .subtree
                    .ok_or_else(|| anyhow!("{} is not a directory", path.display()))?;
                (sub, path, a.recursive)
            }
        }
    };
    if g.json {
        let mut head = super::snapshots::snapshot_json(&entry);
        head["struct_type"] = "snapshot".into();
        println!("{head}");
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    browse::walk(
        &reader,
        &root,
        &base,
        &mut |path, node| -> hokan_core::Result<bool> {
            use std::io::Write;
            let line = if g.json {
                node_json(path, node).to_string()
            } else if a.long && node.kind == NodeKind::Object {
                format!(
                    "{} {:>12} {} {}",
                    permissions(node),
                    node.size,
                    path.display(),
                    attrs_text(node)
                )
            } else if a.long {
                format!(
                    "{} {:>8} {:>8} {:>12} {} {}{}",
                    permissions(node),
                    if node.user.is_empty() {
                        node.uid.to_string()
                    } else {
                        node.user.clone()
                    },
                    if node.group.is_empty() {
                        node.gid.to_string()
                    } else {
                        node.group.clone()
                    },
                    node.size,
                    output::local_time(node.mtime.secs),
                    path.display(),
                    if node.kind == NodeKind::Symlink {
                        format!(" -> {}", String::from_utf8_lossy(&node.target))
                    } else {
                        String::new()
                    }
                )
            } else {
                path.display().to_string()
            };
            writeln!(out, "{line}").map_err(|e| hokan_core::Error::io("writing the listing", e))?;
            Ok(recursive)
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
