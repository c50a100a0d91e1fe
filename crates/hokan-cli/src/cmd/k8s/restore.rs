//! `hokan k8s restore`: a resource snapshot into a cluster, as manifests
//! into a directory, or (`--dry-run`) only the plan, every decision shown.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hokan_k8s::restore::{Action, Outcome, RestorePlan, Step, parse_namespace_mapping};
use hokan_k8s::{
    ExistingPolicy, ManifestDir, RestoreOptions, RestoreReport, SnapshotSource, Target,
    execute_with, plan,
};
use serde_json::json;

use super::{ClusterArgs, ScopeArgs, k8s_error, runtime};
use crate::Global;

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id, unique prefix, or "latest" (the newest resource snapshot)
    pub snapshot: String,
    /// Write the objects as manifests into this directory (with
    /// restore-order.txt, the order to apply them in) instead of creating
    /// them in a cluster
    #[arg(long, value_name = "DIR", conflicts_with_all = ["kubeconfig", "context"])]
    pub to_dir: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Restore namespaces under other names (shop:shop-dr,db:db2)
    #[arg(long, value_name = "SOURCE:TARGET,...")]
    pub namespace_mapping: Vec<String>,
    /// Objects the target has already: left as they are (none) or updated
    /// to the backed-up content (update)
    #[arg(long, value_name = "none|update", default_value = "none", value_parser = ["none", "update"])]
    pub existing_resource_policy: String,
    #[command(flatten)]
    pub filter: ScopeArgs,
    /// Resources whose status is restored too (comma-separated; * for all)
    #[arg(long, value_delimiter = ',', value_name = "R,...")]
    pub restore_status: Vec<String>,
    /// Keep the node ports services had (by default the target picks new
    /// ones unless a person chose them)
    #[arg(long)]
    pub preserve_node_ports: bool,
    /// Print the plan (order, versions, what is sanitized) and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds to wait for a restored CRD to be Established before its
    /// custom resources are created
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub crd_timeout: u64,
    #[command(flatten)]
    pub snapshots: crate::cmd::FilterArgs,
}

impl RestoreArgs {
    fn options(&self) -> Result<RestoreOptions> {
        Ok(RestoreOptions {
            include_namespaces: self.filter.include_namespaces.clone(),
            exclude_namespaces: self.filter.exclude_namespaces.clone(),
            include_resources: self.filter.include_resources.clone(),
            exclude_resources: self.filter.exclude_resources.clone(),
            namespace_mapping: parse_namespace_mapping(&self.namespace_mapping.join(","))
                .map_err(k8s_error)?,
            existing: self
                .existing_resource_policy
                .parse::<ExistingPolicy>()
                .map_err(k8s_error)?,
            restore_status: self.restore_status.clone(),
            preserve_node_ports: self.preserve_node_ports,
            crd_timeout: Duration::from_secs(self.crd_timeout),
        })
    }
}

