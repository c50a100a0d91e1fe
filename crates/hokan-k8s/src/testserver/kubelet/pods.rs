//! The kubelet stand-in's pod lifecycle: start each pod bound to a live
//! node once, run its containers as processes (their output kept as the
//! pod's log), write the pod's status as a kubelet does, kill the processes
//! of a pod that is deleted or whose node is lost.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::exec::{Container, PodContainers};
use super::volumes::{Plan, prepare};
use super::{CommandRun, Running, Shared, kill_groups, now, str_at};
use crate::Result;

/// Starts newly bound pods and stops the processes of deleted ones.
pub(super) async fn sync(shared: &Arc<Shared>, nodes: &[Value], pods: &[Value]) -> Result<()> {
    let lost = super::super::lock(&shared.faults).lost_nodes.clone();
    let live_nodes: HashSet<&str> = nodes
        .iter()
        .map(|n| str_at(n, "/metadata/name"))
        .filter(|n| !lost.contains(*n))
        .collect();
    let uids: HashSet<&str> = pods.iter().map(|p| str_at(p, "/metadata/uid")).collect();
    // A pod deleted while running: kill its processes, as the kubelet does
    // when the pod disappears from the API.
    let gone: Vec<Running> = {
        let mut running = super::super::lock(&shared.running);
        let dead: Vec<String> = running
            .keys()
            .filter(|u| !uids.contains(u.as_str()))
            .cloned()
            .collect();
        for uid in &dead {
            super::forget(shared, uid);
        }
        dead.iter().filter_map(|u| running.remove(u)).collect()
    };
    for r in gone {
        kill_groups(&r.groups);
        r.task.abort();
    }
    for pod in pods {
        let node = str_at(pod, "/spec/nodeName");
        let uid = str_at(pod, "/metadata/uid").to_string();
        if !live_nodes.contains(node)
            || !matches!(str_at(pod, "/status/phase"), "" | "Pending")
            || pod.pointer("/metadata/deletionTimestamp").is_some()
        {
            continue;
        }
        let mut running = super::super::lock(&shared.running);
        let mut started = super::super::lock(&shared.started);
        if !started.insert(uid.clone()) {
            continue;
        }
        let groups = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(run_pod(shared.clone(), pod.clone(), groups.clone()));
        running.insert(
            uid,
            Running {
                node: node.to_string(),
                groups,
                task,
            },
        );
    }
    Ok(())
}

/// Runs one pod to its end; errors talking to the server are retried.
async fn run_pod(shared: Arc<Shared>, pod: Value, groups: Arc<Mutex<Vec<i32>>>) {
    let uid = str_at(&pod, "/metadata/uid").to_string();
    loop {
        match try_run_pod(&shared, &pod, &groups).await {
            Ok(()) => break,
            Err(_) => tokio::time::sleep(shared.config.poll_interval).await,
        }
    }
    super::forget(&shared, &uid);
    super::super::lock(&shared.running).remove(&uid);
}

