//! `hokan etcd ...` against a real etcd started by the test (Debian's 3.4;
//! with `HOKAN_REQUIRE_ETCD=1` a missing etcd fails instead of skipping):
//! live backup → restore → `etcdctl snapshot restore` → a restarted etcd
//! serves the same keys and values; status equal to etcdctl's; TLS with
//! generated client certificates; imports, and refusals that store
//! nothing; retention that leaves exactly N; static pod resources in the
//! same or another repository; objects listed, decoded, diffed, exported.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use hokan_etcd::testing::{EtcdProcess, ServerTls};
use serde_json::Value;

struct Repo {
    _dir: tempfile::TempDir,
    path: String,
    cache: PathBuf,
    root: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo").to_str().unwrap().to_string();
        let cache = dir.path().join("cache");
        init(&path, &cache);
        Repo {
            root: dir.path().to_path_buf(),
            _dir: dir,
            path,
            cache,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = hokan(&self.path, &self.cache);
        c.args(args);
        run(c)
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&self.run(args))
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        let last = out
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("null");
        serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    fn lines(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.ok(&all)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn etcd_snapshots(&self) -> Vec<Value> {
        snapshots(&self.path, &self.cache)
            .into_iter()
            .filter(|s| s["source"] == "etcd")
            .collect()
    }
}

fn put_all(url: &str, pairs: Vec<(String, Vec<u8>)>) {
    hokan_etcd::testing::KvClient::connect(url).put_all(pairs)
}

fn all_kvs(url: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    hokan_etcd::testing::KvClient::connect(url).all()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/k8s/api-testdata")
            .join(name),
    )
    .unwrap()
}

/// A small cluster's worth of objects: fixtures and ConfigMaps.
fn load(url: &str, generation: u64) {
    let mut pairs = vec![
        (
            "/registry/deployments/prod/web".to_string(),
            fixture("apps.v1.Deployment.pb"),
        ),
        (
            "/registry/secrets/prod/db".to_string(),
            fixture("core.v1.Secret.pb"),
        ),
    ];
    pairs.extend((0..300).map(|i| {
        (
            format!("/registry/configmaps/ns-{}/cm-{i}", i % 3),
            hokan_etcd::testdata::configmap_json(i, generation, 800),
        )
    }));
    put_all(url, pairs);
}

fn etcdctl_status(file: &Path) -> Value {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn live_backup_restores_and_a_restarted_etcd_serves_the_same_data() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    load(&etcd.url, 0);
    let repo = Repo::new();
    let summary = repo.json(&[
        "etcd",
        "backup",
        "--endpoints",
        &etcd.url,
        "--tag",
        "nightly",
    ]);
    assert_eq!(summary["message_type"], "summary");
    assert_eq!(summary["source"], "etcd");
    assert_eq!(summary["tags"][0], "nightly");
    assert_eq!(summary["etcd"]["keys"], 302);
    assert_eq!(summary["etcd"]["trailer"], true);
    let id = summary["snapshot_id"].as_str().unwrap().to_string();

    let file = repo.root.join("restored.db");
    let restored = repo.json(&[
        "etcd",
        "restore",
        &id[..8],
        "--output",
        file.to_str().unwrap(),
    ]);
    assert_eq!(restored["bytes"], summary["etcd"]["size"]);
    // Status from the stored form equals etcdctl's on the restored file.
    let status = repo.json(&["etcd", "status", &id]);
    assert_eq!(status, etcdctl_status(&file));
    let text = repo.ok(&["etcd", "status", "latest"]);
    assert!(text.contains("TOTAL KEYS"), "{text}");

    let before = all_kvs(&etcd.url);
    drop(etcd);
    let again = EtcdProcess::start_restored(&file).unwrap();
    assert_eq!(all_kvs(&again.url), before);

    // Another restore never overwrites a file.
    let out = repo.run(&["etcd", "restore", "latest", "-o", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("exists"), "{}", stderr(&out));
}

fn write_pki(dir: &Path) -> [PathBuf; 6] {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, SanType,
    };
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let ca = |cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(params, key))
    };
    let (ca_pem, issuer) = ca("hokan test CA");
    let (other_pem, _) = ca("another CA");
    let leaf = |cn: &str, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        (
            params.signed_by(&key, &issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    };
    let (sc, sk) = leaf("etcd", ExtendedKeyUsagePurpose::ServerAuth);
    let (cc, ck) = leaf("root", ExtendedKeyUsagePurpose::ClientAuth);
    [
        write("ca.pem", ca_pem),
        write("server.pem", sc),
        write("server-key.pem", sk),
        write("client.pem", cc),
        write("client-key.pem", ck),
        write("other-ca.pem", other_pem),
    ]
}

