//! Prune's plan: what becomes of every pack, decided from the survey and
//! the options alone. A dry run returns it; a real run carries out exactly
//! it.

use hokan_core::{Id, PackId};

use super::super::resolve::PackSummary;
use super::PruneOptions;
use super::survey::{Survey, marked_in_order};

/// What a prune does with every pack it knows of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrunePlan {
    /// Indexed packs that stay as they are.
    pub keep: Vec<PackId>,
    /// Indexed packs no snapshot reads from: they leave the index and are
    /// marked for deletion (at once deleted, with instant deletion).
    pub mark: Vec<PackId>,
    /// Mostly unused packs: their live blobs are copied into new packs,
    /// then they are marked.
    pub repack: Vec<PackId>,
    /// Marked packs a snapshot reads from again: put back into the index.
    pub resurrect: Vec<PackId>,
    /// Packs deleted: marked ones whose grace period passed, and packs in
    /// no index old enough not to belong to a running backup.
    pub delete: Vec<PackId>,
    /// Marked packs that wait for their grace period.
    pub wait: Vec<PackId>,
    /// Of `delete`, the packs that were in no index.
    pub orphans_deleted: Vec<PackId>,
    /// Packs in no index left alone, being recent.
    pub orphans_kept: Vec<PackId>,
    /// Indexed packs not in the store whose blobs snapshots need and no
    /// other pack holds: kept in the index (also in `keep`).
    pub missing: Vec<PackId>,
    /// Copies to record as damaged: the blobs of `missing` packs not
    /// recorded yet, so that no backup deduplicates against them.
    pub record_damage: Vec<(PackId, Id)>,
}

/// What becomes of an indexed pack.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Mark,
    Repack,
}

/// Decides the fate of every pack; see [`PrunePlan`].
pub(crate) fn plan(s: &Survey, options: &PruneOptions) -> PrunePlan {
    let mut plan = PrunePlan::default();
    let active = s.active();
    let mut fates: Vec<Fate> = Vec::with_capacity(active.len());
    // Packs with both live and dead blobs: (position, live bytes, dead bytes).
    let mut partly: Vec<(usize, u64, u64)> = Vec::new();
    for (i, p) in active.iter().enumerate() {
        let (live, total) = (p.live, p.total);
        if !p.stored {
            // Gone, and snapshots need blobs no other pack holds: it stays
            // in the index, so check keeps naming what it affects and no
            // backup trusts its blobs. Gone and unused: the index drops it.
            if live > 0 {
                plan.missing.push(p.id);
                // Its blobs not recorded yet are, so that no backup
                // deduplicates against what is gone.
                plan.record_damage
                    .extend(p.undamaged.iter().map(|b| (p.id, *b)));
            }
            fates.push(if live > 0 { Fate::Keep } else { Fate::Mark });
            continue;
        }
        fates.push(if live == 0 { Fate::Mark } else { Fate::Keep });
        // A damaged pack is salvaged by repair, not repacked by prune.
        if live > 0 && live < total && !p.damaged {
            partly.push((i, live, total - live));
        }
    }
    choose_repacks(active, options, &mut fates, partly);
    for (p, fate) in active.iter().zip(&fates) {
        match fate {
            Fate::Keep => plan.keep.push(p.id),
            Fate::Mark => plan.mark.push(p.id),
            Fate::Repack => plan.repack.push(p.id),
        }
    }
    let grace = options.grace.as_secs() as i64;
    // Nothing may be deleted that a running backup could depend on: packs
    // marked before it loaded its index, or written before it began.
    let due =
        |since: i64| options.instant_delete || (s.now - since >= grace && since < s.oldest_writer);
    for m in marked_in_order(&s.marked, &s.stored) {
        if s.resolved.marked_live.contains(&m.pack.id) {
            plan.resurrect.push(m.pack.id);
        } else if due(m.marked_at) {
            plan.delete.push(m.pack.id);
        } else {
            plan.wait.push(m.pack.id);
        }
    }
    let indexed: std::collections::HashSet<PackId> = active.iter().map(|p| p.id).collect();
    let mut orphans: Vec<(&PackId, i64)> = s
        .stored
        .iter()
        .filter(|(id, _)| !indexed.contains(id) && !s.marked.contains_key(id))
        .map(|(id, l)| (id, l.modified))
        .collect();
    orphans.sort();
    for (id, modified) in orphans {
        if due(modified) {
            plan.delete.push(*id);
            plan.orphans_deleted.push(*id);
        } else {
            plan.orphans_kept.push(*id);
        }
    }
    plan
}

