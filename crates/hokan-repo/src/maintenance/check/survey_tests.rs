//! The bounded survey against the in-memory one it replaced: random
//! repositories (packs indexed, gone, cut short, marked, in no index;
//! blobs in several packs; damaged copies; used blobs no pack holds)
//! surveyed both ways give the same findings, and the same blobs are read
//! from each pack.

use std::collections::{HashMap, HashSet};

use hokan_core::{BlobType, Id, Index, PackId, PackedBlob};
use proptest::prelude::*;

use super::super::readable_index;
use super::super::resolve::Resolver;
use super::plan::{CheckPlan, plan};
use super::survey::{CheckPack, Survey, absent, check_packs};
use super::{ReadData, survey::marked_in_order};
use crate::index_file::IndexedPack;
use crate::locks::MarkedPack;

/// What a test knows of a repository.
struct Parts {
    /// Indexed packs, in index order.
    active: Vec<IndexedPack>,
    /// As the markers list them.
    marked: Vec<MarkedPack>,
    damaged: HashSet<(PackId, Id)>,
    stored: HashMap<PackId, u64>,
    used: HashSet<Id>,
}

fn survey(p: &Parts) -> Survey {
    Survey {
        bad_index_files: Vec::new(),
        bad_locks: Vec::new(),
        active: Vec::new(),
        marked: p.marked.clone(),
        marked_live: HashSet::new(),
        damaged: p.damaged.clone(),
        read_at: HashMap::new(),
        stored: p.stored.clone(),
        temporary: Vec::new(),
        missing: Vec::new(),
        trees_index: Index::default(),
        entries: None,
        bad_snapshots: Vec::new(),
        snapshots: Vec::new(),
        trees: 0,
        data: 0,
        bad_trees: Vec::new(),
    }
}

impl Parts {
    /// The survey as check makes it, its sorts within `memory` bytes (at
    /// least 1024 records each).
    fn bounded(&self, memory: usize) -> Survey {
        let dir = std::env::temp_dir();
        let mut r = Resolver::for_check(&dir, memory, &self.damaged, true);
        for p in &self.active {
            r.add_indexed_sized(0, p, self.stored.get(&p.id).copied())
                .unwrap();
        }
        let indexed = r.settle(&HashSet::new()).into_iter().collect();
        for m in marked_in_order(&self.marked, &self.stored, &indexed) {
            r.add_marked(&m.pack).unwrap();
        }
        let mut used: Vec<Id> = self.used.iter().copied().collect();
        used.sort();
        let resolved = r.resolve(used.into_iter().map(Ok)).unwrap();
        Survey {
            active: check_packs(&resolved.active, resolved.details),
            marked_live: resolved.marked_live,
            read_at: resolved.winners,
            missing: resolved.missing,
            entries: resolved.entries,
            ..survey(self)
        }
    }

    /// The index check built before: every indexed pack by id, then
    /// every marked pack in the store (by id, as check now ranks them;
    /// before, in the markers' order).
    fn full(&self) -> (Vec<&IndexedPack>, Index) {
        let mut active: Vec<&IndexedPack> = self.active.iter().collect();
        active.sort_by_key(|p| p.id);
        let mut marked: Vec<&MarkedPack> = self
            .marked
            .iter()
            .filter(|m| self.stored.contains_key(&m.pack.id))
            .collect();
        marked.sort_by_key(|m| m.pack.id);
        let absent = absent(active.iter().copied(), &self.stored);
        let distrusted = self.damaged.union(&absent).copied().collect();
        let index = readable_index(active.iter().copied(), marked, &distrusted, &absent);
        (active, index)
    }

    /// Whether snapshots read `blob` from `pack`, by the old index.
    fn read_from(&self, full: &Index, pack: &PackId, blob: &Id) -> bool {
        self.used.contains(blob) && full.get(blob).is_some_and(|l| l.pack == *pack)
    }

