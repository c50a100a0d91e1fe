//! Snapshot files written by a real etcd 3.4: split and rebuilt byte for
//! byte, status equal to etcdctl's, records shared across compaction and
//! defragmentation, non-bbolt input refused.

mod common;

use std::collections::HashSet;
use std::path::Path;

use hokan_etcd::testdata::configmap_json;
use hokan_etcd::testing::EtcdProcess;
use hokan_etcd::{Error, IterSource, MemorySink, SplitOptions, Trailer, rebuild, split, status};

fn roundtrip(path: &Path) -> (MemorySink, hokan_etcd::SplitSummary) {
    let bytes = std::fs::read(path).unwrap();
    let mut sink = MemorySink::default();
    // Streamed through a reader that hands out odd-sized pieces, as a network would.
    let summary = split(
        Chunky(&bytes[..], 7919),
        &mut sink,
        &SplitOptions::bbolt(path.display().to_string()),
    )
    .unwrap();
    let mut out = Vec::new();
    let rebuilt = rebuild(
        &sink.layout[..],
        &mut IterSource(sink.records.iter()),
        &mut out,
    )
    .unwrap();
    assert!(
        out == bytes,
        "{} was not rebuilt byte for byte",
        path.display()
    );
    assert_eq!(rebuilt.total_bytes, bytes.len() as u64);
    assert_eq!(summary.total_bytes, bytes.len() as u64);
    (sink, summary)
}

/// A reader that returns at most `n` bytes per call.
struct Chunky<'a>(&'a [u8], usize);

impl std::io::Read for Chunky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.1).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn ids(sink: &MemorySink) -> HashSet<&[u8]> {
    sink.records.iter().map(|r| &r[..]).collect()
}

#[test]
fn real_snapshots_rebuild_exactly_match_etcdctl_status_and_share_records() {
    let Some(mut etcd) = EtcdProcess::start() else {
        return;
    };
    let dir = etcd.scratch().to_path_buf();
    // 1500 ConfigMaps of ~3 KB, and values that need overflow pages.
    let mut pairs: Vec<_> = (0..1500)
        .map(|i| {
            (
                format!("/registry/configmaps/ns/cm-{i:05}"),
                configmap_json(i, 0, 3000),
            )
        })
        .collect();
    for (i, size) in [(0u64, 9_000usize), (1, 70_000), (2, 1_000_000)] {
        pairs.push((
            format!("/registry/big/{i}"),
            configmap_json(9000 + i, 0, size),
        ));
    }
    common::put_all(&etcd, pairs);
    // Rewrite 5% and delete a few: old revisions remain until compaction.
    common::put_all(
        &etcd,
        (0..75).map(|i| {
            (
                format!("/registry/configmaps/ns/cm-{:05}", i * 20),
                configmap_json(i * 20, 1, 3000),
            )
        }),
    );
    etcd.etcdctl_ok(&["del", "/registry/configmaps/ns/cm-00007"]);
    let before = dir.join("before.db");
    common::save(&etcd, &before);

    let rev = etcd.etcdctl_ok(&["endpoint", "status", "-w", "json"]);
    let rev: serde_json::Value = serde_json::from_str(&rev).unwrap();
    let rev = rev[0]["Status"]["header"]["revision"].as_i64().unwrap();
    etcd.etcdctl_ok(&["compact", &rev.to_string(), "--physical"]);
    etcd.etcdctl_ok(&["defrag"]);
    let after = dir.join("after.db");
    common::save(&etcd, &after);

    for path in [&before, &after] {
        let (_, summary) = roundtrip(path);
        assert_eq!(summary.trailer, Trailer::Valid, "{}", path.display());
        let ours = status(&std::fs::read(path).unwrap(), "snapshot").unwrap();
        let (hash, revision, total_key, total_size) = common::etcdctl_status(path);
        assert_eq!(
            (ours.hash, ours.revision, ours.total_key, ours.total_size),
            (hash, revision, total_key, total_size),
            "status of {} differs from etcdctl's",
            path.display()
        );
    }

    // Compaction dropped the 75 old revisions and one deleted key; the
    // defragmented file's records are nearly all the earlier file's.
    let (a, _) = roundtrip(&before);
    let (b, _) = roundtrip(&after);

    // etcdctl restores the rebuilt file: it checks the SHA-256 trailer, so
    // it accepts only the exact bytes.
    let mut rebuilt = Vec::new();
    rebuild(
        &b.layout[..],
        &mut IterSource(b.records.iter()),
        &mut rebuilt,
    )
    .unwrap();
    let rebuilt_path = dir.join("rebuilt.db");
    std::fs::write(&rebuilt_path, &rebuilt).unwrap();
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "restore"])
        .arg(&rebuilt_path)
        .arg(format!("--data-dir={}", dir.join("restored").display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("restored/member/snap/db").is_file());
    let (ra, rb) = (ids(&a), ids(&b));
    let shared = rb.intersection(&ra).count();
    let live_records = rb.len();
    assert!(
        shared * 100 >= live_records * 95,
        "only {shared} of {live_records} records of the defragmented snapshot were in the earlier one"
    );
    // The ~1 MB value spans 245 overflow pages and is one record.
    let largest = b.records.iter().map(Vec::len).max().unwrap();
    assert!(largest > 990_000, "largest record {largest}");

    // The data directory's own db (no trailer, maybe preallocated space).
    etcd.stop();
    let raw = dir.join("data/member/snap/db");
    let (_, summary) = roundtrip(&raw);
    assert_eq!(summary.trailer, Trailer::Absent);
    let ours = status(&std::fs::read(&raw).unwrap(), "db").unwrap();
    let theirs = common::etcdctl_status(&raw);
    assert_eq!(
        (ours.hash, ours.revision, ours.total_key, ours.total_size),
        theirs
    );
}

#[test]
fn anything_that_is_not_bbolt_is_refused_with_the_fix() {
    let not_db = b"PK\x03\x04 this is a zip file, not an etcd snapshot".repeat(200);
    let mut sink = MemorySink::default();
    let err = split(&not_db[..], &mut sink, &SplitOptions::bbolt("backup.zip")).unwrap_err();
    assert!(matches!(err, Error::NotBbolt { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("backup.zip is not a bbolt database"), "{msg}");
    assert!(msg.contains("etcdctl snapshot save"), "{msg}");
    assert!(
        sink.layout.is_empty() && sink.records.is_empty(),
        "something was stored"
    );

    // A real database cut short.
    let mut db = hokan_etcd::testdata::tiny_db();
    db.truncate(db.len() - 4096);
    let err = split(
        &db[..],
        &mut MemorySink::default(),
        &SplitOptions::bbolt("cut.db"),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err}");
    let err = status(&db, "cut.db").unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err}");

    // A trailer that does not match.
    let mut db = hokan_etcd::testdata::tiny_db();
    db.extend([0xAB; 32]);
    let err = split(
        &db[..],
        &mut MemorySink::default(),
        &SplitOptions::bbolt("bad.db"),
    )
    .unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }), "{err}");
    // Not strict: split anyway, and rebuilt exactly.
    let mut sink = MemorySink::default();
    let s = split(&db[..], &mut sink, &SplitOptions::any("bad.db")).unwrap();
    assert_eq!(s.trailer, Trailer::Mismatch);
    let mut out = Vec::new();
    rebuild(
        &sink.layout[..],
        &mut IterSource(sink.records.iter()),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, db);
}