/// Repacks the packs with the largest unused share until the dead weight
/// left is within the allowance: bounded rewriting, most space freed.
fn choose_repacks(
    active: &[PackSummary],
    options: &PruneOptions,
    fates: &mut [Fate],
    mut partly: Vec<(usize, u64, u64)>,
) {
    let live_total: u64 = partly.iter().map(|(_, l, _)| l).sum::<u64>()
        + fates
            .iter()
            .enumerate()
            .filter(|(_, f)| **f == Fate::Keep)
            .map(|(i, _)| active[i].total)
            .sum::<u64>();
    let mut unused_total: u64 = partly.iter().map(|(_, _, u)| u).sum();
    let allowed = (live_total as f64 * options.max_unused) as u64;
    partly.sort_by(|a, b| {
        (b.2 * a.1.max(1))
            .cmp(&(a.2 * b.1.max(1)))
            .then(a.0.cmp(&b.0))
    });
    for (i, _, unused) in &partly {
        if unused_total <= allowed {
            break;
        }
        fates[*i] = Fate::Repack;
        unused_total -= unused;
    }
}

#[cfg(test)]
mod tests {
    //! The plan against a model: random repositories (packs indexed,
    //! marked, in no index or gone; blobs in several packs; damaged copies;
    //! running backups; times) and the promises prune makes, each checked
    //! on its own terms rather than by re-deriving the plan.

    use std::collections::{HashMap, HashSet};
    use std::time::Duration;

    use hokan_core::{BlobType, PackedBlob};
    use proptest::prelude::*;

    use super::*;
    use crate::index_file::IndexedPack;
    use crate::locks::MarkedPack;
    use crate::maintenance::prune::survey::parts::Parts;
    use crate::store::Listed;

    /// Where a pack of the model is.
    #[derive(Clone, Copy, Debug)]
    enum Place {
        Indexed,
        IndexedGone,
        Marked { at: i64 },
        Orphan,
    }

    #[derive(Clone, Debug)]
    struct ModelPack {
        place: Place,
        modified: i64,
        /// (blob, plaintext length, damaged copy)
        blobs: Vec<(u8, u32, bool)>,
    }

    #[derive(Clone, Debug)]
    struct Model {
        packs: Vec<ModelPack>,
        used: HashSet<u8>,
        now: i64,
        oldest_writer: i64,
        grace: u64,
        instant: bool,
        max_unused: f64,
    }

    fn place() -> impl Strategy<Value = Place> {
        prop_oneof![
            4 => Just(Place::Indexed),
            1 => Just(Place::IndexedGone),
            2 => (0i64..200).prop_map(|at| Place::Marked { at }),
            1 => Just(Place::Orphan),
        ]
    }

    fn model() -> impl Strategy<Value = Model> {
        let pack = (
            place(),
            0i64..200,
            prop::collection::vec((0u8..16, 1u32..5000, prop::bool::weighted(0.15)), 1..6),
        )
            .prop_map(|(place, modified, mut blobs)| {
                blobs.sort_by_key(|b| b.0);
                blobs.dedup_by_key(|b| b.0);
                ModelPack {
                    place,
                    modified,
                    blobs,
                }
            });
        (
            prop::collection::vec(pack, 1..9),
            prop::collection::hash_set(0u8..16, 0..12),
            200i64..400,
            prop_oneof![Just(i64::MAX), 0i64..400],
            0u64..300,
            prop::bool::weighted(0.3),
            prop_oneof![Just(0.0), Just(0.05), Just(0.5)],
        )
            .prop_map(
                |(packs, used, now, oldest_writer, grace, instant, max_unused)| Model {
                    packs,
                    used,
                    now,
                    oldest_writer,
                    grace,
                    instant,
                    max_unused,
                },
            )
    }

    fn blob_id(b: u8) -> Id {
        Id([b; 32])
    }

    fn pack_id(i: usize) -> PackId {
        PackId(Id([200 + i as u8; 32]))
    }