    /// The survey as the old check's questions to its index answered it.
    fn reference(&self) -> Survey {
        let (active, full) = self.full();
        let gone = absent(active.iter().copied(), &self.stored);
        let healed = |p: &PackId, b: &Id| full.get(b).is_some_and(|l| l.pack != *p);
        let active_ids: HashSet<PackId> = active.iter().map(|p| p.id).collect();
        let mut missing: Vec<Id> = self
            .used
            .iter()
            .filter(|b| !full.contains(b))
            .copied()
            .collect();
        missing.sort();
        Survey {
            active: active
                .iter()
                .map(|p| CheckPack {
                    id: p.id,
                    size: p.size,
                    blobs: p.blobs.len(),
                    absent: (p.blobs.iter())
                        .filter(|b| gone.contains(&(p.id, b.id)))
                        .map(|b| (b.id, healed(&p.id, &b.id)))
                        .collect(),
                })
                .collect(),
            marked_live: (self.marked.iter())
                .filter(|m| self.stored.contains_key(&m.pack.id))
                .filter(|m| !active_ids.contains(&m.pack.id))
                .filter(|m| (m.pack.blobs.iter()).any(|b| self.read_from(&full, &m.pack.id, &b.id)))
                .map(|m| m.pack.id)
                .collect(),
            read_at: (self.damaged.iter())
                .filter_map(|(_, b)| Some((*b, full.get(b)?.pack)))
                .collect(),
            missing,
            ..survey(self)
        }
    }

    /// Each pack read in full with its entries, and whether snapshots
    /// read each blob from it, as the old check's index said.
    fn reference_reads(&self, read: &[PackId]) -> Vec<Vec<(PackedBlob, bool)>> {
        let (active, full) = self.full();
        let mut lists: HashMap<PackId, &IndexedPack> = HashMap::new();
        for p in active
            .into_iter()
            .chain(self.marked.iter().map(|m| &m.pack))
        {
            lists.entry(p.id).or_insert(p);
        }
        read.iter()
            .map(|id| {
                (lists[id].blobs.iter())
                    .map(|b| (*b, self.read_from(&full, id, &b.id)))
                    .collect()
            })
            .collect()
    }
}

/// The plan's findings, comparable.
fn findings(p: &CheckPlan) -> impl PartialEq + std::fmt::Debug {
    let mut bad: Vec<(&Id, &String)> = p.bad.iter().collect();
    bad.sort();
    (
        p.report.problems.clone(),
        p.report.notes.clone(),
        p.report.packs,
        p.report.unindexed_packs,
        bad.into_iter()
            .map(|(a, b)| (*a, b.clone()))
            .collect::<Vec<_>>(),
        p.record.clone(),
        p.read.clone(),
    )
}

/// Where a pack of the model is.
#[derive(Clone, Copy, Debug)]
enum Place {
    Indexed,
    IndexedGone,
    /// Stored with only its first `n` bytes past the header's start.
    IndexedShort(u32),
    Marked,
    MarkedGone,
    /// Both indexed and marked (an interrupted prune).
    IndexedMarked,
    Orphan,
}

fn place() -> impl Strategy<Value = Place> {
    prop_oneof![
        4 => Just(Place::Indexed),
        1 => Just(Place::IndexedGone),
        1 => (0u32..6000).prop_map(Place::IndexedShort),
        2 => Just(Place::Marked),
        1 => Just(Place::MarkedGone),
        1 => Just(Place::IndexedMarked),
        1 => Just(Place::Orphan),
    ]
}

/// A pack: where, a tree pack or not, (blob, plaintext, damaged copy).
type ModelPack = (Place, bool, Vec<(u8, u32, bool)>);

fn model() -> impl Strategy<Value = (Vec<ModelPack>, HashSet<u8>)> {
    let blobs = prop::collection::vec((0u8..16, 1u32..5000, prop::bool::weighted(0.15)), 1..6);
    let pack = (place(), prop::bool::weighted(0.2), blobs).prop_map(|(place, tree, mut b)| {
        b.sort_by_key(|b| b.0);
        b.dedup_by_key(|b| b.0);
        (place, tree, b)
    });
    (
        prop::collection::vec(pack, 1..9),
        // 16..20: in no pack.
        prop::collection::hash_set(0u8..20, 0..14),
    )
}

