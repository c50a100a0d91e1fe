//! A stand-in for the controllers a real cluster runs beside the API server
//! to make a `batch/v1` Job happen: the job controller, the scheduler and
//! the kubelet of every node. [`Kubelet::start`] runs them as one client of
//! the test server over HTTP (a [`Cluster`], that is a `kube::Client`), so
//! it reads and writes exactly what the real ones read and write and a test
//! written against it runs unchanged on a real cluster, where the real
//! controllers do the work.
//!
//! What it does, each poll ([`KubeletConfig::poll_interval`]):
//! - **Job controller** (`jobs.rs`): for each Job, creates pods from its
//!   template (`generateName: <job>-`, labels `job-name`,
//!   `batch.kubernetes.io/job-name`, `controller-uid`,
//!   `batch.kubernetes.io/controller-uid`, an ownerReference with
//!   `controller: true`) up to `parallelism`/`completions`; counts succeeded
//!   and failed pods; replaces failed pods until `backoffLimit`; writes
//!   `status` as the real one does (`active`, `ready`, `succeeded`,
//!   `failed`, `startTime`, `completionTime`, conditions `SuccessCriteriaMet`
//!   and `Complete`, or `FailureTarget` and `Failed` with reason
//!   `BackoffLimitExceeded` or `DeadlineExceeded`); enforces
//!   `activeDeadlineSeconds` (deleting active pods) and
//!   `ttlSecondsAfterFinished` (deleting the Job).
//! - **StatefulSet controller** (`statefulsets.rs`): pods `<set>-<i>` for
//!   `i < replicas` with their claims from `volumeClaimTemplates`, extra
//!   pods deleted highest first, `status` counted (as `Parallel` pod
//!   management; no rolling updates).
//! - **Scheduler** (`scheduler.rs`): binds each pod without `spec.nodeName`
//!   through `pods/NAME/binding` to the first Node (by name) whose labels
//!   match its `nodeSelector` and required node affinity, whose taints it
//!   tolerates, and which is not unschedulable; claims must be bound. A pod
//!   that fits no node gets `PodScheduled=False`, reason `Unschedulable`,
//!   with the scheduler's "0/N nodes are available: ..." message.
//! - **Kubelet** (`pods.rs`, `volumes.rs`): runs each bound, pending pod:
//!   every container's `command` + `args` as a real process, the first word
//!   mapped to an executable by [`KubeletConfig::command`]; `env` and
//!   `envFrom` resolved from Secrets, ConfigMaps and the pod's fields, with
//!   `$(VAR)` expansion; volumes mapped to directories; stdout and stderr
//!   kept and served at `GET pods/NAME/log`; status written Pending →
//!   Running → Succeeded/Failed with `containerStatuses` (exit code,
//!   reason, start and finish times).
//! - **Exec** (`exec.rs`): `pods/NAME/exec` into a running container runs
//!   the command as a process with that container's environment, working
//!   directory and path rewriting; its output and exit code stream back
//!   through the server ([`super::exec`]).
//!
//! ## Paths: no mount namespace
//! The process runs on this machine's file system. Each volume is a
//! directory: a `hostPath` is `<node_root>/<node>/<path>`; `secret` and
//! `configMap` volumes are files written from the object (`items`, `mode`,
//! `defaultMode`, 0644 by default as the real kubelet); `emptyDir` is a
//! fresh directory under the pod's directory
//! (`<node_root>/<node>/var/lib/kubelet/pods/<uid>/volumes/`); a
//! `persistentVolumeClaim` is its bound PersistentVolume's `hostPath` or
//! `local` path on the node, or, for a CSI volume, the directory the
//! driver's [`CsiVolumes`] hook names (issue 25's CSI stand-in plugs in
//! there); a Block claim in `volumeDevices` is its image file attached to
//! a loop device when running as root (detached when the pod ends), the
//! file itself otherwise. Instead of mounting, the stand-in **rewrites paths**: in every
//! argument and environment value, each occurrence of a container's
//! `mountPath` (longest first, `subPath` applied) that starts the string or
//! follows a space, `=`, `:`, `,` or a quote, and ends the string or is
//! followed by `/` or one of those separators, becomes the real directory.
//! So `--repo=/repo`, `latest:/data` and `sh -c "cat /secrets/pw"` all
//! reach the mapped directories. `workingDir` is mapped the same way.
//! Paths a program builds itself or reads from files are not rewritten:
//! pass them as arguments or environment.
//!
//! ## Known differences from a real kubelet and job controller
//! - Lists are polled (no watch); the interval bounds how quickly it reacts.
//! - No container images: the command's first word (or its file name, so
//!   `/usr/local/bin/hokan` finds `hokan`) picks a local executable; a
//!   container without `command`, or with an unmapped one, fails to start
//!   (`StartError`, exit code 128, as containerd reports a missing
//!   executable). The image is only used to inject pull failures.
//! - `runAsUser`, `fsGroup`, capabilities, `readOnly` mounts, resource
//!   limits and `hostNetwork` cannot be applied: every process runs as the
//!   test's user on the host's network. `hostNetwork` pods see the host's
//!   loopback as they would on a node.
//! - The environment starts empty except `PATH` (a directory linking each
//!   mapped command by its name, so `sh -c "hokan ..."` finds it, then this
//!   machine's `PATH`), `HOME` (a directory of the pod's), `HOSTNAME` (the
//!   pod's name) and `KUBECONFIG`, naming a kubeconfig for the test server
//!   in place of the service account token a real pod gets mounted (unless
//!   `automountServiceAccountToken: false`). Its token is
//!   `system:serviceaccount:<namespace>:<serviceAccountName>`, which the
//!   server records as the user of each request the pod makes
//!   ([`RecordedRequest::user`](super::RecordedRequest::user)), so a test
//!   can check them against the RBAC rules of that service account; the
//!   stand-in's own requests carry [`USER`].
//! - Init containers, probes, `restartPolicy: OnFailure`/`Always` restarts
//!   in place, projected and downward API volumes, indexed Jobs,
//!   `podFailurePolicy`, `successPolicy` and `suspend` resuming are not
//!   implemented; a pod asking for an unsupported volume stays Pending with
//!   a `CreateContainerConfigError`.
//! - Pods bound to a node with no Node object are never started (a real
//!   cluster's pod GC would delete them eventually).
//! - Backoff before replacing a failed pod is [`KubeletConfig::backoff`]
//!   doubled per failure (real: 10 s doubled up to 6 min), so tests need
//!   not wait; a lost node's pods are marked `Failed`/`NodeLost` at once
//!   (real: after the node monitor's grace period and the taint's
//!   toleration seconds).
//! - Succeeded and failed pods are counted once in memory; a restarted
//!   stand-in recounts from the Job's status and the pods left.
//! - Finished pods are kept; without garbage collection in the server, the
//!   TTL controller here deletes a finished Job's pods itself.
//!
//! Injectable failures: [`Kubelet::lose_node`] (its processes are killed,
//! its pods go `Failed` with reason `NodeLost`, the node gets
//! `Ready=Unknown` and the `unreachable` taints), [`Kubelet::fail_image_pull`]
//! (matching containers wait with `ErrImagePull`), [`Kubelet::on_command`]
//! (a run of a command fails with a chosen exit code and output).

