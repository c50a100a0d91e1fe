//! Check: find every problem in a repository, not only the first.
//!
//! The structure check reads index files, markers, the pack listing and
//! every snapshot's trees: each tree and chunk a snapshot needs must be in
//! the index, and each index entry must point into an existing pack of the
//! right size. Reading data (all packs, or a subset) downloads packs,
//! checks each against its name, opens its header and every blob (which
//! authenticates, decompresses and hashes it), and compares the header
//! with the index.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use hokan_core::{BlobReader, BlobType, Id, PackId, PackReader, Tree, TreeId};

use super::{PhaseProgress, Unit, readable_index};
use crate::error::{Error, Result};
use crate::index_file::{IndexFile, IndexedPack, live_packs};
use crate::object::{self, Kind};
use crate::repo::{Repository, pack_path};
use crate::snapshot::Snapshot;

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
        let n = crate::parse_size(s).map_err(|e| bad(&e))?;
        Ok(ReadData::Bytes(n))
    }
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
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
    /// Facts that are not problems (packs awaiting prune).
    pub notes: Vec<String>,
    /// Snapshots checked.
    pub snapshots: usize,
    /// Distinct trees checked.
    pub trees: usize,
    /// Distinct data blobs referenced.
    pub data_blobs: usize,
    /// Packs in the index.
    pub packs: usize,
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
}

fn problem(object: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        object: object.into(),
        message: message.into(),
    }
}