fn parts(packs: &[ModelPack], used: &HashSet<u8>) -> Parts {
    let blob_id = |b: u8| Id([b; 32]);
    let mut p = Parts {
        active: Vec::new(),
        marked: Vec::new(),
        damaged: HashSet::new(),
        stored: HashMap::new(),
        used: used.iter().map(|b| blob_id(*b)).collect(),
    };
    for (i, (place, tree, blobs)) in packs.iter().enumerate() {
        let mut offset = 8;
        let kind = if *tree {
            BlobType::Tree
        } else {
            BlobType::Data
        };
        let list = blobs
            .iter()
            .map(|&(b, raw_len, _)| {
                let length = raw_len / 2 + 40;
                offset += length;
                PackedBlob {
                    kind,
                    id: blob_id(b),
                    offset: offset - length,
                    length,
                    raw_len,
                }
            })
            .collect();
        // Packs listed in a scrambled order: the index's is not the ids'.
        let mut id = [0u8; 32];
        (id[0], id[1]) = ((i * 37 % 256) as u8, i as u8);
        let id = PackId(Id(id));
        let ip = IndexedPack::from_blobs(id, offset as u64 + 100, list);
        for &(b, _, bad) in blobs {
            if bad {
                p.damaged.insert((id, blob_id(b)));
            }
        }
        let size = match place {
            Place::IndexedGone | Place::MarkedGone => None,
            Place::IndexedShort(n) => Some((8 + *n as u64).min(ip.size - 1)),
            _ => Some(ip.size),
        };
        if let Some(size) = size {
            p.stored.insert(id, size);
        }
        let marked = MarkedPack {
            marked_at: 0,
            pack: ip.clone(),
        };
        match place {
            Place::Marked | Place::MarkedGone => p.marked.push(marked),
            Place::IndexedMarked => {
                p.marked.push(marked);
                p.active.push(ip);
            }
            Place::Orphan => {}
            _ => p.active.push(ip),
        }
    }
    p
}

fn compare(parts: &Parts, memory: usize) -> Result<(), TestCaseError> {
    let (bounded, reference) = (parts.bounded(memory), parts.reference());
    prop_assert_eq!(&bounded.active, &reference.active);
    prop_assert_eq!(&bounded.marked_live, &reference.marked_live);
    prop_assert_eq!(&bounded.read_at, &reference.read_at);
    prop_assert_eq!(&bounded.missing, &reference.missing);
    for read in [ReadData::All, ReadData::None, ReadData::Bytes(3000)] {
        let (b, r) = (plan(&bounded, read, 7), plan(&reference, read, 7));
        prop_assert_eq!(findings(&b), findings(&r));
    }
    // The blobs each pack read in full loses, as affecting snapshots.
    let read = plan(&bounded, ReadData::All, 7).read;
    let entries = bounded.entries.as_ref().expect("kept");
    let got: Vec<Vec<(PackedBlob, bool)>> =
        read.iter().map(|id| entries.get(id).unwrap()).collect();
    prop_assert_eq!(got, parts.reference_reads(&read));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Check's bounded survey finds what its in-memory index found.
    #[test]
    fn the_bounded_survey_is_the_in_memory_one((packs, used) in model()) {
        compare(&parts(&packs, &used), 0)?;
    }
}

/// Thousands of copies, so that every sort spills several runs and
/// merges them: the same findings.
#[test]
fn the_bounded_survey_agrees_when_it_spills() {
    let mut next = crate::maintenance::below();
    let places = [
        Place::Indexed,
        Place::Indexed,
        Place::Indexed,
        Place::IndexedGone,
        Place::IndexedShort(3000),
        Place::Marked,
        Place::MarkedGone,
        Place::IndexedMarked,
    ];
    let mut packs = Vec::new();
    for _ in 0..60 {
        let place = places[next(places.len() as u64) as usize];
        let blobs = (0..150)
            .map(|_| (next(250) as u8, 1 + next(4000) as u32, next(50) == 0))
            .collect::<Vec<_>>();
        packs.push((place, false, blobs));
    }
    // Ids repeat within a pack here: keep each pack's first.
    for p in &mut packs {
        let mut seen = HashSet::new();
        p.2.retain(|b| seen.insert(b.0));
    }
    let used: HashSet<u8> = (0..=255u8).filter(|_| next(3) > 0).collect();
    let parts = parts(&packs, &used);
    assert!(parts.active.iter().map(|p| p.blobs.len()).sum::<usize>() > 3000);
    compare(&parts, 0).unwrap();
}
