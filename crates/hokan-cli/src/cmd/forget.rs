//! `hokan forget`: apply a retention policy (and `--prune` afterwards).

use std::process::ExitCode;

use anyhow::{Result, bail};
use hokan_repo::retention::{CalendarDuration, Count, GroupBy, GroupDecisions, Policy};
use hokan_repo::{LinkFate, Linked};

use crate::Global;
use crate::cmd::FilterArgs;
use crate::cmd::prune::PruneArgs;
use crate::output;

/// The retention rules, shared by `forget` and `backup`.
#[derive(clap::Args, Debug, Default)]
pub struct PolicyArgs {
    /// Keep the newest N snapshots (-1: all)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub keep_last: Option<i64>,
    /// Keep the newest snapshot of each of the last N hours (-1: all)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub keep_hourly: Option<i64>,
    /// ... of each of the last N days
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub keep_daily: Option<i64>,
    /// ... of each of the last N ISO weeks
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub keep_weekly: Option<i64>,
    /// ... of each of the last N months
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub keep_monthly: Option<i64>,
    /// ... of each of the last N years
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub keep_yearly: Option<i64>,
    /// Keep snapshots within this long of the newest: 1y6m, 7d, 12h
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep snapshots carrying all these (comma-separated) tags; repeatable
    #[arg(long = "keep-tag", value_name = "TAG[,TAG]")]
    pub keep_tags: Vec<String>,
    /// Keep the newest snapshots whose sizes add up to at most this (e.g. 2G)
    #[arg(long, value_name = "SIZE", value_parser = hokan_repo::parse_size)]
    pub keep_size: Option<u64>,
}

impl PolicyArgs {
    /// The policy these flags describe (empty when none was given). Flags
    /// that keep nothing (`--keep-last 0`) are refused here, before a
    /// backup that applies them afterwards stores anything.
    pub fn policy(&self) -> Result<Policy> {
        let policy = Policy {
            last: count(self.keep_last, "keep-last")?,
            hourly: count(self.keep_hourly, "keep-hourly")?,
            daily: count(self.keep_daily, "keep-daily")?,
            weekly: count(self.keep_weekly, "keep-weekly")?,
            monthly: count(self.keep_monthly, "keep-monthly")?,
            yearly: count(self.keep_yearly, "keep-yearly")?,
            within: self
                .keep_within
                .as_deref()
                .map(CalendarDuration::parse)
                .transpose()?,
            tags: self.keep_tags.clone(),
            size: self.keep_size,
        };
        if !policy.is_empty() {
            policy.check()?;
        }
        Ok(policy)
    }
}

#[derive(clap::Args, Debug)]
pub struct ForgetArgs {
    /// Forget these snapshots (ids or prefixes) instead of applying a policy
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Group snapshots by these before applying the policy: host, paths, tags (comma-separated; "" for one group)
    #[arg(long, default_value = "host,paths")]
    pub group_by: String,
    /// Show what would be kept and why; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Prune the repository afterwards
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prune_options: PruneArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
}

fn count(v: Option<i64>, flag: &str) -> Result<Option<Count>> {
    Ok(match v {
        None => None,
        Some(-1) => Some(Count::All),
        Some(n) if n >= 0 => Some(Count::Up(n as u32)),
        Some(n) => bail!("--{flag} {n}: give a count, or -1 for all"),
    })
}

pub fn run(g: &Global, a: ForgetArgs) -> Result<ExitCode> {
    let repo = super::open(g)?;
    if !a.snapshots.is_empty() {
        // By id, damaged snapshot files included: that is how one goes.
        let ids = a
            .snapshots
            .iter()
            .map(|q| repo.find_snapshot_id(q))
            .collect::<Result<Vec<_>, _>>()?;
        let done = repo.forget_snapshots(&ids, a.dry_run)?;
        if g.json {
            let (kept, gone): (Vec<_>, Vec<_>) =
                done.iter().partition(|f| f.kept_by_lock.is_some());
            output::json(&serde_json::json!({
                "removed": gone.iter().map(|f| f.id.to_hex()).collect::<Vec<_>>(),
                "kept_by_lock": kept.iter().map(|f| serde_json::json!({
                    "id": f.id.to_hex(), "deletable_from": f.kept_by_lock.flatten(),
                })).collect::<Vec<_>>(),
                "linked": done.iter().flat_map(|f| linked_json(&f.linked)).collect::<Vec<_>>(),
                "dry_run": a.dry_run,
            }))?;
        } else if !g.quiet {
            for f in &done {
                match f.kept_by_lock {
                    Some(until) => println!("kept snapshot {}: {}", f.id.short(), lock_note(until)),
                    None => println!(
                        "{} snapshot {}",
                        if a.dry_run { "would remove" } else { "removed" },
                        f.id.short()
                    ),
                }
                print_linked(&f.id, &f.linked, a.dry_run);
            }
        }
    } else {
        let policy = a.policy.policy()?;
        let groups = repo.forget(
            &policy,
            GroupBy::parse(&a.group_by)?,
            &a.filter.filter(),
            a.dry_run,
        )?;
        if g.json {
            let out: Vec<_> = groups.iter().map(|gr| group_json(gr, a.dry_run)).collect();
            output::json(&out)?;
        } else if !g.quiet {
            for gr in &groups {
                print_group(gr, a.dry_run);
            }
        }
    }
    if a.prune && !a.dry_run {
        return super::prune::run_on(g, repo, &a.prune_options);
    }
    Ok(ExitCode::SUCCESS)
}

