//! `forget`: snapshots removed by a retention policy or by id, and the
//! snapshots linked to them with them ([`crate::links`]).
//!
//! Every forget goes through [`Fates`]: which snapshots go is decided
//! over the whole repository's links before anything is deleted. A linked
//! snapshot lives exactly as long as a snapshot linking to it: it goes
//! when every snapshot linking to it goes (whatever its own rules say),
//! and stays while one of them stays (a policy's rules cannot take an
//! etcd snapshot's encryption keys while the snapshot is kept).

use std::collections::{BTreeMap, HashMap, HashSet};

use hokan_core::Id;

use crate::error::Result;
use crate::links::{Link, LinkFate, Linked};
use crate::objects::SnapshotList;
use crate::repository::Repository;
use crate::retention::{Decision, GroupBy, GroupDecisions, GroupKey, Policy, apply};
use crate::snapshot::{SnapshotEntry, SnapshotFilter};
use crate::store::Removal;

/// One snapshot forgotten by id ([`Repository::forget_snapshots`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forgotten {
    /// Its id.
    pub id: Id,
    /// In an immutable repository whose object lock still holds its file:
    /// until when (Unix seconds; `Some(None)` when the store refused the
    /// delete). A later forget removes it.
    pub kept_by_lock: Option<Option<i64>>,
    /// The snapshots it links to, and what became of each.
    pub linked: Vec<Linked>,
}

/// The links among a repository's snapshots.
struct Graph {
    /// Each snapshot's links, with the linked snapshot's id where it is in
    /// this repository (a damaged snapshot file counts: it is there).
    links: HashMap<Id, Vec<(Link, Option<Id>)>>,
    /// Who links to each snapshot, in this repository.
    linkers: BTreeMap<Id, Vec<Id>>,
}

impl Graph {
    fn of(list: &SnapshotList) -> Graph {
        let known: HashSet<Id> = list
            .entries
            .iter()
            .map(|e| e.id)
            .chain(list.unreadable.iter().map(|u| u.id))
            .collect();
        let mut graph = Graph {
            links: HashMap::new(),
            linkers: BTreeMap::new(),
        };
        for e in &list.entries {
            let links: Vec<(Link, Option<Id>)> = e
                .snapshot
                .links()
                .into_iter()
                .map(|l| {
                    let here = l
                        .id()
                        .filter(|id| l.repository.is_none() && known.contains(id));
                    (l, here)
                })
                .collect();
            for id in links.iter().filter_map(|(_, here)| *here) {
                graph.linkers.entry(id).or_default().push(e.id);
            }
            if !links.is_empty() {
                graph.links.insert(e.id, links);
            }
        }
        graph
    }

    /// Which snapshots go when `chosen` are forgotten. `explicit`: chosen
    /// by id, so each goes even if a snapshot that stays links to it (the
    /// caller named it); chosen by a policy, such a snapshot stays.
    fn fates(&self, chosen: HashSet<Id>, explicit: bool) -> Fates<'_> {
        let mut forget = chosen.clone();
        // Links point from a newer snapshot to an older one (an id names
        // content that includes the ids it links to), so this settles in
        // as many rounds as the longest chain; the bound is a safeguard.
        for _ in 0..=self.linkers.len() {
            let mut changed = false;
            for (target, linkers) in &self.linkers {
                let goes = (explicit && chosen.contains(target))
                    || linkers.iter().all(|l| forget.contains(l));
                changed |= if goes {
                    forget.insert(*target)
                } else {
                    forget.remove(target)
                };
            }
            if !changed {
                break;
            }
        }
        Fates {
            graph: self,
            forget,
            removals: HashMap::new(),
        }
    }
}

/// What a forget decided, and then what the store did.
struct Fates<'g> {
    graph: &'g Graph,
    forget: HashSet<Id>,
    removals: HashMap<Id, Removal>,
}

impl Fates<'_> {
    /// A snapshot that stays and links to `id`.
    fn kept_by(&self, id: &Id) -> Option<Id> {
        let linkers = self.graph.linkers.get(id)?;
        linkers.iter().find(|l| !self.forget.contains(l)).copied()
    }

    /// Deletes what goes, unless `dry_run`: snapshots that link first, so
    /// an interrupted forget leaves at worst a linked snapshot nothing
    /// links to (which a later forget finds), never a link to nothing.
    fn execute(&mut self, repo: &Repository, dry_run: bool) -> Result<()> {
        if dry_run {
            return Ok(());
        }
        let mut order: Vec<Id> = self.forget.iter().copied().collect();
        order.sort_by_key(|id| (self.graph.linkers.contains_key(id), *id));
        for id in order {
            let removal = repo.delete_snapshot(&id)?;
            self.removals.insert(id, removal);
        }
        Ok(())
    }

    fn kept_by_lock(&self, id: &Id) -> Option<Option<i64>> {
        match self.removals.get(id) {
            Some(Removal::Kept { until }) => Some(*until),
            _ => None,
        }
    }

    /// The links of a forgotten snapshot and what became of each.
    fn linked(&self, id: &Id) -> Vec<Linked> {
        if !self.forget.contains(id) {
            return Vec::new();
        }
        let links = self.graph.links.get(id).map_or(&[][..], Vec::as_slice);
        links
            .iter()
            .map(|(link, here)| {
                let fate = match (&link.repository, here) {
                    (Some(_), _) => LinkFate::Elsewhere,
                    (None, None) => LinkFate::Missing,
                    (None, Some(t)) if self.forget.contains(t) => match self.kept_by_lock(t) {
                        Some(until) => LinkFate::KeptByLock(until),
                        None => LinkFate::Forgotten,
                    },
                    (None, Some(t)) => LinkFate::Kept {
                        by: self.kept_by(t).unwrap_or(*id),
                    },
                };
                Linked {
                    link: link.clone(),
                    fate,
                }
            })
            .collect()
    }

    /// Brings a policy's decision in line with the links, and fills in
    /// what the store did.
    fn settle(&self, d: &mut Decision) {
        let id = d.entry.id;
        let goes = self.forget.contains(&id);
        if goes && d.keep() {
            // Its own rules kept it; the snapshots linking to it went.
            d.reasons.clear();
            d.forgotten_with = self.graph.linkers.get(&id).and_then(|l| l.first().copied());
        } else if !goes && !d.keep() {
            let by = self.kept_by(&id).map_or_else(String::new, |by| by.short());
            d.reasons
                .push(format!("linked from snapshot {by}, which is kept"));
        }
        d.kept_by_lock = self.kept_by_lock(&id);
        d.linked = self.linked(&id);
    }
}

