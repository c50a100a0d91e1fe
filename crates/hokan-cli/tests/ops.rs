//! Operating a repository through the `hokan` binary: tag, cat, stats,
//! version/completions/man and metrics files.

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
    // Its one directory is small, so the root carries it (tree version 3)
    // and no index lists it; `cat tree` still finds it by a prefix.
    let sub = t["nodes"][0]["subtree"]
        .as_str()
        .expect("a subtree id")
        .to_string();
    assert!(
        !blobs_in_index.iter().any(|(id, _)| *id == sub),
        "{sub} is carried"
    );
    let st = json_of(&repo, &cache, &["cat", "tree", &sub[..12]]);
    assert_eq!(st["id"], sub.as_str());
    // The path down to src: the temporary directory's one entry.
    assert_eq!(st["nodes"].as_array().unwrap().len(), 1, "{st}");
    assert_eq!(st["nodes"][0]["type"], "dir", "{st}");

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
    assert!(
        page.contains("metrics\\-file"),
        "global flags are documented"
    );
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

/// One parsed sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parses Prometheus text exposition strictly: every line is a HELP or
/// TYPE comment or `name{k="v",...} value`; each metric's HELP and TYPE
/// come before its samples.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    let mut typed = Vec::new();
    let mut out = Vec::new();
    assert!(text.ends_with('\n'), "ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(is_name(name) && !help.is_empty(), "{line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(is_name(name), "{line}");
            assert!(["gauge", "counter", "untyped"].contains(&kind), "{line}");
            assert!(
                !typed.contains(&name.to_string()),
                "one TYPE per metric: {line}"
            );
            typed.push(name.to_string());
        } else {
            let open = line
                .find('{')
                .unwrap_or_else(|| panic!("no labels: {line}"));
            let name = &line[..open];
            assert!(is_name(name), "{line}");
            assert!(
                typed.contains(&name.to_string()),
                "TYPE before samples: {line}"
            );
            let mut labels = Vec::new();
            let mut rest = &line[open + 1..];
            loop {
                if let Some(r) = rest.strip_prefix('}') {
                    rest = r;
                    break;
                }
                let eq = rest.find("=\"").unwrap_or_else(|| panic!("label: {line}"));
                let key = &rest[..eq];
                assert!(is_name(key), "label name in {line}");
                let mut value = String::new();
                let mut chars = rest[eq + 2..].char_indices();
                let end = loop {
                    match chars.next() {
                        Some((i, '"')) => break eq + 2 + i + 1,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => value.push(c),
                            other => panic!("bad escape {other:?} in {line}"),
                        },
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label value: {line}"),
                    }
                };
                labels.push((key.to_string(), value));
                rest = &rest[end..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
            let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("{line}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
            out.push((name.to_string(), labels, value));
        }
    }
    out
}

fn metric<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a Sample> {
    samples.iter().filter(|s| s.0 == name).collect()
}

fn label<'a>(s: &'a Sample, key: &str) -> &'a str {
    &s.1.iter().find(|(k, _)| k == key).unwrap().1
}

