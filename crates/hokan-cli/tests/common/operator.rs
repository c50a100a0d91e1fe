//! What the operator's end-to-end tests share: the CRDs as `kubectl apply
//! -k deploy/` installs them, a repository with a cheap key, and the
//! operator's controllers in-process on a test clock, stopped cleanly.
//! Included with `#[path]` by those tests only.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hokan_k8s::testserver::TestCluster;
use hokan_operator::clock::Clock;
use hokan_operator::http::Endpoints;
use hokan_operator::run::{RunError, RunOptions, run};
use serde_json::Value;
use tokio::sync::watch;

/// The operator's namespace.
pub const NS: &str = "hokan-system";

/// Creates hokan's CRDs from `deploy/crds`.
pub async fn install_crds(tc: &mut TestCluster) {
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    for name in [
        "repositories.yaml",
        "backuppolicies.yaml",
        "backups.yaml",
        "restores.yaml",
    ] {
        let text = std::fs::read_to_string(crds.join(name)).unwrap();
        let crd: Value = serde_saphyr::from_str(&text).unwrap();
        tc.create(crd).await.unwrap();
    }
}

/// `hokan init` of a repository at `repo` with `password` and a cheap key.
pub fn init_repository(repo: &Path, password: &str) {
    std::fs::create_dir_all(repo.parent().unwrap()).unwrap();
    let init = std::process::Command::new(env!("CARGO_BIN_EXE_hokan"))
        .args(["init", "--kdf-memory", "1M", "--kdf-iterations", "1"])
        .env("HOKAN_REPOSITORY", repo)
        .env("HOKAN_PASSWORD", password)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
}

/// The operator running in-process.
pub struct Operator {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
}

impl Operator {
    /// Starts the controllers as `client` on `clock`, in [`NS`], opening
    /// repositories with `open_options`, no Job retried.
    pub fn start(
        client: kube::Client,
        clock: Arc<dyn Clock>,
        open_options: hokan_repo::OpenOptions,
        endpoints: Endpoints,
    ) -> Operator {
        let (stop, stop_rx) = watch::channel(false);
        let options = RunOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            namespace: NS.into(),
            identity: "operator-0".into(),
            lease_name: "hokan-operator".into(),
            open_options,
            image: "localhost/hokan:test".into(),
            max_concurrent_runs: 2,
            job_retries: 0,
            shutdown_grace: Duration::from_secs(30),
        };
        let task = tokio::spawn(run(client, clock, options, endpoints, stop_rx));
        Operator { stop, task }
    }

    /// Signals the stop and waits for a clean end (at most 120 s).
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let r = tokio::time::timeout(Duration::from_secs(120), self.task)
            .await
            .expect("the operator stops on the signal")
            .unwrap();
        assert!(r.is_ok(), "{r:?}");
    }
}

/// Every file under `dir`: relative path → (content, uid).
pub fn tree(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = p.symlink_metadata().unwrap();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if md.is_dir() {
                out.insert(format!("{rel}/"), (Vec::new(), md.uid()));
                stack.push(p);
            } else {
                out.insert(rel, (std::fs::read(&p).unwrap(), md.uid()));
            }
        }
    }
    out
}
