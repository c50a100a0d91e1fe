//! Property tests for every round trip on the data path.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use hokan_core::compress::{self, Compression};
use hokan_core::crypto::Cipher;
use hokan_core::{
    BlobReader, BlobType, BlobWriter, Chunker, ChunkerParams, FinishedPack, Id, Index, MasterKey,
    PackId, PackReader, PackWriter, WriterConfig, blob,
};
use proptest::prelude::*;

fn params() -> impl Strategy<Value = ChunkerParams> {
    // Small sizes so short inputs still cut into many chunks.
    (6u32..=10, 1u32..=3, 1u32..=3).prop_map(|(min_exp, avg_step, max_step)| {
        let min = 1 << min_exp;
        let avg = min << avg_step;
        let max = avg << max_step;
        ChunkerParams::new(min.max(64), avg.max(256), max.max(1024)).unwrap()
    })
}

fn data(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..max),
        // Low-entropy data: runs and repeats, where boundaries are rare.
        (proptest::collection::vec(any::<u8>(), 1..16), 0..max).prop_map(|(pat, n)| pat
            .iter()
            .copied()
            .cycle()
            .take(n)
            .collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn chunks_concatenate_to_input(d in data(200_000), p in params(), seed in 1u64.., batch in 1usize..100_000) {
        let c = Chunker::new(p, seed).unwrap();
        let ranges: Vec<_> = c.chunks(&d).collect();
        let mut pos = 0;
        for (i, r) in ranges.iter().enumerate() {
            prop_assert_eq!(r.start, pos);
            prop_assert!(r.len() <= p.max as usize);
            if i + 1 < ranges.len() {
                prop_assert!(r.len() >= p.min as usize);
            }
            pos = r.end;
        }
        prop_assert_eq!(pos, d.len());
        // The stream chunker agrees for any batch size.
        let mut s = c.stream(&d[..], batch);
        let mut got = Vec::new();
        while let Some(b) = s.next_batch(Vec::new()).unwrap() {
            let mut joined = Vec::new();
            for r in &b.chunks {
                joined.extend_from_slice(&b.data[r.clone()]);
                got.push(b.offset as usize + r.start..b.offset as usize + r.end);
            }
            prop_assert_eq!(joined, b.data);
        }
        prop_assert_eq!(got, ranges);
    }

    #[test]
    fn compress_round_trip(d in data(100_000), level in prop_oneof![Just(0), -5i32..=-1, 1i32..=9]) {
        let c = Compression::zstd(level).unwrap();
        let enc = compress::encode(&d, c).unwrap();
        prop_assert!(enc.len() <= d.len() + 1, "never grows beyond the raw fallback");
        prop_assert_eq!(compress::decode(enc).unwrap(), d);
    }

    #[test]
    fn encrypt_round_trip(key in any::<[u8; 32]>(), aad in proptest::collection::vec(any::<u8>(), 0..64),
                          plain in proptest::collection::vec(any::<u8>(), 0..4096), flip in any::<prop::sample::Index>()) {
        let c = Cipher::new(&key);
        let mut sealed = c.seal(&aad, &plain).unwrap();
        prop_assert_eq!(c.open(&aad, &sealed).unwrap(), plain);
        let i = flip.index(sealed.len());
        sealed[i] ^= 0x5a;
        prop_assert!(c.open(&aad, &sealed).is_err());
    }

    #[test]
    fn pack_write_read(blobs in proptest::collection::vec((any::<bool>(), data(20_000)), 0..12)) {
        let key = MasterKey::generate().unwrap();
        let mut w = PackWriter::new(BlobType::Tree, 0);
        for (compress, d) in &blobs {
            let c = if *compress { Compression::default() } else { Compression::Off };
            w.add(&blob::encode_new(&key, BlobType::Tree, d, c).unwrap()).unwrap();
        }
        let p = w.finish(&key).unwrap();
        let r = PackReader::open(&p.bytes, Some(&p.id), &key).unwrap();
        prop_assert_eq!(r.blobs(), &p.blobs[..]);
        for (entry, (_, d)) in r.blobs().iter().zip(&blobs) {
            prop_assert_eq!(entry.id, key.tree_id(d).0);
            prop_assert_eq!(&r.read(&key, entry).unwrap(), d);
        }
    }
}

/// Index operations against a `BTreeMap` model, through enough inserts to
/// exercise merging, bulk loads and duplicates.
#[derive(Debug, Clone)]
enum Op {
    Insert(u16, u32),
    Bulk(Vec<(u16, u32)>),
    Get(u16),
}

/// Offsets and record lengths below 2 GiB: records never reach it (the
/// index keeps a flag in the top bit).
fn offset() -> impl Strategy<Value = u32> {
    0u32..1 << 31
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<u16>(), offset()).prop_map(|(k, v)| Op::Insert(k, v)),
        1 => proptest::collection::vec((any::<u16>(), offset()), 0..3000).prop_map(Op::Bulk),
        4 => any::<u16>().prop_map(Op::Get),
    ]
}

