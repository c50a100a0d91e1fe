//! The CLI on every object store: a round trip (init, backup, restore,
//! `check --read-data`) on a local directory, Garage (S3), Azurite (Azure
//! Blob), the GCS emulator and moto (S3 with Object Lock); and the errors a
//! store can give, each naming the store, the bucket and the fix, with
//! nothing changed: a missing bucket or container, wrong and expired
//! credentials, a permission missing for one operation. Temporary
//! credentials through web identity (OADP on AWS STS) against moto's STS,
//! refreshed while a backup runs.
//!
//! The servers are the ones `scripts/*.sh start` run; see
//! `hokan_repo::conformance::Remote` for the variables and the skip rules.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;
use hokan_core::sample::{Kind, generate};
use hokan_repo::conformance::{Remote, dump_store, unique};
use hokan_repo::{Location, Store};

/// The summary `--json` prints last.
fn last_json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.lines().last().unwrap_or_default()).unwrap()
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set; source the script's env"))
}

/// A tree with what a volume holds: many small files in nested
/// directories, a larger one, an empty file and directory, a symlink.
fn make_tree(root: &Path) {
    for i in 0..300u64 {
        let p = root.join(format!("d{}/e{}/f{i}.txt", i % 7, i % 3));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, generate(Kind::Text, 200 + (i as usize * 37) % 4000, i)).unwrap();
    }
    std::fs::write(root.join("big.bin"), generate(Kind::Random, 3 << 20, 99)).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    std::os::unix::fs::symlink("d0/e0/f0.txt", root.join("link")).unwrap();
}

/// Every entry below `root`: files with their bytes, links with their
/// targets, directories as such.
fn contents(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(rel, format!("-> {}", t.display()).into_bytes());
            } else if md.is_dir() {
                out.insert(rel, b"<dir>".to_vec());
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// init, backup, restore and `check --read-data` through the binary.
fn round_trip(repo: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (src, target, cache) = (
        dir.path().join("src"),
        dir.path().join("restored"),
        dir.path().join("cache"),
    );
    make_tree(&src);
    init(repo, &cache);
    let mut c = hokan(repo, &cache);
    c.arg("backup").arg(&src);
    ok(&run(c));
    let mut c = hokan(repo, &cache);
    c.args(["restore", "latest", "--target"]).arg(&target);
    ok(&run(c));
    // The tree comes back under its absolute path, as restic restores it.
    let restored = target.join(src.strip_prefix("/").unwrap());
    let (want, got) = (contents(&src), contents(&restored));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    assert!(want == got, "the restored tree differs from the source");
    // A fresh cache: check reads everything from the store itself.
    let mut c = hokan(repo, &dir.path().join("cache-2"));
    c.args(["check", "--read-data"]);
    ok(&run(c));
}

#[test]
fn round_trip_local() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(dir.path().join("repo").to_str().unwrap());
}

#[test]
fn round_trip_s3() {
    let Some(repo) = Remote::S3.fresh("round-trip") else {
        return;
    };
    round_trip(&repo);
}

#[test]
fn round_trip_azure() {
    let Some(repo) = Remote::Azure.fresh("round-trip") else {
        return;
    };
    round_trip(&repo);
}

#[test]
fn round_trip_gcs() {
    let Some(repo) = Remote::Gcs.fresh("round-trip") else {
        return;
    };
    round_trip(&repo);
}

/// moto's bucket has Object Lock with a default retention: every upload
/// must carry a checksum, and deletions leave delete markers.
#[test]
fn round_trip_moto_object_lock() {
    let Some(repo) = Remote::Moto.fresh("round-trip") else {
        return;
    };
    round_trip(&repo);
}

/// The location `base` names, in a bucket (container) that does not exist.
fn in_missing_bucket(base: &str) -> (String, String) {
    let bucket = unique("hokan-missing");
    let loc = match Location::parse(base).unwrap() {
        Location::S3 {
            endpoint, prefix, ..
        } => Location::S3 {
            endpoint,
            bucket: bucket.clone(),
            prefix,
        },
        Location::Azure { prefix, .. } => Location::Azure {
            container: bucket.clone(),
            prefix,
        },
        Location::Gcs { prefix, .. } => Location::Gcs {
            bucket: bucket.clone(),
            prefix,
        },
        other => panic!("{other} has no bucket"),
    };
    (format!("{loc}/repo"), bucket)
}

