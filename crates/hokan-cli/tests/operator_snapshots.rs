//! CSI "snapshot + copy" through the operator end to end (issue 25): the
//! test server with the CRDs from `deploy/crds`, the CSI stand-in (its
//! snapshot controller and provisioner), two nodes run by the kubelet
//! stand-in executing the real `hokan` in the copy Jobs, and the
//! operator's controllers in-process on a test clock.
//!
//! A policy over four claims labelled for it in `shop`: two Filesystem
//! claims and one Block claim of the CSI driver, and one of a storage
//! class with no snapshot class (it falls back to the node agent, as its
//! status says). Snapshots every 15 minutes keeping the newest 2; copies
//! every 30 minutes keeping 2, at most 2 at once.
//!
//! - Through five ticks: snapshots made and expired by their retention,
//!   copies made and expired by theirs, never more than two copy Jobs at
//!   once; the second copy of an unchanged claim reads no file again; no
//!   copy object (temporary claim, snapshot, content, Job) is left after a
//!   copy.
//! - Each injected failure — the driver's snapshot error, a snapshot never
//!   ready, a copy Job that fails, the copy's node lost mid-copy — ends in
//!   the claim's status with its reason and leaves no temporary claim.
//! - Restores: from a copy into a claim of another namespace (owners moved
//!   into its UID range when run as root), byte for byte; the Block
//!   claim's copy is its device, byte for byte; from a VolumeSnapshot into
//!   a new claim in another namespace, byte for byte, for a Filesystem
//!   and a Block claim; the Block claim's copy onto a new Block claim (as
//!   root: the stand-in's devices are loop devices); from a copy into the claim it was taken of, in use
//!   by a StatefulSet, scaled to zero for it and back after.
//! - Every request the operator made is allowed by deploy/'s RBAC.
//! - Hooks (a second test): a pod mounting two of the claims, with
//!   Velero's pre and post hook annotations, is frozen once while both its
//!   claims are cut and thawed after; a failing pre hook stops its claims'
//!   snapshots (not the others') with the exit code and error output in
//!   status; a timed-out one with `on-error: Continue` lets them go on.
//!
//! It needs the stand-ins, so it runs on the in-process server only.

#[path = "common/operator.rs"]
mod harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use hokan_k8s::testserver::kubelet::wait_for;
use hokan_k8s::testserver::{Csi, CsiConfig, Kubelet, KubeletConfig, TestCluster};
use hokan_operator::clock::{Clock, ManualClock};
use hokan_operator::http::Endpoints;
use serde_json::{Value, json};

use harness::{NS, tree};
const APP: &str = "shop";
const DR: &str = "shop-dr";
const DRIVER: &str = "hostpath.csi.k8s.io";
const PASSWORD: &str = "operator snapshots test password";
const OPERATOR: &str = "system:serviceaccount:hokan-system:hokan-operator";
const SHOP_RANGE: u32 = 1_000_650_000;
const DR_RANGE: u32 = 1_000_780_000;
const POLICY: &str = "tier";
/// The claims copied: two Filesystem, one Block.
const CLAIMS: [&str; 3] = ["data-a", "data-b", "disk"];
const LEGACY: &str = "legacy";
const DISK_SIZE: u64 = 8 << 20;

struct Env {
    tc: TestCluster,
    csi: Csi,
    kubelet: Kubelet,
    clock: Arc<ManualClock>,
    operator: harness::Operator,
    repo: PathBuf,
    /// While this file exists, every `hokan` the kubelet runs waits first.
    gate: PathBuf,
    root: tempfile::TempDir,
}

fn b64(s: &str) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s)
}

fn claim(ns: &str, name: &str, class: &str, block: bool, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                 "volumeMode": if block { "Block" } else { "Filesystem" },
                 "resources": {"requests": {"storage": if block { "8Mi" } else { "64Mi" }}}}})
}

