//! Kubernetes objects inside stored etcd snapshots, on real data: every
//! protobuf fixture of Kubernetes' API tests (`shared/k8s/api-testdata`,
//! exactly what kube-apiserver writes) put into a real etcd under the key
//! the API server uses, saved with `etcdctl snapshot save`, imported,
//! listed and decoded back to the fixture's JSON; values encrypted at rest
//! in the documented formats listed as encrypted and decrypted with an
//! EncryptionConfiguration; diff between snapshots; export read back by
//! `hokan-k8s`'s restore planning.

mod common;

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
use hokan_core::fs::NoProgress;
use hokan_etcd::catalog::ValueAt;
use hokan_etcd::objects::{ChangeKind, diff};
use hokan_etcd::testing::EtcdProcess;
use hokan_etcd::{BackupOptions, EtcdSnapshot, Filter, Objects, import_file};
use hokan_k8s_codec::Decryptor;
use serde_json::Value;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/k8s/api-testdata")
}

/// A fixture stored in etcd: its key, apiVersion, kind, value and JSON.
struct Fixture {
    key: String,
    api_version: String,
    kind: String,
    pb: Vec<u8>,
    json: Value,
}

/// Every fixture of a kind the API server stores in etcd, each under its
/// own name in namespace `fixtures`.
fn fixtures() -> Vec<Fixture> {
    let dir = testdata();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("shared/k8s/api-testdata")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pb"))
        .collect();
    names.sort();
    assert!(names.len() > 150, "the full fixture set: {}", names.len());
    names
        .iter()
        .filter_map(|name| {
            let stem = name.trim_end_matches(".pb");
            let (gv, kind) = stem.rsplit_once('.').unwrap();
            let (group, version) = gv.rsplit_once('.').unwrap();
            let api_version = if group == "core" {
                version.to_string()
            } else {
                format!("{group}/{version}")
            };
            let object = stem.to_ascii_lowercase();
            let key =
                hokan_k8s_codec::object_key_for_kind(&api_version, kind, "fixtures", &object)?;
            Some(Fixture {
                key,
                api_version,
                kind: kind.to_string(),
                pb: std::fs::read(dir.join(name)).unwrap(),
                json: serde_json::from_slice(
                    &std::fs::read(dir.join(format!("{stem}.json"))).unwrap(),
                )
                .unwrap(),
            })
        })
        .collect()
}

/// Puts `pairs`, saves a snapshot with etcdctl and imports it.
fn snapshot_of(
    etcd: &EtcdProcess,
    pairs: Vec<(String, Vec<u8>)>,
    dir: &Path,
    repo: &mut hokan_repo::IndexedRepository,
    name: &str,
) -> hokan_repo::SnapshotEntry {
    common::put_all(etcd, pairs);
    let file = dir.join(name);
    common::save(etcd, &file);
    import_file(repo, &file, &BackupOptions::default(), &NoProgress)
        .unwrap()
        .entry
}

#[test]
fn every_stored_kind_decodes_from_a_snapshot_to_its_fixture() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let fixtures = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = common::repo(tmp.path());
    let pairs = fixtures
        .iter()
        .map(|f| (f.key.clone(), f.pb.clone()))
        .collect();
    let entry = snapshot_of(&etcd, pairs, tmp.path(), &mut repo, "fixtures.db");
    let snap = EtcdSnapshot::open(&repo, entry).unwrap();
    let objects = Objects::open(&repo, &snap).unwrap();
    let listed = objects.list(&Filter::default());
    assert_eq!(listed.len(), fixtures.len());

    let mut kinds = Vec::new();
    let mut mismatches = Vec::new();
    for f in &fixtures {
        let info = listed.iter().find(|o| o.key == f.key).unwrap();
        assert_eq!(
            info.api_version.as_deref(),
            Some(f.api_version.as_str()),
            "{}",
            f.key
        );
        assert_eq!(info.kind.as_deref(), Some(f.kind.as_str()), "{}", f.key);
        assert_eq!(info.encoding, "protobuf");
        assert_eq!(info.size as usize, f.pb.len());
        assert!(info.group.is_some(), "{} parses as a registry key", f.key);
        let decoded = objects
            .decode(objects.by_key(&f.key).unwrap(), None)
            .unwrap();
        if decoded.stored.object != f.json {
            mismatches.push(f.key.clone());
        }
        // Served as the API server would: resourceVersion is the revision.
        assert_eq!(
            decoded.served["metadata"]["resourceVersion"],
            info.resource_version.to_string(),
            "{}",
            f.key
        );
        kinds.push(format!("{}/{}", f.api_version, f.kind));
    }
    eprintln!(
        "{} kinds decoded from the snapshot and compared: {}",
        kinds.len(),
        kinds.join(" ")
    );
    assert!(
        mismatches.is_empty(),
        "decoded JSON differs from the fixture: {mismatches:?}"
    );
    assert!(kinds.len() > 100, "{} kinds", kinds.len());

    // By name as kubectl writes it, with and without the group.
    let name = objects
        .by_name("deployments.apps/fixtures/apps.v1.deployment")
        .unwrap();
    assert_eq!(
        name.key,
        b"/registry/deployments/fixtures/apps.v1.deployment"
    );
    let name = objects
        .by_name("Deployment/fixtures/apps.v1.deployment")
        .unwrap();
    assert_eq!(
        name.key,
        b"/registry/deployments/fixtures/apps.v1.deployment"
    );
    assert!(objects.by_name("configmaps/fixtures/nope").is_err());
    // Cluster-scoped objects have no namespace.
    let ns = objects.by_name("namespaces/core.v1.namespace").unwrap();
    assert_eq!(ns.key, b"/registry/namespaces/core.v1.namespace");
}

