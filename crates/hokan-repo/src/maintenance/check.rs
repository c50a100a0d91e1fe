//! Check: find every problem in a repository, not only the first, and
//! name the snapshots and files each one affects.
//!
//! The structure check reads index files, lock objects, the pack listing
//! and every snapshot's trees: each tree and chunk a snapshot needs must be
//! in the index, and each index entry must point into an existing pack of
//! the right size. Reading data (all packs, or a subset) downloads packs —
//! the live ones, and those marked for deletion that a snapshot still
//! uses — checks each against its name, opens its header and every blob
//! (which authenticates, decompresses and hashes it), and compares the
//! header with the index. Nothing stored is changed; damage found is
//! recorded (an object added under `locks/`) so backups stop trusting it.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use hokan_core::{BlobReader, Id, PackId};

use super::walk::{self, Affected};
use super::{PhaseProgress, Unit, readable_index};
use crate::error::{Error, Result, from_core};
use crate::index_file::{IndexedPack, live_packs};
use crate::layout;
use crate::repository::Repository;

/// Which packs to read in full.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReadData {
    /// None: structure only.
    None,
    /// Every pack.
    All,
    /// Group `n` of `of` (1-based), by the first byte of the pack id, so
    /// running 1/7 .. 7/7 on seven days reads everything once a week.
    Group {
        /// Which group.
        n: u32,
        /// Of how many.
        of: u32,
    },
    /// A random share of the packs (0.0 to 1.0).
    Share(f64),
    /// Random packs adding up to about this many bytes.
    Bytes(u64),
}

impl ReadData {
    /// Parses restic's `--read-data-subset` forms: `n/t`, `x%`, or a size.
    pub fn parse_subset(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::Invalid {
            what: "read-data subset",
            reason: format!(
                "{s:?}: {why}; use n/t (e.g. 2/7), a percentage (10%) or a size (500M)"
            ),
        };
        let s = s.trim();
        if let Some((n, t)) = s.split_once('/') {
            let n: u32 = n.trim().parse().map_err(|_| bad("n is not a number"))?;
            let t: u32 = t.trim().parse().map_err(|_| bad("t is not a number"))?;
            if n == 0 || t == 0 || n > t {
                return Err(bad("need 1 <= n <= t"));
            }
            return Ok(ReadData::Group { n, of: t });
        }
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad("not a percentage"))?;
            if !(0.0..=100.0).contains(&p) || p == 0.0 {
                return Err(bad("the percentage must be above 0 and at most 100"));
            }
            return Ok(ReadData::Share(p / 100.0));
        }
        match crate::parse_size(s).map_err(|e| bad(&e))? {
            0 => Err(bad("the size must be above 0 (0 would read nothing)")),
            n => Ok(ReadData::Bytes(n)),
        }
    }
}

/// What kind of problem, so a caller can say what helps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// An index file cannot be read: the packs it listed look unindexed.
    IndexFile,
    /// A snapshot file cannot be read.
    Snapshot,
    /// A lock object cannot be read.
    Lock,
    /// The index lists a pack the store does not have.
    PackMissing,
    /// A pack's size or header disagrees with the index.
    PackMismatch,
    /// Reading a pack found damage.
    PackDamaged,
    /// A snapshot needs a blob no index lists.
    BlobMissing,
    /// A blob is recorded as damaged (found so by an earlier backup).
    BlobDamaged,
    /// A tree a snapshot needs cannot be read.
    TreeUnreadable,
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The object concerned (`pack 3fa2c1d0`, `snapshot ...`, `index file ...`).
    pub object: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

/// What a check found.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Every problem, in the order found.
    pub problems: Vec<Problem>,
    /// Every file or directory of a snapshot that needs missing or damaged
    /// data, by snapshot and path.
    pub affected: Vec<Affected>,
    /// Facts that are not problems (packs awaiting prune, temporary files).
    pub notes: Vec<String>,
    /// Snapshots checked.
    pub snapshots: usize,
    /// Distinct trees checked.
    pub trees: usize,
    /// Distinct data blobs referenced.
    pub data_blobs: usize,
    /// Packs in the index.
    pub packs: usize,
    /// Packs in the store that no index lists (nor a deletion marker).
    pub unindexed_packs: usize,
    /// Packs read in full.
    pub packs_read: usize,
    /// Bytes read in full.
    pub bytes_read: u64,
}

