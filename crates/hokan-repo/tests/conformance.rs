//! The storage conformance suite (`hokan_repo::conformance`) against every
//! backend: `memory://`, a local directory, and the servers the scripts in
//! `scripts/` start on loopback: Garage (`s3`), Azurite (`azure`), the GCS
//! emulator (`gcs`) and moto with an Object Lock bucket (`moto`).
//!
//! A remote module uses the location in its `HOKAN_TEST_*_URL` variable,
//! with the credentials the script's env file sets (for Garage:
//! `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...; moto's open server takes
//! any). Without it the tests are skipped, unless `HOKAN_REQUIRE_*=1` (as in
//! CI) makes that a failure. Each test works under a fresh random prefix
//! and never touches anything else.

use hokan_repo::conformance::{self as suite, Remote, unique};

macro_rules! remote {
    ($module:ident, $remote:expr, $($name:ident: |$loc:ident, $cache:ident| $body:expr;)*) => {
        mod $module {
            use super::*;
            $(#[test] fn $name() {
                let Some($loc) = $remote.fresh(stringify!($name)) else { return };
                let dir = tempfile::tempdir().unwrap();
                let $cache = dir.path();
                $body
            })*
        }
    };
}

macro_rules! backends {
    ($($name:ident: |$loc:ident, $cache:ident| $body:expr;)*) => {
        mod memory {
            use super::*;
            $(#[test] fn $name() {
                let $loc = format!("memory://{}", unique(stringify!($name)));
                let dir = tempfile::tempdir().unwrap();
                let $cache = dir.path();
                $body
            })*
        }
        mod local {
            use super::*;
            $(#[test] fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let $loc = dir.path().join("repo").to_str().unwrap().to_string();
                let $cache = &dir.path().join("cache");
                $body
            })*
        }
        remote!(s3, Remote::S3, $($name: |$loc, $cache| $body;)*);
        remote!(azure, Remote::Azure, $($name: |$loc, $cache| $body;)*);
        remote!(gcs, Remote::Gcs, $($name: |$loc, $cache| $body;)*);
        remote!(moto, Remote::Moto, $($name: |$loc, $cache| $body;)*);
    };
}

backends! {
    store_operations: |loc, _cache| suite::store_operations(&loc);
    repository_lifecycle: |loc, cache| suite::repository_lifecycle(&loc, cache);
    key_management: |loc, cache| suite::key_management(&loc, cache);
    snapshots_and_data: |loc, cache| suite::snapshots_and_data(&loc, cache);
    concurrent_writers: |loc, cache| suite::concurrent_writers(&loc, cache);
    damage_is_reported: |loc, cache| suite::damage_is_reported(&loc, cache);
}

/// A program serving several repositories passes each one's credentials
/// in [`OpenOptions::store_settings`](hokan_repo::OpenOptions): they take
/// precedence over the process's environment (Garage: a wrong secret key
/// given there is refused although the environment's is right).
#[test]
fn store_settings_take_precedence_over_the_environment() {
    let Some(loc) = Remote::S3.fresh("settings") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut open = suite::test_open_options(dir.path());
    open.retry.attempts = 1;
    hokan_repo::Repository::init(&loc, b"pw", suite::test_init_options(), open.clone()).unwrap();
    open.store_settings
        .insert("AWS_SECRET_ACCESS_KEY".into(), "0".repeat(64));
    let Err(e) = hokan_repo::Repository::open(&loc, b"pw", open.clone()) else {
        panic!("a wrong secret key in the settings must be used, and refused");
    };
    let text = e.to_string().to_lowercase();
    assert!(
        text.contains("denied") || text.contains("credential") || text.contains("signature"),
        "{e}"
    );
    let right = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap();
    open.store_settings
        .insert("AWS_SECRET_ACCESS_KEY".into(), right);
    hokan_repo::Repository::open(&loc, b"pw", open).unwrap();
}
