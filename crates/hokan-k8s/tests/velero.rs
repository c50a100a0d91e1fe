//! Velero tarball interop: the exported archive has Velero's exact layout,
//! and Velero's archives import into a backup that restores.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;

use hokan_k8s::testserver::TestCluster;
use hokan_k8s::{
    BackupOptions, Error, MemoryStore, ObjectSource, RestoreOptions, Target, backup, execute, plan,
    velero,
};
use serde_json::json;

async fn source_backup() -> MemoryStore {
    let mut source = TestCluster::in_process().await.unwrap();
    source
        .create(common::config_map("shop", "web", json!({"app": "web"})))
        .await
        .unwrap();
    source.create(common::widget_crd()).await.unwrap();
    source.create(common::widget("shop", "blue")).await.unwrap();
    let mut store = MemoryStore::new();
    let options = BackupOptions {
        all_api_versions: true,
        include_namespaces: vec!["shop".into()],
        ..Default::default()
    };
    backup(source.cluster(), &options, &mut store)
        .await
        .unwrap();
    store
}

fn tar_header(path: &[u8], size: u64) -> tar::Header {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..path.len()].copy_from_slice(path);
    h.set_size(size);
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    h
}

fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, bytes) in files {
        // Names are written raw, so a test can make the hostile ones the
        // tar crate's own writer refuses.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_size(bytes.len() as u64);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.append(&h, *bytes).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

#[tokio::test]
async fn an_export_has_velero_layout_and_imports_back_unchanged() {
    let store = source_backup().await;
    let mut archive = Vec::new();
    let written = velero::export(&store, &mut archive).await.unwrap();
    assert_eq!(written as usize, store.len());

    let mut paths = BTreeSet::new();
    let mut version = String::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&archive[..]));
    for file in tar.entries().unwrap() {
        let mut file = file.unwrap();
        assert!(
            file.header().entry_type().is_file(),
            "Velero writes no directory entries"
        );
        assert_eq!(file.header().mode().unwrap(), 0o755);
        let path = file.path().unwrap().to_string_lossy().into_owned();
        if path == "metadata/version" {
            file.read_to_string(&mut version).unwrap();
        }
        paths.insert(path);
    }
    assert_eq!(version, "1.1.0\n");
    for expected in [
        "resources/configmaps/namespaces/shop/web.json",
        "resources/configmaps/v1-preferredversion/namespaces/shop/web.json",
        "resources/namespaces/cluster/shop.json",
        "resources/namespaces/v1-preferredversion/cluster/shop.json",
        "resources/widgets.example.com/namespaces/shop/blue.json",
        "resources/widgets.example.com/v1-preferredversion/namespaces/shop/blue.json",
        "resources/widgets.example.com/v1beta1/namespaces/shop/blue.json",
        "resources/customresourcedefinitions.apiextensions.k8s.io/cluster/widgets.example.com.json",
        "resources/customresourcedefinitions.apiextensions.k8s.io/v1-preferredversion/cluster/widgets.example.com.json",
    ] {
        assert!(
            paths.contains(expected),
            "{expected} missing from {paths:#?}"
        );
    }
    assert_eq!(
        paths.len(),
        1 + 2 * store.objects().filter(|o| o.entry.preferred).count()
            + store.objects().filter(|o| !o.entry.preferred).count()
    );

    let mut imported = MemoryStore::new();
    let summary = velero::import(Path::new("shop.tar.gz"), &archive[..], &mut imported)
        .await
        .unwrap();
    assert_eq!(imported.list().await.unwrap(), store.list().await.unwrap());
    for o in store.objects() {
        assert_eq!(
            imported.get(&o.entry.path()).unwrap().json,
            o.json,
            "{}",
            o.entry.path()
        );
    }
    assert_eq!(summary.objects, 4);
    assert_eq!(imported.summary(), Some(&summary));
}

