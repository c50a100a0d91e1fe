//! Test support: a model-based fault harness, in the spirit of redb's
//! fuzzer. Random sequences of backup, forget, prune, check, repair and
//! restore run against a [`FaultyStore`] that fails, tears, delays or runs
//! out of space after a countdown; beside them runs a plain model of which
//! snapshots must restore and to what. After every step the faults are
//! cleared (the process "restarts") and the repository is checked and, where
//! check says so, repaired; then every snapshot of the model must restore bit
//! for bit. A snapshot of the model that does not is data lost.
//!
//! Between steps, damage may strike: a byte of a pack flipped, a pack cut
//! short or deleted, an index file deleted. A ledger records which copies
//! of which blobs each destroyed; an object that depends on a blob with no
//! intact copy left is lost to the damage, and counted. Every other object
//! must still restore bit for bit, across check, repair, prune and the next
//! backup (which heals what it stores again): one that does not is lost
//! beyond the damaged bytes, a violation. No object ever restores to wrong
//! bytes.
//!
//! `tests/fault_model.rs` runs a few sequences in every test run;
//! `examples/fault_harness.rs` runs them for a stated time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hokan_core::sample::{Kind, SplitMix64, generate};
use hokan_core::{ChunkerParams, Id, Node};
use object_store::memory::InMemory;

use crate::config::InitOptions;
use crate::error::Error;
use crate::faults::{Fault, Faults, FaultyStore};
use crate::keys::KdfParams;
use crate::maintenance::{self, ProblemKind, PruneOptions, ReadData};
use crate::repository::{CacheMode, OpenOptions, Repository};
use crate::retention::{Count, GroupBy, Policy};
use crate::session::{SnapshotSpec, Staged};
use crate::snapshot::SourceKind;
use crate::store::{RetryPolicy, Store};

mod damage;
pub use damage::DamageKind;

/// One operation of a sequence.
#[derive(Clone, Debug)]
pub enum Op {
    /// Back up a set of objects derived from `seed`, sharing most of its
    /// objects with the sets of neighbouring seeds.
    Backup {
        /// Which set of objects.
        seed: u64,
    },
    /// Keep only the newest `keep` snapshots.
    Forget {
        /// How many to keep.
        keep: u32,
    },
    /// Prune, with or without waiting for the grace period.
    Prune {
        /// Delete at once instead of marking.
        instant: bool,
    },
    /// Check, reading every pack.
    Check,
    /// Rebuild the index from the packs.
    RepairIndex,
    /// Salvage damaged packs.
    RepairPacks,
    /// Restore the `n`-th snapshot of the model.
    Restore {
        /// Which snapshot of the model.
        n: usize,
    },
    /// A backup that loaded its index before a prune that runs while it
    /// stores its data.
    BackupBesidePrune {
        /// Which set of objects.
        seed: u64,
        /// Whether the prune deletes at once.
        instant: bool,
    },
    /// Damage to the stored data (never under a fault).
    Damage {
        /// What is done.
        kind: DamageKind,
        /// Which pack or index file (modulo how many there are).
        pick: u64,
        /// Where in it (modulo its length).
        at: u64,
    },
}

/// One step: an operation, and the fault armed while it runs (the number
/// of writes that succeed first, and what happens then).
#[derive(Clone, Debug)]
pub struct Step {
    /// The operation.
    pub op: Op,
    /// The fault, if any.
    pub fault: Option<(i64, Fault)>,
    /// Whether every write is slowed down (1 ms), for interleavings.
    pub slow: bool,
    /// After the step the operator only checks (which records what it
    /// finds) and repairs nothing: the next steps, a prune say, meet
    /// damage that is recorded but not salvaged.
    pub check_only: bool,
}

