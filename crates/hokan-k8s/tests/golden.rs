//! The Kubernetes resource snapshot as this crate writes it (docs/FORMAT.md
//! §14), pinned by a committed repository, `tests/golden/repo-k8s`: a
//! Velero tarball of a few objects (namespaced, cluster-scoped, a custom
//! resource, a second served version) imported with
//! `import_velero_to_repository`, which stores objects exactly as a backup
//! does. (The version-2 golden repository of hokan-repo holds a snapshot of
//! source kind `k8s` built by hand through the generic session, with an
//! integer `resourceVersion` and its own paths: it pins the tree encoding,
//! not what this source writes; this repository does.)
//!
//! Both ways are checked: the committed snapshot reads back through
//! [`SnapshotSource`] to the same objects, and lists as
//! `tests/golden/k8s-snapshot-tree.txt` (every attribute a string, as the
//! source writes it); and today's import of the same objects into a copy of
//! the repository writes exactly the committed trees (the same root tree id
//! under the same key). `HOKAN_BLESS=1` writes what is missing, never what
//! exists: a committed repository is a promise. `HOKAN_FUZZ_SEEDS=<dir>`
//! writes the tarball there as a seed of the `velero_import` fuzz target.

use std::path::{Path, PathBuf};

use hokan_core::AttrValue;
use hokan_core::fs::NoProgress;
use hokan_k8s::repository::SnapshotOptions;
use hokan_k8s::{
    GroupResource, MemoryStore, ObjectAttrs, ObjectEntry, ObjectKey, ObjectSource, SnapshotSource,
    StoredObject, import_velero_to_repository, velero,
};
use hokan_repo::conformance::{test_init_options, tree_listing};
use hokan_repo::{CacheMode, OpenOptions, Repository, SourceKind};

const PASSWORD: &[u8] = b"golden k8s repository";
const IDENTITY: &str = "golden-cluster";

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn options() -> OpenOptions {
    OpenOptions {
        cache: CacheMode::Off,
        ..Default::default()
    }
}

/// `(resource.group, namespace, name, version dir or None for the
/// preferred copy, JSON)` of each object in the tarball.
type Spec = (
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
    String,
);

fn objects() -> Vec<Spec> {
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web","namespace":"shop","uid":"0b5f3c1e-1111-4c2a-9d0e-000000000001","resourceVersion":"12345","creationTimestamp":"2024-01-01T00:00:00Z"},"data":{"app.properties":"name=web\n"}}"#;
    let ns = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop","uid":"0b5f3c1e-1111-4c2a-9d0e-000000000002","resourceVersion":"17"},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}}"#;
    let widget = r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"blue","namespace":"shop","uid":"0b5f3c1e-1111-4c2a-9d0e-000000000003","resourceVersion":"9000000001"},"spec":{"color":"blue","size":3}}"#;
    let deploy = |v: &str| {
        format!(
            r#"{{"apiVersion":"apps/{v}","kind":"Deployment","metadata":{{"name":"web","namespace":"shop","uid":"0b5f3c1e-1111-4c2a-9d0e-000000000004","resourceVersion":"12400","generation":2}},"spec":{{"replicas":1,"selector":{{"matchLabels":{{"app":"web"}}}},"template":{{"metadata":{{"labels":{{"app":"web"}}}},"spec":{{"containers":[{{"name":"main","image":"registry.k8s.io/pause:3.9"}}]}}}}}}}}"#
        )
    };
    // An object with no uid nor resourceVersion: those attributes are left out.
    let bare = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"token","namespace":"shop"},"type":"Opaque","data":{"t":"aHVudGVyMg=="}}"#;
    vec![
        ("configmaps", Some("shop"), "web", None, cm.into()),
        ("namespaces", None, "shop", None, ns.into()),
        (
            "widgets.example.com",
            Some("shop"),
            "blue",
            None,
            widget.into(),
        ),
        ("deployments.apps", Some("shop"), "web", None, deploy("v1")),
        (
            "deployments.apps",
            Some("shop"),
            "web",
            Some("v1beta2"),
            deploy("v1beta2"),
        ),
        ("secrets", Some("shop"), "token", None, bare.into()),
    ]
}

