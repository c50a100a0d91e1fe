//! A restore to a manifest directory (`hokan k8s restore --to-dir`) never
//! writes through a symlink planted below the directory, and writes files
//! that may hold Secrets readable by their owner only (issue 22, item 7).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use hokan_k8s::testserver::TestCluster;
use hokan_k8s::{
    BackupOptions, ManifestDir, MemoryStore, RestoreOptions, Target, backup, execute, plan,
};
use serde_json::json;

/// Every file below `dir` (not following symlinks), with its mode.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let md = std::fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            out.extend(files(&p));
        } else {
            out.push((p, md.mode() & 0o7777));
        }
    }
    out
}

/// A symlink `core` → elsewhere, one in place of a manifest and one in
/// place of `restore-order.txt` are replaced, never followed: nothing
/// appears in the outside directory, whose mode stays 0700; every file
/// written is 0600 (the Secret's manifest among them).
#[tokio::test]
async fn planted_symlinks_are_replaced_and_files_are_private() {
    let mut source = TestCluster::in_process().await.unwrap();
    source
        .create(common::namespace("shop", json!({})))
        .await
        .unwrap();
    source
        .create(common::secret("shop", "creds"))
        .await
        .unwrap();
    source
        .create(common::config_map("shop", "web", json!({"app": "web"})))
        .await
        .unwrap();
    source
        .create(common::deployment("shop", "web"))
        .await
        .unwrap();
    let mut store = MemoryStore::new();
    let options = BackupOptions {
        include_namespaces: vec![source.namespace("shop")],
        ..Default::default()
    };
    backup(source.cluster(), &options, &mut store)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = dir.path().join("manifests");
    std::fs::create_dir(&out).unwrap();
    symlink(&outside, out.join("core")).unwrap();
    symlink(outside.join("order"), out.join("restore-order.txt")).unwrap();
    let deployment = out.join("apps/deployments/shop/web.json");
    std::fs::create_dir_all(deployment.parent().unwrap()).unwrap();
    symlink(outside.join("web.json"), &deployment).unwrap();

    let restore = RestoreOptions::default();
    let offline = plan(&store, None, &restore).await.unwrap();
    let manifests = ManifestDir::new(&out);
    execute(&offline, &store, Target::Dir(&manifests), &restore)
        .await
        .unwrap();

    let leaked: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert!(leaked.is_empty(), "written outside: {leaked:?}");
    assert_eq!(std::fs::metadata(&outside).unwrap().mode() & 0o7777, 0o700);
    assert!(
        std::fs::symlink_metadata(out.join("core"))
            .unwrap()
            .is_dir()
    );
    let written = files(&out);
    for name in ["restore-order.txt", "core/secrets/shop/creds.json"] {
        assert!(
            written.iter().any(|(p, _)| *p == out.join(name)),
            "{name}: {written:?}"
        );
    }
    assert!(written.iter().any(|(p, _)| *p == deployment), "{written:?}");
    for (path, mode) in &written {
        assert_eq!(*mode, 0o600, "{}", path.display());
    }
    let order = std::fs::read_to_string(out.join("restore-order.txt")).unwrap();
    assert!(order.contains("core/secrets/shop/creds.json"), "{order}");
}
