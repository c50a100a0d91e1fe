//! Random index operations checked against a BTreeMap model.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use hokan_core::{BlobType, Id, Index, PackId, PackedBlob};
use libfuzzer_sys::fuzz_target;

use hokan_fuzz as _;

#[derive(Arbitrary, Debug)]
enum Op {
    Insert(u8, u32),
    InsertMany(u8, u16),
    Bulk(Vec<(u8, u32)>),
    Get(u8),
}

fn id(k: u32) -> Id {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&k.wrapping_mul(0x9E37_79B9).to_be_bytes());
    b[4..8].copy_from_slice(&k.to_le_bytes());
    Id(b)
}

fuzz_target!(|ops: Vec<Op>| {
    let mut ix = Index::new();
    let mut model = BTreeMap::new();
    let pack = ix.add_pack(PackId(id(u32::MAX)), BlobType::Data);
    for op in ops {
        match op {
            Op::Insert(k, v) => {
                assert_eq!(
                    ix.insert(id(k as u32), pack, v, 1),
                    !model.contains_key(&id(k as u32))
                );
                model.entry(id(k as u32)).or_insert(v);
            }
            Op::InsertMany(start, n) => {
                for k in start as u32 * 97..start as u32 * 97 + n as u32 {
                    ix.insert(id(k), pack, k, 1);
                    model.entry(id(k)).or_insert(k);
                }
            }
            Op::Bulk(entries) => {
                let blobs: Vec<_> = entries
                    .iter()
                    .map(|&(k, v)| PackedBlob {
                        kind: BlobType::Data,
                        id: id(k as u32),
                        offset: v,
                        length: 1,
                        raw_len: 1,
                    })
                    .collect();
                ix.extend_packs([(PackId(id(7)), BlobType::Data, &blobs[..])]);
                for (k, v) in entries {
                    model.entry(id(k as u32)).or_insert(v);
                }
            }
            Op::Get(k) => {
                assert_eq!(
                    ix.get(&id(k as u32)).map(|l| l.offset),
                    model.get(&id(k as u32)).copied()
                );
            }
        }
    }
    assert_eq!(ix.len(), model.len());
    for (k, v) in &model {
        assert_eq!(ix.get(k).map(|l| l.offset), Some(*v));
    }
});