mod exec;
mod jobs;
mod pods;
mod scheduler;
mod statefulsets;
mod volumes;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::TestServer;
use super::pod_routes::PodLogs;
use crate::cluster::Cluster;
use crate::{Error, Result};

/// The user name (bearer token) the stand-in's own requests carry, so
/// [`RecordedRequest::user`](super::RecordedRequest::user) tells them
/// from the operator's and the pods'.
pub const USER: &str = "system:hokan-test:kubelet-stand-in";

/// Provides the directory of a CSI volume on a node; the CSI stand-in
/// (issue 25) implements it for its driver.
pub trait CsiVolumes: Send + Sync {
    /// The directory holding `volume_handle`'s data as seen on `node`, or
    /// `None` while it is not there yet (the pod then waits, as a real
    /// kubelet waits for a volume to attach).
    fn directory(&self, volume_handle: &str, node: &str) -> Option<PathBuf>;
}

/// A failed run of a command, made by a hook instead of running it.
#[derive(Clone, Debug)]
pub struct FailedRun {
    /// The exit code the container reports.
    pub exit_code: i32,
    /// What the container wrote, kept as its log.
    pub output: String,
}

/// What a command hook is shown about the run it may fail.
#[derive(Clone, Debug)]
pub struct CommandRun {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container's name.
    pub container: String,
    /// The node it runs on.
    pub node: String,
    /// The command and arguments after `$(VAR)` expansion and path mapping.
    pub argv: Vec<String>,
}

/// Decides whether a run fails (`Some`) or runs (`None`).
pub type CommandHook = Arc<dyn Fn(&CommandRun) -> Option<FailedRun> + Send + Sync>;