pub fn run(g: &Global, a: RestoreArgs) -> Result<ExitCode> {
    let options = a.options()?;
    let repo = super::super::open(g)?;
    let entry = repo.find_snapshot_of(
        &hokan_repo::SourceKind::K8S,
        &a.snapshot,
        &a.snapshots.filter(),
    )?;
    let repo = repo.load_index()?;
    let rt = runtime()?;
    let started = Instant::now();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let (restore_plan, report, target) = rt.block_on(async {
        let source = SnapshotSource::new(&repo, &entry).map_err(k8s_error)?;
        let cluster = match &a.to_dir {
            Some(_) => None,
            None => Some(a.cluster.connect().await?),
        };
        let discovery = match &cluster {
            Some(c) => Some(c.discover().await.map_err(k8s_error)?),
            None => None,
        };
        let restore_plan = plan(&source, discovery.as_ref(), &options)
            .await
            .map_err(k8s_error)?;
        let dir = a.to_dir.as_ref().map(ManifestDir::new);
        let (target, name) = match (&dir, &cluster) {
            _ if a.dry_run => (
                Target::DryRun,
                match (&a.to_dir, &cluster) {
                    (Some(d), _) => format!("directory {}", d.display()),
                    (None, Some(c)) => format!("cluster {}", c.identity()),
                    (None, None) => String::new(),
                },
            ),
            (Some(d), _) => (Target::Dir(d), format!("directory {}", d.root().display())),
            (None, Some(c)) => (Target::Cluster(c), format!("cluster {}", c.identity())),
            (None, None) => bail!("nowhere to restore to"),
        };
        header(g, &mut out, &a, &entry, &restore_plan, &name, &options)?;
        let mut failed_output: Option<std::io::Error> = None;
        let report = execute_with(&restore_plan, &source, target, &options, |o: &Outcome| {
            let step = &restore_plan.steps[o.step];
            if let Err(e) = print_outcome(g, &mut out, o, step, a.dry_run) {
                failed_output.get_or_insert(e);
            }
        })
        .await
        .map_err(k8s_error)?;
        if let Some(e) = failed_output {
            return Err(anyhow::Error::new(e).context("writing the restore report"));
        }
        Ok::<_, anyhow::Error>((restore_plan, report, name))
    })?;
    footer(g, &mut out, &a, &restore_plan, &report, &target, started)?;
    out.flush()?;
    // As `etcd export` and `backup` do when some items could not be
    // handled: the rest is done, and exit 3 says it is not all.
    if report.totals.failed > 0 {
        eprintln!(
            "error: {} object(s) could not be restored (marked FAILED above, with the reason: \
             the server's, or what is wrong with the stored object); the others were",
            report.totals.failed
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn header(
    g: &Global,
    out: &mut impl Write,
    a: &RestoreArgs,
    entry: &hokan_repo::SnapshotEntry,
    restore_plan: &RestorePlan,
    target: &str,
    options: &RestoreOptions,
) -> Result<()> {
    let snapshot = &entry.snapshot;
    if g.json {
        for s in &restore_plan.skipped {
            let line = json!({"message_type": "left_out", "object": s.key.to_string(), "reason": s.reason});
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    if g.quiet {
        return Ok(());
    }
    let verb = if a.dry_run {
        "Restore plan (dry run, nothing is changed)"
    } else {
        "Restoring"
    };
    writeln!(
        out,
        "{verb}: snapshot {} of {} from {} into {target}",
        entry.id.short(),
        snapshot.identity,
        crate::output::local_time(snapshot.time.secs)
    )?;
    writeln!(
        out,
        "{} objects in order, {} left out; existing objects: {}",
        restore_plan.steps.len(),
        restore_plan.skipped.len(),
        match options.existing {
            ExistingPolicy::None => "left as they are (policy none)",
            ExistingPolicy::Update => "updated to the backup (policy update)",
        }
    )?;
    for s in &restore_plan.skipped {
        writeln!(out, "  left out: {}: {}", s.key, s.reason)?;
    }
    Ok(())
}

fn print_outcome(
    g: &Global,
    out: &mut impl Write,
    o: &Outcome,
    step: &Step,
    dry_run: bool,
) -> std::io::Result<()> {
    if g.json {
        let detail = match &o.action {
            Action::Written(p) => Some(p.clone()),
            Action::Skipped(why) | Action::Failed(why) => Some(why.clone()),
            _ => None,
        };
        let line = json!({
            "message_type": "outcome", "step": o.step + 1,
            "source": o.source.to_string(), "target": o.target,
            "api_version": o.api_version, "version_choice": step.choice.to_string(),
            "wait_established": step.wait_established,
            "action": o.action.name(), "detail": detail, "sanitized": o.sanitized,
        });
        return writeln!(out, "{line}");
    }
    let failed = matches!(o.action, Action::Failed(_));
    if g.quiet && !failed {
        return Ok(());
    }
    if dry_run {
        // The plan's line, then what the restore would do to the object.
        if o.action == Action::OwnersLinked {
            return Ok(());
        }
        writeln!(out, "{:>4}. {}", o.step + 1, step.describe())?;
        if step.wait_established {
            writeln!(
                out,
                "        then wait until Established: its custom resources follow"
            )?;
        }
        if o.action != Action::WouldCreate {
            writeln!(out, "        {}", o.action)?;
        }
        if !o.sanitized.is_empty() {
            writeln!(out, "        sanitize: {}", o.sanitized.join(", "))?;
        }
        return Ok(());
    }
    writeln!(out, "{o}")
}

fn footer(
    g: &Global,
    out: &mut impl Write,
    a: &RestoreArgs,
    restore_plan: &RestorePlan,
    report: &RestoreReport,
    target: &str,
    started: Instant,
) -> Result<()> {
    let t = &report.totals;
    let seconds = started.elapsed().as_secs_f64();
    if g.json {
        let line = json!({
            "message_type": "summary", "dry_run": a.dry_run, "target": target,
            "objects": restore_plan.steps.len(), "left_out": restore_plan.skipped.len(),
            "totals": t, "warnings": report.warnings, "seconds_elapsed": seconds,
        });
        writeln!(out, "{line}").context("writing the summary")?;
        return Ok(());
    }
    out.flush()?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if g.quiet {
        return Ok(());
    }
    let mut parts = Vec::new();
    for (n, what) in [
        (t.would_create, "would be created"),
        (t.created, "created"),
        (t.written, "written"),
        (t.updated, "updated"),
        (t.unchanged, "existing and unchanged"),
        (t.left_alone, "existing with other content, left alone"),
        (t.skipped, "skipped"),
        (t.failed, "FAILED"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if parts.is_empty() {
        parts.push("nothing to restore".into());
    }
    writeln!(
        out,
        "{target}: {}; {} left out; {seconds:.1} s",
        parts.join(", "),
        restore_plan.skipped.len()
    )?;
    Ok(())
}