const KEY: [u8; 32] = [7; 32];
const OTHER: [u8; 32] = [9; 32];

fn config(key: &[u8]) -> String {
    let k = base64::engine::general_purpose::STANDARD.encode(key);
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - aescbc:\n          keys:\n            - name: key1\n              secret: {k}\n      - aesgcm:\n          keys:\n            - name: key2\n              secret: {k}\n      - secretbox:\n          keys:\n            - name: key3\n              secret: {k}\n      - identity: {{}}\n"
    )
}

/// `k8s:enc:aescbc:v1:key1:` + IV + AES-CBC (PKCS#7).
fn aescbc(plain: &[u8]) -> Vec<u8> {
    let iv = [1u8; 16];
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 16 - plain.len() % 16, 0);
    let ct = cbc::Encryptor::<aes::Aes256>::new(&KEY.into(), &iv.into())
        .encrypt_padded::<Pkcs7>(&mut buf, plain.len())
        .unwrap()
        .to_vec();
    [b"k8s:enc:aescbc:v1:key1:".as_slice(), &iv, &ct].concat()
}

/// `k8s:enc:aesgcm:v1:key2:` + nonce + AES-GCM, the etcd key authenticated.
fn aesgcm(plain: &[u8], etcd_key: &str) -> Vec<u8> {
    let nonce = [2u8; 12];
    let ct = aes_gcm::Aes256Gcm::new(&KEY.into())
        .encrypt(
            &nonce.into(),
            Payload {
                msg: plain,
                aad: etcd_key.as_bytes(),
            },
        )
        .unwrap();
    [b"k8s:enc:aesgcm:v1:key2:".as_slice(), &nonce, &ct].concat()
}

/// `k8s:enc:secretbox:v1:key3:` + nonce + NaCl secretbox (tag first).
fn secretbox(plain: &[u8]) -> Vec<u8> {
    use poly1305::universal_hash::KeyInit as _;
    use salsa20::cipher::StreamCipher;
    let nonce = [3u8; 24];
    let mut c = salsa20::XSalsa20::new(&KEY.into(), &nonce.into());
    let mut mac_key = [0u8; 32];
    c.apply_keystream(&mut mac_key);
    let mut ct = plain.to_vec();
    c.apply_keystream(&mut ct);
    let tag = poly1305::Poly1305::new(&mac_key.into()).compute_unpadded(&ct);
    [b"k8s:enc:secretbox:v1:key3:".as_slice(), &nonce, &tag, &ct].concat()
}