#[test]
fn tls_endpoints_with_client_certificates() {
    if !hokan_etcd::testing::etcd_available() {
        return;
    }
    let pki_dir = tempfile::tempdir().unwrap();
    let [
        ca,
        server_cert,
        server_key,
        client_cert,
        client_key,
        other_ca,
    ] = write_pki(pki_dir.path());
    let server = ServerTls {
        cert: server_cert,
        key: server_key,
        client_ca: ca.clone(),
    };
    let etcd = EtcdProcess::start_tls(&server, (&client_cert, &client_key, &ca)).unwrap();
    etcd.etcdctl_ok(&[
        "put",
        "/registry/configmaps/tls/x",
        "{\"kind\":\"ConfigMap\"}",
    ]);
    let repo = Repo::new();
    let p = |x: &PathBuf| x.to_str().unwrap().to_string();
    let (ca, cert, key, other) = (p(&ca), p(&client_cert), p(&client_key), p(&other_ca));
    let summary = repo.json(&[
        "etcd",
        "backup",
        "--endpoints",
        &etcd.url,
        "--cacert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
    ]);
    assert_eq!(summary["etcd"]["keys"], 1);

    // A CA that did not sign the server's certificate; no client certificate;
    // a certificate without its key: each says what to fix, and stores nothing.
    let cases: [(&[&str], &str); 3] = [
        (
            &["--cacert", &other, "--cert", &cert, "--key", &key],
            "--cacert",
        ),
        (&["--cacert", &ca], "--cert and --key"),
        (
            &["--cacert", &ca, "--cert", &cert],
            "--cert and --key go together",
        ),
    ];
    for (flags, says) in cases {
        let mut args = vec!["etcd", "backup", "--endpoints", &etcd.url];
        args.extend_from_slice(flags);
        let out = repo.run(&args);
        assert_eq!(out.status.code(), Some(1), "{flags:?}");
        assert!(stderr(&out).contains(says), "{flags:?}: {}", stderr(&out));
    }
    assert_eq!(repo.etcd_snapshots().len(), 1);
    // Plain HTTP to a TLS member fails clearly too.
    let out = repo.run(&[
        "etcd",
        "backup",
        "--endpoints",
        &etcd.url.replace("https", "http"),
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn imports_take_etcdctl_files_and_raw_dbs_and_refuse_anything_else() {
    let Some(mut etcd) = EtcdProcess::start() else {
        return;
    };
    load(&etcd.url, 0);
    let repo = Repo::new();
    let saved = repo.root.join("saved.db");
    etcd.etcdctl_ok(&["snapshot", "save", saved.to_str().unwrap()]);
    etcd.stop();
    let raw = repo.root.join("raw.db");
    std::fs::copy(etcd.scratch().join("data/member/snap/db"), &raw).unwrap();

    // Refused first, on an empty repository: nothing may be stored.
    let junk = repo.root.join("junk.db");
    std::fs::write(&junk, vec![0x5a; 70_000]).unwrap();
    let half = repo.root.join("half.db");
    let bytes = std::fs::read(&saved).unwrap();
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    for (file, says) in [(&junk, "not a bbolt database"), (&half, "truncated")] {
        let out = repo.run(&["etcd", "import", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
    assert!(repo.etcd_snapshots().is_empty());
    let packs = walk(&Path::new(&repo.path).join("data"));
    assert!(packs.is_empty(), "refused imports stored {packs:?}");

    for (file, trailer) in [(&saved, true), (&raw, false)] {
        let s = repo.json(&["etcd", "import", file.to_str().unwrap()]);
        assert_eq!(s["etcd"]["trailer"], trailer);
        assert_eq!(s["etcd"]["cluster_id_source"], "members");
        let back = repo
            .root
            .join(format!("{}.back", s["short_id"].as_str().unwrap()));
        repo.ok(&[
            "etcd",
            "restore",
            s["short_id"].as_str().unwrap(),
            "-o",
            back.to_str().unwrap(),
        ]);
        assert!(std::fs::read(&back).unwrap() == std::fs::read(file).unwrap());
        assert_eq!(
            repo.json(&["etcd", "status", s["short_id"].as_str().unwrap()]),
            etcdctl_status(file)
        );
    }
    // An explicit cluster id is checked and recorded.
    let out = repo.run(&[
        "etcd",
        "import",
        saved.to_str().unwrap(),
        "--cluster-id",
        "xyz",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a hex number"),
        "{}",
        stderr(&out)
    );
    let s = repo.json(&[
        "etcd",
        "import",
        saved.to_str().unwrap(),
        "--cluster-id",
        "abc123",
    ]);
    assert_eq!(s["identity"], "abc123");
}

#[test]
fn retention_leaves_exactly_n_and_takes_the_static_pods_along() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    load(&etcd.url, 0);
    let repo = Repo::new();
    let pods = static_pod_tree(&repo.root);
    let pods_arg = pods.to_str().unwrap();
    for round in 0..4u64 {
        load(&etcd.url, round + 1);
        let s = repo.json(&[
            "etcd",
            "backup",
            "--endpoints",
            &etcd.url,
            "--keep-last",
            "2",
            "--static-pod-resources",
            pods_arg,
        ]);
        let kept = s["forget"]["keep"].as_array().unwrap().len();
        assert_eq!(kept, (round as usize + 1).min(2), "round {round}");
    }
    let left = repo.etcd_snapshots();
    assert_eq!(left.len(), 2);
    // The static pod resources of forgotten etcd snapshots went with them.
    let fs: Vec<Value> = snapshots(&repo.path, &repo.cache)
        .into_iter()
        .filter(|s| s["source"] == "fs")
        .collect();
    assert_eq!(fs.len(), 2);
    for s in &left {
        let linked = s["labels"]["link:static-pods"].as_str().unwrap();
        assert!(
            fs.iter().any(|f| f["id"] == linked),
            "{linked} was forgotten"
        );
        let token = &s["labels"]["etcd-backup"];
        assert!(fs.iter().any(|f| &f["labels"]["etcd-backup"] == token));
    }

    // --keep-size keeps the newest that fit: each is about the same size.
    let size = left[1]["summary"]["total_bytes"].as_u64().unwrap();
    let s = repo.json(&[
        "etcd",
        "backup",
        "--endpoints",
        &etcd.url,
        "--keep-size",
        &(size * 2 + size / 2).to_string(),
    ]);
    assert_eq!(s["forget"]["keep"].as_array().unwrap().len(), 2, "{s}");
    assert_eq!(repo.etcd_snapshots().len(), 2);
}

/// Plain `forget`, by id or by a policy, takes an etcd snapshot's static
/// pod resources along, as `etcd backup --keep-last` does (they were left
/// behind: a snapshot of encryption keys nothing restores any more).
#[test]
fn forget_by_id_or_policy_takes_the_static_pods_along() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let repo = Repo::new();
    let pods = static_pod_tree(&repo.root);
    for round in 0..3u64 {
        load(&etcd.url, round);
        repo.ok(&[
            "etcd",
            "backup",
            "--endpoints",
            &etcd.url,
            "--static-pod-resources",
            pods.to_str().unwrap(),
        ]);
    }
    let fs = || -> Vec<Value> {
        snapshots(&repo.path, &repo.cache)
            .into_iter()
            .filter(|s| s["source"] == "fs")
            .collect()
    };
    // Each etcd snapshot's static pods: the fs snapshot with its token.
    let pods_of = |s: &Value| -> Option<String> {
        let token = &s["labels"]["etcd-backup"];
        fs().iter()
            .find(|f| &f["labels"]["etcd-backup"] == token)
            .map(|f| f["id"].as_str().unwrap().to_string())
    };
    let etcd_snaps = repo.etcd_snapshots();
    assert_eq!((etcd_snaps.len(), fs().len()), (3, 3));
    let linked: Vec<Option<String>> = etcd_snaps.iter().map(pods_of).collect();
    assert!(linked.iter().all(Option::is_some));

    // By id: the oldest etcd snapshot, and its static pods with it.
    let oldest = etcd_snaps[0]["id"].as_str().unwrap();
    let out = repo.ok(&["forget", &oldest[..12]]);
    assert!(out.contains("static pod"), "{out}");
    let left: Vec<String> = fs().iter().map(|f| f["id"].to_string()).collect();
    assert_eq!(
        left.len(),
        2,
        "the static pods of {oldest} were left behind"
    );
    assert!(!left.iter().any(|f| f.contains(linked[0].as_ref().unwrap())));

    // By policy, over the etcd snapshots only (their path is the endpoint).
    let out = repo.json(&["forget", "--keep-last", "1", "--path", &etcd.url]);
    let removed = &out[0]["remove"];
    assert_eq!(removed.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(repo.etcd_snapshots().len(), 1);
    let left = fs();
    assert_eq!(
        left.len(),
        1,
        "the static pods of the forgotten snapshot stay"
    );
    assert_eq!(left[0]["id"].as_str(), linked[2].as_deref());
}

/// `/etc/kubernetes/static-pod-resources` as a node has it: two revisions
/// of each component, the newest to be picked.
fn static_pod_tree(root: &Path) -> PathBuf {
    let dir = root.join("static-pod-resources");
    for c in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "etcd",
    ] {
        for rev in [3, 11] {
            let d = dir
                .join(format!("{c}-pod-{rev}"))
                .join("secrets/encryption-config");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("encryption-config"), format!("{c} revision {rev}")).unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("kube-apiserver-certs")).unwrap();
    dir
}

#[test]
fn static_pod_resources_in_another_repository_restore_beside_the_snapshot() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    load(&etcd.url, 0);
    let repo = Repo::new();
    let keys = Repo::new();
    let pods = static_pod_tree(&repo.root);
    let s = repo.json(&[
        "etcd",
        "backup",
        "--endpoints",
        &etcd.url,
        "--static-pod-resources",
        pods.to_str().unwrap(),
        "--static-pod-repo",
        &keys.path,
    ]);
    assert_eq!(s["static_pods"]["repository"], keys.path.as_str());
    assert_eq!(
        s["labels"]["link-repository:static-pods"],
        keys.path.as_str()
    );
    // The keys are not in the etcd snapshot's repository.
    assert!(
        snapshots(&repo.path, &repo.cache)
            .iter()
            .all(|s| s["source"] == "etcd")
    );
    let in_keys = snapshots(&keys.path, &keys.cache);
    assert_eq!(in_keys.len(), 1);
    assert_eq!(in_keys[0]["labels"]["kube-apiserver-revision"], "11");
    assert_eq!(
        in_keys[0]["labels"]["etcd-backup"],
        s["labels"]["etcd-backup"]
    );

    let out = repo.root.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let db = out.join("snapshot.db");
    let pods_to = out.join("static-pod-resources");
    let r = repo.json(&[
        "etcd",
        "restore",
        "latest",
        "-o",
        db.to_str().unwrap(),
        "--static-pods-to",
        pods_to.to_str().unwrap(),
    ]);
    assert_eq!(r["static_pods"]["files"], 4);
    let restored = std::fs::read_to_string(
        pods_to.join("kube-apiserver-pod-11/secrets/encryption-config/encryption-config"),
    )
    .unwrap();
    assert_eq!(restored, "kube-apiserver revision 11");
    assert!(
        !pods_to.join("kube-apiserver-pod-3").exists(),
        "only the latest revision"
    );

    // A missing component is refused before anything is stored.
    std::fs::remove_dir_all(pods.join("kube-scheduler-pod-3")).unwrap();
    std::fs::remove_dir_all(pods.join("kube-scheduler-pod-11")).unwrap();
    let out = repo.run(&[
        "etcd",
        "backup",
        "--endpoints",
        &etcd.url,
        "--static-pod-resources",
        pods.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("kube-scheduler"), "{}", stderr(&out));
    assert_eq!(repo.etcd_snapshots().len(), 1);

    // Forgetting the snapshot cannot reach into the other repository: it
    // says where its static pods are instead of leaving them silently.
    let id = s["snapshot_id"].as_str().unwrap();
    let out = repo.run(&["forget", id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&keys.path) && err.contains("forget it there"),
        "{err}"
    );
    assert_eq!(snapshots(&keys.path, &keys.cache).len(), 1);
}

#[test]
fn objects_listed_decoded_diffed_and_exported() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    load(&etcd.url, 0);
    let repo = Repo::new();
    let a = repo.json(&["etcd", "backup", "--endpoints", &etcd.url]);
    etcd.etcdctl_ok(&["del", "/registry/configmaps/ns-0/cm-0"]);
    put_all(
        &etcd.url,
        vec![(
            "/registry/configmaps/ns-1/cm-1".into(),
            hokan_etcd::testdata::configmap_json(1, 7, 800),
        )],
    );
    let b = repo.json(&["etcd", "backup", "--endpoints", &etcd.url]);
    let (a, b) = (
        a["short_id"].as_str().unwrap(),
        b["short_id"].as_str().unwrap(),
    );

    let listed = repo.lines(&["etcd", "ls", b, "--resource", "configmaps", "-n", "ns-1"]);
    assert_eq!(listed.len(), 100);
    assert!(
        listed
            .iter()
            .all(|o| o["namespace"] == "ns-1" && o["resource"] == "configmaps")
    );
    let deploy = repo.lines(&["etcd", "ls", b, "--resource", "Deployment"]);
    assert_eq!(deploy.len(), 1);
    assert_eq!(deploy[0]["kind"], "Deployment");
    assert_eq!(deploy[0]["api_version"], "apps/v1");

    // get: as the API server prints it, from JSON and YAML alike.
    let got = repo.ok(&["etcd", "get", b, "deployments.apps/prod/web", "-o", "json"]);
    let got: Value = serde_json::from_str(&got).unwrap();
    let mut want: Value = serde_json::from_slice(&fixture("apps.v1.Deployment.json")).unwrap();
    want["metadata"]["resourceVersion"] = got["metadata"]["resourceVersion"].clone();
    assert_eq!(got, want);
    let by_key = repo.ok(&["etcd", "get", b, "--key", "/registry/deployments/prod/web"]);
    assert!(by_key.starts_with("apiVersion: apps/v1\n"), "{by_key}");
    let out = repo.run(&["etcd", "get", b, "configmaps/ns-0/cm-0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not in snapshot"),
        "{}",
        stderr(&out)
    );

    let diff = repo.lines(&["etcd", "diff", a, b]);
    let summary = diff.last().unwrap();
    assert_eq!(
        (
            summary["added"].clone(),
            summary["removed"].clone(),
            summary["changed"].clone()
        ),
        (0.into(), 1.into(), 1.into())
    );
    let fields = repo.lines(&["etcd", "diff", a, b, "--object", "configmaps/ns-1/cm-1"]);
    assert!(
        fields
            .iter()
            .any(|f| f["path"] == "/metadata/resourceVersion"),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|f| f["path"].as_str().unwrap().starts_with("/data")),
        "{fields:?}"
    );

    let export = repo.root.join("export");
    let e = repo.json(&[
        "etcd",
        "export",
        b,
        "-n",
        "prod",
        "-o",
        export.to_str().unwrap(),
    ]);
    assert_eq!(e["written"], 2, "{e}");
    let secret: Value =
        serde_json::from_slice(&std::fs::read(export.join("core/secrets/prod/db.json")).unwrap())
            .unwrap();
    assert!(secret["metadata"].get("uid").is_none());
    assert!(export.join("apps/deployments/prod/web.json").exists());

    // An fs snapshot is not an etcd one: said so.
    let data = repo.root.join("data.txt");
    std::fs::write(&data, "x").unwrap();
    repo.ok(&["backup", data.to_str().unwrap()]);
    let fs_id = snapshots(&repo.path, &repo.cache).last().unwrap()["short_id"].clone();
    let out = repo.run(&["etcd", "ls", fs_id.as_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not an etcd one"), "{}", stderr(&out));
}

#[test]
fn a_format_1_repository_is_told_to_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo").to_str().unwrap().to_string();
    let cache = dir.path().join("cache");
    let mut c = hokan(&path, &cache);
    c.args([
        "init",
        "--kdf-memory",
        "1M",
        "--kdf-iterations",
        "1",
        "--repository-version",
        "1",
    ]);
    ok(&run(c));
    let file = dir.path().join("tiny.db");
    std::fs::write(&file, hokan_etcd::testdata::tiny_db()).unwrap();
    let mut c = hokan(&path, &cache);
    c.args(["etcd", "import", file.to_str().unwrap()]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("hokan migrate"), "{}", stderr(&out));
    assert!(walk(&Path::new(&path).join("data")).is_empty());
}