    fn indexed(i: usize, p: &ModelPack) -> IndexedPack {
        let mut offset = 8;
        let blobs = p
            .blobs
            .iter()
            .map(|&(b, raw_len, _)| {
                let length = raw_len / 2 + 40;
                let packed = PackedBlob {
                    kind: BlobType::Data,
                    id: blob_id(b),
                    offset,
                    length,
                    raw_len,
                };
                offset += length;
                packed
            })
            .collect();
        IndexedPack::from_blobs(pack_id(i), offset as u64 + 100, blobs)
    }

    fn parts(m: &Model) -> Parts {
        let (mut active, mut marked) = (Vec::new(), Vec::new());
        let (mut stored, mut damaged) = (HashMap::new(), HashSet::new());
        for (i, p) in m.packs.iter().enumerate() {
            let ip = indexed(i, p);
            for &(b, _, bad) in &p.blobs {
                if bad {
                    damaged.insert((ip.id, blob_id(b)));
                }
            }
            if !matches!(p.place, Place::IndexedGone) {
                let listed = Listed {
                    name: ip.id.to_hex(),
                    size: ip.size,
                    modified: p.modified,
                };
                stored.insert(ip.id, listed);
            }
            match p.place {
                Place::Indexed | Place::IndexedGone => active.push(ip),
                Place::Marked { at } => marked.push(MarkedPack {
                    marked_at: at,
                    pack: ip,
                }),
                Place::Orphan => {}
            }
        }
        Parts {
            now: m.now,
            active,
            marked,
            damaged,
            stored,
            used: m.used.iter().map(|b| blob_id(*b)).collect(),
            oldest_writer: m.oldest_writer,
        }
    }

    fn options(m: &Model) -> PruneOptions {
        PruneOptions {
            grace: Duration::from_secs(m.grace),
            instant_delete: m.instant,
            max_unused: m.max_unused,
            ..Default::default()
        }
    }

