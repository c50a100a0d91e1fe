//! Snapshots through a real repository: a live backup restored byte for
//! byte and served again by etcd after `etcdctl snapshot restore`; files
//! imported (etcdctl's, a member's raw db); anything else refused with
//! nothing stored; a cut stream commits nothing; status without a rebuild.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hokan_core::fs::NoProgress;
use hokan_etcd::testdata::configmap_json;
use hokan_etcd::testing::EtcdProcess;
use hokan_etcd::{
    BackupOptions, Error, EtcdEndpoint, EtcdSnapshot, backup_live, import_file, restore_file,
    status_file,
};

/// Keys with history: puts, rewrites, deletes, a lease and a compaction.
fn load(etcd: &EtcdProcess, n: u64) {
    common::put_all(
        etcd,
        (0..n).map(|i| {
            (
                format!("/registry/configmaps/ns-{}/cm-{i}", i % 7),
                configmap_json(i, 0, 1500),
            )
        }),
    );
    let middle = common::revision(&etcd.url);
    common::put_all(
        etcd,
        (0..n / 10).map(|i| {
            (
                format!("/registry/configmaps/ns-{}/cm-{i}", i % 7),
                configmap_json(i, 1, 1500),
            )
        }),
    );
    etcd.etcdctl_ok(&["del", "/registry/configmaps/ns-1/cm-1"]);
    etcd.etcdctl_ok(&["put", "plain-key", ""]);
    let lease = etcd.etcdctl_ok(&["lease", "grant", "600"]);
    let id = lease.split_whitespace().nth(1).unwrap().to_string();
    etcd.etcdctl_ok(&["put", "--lease", &id, "/registry/leases/x", "held"]);
    // Compacted before the rewrites: the first versions of the rewritten
    // keys stay (they are the newest at the compaction), the rest of the
    // history after it too.
    etcd.etcdctl_ok(&["compact", &middle.to_string()]);
}

fn assert_same_status(facts: &hokan_etcd::DbFacts, file: &Path) {
    let (hash, revision, total_key, total_size) = common::etcdctl_status(file);
    let st = facts.status.expect("status computed while storing");
    assert_eq!(
        (st.hash, st.revision, st.total_key, st.total_size),
        (hash, revision, total_key, total_size),
        "the stored status differs from etcdctl's"
    );
}

#[test]
fn a_live_backup_restores_exactly_and_a_restarted_etcd_serves_it() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    load(&etcd, 1500);
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = common::repo(tmp.path());
    let ep = EtcdEndpoint::new(&etcd.url).unwrap();
    let backed = backup_live(&mut repo, &ep, &BackupOptions::default(), &NoProgress).unwrap();
    let snap = &backed.entry.snapshot;
    assert_eq!(snap.source, hokan_repo::SourceKind::ETCD);
    assert!(
        backed.facts.trailer,
        "a live snapshot carries etcd's SHA-256"
    );
    assert_eq!(snap.identity, backed.facts.cluster_id.clone().unwrap());
    assert_eq!(snap.summary.bytes, backed.facts.size);

    // Restored from a fresh index, as another host would.
    let repo = common::reopen(tmp.path());
    let stored = EtcdSnapshot::find(&repo, "latest").unwrap();
    assert_eq!(stored.facts, backed.facts);
    let file = tmp.path().join("restored.db");
    let rebuilt = restore_file(&repo, &stored, &file, &NoProgress).unwrap();
    assert_eq!(rebuilt.total_bytes, backed.facts.size);
    assert_same_status(&backed.facts, &file);
    assert_eq!(status_file(&file).unwrap(), backed.facts.status.unwrap());
    // An existing file is never replaced.
    let err = restore_file(&repo, &stored, &file, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");

    // The catalog lists exactly the keys etcd serves, at their revisions.
    let before = common::all_kvs(&etcd.url);
    let objects = hokan_etcd::Objects::open(&repo, &stored).unwrap();
    let live: Vec<Vec<u8>> = objects
        .catalog
        .live()
        .iter()
        .map(|e| e.key.clone())
        .collect();
    let keys: Vec<Vec<u8>> = before.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(live, keys);
    assert_eq!(backed.keys, keys.len() as u64);
    let e = objects.by_key("/registry/configmaps/ns-2/cm-2").unwrap();
    assert_eq!(objects.value(e).unwrap(), configmap_json(2, 1, 1500));

    // etcdctl restores the file into a new member that serves the same data.
    drop(etcd);
    let restored = EtcdProcess::start_restored(&file).unwrap();
    assert_eq!(common::all_kvs(&restored.url), before);
}

