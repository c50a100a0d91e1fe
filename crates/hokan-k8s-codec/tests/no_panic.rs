//! No input makes the decoder panic: random bytes, and fixtures with bytes
//! flipped, cut short or spliced, must give a value or an error.

use proptest::prelude::*;

fn fixtures() -> Vec<Vec<u8>> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/k8s/api-testdata"
    );
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pb"))
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn exercise(value: &[u8]) {
    let _ = hokan_k8s_codec::peek_type(value);
    if let Ok(o) = hokan_k8s_codec::decode(value) {
        let _ = hokan_k8s_codec::to_yaml(&o.object);
    }
    let _ = hokan_k8s_codec::RegistryKey::parse(&String::from_utf8_lossy(value));
    let _ = hokan_k8s_codec::EncryptedValue::parse(value);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..512), magic in any::<bool>()) {
        if magic {
            bytes.splice(0..0, *b"k8s\0");
        }
        exercise(&bytes);
    }

    #[test]
    fn damaged_fixtures(which in any::<prop::sample::Index>(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let all = fixtures();
        let mut v = all[which.index(all.len())].clone();
        for (at, b) in flips {
            let i = at.index(v.len());
            v[i] ^= b;
        }
        exercise(&v);
        v.truncate(cut.index(v.len() + 1));
        exercise(&v);
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    // A RawExtension holding an envelope holding a RawExtension …: bounded by depth.
    let mut raw = br#"{"a":1}"#.to_vec();
    for _ in 0..200 {
        let ev = [vec![0x12], varint(raw.len()), raw.clone()].concat(); // WatchEvent.object (field 2) = RawExtension{raw}
        let inner = [vec![0x0a], varint(ev.len()), ev].concat(); // RawExtension.raw (field 1)
        let tm = b"\x0a\x02v1\x12\x0aWatchEvent";
        raw = [
            b"k8s\0".as_slice(),
            &[0x0a, tm.len() as u8],
            tm,
            &[0x12],
            &varint(inner.len()),
            &inner,
        ]
        .concat();
    }
    let _ = hokan_k8s_codec::decode(&raw);
}

fn varint(mut x: usize) -> Vec<u8> {
    let mut v = Vec::new();
    while x >= 0x80 {
        v.push((x as u8) | 0x80);
        x >>= 7;
    }
    v.push(x as u8);
    v
}
