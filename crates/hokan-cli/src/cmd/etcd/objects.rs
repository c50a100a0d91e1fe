//! `hokan etcd ls|get|diff|export`: the Kubernetes objects inside a stored
//! etcd snapshot, read from the catalog and the records, never by
//! rebuilding the database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hokan_etcd::objects::{ChangeKind, ObjectChange};
use hokan_etcd::{ExportOptions, Filter, ObjectInfo, Objects};
use hokan_k8s_codec::Decryptor;

use super::{err, open_snapshot};
use crate::Global;
use crate::output;

#[derive(clap::Args, Debug, Clone)]
pub struct FilterArgs {
    /// Only this resource (configmaps, deployments.apps) or kind (ConfigMap)
    #[arg(long, value_name = "RESOURCE")]
    pub resource: Option<String>,
    /// Only this namespace
    #[arg(short, long, value_name = "NS")]
    pub namespace: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> Filter {
        Filter {
            resource: self.resource.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

/// `--encryption-config FILE`: the cluster's EncryptionConfiguration.
#[derive(clap::Args, Debug, Clone)]
pub struct DecryptArgs {
    /// The cluster's EncryptionConfiguration (stored with the static pod resources),
    /// to decrypt values encrypted at rest with aescbc, aesgcm or secretbox
    #[arg(long, value_name = "FILE")]
    pub encryption_config: Option<PathBuf>,
}

impl DecryptArgs {
    fn decryptor(&self) -> Result<Option<Decryptor>> {
        let Some(path) = &self.encryption_config else {
            return Ok(None);
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Some(Decryptor::from_config(&text).with_context(|| {
            format!("reading the EncryptionConfiguration {}", path.display())
        })?))
    }
}

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Snapshot id, unique prefix, or "latest" (the newest etcd snapshot)
    pub snapshot: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

fn kind_column(o: &ObjectInfo) -> String {
    match (&o.api_version, &o.kind, &o.encryption) {
        (_, _, Some(e)) => format!("(encrypted: {} key {})", e.provider, e.key_name),
        (Some(v), Some(k), _) if !k.is_empty() => format!("{v}/{k}"),
        _ => "-".into(),
    }
}

pub fn ls(g: &Global, a: LsArgs) -> Result<ExitCode> {
    let (repo, snap) = open_snapshot(g, &a.snapshot)?;
    let objects = Objects::open(&repo, &snap).map_err(err)?;
    let list = objects.list(&a.filter.filter());
    if g.json {
        // One object per line: a listing of a big cluster streams.
        for o in &list {
            output::json(o)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if g.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|o| {
            vec![
                if o.resource.is_empty() {
                    "-".into()
                } else {
                    o.resource_name()
                },
                o.namespace.clone().unwrap_or_default(),
                o.name.clone(),
                kind_column(o),
                o.resource_version.to_string(),
                output::size(u64::from(o.size)),
            ]
        })
        .collect();
    output::table(
        &[
            "RESOURCE",
            "NAMESPACE",
            "NAME",
            "TYPE",
            "RESOURCEVERSION",
            "SIZE",
        ],
        &rows,
    );
    println!(
        "{} objects in snapshot {} (revision {})",
        list.len(),
        snap.short_id(),
        snap.facts
            .status
            .map_or("unknown".into(), |s| s.revision.to_string())
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Snapshot id, unique prefix, or "latest" (the newest etcd snapshot)
    pub snapshot: String,
    /// RESOURCE/NAMESPACE/NAME, or RESOURCE/NAME for a cluster-scoped object
    #[arg(required_unless_present = "key", conflicts_with = "key")]
    pub object: Option<String>,
    /// The raw etcd key instead (/registry/configmaps/default/app)
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Output format
    #[arg(short, long, value_enum, default_value = "yaml")]
    pub output: Format,
    #[command(flatten)]
    pub decrypt: DecryptArgs,
}

pub fn get(g: &Global, a: GetArgs) -> Result<ExitCode> {
    let decryptor = a.decrypt.decryptor()?;
    let (repo, snap) = open_snapshot(g, &a.snapshot)?;
    let objects = Objects::open(&repo, &snap).map_err(err)?;
    let entry = match (&a.object, &a.key) {
        (_, Some(k)) => objects.by_key(k),
        (Some(o), None) => objects.by_name(o),
        (None, None) => unreachable!("clap requires one"),
    }
    .map_err(err)?;
    let decoded = objects.decode(entry, decryptor.as_ref()).map_err(err)?;
    let text = match (a.output, g.json) {
        (Format::Json, _) | (_, true) => hokan_k8s_codec::to_json(&decoded.served),
        (Format::Yaml, false) => hokan_k8s_codec::to_yaml(&decoded.served),
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The older snapshot
    pub snapshot_a: String,
    /// The newer snapshot
    pub snapshot_b: String,
    /// Show the field-level changes of this object (RESOURCE/NAMESPACE/NAME or RESOURCE/NAME)
    #[arg(long, value_name = "OBJECT")]
    pub object: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub decrypt: DecryptArgs,
}

pub fn diff(g: &Global, a: DiffArgs) -> Result<ExitCode> {
    let decryptor = a.decrypt.decryptor()?;
    let (repo, snap_a) = open_snapshot(g, &a.snapshot_a)?;
    let snap_b = hokan_etcd::EtcdSnapshot::find(&repo, &a.snapshot_b).map_err(err)?;
    let oa = Objects::open(&repo, &snap_a).map_err(err)?;
    let ob = Objects::open(&repo, &snap_b).map_err(err)?;
    if let Some(spec) = &a.object {
        return field_diff(g, &oa, &ob, spec, decryptor.as_ref());
    }
    let changes = hokan_etcd::objects::diff(&oa.catalog, &ob.catalog, &a.filter.filter());
    let count = |k: ChangeKind| changes.iter().filter(|c| c.change == k).count();
    let (added, removed, changed) = (
        count(ChangeKind::Added),
        count(ChangeKind::Removed),
        count(ChangeKind::Changed),
    );
    if g.json {
        for c in &changes {
            output::json(c)?;
        }
        output::json(&serde_json::json!({
            "message_type": "summary", "added": added, "removed": removed, "changed": changed,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if !g.quiet {
        for c in &changes {
            println!("{}", change_line(c));
        }
        println!(
            "{added} added, {removed} removed, {changed} changed from {} to {}",
            snap_a.short_id(),
            snap_b.short_id()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn change_line(c: &ObjectChange) -> String {
    let o = &c.object;
    let mark = match c.change {
        ChangeKind::Added => '+',
        ChangeKind::Removed => '-',
        ChangeKind::Changed => 'M',
    };
    let what = match &o.namespace {
        _ if o.resource.is_empty() => o.key.clone(),
        Some(ns) => format!("{} {ns}/{}", o.resource_name(), o.name),
        None => format!("{} {}", o.resource_name(), o.name),
    };
    match (c.change.clone(), c.old_resource_version) {
        (ChangeKind::Changed, Some(old)) => {
            format!("{mark} {what} ({old} -> {})", o.resource_version)
        }
        _ => format!("{mark} {what}"),
    }
}

fn field_diff(
    g: &Global,
    oa: &Objects<'_>,
    ob: &Objects<'_>,
    spec: &str,
    decryptor: Option<&Decryptor>,
) -> Result<ExitCode> {
    let a = oa.by_name(spec).ok();
    let b = ob.by_name(spec).ok();
    let (a, b) = match (a, b) {
        (None, None) => return Err(err(ob.by_name(spec).expect_err("not found"))),
        (a, b) => (a, b),
    };
    let decode = |o: &Objects<'_>, e| -> Result<serde_json::Value> {
        Ok(o.decode(e, decryptor).map_err(err)?.served)
    };
    let old = a
        .map(|e| decode(oa, e))
        .transpose()?
        .unwrap_or(serde_json::Value::Null);
    let new = b
        .map(|e| decode(ob, e))
        .transpose()?
        .unwrap_or(serde_json::Value::Null);
    let changes = hokan_k8s_codec::diff(&old, &new);
    if g.json {
        for c in &changes {
            let v = match c {
                hokan_k8s_codec::Change::Added { path, new } => {
                    serde_json::json!({"change": "added", "path": path, "new": new})
                }
                hokan_k8s_codec::Change::Removed { path, old } => {
                    serde_json::json!({"change": "removed", "path": path, "old": old})
                }
                hokan_k8s_codec::Change::Changed { path, old, new } => {
                    serde_json::json!({"change": "changed", "path": path, "old": old, "new": new})
                }
                _ => continue,
            };
            output::json(&v)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if g.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    let show = |v: &serde_json::Value| serde_json::to_string(v).unwrap_or_default();
    for c in &changes {
        match c {
            hokan_k8s_codec::Change::Added { path, new } => println!("+ {path}: {}", show(new)),
            hokan_k8s_codec::Change::Removed { path, old } => println!("- {path}: {}", show(old)),
            hokan_k8s_codec::Change::Changed { path, old, new } => {
                println!("M {path}: {} -> {}", show(old), show(new))
            }
            _ => {}
        }
    }
    println!("{} field(s) differ in {spec}", changes.len());
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Snapshot id, unique prefix, or "latest" (the newest etcd snapshot)
    pub snapshot: String,
    /// Directory to write the manifests into (group/resource/namespace/name.json)
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub decrypt: DecryptArgs,
    /// Write objects as the API server serves them, without sanitizing
    #[arg(long)]
    pub raw: bool,
}

pub fn export(g: &Global, a: ExportArgs) -> Result<ExitCode> {
    let decryptor = a.decrypt.decryptor()?;
    let (repo, snap) = open_snapshot(g, &a.snapshot)?;
    let objects = Objects::open(&repo, &snap).map_err(err)?;
    let options = ExportOptions {
        decryptor: decryptor.as_ref(),
        raw: a.raw,
    };
    let report =
        hokan_etcd::export(&objects, &a.filter.filter(), &a.output, options).map_err(err)?;
    if g.json {
        output::json(&serde_json::json!({
            "message_type": "summary",
            "output": a.output.display().to_string(),
            "written": report.written.len(),
            "skipped": report.skipped,
            "left_out": report.left_out,
        }))?;
    } else if !g.quiet {
        for s in &report.skipped {
            eprintln!("skipped {}: {}", s.key, s.reason);
        }
        println!(
            "wrote {} manifests into {}{}{}",
            report.written.len(),
            a.output.display(),
            if report.skipped.is_empty() {
                String::new()
            } else {
                format!(", skipped {} (see above)", report.skipped.len())
            },
            if report.left_out.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} keys are not objects a restore creates (--json lists them)",
                    report.left_out.len()
                )
            }
        );
    }
    if report.written.is_empty() && report.skipped.is_empty() && report.left_out.is_empty() {
        bail!(
            "no object in snapshot {} matches the filter; `hokan etcd ls` lists them",
            snap.short_id()
        );
    }
    // As `backup` does when some files could not be read.
    Ok(if report.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