/// What a run of sequences found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Sequences run.
    pub sequences: u64,
    /// Steps run.
    pub steps: u64,
    /// Faults that actually happened.
    pub faults: u64,
    /// Snapshots saved and checked.
    pub snapshots: u64,
    /// Repairs check asked for and the harness ran.
    pub repairs: u64,
    /// Damage steps that damaged something.
    pub damage: u64,
    /// Object restores that failed because damage took their data (no
    /// intact copy of a blob they need was left): lost to the damage, as
    /// expected, not beyond it.
    pub lost_to_damage: u64,
    /// Every snapshot of the model that did not restore, and every broken
    /// promise (a failed backup that left a snapshot, a check that repairs
    /// could not make clean): the aim is none.
    pub violations: Vec<String>,
}

/// The objects of backup `seed`: 12 objects, most shared with seeds nearby
/// (object `i` changes every `i + 1` seeds), small ones compressed in
/// groups and a few large ones cut into chunks.
pub fn objects(seed: u64) -> Vec<(String, Vec<u8>)> {
    (0..12u64)
        .map(|i| {
            let version = seed / (i + 1);
            let len = match i % 4 {
                0 => 300_000,
                1 => 40_000,
                2 => 2_000,
                _ => 9_000,
            };
            let kind = if i % 2 == 0 { Kind::Random } else { Kind::Text };
            (
                format!("o{i}"),
                generate(kind, len, i * 1_000_003 + version),
            )
        })
        .collect()
}

fn init_options() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        chunker: ChunkerParams::new(16 << 10, 32 << 10, 128 << 10).expect("valid sizes"),
        pack_size: 128 << 10,
        ..Default::default()
    }
}

fn open_options() -> OpenOptions {
    OpenOptions {
        cache: CacheMode::Off,
        retry: RetryPolicy {
            attempts: 1,
            first_backoff: Duration::from_millis(1),
        },
        ..Default::default()
    }
}

/// The harness's repository and model.
struct World {
    store: Store,
    faults: Arc<Faults>,
    /// Snapshot id → what it holds.
    model: BTreeMap<Id, Saved>,
    /// What damage destroyed.
    ledger: damage::Ledger,
    report: Report,
}

/// A snapshot of the model: the seed its objects came from, and the blobs
/// each object needs (its chunks and the snapshot's tree).
#[derive(Clone, Debug)]
struct Saved {
    seed: u64,
    tree: Id,
    chunks: Vec<Vec<Id>>,
}

/// Stores the objects of `seed` in a session; returns the chunks of each.
fn store_objects(
    s: &crate::session::Session<'_>,
    seed: u64,
) -> crate::Result<(Staged, Vec<Vec<Id>>)> {
    let mut nodes = Vec::new();
    let mut chunks = Vec::new();
    for (name, data) in objects(seed) {
        let content = s.store_bytes(&data)?;
        chunks.push(content.iter().map(|c| c.id.0).collect());
        nodes.push(Node::object(name, content, Vec::new()));
    }
    Ok((Staged::new(s.store_tree(nodes)?), chunks))
}

impl World {
    fn open(&self) -> crate::Result<Repository> {
        Repository::open_store(self.store.clone(), b"pw", open_options())
    }

    fn backup(&self, seed: u64) -> crate::Result<(Id, Saved)> {
        let mut repo = self.open()?.load_index()?;
        let saved = repo.backup(SnapshotSpec::new(SourceKind::STREAM), |s| {
            store_objects(s, seed)
        })?;
        let model = Saved {
            seed,
            tree: saved.entry.snapshot.tree.0,
            chunks: saved.value,
        };
        Ok((saved.entry.id, model))
    }

