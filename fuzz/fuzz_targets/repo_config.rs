//! The repository config (`config`): its plain header is read before any
//! password is asked for, its sealed settings right after. No input
//! panics; settings sealed in any version either open to a config that
//! passes its own checks, or fail with an error; a config that opens seals
//! and opens to itself.
#![no_main]

use std::sync::OnceLock;

use hokan_core::MasterKey;
use hokan_core::sample::golden_key;
use hokan_repo::Config;
use hokan_repo::object::{self, HEADER_LEN, Kind};
use libfuzzer_sys::fuzz_target;

use hokan_fuzz as _;

fn key() -> &'static MasterKey {
    static KEY: OnceLock<MasterKey> = OnceLock::new();
    KEY.get_or_init(golden_key)
}

fuzz_target!(|raw: &[u8]| {
    let key = key();
    let _ = object::check_header(raw, Kind::Config, "fuzzed config");
    let _ = Config::open(key, raw, "fuzzed config");

    // The body taken as the settings' plaintext, sealed in the version the
    // header names (seeds hold plaintexts behind a header).
    let Some((head, plain)) = raw.split_at_checked(HEADER_LEN) else {
        return;
    };
    let version = u16::from(head[5] % 5);
    let sealed = object::seal_plain(key, Kind::Config, version, plain).unwrap();
    if let Ok(config) = Config::open(key, &sealed, "fuzzed config") {
        config.validate().unwrap();
        let again = config.seal(key).unwrap();
        assert_eq!(
            Config::open(key, &again, "resealed config").unwrap(),
            config
        );
        // The format and mode decide the version; the settings do not move it.
        assert_eq!(object::version_of(&again), version);
    }
});
