//! Key files (`keys/<id>`), read before the repository is open: no input
//! panics or makes the reader stretch a password with parameters it did
//! not check; a key file created for a password opens with it only, gives
//! the master key back, and describes itself as created.
#![no_main]

use std::sync::OnceLock;

use hokan_core::MasterKey;
use hokan_core::sample::golden_key;
use hokan_repo::keys::{self, KdfParams, KeyInfo};
use hokan_repo::object::{self, Kind};
use libfuzzer_sys::fuzz_target;

use hokan_fuzz as _;

/// The passwords of the committed golden repositories, whose key files
/// are among the seeds: with them the fuzzer reaches the unwrapping.
const PASSWORDS: [&[u8]; 2] = [b"golden repository v1", b"golden repository v2"];

fn key() -> &'static MasterKey {
    static KEY: OnceLock<MasterKey> = OnceLock::new();
    KEY.get_or_init(golden_key)
}

/// The parameters a key file asks for, read as docs/FORMAT.md §10 lays the
/// body out; `None` if it does not parse that far.
fn kdf_of(bytes: &[u8]) -> Option<KdfParams> {
    let body = object::check_header(bytes, Kind::Key, "k").ok()?;
    let (kdf, _): (KdfParams, _) = postcard::take_from_bytes(body).ok()?;
    Some(kdf)
}

/// Cheap enough to stretch on every run. The reader accepts up to 4 GiB
/// and 100 passes, by design: a real key file may cost that much.
fn cheap(k: &KdfParams) -> bool {
    k.memory_kib <= 1024 && k.iterations <= 2 && k.parallelism <= 2
}

fuzz_target!(|raw: &[u8]| {
    let key = key();
    let _ = keys::describe(raw, key, "fuzzed key file");
    if kdf_of(raw).is_some_and(|k| cheap(&k)) {
        for password in PASSWORDS {
            let _ = keys::unwrap(raw, password, "fuzzed key file");
        }
    }

    // A key file made here, with a password, cost and labels taken from
    // the input, opens with its password only.
    let (password, rest) = raw.split_at(raw.len().min(12));
    let pick = |i: usize| u32::from(rest.get(i).copied().unwrap_or(0));
    let kdf = KdfParams {
        memory_kib: 16 + pick(0) % 48,
        iterations: 1 + pick(1) % 2,
        parallelism: 1 + pick(2) % 2,
    };
    let info = KeyInfo {
        hostname: String::from_utf8_lossy(rest.get(3..).unwrap_or_default()).into_owned(),
        username: String::new(),
        created: i64::from(pick(4)) - 100,
        label: String::from_utf8_lossy(password).into_owned(),
    };
    match keys::create(key, password, kdf, &info) {
        Ok((id, bytes)) => {
            assert_eq!(id, object::object_id(&bytes));
            assert_eq!(kdf_of(&bytes), Some(kdf));
            let opened = keys::unwrap(&bytes, password, "k").unwrap().unwrap();
            assert_eq!(opened.to_bytes()[..], key.to_bytes()[..]);
            let mut wrong = password.to_vec();
            wrong.push(0);
            assert!(keys::unwrap(&bytes, &wrong, "k").unwrap().is_none());
            assert_eq!(keys::describe(&bytes, key, "k").unwrap(), (info, kdf));
        }
        Err(_) => assert!(password.is_empty()),
    }
});
