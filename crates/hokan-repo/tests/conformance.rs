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
