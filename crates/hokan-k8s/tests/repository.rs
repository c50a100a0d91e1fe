//! Resource snapshots in a real (local, encrypted) hokan repository: the
//! tree a backup writes, an unchanged second backup storing nothing, the
//! snapshot read back for a restore and a Velero export, a failing source
//! committing nothing, and a tarball imported to the same tree.

mod common;

use std::collections::BTreeMap;

use hokan_core::fs::NoProgress;
use hokan_k8s::repository::{SnapshotOptions, counts};
use hokan_k8s::testserver::{GenerateOptions, TestCluster};
use hokan_k8s::{
    BackupOptions, Error, ManifestDir, MemoryStore, ObjectSource, RestoreOptions, SnapshotSource,
    Target, backup, backup_to_repository, execute, import_velero_to_repository, plan, velero,
};
use serde_json::json;

async fn shop(cluster: &mut TestCluster) {
    cluster
        .create(common::namespace("shop", json!({})))
        .await
        .unwrap();
    cluster.create(common::widget_crd()).await.unwrap();
    cluster
        .create(common::widget("shop", "blue"))
        .await
        .unwrap();
    for name in ["web", "db"] {
        cluster
            .create(common::config_map("shop", name, json!({"app": name})))
            .await
            .unwrap();
    }
    cluster
        .create(common::service("shop", "web", None))
        .await
        .unwrap();
    cluster
        .create(common::deployment("shop", "web"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_is_a_tree_of_objects_and_an_unchanged_one_stores_nothing() {
    let mut cluster = TestCluster::new().await.unwrap();
    shop(&mut cluster).await;
    let ns = cluster.namespace("shop");
    let dir = tempfile::tempdir().unwrap();
    let mut repo = common::repository(dir.path());
    let options = BackupOptions {
        include_namespaces: vec![ns.clone()],
        ..Default::default()
    };
    // Tags as typed: the snapshot spec normalises them.
    let tagged = SnapshotOptions {
        tags: vec![" nightly".into(), String::new(), "nightly ".into()],
        ..Default::default()
    };
    let first = backup_to_repository(cluster.cluster(), &options, &mut repo, &tagged, &NoProgress)
        .await
        .unwrap();
    let snap = &first.entry.snapshot;
    assert_eq!(snap.tags, ["nightly"]);
    assert_eq!(snap.source, hokan_repo::SourceKind::K8S);
    assert_eq!(snap.identity, cluster.cluster().identity());
    assert!(first.value.errors.is_empty(), "{:?}", first.value.errors);
    let objects = first.value.objects;
    assert!(objects >= 6, "{objects}");
    assert_eq!(snap.summary.count(counts::OBJECTS), objects);
    assert_eq!(snap.summary.count(counts::NEW), objects);
    assert_eq!(
        snap.label(hokan_k8s::repository::labels::FILTERS),
        Some(format!("--include-namespaces {ns}").as_str())
    );

    // The object's node: its JSON as served, its attributes typed.
    let path = format!("core/configmaps/{ns}/web.json");
    let node = repo.node(snap, &path).unwrap();
    assert_eq!(node.kind, hokan_core::NodeKind::Object);
    assert_eq!(node.attr_str("kind"), Some("ConfigMap"));
    assert_eq!(node.attr_str("apiVersion"), Some("v1"));
    let mut body = Vec::new();
    repo.dump(snap, &path, &mut body).unwrap();
    let object: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(object["data"]["app.properties"], "name=web\n");
    assert_eq!(object["kind"], "ConfigMap");
    assert!(
        repo.node(
            snap,
            "apiextensions.k8s.io/customresourcedefinitions/_cluster/widgets.example.com.json"
        )
        .is_ok(),
        "the CRD of the widgets is pulled in"
    );

    // Unchanged: the same root tree, no blob added, every object unmodified.
    let second = backup_to_repository(
        cluster.cluster(),
        &options,
        &mut repo,
        &SnapshotOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    let s2 = &second.entry.snapshot;
    assert_eq!(s2.parent, Some(first.entry.id));
    assert_eq!(s2.tree, snap.tree);
    assert_eq!(s2.summary.blobs_added, 0);
    assert_eq!(s2.summary.bytes_added, 0);
    assert_eq!(s2.summary.count(counts::UNMODIFIED), objects);
    assert_eq!(s2.summary.count(counts::NEW), 0);

    // One change, one removal: counted against the parent.
    let cm = format!("/api/v1/namespaces/{ns}/configmaps/db");
    cluster.cluster().delete(&cm).await.unwrap();
    let mut changed = common::config_map(&ns, "web", json!({"app": "web"}));
    changed["data"]["app.properties"] = json!("name=web2\n");
    let current = cluster
        .cluster()
        .get(&format!("/api/v1/namespaces/{ns}/configmaps/web"))
        .await
        .unwrap()
        .unwrap();
    changed["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    cluster
        .cluster()
        .replace(&format!("/api/v1/namespaces/{ns}/configmaps/web"), &changed)
        .await
        .unwrap();
    let third = backup_to_repository(
        cluster.cluster(),
        &options,
        &mut repo,
        &SnapshotOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    let s3 = &third.entry.snapshot.summary;
    assert_eq!(s3.count(counts::CHANGED), 1);
    assert_eq!(s3.count(counts::REMOVED), 1);
    assert_eq!(s3.count(counts::UNMODIFIED), objects - 2);
    cluster.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_restores_and_exports_like_the_backup_it_holds() {
    let mut cluster = TestCluster::in_process().await.unwrap();
    shop(&mut cluster).await;
    let dir = tempfile::tempdir().unwrap();
    let mut repo = common::repository(dir.path());
    let options = BackupOptions {
        include_namespaces: vec!["shop".into()],
        all_api_versions: true,
        ..Default::default()
    };
    let saved = backup_to_repository(
        cluster.cluster(),
        &options,
        &mut repo,
        &SnapshotOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    let mut memory = MemoryStore::new();
    backup(cluster.cluster(), &options, &mut memory)
        .await
        .unwrap();

    // Listing the snapshot gives exactly the entries of the same backup.
    let source = SnapshotSource::new(&repo, &saved.entry).unwrap();
    let listed = source.list().await.unwrap();
    assert_eq!(listed, memory.list().await.unwrap());
    assert!(
        listed.iter().any(|e| !e.preferred),
        "other versions are kept"
    );
    let refs: Vec<_> = listed.iter().collect();
    let fetched = source.fetch_many(&refs).await.unwrap();
    for (entry, bytes) in listed.iter().zip(&fetched) {
        assert_eq!(
            bytes,
            &memory.get(&entry.path()).unwrap().json,
            "{}",
            entry.path()
        );
    }

    // Restored to a directory, through a plan, like from the backup itself.
    let out = tempfile::tempdir().unwrap();
    let manifests = ManifestDir::new(out.path());
    let restore = RestoreOptions::default();
    let restore_plan = plan(&source, None, &restore).await.unwrap();
    let mut seen = 0;
    let report = hokan_k8s::execute_with(
        &restore_plan,
        &source,
        Target::Dir(&manifests),
        &restore,
        |_| seen += 1,
    )
    .await
    .unwrap();
    assert!(report.outcomes.is_empty(), "streamed, not kept");
    assert_eq!(seen, restore_plan.steps.len());
    assert_eq!(report.totals.written as usize, restore_plan.steps.len());
    let from_memory = execute(
        &plan(&memory, None, &restore).await.unwrap(),
        &memory,
        Target::DryRun,
        &restore,
    )
    .await
    .unwrap();
    assert_eq!(from_memory.outcomes.len(), restore_plan.steps.len());
    assert!(out.path().join("core/configmaps/shop/web.json").is_file());

    // Exported as Velero would write it, then imported into a second
    // snapshot: the same tree, so nothing new is stored.
    let tarball = dir.path().join("shop.tar.gz");
    let written = velero::export(&source, std::fs::File::create(&tarball).unwrap())
        .await
        .unwrap();
    assert_eq!(written as usize, listed.len());
    let imported = import_velero_to_repository(
        &tarball,
        "velero-shop",
        &mut repo,
        &SnapshotOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(imported.entry.snapshot.tree, saved.entry.snapshot.tree);
    assert_eq!(imported.entry.snapshot.identity, "velero-shop");
    assert_eq!(imported.entry.snapshot.summary.blobs_added, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_source_commits_nothing_and_says_why() {
    let cluster = TestCluster::in_process().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut repo = common::repository(dir.path());
    let options = BackupOptions {
        selector: Some("app in (".into()),
        ..Default::default()
    };
    let err = backup_to_repository(
        cluster.cluster(),
        &options,
        &mut repo,
        &SnapshotOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "label selector",
                ..
            }
        ),
        "{err}"
    );
    assert!(repo.snapshots().unwrap().is_empty());

    // Not a tarball: the import's own error, and no snapshot.
    let bogus = dir.path().join("not.tar.gz");
    std::fs::write(&bogus, b"plain text").unwrap();
    let err = import_velero_to_repository(
        &bogus,
        "x",
        &mut repo,
        &SnapshotOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotVelero { .. }), "{err}");
    assert!(repo.snapshots().unwrap().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn a_current_thread_runtime_is_refused_with_the_fix() {
    let cluster = TestCluster::in_process().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut repo = common::repository(dir.path());
    let err = backup_to_repository(
        cluster.cluster(),
        &BackupOptions::default(),
        &mut repo,
        &SnapshotOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("new_multi_thread"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_objects_over_many_pages_and_namespaces() {
    let cluster = TestCluster::in_process().await.unwrap();
    let server = cluster.server().unwrap();
    server.generate(&GenerateOptions {
        objects: 3000,
        namespaces: 7,
        seed: 5,
    });
    let dir = tempfile::tempdir().unwrap();
    let mut repo = common::repository(dir.path());
    let options = BackupOptions {
        page_size: 97,
        ..Default::default()
    };
    let saved = backup_to_repository(
        cluster.cluster(),
        &options,
        &mut repo,
        &SnapshotOptions {
            tags: vec!["nightly".into()],
            ..Default::default()
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(saved.entry.snapshot.tags, ["nightly"]);
    let source = SnapshotSource::new(&repo, &saved.entry).unwrap();
    let listed = source.list().await.unwrap();
    assert_eq!(listed.len() as u64, saved.value.entries);
    let per_resource: BTreeMap<String, u64> = listed.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e.key.resource.to_string()).or_default() += 1;
        m
    });
    assert_eq!(per_resource, saved.value.resources);
}

fn stored(ns: &str, resource: &str, name: &str) -> hokan_k8s::StoredObject {
    let kind = if resource == "configmaps" {
        "ConfigMap"
    } else {
        "Secret"
    };
    let json = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"), "resourceVersion": "7"}});
    hokan_k8s::StoredObject {
        entry: hokan_k8s::ObjectEntry {
            key: hokan_k8s::ObjectKey {
                resource: hokan_k8s::GroupResource::new("", resource),
                namespace: Some(ns.into()),
                name: name.into(),
            },
            version: "v1".into(),
            preferred: true,
            attrs: hokan_k8s::ObjectAttrs {
                api_version: "v1".into(),
                kind: kind.into(),
                uid: format!("uid-{ns}-{name}"),
                resource_version: "7".into(),
            },
        },
        json: serde_json::to_vec(&json).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_in_any_order_make_the_same_tree_and_late_ones_are_refused() {
    // A Velero tarball may hold objects in any order (Velero writes items
    // as its plugins pull them in): interleaved namespaces and resources.
    let order = [
        ("b", "configmaps", "x"),
        ("a", "secrets", "s"),
        ("a", "configmaps", "z"),
        ("b", "secrets", "t"),
        ("a", "configmaps", "y"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("mixed.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&tarball).unwrap(),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gz);
        let mut add = |path: &str, bytes: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o755);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, path, bytes).unwrap();
        };
        add("metadata/version", b"1.1.0\n");
        for (ns, resource, name) in order {
            let o = stored(ns, resource, name);
            add(
                &format!("resources/{resource}/namespaces/{ns}/{name}.json"),
                &o.json,
            );
        }
        tar.into_inner().unwrap().finish().unwrap();
    }
    let mut repo = common::repository(dir.path());
    let imported = import_velero_to_repository(
        &tarball,
        "mixed",
        &mut repo,
        &SnapshotOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    let source = SnapshotSource::new(&repo, &imported.entry).unwrap();
    let paths: Vec<String> = source
        .list()
        .await
        .unwrap()
        .iter()
        .map(|e| e.path())
        .collect();
    assert_eq!(
        paths,
        [
            "core/configmaps/a/y.json",
            "core/configmaps/a/z.json",
            "core/configmaps/b/x.json",
            "core/secrets/a/s.json",
            "core/secrets/b/t.json"
        ]
    );

    // The same objects in path order: the same tree.
    let mut sorted = order.to_vec();
    sorted.sort_by_key(|(ns, r, n)| (*r, *ns, *n));
    let tree = repo
        .backup(
            hokan_repo::SnapshotSpec::new(hokan_repo::SourceKind::K8S),
            |session| -> hokan_k8s::Result<_> {
                let mut builder = hokan_k8s::repository::TreeBuilder::new(session, &NoProgress);
                for (ns, resource, name) in &sorted {
                    builder.put(stored(ns, resource, name))?;
                }
                let (tree, _) = builder.finish()?;
                Ok((hokan_repo::Staged::new(tree), tree))
            },
        )
        .unwrap()
        .value;
    assert_eq!(tree, imported.entry.snapshot.tree);

    // A list reported complete gets no more objects: the tree written
    // could not hold them, so the builder says so instead.
    let late = repo.backup(
        hokan_repo::SnapshotSpec::new(hokan_repo::SourceKind::K8S),
        |session| -> hokan_k8s::Result<_> {
            let mut builder = hokan_k8s::repository::TreeBuilder::new(session, &NoProgress);
            builder.put(stored("a", "configmaps", "one")).unwrap();
            builder
                .completed(&hokan_k8s::Completed {
                    resource: hokan_k8s::GroupResource::new("", "configmaps"),
                    version: "v1".into(),
                    preferred: true,
                    namespace: None,
                })
                .unwrap();
            let err = builder.put(stored("a", "configmaps", "two")).unwrap_err();
            assert!(err.to_string().contains("arrived after"), "{err}");
            // Other resources' directories are still open.
            builder.put(stored("b", "secrets", "three")).unwrap();
            let bad = builder
                .put(stored("Not_A_Namespace", "secrets", "x"))
                .unwrap_err();
            assert!(bad.to_string().contains("not a namespace name"), "{bad}");
            let (tree, _) = builder.finish().unwrap();
            Ok((hokan_repo::Staged::new(tree), ()))
        },
    );
    assert!(late.is_ok());

    // An object the builder refuses, its error returned with `?` from the
    // session's closure: it comes back as the builder's own error, naming
    // the object, and nothing is saved.
    let before = repo.snapshots().unwrap().len();
    let refused = repo.backup(
        hokan_repo::SnapshotSpec::new(hokan_repo::SourceKind::K8S),
        |session| {
            let mut builder = hokan_k8s::repository::TreeBuilder::new(session, &NoProgress);
            builder.put(stored("a", "configmaps", "one"))?;
            builder.put(stored("Not_A_Namespace", "secrets", "x"))?;
            let (tree, _) = builder.finish()?;
            Ok::<_, Error>((hokan_repo::Staged::new(tree), ()))
        },
    );
    match refused {
        Err(Error::BadObject { what, reason }) => {
            assert_eq!(what, "core/secrets/Not_A_Namespace/x.json");
            assert!(reason.contains("not a namespace name"), "{reason}");
        }
        other => panic!("expected the builder's BadObject, got {other:?}"),
    }
    assert_eq!(repo.snapshots().unwrap().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_holding_something_else_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = common::repository(dir.path());
    // A resource snapshot with a plain file where only objects belong.
    let saved = repo
        .backup(
            hokan_repo::SnapshotSpec::new(hokan_repo::SourceKind::K8S),
            |s| -> hokan_repo::Result<_> {
                let content = s.store_bytes(b"{}")?;
                let mut file = hokan_core::Node::new("stray.txt", hokan_core::NodeKind::File);
                file.content = content;
                let ns = s.store_tree(vec![file])?;
                let res = s.store_tree(vec![hokan_core::Node::dir("shop", ns)])?;
                let group = s.store_tree(vec![hokan_core::Node::dir("configmaps", res)])?;
                let root = s.store_tree(vec![hokan_core::Node::dir("core", group)])?;
                Ok((hokan_repo::Staged::new(root), ()))
            },
        )
        .unwrap();
    let source = SnapshotSource::new(&repo, &saved.entry).unwrap();
    match source.list().await {
        Err(Error::NotResources { snapshot, reason }) => {
            assert_eq!(snapshot, saved.entry.id.short());
            assert!(
                reason.contains("core/configmaps/shop/stray.txt"),
                "{reason}"
            );
        }
        other => panic!("expected NotResources, got {other:?}"),
    }
}