#[test]
fn files_from_etcdctl_and_a_members_raw_db_import_and_restore_exactly() {
    let Some(mut etcd) = EtcdProcess::start() else {
        return;
    };
    load(&etcd, 600);
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = common::repo(tmp.path());
    let saved = tmp.path().join("etcdctl.db");
    common::save(&etcd, &saved);
    let live_id = {
        let ep = EtcdEndpoint::new(&etcd.url).unwrap();
        hokan_etcd::LiveSnapshot::start(&ep)
            .unwrap()
            .identity()
            .cluster_id
    };
    etcd.stop();
    let raw = tmp.path().join("member-db");
    std::fs::copy(etcd.scratch().join("data/member/snap/db"), &raw).unwrap();

    for (file, trailer) in [(&saved, true), (&raw, false)] {
        let backed = import_file(&mut repo, file, &BackupOptions::default(), &NoProgress).unwrap();
        assert_eq!(backed.facts.trailer, trailer, "{}", file.display());
        assert_same_status(&backed.facts, file);
        // The cluster id etcd computes from its members, without asking it.
        assert_eq!(backed.facts.cluster_id, Some(format!("{live_id:x}")));
        assert_eq!(backed.facts.cluster_id_source.as_deref(), Some("members"));
        let stored = EtcdSnapshot::open(&repo, backed.entry.clone()).unwrap();
        let out = tmp
            .path()
            .join(format!("{}.restored", backed.entry.id.short()));
        restore_file(&repo, &stored, &out, &NoProgress).unwrap();
        assert!(
            std::fs::read(&out).unwrap() == std::fs::read(file).unwrap(),
            "{} was not restored byte for byte",
            file.display()
        );
    }
    // Both are snapshots of one cluster: the second found the first as parent.
    let all = repo.snapshots().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].snapshot.parent, Some(all[0].id));
}

#[test]
fn anything_but_bbolt_is_refused_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = common::repo(tmp.path());
    let write = |name: &str, bytes: &[u8]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let mut db = hokan_etcd::testdata::tiny_db();
    let cut = write("cut.db", &db[..db.len() - 4096]);
    db[4096 * 4 + 100] ^= 0xff;
    let cases = [
        write("empty.db", b""),
        write("text.db", b"this is not a database\n"),
        write(
            "random.db",
            &(0..100_000u32)
                .map(|i| (i * 7919) as u8)
                .collect::<Vec<_>>(),
        ),
        cut,
        write("tar.db", &[b"ustar".as_slice(), &[0; 5000]].concat()),
    ];
    for file in &cases {
        let err = import_file(&mut repo, file, &BackupOptions::default(), &NoProgress).unwrap_err();
        eprintln!("{}: {err}", file.display());
        assert!(
            matches!(
                err,
                Error::NotBbolt { .. } | Error::Truncated { .. } | Error::Corrupted { .. }
            ),
            "{}: {err}",
            file.display()
        );
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
    }
    let err = import_file(
        &mut repo,
        &tmp.path().join("missing.db"),
        &Default::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let repo = common::reopen(tmp.path());
    assert!(repo.snapshots().unwrap().is_empty());
    assert_eq!(repo.index().len(), 0, "no data may be stored");
}

/// Kills etcd once `after` bytes of the snapshot were read.
struct KillAfter {
    pid: u32,
    after: u64,
    read: AtomicU64,
    killed: AtomicBool,
}

