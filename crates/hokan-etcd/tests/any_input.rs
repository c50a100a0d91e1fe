//! Property tests: any bytes split and rebuild exactly; no input makes the
//! reader, the splitter, the rebuild or status panic; a damaged layout or a
//! wrong record is an error, never a different file.

use hokan_etcd::testdata::{TestBucket, build, revision_key, tiny_db};
use hokan_etcd::{Db, IterSource, MemorySink, SplitOptions, rebuild, split, status};
use proptest::prelude::*;

fn roundtrip(input: &[u8]) -> MemorySink {
    let mut sink = MemorySink::default();
    split(input, &mut sink, &SplitOptions::any("input")).unwrap();
    let mut out = Vec::new();
    rebuild(
        &sink.layout[..],
        &mut IterSource(sink.records.iter()),
        &mut out,
    )
    .unwrap();
    assert!(
        out == input,
        "rebuilt {} bytes differ from the {} split",
        out.len(),
        input.len()
    );
    sink
}

/// A database of `n` keys whose values have the given sizes (some need
/// overflow pages), page size 4096.
fn db_with(sizes: &[usize]) -> Vec<u8> {
    let pairs = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            (
                revision_key(i as u64 + 2, 0),
                vec![b'a' + (i % 26) as u8; s],
            )
        })
        .collect();
    build(
        4096,
        &[TestBucket {
            name: b"key".to_vec(),
            pairs,
            inline: false,
        }],
    )
}

/// Every reader on the same bytes: must return, never panic.
fn read_everything(bytes: &[u8]) {
    if let Ok(db) = Db::open(bytes, "fuzz") {
        let _ = db.check();
        let _ = db.freelist();
        if let Ok(buckets) = db.buckets() {
            for (_, b) in buckets {
                for e in db.entries(b).take(100_000) {
                    if e.is_err() {
                        break;
                    }
                }
            }
        }
    }
    let _ = status(bytes, "fuzz");
    let _ = split(
        bytes,
        &mut MemorySink::default(),
        &SplitOptions::bbolt("fuzz"),
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_bytes_rebuild_exactly(input in proptest::collection::vec(any::<u8>(), 0..20_000)) {
        roundtrip(&input);
        read_everything(&input);
    }

    #[test]
    fn damaged_databases_rebuild_exactly_and_never_panic(
        sizes in proptest::collection::vec(1usize..9000, 1..40),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..12),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let mut db = db_with(&sizes);
        let clean = roundtrip(&db);
        prop_assert_eq!(clean.records.len(), sizes.len());
        prop_assert!(status(&db, "db").is_ok());
        for (at, byte) in flips {
            let i = at.index(db.len());
            db[i] = byte;
        }
        if do_cut {
            db.truncate(cut.index(db.len()));
        }
        roundtrip(&db);
        read_everything(&db);
    }

    #[test]
    fn a_damaged_layout_is_an_error_not_another_file(
        flip in any::<prop::sample::Index>(),
        byte in 1u8..=255,
    ) {
        let db = db_with(&[100, 5000, 300, 20]);
        let sink = roundtrip(&db);
        let mut layout = sink.layout.clone();
        let i = flip.index(layout.len());
        layout[i] ^= byte;
        let mut out = Vec::new();
        let r = rebuild(&layout[..], &mut IterSource(sink.records.iter()), &mut out);
        prop_assert!(r.is_err(), "a layout with byte {} changed rebuilt without error", i);
    }
}

#[test]
fn a_wrong_or_missing_record_is_an_error() {
    let db = tiny_db();
    let sink = roundtrip(&db);
    let mut records = sink.records.clone();
    records[1][0] ^= 1;
    let err = rebuild(
        &sink.layout[..],
        &mut IterSource(records.iter()),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("does not match the one split"),
        "{err}"
    );
    let err = rebuild(
        &sink.layout[..],
        &mut IterSource(sink.records[..2].iter()),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("more records"), "{err}");
    let mut longer = sink.records.clone();
    longer[0].push(0);
    let err = rebuild(
        &sink.layout[..],
        &mut IterSource(longer.iter()),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("record 0 is"), "{err}");
}

#[test]
fn synthetic_databases_read_like_bbolt() {
    let db = db_with(&[10, 5000, 20, 4000, 4000, 4000]);
    let d = Db::open(&db, "db").unwrap();
    d.check().unwrap();
    assert_eq!(d.meta().txid, 2, "the meta with the higher txid is current");
    let buckets = d.buckets().unwrap();
    assert_eq!(buckets.len(), 1);
    let entries: Vec<_> = d.entries(buckets[0].1).map(Result::unwrap).collect();
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[1].value.len(), 5000, "a value on overflow pages");
    assert!(entries.windows(2).all(|w| w[0].key < w[1].key));
    // A damaged meta 1 falls back to meta 0.
    let mut bad = db.clone();
    bad[4096 + 20] ^= 0xff;
    assert_eq!(Db::open(&bad, "db").unwrap().meta().txid, 1);
    // Both damaged: not bbolt, naming both problems.
    bad[20] ^= 0xff;
    let err = Db::open(&bad, "db").unwrap_err().to_string();
    assert!(
        err.contains("meta page 0") && err.contains("meta page 1"),
        "{err}"
    );
}

/// Golden: the layout of a fixed database, byte for byte. A change here means
/// old backups would no longer rebuild: bump `layout::VERSION` instead.
#[test]
fn the_layout_format_is_pinned() {
    use sha2::{Digest, Sha256};
    let db = tiny_db();
    let sink = roundtrip(&db);
    // Header: magic, version 1, page size 4096.
    assert_eq!(&sink.layout[..9], b"HKBL\x01\x00\x10\x00\x00");
    // Pages 0-3 (two metas, the freelist, the root bucket's leaf holding
    // only bucket elements) are one raw entry of 16384 bytes.
    assert_eq!(&sink.layout[9..13], [0x01, 0x80, 0x80, 0x01]);
    assert_eq!(&sink.layout[13..13 + 16384], &db[..16384]);
    // Page 4, the `key` bucket's leaf, is a leaf entry: its header and
    // element table as they are, then the rest of the page without records.
    assert_eq!(sink.layout[13 + 16384], 0x02);
    assert_eq!(
        &sink.layout[13 + 16385..13 + 16385 + 64],
        &db[16384..16384 + 64]
    );
    assert_eq!(sink.records.len(), 3);
    assert_eq!(
        sink.layout.len(),
        9 + 4 + 16384 + 1 + 4096 - sink.records.iter().map(Vec::len).sum::<usize>() + 1 + 48
    );
    let end = &sink.layout[sink.layout.len() - 49..];
    assert_eq!(end[0], 0x00);
    assert_eq!(
        u64::from_le_bytes(end[1..9].try_into().unwrap()),
        db.len() as u64
    );
    assert_eq!(u64::from_le_bytes(end[9..17].try_into().unwrap()), 3);
    assert_eq!(&end[17..], Sha256::digest(&db).as_slice());
    let hex: String = Sha256::digest(&sink.layout)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hex,
        "7642a836598bb7484b09176aefcaf5817ea4c3186fcded78f4a76dfad1a376ab"
    );
}
