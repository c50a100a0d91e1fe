//! `hokan find PATTERN...`: which snapshots hold matching files.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use hokan_core::browse;

use crate::Global;
use crate::cmd::FilterArgs;
use crate::output;

#[derive(clap::Args, Debug)]
pub struct FindArgs {
    /// Patterns as backups exclude them: `*.conf` matches a name anywhere,
    /// `etc/*.conf` a name in any `etc`, `/etc/**` everything below /etc;
    /// `*` stays within one path component
    #[arg(required = true)]
    pub patterns: Vec<String>,
    /// Search only these snapshots (repeatable; default: all)
    #[arg(short, long = "snapshot", value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Match case-insensitively
    #[arg(short, long)]
    pub ignore_case: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &Global, a: FindArgs) -> Result<ExitCode> {
    let matcher = hokan_core::glob::compile(&a.patterns, a.ignore_case)?
        .expect("clap requires at least one pattern");
    let repo = super::open(g)?;
    let filter = a.filter.filter();
    let snapshots = if a.snapshots.is_empty() {
        repo.snapshots()?
            .into_iter()
            .filter(|e| filter.matches(&e.snapshot))
            .collect()
    } else {
        a.snapshots
            .iter()
            .map(|s| repo.find_snapshot(s, &filter))
            .collect::<Result<Vec<_>, _>>()?
    };
    let repo = repo.load_index()?;
    let reader = repo.reader();
    let mut results = Vec::new();
    let mut total = 0;
    for e in &snapshots {
        let mut hits = Vec::new();
        browse::walk(
            &reader,
            &e.snapshot.tree,
            Path::new("/"),
            &mut |path, node| -> hokan_core::Result<bool> {
                if matcher.is_match(path) {
                    hits.push((path.to_path_buf(), node.clone()));
                }
                Ok(true)
            },
        )?;
        total += hits.len();
        if g.json {
            results.push(serde_json::json!({
                "snapshot": e.id.to_hex(),
                "hits": hits.len(),
                "matches": hits.iter().map(|(p, n)| super::ls::node_json(p, n)).collect::<Vec<_>>(),
            }));
        } else if !hits.is_empty() {
            println!(
                "Found matching entries in snapshot {} from {}",
                e.id.short(),
                output::local_time(e.snapshot.time.secs)
            );
            for (p, n) in &hits {
                // Objects have no times; what they are is in their attributes.
                if n.kind == hokan_core::NodeKind::Object {
                    println!(
                        "{} {:>12} {} {}",
                        super::ls::permissions(n),
                        n.size,
                        p.display(),
                        super::ls::attrs_text(n)
                    );
                    continue;
                }
                println!(
                    "{} {:>12} {} {}",
                    super::ls::permissions(n),
                    n.size,
                    output::local_time(n.mtime.secs),
                    p.display()
                );
            }
            println!();
        }
    }
    if g.json {
        output::json(&results)?;
    } else if total == 0 {
        println!("no matches in {} snapshot(s)", snapshots.len());
    }
    Ok(ExitCode::SUCCESS)
}
