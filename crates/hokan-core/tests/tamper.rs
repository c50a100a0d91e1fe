//! Every single-byte change to a pack is detected, and so is every
//! truncation: with the pack's id (as the repository always has it) and
//! without it (a pack found loose, as `repair index` reads them).

use hokan_core::sample::{Kind, generate};
use hokan_core::{BlobType, Compression, Error, MasterKey, PackId, PackReader, PackWriter, blob};

fn sample_pack(key: &MasterKey) -> (PackId, Vec<u8>) {
    let mut w = PackWriter::new(BlobType::Data, 0);
    let inputs = [
        generate(Kind::Text, 600, 1),  // compressed
        generate(Kind::Random, 90, 2), // stored raw
        Vec::new(),                    // empty
        generate(Kind::Zeros, 300, 3), // compressed to a few bytes
    ];
    for d in &inputs {
        w.add(&blob::encode_new(key, BlobType::Data, d, Compression::default()).unwrap())
            .unwrap();
    }
    let p = w.finish(key).unwrap();
    (p.id, p.bytes)
}

/// Opening without the id and reading every blob must fail somewhere.
fn detected_without_id(bytes: &[u8], key: &MasterKey) -> Result<(), String> {
    match PackReader::open(bytes, None, key) {
        Err(_) => Ok(()),
        Ok(r) => match r.verify(key) {
            Err(_) => Ok(()),
            Ok(()) => Err("pack opened and verified".into()),
        },
    }
}

#[test]
fn every_byte_flip_is_detected() {
    let key = MasterKey::generate().unwrap();
    let (id, bytes) = sample_pack(&key);
    assert!(bytes.len() > 700, "{}", bytes.len());
    // Sanity: the untouched pack is fine both ways.
    PackReader::open(&bytes, Some(&id), &key)
        .unwrap()
        .verify(&key)
        .unwrap();
    PackReader::open(&bytes, None, &key)
        .unwrap()
        .verify(&key)
        .unwrap();
    let mut tampered = bytes.clone();
    for i in 0..bytes.len() {
        for x in 1..=255u8 {
            tampered[i] = bytes[i] ^ x;
            // With the id: refused at open, never as a wrong key.
            match PackReader::open(&tampered, Some(&id), &key) {
                Ok(_) => panic!("byte {i} ^ {x:#x} not detected with id"),
                Err(Error::WrongKey { .. }) => panic!("byte {i} ^ {x:#x} reported as a wrong key"),
                Err(_) => {}
            }
            if let Err(e) = detected_without_id(&tampered, &key) {
                panic!("byte {i} ^ {x:#x} not detected without id: {e}");
            }
        }
        tampered[i] = bytes[i];
    }
}

#[test]
fn every_truncation_is_detected() {
    let key = MasterKey::generate().unwrap();
    let (id, bytes) = sample_pack(&key);
    for n in 0..bytes.len() {
        let short = &bytes[..n];
        let e = PackReader::open(short, Some(&id), &key).unwrap_err();
        assert!(matches!(e, Error::Truncated { .. }), "cut at {n}: {e}");
        detected_without_id(short, &key).unwrap_or_else(|e| panic!("cut at {n}: {e}"));
    }
}

#[test]
fn appended_or_swapped_bytes_are_detected() {
    let key = MasterKey::generate().unwrap();
    let (id, bytes) = sample_pack(&key);
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(PackReader::open(&longer, Some(&id), &key).is_err());
    detected_without_id(&longer, &key).unwrap();
    // Two blobs' records swapped inside the pack (same lengths do not
    // matter: ids in the associated data bind each record to its slot).
    let r = PackReader::open(&bytes, None, &key).unwrap();
    let (a, b) = (r.blobs()[0], r.blobs()[1]);
    let mut swapped = bytes.clone();
    let rec_b = bytes[b.offset as usize..(b.offset + b.length) as usize].to_vec();
    swapped[a.offset as usize..a.offset as usize + rec_b.len()].copy_from_slice(&rec_b);
    detected_without_id(&swapped, &key).unwrap();
}

#[test]
fn wrong_key_is_reported_as_such() {
    let key = MasterKey::generate().unwrap();
    let (id, bytes) = sample_pack(&key);
    let other = MasterKey::generate().unwrap();
    let e = PackReader::open(&bytes, Some(&id), &other).unwrap_err();
    assert!(matches!(e, Error::WrongKey { .. }), "{e}");
    assert!(e.to_string().contains("wrong key"), "{e}");
}