    /// Thousands of copies, so that every sort of the bounded survey
    /// spills several runs and merges them: the same summaries and plan as
    /// the in-memory survey.
    #[test]
    fn the_bounded_survey_agrees_when_it_spills() {
        let mut next = crate::maintenance::below();
        let id = |n: u64| Id(*blake3::hash(&n.to_le_bytes()).as_bytes());
        let mut parts = Parts {
            now: 300,
            active: Vec::new(),
            marked: Vec::new(),
            damaged: HashSet::new(),
            stored: HashMap::new(),
            used: HashSet::new(),
            oldest_writer: i64::MAX,
        };
        for i in 0..60u64 {
            let mut offset = 8;
            let blobs: Vec<PackedBlob> = (0..150)
                .map(|_| {
                    let raw_len = 1 + next(4000) as u32;
                    // Some records hold a group of two (same offset).
                    let group = next(10) == 0;
                    let b = PackedBlob {
                        kind: BlobType::Data,
                        id: id(next(6000)),
                        offset,
                        length: raw_len / 2 + 40,
                        raw_len,
                    };
                    if !group {
                        offset += b.length;
                    }
                    b
                })
                .collect();
            let p = IndexedPack::from_blobs(PackId(id(1 << 40 | i)), offset as u64 + 100, blobs);
            for b in &p.blobs {
                if next(50) == 0 {
                    parts.damaged.insert((p.id, b.id));
                }
                if next(3) > 0 {
                    parts.used.insert(b.id);
                }
            }
            if next(10) > 0 {
                let listed = Listed {
                    name: p.id.to_hex(),
                    size: p.size,
                    modified: next(300) as i64,
                };
                parts.stored.insert(p.id, listed);
            }
            match next(4) {
                0 => parts.marked.push(MarkedPack {
                    marked_at: next(300) as i64,
                    pack: p,
                }),
                _ => parts.active.push(p),
            }
        }
        let (bounded, reference) = (parts.bounded(0), parts.reference());
        assert_eq!(bounded.active(), reference.active());
        assert_eq!(bounded.resolved.marked_live, reference.resolved.marked_live);
        assert_eq!(bounded.resolved.used, reference.resolved.used);
        assert!(bounded.resolved.used > 3000);
        let o = PruneOptions::default();
        assert_eq!(plan(&bounded, &o), plan(&reference, &o));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The bounded survey (copies and used ids in external sorts,
        /// merged) finds for every pack what the in-memory index found,
        /// so the plan is the one prune made before.
        #[test]
        fn the_bounded_survey_is_the_in_memory_one(m in model()) {
            let parts = parts(&m);
            let (bounded, reference) = (parts.bounded(0), parts.reference());
            prop_assert_eq!(bounded.active(), reference.active());
            prop_assert_eq!(&bounded.resolved.marked_live, &reference.resolved.marked_live);
            prop_assert_eq!(bounded.resolved.used, reference.resolved.used);
            let o = options(&m);
            prop_assert_eq!(plan(&bounded, &o), plan(&reference, &o));
        }

        #[test]
        fn the_plan_keeps_its_promises(m in model()) {
            let parts = parts(&m);
            let s = parts.bounded(0);
            let full = parts.full();
            let o = options(&m);
            let p = plan(&s, &o);
            prop_assert_eq!(&p, &plan(&s, &o), "a pure function");

            // Every pack has exactly one fate.
            let all: Vec<&PackId> = p.keep.iter().chain(&p.mark).chain(&p.repack)
                .chain(&p.resurrect).chain(&p.wait)
                .chain(p.delete.iter().filter(|d| !p.orphans_deleted.contains(d)))
                .chain(&p.orphans_deleted).chain(&p.orphans_kept).collect();
            let distinct: HashSet<&PackId> = all.iter().copied().collect();
            prop_assert_eq!(all.len(), distinct.len(), "one fate each: {:?}", p);
            prop_assert_eq!(distinct.len(), m.packs.len(), "every pack: {:?}", p);

            let gone = |i: usize| matches!(m.packs[i].place, Place::IndexedGone);
            let indexed_after = |i: usize| {
                let id = pack_id(i);
                p.keep.contains(&id) || p.resurrect.contains(&id)
            };
            for &b in &m.used {
                // The copies of a used blob that can still be read.
                let copies: Vec<(usize, bool)> = m.packs.iter().enumerate()
                    .filter(|(i, mp)| !gone(*i) && !matches!(mp.place, Place::Orphan))
                    .filter_map(|(i, mp)| mp.blobs.iter().find(|x| x.0 == b).map(|x| (i, x.2)))
                    .collect();
                if copies.iter().any(|(_, bad)| !bad) {
                    // An intact copy stays readable from the index: kept,
                    // resurrected, or copied out of a repacked pack.
                    prop_assert!(
                        copies.iter().any(|&(i, bad)| !bad
                            && (indexed_after(i) || p.repack.contains(&pack_id(i)))),
                        "blob {} lost its intact copies: {:?}", b, p
                    );
                } else if let Some(&(i, _)) = copies.first() {
                    // Only damaged copies: one stays, with what is left.
                    prop_assert!(
                        copies.iter().any(|&(j, _)| indexed_after(j)),
                        "blob {}'s only (damaged) copy in pack {} went: {:?}", b, i, p
                    );
                }
            }
            for (i, mp) in m.packs.iter().enumerate() {
                let id = pack_id(i);
                // Deletion only once nothing could depend on the pack.
                if p.delete.contains(&id) {
                    let since = match mp.place {
                        Place::Marked { at } => at,
                        Place::Orphan => mp.modified,
                        _ => { prop_assert!(false, "an indexed pack deleted outright"); 0 }
                    };
                    prop_assert!(
                        m.instant || (m.now - since >= m.grace as i64 && since < m.oldest_writer),
                        "pack {} deleted too early: {:?}", i, p
                    );
                }
                if p.repack.contains(&id) {
                    prop_assert!(!mp.blobs.iter().any(|x| x.2), "a damaged pack is not repacked");
                }
                // An indexed pack nothing reads from leaves the index.
                let reads = mp.blobs.iter().any(|x| {
                    m.used.contains(&x.0)
                        && full.get(&blob_id(x.0)).is_some_and(|l| l.pack == id)
                });
                if matches!(mp.place, Place::Indexed | Place::IndexedGone) && !reads {
                    prop_assert!(p.mark.contains(&id), "unused pack {} kept: {:?}", i, p);
                }
                if gone(i) && reads {
                    prop_assert!(p.missing.contains(&id));
                    for x in mp.blobs.iter().filter(|x| !x.2) {
                        prop_assert!(p.record_damage.contains(&(id, blob_id(x.0))));
                    }
                }
            }
        }
    }
}