async fn try_run_pod(shared: &Shared, pod: &Value, groups: &Arc<Mutex<Vec<i32>>>) -> Result<()> {
    let node = str_at(pod, "/spec/nodeName").to_string();
    let plans = loop {
        let failing_image = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| str_at(c, "/image").to_string())
            .find(|i| super::super::lock(&shared.faults).image_pull.contains(i));
        let waiting = match failing_image {
            Some(image) => (
                "ErrImagePull",
                format!(
                    "failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": not found"
                ),
            ),
            None => match prepare(shared, pod, &node).await? {
                Ok(plans) => break plans,
                Err(why) => (why.0, why.1),
            },
        };
        // Pending, containers waiting; tried again each poll, as the
        // kubelet retries pulls, mounts and configuration.
        let statuses: Vec<Value> = containers(pod)
            .map(|c| {
                container_status(
                    c,
                    json!({"waiting": {"reason": waiting.0, "message": waiting.1}}),
                    false,
                )
            })
            .collect();
        let alive = update_status(shared, pod, &|s| {
            s["phase"] = json!("Pending");
            s["containerStatuses"] = json!(statuses);
            set_condition(s, "Ready", "False", "ContainersNotReady");
        })
        .await?;
        if !alive {
            return Ok(());
        }
        tokio::time::sleep(shared.config.poll_interval).await;
    };
    let ns = str_at(pod, "/metadata/namespace").to_string();
    let name = str_at(pod, "/metadata/name").to_string();
    super::super::lock(&shared.exec).insert(
        (ns.clone(), name.clone()),
        PodContainers {
            uid: str_at(pod, "/metadata/uid").to_string(),
            groups: groups.clone(),
            containers: plans
                .iter()
                .map(|p| (p.name.clone(), Container::of(p)))
                .collect(),
        },
    );
    let mut runs = FuturesUnordered::new();
    let mut statuses = Vec::new();
    for (plan, spec) in plans.into_iter().zip(containers(pod)) {
        let started = now();
        shared.logs.start(&ns, &name, &plan.name);
        statuses.push(container_status(
            spec,
            json!({"running": {"startedAt": started}}),
            true,
        ));
        let run = CommandRun {
            namespace: ns.clone(),
            pod: name.clone(),
            container: plan.name.clone(),
            node: node.clone(),
            argv: std::iter::once(plan.word.clone())
                .chain(plan.args.iter().cloned())
                .collect(),
        };
        runs.push(run_container(shared, plan, run, started, groups.clone()));
    }
    let alive = persist(shared, pod, &|s| {
        s["phase"] = json!("Running");
        s["startTime"] = json!(now());
        s["hostIP"] = json!("127.0.0.1");
        s["hostIPs"] = json!([{"ip": "127.0.0.1"}]);
        s["podIP"] = json!("127.0.0.1");
        s["podIPs"] = json!([{"ip": "127.0.0.1"}]);
        s["qosClass"] = json!("BestEffort");
        for t in [
            "PodReadyToStartContainers",
            "Initialized",
            "ContainersReady",
            "Ready",
        ] {
            set_condition(s, t, "True", "");
        }
        s["containerStatuses"] = json!(statuses);
    })
    .await;
    if !alive {
        return Ok(());
    }
    while let Some((container, state)) = runs.next().await {
        let last = runs.is_empty();
        // An ended container runs no more commands.
        if let Some(p) = super::super::lock(&shared.exec).get_mut(&(ns.clone(), name.clone())) {
            p.containers.remove(&container);
        }
        let alive = persist(shared, pod, &|s| {
            let mut all_zero = true;
            for c in s["containerStatuses"].as_array_mut().into_iter().flatten() {
                if c["name"] == json!(container) {
                    c["state"] = state.clone();
                    c["ready"] = json!(false);
                    c["started"] = json!(false);
                }
                all_zero &= c.pointer("/state/terminated/exitCode") == Some(&json!(0));
            }
            set_condition(s, "Ready", "False", "PodCompleted");
            set_condition(s, "ContainersReady", "False", "PodCompleted");
            if last {
                s["phase"] = json!(if all_zero { "Succeeded" } else { "Failed" });
                set_condition(s, "PodReadyToStartContainers", "False", "");
            }
        })
        .await;
        if !alive {
            return Ok(());
        }
    }
    Ok(())
}

/// Runs one container's process (or its hook's failure) and returns its
/// name and terminated state.
async fn run_container(
    shared: &Shared,
    plan: Plan,
    run: CommandRun,
    started: String,
    groups: Arc<Mutex<Vec<i32>>>,
) -> (String, Value) {
    let terminated = |code: i32, reason: &str, message: Option<String>| {
        let mut t = json!({"terminated": {
            "exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now(),
        }});
        if let Some(m) = message {
            t["terminated"]["message"] = json!(m);
        }
        t
    };
    let (ns, pod, name) = (&run.namespace, &run.pod, &plan.name);
    let hook = {
        let faults = super::super::lock(&shared.faults);
        let base = Path::new(&plan.word)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        faults
            .command_hooks
            .get(&plan.word)
            .or_else(|| faults.command_hooks.get(&base))
            .cloned()
    };
    if let Some(failed) = hook.and_then(|h| h(&run)) {
        shared.logs.append(ns, pod, name, failed.output.as_bytes());
        let reason = if failed.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        return (name.clone(), terminated(failed.exit_code, reason, None));
    }
    let start_error = |why: String| {
        let message = format!(
            "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: {why}: unknown"
        );
        (name.clone(), terminated(128, "StartError", Some(message)))
    };
    let Some(program) = &plan.program else {
        let why = if plan.word.is_empty() {
            "the kubelet stand-in needs a container command (images are not run)".to_string()
        } else {
            format!(
                "exec: \"{}\": executable file not found in $PATH",
                plan.word
            )
        };
        return start_error(why);
    };
    if let Err(e) = std::fs::create_dir_all(&plan.cwd) {
        return start_error(format!("chdir to cwd (\"{}\"): {e}", plan.cwd.display()));
    }
    let mut command = tokio::process::Command::new(program);
    command
        .args(&plan.args)
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&plan.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return start_error(format!("exec: \"{}\": {e}", plan.word)),
    };
    if let Some(pid) = child.id() {
        super::super::lock(&groups).push(pid as i32);
    }
    let copy = |stream: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| async move {
        let Some(mut stream) = stream else { return };
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            shared.logs.append(ns, pod, name, &buf[..n]);
        }
    };
    let out = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
    let err = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
    let (status, _, _) = tokio::join!(child.wait(), copy(out), copy(err));
    let code = super::exit_code(status);
    let reason = if code == 0 { "Completed" } else { "Error" };
    (name.clone(), terminated(code, reason, None))
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    pod["spec"]["containers"].as_array().into_iter().flatten()
}