#[test]
fn encrypted_values_are_listed_as_encrypted_and_decrypt_with_the_configuration() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let secret = std::fs::read(testdata().join("core.v1.Secret.pb")).unwrap();
    let want: Value =
        serde_json::from_slice(&std::fs::read(testdata().join("core.v1.Secret.json")).unwrap())
            .unwrap();
    let key = |n: &str| format!("/registry/secrets/prod/{n}");
    let pairs = vec![
        (key("cbc"), aescbc(&secret)),
        (key("gcm"), aesgcm(&secret, &key("gcm"))),
        (key("box"), secretbox(&secret)),
        (key("kms"), b"k8s:enc:kms:v2:vault:\x0a\x10opaque".to_vec()),
        (key("plain"), secret.clone()),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = common::repo(tmp.path());
    let entry = snapshot_of(&etcd, pairs, tmp.path(), &mut repo, "encrypted.db");
    let snap = EtcdSnapshot::open(&repo, entry).unwrap();
    let objects = Objects::open(&repo, &snap).unwrap();
    let listed = objects.list(&Filter {
        resource: Some("secrets".into()),
        namespace: Some("prod".into()),
    });
    let enc: Vec<(String, Option<(String, String)>)> = listed
        .iter()
        .map(|o| {
            (
                o.name.clone(),
                o.encryption
                    .as_ref()
                    .map(|e| (e.provider.clone(), e.key_name.clone())),
            )
        })
        .collect();
    let e = |p: &str, k: &str| Some((p.to_string(), k.to_string()));
    assert_eq!(
        enc,
        [
            ("box".to_string(), e("secretbox", "key3")),
            ("cbc".to_string(), e("aescbc", "key1")),
            ("gcm".to_string(), e("aesgcm", "key2")),
            ("kms".to_string(), e("kms v2", "vault")),
            ("plain".to_string(), None),
        ]
    );
    assert!(
        listed
            .iter()
            .filter(|o| o.encryption.is_some())
            .all(|o| o.kind.is_none())
    );

    let right = Decryptor::from_config(&config(&KEY)).unwrap();
    let wrong = Decryptor::from_config(&config(&OTHER)).unwrap();
    for name in ["cbc", "gcm", "box"] {
        let entry = objects.by_key(&key(name)).unwrap();
        // Without keys: a clear error naming provider and key, never garbage.
        let err = objects.decode(entry, None).unwrap_err().to_string();
        assert!(err.contains("EncryptionConfiguration"), "{name}: {err}");
        let err = objects.decode(entry, Some(&wrong)).unwrap_err().to_string();
        assert!(err.contains("key"), "{name}: {err}");
        let decoded = objects.decode(entry, Some(&right)).unwrap();
        assert_eq!(decoded.stored.object, want, "{name}");
        assert!(decoded.encryption.is_some());
    }
    let err = objects
        .decode(objects.by_key(&key("kms")).unwrap(), Some(&right))
        .unwrap_err()
        .to_string();
    assert!(err.contains("KMS"), "{err}");
}

#[test]
fn diff_between_snapshots_and_export_for_a_restore() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let cm = |name: &str, data: &str| {
        (
            format!("/registry/configmaps/app/{name}"),
            serde_json::to_vec(&serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "app", "uid": format!("uid-{name}"),
                    "creationTimestamp": "2024-01-01T00:00:00Z",
                    "managedFields": [{"manager": "kubectl"}]},
                "data": {"k": data},
            }))
            .unwrap(),
        )
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = common::repo(tmp.path());
    let a = snapshot_of(
        &etcd,
        vec![cm("one", "1"), cm("two", "2"), cm("three", "3")],
        tmp.path(),
        &mut repo,
        "a.db",
    );
    etcd.etcdctl_ok(&["del", "/registry/configmaps/app/three"]);
    let b = snapshot_of(
        &etcd,
        vec![cm("two", "2b"), cm("four", "4")],
        tmp.path(),
        &mut repo,
        "b.db",
    );
    let (sa, sb) = (
        EtcdSnapshot::open(&repo, a).unwrap(),
        EtcdSnapshot::open(&repo, b).unwrap(),
    );
    let (oa, ob) = (
        Objects::open(&repo, &sa).unwrap(),
        Objects::open(&repo, &sb).unwrap(),
    );
    let changes: Vec<(ChangeKind, String)> = diff(&oa.catalog, &ob.catalog, &Filter::default())
        .into_iter()
        .map(|c| (c.change, c.object.name))
        .collect();
    assert_eq!(
        changes,
        [
            (ChangeKind::Added, "four".to_string()),
            (ChangeKind::Removed, "three".to_string()),
            (ChangeKind::Changed, "two".to_string()),
        ]
    );
    let old = oa
        .decode(oa.by_name("configmaps/app/two").unwrap(), None)
        .unwrap();
    let new = ob
        .decode(ob.by_name("configmaps/app/two").unwrap(), None)
        .unwrap();
    let fields: Vec<String> = hokan_k8s_codec::diff(&old.served, &new.served)
        .iter()
        .map(|c| c.path().to_string())
        .collect();
    assert_eq!(fields, ["/data/k", "/metadata/resourceVersion"]);

    // Export: sanitized manifests in the layout hokan-k8s restores from.
    let out = tmp.path().join("export");
    let report = hokan_etcd::export(&ob, &Filter::default(), &out, Default::default()).unwrap();
    assert_eq!(report.written.len(), 3, "{report:?}");
    assert!(report.skipped.is_empty(), "{report:?}");
    let two: Value =
        serde_json::from_slice(&std::fs::read(out.join("core/configmaps/app/two.json")).unwrap())
            .unwrap();
    assert_eq!(two["data"]["k"], "2b");
    for gone in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
    ] {
        assert!(two["metadata"].get(gone).is_none(), "{gone} left in {two}");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plan = rt
        .block_on(hokan_k8s::plan(
            &hokan_k8s::ManifestDir::new(&out),
            None,
            &Default::default(),
        ))
        .unwrap();
    let mut planned: Vec<String> = plan.steps.iter().map(|s| s.target_name.clone()).collect();
    planned.sort();
    assert_eq!(planned, ["four", "one", "two"]);
}