/// `init` and `snapshots` on a bucket that does not exist say so, name
/// the bucket and how to create it, and create nothing.
fn missing_bucket(remote: Remote, store: &str) {
    let Some(base) = remote.base() else { return };
    let (repo, bucket) = in_missing_bucket(&base);
    let dir = tempfile::tempdir().unwrap();
    for args in [&["init", "--kdf-memory", "1M"][..], &["snapshots"]] {
        let mut c = hokan(&repo, dir.path());
        c.args(args);
        let out = run(c);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        for needle in [
            store,
            &bucket,
            "does not exist",
            "create it",
            "nothing was changed",
        ] {
            assert!(
                err.contains(needle),
                "{args:?}: {needle:?} missing in: {err}"
            );
        }
        assert!(!err.contains("is missing from the repository"), "{err}");
    }
}

#[test]
fn missing_bucket_s3() {
    missing_bucket(Remote::S3, "S3 bucket");
}

#[test]
fn missing_container_azure() {
    missing_bucket(Remote::Azure, "Azure Blob Storage container");
}

#[test]
fn missing_bucket_gcs() {
    missing_bucket(Remote::Gcs, "Google Cloud Storage bucket");
}

#[test]
fn missing_bucket_moto() {
    missing_bucket(Remote::Moto, "S3 bucket");
}

/// A repository with one snapshot of a small tree; returns its cache.
fn repository_with_a_snapshot(repo: &str, env: &[(&str, &str)], dir: &Path) -> String {
    let cache = dir.join("cache");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), generate(Kind::Text, 100_000, 3)).unwrap();
    let mut c = hokan(repo, &cache);
    c.args(["init", "--kdf-memory", "1M", "--kdf-iterations", "1"]);
    c.envs(env.iter().copied());
    ok(&run(c));
    let mut c = hokan(repo, &cache);
    c.args(["--json", "backup"])
        .arg(&src)
        .envs(env.iter().copied());
    last_json(&ok(&run(c)))["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs `args` with `env`, expects a failure whose message holds every
/// needle, and the store unchanged as `dump` sees it.
fn refused(
    repo: &str,
    dump: &dyn Fn() -> BTreeMap<String, bytes::Bytes>,
    cache: &Path,
    env: &[(&str, &str)],
    remove: &[&str],
    args: &[&str],
    needles: &[&str],
) {
    let before = dump();
    let mut c: Command = hokan(repo, cache);
    c.args(args).envs(env.iter().copied());
    for r in remove {
        c.env_remove(r);
    }
    let out = run(c);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {n:?} missing in: {err}");
    }
    assert!(dump() == before, "{args:?} changed the store");
}

/// Azurite checks account keys and shared access signatures (their
/// permissions and expiry) as Azure does.
#[test]
fn credential_and_permission_errors_azure() {
    let Some(repo) = Remote::Azure.fresh("denied") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let id = repository_with_a_snapshot(&repo, &[], dir.path());
    let store =
        Store::connect(&Location::parse(&repo).unwrap(), false, Default::default()).unwrap();
    let dump = || dump_store(&store);
    let cache = dir.path().join("cache-denied");
    let container = "Azure Blob Storage container \"hokan-test\"";
    // A key of the right length that is not the account's.
    let wrong_key = "A".repeat(86) + "==";
    refused(
        &repo,
        &dump,
        &cache,
        &[("AZURE_STORAGE_ACCOUNT_KEY", &wrong_key)],
        &[],
        &["snapshots"],
        &[
            container,
            "credentials were refused",
            "AZURE_STORAGE_ACCOUNT_KEY",
        ],
    );
    let sas = |v: &str| var(v);
    let sas_expired = sas("HOKAN_TEST_AZURE_SAS_EXPIRED");
    refused(
        &repo,
        &dump,
        &cache,
        &[("AZURE_STORAGE_SAS_KEY", &sas_expired)],
        &["AZURE_STORAGE_ACCOUNT_KEY"],
        &["snapshots"],
        &[container, "credentials were refused", "expired"],
    );
    // Read-only: reading works, a backup is refused before it writes.
    let read_only = sas("HOKAN_TEST_AZURE_SAS_READ_ONLY");
    let mut c = hokan(&repo, &cache);
    c.args(["snapshots"])
        .env("AZURE_STORAGE_SAS_KEY", &read_only)
        .env_remove("AZURE_STORAGE_ACCOUNT_KEY");
    ok(&run(c));
    let src = dir.path().join("src");
    refused(
        &repo,
        &dump,
        &cache,
        &[("AZURE_STORAGE_SAS_KEY", &read_only)],
        &["AZURE_STORAGE_ACCOUNT_KEY"],
        &["backup", src.to_str().unwrap()],
        &[container, "may not write", "(c, w)"],
    );
    // "Everything but delete" cannot be shown here: object_store deletes
    // Azure blobs through a blob batch, and Azurite answers any batch
    // authorised by a shared access signature with HTTP 500, whatever the
    // signature allows. moto shows it for S3 below.
    let _ = id;
}

