//! The plain object header (read before any key is known) and the sealed
//! envelope of repository objects, and the lock objects inside it
//! (deletion markers, damage records): no input panics; a header the
//! check accepts names a known kind and version; sealing then opening
//! gives back the version and plaintext; a decoded lock object encodes
//! and decodes to itself.
#![no_main]

use std::sync::OnceLock;

use hokan_core::MasterKey;
use hokan_core::sample::golden_key;
use hokan_repo::locks::LockObject;
use hokan_repo::object::{self, HEADER_LEN, Kind, OBJECT_MAGIC};
use libfuzzer_sys::fuzz_target;

use hokan_fuzz as _;

const KINDS: [Kind; 5] = [
    Kind::Config,
    Kind::Key,
    Kind::Index,
    Kind::Snapshot,
    Kind::Lock,
];

fn key() -> &'static MasterKey {
    static KEY: OnceLock<MasterKey> = OnceLock::new();
    KEY.get_or_init(golden_key)
}

fuzz_target!(|raw: &[u8]| {
    let key = key();
    for kind in KINDS {
        if let Ok(body) = object::check_header(raw, kind, "fuzzed object") {
            assert_eq!(&raw[..4], OBJECT_MAGIC);
            assert_eq!(raw[4], kind as u8);
            let v = object::version_of(raw);
            assert!((1..=kind.current_version()).contains(&v));
            assert_eq!(body.len(), raw.len() - HEADER_LEN);
        }
        // Fuzzed bytes almost never authenticate; what matters is that
        // every failure is an error.
        if let Ok((_, p)) = object::open_raw(key, kind, raw, "fuzzed object") {
            let _ = object::decode::<LockObject>(&p, "fuzzed lock");
        }
    }

    // The envelope round trip, for every kind and version it accepts, of
    // the body taken as a plaintext (seeds hold plaintexts behind a header).
    let Some((head, plain)) = raw.split_at_checked(HEADER_LEN) else {
        return;
    };
    // Kind bytes 1 to 5 name config to lock, as in the header.
    let kind = KINDS[(usize::from(head[4]) + KINDS.len() - 1) % KINDS.len()];
    let version = u16::from(head[5]) % (kind.current_version() + 2);
    let sealed = object::seal_plain(key, kind, version, plain).unwrap();
    match object::open_raw(key, kind, &sealed, "sealed object") {
        Ok((v, p)) => {
            assert_eq!(v, version);
            assert_eq!(p, plain);
        }
        Err(_) => assert!(version == 0 || version > kind.current_version()),
    }

    // Lock objects: what decodes re-encodes to a value that decodes the same.
    if let Ok(lock) = object::decode::<LockObject>(plain, "fuzzed lock") {
        let again = postcard::to_stdvec(&lock).unwrap();
        let back: LockObject = object::decode(&again, "re-encoded lock").unwrap();
        assert_eq!(back, lock);
    }
});