    /// Whether snapshot `id` restores to its objects: every object that
    /// fails must have lost data to damage (those are counted), and none
    /// may restore to other bytes.
    fn restores(&mut self, id: &Id, saved: &Saved) -> Result<(), String> {
        let repo = self
            .open()
            .and_then(|r| r.load_index())
            .map_err(|e| format!("opening: {e}"))?;
        let lost = self
            .ledger
            .lost(&repo)
            .map_err(|e| format!("listing what damage took: {e}"))?;
        let entry = repo
            .find_snapshot(&id.to_hex(), &Default::default())
            .map_err(|e| format!("snapshot {}: {e}", id.short()))?;
        let tree_lost = lost.contains(&saved.tree);
        for ((name, want), chunks) in objects(saved.seed).into_iter().zip(&saved.chunks) {
            let mut got = Vec::new();
            match repo.dump(&entry.snapshot, &name, &mut got) {
                Ok(_) if got == want => {}
                Ok(_) => {
                    return Err(format!(
                        "snapshot {} object {name} restores to other bytes",
                        id.short()
                    ));
                }
                Err(_) if tree_lost || chunks.iter().any(|c| lost.contains(c)) => {
                    self.report.lost_to_damage += 1;
                }
                Err(e) => {
                    return Err(format!(
                        "snapshot {} object {name} (lost beyond the damaged bytes): {e}",
                        id.short()
                    ));
                }
            }
        }
        Ok(())
    }

    fn run(&mut self, step: &Step) {
        self.report.steps += 1;
        if let Some((after, fault)) = step.fault {
            self.faults.arm(after, fault);
        }
        if step.slow {
            self.faults.delay(Duration::from_millis(1));
        }
        let before: Vec<Id> = self.listed();
        match &step.op {
            Op::Backup { seed } => match self.backup(*seed) {
                Ok((id, saved)) => {
                    self.model.insert(id, saved);
                }
                Err(_) => {
                    self.faults.clear();
                    let new: Vec<Id> = self
                        .listed()
                        .into_iter()
                        .filter(|id| !before.contains(id))
                        .collect();
                    if !new.is_empty() {
                        self.report
                            .violations
                            .push(format!("a failed backup left snapshot(s) {new:?}"));
                    }
                }
            },
            Op::Forget { keep } => {
                let policy = Policy {
                    last: Some(Count::Up(*keep)),
                    ..Default::default()
                };
                let all_one_group = GroupBy {
                    host: false,
                    paths: false,
                    tags: false,
                };
                let r = self
                    .open()
                    .and_then(|r| r.forget(&policy, all_one_group, &Default::default(), false));
                self.faults.clear();
                // Whatever forget removed (all of it, or some before a
                // fault) leaves the model: it was asked to go.
                if r.is_ok() || step.fault.is_some() {
                    let now = self.listed();
                    self.model.retain(|id, _| now.contains(id));
                }
            }
            Op::Prune { instant } => {
                let options = PruneOptions {
                    instant_delete: *instant,
                    grace: Duration::ZERO,
                    ..Default::default()
                };
                let _ = self.open().and_then(|r| maintenance::prune(r, &options));
            }
            Op::Check => {
                let _ = self
                    .open()
                    .and_then(|r| maintenance::check(&r, ReadData::All, &()));
            }
            Op::RepairIndex => {
                let _ = self.open().and_then(|r| maintenance::repair_index(&r));
            }
            Op::RepairPacks => {
                let _ = self
                    .open()
                    .and_then(|r| maintenance::repair_packs(r, None, &()));
            }
            Op::Restore { n } => {
                if let Some((id, saved)) = self.model.iter().nth(n % self.model.len().max(1)) {
                    let (id, saved) = (*id, saved.clone());
                    // Under a fault a restore may fail; without one it must not.
                    if let Err(e) = self.restores(&id, &saved)
                        && step.fault.is_none()
                    {
                        self.report.violations.push(format!("restore: {e}"));
                    }
                }
            }
            Op::Damage { kind, pick, at } => {
                match self
                    .open()
                    .and_then(|r| self.ledger.apply(&r, *kind, *pick, *at))
                {
                    Ok(done) => self.report.damage += done as u64,
                    Err(e) => self.report.violations.push(format!("damaging: {e}")),
                }
            }
            Op::BackupBesidePrune { seed, instant } => {
                if let Err(e) = self.beside(*seed, *instant) {
                    self.faults.clear();
                    let new: Vec<Id> = self
                        .listed()
                        .into_iter()
                        .filter(|id| !before.contains(id))
                        .collect();
                    if step.fault.is_none() || !new.is_empty() {
                        self.report
                            .violations
                            .push(format!("backup beside prune: {e} (new snapshots {new:?})"));
                    }
                }
            }
        }
        if self.faults.tripped() {
            self.report.faults += 1;
        }
        self.faults.clear();
        self.recover(step.check_only);
        // Unrepaired, the repository may not restore what a repair would
        // bring back (a lost index file): the next step's recovery repairs,
        // and verifies.
        if !step.check_only {
            self.verify();
        }
    }

