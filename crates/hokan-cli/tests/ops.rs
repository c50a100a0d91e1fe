//! Operating a repository through the `hokan` binary: tag, cat, stats,
//! version/completions/man.

mod common;

use std::path::Path;

use common::*;

/// A repository with one backup of a small tree; returns (tempdir, repo,
/// cache, source dir).
fn setup() -> (
    tempfile::TempDir,
    String,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").to_str().unwrap().to_string();
    let cache = dir.path().join("cache");
    init(&repo, &cache);
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"the unique content of a.txt\n").unwrap();
    std::fs::write(src.join("sub/b.txt"), b"bbbbbbbbbb").unwrap();
    // The same content twice: restore-size counts it twice, raw data once.
    std::fs::write(src.join("sub/copy.txt"), b"bbbbbbbbbb").unwrap();
    (dir, repo, cache, src)
}

fn backup(repo: &str, cache: &Path, src: &Path, extra: &[&str]) -> String {
    let mut c = hokan(repo, cache);
    c.args(["--json", "backup"]).arg(src).args(extra);
    let out = ok(&run(c));
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    last["snapshot_id"].as_str().unwrap().to_string()
}

fn json_of(repo: &str, cache: &Path, args: &[&str]) -> serde_json::Value {
    let mut c = hokan(repo, cache);
    c.arg("--json").args(args);
    let out = ok(&run(c));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn ids_in(repo: &str, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(Path::new(repo).join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn tag_rewrites_snapshots_and_removes_the_old_ones() {
    let (_dir, repo, cache, src) = setup();
    let first = backup(&repo, &cache, &src, &["--tag", "daily"]);
    std::fs::write(src.join("a.txt"), b"changed").unwrap();
    let second = backup(&repo, &cache, &src, &[]);
    let before = snapshots(&repo, &cache);
    assert_eq!(before.len(), 2);

    // Add two tags to the first only: it gets a new id, the old file goes.
    let r = json_of(&repo, &cache, &["tag", &first[..8], "--add", "keep,zz"]);
    assert_eq!(r["changed"], 1, "{r}");
    let new_first = r["snapshots"][0]["new_id"].as_str().unwrap().to_string();
    assert_ne!(new_first, first);
    assert_eq!(
        r["snapshots"][0]["tags"],
        serde_json::json!(["daily", "keep", "zz"])
    );
    let ids = ids_in(&repo, "snapshots");
    assert!(ids.contains(&new_first) && !ids.contains(&first), "{ids:?}");
    assert_eq!(ids.len(), 2);
    let after = snapshots(&repo, &cache);
    let old = before.iter().find(|s| s["id"] == first.as_str()).unwrap();
    let new = after
        .iter()
        .find(|s| s["id"] == new_first.as_str())
        .unwrap();
    // Everything but the tags (and id) is the same snapshot.
    for field in ["time", "tree", "paths", "hostname", "parent", "summary"] {
        assert_eq!(old[field], new[field], "{field}");
    }
    // The data is still reachable through the new id.
    let mut c = hokan(&repo, &cache);
    c.args(["ls", &new_first]);
    assert!(ok(&run(c)).contains("a.txt"));

    // No snapshot argument: every snapshot the filter admits (only the
    // one tagged "keep").
    let r = json_of(&repo, &cache, &["tag", "--tag", "keep", "--remove", "zz"]);
    assert_eq!(r["changed"], 1, "{r}");
    assert_eq!(r["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(
        r["snapshots"][0]["tags"],
        serde_json::json!(["daily", "keep"])
    );
    let tagged = r["snapshots"][0]["new_id"].as_str().unwrap().to_string();

    // Nothing to change: same id, nothing written or removed.
    let r = json_of(&repo, &cache, &["tag", &tagged, "--add", "keep"]);
    assert_eq!(r["changed"], 0);
    assert_eq!(r["snapshots"][0]["new_id"], tagged.as_str());

    // --set replaces; --set "" clears.
    let r = json_of(&repo, &cache, &["tag", &second, "--set", "weekly"]);
    assert_eq!(r["snapshots"][0]["tags"], serde_json::json!(["weekly"]));
    let r = json_of(&repo, &cache, &["tag", "latest", "--set", ""]);
    assert_eq!(r["snapshots"][0]["tags"], serde_json::json!([]));
    assert_eq!(snapshots(&repo, &cache).len(), 2);

    // Nothing asked: an error that names the flags, and no change.
    let mut c = hokan(&repo, &cache);
    c.args(["tag", "latest"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--add"), "{}", stderr(&out));
    // --set with --add is refused by the parser (usage error).
    let mut c = hokan(&repo, &cache);
    c.args(["tag", "latest", "--set", "a", "--add", "b"]);
    assert_eq!(run(c).status.code(), Some(2));
}

#[test]
fn cat_prints_every_kind_of_object() {
    let (_dir, repo, cache, src) = setup();
    let snap = backup(&repo, &cache, &src, &[]);

    let config = json_of(&repo, &cache, &["cat", "config"]);
    assert_eq!(config["format"], 2);
    assert!(config["chunk_avg"].as_u64().unwrap() > 0);
    assert_eq!(config["pack_size"], 4 << 20, "init gave --pack-size 4M");

    let s = json_of(&repo, &cache, &["cat", "snapshot", &snap[..10]]);
    assert_eq!(s["id"], snap.as_str());
    let tree = s["tree"].as_str().unwrap().to_string();

    let keys = ids_in(&repo, "keys");
    let k = json_of(&repo, &cache, &["cat", "key", &keys[0][..6]]);
    assert_eq!(k["id"], keys[0].as_str());
    assert_eq!(k["current"], true);
    assert_eq!(k["kdf"]["iterations"], 1);

    // The index lists the packs; each pack's own header lists the same blobs.
    let mut blobs_in_index = Vec::new();
    let mut packs = Vec::new();
    for id in ids_in(&repo, "index") {
        let ix = json_of(&repo, &cache, &["cat", "index", &id]);
        for p in ix["packs"].as_array().unwrap() {
            packs.push(p["id"].as_str().unwrap().to_string());
            for b in p["blobs"].as_array().unwrap() {
                blobs_in_index.push((b["id"].as_str().unwrap().to_string(), b.clone()));
            }
        }
    }
    assert!(packs.len() >= 2, "a data pack and a tree pack: {packs:?}");
    let mut blobs_in_packs = Vec::new();
    for p in &packs {
        let pj = json_of(&repo, &cache, &["cat", "pack", p]);
        assert_eq!(pj["id"], p.as_str());
        assert_eq!(pj["version"], 2);
        for b in pj["blobs"].as_array().unwrap() {
            blobs_in_packs.push((b["id"].as_str().unwrap().to_string(), b.clone()));
        }
    }
    blobs_in_index.sort_by(|a, b| a.0.cmp(&b.0));
    blobs_in_packs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(blobs_in_index, blobs_in_packs);

    // A data blob, raw: the file's content.
    let content = b"the unique content of a.txt\n";
    let (id, _) = blobs_in_index
        .iter()
        .find(|(_, b)| b["type"] == "data" && b["uncompressed_length"] == content.len())
        .expect("a.txt's blob");
    let mut c = hokan(&repo, &cache);
    c.args(["cat", "blob", id]);
    let out = run(c);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, content);

    // The root tree, decoded.
    let t = json_of(&repo, &cache, &["cat", "tree", &tree]);
    assert_eq!(t["nodes"].as_array().unwrap().len(), 1, "{t}");

    // Errors: a missing id, a non-hex id, an id the kind needs.
    for (args, says) in [
        (vec!["cat", "pack", "ffffffffff"], "no pack"),
        (vec!["cat", "blob", "xyz"], "not a blob id"),
        (vec!["cat", "index"], "needs an id"),
    ] {
        let mut c = hokan(&repo, &cache);
        c.args(&args);
        let out = run(c);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn stats_in_each_mode() {
    let (_dir, repo, cache, src) = setup();
    let first = backup(&repo, &cache, &src, &[]);
    // a.txt 28 bytes, b.txt and copy.txt 10 bytes each (same content).
    let files_bytes = 28 + 10 + 10;
    let r = json_of(&repo, &cache, &["stats", &first]);
    assert_eq!(r["snapshots_count"], 1);
    assert_eq!(r["total_file_count"], 3, "{r}");
    assert_eq!(r["total_size"], files_bytes);

    let r = json_of(&repo, &cache, &["stats", "--mode", "files-by-contents"]);
    assert_eq!(r["total_file_count"], 2, "the copy counts once: {r}");
    assert_eq!(r["total_size"], 28 + 10);

    // A second snapshot with one new file: restore size doubles plus the
    // new file; unique contents grow by one.
    std::fs::write(src.join("new.txt"), b"12345").unwrap();
    backup(&repo, &cache, &src, &[]);
    let r = json_of(&repo, &cache, &["stats"]);
    assert_eq!(r["snapshots_count"], 2);
    assert_eq!(r["total_file_count"], 3 + 4);
    assert_eq!(r["total_size"], 2 * files_bytes + 5);
    let r = json_of(&repo, &cache, &["stats", "--mode", "files-by-contents"]);
    assert_eq!(r["total_file_count"], 3);

    // Raw data: the three distinct contents (28 + 10 + 5 bytes) and the
    // trees; stored size is what the packs hold for them.
    let r = json_of(&repo, &cache, &["stats", "--mode", "raw-data"]);
    let blobs = r["total_blob_count"].as_u64().unwrap();
    let plain = r["total_uncompressed_size"].as_u64().unwrap();
    let stored = r["total_size"].as_u64().unwrap();
    assert!(blobs > 3, "3 data blobs and the trees: {r}");
    assert!(plain > 43, "{r}");
    let packs_total: u64 = walk(&Path::new(&repo).join("data"))
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        stored > 0 && stored < packs_total,
        "records, not pack headers: {stored} of {packs_total}"
    );
    let ratio = r["compression_ratio"].as_f64().unwrap();
    assert!((ratio - plain as f64 / stored as f64).abs() < 1e-9);
    // Only the latest: its trees differ from the first's, so fewer.
    let latest = json_of(&repo, &cache, &["stats", "latest", "--mode", "raw-data"]);
    assert!(
        latest["total_blob_count"].as_u64().unwrap() < blobs,
        "{latest}"
    );

    // Text output names the mode and the figures.
    let mut c = hokan(&repo, &cache);
    c.args(["stats", "--mode", "raw-data"]);
    let text = ok(&run(c));
    assert!(
        text.contains("raw-data") && text.contains("Compression Ratio"),
        "{text}"
    );
}

#[test]
fn version_completions_and_man() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, cache) = ("unused", dir.path().join("cache"));
    let v = json_of(repo, &cache, &["version"]);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["repository_formats"], serde_json::json!([1, 2]));
    assert!(v["rustc"].as_str().unwrap().starts_with("rustc "), "{v}");
    assert!(v["target"].as_str().unwrap().contains("-"), "{v}");

    let mut c = hokan(repo, &cache);
    c.args(["completions", "bash"]);
    let bash = ok(&run(c));
    assert!(bash.contains("_hokan()") && bash.contains("stats"), "bash");
    let mut c = hokan(repo, &cache);
    c.args(["completions", "zsh"]);
    assert!(ok(&run(c)).starts_with("#compdef hokan"));
    let mut c = hokan(repo, &cache);
    c.args(["completions", "tcsh"]);
    assert_eq!(
        run(c).status.code(),
        Some(2),
        "not a shell clap_complete knows"
    );

    let mut c = hokan(repo, &cache);
    c.arg("man");
    let page = ok(&run(c));
    assert!(
        page.contains(".TH hokan 1"),
        "{}",
        &page[..page.len().min(300)]
    );
    assert!(page.contains("no\\-cache"), "global flags are documented");
    let mandir = dir.path().join("man");
    let mut c = hokan(repo, &cache);
    c.args(["--json", "man", "--dir"]).arg(&mandir);
    let r: serde_json::Value = serde_json::from_str(ok(&run(c)).trim()).unwrap();
    for page in [
        "hokan.1",
        "hokan-tag.1",
        "hokan-stats.1",
        "hokan-etcd-backup.1",
    ] {
        assert!(mandir.join(page).is_file(), "{page}");
    }
    assert_eq!(r["pages"].as_u64().unwrap() as usize, walk(&mandir).len());
}