impl Env {
    async fn start() -> Env {
        let root = tempfile::tempdir().unwrap();
        let mut tc = TestCluster::in_process().await.unwrap();
        harness::install_crds(&mut tc).await;
        let csi = Csi::start(
            tc.server().unwrap(),
            CsiConfig::new(DRIVER, root.path().join("csi")),
        )
        .await
        .unwrap();
        // `hokan` through a wrapper that waits while the gate file exists:
        // a copy held mid-way, for losing its node.
        let gate = root.path().join("gate");
        let wrapper = root.path().join("hokan-gated");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nwhile [ -e '{}' ]; do sleep 0.1; done\nexec '{}' \"$@\"\n",
                gate.display(),
                env!("CARGO_BIN_EXE_hokan")
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let config = KubeletConfig::new(root.path().join("nodes"))
            .command("hokan", &wrapper)
            .command("sh", "/bin/sh")
            .csi_driver(DRIVER, csi.data());
        let kubelet = Kubelet::start(tc.server().unwrap(), config).await.unwrap();
        for node in ["worker-0", "worker-1"] {
            kubelet
                .register_node(node, json!({"kubernetes.io/hostname": node}), json!([]))
                .await
                .unwrap();
        }
        for (ns, range) in [(NS, None), (APP, Some(SHOP_RANGE)), (DR, Some(DR_RANGE))] {
            let mut obj =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            if let Some(r) = range {
                obj["metadata"]["annotations"] =
                    json!({"openshift.io/sa.scc.uid-range": format!("{r}/10000")});
            }
            tc.create(obj).await.unwrap();
        }
        for object in [
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                   "metadata": {"name": "csi-hostpath"}, "provisioner": DRIVER,
                   "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}),
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                   "metadata": {"name": "nfs"}, "provisioner": "nfs.example.com"}),
            json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
                   "metadata": {"name": "csi-hostpath-snapclass",
                                "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"}},
                   "driver": DRIVER, "deletionPolicy": "Delete"}),
        ] {
            tc.create(object).await.unwrap();
        }
        let tier = json!({"hokan.dev/sla": "tier"});
        for (name, block) in [("data-a", false), ("data-b", false), ("disk", true)] {
            tc.create(claim(APP, name, "csi-hostpath", block, tier.clone()))
                .await
                .unwrap();
        }
        tc.create(claim(APP, LEGACY, "nfs", false, tier.clone()))
            .await
            .unwrap();

        // The repository: a path every node mounts (a shared file system).
        let repo = root.path().join("backups/repo");
        harness::init_repository(&repo, PASSWORD);
        for node in ["worker-0", "worker-1"] {
            let on_node = kubelet.config().host_path(node, repo.to_str().unwrap());
            std::fs::create_dir_all(on_node.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&repo, &on_node).unwrap();
        }
        for ns in [NS, APP, DR] {
            tc.create(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "hokan-repository", "namespace": ns},
                "data": {"password": b64(PASSWORD)}}))
                .await
                .unwrap();
            tc.create(
                json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Repository",
                "metadata": {"name": "main", "namespace": ns},
                "spec": {"location": repo.to_str().unwrap(),
                         "passwordSecretRef": {"name": "hokan-repository", "key": "password"}}}),
            )
            .await
            .unwrap();
        }

        let start = (Utc::now() + TimeDelta::days(1))
            .duration_trunc(TimeDelta::hours(1))
            .unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let client = tc
            .server()
            .unwrap()
            .cluster_as(OPERATOR)
            .unwrap()
            .client()
            .clone();
        let operator = harness::Operator::start(
            client,
            clock.clone(),
            hokan_repo::OpenOptions {
                cache: hokan_repo::CacheMode::Off,
                ..Default::default()
            },
            Endpoints::default(),
        );
        Env {
            tc,
            csi,
            kubelet,
            clock,
            operator,
            repo,
            gate,
            root,
        }
    }

    /// The data directory (or image file) of claim `ns/name`.
    async fn data(&self, ns: &str, name: &str) -> PathBuf {
        let path = format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}");
        let c = wait_for(self.tc.cluster(), &path, "Bound", |c| {
            c["status"]["phase"] == "Bound"
        })
        .await
        .unwrap();
        self.csi
            .data()
            .volume(c["spec"]["volumeName"].as_str().unwrap())
    }

    /// Restore `name` of shop-dr once it has ended.
    async fn finished_restore(&self, name: &str) -> Value {
        self.finished_restore_in(DR, name).await
    }

    /// Restore `ns/name` once it has ended.
    async fn finished_restore_in(&self, ns: &str, name: &str) -> Value {
        let path = format!("/apis/hokan.dev/v1alpha1/namespaces/{ns}/restores/{name}");
        wait_for(self.tc.cluster(), &path, "finished", |r| {
            matches!(
                r["status"]["phase"].as_str(),
                Some("Completed" | "PartiallyFailed" | "Failed")
            )
        })
        .await
        .unwrap()
    }

    /// Creates the policy over the claims labelled for it in shop, with
    /// these snapshot and copy rhythms.
    async fn create_policy(&self, snapshots: Value, copies: Option<Value>) {
        let mut volumes = json!({"namespaces": [APP],
            "claimSelector": {"matchLabels": {"hokan.dev/sla": "tier"}},
            "snapshots": snapshots});
        if let Some(c) = copies {
            volumes["copies"] = c;
        }
        let policy = json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": POLICY, "namespace": NS},
            "spec": {"repository": "main", "schedule": "@daily", "volumes": volumes}});
        let path = format!("/apis/hokan.dev/v1alpha1/namespaces/{NS}/backuppolicies");
        self.tc.cluster().create(&path, &policy).await.unwrap();
    }

    async fn policy(&self) -> Value {
        let path = format!("/apis/hokan.dev/v1alpha1/namespaces/{NS}/backuppolicies/{POLICY}");
        self.tc.cluster().get(&path).await.unwrap().unwrap()
    }

    /// Waits until every copied claim's status satisfies `ready`.
    async fn claims_until(&self, what: &str, ready: impl Fn(&str, &Value) -> bool) -> Value {
        let path = format!("/apis/hokan.dev/v1alpha1/namespaces/{NS}/backuppolicies/{POLICY}");
        wait_for(self.tc.cluster(), &path, what, |p| {
            CLAIMS
                .iter()
                .all(|c| claim_status(p, c).is_some_and(|s| ready(c, s)))
        })
        .await
        .unwrap()
    }

    /// Names of `kind` objects in `ns` (cluster-wide with `None`).
    async fn names(&self, path: &str) -> Vec<String> {
        let page = self
            .tc
            .cluster()
            .list_page(path, None, None, 0)
            .await
            .unwrap();
        page.items
            .iter()
            .map(|i| {
                let v: Value = serde_json::from_str(i.get()).unwrap();
                v["metadata"]["name"].as_str().unwrap().to_string()
            })
            .collect()
    }

    /// Once the copies under way are over (their Jobs gone), no copy
    /// object is left: temporary claims, the copies' snapshots and contents.
    async fn no_copy_left(&self) {
        wait_until(self, "copies over", || async {
            self.names(&format!("/apis/batch/v1/namespaces/{NS}/jobs"))
                .await
                .is_empty()
        })
        .await;
        let claims = self
            .names(&format!("/api/v1/namespaces/{NS}/persistentvolumeclaims"))
            .await;
        assert!(claims.is_empty(), "temporary claims left: {claims:?}");
        let snaps = self
            .names(&format!(
                "/apis/snapshot.storage.k8s.io/v1/namespaces/{NS}/volumesnapshots"
            ))
            .await;
        assert!(snaps.is_empty(), "copy snapshots left: {snaps:?}");
        let contents = self
            .names("/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents")
            .await;
        let ours: Vec<_> = contents
            .iter()
            .filter(|c| c.starts_with("hokan-"))
            .collect();
        assert!(ours.is_empty(), "copy contents left: {ours:?}");
    }

    /// The repository's snapshots of claim `shop/<claim>`, newest first.
    fn copies(&self, claim: &str) -> Vec<hokan_repo::SnapshotEntry> {
        let repo = hokan_repo::Repository::open(
            self.repo.to_str().unwrap(),
            PASSWORD.as_bytes(),
            hokan_repo::OpenOptions {
                cache: hokan_repo::CacheMode::Off,
                ..Default::default()
            },
        )
        .unwrap();
        let mut list: Vec<_> = repo
            .snapshots()
            .unwrap()
            .into_iter()
            .filter(|e| e.snapshot.identity == format!("{APP}/{claim}"))
            .collect();
        list.sort_by_key(|e| std::cmp::Reverse(e.snapshot.time));
        list
    }

    async fn stop(self) {
        self.operator.stop().await;
        let mut tc = self.tc;
        tc.cleanup().await.unwrap();
    }
}