#[test]
fn metrics_file_after_backup_failure_and_prune() {
    let (dir, repo, cache, src) = setup();
    let file = dir.path().join("hokan.prom");
    let mut c = hokan(&repo, &cache);
    c.args(["--json", "--metrics-file"])
        .arg(&file)
        .arg("backup")
        .arg(&src);
    let out = ok(&run(c));
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let snap = last["snapshot_id"].as_str().unwrap();
    assert!(
        !dir.path().join("hokan.prom.tmp").exists(),
        "renamed into place"
    );
    let samples = parse_exposition(&std::fs::read_to_string(&file).unwrap());
    let one = |name: &str| {
        let v = metric(&samples, name);
        assert_eq!(v.len(), 1, "{name}: {samples:?}");
        v[0].clone()
    };
    let ok_sample = one("hokan_command_success");
    assert_eq!(label(&ok_sample, "command"), "backup");
    assert_eq!(label(&ok_sample, "repository"), repo);
    assert_eq!(ok_sample.2, 1.0);
    assert_eq!(one("hokan_backup_files").2, 3.0);
    assert_eq!(one("hokan_backup_bytes_read").2, 48.0);
    assert_eq!(one("hokan_backup_errors").2, 0.0);
    assert!(one("hokan_backup_bytes_stored").2 > 0.0);
    assert_eq!(
        label(&one("hokan_backup_snapshot_info"), "snapshot_id"),
        snap
    );
    let start = one("hokan_command_start_timestamp_seconds").2;
    let end = one("hokan_command_end_timestamp_seconds").2;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        start <= end && end <= now && now - start < 600.0,
        "{start} {end}"
    );
    assert!((one("hokan_command_duration_seconds").2 - (end - start)).abs() < 0.01);

    // A success, then a failure (wrong password) into the same file: the
    // failure is recorded and the last success time is kept.
    let other = dir.path().join("snapshots.prom");
    let mut c = hokan(&repo, &cache);
    c.arg("--metrics-file").arg(&other).arg("snapshots");
    ok(&run(c));
    let good = parse_exposition(&std::fs::read_to_string(&other).unwrap());
    let success_time = metric(&good, "hokan_last_success_timestamp_seconds")[0].2;
    let mut c = hokan(&repo, &cache);
    c.env("HOKAN_PASSWORD", "wrong")
        .arg("--metrics-file")
        .arg(&other)
        .arg("snapshots");
    assert_eq!(run(c).status.code(), Some(12));
    let bad = parse_exposition(&std::fs::read_to_string(&other).unwrap());
    assert_eq!(metric(&bad, "hokan_command_success")[0].2, 0.0);
    assert_eq!(metric(&bad, "hokan_command_exit_code")[0].2, 12.0);
    assert_eq!(
        metric(&bad, "hokan_last_success_timestamp_seconds")[0].2,
        success_time
    );
    assert!(metric(&bad, "hokan_command_end_timestamp_seconds")[0].2 >= success_time);

    // Prune: the repository's pack bytes afterwards (the first snapshot's
    // data stays, the second's new file goes).
    std::fs::write(src.join("new.bin"), vec![7u8; 100_000]).unwrap();
    backup(&repo, &cache, &src, &[]);
    let mut c = hokan(&repo, &cache);
    c.args(["forget", "latest"]);
    ok(&run(c));
    let pf = dir.path().join("prune.prom");
    let mut c = hokan(&repo, &cache);
    c.arg("--metrics-file")
        .arg(&pf)
        .args(["prune", "--instant-delete"]);
    ok(&run(c));
    let p = parse_exposition(&std::fs::read_to_string(&pf).unwrap());
    let packs: u64 = walk(&Path::new(&repo).join("data"))
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(packs > 0);
    assert_eq!(
        metric(&p, "hokan_prune_repository_bytes")[0].2,
        packs as f64
    );
    assert!(metric(&p, "hokan_prune_packs_deleted")[0].2 >= 1.0, "{p:?}");
    assert_eq!(
        label(metric(&p, "hokan_command_success")[0], "command"),
        "prune"
    );
}

/// A one-request HTTP server: returns (url, handle giving method, path, body).
fn one_request_server(status: u16) -> (String, std::thread::JoinHandle<(String, String, String)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut r = BufReader::new(stream.try_clone().unwrap());
        let mut first = String::new();
        r.read_line(&mut first).unwrap();
        let mut len = 0;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let mut w = stream;
        write!(
            w,
            "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut parts = first.split_whitespace();
        (
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
            String::from_utf8(body).unwrap(),
        )
    });
    (url, h)
}

#[test]
fn metrics_push_to_a_pushgateway() {
    let (_dir, repo, cache, src) = setup();
    let (url, server) = one_request_server(200);
    let mut c = hokan(&repo, &cache);
    c.args(["--metrics-push", &url, "backup"]).arg(&src);
    ok(&run(c));
    let (method, path, body) = server.join().unwrap();
    assert_eq!(method, "PUT", "a success replaces the group");
    // "backup" in URL-safe base64, then the repository's.
    assert!(
        path.starts_with("/metrics/job/hokan/command@base64/YmFja3Vw/repository@base64/"),
        "{path}"
    );
    let samples = parse_exposition(&body);
    assert_eq!(metric(&samples, "hokan_command_success")[0].2, 1.0);
    assert_eq!(metric(&samples, "hokan_backup_files")[0].2, 3.0);

    // A failure is POSTed: the gateway keeps the last success time.
    let (url, server) = one_request_server(200);
    let mut c = hokan(&repo, &cache);
    c.env("HOKAN_PASSWORD", "wrong")
        .args(["--metrics-push", &url, "snapshots"]);
    assert_eq!(run(c).status.code(), Some(12));
    let (method, _, body) = server.join().unwrap();
    assert_eq!(method, "POST");
    let samples = parse_exposition(&body);
    assert!(metric(&samples, "hokan_last_success_timestamp_seconds").is_empty());

    // A gateway that refuses: the command's result stands, with a warning.
    let (url, server) = one_request_server(500);
    let mut c = hokan(&repo, &cache);
    c.args(["--metrics-push", &url, "snapshots"]);
    let out = run(c);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("metrics not written"),
        "{}",
        stderr(&out)
    );
}