/// The store at `location` on moto's IAM server, with its admin user, for
/// looking at what a refused command left.
fn moto_admin_store(location: &str) -> Store {
    use object_store::aws::AmazonS3Builder;
    let loc = Location::parse(location).unwrap();
    let Location::S3 {
        endpoint: Some(endpoint),
        bucket,
        prefix,
    } = &loc
    else {
        panic!("{location} names no endpoint")
    };
    let ca = std::fs::read(var("HOKAN_TEST_MOTO_CA")).unwrap();
    let options = object_store::ClientOptions::new()
        .with_root_certificate(object_store::Certificate::from_pem(&ca).unwrap());
    let s3 = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(var("HOKAN_TEST_MOTO_ADMIN_KEY"))
        .with_secret_access_key(var("HOKAN_TEST_MOTO_ADMIN_SECRET"))
        .with_client_options(options)
        .build()
        .unwrap();
    let store = object_store::prefix::PrefixStore::new(s3, prefix.as_str());
    Store::from_object_store(Arc::new(store), loc, Default::default())
}

/// What every command against moto's IAM server needs: its CA, its
/// region, and no endpoint or keys from the suite's Garage.
fn moto_env<'a>(key: &'a str, secret: &'a str, ca: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", key),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("SSL_CERT_FILE", ca),
        ("AWS_ENDPOINT_URL", ""),
    ]
}

/// moto's IAM server checks signatures and each user's policy per action.
#[test]
fn credential_and_permission_errors_moto() {
    let Some(base) = std::env::var("HOKAN_TEST_MOTO_IAM_URL").ok() else {
        let _ = Remote::Moto.base(); // fails under HOKAN_REQUIRE_MOTO=1
        return;
    };
    let repo = format!("{base}/{}", unique("denied"));
    let ca = var("HOKAN_TEST_MOTO_CA");
    let (admin_key, admin_secret) = (
        var("HOKAN_TEST_MOTO_ADMIN_KEY"),
        var("HOKAN_TEST_MOTO_ADMIN_SECRET"),
    );
    let admin = moto_env(&admin_key, &admin_secret, &ca);
    let dir = tempfile::tempdir().unwrap();
    let id = repository_with_a_snapshot(&repo, &admin, dir.path());
    let store = moto_admin_store(&repo);
    let dump = || dump_store(&store);
    assert!(dump().keys().any(|k| k.starts_with("snapshots/")));
    let cache = dir.path().join("cache-denied");
    let bucket = "S3 bucket \"hokan-sts\"";
    let wrong = "0".repeat(40);
    refused(
        &repo,
        &dump,
        &cache,
        &moto_env(&admin_key, &wrong, &ca),
        &[],
        &["snapshots"],
        &[bucket, "credentials were refused", "AWS_SECRET_ACCESS_KEY"],
    );
    let (ro_key, ro_secret) = (
        var("HOKAN_TEST_MOTO_READ_ONLY_KEY"),
        var("HOKAN_TEST_MOTO_READ_ONLY_SECRET"),
    );
    let src = dir.path().join("src");
    refused(
        &repo,
        &dump,
        &cache,
        &moto_env(&ro_key, &ro_secret, &ca),
        &[],
        &["backup", src.to_str().unwrap()],
        &[bucket, "may not write", "s3:PutObject"],
    );
    let (nd_key, nd_secret) = (
        var("HOKAN_TEST_MOTO_NO_DELETE_KEY"),
        var("HOKAN_TEST_MOTO_NO_DELETE_SECRET"),
    );
    refused(
        &repo,
        &dump,
        &cache,
        &moto_env(&nd_key, &nd_secret, &ca),
        &[],
        &["forget", &id[..12]],
        &[bucket, "may not delete", "s3:DeleteObject"],
    );
}

