//! A resource backup done in the operator's process, as a Backup of a
//! policy runs it: the objects its filters select stored in a real
//! repository, the snapshot found again by its run's tag, and retention
//! after each run leaving exactly N. Runs against a real cluster given
//! `HOKAN_TEST_KUBECONFIG`.

use hokan_k8s::testserver::TestCluster;
use hokan_operator::api::common::{ResourceFilter, Retention};
use hokan_operator::api::policy::ResourceSource;
use hokan_operator::work::{backup_resources, saved_by};
use hokan_repo::{CacheMode, InitOptions, KdfParams, OpenOptions, Repository};
use serde_json::json;

fn options() -> OpenOptions {
    OpenOptions {
        cache: CacheMode::Off,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_backed_up_in_process_with_retention_after_each_run() {
    let mut tc = TestCluster::new().await.unwrap();
    for i in 0..3 {
        tc.create(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i}"), "namespace": "shop"},
            "data": {"i": i.to_string()}
        }))
        .await
        .unwrap();
    }
    let shop = tc.namespace("shop");
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("repo");
    let loc = loc.to_str().unwrap().to_string();
    let init = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    Repository::init(&loc, b"pw", init, options()).unwrap();
    let source = ResourceSource {
        filter: ResourceFilter {
            included_namespaces: vec![shop.clone()],
            included_resources: vec!["configmaps".into()],
            ..Default::default()
        },
        retention: Some(Retention {
            keep_last: Some(2),
            ..Default::default()
        }),
        ..Default::default()
    };

    let mut forgotten = Vec::new();
    for run in [
        "shop-20260101000000",
        "shop-20260101010000",
        "shop-20260101020000",
    ] {
        let mut repo = tokio::task::block_in_place(|| {
            Repository::open(&loc, b"pw", options())
                .unwrap()
                .load_index()
                .unwrap()
        });
        let saved = backup_resources(tc.cluster(), &mut repo, &source, run)
            .await
            .unwrap();
        assert_eq!(saved.snapshots.len(), 1);
        assert_eq!(saved.snapshots[0].kind, "k8s");
        assert!(saved.errors.is_empty(), "{:?}", saved.errors);
        assert!(saved.figures.objects >= 3, "{:?}", saved.figures);
        forgotten.push(saved.forgotten);
        // The repository is the source of truth: the run's snapshot is
        // found again by its tag.
        let found = tokio::task::block_in_place(|| saved_by(&repo, run)).unwrap();
        assert_eq!(found.snapshots, saved.snapshots);
    }
    assert_eq!(
        forgotten,
        [0, 0, 1],
        "keep the last 2: the third run forgets one"
    );
    let repo = tokio::task::block_in_place(|| Repository::open(&loc, b"pw", options()).unwrap());
    let left = tokio::task::block_in_place(|| repo.snapshots()).unwrap();
    assert_eq!(left.len(), 2, "exactly N remain");
    tc.cleanup().await.unwrap();
}