/// How the stand-in runs.
#[derive(Clone)]
pub struct KubeletConfig {
    /// Each node's host file system is `<node_root>/<node name>/`.
    pub node_root: PathBuf,
    /// How often Jobs, pods and nodes are listed.
    pub poll_interval: Duration,
    /// The delay before replacing the first failed pod, doubled for each
    /// further failure. Zero by default (a real controller waits 10 s).
    pub backoff: Duration,
    commands: BTreeMap<String, PathBuf>,
    csi: BTreeMap<String, Arc<dyn CsiVolumes>>,
}

impl std::fmt::Debug for KubeletConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletConfig")
            .field("node_root", &self.node_root)
            .field("commands", &self.commands)
            .field("csi", &self.csi.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KubeletConfig {
    /// Nodes' file systems under `node_root`; no commands mapped yet.
    pub fn new(node_root: impl Into<PathBuf>) -> Self {
        KubeletConfig {
            node_root: node_root.into(),
            poll_interval: Duration::from_millis(50),
            backoff: Duration::ZERO,
            commands: BTreeMap::new(),
            csi: BTreeMap::new(),
        }
    }

    /// Runs containers whose command is `word` (or a path ending in it)
    /// with `executable`: `command("hokan", env!("CARGO_BIN_EXE_hokan"))`.
    pub fn command(mut self, word: &str, executable: impl Into<PathBuf>) -> Self {
        self.commands.insert(word.to_string(), executable.into());
        self
    }

    /// Claims bound to PersistentVolumes of CSI `driver` find their
    /// directory through `volumes`.
    pub fn csi_driver(mut self, driver: &str, volumes: Arc<dyn CsiVolumes>) -> Self {
        self.csi.insert(driver.to_string(), volumes);
        self
    }

    /// The directory of `path` on `node`'s host file system.
    pub fn host_path(&self, node: &str, path: &str) -> PathBuf {
        self.node_root.join(node).join(path.trim_start_matches('/'))
    }

    fn executable(&self, word: &str) -> Option<&Path> {
        let base = Path::new(word)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(word);
        self.commands
            .get(word)
            .or_else(|| self.commands.get(base))
            .map(PathBuf::as_path)
    }
}

/// Failures a test injects.
#[derive(Default)]
struct Faults {
    lost_nodes: BTreeSet<String>,
    image_pull: BTreeSet<String>,
    command_hooks: BTreeMap<String, CommandHook>,
}

/// A pod the kubelet is running.
struct Running {
    node: String,
    /// Process group ids of its running containers.
    groups: Arc<Mutex<Vec<i32>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the controllers share.
struct Shared {
    cluster: Cluster,
    config: KubeletConfig,
    logs: PodLogs,
    /// The server's URL, written into each pod's kubeconfig.
    url: String,
    /// Links to the mapped commands, first on every container's `PATH`.
    bin: PathBuf,
    faults: Mutex<Faults>,
    running: Mutex<HashMap<String, Running>>,
    /// Every pod uid ever started: a pod runs once (`restartPolicy: Never`).
    started: Mutex<HashSet<String>>,
    jobs: Mutex<jobs::Memory>,
    /// The running containers `pods/NAME/exec` reaches.
    exec: exec::Registry,
    /// Per pod uid: each Block claim's image and the loop device it is on.
    loops: Mutex<HashMap<String, Vec<(PathBuf, PathBuf)>>>,
}

/// The running stand-in; stops (killing its processes) when dropped or by
/// [`Kubelet::stop`].
pub struct Kubelet {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
        let running: Vec<Running> = super::lock(&self.shared.running)
            .drain()
            .map(|(_, r)| r)
            .collect();
        for r in running {
            kill_groups(&r.groups);
            r.task.abort();
        }
        let uids: Vec<String> = super::lock(&self.shared.loops).keys().cloned().collect();
        for uid in uids {
            volumes::detach(&self.shared, &uid);
        }
    }
}

impl Kubelet {
    /// Starts the controllers against `server` on the current tokio runtime.
    pub async fn start(server: &TestServer, config: KubeletConfig) -> Result<Self> {
        let cluster = server.cluster_as(USER)?;
        let logs = super::lock(&server.inner.state).pod_logs.clone();
        let dir = config.node_root.join(".kubelet");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        // The image's `PATH`: each mapped command under its own name, so a
        // shell in a container finds `hokan` as it would in the image.
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).map_err(|e| Error::io("create", &bin, e))?;
        for (word, executable) in &config.commands {
            if word.contains('/') {
                continue;
            }
            let link = bin.join(word);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(executable, &link)
                .map_err(|e| Error::io("link", &link, e))?;
        }
        let shared = Arc::new(Shared {
            cluster,
            config,
            logs,
            url: server.url(),
            bin,
            faults: Mutex::default(),
            running: Mutex::default(),
            started: Mutex::default(),
            jobs: Mutex::default(),
            exec: Mutex::default(),
            loops: Mutex::default(),
        });
        super::lock(&server.inner.state).exec =
            Some(Arc::new(exec::KubeletExec(Arc::downgrade(&shared))));
        let looping = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                // A failed poll (the server dropped, a race) is retried on
                // the next one, as controllers requeue.
                let _ = poll(&looping).await;
                tokio::time::sleep(looping.config.poll_interval).await;
            }
        });
        Ok(Kubelet { shared, task })
    }

    /// Registers a Node as its kubelet would: Ready, with `labels` and
    /// `taints` (`{"key", "value", "effect"}` objects).
    pub async fn register_node(&self, name: &str, labels: Value, taints: Value) -> Result<Value> {
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
        });
        let created = self.shared.cluster.create("/api/v1/nodes", &node).await?;
        let mut status = created.clone();
        status["status"] = json!({
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": now(), "lastTransitionTime": now(),
            }],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.31.0-hokan-test", "operatingSystem": "linux",
                         "architecture": std::env::consts::ARCH},
        });
        self.shared
            .cluster
            .replace(&format!("/api/v1/nodes/{name}/status"), &status)
            .await
    }

    /// Loses `node` mid-run: its processes are killed, its pods go
    /// `Failed` with reason `NodeLost`, and the node is marked as the node
    /// lifecycle controller marks an unreachable one (`Ready=Unknown`, the
    /// `node.kubernetes.io/unreachable` taints), so nothing is scheduled there.
    pub async fn lose_node(&self, node: &str) -> Result<()> {
        super::lock(&self.shared.faults)
            .lost_nodes
            .insert(node.to_string());
        // Tainted first, so the replacement of a pod failed below is never
        // scheduled back onto the lost node.
        let path = format!("/api/v1/nodes/{node}");
        if let Some(mut n) = self.shared.cluster.get(&path).await? {
            let mut taints = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
            for effect in ["NoSchedule", "NoExecute"] {
                taints.push(
                    json!({"key": "node.kubernetes.io/unreachable", "effect": effect,
                                   "timeAdded": now()}),
                );
            }
            n["spec"]["taints"] = json!(taints);
            let n = self.shared.cluster.replace(&path, &n).await?;
            let mut s = n.clone();
            s["status"]["conditions"] = json!([{
                "type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastHeartbeatTime": now(), "lastTransitionTime": now(),
            }]);
            self.shared
                .cluster
                .replace(&format!("{path}/status"), &s)
                .await?;
        }
        let lost: Vec<Running> = {
            let mut running = super::lock(&self.shared.running);
            let uids: Vec<String> = running
                .iter()
                .filter(|(_, r)| r.node == node)
                .map(|(uid, _)| uid.clone())
                .collect();
            for uid in &uids {
                forget(&self.shared, uid);
            }
            uids.iter().filter_map(|u| running.remove(u)).collect()
        };
        for r in lost {
            kill_groups(&r.groups);
            r.task.abort();
            let _ = r.task.await;
        }
        pods::mark_node_lost(&self.shared, node).await
    }

    /// Containers with `image` fail to pull it: they wait with reason
    /// `ErrImagePull` and their pod stays Pending.
    pub fn fail_image_pull(&self, image: &str) {
        super::lock(&self.shared.faults)
            .image_pull
            .insert(image.to_string());
    }

    /// Lets `hook` decide, for every run of a command `word` (as mapped by
    /// [`KubeletConfig::command`]), whether it fails without running.
    pub fn on_command(&self, word: &str, hook: CommandHook) {
        super::lock(&self.shared.faults)
            .command_hooks
            .insert(word.to_string(), hook);
    }

    /// Makes every run of command `word` exit with `exit_code`, writing
    /// `output` as its log.
    pub fn fail_command(&self, word: &str, exit_code: i32, output: &str) {
        let failed = FailedRun {
            exit_code,
            output: output.to_string(),
        };
        self.on_command(word, Arc::new(move |_| Some(failed.clone())));
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &KubeletConfig {
        &self.shared.config
    }

    /// Stops the controllers and kills every process they started.
    pub fn stop(self) {
        drop(self);
    }
}