/// One group's decisions as JSON: kept and removed snapshots with reasons.
pub fn group_json(gr: &GroupDecisions, dry_run: bool) -> serde_json::Value {
    let list = |keep: bool| -> Vec<serde_json::Value> {
        gr.decisions
            .iter()
            .filter(|d| d.keep() == keep)
            .map(|d| {
                let mut v = super::snapshots::snapshot_json(&d.entry);
                v["reasons"] = serde_json::json!(d.reasons);
                if let Some(until) = d.kept_by_lock {
                    v["kept_by_lock"] = serde_json::json!(true);
                    v["deletable_from"] = serde_json::json!(until);
                }
                if !d.linked.is_empty() {
                    v["linked"] = linked_json(&d.linked).into();
                }
                v
            })
            .collect()
    };
    serde_json::json!({
        "host": gr.key.host, "paths": gr.key.paths, "tags": gr.key.tags,
        "keep": list(true), "remove": list(false), "dry_run": dry_run,
    })
}

/// One group's decisions as a table, then how many were kept and removed.
pub fn print_group(gr: &GroupDecisions, dry_run: bool) {
    let mut key = Vec::new();
    if let Some(h) = &gr.key.host {
        key.push(format!("host [{h}]"));
    }
    if let Some(p) = &gr.key.paths {
        key.push(format!("paths [{}]", p.join(", ")));
    }
    if let Some(t) = &gr.key.tags {
        key.push(format!("tags [{}]", t.join(", ")));
    }
    println!(
        "snapshots for {}:",
        if key.is_empty() {
            "all".to_string()
        } else {
            key.join(", ")
        }
    );
    let rows: Vec<Vec<String>> = gr
        .decisions
        .iter()
        .map(|d| {
            vec![
                d.entry.id.short(),
                output::local_time(d.entry.snapshot.time.secs),
                if d.keep() {
                    "keep".into()
                } else if d.kept_by_lock.is_some() {
                    "remove (locked)".into()
                } else {
                    "remove".into()
                },
                output::size(d.entry.snapshot.summary.bytes),
                match (d.kept_by_lock, d.forgotten_with) {
                    (Some(until), _) => lock_note(until),
                    (None, Some(by)) => format!("linked from {}, which goes", by.short()),
                    (None, None) => d.reasons.join(", "),
                },
            ]
        })
        .collect();
    output::table(&["ID", "Time", "Action", "Size", "Reasons"], &rows);
    for d in &gr.decisions {
        print_linked(&d.entry.id, &d.linked, dry_run);
    }
    let kept = gr.decisions.iter().filter(|d| d.keep()).count();
    let locked = gr
        .decisions
        .iter()
        .filter(|d| d.kept_by_lock.is_some())
        .count();
    println!(
        "{kept} kept, {} {}{}\n",
        gr.decisions.len() - kept - locked,
        if dry_run {
            "would be removed"
        } else {
            "removed"
        },
        if locked > 0 {
            format!(
                ", {locked} forgotten but kept by the object lock (a later forget removes them)"
            )
        } else {
            String::new()
        }
    );
}

/// What became of the snapshots a forgotten snapshot links to, as JSON.
fn linked_json(linked: &[Linked]) -> Vec<serde_json::Value> {
    linked
        .iter()
        .map(|l| {
            let (fate, by) = match &l.fate {
                LinkFate::Forgotten => ("removed", None),
                LinkFate::KeptByLock(_) => ("kept_by_lock", None),
                LinkFate::Kept { by } => ("kept", Some(by.to_hex())),
                LinkFate::Missing => ("missing", None),
                LinkFate::Elsewhere => ("elsewhere", None),
                _ => ("unknown", None),
            };
            serde_json::json!({
                "name": l.link.name, "snapshot_id": l.link.snapshot,
                "repository": l.link.repository, "fate": fate, "kept_by": by,
            })
        })
        .collect()
}

/// One line per snapshot `owner` (forgotten) links to: what became of it.
fn print_linked(owner: &hokan_core::Id, linked: &[Linked], dry_run: bool) {
    let owner = owner.short();
    for l in linked {
        let id = l.link.snapshot.get(..8).unwrap_or(&l.link.snapshot);
        let what = format!("{} snapshot {id}", l.link.name.replace('-', " "));
        match &l.fate {
            LinkFate::Forgotten if dry_run => println!("  {owner}: would remove its {what}"),
            LinkFate::Forgotten => println!("  {owner}: removed its {what}"),
            LinkFate::KeptByLock(until) => {
                println!("  {owner}: kept its {what}: {}", lock_note(*until))
            }
            LinkFate::Kept { by } => println!(
                "  {owner}: kept its {what}: snapshot {} links to it too",
                by.short()
            ),
            LinkFate::Missing => println!("  {owner}: its {what} was already gone"),
            LinkFate::Elsewhere => {
                let there = l.link.repository.as_deref().unwrap_or("?");
                eprintln!(
                    "warning: the {what} of snapshot {owner} is in the repository {there}; \
                     forget it there (`hokan -r {there} forget {id}`)"
                )
            }
            _ => {}
        }
    }
}

/// Why an immutable repository kept an object: until when the lock holds
/// it, or that the store refused the delete.
pub fn lock_note(until: Option<i64>) -> String {
    match until {
        Some(t) => format!("the object lock keeps it until {}", output::local_time(t)),
        None => "the store refused to delete it (object lock or policy)".into(),
    }
}