/// The objects as a Velero tarball, written by this crate's exporter.
async fn tarball(dir: &Path) -> PathBuf {
    let mut store = MemoryStore::new();
    for (gr, ns, name, version, json) in objects() {
        let head: serde_json::Value = serde_json::from_str(&json).unwrap();
        let api_version = head["apiVersion"].as_str().unwrap();
        let entry = ObjectEntry {
            key: ObjectKey {
                resource: GroupResource::parse(gr),
                namespace: ns.map(str::to_string),
                name: name.into(),
            },
            version: version
                .unwrap_or(api_version.rsplit('/').next().unwrap())
                .into(),
            preferred: version.is_none(),
            attrs: ObjectAttrs::default(),
        };
        store.insert(StoredObject {
            entry,
            json: json.into_bytes(),
        });
    }
    let path = dir.join("golden.tar.gz");
    velero::export(&store, std::fs::File::create(&path).unwrap())
        .await
        .unwrap();
    path
}

async fn import(
    repo: &mut hokan_repo::IndexedRepository,
    tarball: &Path,
) -> hokan_repo::SnapshotEntry {
    import_velero_to_repository(
        tarball,
        IDENTITY,
        repo,
        &SnapshotOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap()
    .entry
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Compares `actual` with the committed text file `name`, or writes it
/// when blessing and it is missing.
fn check_text(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("HOKAN_BLESS").is_some() && !path.exists() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with HOKAN_BLESS=1)", path.display()));
    assert!(
        expected == actual,
        "{name} changed: what the k8s source writes is no longer what it wrote; \
         see docs/FORMAT.md §14\n--- committed\n{expected}\n--- now\n{actual}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_k8s_snapshot_tree_is_pinned() {
    let work = tempfile::tempdir().unwrap();
    let tarball = tarball(work.path()).await;
    if let Some(seeds) = std::env::var_os("HOKAN_FUZZ_SEEDS") {
        // The velero_import target reads a flag byte, then the tarball.
        let mut seed = vec![1];
        seed.extend(std::fs::read(&tarball).unwrap());
        std::fs::create_dir_all(&seeds).unwrap();
        std::fs::write(Path::new(&seeds).join("golden.tar.gz"), seed).unwrap();
    }
    let dir = golden("repo-k8s");
    if std::env::var_os("HOKAN_BLESS").is_some() && !dir.exists() {
        let location = dir.to_str().unwrap();
        Repository::init(location, PASSWORD, test_init_options(), options()).unwrap();
        let mut repo = Repository::open(location, PASSWORD, options())
            .unwrap()
            .load_index()
            .unwrap();
        import(&mut repo, &tarball).await;
    }

    // The committed snapshot, read back.
    let repo = Repository::open(dir.to_str().unwrap(), PASSWORD, options())
        .unwrap()
        .load_index()
        .unwrap();
    let snaps = repo.snapshots().unwrap();
    assert_eq!(snaps.len(), 1);
    let committed = &snaps[0];
    let s = &committed.snapshot;
    assert_eq!(
        (&s.source, s.identity.as_str()),
        (&SourceKind::K8S, IDENTITY)
    );
    assert_eq!(s.summary.count("objects"), 5);
    assert_eq!(s.summary.count("entries"), 6);
    check_text("k8s-snapshot-tree.txt", &tree_listing(&repo, &s.tree));
    let node = repo.node(s, "core/configmaps/shop/web.json").unwrap();
    assert_eq!(
        node.attr("resourceVersion"),
        Some(&AttrValue::Str("12345".into())),
        "the source stores resourceVersion as the string the API server gives"
    );
    let source = SnapshotSource::new(&repo, committed).unwrap();
    let listed = source.list().await.unwrap();
    assert_eq!(listed.len(), 6);
    let refs: Vec<_> = listed.iter().collect();
    let fetched = source.fetch_many(&refs).await.unwrap();
    for (entry, json) in listed.iter().zip(fetched) {
        let (.., want) = objects()
            .into_iter()
            .find(|(gr, ns, name, version, _)| {
                entry.key.resource == GroupResource::parse(gr)
                    && entry.key.namespace.as_deref() == *ns
                    && entry.key.name == *name
                    && entry.preferred == version.is_none()
            })
            .unwrap();
        assert_eq!(json, want.as_bytes(), "{}", entry.path());
        let head: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let rv = head["metadata"]["resourceVersion"].as_str().unwrap_or("");
        assert_eq!(entry.attrs.resource_version, rv, "{}", entry.path());
    }

    // Today's source writes the same trees: the same root under the same key.
    let copy = work.path().join("repo");
    copy_dir(&dir, &copy);
    let mut again = Repository::open(copy.to_str().unwrap(), PASSWORD, options())
        .unwrap()
        .load_index()
        .unwrap();
    let now = import(&mut again, &tarball).await;
    assert_eq!(
        now.snapshot.tree, s.tree,
        "the k8s source writes another tree"
    );
    assert_eq!(now.snapshot.summary.blobs_added, 0);
}
