//! Check's plan: the problems the survey shows by itself, and the packs
//! to read in full, decided from the survey, the read-data option and a
//! random seed alone.

use std::collections::{HashMap, HashSet};

use hokan_core::{Id, PackId};

use super::survey::Survey;
use super::{CheckReport, ProblemKind, ReadData};
use crate::layout;

/// What check found without reading packs, and what it will read.
pub(crate) struct CheckPlan {
    /// Problems, notes and figures so far.
    pub report: CheckReport,
    /// Blobs whose needed copy is missing or damaged, with what is wrong:
    /// the files that need them are named at the end.
    pub bad: HashMap<Id, String>,
    /// Copies found lost that no record names yet.
    pub record: Vec<(PackId, Id)>,
    /// The packs to read in full, by id.
    pub read: Vec<PackId>,
}

/// Finds the problems the survey shows and chooses the packs to read; see
/// [`CheckPlan`]. `seed` drives the random subsets of `read_data`.
pub(crate) fn plan(s: &Survey, read_data: ReadData, seed: u64) -> CheckPlan {
    let mut r = CheckReport::default();
    let mut bad: HashMap<Id, String> = HashMap::new();
    for u in &s.bad_index_files {
        r.problem(
            ProblemKind::IndexFile,
            format!("index file {}", u.id.short()),
            &u.reason,
        );
    }
    for u in &s.bad_locks {
        r.problem(
            ProblemKind::Lock,
            format!("lock {}", u.id.short()),
            &u.reason,
        );
    }
    r.packs = s.active.len();
    packs_against_the_store(s, &mut r, &mut bad);
    stray_objects(s, &mut r);
    recorded_damage(s, &mut r, &mut bad);
    for u in &s.bad_snapshots {
        r.problem(
            ProblemKind::Snapshot,
            format!("snapshot {} ({})", u.id.short(), u.path),
            &u.reason,
        );
    }
    r.snapshots = s.snapshots.len();
    r.trees = s.trees;
    r.data_blobs = s.data;
    for t in &s.bad_trees {
        r.problem(
            ProblemKind::TreeUnreadable,
            format!("tree {}", t.tree.short()),
            format!(
                "{} in snapshot {}: {}",
                t.path.display(),
                t.snapshot.short(),
                t.error
            ),
        );
        bad.entry(t.tree.0)
            .or_insert_with(|| format!("tree {} cannot be read: {}", t.tree.short(), t.error));
    }
    for id in &s.missing {
        r.problem(
            ProblemKind::BlobMissing,
            format!("blob {}", id.short()),
            "a snapshot needs it, and it is in no index",
        );
        bad.insert(*id, format!("blob {} is in no index", id.short()));
    }
    let mut record: Vec<(PackId, Id)> = s
        .active
        .iter()
        .flat_map(|p| p.absent.iter().map(|(b, _)| (p.id, *b)))
        .filter(|b| !s.damaged.contains(b))
        .collect();
    record.sort();
    record.dedup();
    let read = packs_to_read(s, read_data, seed);
    r.packs_read = read.len();
    r.bytes_read = read.iter().map(|id| s.stored[id]).sum();
    CheckPlan {
        report: r,
        bad,
        record,
        read,
    }
}

/// Index entries point into existing packs of the recorded size. A pack
/// that is gone, or shorter than the index says, has lost the blobs it no
/// longer holds (the survey's `absent` copies): they are recorded as
/// damaged, so that no backup deduplicates against them.
fn packs_against_the_store(s: &Survey, r: &mut CheckReport, bad: &mut HashMap<Id, String>) {
    for p in &s.active {
        let what = format!("pack {}", p.id.short());
        let Some(&size) = s.stored.get(&p.id) else {
            // Every copy of a pack that is gone is absent.
            let gone: Vec<&Id> = p.absent.iter().filter(|b| !b.1).map(|b| &b.0).collect();
            if gone.is_empty() {
                r.notes.push(format!(
                    "the index lists {what}, which is not in the store; each of its {} blob(s) \
                     is stored again elsewhere, and a prune drops it from the index",
                    p.blobs
                ));
                continue;
            }
            r.problem(
                ProblemKind::PackMissing,
                &what,
                format!(
                    "the index lists it, but it is not in the store; {} of its {} blob(s) have \
                     no other copy",
                    gone.len(),
                    p.blobs
                ),
            );
            for b in gone {
                bad.entry(*b)
                    .or_insert_with(|| format!("{what} is not in the store"));
            }
            continue;
        };
        if size == p.size {
            continue;
        }
        let cut = match p.absent.len() {
            0 => String::new(),
            n => format!("; {n} of its {} blobs lie past its end", p.blobs),
        };
        // The name is the hash of the bytes the index was written for:
        // other bytes are damage, not an index mistake.
        r.problem(
            ProblemKind::PackDamaged,
            &what,
            format!("{size} bytes stored, the index says {}{cut}", p.size),
        );
        for (b, _) in p.absent.iter().filter(|b| !b.1) {
            bad.entry(*b)
                .or_insert_with(|| format!("{what} was cut short before blob {}", b.short()));
        }
    }
}