fn claim_status<'a>(policy: &'a Value, claim: &str) -> Option<&'a Value> {
    policy["status"]["claims"]
        .as_array()?
        .iter()
        .find(|c| c["namespace"] == APP && c["name"] == claim)
}

fn stamp(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn write_files(dir: &Path, i: u8) {
    std::fs::create_dir_all(dir.join("db")).unwrap();
    std::fs::write(dir.join("README"), format!("claim {i}\n")).unwrap();
    let big: Vec<u8> = (0..400_000u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8 ^ i)
        .collect();
    std::fs::write(dir.join("db/table.bin"), big).unwrap();
    if hokan_core::fs::is_root() {
        for (p, uid) in [("db", 7), ("db/table.bin", 7), ("README", 8)] {
            let id = SHOP_RANGE + uid;
            std::os::unix::fs::chown(dir.join(p), Some(id), Some(id)).unwrap();
        }
    }
}

/// The Block claim's device: data at three places, zeros between.
fn write_device(image: &Path) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(image).unwrap();
    for (at, byte) in [(0u64, 0x11u8), (3 << 20, 0x22), (DISK_SIZE - 4096, 0x33)] {
        f.write_all_at(&vec![byte; 4096], at).unwrap();
    }
}

/// Counts copy Jobs while they exist; the most seen at once.
fn watch_copy_jobs(env: &Env) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let most = Arc::new(AtomicUsize::new(0));
    let cluster = env.tc.cluster().clone();
    let seen = most.clone();
    let task = tokio::spawn(async move {
        loop {
            if let Ok(page) = cluster
                .list_page(
                    &format!("/apis/batch/v1/namespaces/{NS}/jobs"),
                    Some("hokan.dev/work=volume-copy"),
                    None,
                    0,
                )
                .await
            {
                seen.fetch_max(page.items.len(), Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (most, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_are_snapshotted_copied_expired_and_restored_through_failures() {
    let started = std::time::Instant::now();
    let env = Env::start().await;
    let mut data = BTreeMap::new();
    for (i, c) in CLAIMS.iter().enumerate() {
        let dir = env.data(APP, c).await;
        match *c {
            "disk" => write_device(&dir),
            _ => write_files(&dir, i as u8),
        }
        data.insert(*c, dir);
    }
    let (most, watcher) = watch_copy_jobs(&env);
    let mut env = env;
    env.create_policy(
        json!({"interval": "15m", "retention": {"keepLast": 2}, "readyTimeout": "10m"}),
        Some(json!({"interval": "30m", "retention": {"keepLast": 2}, "parallel": 2})),
    )
    .await;

    // The first round: a snapshot and a copy of each claim; the NFS claim
    // falls back to the node agent and says why.
    let p = env
        .claims_until("copied once", |_, s| {
            s["copies"].as_array().is_some_and(|c| c.len() == 1)
        })
        .await;
    let legacy = claim_status(&p, LEGACY).expect("the NFS claim is listed");
    assert_eq!(legacy["mode"], "NodeAgent", "{legacy:#}");
    assert!(
        legacy["reason"]
            .as_str()
            .unwrap()
            .contains("no VolumeSnapshotClass for driver nfs.example.com"),
        "{legacy:#}"
    );
    for c in CLAIMS {
        let s = claim_status(&p, c).unwrap();
        assert_eq!(s["mode"], "Snapshot", "{s:#}");
        assert!(s.get("lastError").is_none(), "{s:#}");
    }
    env.no_copy_left().await;
    let disk = env.copies("disk");
    assert_eq!(disk.len(), 1);
    let first_b = env.copies("data-b")[0].id;

    // Five ticks of 15 minutes: a snapshot at each, a copy at every other;
    // data-a changes before each tick, data-b never does.
    for tick in 1..=5u32 {
        std::fs::write(
            data["data-a"].join(format!("tick-{tick}")),
            tick.to_string(),
        )
        .unwrap();
        env.clock.advance(TimeDelta::minutes(15));
        let now = stamp(env.clock.now());
        let copies = if tick >= 2 { 2 } else { 1 };
        let copy_tick = tick % 2 == 0;
        env.claims_until(&format!("tick {tick} done"), |_, s| {
            let snaps = s["snapshots"].as_array().cloned().unwrap_or_default();
            s["lastSnapshotTime"] == now.as_str()
                && snaps.len() == 2
                && snaps.iter().all(|v| v["readyToUse"] == true)
                && snaps[0]["time"] == now.as_str()
                && (!copy_tick || s["lastCopyTime"] == now.as_str())
                && s["copies"].as_array().is_some_and(|c| c.len() == copies)
        })
        .await;
        if copy_tick {
            env.no_copy_left().await;
        }
    }
    let snaps = env
        .names(&format!(
            "/apis/snapshot.storage.k8s.io/v1/namespaces/{APP}/volumesnapshots"
        ))
        .await;
    assert_eq!(snaps.len(), 6, "two kept per claim: {snaps:?}");
    assert!(
        most.load(Ordering::Relaxed) <= 2,
        "at most 2 copy Jobs at once"
    );
    assert!(most.load(Ordering::Relaxed) >= 1);
    // Copies kept: the newest two of three; data-b's second and third read
    // no file again (their parent's tree matched).
    let b = env.copies("data-b");
    assert_eq!(b.len(), 2, "keepLast 2");
    assert!(b.iter().all(|e| e.id != first_b), "the oldest copy expired");
    for e in &b {
        let s = &e.snapshot.summary;
        use hokan_repo::snapshot::counts;
        assert_eq!(s.count(counts::FILES_NEW), 0, "{s:?}");
        assert_eq!(s.count(counts::FILES_CHANGED), 0, "{s:?}");
        assert_eq!(s.count(counts::FILES_UNMODIFIED), 2, "{s:?}");
        // Only its tree is new (the files' inodes and change times are).
        assert!(s.bytes_added < 4096, "no file content stored: {s:?}");
    }
    assert_eq!(b[0].snapshot.parent, Some(b[1].id), "one chain of parents");
    let a = env.copies("data-a");
    assert!(
        a[0].snapshot
            .summary
            .count(hokan_repo::snapshot::counts::FILES_NEW)
            >= 1
    );

    // The Block claim's copy is its device, byte for byte.
    let out = env.root.path().join("disk-out");
    let restored = std::process::Command::new(env!("CARGO_BIN_EXE_hokan"))
        .args(["--no-cache", "restore"])
        .arg(env.copies("disk")[0].id.to_hex())
        .arg("--target")
        .arg(&out)
        .env("HOKAN_REPOSITORY", &env.repo)
        .env("HOKAN_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(restored.status.success(), "{restored:?}");
    let device = std::fs::read(out.join("device")).unwrap();
    assert_eq!(device, std::fs::read(&data["disk"]).unwrap());

    failures(&mut env).await;
    restores(&mut env, &data).await;
    restore_in_place(&env, &data["data-a"]).await;
    check_rbac(&env);
    watcher.abort();
    eprintln!("done in {:?}", started.elapsed());
    env.stop().await;
}

async fn wait_until<F, Fut>(env: &Env, what: &str, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let _ = env;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "not {what} in 120 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each injected failure ends in status with its reason, and no copy
/// object is left.
async fn failures(env: &mut Env) {
    let has_error = |text: &'static str| {
        move |_: &str, s: &Value| s["lastError"].as_str().is_some_and(|e| e.contains(text))
    };
    // The driver's error: the snapshot is deleted, the reason kept.
    env.csi
        .fail_snapshots(Some("rpc error: code = Internal desc = injected"));
    env.clock.advance(TimeDelta::minutes(15));
    let p = env
        .claims_until("the driver's error", has_error("desc = injected"))
        .await;
    env.csi.fail_snapshots(None);
    let s = claim_status(&p, "data-a").unwrap();
    assert!(s["lastError"].as_str().unwrap().contains("failed"), "{s:#}");
    assert_eq!(s["snapshots"].as_array().unwrap().len(), 2);

    // Never ready: given up after readyTimeout (10m) and deleted.
    env.csi.never_ready(true);
    env.clock.advance(TimeDelta::minutes(15));
    let now = stamp(env.clock.now());
    env.claims_until("a pending snapshot", |_, s| {
        s["lastSnapshotTime"] == now.as_str()
    })
    .await;
    env.clock.advance(TimeDelta::minutes(11));
    env.claims_until("the timeout", has_error("not ready within 600 s"))
        .await;
    env.csi.never_ready(false);
    env.no_copy_left().await;

    // A copy Job that fails.
    env.kubelet
        .fail_command("hokan", 2, "error: injected copy failure");
    env.clock.advance(TimeDelta::minutes(30));
    env.claims_until("the Job's failure", has_error("injected copy failure"))
        .await;
    env.kubelet.on_command("hokan", Arc::new(|_| None));
    env.no_copy_left().await;

    // The copy's node lost mid-copy.
    std::fs::write(&env.gate, b"").unwrap();
    env.clock.advance(TimeDelta::minutes(30));
    let pod = wait_for_running_copy(env).await;
    env.kubelet
        .lose_node(pod["spec"]["nodeName"].as_str().unwrap())
        .await
        .unwrap();
    std::fs::remove_file(&env.gate).unwrap();
    // The claim whose copy ran there: its Job failed with the node.
    let path = format!("/apis/hokan.dev/v1alpha1/namespaces/{NS}/backuppolicies/{POLICY}");
    wait_for(
        env.tc.cluster(),
        &path,
        "the lost node's copy failed",
        |p| {
            CLAIMS.iter().any(|c| {
                claim_status(p, c)
                    .and_then(|s| s["lastError"].as_str())
                    .is_some_and(|e| e.contains("Job") && e.contains("NodeLost"))
            })
        },
    )
    .await
    .unwrap();
    env.no_copy_left().await;
}

async fn wait_for_running_copy(env: &Env) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let page = env
            .tc
            .cluster()
            .list_page(&format!("/api/v1/namespaces/{NS}/pods"), None, None, 0)
            .await
            .unwrap();
        for i in page.items {
            let v: Value = serde_json::from_str(i.get()).unwrap();
            if v["status"]["phase"] == "Running" {
                return v;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no copy pod ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// From a copy into a claim of another namespace; from a VolumeSnapshot
/// into a new claim of another namespace.
async fn restores(env: &mut Env, data: &BTreeMap<&str, PathBuf>) {
    env.tc
        .create(claim(DR, "restored-a", "csi-hostpath", false, json!({})))
        .await
        .unwrap();
    env.tc
        .create(json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Restore",
            "metadata": {"name": "from-copy", "namespace": DR},
            "spec": {"repository": "main", "snapshotId": "latest",
                     "volume": {"claimName": "restored-a", "sourceClaim": format!("{APP}/data-a")}}}))
        .await
        .unwrap();
    let r = env.finished_restore("from-copy").await;
    assert_eq!(r["status"]["phase"], "Completed", "{r:#}");
    let restored = tree(&env.data(DR, "restored-a").await);
    let source = tree(&data["data-a"]);
    assert_eq!(restored.len(), source.len());
    for (name, (bytes, uid)) in &source {
        let (got, got_uid) = &restored[name];
        assert_eq!(got, bytes, "{name} byte for byte");
        if hokan_core::fs::is_root() && *uid >= SHOP_RANGE {
            assert_eq!(*got_uid, uid - SHOP_RANGE + DR_RANGE, "{name}: owner moved");
        }
    }

    // From the newest VolumeSnapshot of data-b into a new claim in shop-dr.
    restore_newest_snapshot(env, "data-b", "restored-b").await;
    let restored = tree(&env.data(DR, "restored-b").await);
    let source = tree(&data["data-b"]);
    let bytes = |t: &BTreeMap<String, (Vec<u8>, u32)>| {
        t.iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(bytes(&restored), bytes(&source), "byte for byte");

    // The Block claim's newest VolumeSnapshot into a new Block claim.
    restore_newest_snapshot(env, "disk", "restored-disk").await;
    let made = env
        .tc
        .cluster()
        .get(&format!(
            "/api/v1/namespaces/{DR}/persistentvolumeclaims/restored-disk"
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(made["spec"]["volumeMode"], "Block");
    let device = std::fs::read(env.data(DR, "restored-disk").await).unwrap();
    assert!(
        device == std::fs::read(&data["disk"]).unwrap(),
        "the device, byte for byte"
    );

    // The Block claim's newest copy onto a Block claim of another
    // namespace: the Job writes it onto the device. The kubelet stand-in
    // hands a container a real device (a loop device) only as root.
    if !hokan_core::fs::is_root() {
        assert!(
            std::env::var("HOKAN_REQUIRE_LOOP").as_deref() != Ok("1"),
            "HOKAN_REQUIRE_LOOP=1, but not running as root"
        );
        eprintln!("skipped: a Block claim's restore from a copy needs loop devices (root)");
    } else {
        env.tc
            .create(claim(
                DR,
                "restored-disk-copy",
                "csi-hostpath",
                true,
                json!({}),
            ))
            .await
            .unwrap();
        env.tc
            .create(
                json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Restore",
                "metadata": {"name": "disk-from-copy", "namespace": DR},
                "spec": {"repository": "main", "snapshotId": "latest",
                         "volume": {"claimName": "restored-disk-copy",
                                    "sourceClaim": format!("{APP}/disk")}}}),
            )
            .await
            .unwrap();
        let r = env.finished_restore("disk-from-copy").await;
        assert_eq!(r["status"]["phase"], "Completed", "{r:#}");
        assert_eq!(r["status"]["figures"]["bytesRead"], DISK_SIZE, "{r:#}");
        let device = std::fs::read(env.data(DR, "restored-disk-copy").await).unwrap();
        assert!(
            device == std::fs::read(&data["disk"]).unwrap(),
            "the copy onto the device"
        );
    }
    env.no_copy_left().await;
}

/// Restores claim `shop/<claim>`'s newest VolumeSnapshot into a new claim
/// `target` of shop-dr, and waits for the Restore to complete.
async fn restore_newest_snapshot(env: &Env, claim: &str, target: &str) {
    let p = env.policy().await;
    let snap = claim_status(&p, claim).unwrap()["snapshots"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let name = format!("{target}-from-snapshot");
    let restore = json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Restore",
        "metadata": {"name": name, "namespace": DR},
        "spec": {"volume": {"claimName": target, "volumeSnapshot": format!("{APP}/{snap}")}}});
    env.tc
        .cluster()
        .create(
            &format!("/apis/hokan.dev/v1alpha1/namespaces/{DR}/restores"),
            &restore,
        )
        .await
        .unwrap();
    let r = env.finished_restore(&name).await;
    assert_eq!(r["status"]["phase"], "Completed", "{r:#}");
}

/// From a copy into the claim it was taken of, in use by a StatefulSet's
/// pod: the set is scaled to zero for the restore and back after it.
async fn restore_in_place(env: &Env, live: &Path) {
    let c = env.tc.cluster();
    c.create(&format!("/apis/apps/v1/namespaces/{APP}/statefulsets"), &json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": APP},
            "spec": {"replicas": 1, "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "db", "image": "busybox",
                        "command": ["sh", "-c", "exec sleep 3600"],
                        "volumeMounts": [{"name": "a", "mountPath": "/data"}]}],
                        "volumes": [{"name": "a", "persistentVolumeClaim": {"claimName": "data-a"}}]}}}}))
        .await
        .unwrap();
    let pod_path = format!("/api/v1/namespaces/{APP}/pods/db-0");
    let running = |p: &Value| p["status"]["phase"] == "Running";
    let before = wait_for(c, &pod_path, "Running", running).await.unwrap();

    // What the copy holds, and the live claim damaged: each of its files
    // overwritten.
    let copy = env.copies("data-a")[0].id;
    let expected = env.root.path().join("expected-a");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hokan"))
        .args(["--no-cache", "restore", &copy.to_hex(), "--target"])
        .arg(&expected)
        .env("HOKAN_REPOSITORY", &env.repo)
        .env("HOKAN_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let expected = tree(&expected);
    for name in expected.keys().filter(|n| !n.ends_with('/')) {
        std::fs::write(live.join(name), b"damaged").unwrap();
    }
    let restore = json!({"apiVersion": "hokan.dev/v1alpha1", "kind": "Restore",
        "metadata": {"name": "in-place", "namespace": APP},
        "spec": {"repository": "main", "snapshotId": copy.to_hex(),
                 "volume": {"claimName": "data-a", "sourceClaim": format!("{APP}/data-a"),
                            "scaleDown": true}}});
    c.create(
        &format!("/apis/hokan.dev/v1alpha1/namespaces/{APP}/restores"),
        &restore,
    )
    .await
    .unwrap();
    let r = env.finished_restore_in(APP, "in-place").await;
    assert_eq!(r["status"]["phase"], "Completed", "{r:#}");
    assert_eq!(
        r["status"]["scaledDown"],
        json!([{"kind": "StatefulSet", "name": "db", "replicas": 1, "scaledBack": true}]),
        "{r:#}"
    );
    let now = tree(live);
    for (name, (bytes, _)) in expected.iter().filter(|(n, _)| !n.ends_with('/')) {
        assert_eq!(&now[name].0, bytes, "{name} restored");
    }
    // Its pod was stopped for the restore, and a new one runs.
    let uid = before["metadata"]["uid"].clone();
    wait_for(c, &pod_path, "running again", |p| {
        running(p) && p["metadata"]["uid"] != uid
    })
    .await
    .unwrap();
    let set = c
        .get(&format!("/apis/apps/v1/namespaces/{APP}/statefulsets/db"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(set["spec"]["replicas"], 1);
}

fn check_rbac(env: &Env) {
    use hokan_operator::rbac::{access, discovery_rule, rules_for};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let Some(docs) = hokan_operator::rbac::kustomize(&dir) else {
        eprintln!("kubectl not installed; RBAC not checked");
        return;
    };
    let mut docs = docs.unwrap();
    for ns in [APP, DR] {
        docs.push(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "hokan-operator-secrets", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "hokan-operator-secrets"},
            "subjects": [{"kind": "ServiceAccount", "name": "hokan-operator", "namespace": NS}]}),
        );
    }
    let mut rules = rules_for(&docs, NS, "hokan-operator");
    rules.push(discovery_rule());
    let mut denied = Vec::new();
    let mut checked = 0;
    for r in env.tc.server().unwrap().requests() {
        if r.user != OPERATOR {
            continue;
        }
        checked += 1;
        let a = access(&r.method, &r.path, &r.query);
        if !rules.iter().any(|rule| rule.allows(&a)) {
            denied.push(format!("{} {}?{}", r.method, r.path, r.query));
        }
    }
    eprintln!("operator requests checked against deploy/ RBAC: {checked}");
    assert!(checked > 0);
    assert!(denied.is_empty(), "denied:\n{}", denied.join("\n"));
}

/// The snapshot data of claim `shop/<claim>`'s newest VolumeSnapshot.
async fn newest_snapshot_data(env: &Env, claim: &str) -> PathBuf {
    let p = env.policy().await;
    let name = claim_status(&p, claim).unwrap()["snapshots"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let c = env.tc.cluster();
    let vs = c
        .get(&format!(
            "/apis/snapshot.storage.k8s.io/v1/namespaces/{APP}/volumesnapshots/{name}"
        ))
        .await
        .unwrap()
        .unwrap();
    let content = vs["status"]["boundVolumeSnapshotContentName"]
        .as_str()
        .unwrap();
    let content = c
        .get(&format!(
            "/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/{content}"
        ))
        .await
        .unwrap()
        .unwrap();
    env.csi
        .data()
        .snapshot(content["status"]["snapshotHandle"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hooks_freeze_a_pod_once_around_its_claims_snapshots() {
    let mut env = Env::start().await;
    let log = env.root.path().join("hooks.log");
    let script = |s: &str| json!(["sh", "-c", s]).to_string();
    let pod_path = format!("/api/v1/namespaces/{APP}/pods/db");
    let freeze = format!(
        "echo frozen > /data/FROZEN && echo frozen > /more/FROZEN && echo pre >> {}",
        log.display()
    );
    let thaw = format!(
        "rm -f /data/FROZEN /more/FROZEN && echo post >> {}",
        log.display()
    );
    let volume = |name: &str, claim: &str| json!({"name": name, "persistentVolumeClaim": {"claimName": claim}});
    env.tc
        .create(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "db", "namespace": APP, "annotations": {
                "pre.hook.backup.velero.io/command": script(&freeze),
                "post.hook.backup.velero.io/command": script(&thaw)}},
            "spec": {"restartPolicy": "Never",
                "containers": [{"name": "db", "image": "busybox", "command": ["sh", "-c", "exec sleep 3600"],
                    "volumeMounts": [{"name": "a", "mountPath": "/data"}, {"name": "b", "mountPath": "/more"}]}],
                "volumes": [volume("a", "data-a"), volume("b", "data-b")]}}))
        .await
        .unwrap();
    wait_for(env.tc.cluster(), &pod_path, "Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await
    .unwrap();
    env.create_policy(
        json!({"interval": "15m", "retention": {"keepLast": 3}}),
        None,
    )
    .await;
    let ready = |n: usize| {
        move |_: &str, s: &Value| {
            let snaps = s["snapshots"].as_array().cloned().unwrap_or_default();
            snaps.len() == n && snaps.iter().all(|v| v["readyToUse"] == true)
        }
    };
    let p = env.claims_until("snapshotted once", ready(1)).await;
    for c in CLAIMS {
        let s = claim_status(&p, c).unwrap();
        assert!(s.get("lastError").is_none(), "{s:#}");
    }
    // Frozen once, for both claims; both cut frozen; thawed after.
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre\npost\n");
    for c in ["data-a", "data-b"] {
        let cut = newest_snapshot_data(&env, c).await;
        assert!(cut.join("FROZEN").exists(), "{c} was cut while frozen");
        assert!(
            !env.data(APP, c).await.join("FROZEN").exists(),
            "{c} thawed"
        );
    }
    assert!(
        !newest_snapshot_data(&env, "disk")
            .await
            .join("FROZEN")
            .exists()
    );

    // A pre hook that fails: its pod's claims get no snapshot, and say
    // why; the disk, which the pod does not mount, does; no post hook.
    let set_hooks = |pre: String, extra: Value| {
        let cluster = env.tc.cluster().clone();
        let pod_path = pod_path.clone();
        async move {
            let mut pod = cluster.get(&pod_path).await.unwrap().unwrap();
            let a = &mut pod["metadata"]["annotations"];
            a["pre.hook.backup.velero.io/command"] = json!(pre);
            for (k, v) in extra.as_object().unwrap() {
                a[format!("pre.hook.backup.velero.io/{k}")] = v.clone();
            }
            cluster.replace(&pod_path, &pod).await.unwrap();
        }
    };
    set_hooks(script("echo 'db is busy' >&2; exit 3"), json!({})).await;
    env.clock.advance(TimeDelta::minutes(15));
    let p = env
        .claims_until("the pre hook's failure", |c, s| match c {
            "disk" => ready(2)(c, s),
            _ => s["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("exit code 3")),
        })
        .await;
    for c in ["data-a", "data-b"] {
        let s = claim_status(&p, c).unwrap();
        let e = s["lastError"].as_str().unwrap();
        assert!(
            e.contains("db is busy") && e.contains("no snapshot taken"),
            "{e}"
        );
        assert_eq!(s["snapshots"].as_array().unwrap().len(), 1, "{s:#}");
    }
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre\npost\n");

    // One that times out, with on-error Continue: the snapshots go on,
    // the post hook runs, the timeout is noted.
    set_hooks(
        script("sleep 20"),
        json!({"timeout": "1s", "on-error": "Continue"}),
    )
    .await;
    env.clock.advance(TimeDelta::minutes(15));
    let p = env
        .claims_until("snapshots after a tolerated timeout", |c, s| {
            ready(if c == "disk" { 3 } else { 2 })(c, s)
        })
        .await;
    let e = claim_status(&p, "data-a").unwrap()["lastError"]
        .as_str()
        .unwrap();
    assert!(
        e.contains("timed out after 1 s") && e.contains("Continue"),
        "{e}"
    );
    wait_until(&env, "thawed", || async {
        std::fs::read_to_string(&log).unwrap() == "pre\npost\npost\n"
    })
    .await;
    check_rbac(&env);
    env.stop().await;
}
