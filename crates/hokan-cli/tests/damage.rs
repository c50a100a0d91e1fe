//! Damage costs only the damaged bytes: a flipped, cut or lost pack run
//! through the documented workflow (`check --read-data`, `repair packs`,
//! `prune`, the next `backup`) loses exactly the blobs the damage touched,
//! never a pack's worth. Regression tests for items 1 to 3 of the issue
//! "Damage costs only the damaged bytes"; each failed on the code before.
//!
//! The repository is the issue's: two backups of 1.5 MB + 0.7 MB + 200
//! small files.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use hokan_core::sample::{Kind, generate};

/// The source tree and a repository with two backups of it.
struct Setup {
    src: tempfile::TempDir,
    store: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let s = Setup {
            src: tempfile::tempdir().unwrap(),
            store: tempfile::tempdir().unwrap(),
            cache: tempfile::tempdir().unwrap(),
        };
        let src = s.src.path();
        std::fs::write(src.join("big1"), generate(Kind::Random, 1_500_000, 1)).unwrap();
        std::fs::write(src.join("big2"), generate(Kind::Random, 700_000, 2)).unwrap();
        std::fs::create_dir(src.join("small")).unwrap();
        for i in 0..200u64 {
            let kind = if i % 2 == 0 { Kind::Random } else { Kind::Text };
            let len = 100 + (i as usize * 37) % 3000;
            std::fs::write(src.join(format!("small/f{i}")), generate(kind, len, 10 + i)).unwrap();
        }
        init(s.repo(), s.cache.path());
        s.backup();
        s.backup();
        s
    }

    fn repo(&self) -> &str {
        self.store.path().to_str().unwrap()
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        let mut c = hokan(self.repo(), self.cache.path());
        c.args(args);
        run(c)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cmd(args);
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap_or_default();
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("{args:?}: {e}\nstdout: {text}\nstderr: {}", stderr(&out)))
    }

    fn backup(&self) -> serde_json::Value {
        let src = self.src.path().to_str().unwrap().to_string();
        self.json(&["--json", "backup", &src])
    }

    /// The largest pack: the data of every file.
    fn largest_pack(&self) -> PathBuf {
        walk(&self.store.path().join("data"))
            .into_iter()
            .max_by_key(|p| std::fs::metadata(p).unwrap().len())
            .unwrap()
    }

    /// Every file of the latest snapshot that a restore cannot write, by
    /// its path below the source; checks that the rest restore exactly.
    fn unrestorable(&self) -> BTreeSet<String> {
        let target = tempfile::tempdir().unwrap();
        let out = self.cmd(&[
            "restore",
            "latest",
            "--target",
            target.path().to_str().unwrap(),
        ]);
        let src = self.src.path();
        let mut failed = BTreeSet::new();
        for line in stderr(&out).lines() {
            if let Some(rest) = line.strip_prefix("warning: ")
                && let Some((path, _)) = rest.split_once(": not restored")
            {
                failed.insert(relative(Path::new(path), target.path(), src));
            }
        }
        for f in walk(src) {
            let rel = f.strip_prefix(src).unwrap().to_str().unwrap().to_string();
            let restored = target
                .path()
                .join(src.strip_prefix("/").unwrap())
                .join(&rel);
            if !failed.contains(&rel) {
                let same = std::fs::read(&restored).ok() == Some(std::fs::read(&f).unwrap());
                assert!(same, "{rel} restores exactly\n{}", stderr(&out));
            }
        }
        failed
    }

    /// The files of the latest snapshot that `check` names as affected.
    fn affected_in_latest(&self, report: &serde_json::Value) -> BTreeSet<String> {
        let latest = snapshots(self.repo(), self.cache.path()).last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let src = self.src.path();
        report["affected"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["snapshot"].as_str() == Some(&latest))
            .map(|a| relative(Path::new(a["path"].as_str().unwrap()), Path::new("/"), src))
            .collect()
    }
}

/// `path` (below `root`, which holds the source's absolute path) relative
/// to the source.
fn relative(path: &Path, root: &Path, src: &Path) -> String {
    let inside = path.strip_prefix(root).unwrap();
    let inside = Path::new("/").join(inside);
    inside
        .strip_prefix(src)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).unwrap();
    f(&mut b);
    std::fs::write(path, b).unwrap();
}