/// One round: the job and StatefulSet controllers, then the scheduler,
/// then the kubelets.
async fn poll(shared: &Arc<Shared>) -> Result<()> {
    let nodes = list(&shared.cluster, "/api/v1/nodes").await?;
    let pods = list(&shared.cluster, "/api/v1/pods").await?;
    let jobs = list(&shared.cluster, "/apis/batch/v1/jobs").await?;
    let sets = list(&shared.cluster, "/apis/apps/v1/statefulsets").await?;
    jobs::sync(shared, &jobs, &pods).await?;
    statefulsets::sync(shared, &sets, &pods).await?;
    scheduler::schedule(shared, &nodes, &pods).await?;
    pods::sync(shared, &nodes, &pods).await
}

/// Every item of a collection, page by page.
async fn list(cluster: &Cluster, path: &str) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = cluster.list_page(path, None, token.as_deref(), 500).await?;
        items.extend(parse_items(page.items)?);
        match page.continue_token {
            Some(t) => token = Some(t),
            None => return Ok(items),
        }
    }
}

fn parse_items(items: Vec<Box<serde_json::value::RawValue>>) -> Result<Vec<Value>> {
    items
        .iter()
        .map(|i| serde_json::from_str(i.get()).map_err(|e| Error::bad_object("a listed item", e)))
        .collect()
}