    /// A backup paused after loading its index while a prune runs. Its
    /// error, unless it was the expected one (a prune removed what it
    /// needed, and it saved nothing).
    fn beside(&mut self, seed: u64, instant: bool) -> Result<(), Error> {
        let (loaded, go) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        let store = self.store.clone();
        let result = std::thread::scope(|s| {
            let backup = s.spawn(|| {
                let repo = Repository::open_store(store.clone(), b"pw", open_options())
                    .and_then(|r| r.load_index());
                loaded.wait();
                go.wait();
                let mut repo = repo?;
                repo.backup(SnapshotSpec::new(SourceKind::STREAM), |s| {
                    store_objects(s, seed)
                })
            });
            loaded.wait();
            let options = PruneOptions {
                instant_delete: instant,
                grace: Duration::ZERO,
                ..Default::default()
            };
            let _ = self.open().and_then(|r| maintenance::prune(r, &options));
            go.wait();
            backup.join().expect("the backup thread panicked")
        });
        match result {
            Ok(saved) => {
                let model = Saved {
                    seed,
                    tree: saved.entry.snapshot.tree.0,
                    chunks: saved.value,
                };
                self.model.insert(saved.entry.id, model);
                Ok(())
            }
            Err(Error::RemovedDuringBackup { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn listed(&self) -> Vec<Id> {
        self.open()
            .and_then(|r| r.snapshot_list())
            .map(|l| l.entries.iter().map(|e| e.id).collect())
            .unwrap_or_default()
    }

    /// What an operator would do after a crash: check, and run the repair
    /// check asks for, until check is clean (or, with `check_only`, only
    /// check).
    fn recover(&mut self, check_only: bool) {
        // The process restarted: the locks its operations left (a lock
        // whose removal failed under the fault) belong to no one now.
        if let Ok(repo) = self.open() {
            let _ = repo.remove_locks(false);
        }
        for round in 0..3 {
            let Ok(repo) = self.open() else {
                self.report
                    .violations
                    .push("the repository does not open".into());
                return;
            };
            let r = match maintenance::check(&repo, ReadData::All, &()) {
                Ok(r) => r,
                Err(e) => {
                    self.report.violations.push(format!("check failed: {e}"));
                    return;
                }
            };
            if r.is_ok() || check_only {
                return;
            }
            if round == 2 {
                // Damage that took data leaves problems no repair can
                // clear: until a backup stores the data again, or the
                // snapshots that need it are forgotten, check names them.
                let explained = self.ledger.lost(&repo).is_ok_and(|l| !l.is_empty());
                if !explained {
                    self.report
                        .violations
                        .push(format!("repairs left problems: {:?}", r.problems));
                }
                return;
            }
            self.report.repairs += 1;
            // Snapshot files a failed backup tore: never reported saved.
            if let Ok(list) = repo.snapshot_list() {
                for u in list.unreadable {
                    if self.model.contains_key(&u.id) {
                        self.report
                            .violations
                            .push(format!("saved snapshot {} is unreadable", u.id.short()));
                        self.model.remove(&u.id);
                    }
                    let _ = repo.delete_snapshot(&u.id);
                }
            }
            if r.has(ProblemKind::Lock) {
                let _ = repo.remove_locks(true);
            }
            if r.has(ProblemKind::IndexFile)
                || r.has(ProblemKind::BlobMissing)
                || r.has(ProblemKind::PackMismatch)
            {
                let _ = maintenance::repair_index(&repo);
            }
            if r.has(ProblemKind::PackDamaged) || r.has(ProblemKind::BlobDamaged) {
                let _ = self
                    .open()
                    .and_then(|r| maintenance::repair_packs(r, None, &()));
            }
        }
    }

    fn verify(&mut self) {
        let model: Vec<(Id, Saved)> = self.model.iter().map(|(k, v)| (*k, v.clone())).collect();
        for (id, saved) in model {
            if let Err(e) = self.restores(&id, &saved) {
                self.report.violations.push(format!("data lost: {e}"));
                self.model.remove(&id);
            }
        }
    }
}

/// Runs one sequence on a fresh repository; returns what it found.
pub fn run_sequence(steps: &[Step]) -> Report {
    let faults = Faults::new();
    let store = FaultyStore::new(Arc::new(InMemory::new()), faults.clone()).store("fault-model");
    let mut world = World {
        store: store.clone(),
        faults,
        model: BTreeMap::new(),
        ledger: damage::Ledger::default(),
        report: Report {
            sequences: 1,
            ..Default::default()
        },
    };
    if let Err(e) = Repository::init_store(store, b"pw", init_options(), open_options()) {
        world.report.violations.push(format!("init: {e}"));
        return world.report;
    }
    let mut saved = std::collections::HashSet::new();
    for step in steps {
        world.run(step);
        saved.extend(world.model.keys().copied());
    }
    world.recover(false);
    world.verify();
    world.report.snapshots = saved.len() as u64;
    world.report
}

/// A random step.
pub fn random_step(rng: &mut SplitMix64) -> Step {
    let r = |rng: &mut SplitMix64, n: u64| rng.next_u64() % n;
    let op = match r(rng, 14) {
        0..=3 => Op::Backup { seed: r(rng, 24) },
        4 => Op::Forget {
            keep: 1 + r(rng, 3) as u32,
        },
        5 | 6 => Op::Prune {
            instant: r(rng, 2) == 0,
        },
        7 => Op::Check,
        8 => Op::RepairIndex,
        9 => Op::RepairPacks,
        10 => Op::Restore {
            n: r(rng, 8) as usize,
        },
        11 => Op::BackupBesidePrune {
            seed: r(rng, 24),
            instant: r(rng, 2) == 0,
        },
        _ => Op::Damage {
            kind: match r(rng, 4) {
                0 => DamageKind::Flip,
                1 => DamageKind::Truncate,
                2 => DamageKind::DeletePack,
                _ => DamageKind::DeleteIndexFile,
            },
            pick: rng.next_u64(),
            at: rng.next_u64(),
        },
    };
    // Damage strikes between steps, never under a fault.
    let damage = matches!(op, Op::Damage { .. });
    let fault = (!damage && r(rng, 10) < 6).then(|| {
        let kind = match r(rng, 4) {
            0 => Fault::Fail,
            1 => Fault::Tear,
            2 => Fault::NoSpace,
            _ => Fault::Outage,
        };
        (r(rng, 8) as i64, kind)
    });
    Step {
        op,
        fault,
        slow: r(rng, 20) == 0,
        check_only: r(rng, 3) == 0,
    }
}

/// Runs random sequences of `steps` steps from `seed` until `deadline`
/// (or `sequences` of them); returns the totals.
pub fn run_random(
    seed: u64,
    sequences: u64,
    steps: usize,
    deadline: Option<std::time::Instant>,
) -> Report {
    let mut rng = SplitMix64::new(seed);
    let mut total = Report::default();
    for i in 0..sequences {
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
        let seq: Vec<Step> = (0..steps).map(|_| random_step(&mut rng)).collect();
        let r = run_sequence(&seq);
        total.sequences += 1;
        total.steps += r.steps;
        total.faults += r.faults;
        total.snapshots += r.snapshots;
        total.repairs += r.repairs;
        total.damage += r.damage;
        total.lost_to_damage += r.lost_to_damage;
        total.violations.extend(
            r.violations
                .into_iter()
                .map(|v| format!("sequence {i} (seed {seed}): {v}")),
        );
    }
    total
}