#[test]
fn values_outside_records_are_read_from_the_file() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    // A handful of small keys: bbolt keeps the `key` bucket inline in its
    // parent page, so no value is a record of its own.
    etcd.etcdctl_ok(&[
        "put",
        "/registry/configmaps/a/x",
        "{\"kind\":\"ConfigMap\"}",
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = common::repo(tmp.path());
    let entry = snapshot_of(&etcd, Vec::new(), tmp.path(), &mut repo, "small.db");
    let snap = EtcdSnapshot::open(&repo, entry).unwrap();
    let objects = Objects::open(&repo, &snap).unwrap();
    let e = objects.by_key("/registry/configmaps/a/x").unwrap();
    assert!(matches!(e.at, ValueAt::File { .. }), "{:?}", e.at);
    assert_eq!(objects.value(e).unwrap(), b"{\"kind\":\"ConfigMap\"}");
}

#[test]
fn key_name_exceptions_and_other_prefixes_are_listed_with_their_resource() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    let json =
        |v: &str, k: &str| format!("{{\"apiVersion\":\"{v}\",\"kind\":\"{k}\"}}").into_bytes();
    let pairs = vec![
        (
            "/registry/services/specs/default/kubernetes".into(),
            json("v1", "Service"),
        ),
        (
            "/registry/services/endpoints/default/kubernetes".into(),
            json("v1", "Endpoints"),
        ),
        ("/registry/minions/node-1".into(), json("v1", "Node")),
        (
            "/registry/example.com/widgets/ns/w".into(),
            json("example.com/v1", "Widget"),
        ),
        (
            "/kubernetes.io/configmaps/openshift-config/c".into(),
            json("v1", "ConfigMap"),
        ),
        (
            "/openshift.io/routes/web/r".into(),
            json("route.openshift.io/v1", "Route"),
        ),
        ("/registry/masterleases/10.0.0.1".into(), b"\x00".to_vec()),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let mut repo = common::repo(tmp.path());
    let entry = snapshot_of(&etcd, pairs, tmp.path(), &mut repo, "keys.db");
    let snap = EtcdSnapshot::open(&repo, entry).unwrap();
    let objects = Objects::open(&repo, &snap).unwrap();
    let got: Vec<(String, String, Option<String>, String)> = objects
        .list(&Filter::default())
        .into_iter()
        .map(|o| {
            (
                o.resource_name(),
                o.name,
                o.namespace,
                o.encoding.to_string(),
            )
        })
        .collect();
    let row = |r: &str, n: &str, ns: Option<&str>, e: &str| {
        (
            r.to_string(),
            n.to_string(),
            ns.map(str::to_string),
            e.to_string(),
        )
    };
    assert_eq!(
        got,
        [
            row("configmaps", "c", Some("openshift-config"), "json"),
            row("routes.route.openshift.io", "r", Some("web"), "json"),
            row("widgets.example.com", "w", Some("ns"), "json"),
            row("masterleases", "10.0.0.1", None, "other"),
            row("nodes", "node-1", None, "json"),
            row("endpoints", "kubernetes", Some("default"), "json"),
            row("services", "kubernetes", Some("default"), "json"),
        ]
    );
    let svc = objects.by_name("services/default/kubernetes").unwrap();
    assert_eq!(svc.key, b"/registry/services/specs/default/kubernetes");
    assert_eq!(
        objects.by_name("nodes/node-1").unwrap().key,
        b"/registry/minions/node-1"
    );
}