fn key_id(k: u16) -> Id {
    Id(*blake3::hash(&k.to_le_bytes()).as_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn index_matches_model(ops in proptest::collection::vec(op(), 1..12_000)) {
        let mut ix = Index::new();
        let mut model: BTreeMap<Id, (PackId, u32)> = BTreeMap::new();
        let pack_id = |n: u64| PackId(Id(*blake3::hash(&n.to_be_bytes()).as_bytes()));
        let mut packs = 0u64;
        let mut pid = pack_id(packs);
        let mut pref = ix.add_pack(pid, BlobType::Data);
        for (n, op) in ops.into_iter().enumerate() {
            if n % 500 == 499 {
                packs += 1;
                pid = pack_id(packs);
                pref = ix.add_pack(pid, BlobType::Data);
            }
            match op {
                Op::Insert(k, v) => {
                    let fresh = !model.contains_key(&key_id(k));
                    prop_assert_eq!(ix.insert(key_id(k), pref, v, v ^ 1), fresh);
                    model.entry(key_id(k)).or_insert((pid, v));
                }
                Op::Bulk(entries) => {
                    packs += 1;
                    let bpid = pack_id(packs);
                    let blobs: Vec<_> = entries.iter().map(|&(k, v)| hokan_core::PackedBlob {
                        kind: BlobType::Data, id: key_id(k), offset: v, length: v ^ 1, raw_len: 0,
                    }).collect();
                    ix.extend_packs([(bpid, BlobType::Data, &blobs[..])]);
                    for &(k, v) in &entries {
                        model.entry(key_id(k)).or_insert((bpid, v));
                    }
                }
                Op::Get(k) => {
                    let got = ix.get(&key_id(k)).map(|l| (l.pack, l.offset, l.length));
                    let want = model.get(&key_id(k)).map(|&(p, v)| (p, v, v ^ 1));
                    prop_assert_eq!(got, want);
                }
            }
        }
        prop_assert_eq!(ix.len(), model.len());
        for (id, &(p, v)) in &model {
            let l = ix.get(id).unwrap();
            prop_assert_eq!((l.pack, l.offset, l.length), (p, v, v ^ 1));
        }
        let listed: BTreeMap<Id, u32> = ix.iter().map(|(id, l)| (id, l.offset)).collect();
        prop_assert_eq!(listed.len(), model.len());
    }
}

/// Length of a pack version 2 record's fixed header part, and of one member
/// entry in the pack header (docs/FORMAT.md, "Packs").
const PACK_RECORD_LEN: usize = 7;
const PACK_MEMBER_LEN: usize = 36;
/// Length of one member's entry in a group's own directory (prefix and
/// length, docs/FORMAT.md, "Groups").
const GROUP_DIR_ENTRY_LEN: usize = 12;

/// A pack is over its target by at most its last record, a chunk or a group,
/// with that record's header entries: the writer seals a pack once it
/// reaches the target. A group of many small members costs 48 bytes a
/// member beyond its data (12 in its directory, 36 in the pack header), so
/// the bound counts members, not only bytes.
fn check_pack_size(pack: &FinishedPack, cfg: &WriterConfig) -> Result<(), TestCaseError> {
    let Some(last_at) = pack.blobs.iter().map(|b| b.offset).max() else {
        return Ok(());
    };
    // Members of a record share its offset: record offset → (length, members).
    let mut records: BTreeMap<u32, (u32, usize)> = BTreeMap::new();
    for b in &pack.blobs {
        records.entry(b.offset).or_insert((b.length, 0)).1 += 1;
    }
    // A record holds a chunk, or a group: members until the group's data
    // reaches its target, the last one below the small-blob limit.
    let data = (cfg.chunker.max as usize).max((cfg.group_size + cfg.small_blob) as usize);
    for &(length, members) in records.values() {
        let bound = data + 2 + members * GROUP_DIR_ENTRY_LEN + 4096;
        prop_assert!(
            length as usize <= bound,
            "record of {} bytes, {} members",
            length,
            members
        );
    }
    let (length, members) = records[&last_at];
    let over = length as usize + PACK_RECORD_LEN + members * PACK_MEMBER_LEN;
    prop_assert!(
        pack.bytes.len() < cfg.pack_size as usize + over,
        "pack of {} bytes, target {}, last record {} bytes with {} members",
        pack.bytes.len(),
        cfg.pack_size,
        length,
        members
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn pipeline_round_trip(d in data(600_000), p in params(), pack_size in 4096u32..200_000) {
        let key = MasterKey::generate().unwrap();
        let mut index = Index::new();
        let sink = Mutex::new(Vec::new());
        let cfg = WriterConfig { chunker: p, pack_size, batch_size: 50_000, ..Default::default() };
        let w = BlobWriter::new(&key, cfg, &index, &sink).unwrap();
        let from_stream = w.write_stream(&d[..]).unwrap();
        let from_slice = w.write_slice(&d).unwrap();
        let stats = w.finish().unwrap();
        prop_assert_eq!(&from_stream, &from_slice);
        let total: u64 = from_stream.iter().map(|c| c.len as u64).sum();
        prop_assert_eq!(total, d.len() as u64);
        prop_assert_eq!(stats.bytes, 2 * d.len() as u64);
        let mut store = HashMap::new();
        for pack in sink.into_inner().unwrap() {
            check_pack_size(&pack, &cfg)?;
            index.insert_pack(pack.id, pack.kind, &pack.blobs);
            store.insert(pack.id, pack.bytes);
        }
        let mut out = Vec::new();
        BlobReader::new(&key, &index, &store).read_chunks(&from_stream, &mut out).unwrap();
        prop_assert_eq!(out, d);
    }
}
