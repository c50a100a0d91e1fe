//! The storage conformance suite (`hokan_repo::conformance`) against every
//! backend: `memory://`, a local directory, and an S3-compatible server.
//!
//! The S3 tests use the server named by `HOKAN_TEST_S3_URL` (for example
//! `s3://hokan-test`, with `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_DEFAULT_REGION` set, as
//! `scripts/garage.sh start` writes them). Without it they are skipped,
//! unless `HOKAN_REQUIRE_S3=1` (as in CI) makes that a failure. Each test
//! works under a fresh random prefix and never touches anything else.

use hokan_repo::conformance::{self as suite, s3_base, unique};

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
        mod s3 {
            use super::*;
            $(#[test] fn $name() {
                let Some(base) = s3_base() else { return };
                let $loc = format!("{base}/{}", unique(stringify!($name)));
                let dir = tempfile::tempdir().unwrap();
                let $cache = dir.path();
                $body
            })*
        }
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