/// How many AssumeRoleWithWebIdentity calls for `session` moto's IAM
/// server has answered (its request log names each).
fn sts_calls(session: &str) -> usize {
    let log = std::fs::read_to_string(var("HOKAN_TEST_MOTO_IAM_LOG")).unwrap();
    log.lines()
        .filter(|l| l.contains("Action=AssumeRoleWithWebIdentity"))
        .filter(|l| l.contains(&format!("RoleSessionName={session}")))
        .count()
}

/// OADP on AWS STS: no keys, a projected service-account token and a role.
/// The credentials moto's STS hands out are refreshed every few seconds
/// (scripts/moto.sh), so a backup fed slowly outlives several of them; the
/// IAM server refuses anything not signed by a live assumed role.
#[test]
fn web_identity_credentials_refreshed_during_backup() {
    let Some(base) = std::env::var("HOKAN_TEST_MOTO_IAM_URL").ok() else {
        let _ = Remote::Moto.base();
        return;
    };
    let repo = format!("{base}/{}", unique("sts"));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    // A token as the kubelet projects it (moto does not check its signature).
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6b3BlbnNoaWZ0LWFkcDp2ZWxlcm8ifQ.c2ln").unwrap();
    let session = unique("hokan-oadp");
    let (ca, role, sts) = (
        var("HOKAN_TEST_MOTO_CA"),
        var("HOKAN_TEST_STS_ROLE_ARN"),
        var("HOKAN_TEST_MOTO_STS_ENDPOINT"),
    );
    let env = |c: &mut Command| {
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL")
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
            .env("AWS_ROLE_ARN", &role)
            .env("AWS_ROLE_SESSION_NAME", &session)
            .env("AWS_ENDPOINT_URL_STS", &sts)
            .env("AWS_REGION", "us-east-1")
            .env("SSL_CERT_FILE", &ca);
    };
    let cache = dir.path().join("cache");
    let mut c = hokan(&repo, &cache);
    c.args(["init", "--kdf-memory", "1M", "--pack-size", "4M"]);
    env(&mut c);
    ok(&run(c));
    assert!(sts_calls(&session) >= 1, "init assumed the role");

    // Twelve 1 MiB pieces, one every half second: packs land over six
    // seconds, past several credential lifetimes.
    let refresh: f64 = var("HOKAN_TEST_STS_REFRESH_SECONDS").parse().unwrap();
    let data = generate(Kind::Random, 12 << 20, 5);
    let before = sts_calls(&session);
    let mut c = hokan(&repo, &cache);
    c.args(["--json", "backup", "--stdin", "--stdin-filename", "etcd.db"]);
    env(&mut c);
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let started = std::time::Instant::now();
    for piece in data.chunks(1 << 20) {
        std::io::Write::write_all(&mut input, piece).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let v = last_json(&ok(&out));
    let calls = sts_calls(&session) - before;
    assert!(
        elapsed > 2.0 * refresh && calls >= 2,
        "a {elapsed:.1} s backup fetched credentials {calls} time(s); they last {refresh} s"
    );

    let mut c = hokan(&repo, &cache);
    c.args(["dump", v["snapshot_id"].as_str().unwrap(), "etcd.db"]);
    env(&mut c);
    let out = run(c);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == data, "the snapshot restores bit for bit");
    let mut c = hokan(&repo, &dir.path().join("cache-2"));
    c.args(["check", "--read-data"]);
    env(&mut c);
    ok(&run(c));

    // A token file that is gone: a clear error, not a hang.
    let mut c = hokan(&repo, &dir.path().join("cache-3"));
    c.arg("snapshots");
    env(&mut c);
    c.env("AWS_WEB_IDENTITY_TOKEN_FILE", dir.path().join("no-token"));
    let out = run(c);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-token"), "{}", stderr(&out));
}