impl hokan_core::fs::Progress for KillAfter {
    fn bytes(&self, n: u64) {
        let read = self.read.fetch_add(n, Ordering::Relaxed) + n;
        if read >= self.after && !self.killed.swap(true, Ordering::Relaxed) {
            std::process::Command::new("kill")
                .args(["-9", &self.pid.to_string()])
                .status()
                .unwrap();
        }
    }
}

#[test]
fn a_stream_cut_short_commits_nothing() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    for part in 0..4u64 {
        common::put_all(
            &etcd,
            (0..4000).map(|i| {
                let i = part * 4000 + i;
                (format!("/registry/bulk/{i}"), configmap_json(i, 0, 2500))
            }),
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = common::repo(tmp.path());
    let mut ep = EtcdEndpoint::new(&etcd.url).unwrap();
    ep.idle_timeout = std::time::Duration::from_secs(5);
    let killer = KillAfter {
        pid: etcd.pid().unwrap(),
        after: 4 << 20,
        read: AtomicU64::new(0),
        killed: AtomicBool::new(false),
    };
    let err = backup_live(&mut repo, &ep, &BackupOptions::default(), &killer).unwrap_err();
    eprintln!("cut stream: {err}");
    assert!(
        matches!(err, Error::Truncated { .. } | Error::Etcd { .. }),
        "{err}"
    );
    assert!(killer.killed.load(Ordering::Relaxed));
    assert!(common::reopen(tmp.path()).snapshots().unwrap().is_empty());
}

/// A stored snapshot's status without a live etcd or a file: the recorded
/// one, or, when none was recorded, the rebuilt database's, which is the
/// same.
#[test]
fn a_stored_snapshot_has_its_status_recorded_or_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = common::repo(dir.path());
    let file = dir.path().join("tiny.db");
    std::fs::write(&file, hokan_etcd::testdata::tiny_db()).unwrap();
    import_file(&mut repo, &file, &BackupOptions::default(), &NoProgress).unwrap();
    let mut snap = EtcdSnapshot::find(&repo, "latest").unwrap();
    let recorded = hokan_etcd::stored_status(&repo, &snap).unwrap();
    assert_eq!(recorded, status_file(&file).unwrap());
    snap.facts.status = None;
    assert_eq!(hokan_etcd::stored_status(&repo, &snap).unwrap(), recorded);
}

/// A file whose SHA-256 trailer does not match passes the status check
/// (as `etcdctl snapshot status` does) and fails only while the session
/// splits it: the splitter's own error comes back from the session as it
/// was, nothing is committed, and what was uploaded is indexed.
#[test]
fn an_error_found_inside_the_session_comes_back_as_the_etcd_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = common::repo(tmp.path());
    let mut db = hokan_etcd::testdata::tiny_db();
    db.extend([0xAB; 32]);
    let file = tmp.path().join("bad-trailer.db");
    std::fs::write(&file, &db).unwrap();
    let err = import_file(&mut repo, &file, &BackupOptions::default(), &NoProgress).unwrap_err();
    match &err {
        Error::HashMismatch { what, .. } => {
            assert!(what.starts_with(&file.display().to_string()), "{what}")
        }
        other => panic!("expected the splitter's HashMismatch, got {other:?}"),
    }
    assert!(common::reopen(tmp.path()).snapshots().unwrap().is_empty());
}

#[test]
fn tags_are_recorded_as_every_source_records_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = common::repo(tmp.path());
    let file = tmp.path().join("tiny.db");
    std::fs::write(&file, hokan_etcd::testdata::tiny_db()).unwrap();
    let options = BackupOptions {
        tags: vec![
            "hourly ".into(),
            String::new(),
            " hourly".into(),
            "dr".into(),
        ],
        ..Default::default()
    };
    let backed = import_file(&mut repo, &file, &options, &NoProgress).unwrap();
    assert_eq!(backed.entry.snapshot.tags, ["dr", "hourly"]);
}
