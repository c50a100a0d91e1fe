//! `hokan k8s export-velero` and `import-velero`: resource snapshots to and
//! from Velero's backup tarballs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use hokan_k8s::{SnapshotOptions, SnapshotSource, import_velero_to_repository};

use super::{k8s_error, runtime};
use crate::Global;
use crate::output;
use crate::progress::CliProgress;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Snapshot id, unique prefix, or "latest" (the newest resource snapshot)
    pub snapshot: String,
    /// The tarball to write (Velero's format 1.1.0, gzipped); - for stdout
    pub file: PathBuf,
    #[command(flatten)]
    pub snapshots: crate::cmd::FilterArgs,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// A Velero backup tarball (the backup's <name>.tar.gz from its bucket)
    pub file: PathBuf,
    /// What the snapshot is a backup of: the cluster the tarball came from
    /// (default: velero:<file name>); later imports of the same name are
    /// compared with it
    #[arg(long, value_name = "NAME")]
    pub identity: Option<String>,
    /// Tag the snapshot (repeatable, or comma-separated)
    #[arg(long = "tag", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Record this host name in the snapshot
    #[arg(long)]
    pub host: Option<String>,
}

pub fn export(g: &Global, a: ExportArgs) -> Result<ExitCode> {
    let repo = super::super::open(g)?;
    let entry = repo.find_snapshot_of(
        &hokan_repo::SourceKind::K8S,
        &a.snapshot,
        &a.snapshots.filter(),
    )?;
    let repo = repo.load_index()?;
    let rt = runtime()?;
    let to_stdout = a.file == Path::new("-");
    let written = rt.block_on(async {
        let source = SnapshotSource::new(&repo, &entry).map_err(k8s_error)?;
        if to_stdout {
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            return hokan_k8s::velero::export(&source, out)
                .await
                .map_err(k8s_error);
        }
        // Written beside the target and renamed into place, so a failed
        // export never leaves a truncated tarball under the wanted name.
        let dir = match a.file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        let n = hokan_k8s::velero::export(&source, std::io::BufWriter::new(tmp.as_file_mut()))
            .await
            .map_err(k8s_error)?;
        tmp.as_file_mut().flush()?;
        tmp.as_file().sync_all()?;
        tmp.persist(&a.file)
            .with_context(|| format!("writing {}", a.file.display()))?;
        Ok(n)
    })?;
    if to_stdout {
        return Ok(ExitCode::SUCCESS);
    }
    if g.json {
        output::json(&serde_json::json!({
            "message_type": "summary", "snapshot_id": entry.id.to_hex(),
            "file": a.file.display().to_string(), "entries": written,
        }))?;
    } else if !g.quiet {
        let size = std::fs::metadata(&a.file).map(|m| m.len()).unwrap_or(0);
        println!(
            "exported {written} objects of snapshot {} to {} ({}); `velero restore create --from-backup` restores it once the tarball is in Velero's bucket",
            entry.id.short(),
            a.file.display(),
            output::size(size)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn import(g: &Global, a: ImportArgs) -> Result<ExitCode> {
    std::fs::metadata(&a.file).with_context(|| format!("cannot import {}", a.file.display()))?;
    let identity = a.identity.clone().unwrap_or_else(|| {
        let name = a
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("velero:{}", name.trim_end_matches(".tar.gz"))
    });
    let snapshot = SnapshotOptions {
        tags: a.tags.clone(),
        hostname: a.host.clone(),
        ..Default::default()
    };
    let mut repo = super::super::open(g)?.load_index()?;
    let rt = runtime()?;
    let progress = CliProgress::start_counting(super::super::progress_mode(g), "objects");
    let saved = rt.block_on(import_velero_to_repository(
        &a.file, &identity, &mut repo, &snapshot, &progress,
    ));
    progress.finish();
    let saved = saved.map_err(k8s_error)?;
    super::backup::report(g, &saved, progress.elapsed())?;
    Ok(ExitCode::SUCCESS)
}