/// The pods whose controller (owner reference) has `uid`.
fn controlled_by<'a>(pods: &'a [Value], uid: &str) -> Vec<&'a Value> {
    pods.iter()
        .filter(|p| {
            p["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["uid"] == uid && o["controller"] == true)
        })
        .collect()
}

/// An exit status as a container's exit code (128 + the signal that
/// ended it, as runtimes report it).
fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9)),
        Err(_) => 128 + 9,
    }
}

/// Forgets pod `uid`'s running containers: exec no longer reaches them.
/// Its loop devices are detached.
fn forget(shared: &Shared, uid: &str) {
    super::lock(&shared.exec).retain(|_, p| p.uid != uid);
    volumes::detach(shared, uid);
}

/// Kills each process group (the container's process and its children).
fn kill_groups(groups: &Mutex<Vec<i32>>) {
    for pgid in super::lock(groups).iter() {
        // SAFETY: kill(2) with a negative pid signals a process group we
        // created; it touches no memory.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

fn now() -> String {
    super::write::now()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Reads `path` until `ready` holds for it (at most `TIMEOUT`, polling),
/// and returns it; the error names `what` was awaited and shows the object
/// last seen. For tests, on the test server or a real cluster alike.
pub async fn wait_for(
    cluster: &Cluster,
    path: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let current = cluster.get(path).await?;
        if let Some(v) = &current
            && ready(v)
        {
            return Ok(current.unwrap_or_default());
        }
        if std::time::Instant::now() > deadline {
            let message = format!(
                "it did not become {what} within {} s; last seen: {}",
                TIMEOUT.as_secs(),
                current.map_or("nothing (404)".to_string(), |v| v.to_string())
            );
            return Err(Error::Io {
                action: "wait for",
                path: path.into(),
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, message),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads `path` until the server answers 404 (at most [`TIMEOUT`]).
pub async fn wait_gone(cluster: &Cluster, path: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + TIMEOUT;
    while let Some(v) = cluster.get(path).await? {
        if std::time::Instant::now() > deadline {
            let message = format!(
                "it was not deleted within {} s; last seen: {v}",
                TIMEOUT.as_secs()
            );
            return Err(Error::Io {
                action: "wait for",
                path: path.into(),
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, message),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// How long [`wait_for`] waits: long enough for a real cluster to pull an
/// image and start a pod.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The pods a Job made, by its `job-name` label, oldest first.
pub async fn job_pods(cluster: &Cluster, namespace: &str, job: &str) -> Result<Vec<Value>> {
    let page = cluster
        .list_page(
            &format!("/api/v1/namespaces/{namespace}/pods"),
            Some(&format!("job-name={job}")),
            None,
            0,
        )
        .await?;
    let mut pods = parse_items(page.items)?;
    pods.sort_by(|a, b| {
        let key = |p: &Value| {
            (
                str_at(p, "/metadata/creationTimestamp").to_string(),
                str_at(p, "/metadata/resourceVersion")
                    .parse::<u64>()
                    .unwrap_or_default(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(pods)
}

/// A pod's log (`GET pods/NAME/log`), of its only container or `container`.
pub async fn pod_log(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
) -> Result<String> {
    let mut path = format!("/api/v1/namespaces/{namespace}/pods/{pod}/log");
    if let Some(c) = container {
        path.push_str("?container=");
        path.push_str(c);
    }
    let what = || format!("read the log of pod {namespace}/{pod}");
    cluster
        .send(&what, http::Method::GET, &path, "text/plain", None)
        .await
}