/// Notes on what is stored but in no index: packs waiting for deletion,
/// packs of interrupted backups, temporary files.
fn stray_objects(s: &Survey, r: &mut CheckReport) {
    let active: HashSet<PackId> = s.active.iter().map(|p| p.id).collect();
    let waiting = s
        .marked
        .iter()
        .filter(|m| s.stored.contains_key(&m.pack.id) && !active.contains(&m.pack.id))
        .count();
    if waiting > 0 {
        r.notes.push(format!(
            "{waiting} pack(s) are marked for deletion and wait for the grace period of a later prune"
        ));
    }
    let marked: HashSet<PackId> = s.marked.iter().map(|m| m.pack.id).collect();
    let loose = s
        .stored
        .keys()
        .filter(|id| !active.contains(id) && !marked.contains(id))
        .count();
    r.unindexed_packs = loose;
    if loose > 0 {
        r.notes.push(format!(
            "{loose} pack(s) are in no index: left by an interrupted backup (a prune removes \
             them) or written by one still running"
        ));
    }
    for (dir, count, bytes) in &s.temporary {
        r.notes.push(match *dir {
            layout::DATA => format!(
                "{count} temporary file(s) under {dir}/ ({bytes} bytes), left by writes that \
                 were interrupted (a prune removes them once they are an hour old)"
            ),
            _ => format!("{count} temporary file(s) under {dir}/"),
        });
    }
}

/// Recorded damage matters while no intact copy exists: a backup that
/// stored the data again healed it.
fn recorded_damage(s: &Survey, r: &mut CheckReport, bad: &mut HashMap<Id, String>) {
    let mut records: Vec<&(PackId, Id)> = s
        .damaged
        .iter()
        .filter(|(p, _)| s.stored.contains_key(p))
        .collect();
    records.sort();
    let mut healed = 0;
    for (pack, blob) in records {
        if s.healed(pack, blob) {
            healed += 1;
            continue;
        }
        let why = format!(
            "blob {} in pack {} was found damaged",
            blob.short(),
            pack.short()
        );
        r.problem(
            ProblemKind::BlobDamaged,
            format!("blob {}", blob.short()),
            why.clone(),
        );
        bad.insert(*blob, why);
    }
    if healed > 0 {
        r.notes.push(format!(
            "{healed} blob(s) found damaged earlier were stored again intact; salvaging the \
             damaged packs, and pruning, remove the damaged copies"
        ));
    }
}

/// The packs to read: live ones, and marked ones that a snapshot still
/// reads from (a prune would put them back; their damage matters just the
/// same), narrowed to the subset asked for.
fn packs_to_read(s: &Survey, read_data: ReadData, seed: u64) -> Vec<PackId> {
    let mut read: Vec<PackId> = s
        .active
        .iter()
        .map(|p| p.id)
        .filter(|id| s.stored.contains_key(id))
        .chain(s.marked_live.iter().copied())
        .collect();
    read.sort();
    read.dedup();
    let mut rng = hokan_core::sample::SplitMix64::new(seed);
    match read_data {
        ReadData::None => read.clear(),
        ReadData::All => {}
        ReadData::Group { n, of } => read.retain(|id| id.0.0[0] as u32 % of == n - 1),
        ReadData::Share(share) => {
            read.retain(|_| ((rng.next_u64() >> 11) as f64) / ((1u64 << 53) as f64) < share)
        }
        ReadData::Bytes(limit) => {
            let mut keyed: Vec<(u64, PackId)> =
                read.into_iter().map(|p| (rng.next_u64(), p)).collect();
            keyed.sort_by_key(|(k, _)| *k);
            let mut total = 0u64;
            read = keyed
                .into_iter()
                .map(|(_, p)| p)
                .take_while(|id| {
                    let keep = total < limit;
                    total += s.stored[id];
                    keep
                })
                .collect();
        }
    }
    read
}
