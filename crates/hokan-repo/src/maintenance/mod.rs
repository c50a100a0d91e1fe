//! Keeping a repository healthy: `forget` (retention), `prune` (removing
//! what no snapshot needs, in two phases, safe beside running backups),
//! `check` (finding every problem) and `repair index`.

mod check;
mod locks;
mod prune;
mod repair;

pub use check::{CheckReport, Problem, ReadData, check};
pub use locks::{LockObject, MarkedPack, PruneLock, STALE_AFTER};
pub use prune::{PruneOptions, PruneReport, prune};
pub use repair::{RepairReport, repair_index};

use crate::error::Result;
use crate::repo::Repository;
use crate::retention::{GroupBy, GroupDecisions, Policy, apply};
use crate::snapshot::SnapshotFilter;

impl Repository {
    /// Applies a retention policy to the snapshots the filter admits and,
    /// unless `dry_run`, deletes the snapshots it does not keep. Their data
    /// stays until [`prune`] removes it. Returns every decision with its
    /// reasons.
    pub fn forget(
        &self,
        policy: &Policy,
        by: GroupBy,
        filter: &SnapshotFilter,
        dry_run: bool,
    ) -> Result<Vec<GroupDecisions>> {
        let snapshots: Vec<_> = self
            .snapshots()?
            .into_iter()
            .filter(|e| filter.matches(&e.snapshot))
            .collect();
        let decisions = apply(&snapshots, policy, by)?;
        if !dry_run {
            for d in decisions
                .iter()
                .flat_map(|g| &g.decisions)
                .filter(|d| !d.keep())
            {
                self.delete_snapshot(&d.entry.id)?;
            }
        }
        Ok(decisions)
    }
}