#[tokio::test]
async fn a_tarball_written_as_velero_writes_it_imports_and_restores() {
    let cm = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web","namespace":"shop","uid":"u1","resourceVersion":"7"},"data":{"a":"b"}}"#;
    let hpa2 = br#"{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","metadata":{"name":"web","namespace":"shop","uid":"u2"},"spec":{"maxReplicas":3,"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"}}}"#;
    let hpa1 = br#"{"apiVersion":"autoscaling/v1","kind":"HorizontalPodAutoscaler","metadata":{"name":"web","namespace":"shop","uid":"u2"},"spec":{"maxReplicas":3,"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"}}}"#;
    let ns = br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop","uid":"u3"},"status":{"phase":"Active"}}"#;
    let archive = tar_gz(&[
        ("metadata/version", b"1.1.0\n"),
        ("resources/configmaps/namespaces/shop/web.json", cm),
        (
            "resources/configmaps/v1-preferredversion/namespaces/shop/web.json",
            cm,
        ),
        (
            "resources/horizontalpodautoscalers.autoscaling/namespaces/shop/web.json",
            hpa2,
        ),
        (
            "resources/horizontalpodautoscalers.autoscaling/v2-preferredversion/namespaces/shop/web.json",
            hpa2,
        ),
        (
            "resources/horizontalpodautoscalers.autoscaling/v1/namespaces/shop/web.json",
            hpa1,
        ),
        ("resources/namespaces/cluster/shop.json", ns),
        (
            "resources/namespaces/v1-preferredversion/cluster/shop.json",
            ns,
        ),
    ]);
    let mut store = MemoryStore::new();
    velero::import(Path::new("velero-backup.tar.gz"), &archive[..], &mut store)
        .await
        .unwrap();
    let paths: Vec<String> = store.objects().map(|o| o.entry.path()).collect();
    assert_eq!(
        paths,
        [
            "autoscaling/horizontalpodautoscalers/_versions/v1/shop/web.json",
            "autoscaling/horizontalpodautoscalers/shop/web.json",
            "core/configmaps/shop/web.json",
            "core/namespaces/_cluster/shop.json",
        ]
    );
    let hpa = store
        .get("autoscaling/horizontalpodautoscalers/shop/web.json")
        .unwrap();
    assert_eq!(
        (hpa.entry.version.as_str(), hpa.entry.attrs.kind.as_str()),
        ("v2", "HorizontalPodAutoscaler")
    );

    let target = TestCluster::in_process().await.unwrap();
    let options = RestoreOptions::default();
    let plan = plan(
        &store,
        Some(&target.cluster().discover().await.unwrap()),
        &options,
    )
    .await
    .unwrap();
    let report = execute(&plan, &store, Target::Cluster(target.cluster()), &options)
        .await
        .unwrap();
    assert_eq!(
        report.count(|a| *a == hokan_k8s::restore::Action::Created),
        3,
        "{report}"
    );
    let hpa = target
        .server()
        .unwrap()
        .object(
            "autoscaling",
            "horizontalpodautoscalers",
            Some("shop"),
            "web",
        )
        .unwrap();
    assert_eq!(
        hpa["apiVersion"], "autoscaling/v2",
        "the target's preferred version, which was backed up"
    );
}

#[tokio::test]
async fn broken_and_hostile_tarballs_are_refused_with_the_reason() {
    let mut sink = MemoryStore::new();
    let err = velero::import(Path::new("x.tar.gz"), &b"not gzip"[..], &mut sink)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotVelero { .. }), "{err}");

    let no_version = tar_gz(&[(
        "resources/configmaps/namespaces/shop/web.json",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web"}}"#,
    )]);
    let err = velero::import(
        Path::new("x.tar.gz"),
        &no_version[..],
        &mut MemoryStore::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("metadata/version"), "{err}");

    let future = tar_gz(&[("metadata/version", b"2.0.0\n")]);
    let err = velero::import(Path::new("x.tar.gz"), &future[..], &mut MemoryStore::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("2.0.0"), "{err}");

    // A header claiming a huge file is refused before anything is allocated.
    let mut huge = tar::Header::new_old();
    huge.as_old_mut().name[..23].copy_from_slice(b"resources/x/cluster/big");
    huge.set_size(1 << 40);
    huge.set_entry_type(tar::EntryType::Regular);
    huge.set_cksum();
    // Written by hand: a tar writer would append the end-of-archive blocks.
    let mut raw = tar_header(b"metadata/version", 6).as_bytes().to_vec();
    raw.extend_from_slice(b"1.1.0\n");
    raw.resize(1024, 0);
    raw.extend_from_slice(huge.as_bytes());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let huge = gz.finish().unwrap();
    let err = velero::import(Path::new("x.tar.gz"), &huge[..], &mut MemoryStore::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("more than any Kubernetes object"),
        "{err}"
    );

    let escape = tar_gz(&[
        ("metadata/version", b"1.1.0\n"),
        (
            "resources/configmaps/namespaces/../../etc/passwd.json",
            b"{}",
        ),
    ]);
    let err = velero::import(Path::new("x.tar.gz"), &escape[..], &mut sink)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotVelero { .. }), "{err}");
    assert!(sink.is_empty());
}