impl Repository {
    /// Applies a retention policy to the snapshots the filter admits and,
    /// unless `dry_run`, deletes the snapshots it does not keep, with the
    /// snapshots linked to them ([`crate::links`]). Their data stays until
    /// [`prune`](crate::maintenance::prune) removes it. Returns every
    /// decision with its reasons.
    pub fn forget(
        &self,
        policy: &Policy,
        by: GroupBy,
        filter: &SnapshotFilter,
        dry_run: bool,
    ) -> Result<Vec<GroupDecisions>> {
        let list = self.snapshot_list()?;
        let snapshots: Vec<_> = list
            .entries
            .iter()
            .filter(|e| filter.matches(&e.snapshot))
            .cloned()
            .collect();
        let mut groups = apply(&snapshots, policy, by)?;
        self.settle(&list, &mut groups, dry_run)?;
        Ok(groups)
    }

    /// Applies a retention policy right after a backup, to the snapshots of
    /// the same source and identity as `saved` (the one just stored; for
    /// file systems: the same host and paths), and deletes the ones it does
    /// not keep, with the snapshots linked to them. Because `saved` is
    /// already in the repository, "keep the last N" leaves exactly N, as an
    /// `etcdctl snapshot save` rotation would. `saved` itself is always
    /// kept, even if no rule keeps it (a tag rule it lacks, say).
    pub fn forget_after_backup(
        &self,
        saved: &SnapshotEntry,
        policy: &Policy,
    ) -> Result<GroupDecisions> {
        let mut paths = saved.snapshot.paths.clone();
        paths.sort();
        let lineage = saved.snapshot.lineage();
        let list = self.snapshot_list()?;
        let same: Vec<_> = list
            .entries
            .iter()
            .filter(|e| e.snapshot.lineage() == lineage)
            .cloned()
            .collect();
        let one_group = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        // One group, unless the listing missed `saved` and found nothing.
        let mut group = apply(&same, policy, one_group)?
            .pop()
            .unwrap_or(GroupDecisions {
                key: Default::default(),
                decisions: Vec::new(),
            });
        group.key = GroupKey {
            host: Some(saved.snapshot.hostname.clone()),
            paths: Some(paths),
            tags: None,
        };
        for d in &mut group.decisions {
            if d.entry.id == saved.id && !d.keep() {
                d.reasons.push("the snapshot just saved".to_string());
            }
        }
        let mut groups = [group];
        self.settle(&list, &mut groups, false)?;
        let [group] = groups;
        Ok(group)
    }

    /// Forgets snapshots by id (damaged snapshot files included: that is
    /// how one goes), unless `dry_run`, with the snapshots linked to them.
    /// One result per id, in the order given.
    pub fn forget_snapshots(&self, ids: &[Id], dry_run: bool) -> Result<Vec<Forgotten>> {
        let list = self.snapshot_list()?;
        let graph = Graph::of(&list);
        let mut fates = graph.fates(ids.iter().copied().collect(), true);
        fates.execute(self, dry_run)?;
        let mut seen = HashSet::new();
        Ok(ids
            .iter()
            .filter(|id| seen.insert(**id))
            .map(|id| Forgotten {
                id: *id,
                kept_by_lock: fates.kept_by_lock(id),
                linked: fates.linked(id),
            })
            .collect())
    }

    /// Decides a policy's groups over the links, deletes, and records what
    /// happened in each decision.
    fn settle(
        &self,
        list: &SnapshotList,
        groups: &mut [GroupDecisions],
        dry_run: bool,
    ) -> Result<()> {
        let graph = Graph::of(list);
        let chosen = groups
            .iter()
            .flat_map(|g| &g.decisions)
            .filter(|d| !d.keep())
            .map(|d| d.entry.id)
            .collect();
        let mut fates = graph.fates(chosen, false);
        fates.execute(self, dry_run)?;
        for d in groups.iter_mut().flat_map(|g| &mut g.decisions) {
            fates.settle(d);
        }
        Ok(())
    }
}
