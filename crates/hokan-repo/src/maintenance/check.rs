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
//!
//! Like prune, check holds no entry a blob: the index's copies and the
//! used blobs go through external sorts (see `resolve`), within
//! [`CheckOptions::max_memory`].

use super::PhaseProgress;
use super::walk::Affected;
use crate::error::{Error, Result};
use crate::repository::Repository;

mod execute;
mod plan;
mod survey;
#[cfg(test)]
mod survey_tests;

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

/// Check settings.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Which packs to read in full.
    pub read_data: ReadData,
    /// About how much memory the survey's sorts may hold (bytes); beyond
    /// it they spill sorted runs to temporary files. Check's memory then
    /// grows with the packs, the trees and the problems, not with the
    /// blobs.
    pub max_memory: usize,
    /// Where those temporary files go (never the repository): by default
    /// the repository's cache directory, or the system's temporary one.
    pub temp_dir: Option<std::path::PathBuf>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            read_data: ReadData::None,
            max_memory: super::DEFAULT_MAX_MEMORY,
            temp_dir: None,
        }
    }
}

impl CheckOptions {
    /// The directory spill files go to.
    pub(crate) fn spill_dir(&self, repo: &Repository) -> std::path::PathBuf {
        super::prune::spill_dir(self.temp_dir.as_deref(), repo)
    }
}

/// Checks a repository with the default settings, reading `read_data`;
/// see [`check_with`].
pub fn check(
    repo: &Repository,
    read_data: ReadData,
    progress: &dyn PhaseProgress,
) -> Result<CheckReport> {
    let options = CheckOptions {
        read_data,
        ..Default::default()
    };
    check_with(repo, &options, progress)
}

/// Checks a repository, telling `progress` about each phase: survey (the
/// index, the locks, the store's listing, every snapshot's trees), plan
/// (the problems those show, and which packs to read), execute (read them,
/// record the damage found, name the files it affects).
pub fn check_with(
    repo: &Repository,
    options: &CheckOptions,
    progress: &dyn PhaseProgress,
) -> Result<CheckReport> {
    let survey = survey::survey(repo, options, progress)?;
    let plan = plan::plan(&survey, options.read_data, random_u64());
    execute::execute(repo, &survey, plan, progress)
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
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
