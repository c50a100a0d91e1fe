//! The mapped index answers exactly as the in-memory one: random
//! operations applied to both, the mapped one written to a run file (and
//! standing on it) at random points, every answer compared. And a run file
//! that is torn, flipped or of another version is refused, never trusted.

use std::sync::Arc;

use hokan_core::index::{MappedRun, RunBuilder, RunMeta};
use hokan_core::{BlobType, Id, Index, IndexBuilder, PackId, PackedBlob};
use proptest::prelude::*;

fn id(n: u16) -> Id {
    Id(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

#[derive(Clone, Debug)]
enum Op {
    AddPack {
        tree: bool,
        hidden: bool,
    },
    Insert {
        blob: u16,
        pack: u8,
        offset: u32,
        length: u32,
        group: bool,
    },
    /// A pack of blobs through the builder (as loading does).
    Bulk {
        first: u16,
        count: u8,
        hidden: bool,
    },
    MarkDamaged(u16),
    MarkDamagedRecord(u16),
    NoteCarried(u16, u16, u32),
    /// The mapped index writes everything into a new run and stands on it.
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    // Ids from a small range, so duplicates and hits are common.
    let blob = 0u16..400;
    prop_oneof![
        (any::<bool>(), any::<bool>()).prop_map(|(tree, hidden)| Op::AddPack { tree, hidden }),
        (
            blob.clone(),
            any::<u8>(),
            0u32..1000,
            1u32..5000,
            any::<bool>()
        )
            .prop_map(|(blob, pack, offset, length, group)| Op::Insert {
                blob,
                pack,
                offset,
                length,
                group
            }),
        (blob.clone(), 1u8..40, any::<bool>()).prop_map(|(first, count, hidden)| Op::Bulk {
            first,
            count,
            hidden
        }),
        blob.clone().prop_map(Op::MarkDamaged),
        blob.clone().prop_map(Op::MarkDamagedRecord),
        (blob.clone(), blob, 0u32..10).prop_map(|(a, b, at)| Op::NoteCarried(a, b, at)),
        Just(Op::Flush),
    ]
}

fn apply(ix: &mut Index, op: &Op, dir: &std::path::Path, flushes: &mut u32, mapped: bool) {
    match *op {
        Op::AddPack { tree, hidden } => {
            let kind = if tree { BlobType::Tree } else { BlobType::Data };
            let pack = PackId(id(10_000 + ix.pack_count() as u16));
            if hidden {
                ix.add_hidden_pack(pack, kind);
            } else {
                ix.add_pack(pack, kind);
            }
        }
        Op::Insert {
            blob,
            pack,
            offset,
            length,
            group,
        } => {
            // A pack number is returned only on registration: insert
            // through a pack registered here.
            let p = ix.add_pack(PackId(id(20_000 + pack as u16)), BlobType::Data);
            ix.insert_record(id(blob), p, offset, length, group);
        }
        Op::Bulk {
            first,
            count,
            hidden,
        } => {
            let blobs: Vec<PackedBlob> = (0..count as u16)
                .map(|i| PackedBlob {
                    kind: BlobType::Data,
                    id: id(first.wrapping_add(i) % 400),
                    offset: i as u32 * 100,
                    length: 90,
                    raw_len: 80,
                })
                .collect();
            let pack = PackId(id(30_000 + first));
            let mut b = IndexBuilder::from_index(std::mem::take(ix));
            if hidden {
                b.add_hidden_pack(pack, BlobType::Data, &blobs);
            } else {
                b.add_pack(pack, BlobType::Data, &blobs);
            }
            *ix = b.build();
        }
        Op::MarkDamaged(blob) => ix.mark_damaged(&id(blob)),
        Op::MarkDamagedRecord(blob) => ix.mark_damaged_record(&id(blob)),
        Op::NoteCarried(a, b, at) => ix.note_carried(id(a), id(b), at),
        Op::Flush => {
            if mapped {
                *flushes += 1;
                let meta = RunMeta {
                    repo: id(7),
                    ..Default::default()
                };
                // A small memory bound, so the external sort spills.
                ix.write_run(&meta, &dir.join(format!("run-{flushes}")), 16)
                    .expect("writing a run");
            }
        }
    }
}

fn sorted_iter(ix: &Index) -> Vec<(Id, hokan_core::Location)> {
    let mut v: Vec<_> = ix.iter().collect();
    v.sort_by_key(|(id, _)| *id);
    v
}

fn same_answers(model: &Index, mapped: &Index) {
    assert_eq!(model.len(), mapped.len());
    assert_eq!(model.pack_count(), mapped.pack_count());
    for n in 0..model.pack_count() as u32 + 1 {
        assert_eq!(model.pack_id(n), mapped.pack_id(n), "pack {n}");
    }
    for b in 0..420u16 {
        let i = id(b);
        assert_eq!(model.get(&i), mapped.get(&i), "get {b}");
        assert_eq!(model.contains(&i), mapped.contains(&i));
        assert_eq!(model.contains_visible(&i), mapped.contains_visible(&i));
        assert_eq!(model.visible_pack(&i), mapped.visible_pack(&i));
        assert_eq!(model.is_damaged(&i), mapped.is_damaged(&i));
        assert_eq!(model.carried_in(&i), mapped.carried_in(&i));
    }
    assert_eq!(model.damaged(), mapped.damaged());
    assert_eq!(sorted_iter(model), sorted_iter(mapped));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn mapped_answers_as_in_memory(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let (mut model, mut mapped) = (Index::new(), Index::new());
        let mut flushes = 0;
        for op in &ops {
            apply(&mut model, op, dir.path(), &mut flushes, false);
            apply(&mut mapped, op, dir.path(), &mut flushes, true);
            same_answers(&model, &mapped);
        }
        // The last run, opened afresh (checked) by another handle, holds
        // the same entries and packs.
        if flushes > 0 {
            let run = MappedRun::open(&dir.path().join(format!("run-{flushes}"))).unwrap();
            let reopened = Index::on_run(Arc::new(run));
            let at_flush: Vec<_> = sorted_iter(&reopened);
            prop_assert!(at_flush.len() <= mapped.len());
            for (i, loc) in at_flush {
                prop_assert_eq!(Some(loc), mapped.get(&i));
            }
        }
    }
}

fn small_run(dir: &std::path::Path) -> std::path::PathBuf {
    let mut b = RunBuilder::new(dir, 1024);
    let p = b.add_pack(PackId(id(1)), BlobType::Data, false);
    for n in 0..5000u16 {
        b.push(id(n), p, n as u32, 10).unwrap();
    }
    let meta = RunMeta {
        repo: id(7),
        inputs: [3; 32],
        covered: vec![id(1), id(2)],
        superseded: vec![id(3)],
    };
    let path = dir.join("run");
    let run = b.finish(&meta, &path).unwrap();
    assert_eq!(run.len(), 5000);
    assert_eq!(run.meta(), meta);
    path
}

#[test]
fn a_torn_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = small_run(dir.path());
    assert_eq!(MappedRun::open(&path).unwrap().len(), 5000);
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 100, 160, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = MappedRun::open(&path).unwrap_err().to_string();
        assert!(err.contains("index cache file"), "{err}");
    }
}

#[test]
fn a_flipped_byte_or_another_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = small_run(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    for at in [20, 200, bytes.len() / 2, bytes.len() - 2] {
        let mut b = bytes.clone();
        b[at] ^= 1;
        std::fs::write(&path, &b).unwrap();
        let err = MappedRun::open(&path).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{at}: {err}");
    }
    let mut b = bytes.clone();
    b[8] = 9;
    std::fs::write(&path, &b).unwrap();
    let err = MappedRun::open(&path).unwrap_err().to_string();
    assert!(err.contains("unsupported format version 9"), "{err}");
}