fn container_status(spec: &Value, state: Value, running: bool) -> Value {
    json!({
        "name": spec["name"], "image": spec["image"], "imageID": "",
        "containerID": format!("hokan-test://{}", spec["name"].as_str().unwrap_or_default()),
        "ready": running, "started": running, "restartCount": 0,
        "state": state, "lastState": {},
    })
}

/// Sets a pod condition, keeping its transition time when the status stays.
fn set_condition(status: &mut Value, kind: &str, value: &str, reason: &str) {
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let conditions = status["conditions"].as_array_mut().expect("set above");
    if let Some(c) = conditions.iter_mut().find(|c| c["type"] == kind) {
        if c["status"] != value {
            c["status"] = json!(value);
            c["lastTransitionTime"] = json!(now());
        }
        if reason.is_empty() {
            c.as_object_mut().map(|o| o.remove("reason"));
        } else {
            c["reason"] = json!(reason);
        }
        return;
    }
    let mut c = json!({"type": kind, "status": value, "lastProbeTime": null,
                       "lastTransitionTime": now()});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    conditions.push(c);
}

/// Reads the pod again, changes its status with `change`, and writes it
/// back (retrying conflicts); `false` when the pod is gone (or replaced by
/// another of the same name). Unchanged statuses are not written.
pub(super) async fn update_status(
    shared: &Shared,
    pod: &Value,
    change: &(dyn Fn(&mut Value) + Sync),
) -> Result<bool> {
    let ns = str_at(pod, "/metadata/namespace");
    let name = str_at(pod, "/metadata/name");
    let uid = str_at(pod, "/metadata/uid");
    let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
    loop {
        let Some(mut current) = shared.cluster.get(&path).await? else {
            return Ok(false);
        };
        if str_at(&current, "/metadata/uid") != uid {
            return Ok(false);
        }
        let before = current["status"].clone();
        if !current["status"].is_object() {
            current["status"] = json!({});
        }
        change(&mut current["status"]);
        if current["status"] == before {
            return Ok(true);
        }
        match shared
            .cluster
            .replace(&format!("{path}/status"), &current)
            .await
        {
            Ok(_) => return Ok(true),
            Err(e) if e.status() == Some(409) => continue,
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// [`update_status`], retried until the server answers: once processes
/// ran, their outcome must reach the API (running them again would not do).
async fn persist(shared: &Shared, pod: &Value, change: &(dyn Fn(&mut Value) + Sync)) -> bool {
    loop {
        match update_status(shared, pod, change).await {
            Ok(alive) => return alive,
            Err(_) => tokio::time::sleep(shared.config.poll_interval).await,
        }
    }
}

/// Marks every unfinished pod on `node` `Failed` with reason `NodeLost`,
/// as the node lifecycle controller does for an unreachable node.
pub(super) async fn mark_node_lost(shared: &Shared, node: &str) -> Result<()> {
    let page = shared
        .cluster
        .list_page_by_fields(
            "/api/v1/pods",
            None,
            Some(&format!("spec.nodeName={node}")),
            None,
            0,
        )
        .await?;
    for pod in super::parse_items(page.items)? {
        if matches!(str_at(&pod, "/status/phase"), "Succeeded" | "Failed") {
            continue;
        }
        let message = format!(
            "Node {node} which was running pod {} is unresponsive",
            str_at(&pod, "/metadata/name")
        );
        update_status(shared, &pod, &|s| {
            s["phase"] = json!("Failed");
            s["reason"] = json!("NodeLost");
            s["message"] = json!(message);
            set_condition(s, "Ready", "False", "NodeLost");
            set_condition(s, "DisruptionTarget", "True", "DeletionByTaintManager");
        })
        .await?;
    }
    Ok(())
}
