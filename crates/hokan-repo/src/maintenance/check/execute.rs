//! Carrying out check's plan: reading the chosen packs in full, recording
//! the damage found (the one thing check writes), and naming every file of
//! every snapshot that the problems affect.

use std::collections::HashSet;

use rayon::prelude::*;

use hokan_core::{BlobReader, Id, PackId, PackedBlob};

use super::super::{PhaseProgress, Unit, walk};
use super::plan::CheckPlan;
use super::survey::Survey;
use super::{CheckReport, ProblemKind};
use crate::error::{Result, from_core};
use crate::layout;
use crate::repository::Repository;

/// What reading a pack found: each problem with the blob it concerns
/// (`None`: the pack as a whole, no blob lost by it).
type PackFindings = Vec<(Option<Id>, String)>;

/// [`PackFindings`], each blob with whether snapshots read it from that
/// pack.
type ReadFindings = Vec<(Option<(Id, bool)>, String)>;

/// Reads the planned packs, records what is damaged, and names what the
/// damage affects.
pub(crate) fn execute(
    repo: &Repository,
    s: &Survey,
    plan: CheckPlan,
    progress: &dyn PhaseProgress,
) -> Result<CheckReport> {
    let CheckPlan {
        report: mut r,
        mut bad,
        record,
        read,
    } = plan;
    if !read.is_empty() {
        progress.phase("reading packs", r.bytes_read, Unit::Bytes);
    }
    // Each pack's entries come from the survey's spill as it is read, so
    // memory holds only the packs being read.
    let results: Vec<Result<ReadFindings>> = read
        .par_iter()
        .map(|id| {
            let found = read_spilled(repo, s, id);
            progress.advance(s.stored[id]);
            found
        })
        .collect();
    let mut found_damaged = record;
    for (res, pack) in results.into_iter().zip(&read) {
        let what = format!("pack {}", pack.short());
        for (blob, message) in res? {
            r.problem(ProblemKind::PackDamaged, &what, message.clone());
            // A problem of the pack as a whole costs no blob by itself.
            let Some((b, read_here)) = blob else { continue };
            if !s.damaged.contains(&(*pack, b)) {
                found_damaged.push((*pack, b));
            }
            // Only the copy snapshots read affects them.
            if read_here {
                bad.entry(b).or_insert_with(|| format!("{what}: {message}"));
            }
        }
    }
    // Damage found is recorded (an object added, nothing changed), so no
    // backup deduplicates against it from now on, and the next backup of
    // the same data stores it afresh. A store that refuses writes (read-only
    // credentials) only loses the record.
    if !found_damaged.is_empty() {
        found_damaged.sort();
        found_damaged.dedup();
        let record = crate::locks::LockObject::Damaged {
            found_at: chrono::Utc::now().timestamp(),
            blobs: found_damaged.clone(),
        };
        match repo.save_lock(&record) {
            Ok(_) => r.notes.push(format!(
                "recorded {} damaged blob(s): backups will store their data afresh",
                found_damaged.len()
            )),
            Err(e) => r
                .notes
                .push(format!("could not record the damage found: {e}")),
        }
    }
    if !bad.is_empty() {
        progress.phase("naming what the damage affects", 0, Unit::Items);
        let reader = BlobReader::new(repo.master_key(), &s.trees_index, repo.store());
        r.affected = walk::affected(&reader, &s.snapshots, &bad);
    }
    Ok(r)
}

/// [`read_pack`] with the survey's entries for the pack, each blob found
/// damaged with whether snapshots read it from there.
fn read_spilled(repo: &Repository, s: &Survey, id: &PackId) -> Result<ReadFindings> {
    let entries = match &s.entries {
        Some(e) => e.get(id)?,
        None => Vec::new(),
    };
    let live: HashSet<Id> = entries.iter().filter(|e| e.1).map(|e| e.0.id).collect();
    let indexed: Vec<PackedBlob> = entries.into_iter().map(|(e, _)| e).collect();
    Ok(read_pack(repo, id, &indexed)?
        .into_iter()
        .map(|(b, message)| (b.map(|b| (b, live.contains(&b))), message))
        .collect())
}

/// Downloads a pack and checks all of it against its name, its header,
/// its blobs and the index's entries. Every blob that can be read is read,
/// by the header's list or, where the header cannot be used, by the
/// index's (an entry the header does not list is read where the index
/// places it: if it is not there, it fails as damaged); only the blobs that
/// fail are damaged. Returns each problem with
/// the blob it concerns; an unreachable store is an error.
fn read_pack(repo: &Repository, id: &PackId, indexed: &[PackedBlob]) -> Result<PackFindings> {
    let key = repo.master_key();
    let bytes = match repo.store().get(&layout::pack(id)) {
        Ok(b) => b,
        // Gone since the listing: every blob the index places in it is lost.
        Err(e) if e.is_damage() => {
            return Ok(indexed
                .iter()
                .map(|b| (Some(b.id), e.to_string()))
                .collect());
        }
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    let scanned = hokan_core::pack::scan(&bytes, id, indexed, key, |b, r| {
        if let Err(e) = r {
            found.push((Some(b.id), e.to_string()));
        }
    })
    .map_err(from_core)?;
    if let Some(problem) = &scanned.problem {
        let outcome = match scanned.damaged {
            0 => "every blob in it reads back".to_string(),
            n => format!("{n} of its {} blobs are damaged", scanned.blobs.len()),
        };
        found.insert(0, (None, format!("{problem}; {outcome}")));
    }
    Ok(found)
}