impl CheckReport {
    /// Whether the repository is sound.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether any problem is of this kind.
    pub fn has(&self, kind: ProblemKind) -> bool {
        self.problems.iter().any(|p| p.kind == kind)
    }

    fn problem(
        &mut self,
        kind: ProblemKind,
        object: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            kind,
            object: object.into(),
            message: message.into(),
        });
    }
}

/// Checks a repository, telling `progress` about each phase.
pub fn check(
    repo: &Repository,
    read_data: ReadData,
    progress: &dyn PhaseProgress,
) -> Result<CheckReport> {
    let mut r = CheckReport::default();
    let key = repo.master_key();

    // What is stored, not what a cache remembers of it.
    let crate::objects::IndexFiles {
        files,
        unreadable: bad_files,
    } = repo.index_files_from(false)?;
    let read = files.len() + bad_files.len();
    progress.phase("index files", read as u64, Unit::Items);
    progress.advance(read as u64);
    for u in bad_files {
        r.problem(
            ProblemKind::IndexFile,
            format!("index file {}", u.id.short()),
            u.reason,
        );
    }
    let active: HashMap<PackId, IndexedPack> =
        live_packs(&files).into_iter().map(|p| (p.id, p)).collect();
    let locks = repo.locks()?;
    for u in &locks.unreadable {
        r.problem(
            ProblemKind::Lock,
            format!("lock {}", u.id.short()),
            u.reason.clone(),
        );
    }
    let marked: Vec<_> = locks.marked().cloned().collect();
    let damaged: HashSet<(PackId, Id)> = locks.damaged().copied().collect();
    let stored: HashMap<PackId, u64> = repo
        .pack_files()?
        .into_iter()
        .map(|(id, l)| (id, l.size))
        .collect();
    r.packs = active.len();

    // Index entries point into existing packs of the recorded size. A pack
    // that is gone, or shorter than the index says, has lost the blobs it
    // no longer holds: they count as damaged from here on, and are recorded
    // so (below), so that no backup deduplicates against them.
    let mut sorted: Vec<&IndexedPack> = active.values().collect();
    sorted.sort_by_key(|p| p.id);
    let mut lost: Vec<(PackId, Id)> = Vec::new();
    for p in &sorted {
        match stored.get(&p.id) {
            None => lost.extend(p.blobs.iter().map(|b| (p.id, b.id))),
            Some(&size) if size != p.size => {
                let past: Vec<(PackId, Id)> = p
                    .blobs
                    .iter()
                    .filter(|b| b.offset as u64 + b.length as u64 > size)
                    .map(|b| (p.id, b.id))
                    .collect();
                let cut = match past.len() {
                    0 => String::new(),
                    n => format!("; {n} of its {} blobs lie past its end", p.blobs.len()),
                };
                // The name is the hash of the bytes the index was written
                // for: other bytes are damage, not an index mistake.
                r.problem(
                    ProblemKind::PackDamaged,
                    format!("pack {}", p.id.short()),
                    format!("{size} bytes stored, the index says {}{cut}", p.size),
                );
                lost.extend(past);
            }
            Some(_) => {}
        }
    }
    let mut bad: HashMap<Id, String> = HashMap::new();
    let waiting = marked
        .iter()
        .filter(|m| stored.contains_key(&m.pack.id) && !active.contains_key(&m.pack.id))
        .count();
    if waiting > 0 {
        r.notes.push(format!(
            "{waiting} pack(s) are marked for deletion and wait for the grace period of a later prune"
        ));
    }
    let marked_ids: HashSet<PackId> = marked.iter().map(|m| m.pack.id).collect();
    let loose = stored
        .keys()
        .filter(|id| !active.contains_key(id) && !marked_ids.contains(id))
        .count();
    r.unindexed_packs = loose;
    if loose > 0 {
        r.notes.push(format!(
            "{loose} pack(s) are in no index: left by an interrupted backup (prune removes them) \
             or written by one still running"
        ));
    }
    let temporary = repo.store().temporary_files(layout::DATA)?;
    for dir in layout::DIRS.iter().filter(|d| **d != layout::DATA) {
        let more = repo.store().temporary_files(dir)?;
        if !more.is_empty() {
            r.notes
                .push(format!("{} temporary file(s) under {dir}/", more.len()));
        }
    }
    if !temporary.is_empty() {
        r.notes.push(format!(
            "{} temporary file(s) under {}/ ({} bytes), left by writes that were interrupted \
             (prune removes them once they are an hour old)",
            temporary.len(),
            layout::DATA,
            temporary.iter().map(|t| t.size).sum::<u64>()
        ));
    }

    // Snapshots and every tree and chunk they need.
    let distrusted: HashSet<(PackId, Id)> = damaged.iter().chain(&lost).copied().collect();
    let index = readable_index(
        sorted.iter().copied(),
        marked.iter().filter(|m| stored.contains_key(&m.pack.id)),
        &distrusted,
    );
    // Damage matters while no intact copy exists: a backup that stored the
    // data again healed it.
    let is_healed = |pack: &PackId, blob: &Id| index.get(blob).is_some_and(|l| l.pack != *pack);
    let mut healed = 0;
    for (pack, blob) in &damaged {
        if !stored.contains_key(pack) {
            continue;
        }
        if is_healed(pack, blob) {
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
            "{healed} blob(s) found damaged earlier were stored again intact; `repair packs` and \
             prune remove the damaged copies"
        ));
    }
    for p in sorted.iter().filter(|p| !stored.contains_key(&p.id)) {
        let what = format!("pack {}", p.id.short());
        let gone: Vec<&Id> = p
            .blobs
            .iter()
            .map(|b| &b.id)
            .filter(|b| !is_healed(&p.id, b))
            .collect();
        if gone.is_empty() {
            r.notes.push(format!(
                "the index lists {what}, which is not in the store; each of its {} blob(s) is \
                 stored again elsewhere, and prune drops it from the index",
                p.blobs.len()
            ));
            continue;
        }
        r.problem(
            ProblemKind::PackMissing,
            &what,
            format!(
                "the index lists it, but it is not in the store; {} of its {} blob(s) have no \
                 other copy",
                gone.len(),
                p.blobs.len()
            ),
        );
        for b in gone {
            bad.entry(*b)
                .or_insert_with(|| format!("{what} is not in the store"));
        }
    }
    for (pack, blob) in lost.iter().filter(|(p, _)| stored.contains_key(p)) {
        if !is_healed(pack, blob) {
            bad.entry(*blob).or_insert_with(|| {
                format!(
                    "pack {} was cut short before blob {}",
                    pack.short(),
                    blob.short()
                )
            });
        }
    }
    let reader = BlobReader::new(key, &index, repo.store());
    let list = repo.snapshot_list_from(false)?;
    for u in &list.unreadable {
        r.problem(
            ProblemKind::Snapshot,
            format!("snapshot {} ({})", u.id.short(), u.path),
            u.reason.clone(),
        );
    }
    r.snapshots = list.entries.len();
    let used = walk::used_blobs(&reader, &list.entries, progress, true)?;
    r.trees = used.trees.len();
    r.data_blobs = used.data;
    for t in &used.bad_trees {
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
    let mut missing: Vec<&Id> = used.blobs.iter().filter(|id| !index.contains(id)).collect();
    missing.sort();
    for id in missing {
        r.problem(
            ProblemKind::BlobMissing,
            format!("blob {}", id.short()),
            "a snapshot needs it, and it is in no index",
        );
        bad.insert(*id, format!("blob {} is in no index", id.short()));
    }

    // Reading data: live packs, and marked ones that a snapshot still uses
    // (a prune would put them back; their damage matters just the same).
    let mut to_read: Vec<(PackId, Vec<hokan_core::PackedBlob>)> = sorted
        .iter()
        .filter(|p| stored.contains_key(&p.id))
        .map(|p| (p.id, p.blobs.clone()))
        .collect();
    // A snapshot reads a blob from the pack the index resolves it to; a
    // marked pack matters where that is it.
    let reads_from = |pack: &PackId, b: &hokan_core::PackedBlob| {
        used.blobs.contains(&b.id) && index.get(&b.id).is_some_and(|l| l.pack == *pack)
    };
    to_read.extend(
        marked
            .iter()
            .filter(|m| stored.contains_key(&m.pack.id) && !active.contains_key(&m.pack.id))
            .filter(|m| m.pack.blobs.iter().any(|b| reads_from(&m.pack.id, b)))
            .map(|m| (m.pack.id, m.pack.blobs.clone())),
    );
    match read_data {
        ReadData::None => to_read.clear(),
        ReadData::All => {}
        ReadData::Group { n, of } => to_read.retain(|(id, _)| id.0.0[0] as u32 % of == n - 1),
        ReadData::Share(share) => to_read.retain(|_| random_unit() < share),
        ReadData::Bytes(limit) => {
            to_read.sort_by_key(|_| random_u64());
            let mut total = 0u64;
            to_read.retain(|(id, _)| {
                let keep = total < limit;
                total += stored[id];
                keep
            });
        }
    }
    r.packs_read = to_read.len();
    r.bytes_read = to_read.iter().map(|(id, _)| stored[id]).sum();
    if !to_read.is_empty() {
        progress.phase("reading packs", r.bytes_read, Unit::Bytes);
    }
    let read_results: Vec<Result<PackFindings>> = to_read
        .par_iter()
        .map(|(id, indexed)| {
            let found = read_pack(repo, id, indexed);
            progress.advance(stored[id]);
            found
        })
        .collect();
    let mut found_damaged: Vec<(PackId, Id)> = lost
        .iter()
        .filter(|b| !damaged.contains(b))
        .copied()
        .collect();
    for (res, (pack, _)) in read_results.into_iter().zip(&to_read) {
        let what = format!("pack {}", pack.short());
        for (blob, message) in res? {
            r.problem(ProblemKind::PackDamaged, &what, message.clone());
            // A problem of the pack as a whole costs no blob by itself.
            let Some(b) = blob else { continue };
            if !damaged.contains(&(*pack, b)) {
                found_damaged.push((*pack, b));
            }
            // Only the copy snapshots read affects them.
            if used.blobs.contains(&b) && index.get(&b).is_some_and(|l| l.pack == *pack) {
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
        r.affected = walk::affected(&reader, &list.entries, &bad);
    }
    Ok(r)
}

/// What reading a pack found: each problem with the blob it concerns
/// (`None`: the pack as a whole, no blob lost by it).
type PackFindings = Vec<(Option<Id>, String)>;

/// Downloads a pack and checks all of it against its name, its header,
/// its blobs and the index's entries. Every blob that can be read is read,
/// by the header's list or, where the header cannot be used, by the
/// index's; only the blobs that fail are damaged. Returns each problem with
/// the blob it concerns; an unreachable store is an error.
fn read_pack(
    repo: &Repository,
    id: &PackId,
    indexed: &[hokan_core::PackedBlob],
) -> Result<PackFindings> {
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
    let listed: HashSet<(Id, u32, u32)> = scanned
        .blobs
        .iter()
        .map(|b| (b.id, b.offset, b.length))
        .collect();
    for b in indexed {
        if !listed.contains(&(b.id, b.offset, b.length)) {
            found.push((
                Some(b.id),
                format!(
                    "the index places blob {} at {}, the pack header does not",
                    b.id.short(),
                    b.offset
                ),
            ));
        }
    }
    Ok(found)
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_parse() {
        assert_eq!(
            ReadData::parse_subset("2/7").unwrap(),
            ReadData::Group { n: 2, of: 7 }
        );
        assert_eq!(
            ReadData::parse_subset("25%").unwrap(),
            ReadData::Share(0.25)
        );
        assert_eq!(
            ReadData::parse_subset("500M").unwrap(),
            ReadData::Bytes(500 << 20)
        );
        for bad in ["0/3", "4/3", "x/3", "0%", "150%", "12Q", ""] {
            assert!(ReadData::parse_subset(bad).is_err(), "{bad}");
        }
    }
}