/// The damage recorded by a check, from its note.
fn recorded(report: &serde_json::Value) -> u64 {
    report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str()?.strip_prefix("recorded "))
        .filter_map(|n| n.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Item 1: one flipped byte in the middle of the largest pack loses the
/// one file whose record it hit. `check --read-data` records that blob
/// alone, and neither `prune` nor `repair packs` then prune loses more.
#[test]
fn one_flipped_byte_costs_one_file_through_check_repair_and_prune() {
    let s = Setup::new();
    let pack = s.largest_pack();
    edit(&pack, |b| {
        let mid = b.len() / 2;
        b[mid] ^= 1;
    });
    let lost = s.unrestorable();
    assert_eq!(lost.len(), 1, "{lost:?}");

    let report = s.json(&["--json", "check", "--read-data"]);
    assert_eq!(recorded(&report), 1, "only the blob that failed: {report}");
    assert_eq!(
        s.affected_in_latest(&report),
        lost,
        "check names what restore loses"
    );

    ok(&s.cmd(&["prune", "--instant-delete"]));
    assert!(
        pack.exists(),
        "the pack holding the only copy of a blob stays"
    );
    assert_eq!(s.unrestorable(), lost, "prune lost nothing more");

    let repaired = s.json(&["--json", "repair", "packs"]);
    assert_eq!(repaired["lost"].as_array().unwrap().len(), 1, "{repaired}");
    assert!(repaired["salvaged"].as_u64().unwrap() >= 200, "{repaired}");
    ok(&s.cmd(&["prune", "--instant-delete"]));
    assert_eq!(s.unrestorable(), lost, "repair and prune lost nothing more");

    // The next backup stores the lost data afresh: everything heals, and
    // then prune removes the damaged pack.
    s.backup();
    ok(&s.cmd(&["prune", "--instant-delete"]));
    assert!(s.unrestorable().is_empty());
    assert!(
        !pack.exists(),
        "the damaged pack goes once nothing needs it"
    );
    ok(&s.cmd(&["check", "--read-data"]));
}

/// Items 1 and 3: damage to a pack's first or last byte (its prefix or
/// trailer) costs no blob: every file restores, check records nothing,
/// `repair packs` salvages every blob by the index's offsets, and prune
/// then deletes the damaged pack with nothing lost.
#[test]
fn a_damaged_first_or_last_byte_costs_nothing() {
    for at_end in [false, true] {
        let s = Setup::new();
        let pack = s.largest_pack();
        edit(&pack, |b| {
            let at = if at_end { b.len() - 1 } else { 0 };
            b[at] ^= 1;
        });
        assert!(s.unrestorable().is_empty(), "at end: {at_end}");
        let report = s.json(&["--json", "check", "--read-data"]);
        assert_eq!(recorded(&report), 0, "{report}");
        assert!(
            report["affected"].as_array().unwrap().is_empty(),
            "{report}"
        );
        assert_eq!(report["ok"], false, "the pack is still reported: {report}");

        let repaired = s.json(&["--json", "repair", "packs"]);
        assert!(
            repaired["lost"].as_array().unwrap().is_empty(),
            "{repaired}"
        );
        assert!(repaired["salvaged"].as_u64().unwrap() >= 200, "{repaired}");
        ok(&s.cmd(&["prune", "--instant-delete"]));
        assert!(!pack.exists(), "salvaged whole, the damaged pack goes");
        assert!(s.unrestorable().is_empty(), "at end: {at_end}");
        ok(&s.cmd(&["check", "--read-data"]));
    }
}

/// Item 3: a pack whose second half is damaged, or that was cut short,
/// gives back its intact first part: `repair packs` salvages what lies
/// before the damage, and what is lost is exactly what check names.
#[test]
fn a_pack_damaged_or_cut_in_its_second_half_gives_back_its_first() {
    for cut in [false, true] {
        let s = Setup::new();
        let pack = s.largest_pack();
        edit(&pack, |b| {
            let half = b.len() / 2;
            if cut {
                b.truncate(half);
            } else {
                b[half..].iter_mut().for_each(|x| *x ^= 0x55);
            }
        });
        let report = s.json(&["--json", "check", "--read-data"]);
        let affected = s.affected_in_latest(&report);
        let repaired = s.json(&["--json", "repair", "packs"]);
        assert!(
            repaired["salvaged"].as_u64().unwrap() > 0,
            "the first half is salvaged (cut: {cut}): {repaired}"
        );
        ok(&s.cmd(&["prune", "--instant-delete"]));
        assert!(pack.exists(), "it holds the only copy of the lost blobs");
        let lost = s.unrestorable();
        assert!(!lost.is_empty() && lost.len() < 203, "{lost:?}");
        assert_eq!(
            lost, affected,
            "exactly what check named is lost (cut: {cut})"
        );
    }
}

/// Item 2: a lost pack is counted in the files it affects, recorded as
/// lost, and never deduplicated against: the next backup stores its data
/// again, every snapshot heals, and prune drops the missing pack.
#[test]
fn a_lost_pack_is_not_deduplicated_against() {
    let s = Setup::new();
    let pack = s.largest_pack();
    std::fs::remove_file(&pack).unwrap();
    let report = s.json(&["--json", "check", "--read-data"]);
    assert_eq!(report["ok"], false);
    let affected = s.affected_in_latest(&report);
    assert_eq!(affected.len(), 202, "every file: {affected:?}");

    let backed = s.backup();
    assert!(
        backed["summary"]["data_added"].as_u64().unwrap() > 2_000_000,
        "the data is stored again: {backed}"
    );
    assert!(s.unrestorable().is_empty());
    ok(&s.cmd(&["prune", "--instant-delete"]));
    ok(&s.cmd(&["check", "--read-data"]));
    // The older snapshots healed too: they need the same blobs.
    for snap in snapshots(s.repo(), s.cache.path()) {
        let target = tempfile::tempdir().unwrap();
        ok(&s.cmd(&[
            "restore",
            snap["id"].as_str().unwrap(),
            "--target",
            target.path().to_str().unwrap(),
        ]));
    }
}

/// Item 2, without check: prune finds the missing pack itself, keeps it
/// listed (snapshots need its blobs), records them as lost and says so;
/// the next backup then stores the data again.
#[test]
fn prune_records_a_lost_pack_it_finds() {
    let s = Setup::new();
    let pack = s.largest_pack();
    std::fs::remove_file(&pack).unwrap();
    let out = s.cmd(&["prune", "--instant-delete"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not in the store"),
        "{}",
        stderr(&out)
    );
    let backed = s.backup();
    assert!(
        backed["summary"]["data_added"].as_u64().unwrap() > 2_000_000,
        "{backed}"
    );
    ok(&s.cmd(&["prune", "--instant-delete"]));
    ok(&s.cmd(&["check", "--read-data"]));
}