/// Checks a repository, telling `progress` about each phase.
pub fn check(
    repo: &Repository,
    read: ReadData,
    progress: &dyn PhaseProgress,
) -> Result<CheckReport> {
    let mut r = CheckReport::default();
    let key = repo.master_key();

    // Index files, one by one, so a damaged file is a problem, not the end.
    let ids = repo.list_ids("index")?;
    let paths: Vec<String> = ids
        .iter()
        .map(|id| format!("index/{}", id.to_hex()))
        .collect();
    let mut files: Vec<(Id, IndexFile)> = Vec::new();
    progress.phase("index files", ids.len() as u64, Unit::Items);
    for (id, got) in ids.iter().zip(repo.store().get_many(&paths, 16)) {
        progress.advance(1);
        let what = format!("index file {}", id.short());
        match got {
            Ok(Some(bytes)) if object::object_id(&bytes) != *id => r
                .problems
                .push(problem(&what, "its content does not match its name")),
            Ok(Some(bytes)) => match object::open::<IndexFile>(key, Kind::Index, &bytes, &what) {
                Ok(f) => files.push((*id, f)),
                Err(e) => r.problems.push(problem(&what, e.to_string())),
            },
            Ok(None) => {}
            Err(e) => r.problems.push(problem(&what, e.to_string())),
        }
    }
    let active: HashMap<PackId, IndexedPack> =
        live_packs(&files).into_iter().map(|p| (p.id, p)).collect();
    let marked = match repo.marked_packs() {
        Ok(m) => m,
        Err(e) => {
            r.problems.push(problem("locks", e.to_string()));
            Vec::new()
        }
    };
    let stored: HashMap<PackId, u64> = repo
        .pack_files()?
        .into_iter()
        .map(|(id, l)| (id, l.size))
        .collect();
    r.packs = active.len();

    // Index entries point into existing packs of the recorded size.
    let mut sorted: Vec<&IndexedPack> = active.values().collect();
    sorted.sort_by_key(|p| p.id);
    for p in &sorted {
        let what = format!("pack {}", p.id.short());
        match stored.get(&p.id) {
            None => r.problems.push(problem(
                &what,
                "the index lists it, but it is not in the store",
            )),
            Some(&size) => {
                if size != p.size {
                    r.problems.push(problem(
                        &what,
                        format!("{size} bytes stored, the index says {}", p.size),
                    ));
                }
                if let Some(b) = p
                    .blobs
                    .iter()
                    .find(|b| b.offset as u64 + b.length as u64 > size)
                {
                    r.problems.push(problem(
                        &what,
                        format!("blob {} lies beyond the pack's end", b.id.short()),
                    ));
                }
            }
        }
    }
    let waiting = marked
        .iter()
        .filter(|m| stored.contains_key(&m.pack.id) && !active.contains_key(&m.pack.id))
        .count();
    if waiting > 0 {
        r.notes.push(format!("{waiting} pack(s) are marked for deletion and wait for the grace period of a later prune"));
    }
    let marked_ids: HashSet<PackId> = marked.iter().map(|m| m.pack.id).collect();
    let loose = stored
        .keys()
        .filter(|id| !active.contains_key(id) && !marked_ids.contains(id))
        .count();
    if loose > 0 {
        r.notes.push(format!(
            "{loose} pack(s) are in no index: left by an interrupted backup (prune removes them) \
             or written by one still running"
        ));
    }

    // Snapshots and every tree and chunk they need.
    let index = readable_index(
        sorted.iter().copied(),
        marked.iter().filter(|m| stored.contains_key(&m.pack.id)),
    );
    let reader = BlobReader::new(key, &index, repo.store());
    let snap_ids = repo.list_ids("snapshots")?;
    let snap_paths: Vec<String> = snap_ids
        .iter()
        .map(|id| format!("snapshots/{}", id.to_hex()))
        .collect();
    let mut seen_trees: HashSet<TreeId> = HashSet::new();
    let mut data: HashSet<Id> = HashSet::new();
    let mut missing_data: HashSet<Id> = HashSet::new();
    progress.phase("snapshots", snap_ids.len() as u64, Unit::Items);
    for (id, got) in snap_ids.iter().zip(repo.store().get_many(&snap_paths, 16)) {
        progress.advance(1);
        let what = format!("snapshot {}", id.short());
        let snap: Snapshot = match got {
            Ok(Some(b)) => match object::open(key, Kind::Snapshot, &b, &what) {
                Ok(s) => s,
                Err(e) => {
                    r.problems.push(problem(&what, e.to_string()));
                    continue;
                }
            },
            Ok(None) => continue,
            Err(e) => {
                r.problems.push(problem(&what, e.to_string()));
                continue;
            }
        };
        r.snapshots += 1;
        let mut todo = vec![(snap.tree, std::path::PathBuf::from("/"))];
        while let Some((t, path)) = todo.pop() {
            if !seen_trees.insert(t) {
                continue;
            }
            let tree = match reader
                .read_blob(BlobType::Tree, &t.0)
                .and_then(|b| Tree::decode(&b, &t))
            {
                Ok(tree) => tree,
                Err(e) => {
                    r.problems.push(problem(
                        format!("tree {} ({} in {what})", t.short(), path.display()),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            for n in tree.nodes {
                let p = path.join(std::ffi::OsStr::new(&*n.name_lossy()));
                for c in &n.content {
                    if data.insert(c.id.0)
                        && !index.contains(&c.id.0)
                        && missing_data.insert(c.id.0)
                    {
                        r.problems.push(problem(
                            format!("chunk {}", c.id.short()),
                            format!("{} in {what} needs it, and it is in no index", p.display()),
                        ));
                    }
                }
                if let Some(sub) = n.subtree {
                    todo.push((sub, p));
                }
            }
        }
    }
    r.trees = seen_trees.len();
    r.data_blobs = data.len();

    // Reading data.
    let mut to_read: Vec<(PackId, Vec<hokan_core::PackedBlob>)> = sorted
        .iter()
        .filter(|p| stored.contains_key(&p.id))
        .map(|p| (p.id, p.blobs.clone()))
        .collect();
    match read {
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
    let read_problems: Vec<Vec<Problem>> = to_read
        .par_iter()
        .map(|(id, indexed)| {
            let found = read_pack(repo, id, indexed);
            progress.advance(stored[id]);
            found
        })
        .collect();
    r.problems.extend(read_problems.into_iter().flatten());
    Ok(r)
}

/// Downloads a pack and checks all of it against its name, its header,
/// its blobs and the index's entries.
fn read_pack(repo: &Repository, id: &PackId, indexed: &[hokan_core::PackedBlob]) -> Vec<Problem> {
    let what = format!("pack {}", id.short());
    let key = repo.master_key();
    let bytes = match repo.store().get(&pack_path(id)) {
        Ok(b) => b,
        Err(e) => return vec![problem(&what, e.to_string())],
    };
    let reader = match PackReader::open(&bytes, Some(id), key) {
        Ok(r) => r,
        Err(e) => return vec![problem(&what, e.to_string())],
    };
    let mut found = Vec::new();
    for b in reader.blobs() {
        if let Err(e) = reader.read(key, b) {
            found.push(problem(&what, e.to_string()));
        }
    }
    let header: HashSet<(Id, u32, u32)> = reader
        .blobs()
        .iter()
        .map(|b| (b.id, b.offset, b.length))
        .collect();
    for b in indexed {
        if !header.contains(&(b.id, b.offset, b.length)) {
            found.push(problem(
                &what,
                format!(
                    "the index places blob {} at {}, the pack header does not",
                    b.id.short(),
                    b.offset
                ),
            ));
        }
    }
    found
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
