//! Jobs run by the kubelet and job controller stand-in
//! (`testserver::kubelet`): retries up to the backoff limit, a pod no node
//! fits, a lost node, a failed image pull, and a container's environment
//! and volumes. The tests that need no injected failure run unchanged on a
//! real cluster (HOKAN_TEST_KUBECONFIG), where the real controllers act.

use std::path::Path;

use hokan_k8s::testserver::kubelet::{self, job_pods, pod_log, wait_for, wait_gone};
use hokan_k8s::testserver::{Kubelet, KubeletConfig, TestCluster};
use serde_json::{Value, json};

/// The shell image used on a real cluster; the stand-in maps `sh` itself.
const SHELL_IMAGE: &str = "docker.io/library/busybox:1.36";

/// The stand-in with two nodes, `node-a` and `node-b`, when the cluster is
/// the in-process server; `None` on a real cluster.
async fn kubelet(cluster: &TestCluster, root: &Path) -> Option<Kubelet> {
    let server = cluster.server()?;
    let config = KubeletConfig::new(root).command("sh", "/bin/sh");
    let kubelet = Kubelet::start(server, config).await.unwrap();
    for node in ["node-a", "node-b"] {
        kubelet
            .register_node(node, json!({"kubernetes.io/hostname": node}), json!([]))
            .await
            .unwrap();
    }
    Some(kubelet)
}

fn shell_job(ns: &str, name: &str, script: &str, backoff_limit: i64) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": SHELL_IMAGE,
                                "command": ["sh", "-c", script]}],
            }},
        },
    })
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind && c["status"] == "True")
}

fn job_path(ns: &str, name: &str) -> String {
    format!("/apis/batch/v1/namespaces/{ns}/jobs/{name}")
}

#[tokio::test]
async fn a_failing_command_is_retried_up_to_the_backoff_limit_then_the_job_fails() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::new().await.unwrap();
    let _kubelet = kubelet(&cluster, root.path()).await;
    let job = shell_job(
        "kubelet-retry",
        "fails",
        "echo attempt on $HOSTNAME; exit 3",
        2,
    );
    let created = cluster.create(job).await.unwrap();
    let ns = cluster.namespace("kubelet-retry");
    let done = wait_for(cluster.cluster(), &job_path(&ns, "fails"), "Failed", |j| {
        condition(j, "Failed").is_some()
    })
    .await
    .unwrap();
    let failed = condition(&done, "Failed").unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded", "{done}");
    assert_eq!(done["status"]["failed"], 3, "{done}");
    assert_eq!(done["status"]["active"].as_i64().unwrap_or(0), 0, "{done}");
    assert!(done["status"]["startTime"].is_string(), "{done}");
    assert!(condition(&done, "Complete").is_none());

    // One pod per attempt, each named and labelled as the controller does,
    // each Failed with the container's exit code, each with its own log.
    let pods = job_pods(cluster.cluster(), &ns, "fails").await.unwrap();
    assert_eq!(pods.len(), 3, "{pods:#?}");
    let uid = created["metadata"]["uid"].as_str().unwrap();
    for pod in &pods {
        let name = pod["metadata"]["name"].as_str().unwrap();
        assert!(
            name.starts_with("fails-") && name.len() == "fails-".len() + 5,
            "{name}"
        );
        assert_eq!(pod["metadata"]["labels"]["controller-uid"], uid);
        assert_eq!(
            pod["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            "fails"
        );
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["uid"], &owner["controller"]),
            (&json!("Job"), &json!(uid), &json!(true))
        );
        assert_eq!(pod["status"]["phase"], "Failed", "{pod}");
        let terminated = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(terminated["exitCode"], 3, "{pod}");
        assert_eq!(terminated["reason"], "Error", "{pod}");
        assert!(terminated["finishedAt"].is_string());
        let log = pod_log(cluster.cluster(), &ns, name, None).await.unwrap();
        assert_eq!(log, format!("attempt on {name}\n"));
    }
    cluster.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_pod_that_fits_no_node_stays_pending_as_unschedulable() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::new().await.unwrap();
    let _kubelet = kubelet(&cluster, root.path()).await;
    let mut job = shell_job("kubelet-pending", "nowhere", "exit 0", 0);
    job["spec"]["template"]["spec"]["nodeSelector"] = json!({"hokan.dev/no-such-node": "true"});
    cluster.create(job).await.unwrap();
    let ns = cluster.namespace("kubelet-pending");
    wait_for(
        cluster.cluster(),
        &job_path(&ns, "nowhere"),
        "active",
        |j| j["status"]["active"] == 1,
    )
    .await
    .unwrap();
    let pods = job_pods(cluster.cluster(), &ns, "nowhere").await.unwrap();
    assert_eq!(pods.len(), 1);
    let path = format!(
        "/api/v1/namespaces/{ns}/pods/{}",
        pods[0]["metadata"]["name"].as_str().unwrap()
    );
    let pod = wait_for(cluster.cluster(), &path, "unschedulable", |p| {
        p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "PodScheduled" && c["status"] == "False")
    })
    .await
    .unwrap();
    let scheduled = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .unwrap();
    assert_eq!(scheduled["reason"], "Unschedulable");
    let message = scheduled["message"].as_str().unwrap();
    assert!(
        message.contains("nodes are available") && message.contains("node affinity/selector"),
        "{message}"
    );
    assert_eq!(pod["status"]["phase"], "Pending");
    assert!(pod["spec"]["nodeName"].is_null(), "{pod}");
    if cluster.server().is_some() {
        // Exactly two nodes, both refusing the selector.
        assert!(
            message.starts_with("0/2 nodes are available: 2 node(s) didn't match"),
            "{message}"
        );
    }
    cluster.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_lost_node_fails_its_pods_kills_their_processes_and_the_job_retries_elsewhere() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::in_process().await.unwrap();
    let kubelet = kubelet(&cluster, root.path()).await.unwrap();
    // On node-a the script records its pid and waits forever; elsewhere it
    // finishes. The node is given to it through the downward API. (`$$$$`:
    // the kubelet turns `$$` into `$`, so the shell sees its `$$`.)
    let script = "if [ \"$NODE\" = node-a ]; then echo $$$$ > /state/pid; exec sleep 600; fi; echo finished on $NODE";
    let mut job = shell_job("kubelet-lost", "survivor", script, 1);
    let spec = &mut job["spec"]["template"]["spec"];
    spec["containers"][0]["env"] =
        json!([{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]);
    spec["containers"][0]["volumeMounts"] = json!([{"name": "state", "mountPath": "/state"}]);
    spec["volumes"] =
        json!([{"name": "state", "hostPath": {"path": "/var/state", "type": "DirectoryOrCreate"}}]);
    cluster.create(job).await.unwrap();
    let ns = cluster.namespace("kubelet-lost");

    let pid_file = kubelet.config().host_path("node-a", "/var/state/pid");
    let deadline = std::time::Instant::now() + kubelet::TIMEOUT;
    let pid: i32 = loop {
        if let Ok(text) = std::fs::read_to_string(&pid_file)
            && let Ok(pid) = text.trim().parse()
        {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pod on node-a never wrote {}",
            pid_file.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    kubelet.lose_node("node-a").await.unwrap();
    // The process was killed: it ends (gone, or a zombie until reaped).
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.split(' ').nth(2) == Some("Z") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} still runs: {stat}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let done = wait_for(
        cluster.cluster(),
        &job_path(&ns, "survivor"),
        "Complete",
        |j| condition(j, "Complete").is_some(),
    )
    .await
    .unwrap();
    assert_eq!(
        (&done["status"]["failed"], &done["status"]["succeeded"]),
        (&json!(1), &json!(1))
    );
    let pods = job_pods(cluster.cluster(), &ns, "survivor").await.unwrap();
    assert_eq!(pods.len(), 2);
    let (lost, replacement) = (&pods[0], &pods[1]);
    assert_eq!(lost["spec"]["nodeName"], "node-a");
    assert_eq!(
        (&lost["status"]["phase"], &lost["status"]["reason"]),
        (&json!("Failed"), &json!("NodeLost"))
    );
    assert_eq!(replacement["spec"]["nodeName"], "node-b");
    assert_eq!(replacement["status"]["phase"], "Succeeded");
    let name = replacement["metadata"]["name"].as_str().unwrap();
    let log = pod_log(cluster.cluster(), &ns, name, None).await.unwrap();
    assert_eq!(log, "finished on node-b\n");
    let node = cluster
        .cluster()
        .get("/api/v1/nodes/node-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(node["status"]["conditions"][0]["status"], "Unknown");
    assert!(
        node["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute")
    );
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_keeps_the_pod_waiting_and_the_job_active() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::in_process().await.unwrap();
    let kubelet = kubelet(&cluster, root.path()).await.unwrap();
    kubelet.fail_image_pull("registry.invalid/missing:1");
    let mut job = shell_job("kubelet-pull", "unpulled", "exit 0", 0);
    job["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.invalid/missing:1");
    cluster.create(job).await.unwrap();
    let ns = cluster.namespace("kubelet-pull");
    let deadline = std::time::Instant::now() + kubelet::TIMEOUT;
    let pod = loop {
        let pods = job_pods(cluster.cluster(), &ns, "unpulled").await.unwrap();
        if let Some(p) = pods.first()
            && p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
        {
            break p.clone();
        }
        assert!(std::time::Instant::now() < deadline, "{pods:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(pod["status"]["phase"], "Pending");
    let job = cluster
        .cluster()
        .get(&job_path(&ns, "unpulled"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job["status"]["active"], 1, "{job}");
    assert_eq!(job["status"]["failed"], 0, "{job}");
}

#[tokio::test]
async fn a_container_gets_its_environment_volumes_and_hooks_as_the_pod_says() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::in_process().await.unwrap();
    let kubelet = kubelet(&cluster, root.path()).await.unwrap();
    let ns_name = "kubelet-env";
    cluster
        .create(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "namespace": ns_name},
            "data": {"password": "czNjcjN0", "user": "YWRtaW4="}}))
        .await
        .unwrap();
    cluster
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": ns_name},
            "data": {"level": "debug", "motd": "hello"}}))
        .await
        .unwrap();
    let ns = cluster.namespace(ns_name);
    // Writes everything it sees into the hostPath, so the test can read it.
    let script = "set -e; echo \"$PASSWORD $LEVEL $POD $NS $CFG_motd\" > /out/env; \
                  cat /secret/pw > /out/secret; stat -c %a /secret/pw > /out/mode; \
                  cat /config/level > /out/config; echo scratch > /scratch/f; cat /scratch/f > /out/scratch; \
                  pwd > /out/cwd; echo $1 > /out/arg";
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "env", "namespace": ns_name},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main", "image": SHELL_IMAGE,
                "command": ["sh", "-c", script, "sh"], "args": ["$(LEVEL)-/out"],
                "workingDir": "/scratch",
                "env": [
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                    {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                ],
                "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
                "volumeMounts": [
                    {"name": "out", "mountPath": "/out"},
                    {"name": "secret", "mountPath": "/secret"},
                    {"name": "config", "mountPath": "/config"},
                    {"name": "scratch", "mountPath": "/scratch"},
                ],
            }],
            "volumes": [
                {"name": "out", "hostPath": {"path": "/srv/out"}},
                {"name": "secret", "secret": {"secretName": "creds", "defaultMode": 0o600,
                    "items": [{"key": "password", "path": "pw"}]}},
                {"name": "config", "configMap": {"name": "settings"}},
                {"name": "scratch", "emptyDir": {}},
            ],
        }}},
    });
    cluster.create(job).await.unwrap();
    let done = wait_for(cluster.cluster(), &job_path(&ns, "env"), "finished", |j| {
        condition(j, "Complete").is_some() || condition(j, "Failed").is_some()
    })
    .await
    .unwrap();
    let pods = job_pods(cluster.cluster(), &ns, "env").await.unwrap();
    let pod = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    let log = pod_log(cluster.cluster(), &ns, &pod, None).await.unwrap();
    assert!(condition(&done, "Complete").is_some(), "{done}\n{log}");
    assert!(done["status"]["completionTime"].is_string());
    let out = |f: &str| {
        std::fs::read_to_string(
            kubelet
                .config()
                .host_path("node-a", &format!("/srv/out/{f}")),
        )
        .unwrap()
    };
    assert_eq!(out("env"), format!("s3cr3t debug {pod} {ns} hello\n"));
    assert_eq!(out("secret"), "s3cr3t");
    assert_eq!(out("mode"), "600\n");
    assert_eq!(out("config"), "debug");
    assert_eq!(out("scratch"), "scratch\n");
    // The working directory and the argument were mapped to the real
    // directories; `$(LEVEL)` was expanded first.
    let cwd = out("cwd");
    assert!(
        cwd.trim_end()
            .ends_with("volumes/kubernetes.io~empty-dir/scratch"),
        "{cwd}"
    );
    let out_dir = kubelet.config().host_path("node-a", "/srv/out");
    assert_eq!(out("arg"), "debug-/out\n", "only whole paths are mapped");
    assert!(out_dir.is_dir());

    // A hook fails the next run of `sh` without running it.
    kubelet.fail_command("sh", 42, "injected failure\n");
    cluster
        .create(shell_job(ns_name, "hooked", "exit 0", 0))
        .await
        .unwrap();
    let failed = wait_for(cluster.cluster(), &job_path(&ns, "hooked"), "Failed", |j| {
        condition(j, "Failed").is_some()
    })
    .await
    .unwrap();
    assert_eq!(
        condition(&failed, "Failed").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
    let pods = job_pods(cluster.cluster(), &ns, "hooked").await.unwrap();
    let state = &pods[0]["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(state["exitCode"], 42);
    let name = pods[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        pod_log(cluster.cluster(), &ns, name, None).await.unwrap(),
        "injected failure\n"
    );
}

#[tokio::test]
async fn the_active_deadline_fails_a_job_and_stops_its_pod_and_the_ttl_deletes_a_finished_one() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::new().await.unwrap();
    let _kubelet = kubelet(&cluster, root.path()).await;
    let mut slow = shell_job("kubelet-deadline", "slow", "exec sleep 600", 3);
    slow["spec"]["activeDeadlineSeconds"] = json!(1);
    cluster.create(slow).await.unwrap();
    let ns = cluster.namespace("kubelet-deadline");
    let done = wait_for(cluster.cluster(), &job_path(&ns, "slow"), "Failed", |j| {
        condition(j, "Failed").is_some()
    })
    .await
    .unwrap();
    assert_eq!(
        condition(&done, "Failed").unwrap()["reason"],
        "DeadlineExceeded",
        "{done}"
    );
    assert_eq!(done["status"]["active"].as_i64().unwrap_or(0), 0, "{done}");
    // The running pod is deleted (and its process killed), not retried.
    let pods = job_pods(cluster.cluster(), &ns, "slow").await.unwrap();
    assert!(
        pods.iter()
            .all(|p| p["metadata"]["deletionTimestamp"].is_string()),
        "{pods:#?}"
    );

    let mut quick = shell_job("kubelet-deadline", "quick", "exit 0", 0);
    quick["spec"]["ttlSecondsAfterFinished"] = json!(0);
    cluster.create(quick).await.unwrap();
    wait_gone(cluster.cluster(), &job_path(&ns, "quick"))
        .await
        .unwrap();
    cluster.cleanup().await.unwrap();
}

/// A CSI driver whose volumes are directories under one root, as issue
/// 25's CSI stand-in will provide them.
struct DirectoryDriver(std::path::PathBuf);

impl kubelet::CsiVolumes for DirectoryDriver {
    fn directory(&self, volume_handle: &str, _node: &str) -> Option<std::path::PathBuf> {
        let dir = self.0.join(volume_handle);
        dir.is_dir().then_some(dir)
    }
}

#[tokio::test]
async fn claims_mount_their_bound_volumes_and_requests_are_recorded_with_their_user() {
    let root = tempfile::tempdir().unwrap();
    let csi_root = tempfile::tempdir().unwrap();
    std::fs::create_dir(csi_root.path().join("vol-1")).unwrap();
    let mut cluster = TestCluster::in_process().await.unwrap();
    let config = KubeletConfig::new(root.path())
        .command("sh", "/bin/sh")
        .csi_driver(
            "csi.hokan.dev",
            std::sync::Arc::new(DirectoryDriver(csi_root.path().to_path_buf())),
        );
    let kubelet = Kubelet::start(cluster.server().unwrap(), config)
        .await
        .unwrap();
    kubelet
        .register_node(
            "node-a",
            json!({"kubernetes.io/hostname": "node-a"}),
            json!([]),
        )
        .await
        .unwrap();
    let ns_name = "kubelet-claims";
    for (pv, source) in [
        ("local-pv", json!({"hostPath": {"path": "/mnt/disks/one"}})),
        (
            "csi-pv",
            json!({"csi": {"driver": "csi.hokan.dev", "volumeHandle": "vol-1"}}),
        ),
    ] {
        let mut spec = json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]});
        spec.as_object_mut()
            .unwrap()
            .extend(source.as_object().unwrap().clone());
        cluster
            .create(json!({"apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": pv}, "spec": spec}))
            .await
            .unwrap();
    }
    for (claim, pv) in [("local", "local-pv"), ("csi", "csi-pv"), ("unbound", "")] {
        cluster
            .create(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": ns_name},
                "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": pv,
                         "resources": {"requests": {"storage": "1Gi"}}}}))
            .await
            .unwrap();
    }
    let ns = cluster.namespace(ns_name);
    let mut job = shell_job(
        ns_name,
        "claims",
        "echo local > /local/f && echo csi > /csi/f && grep token: $KUBECONFIG",
        0,
    );
    let spec = &mut job["spec"]["template"]["spec"];
    spec["serviceAccountName"] = json!("backup");
    spec["containers"][0]["volumeMounts"] = json!([
        {"name": "local", "mountPath": "/local"}, {"name": "csi", "mountPath": "/csi"}]);
    spec["volumes"] = json!([
        {"name": "local", "persistentVolumeClaim": {"claimName": "local"}},
        {"name": "csi", "persistentVolumeClaim": {"claimName": "csi"}}]);
    cluster.create(job).await.unwrap();
    wait_for(
        cluster.cluster(),
        &job_path(&ns, "claims"),
        "Complete",
        |j| condition(j, "Complete").is_some(),
    )
    .await
    .unwrap();
    let local = kubelet.config().host_path("node-a", "/mnt/disks/one/f");
    assert_eq!(std::fs::read_to_string(local).unwrap(), "local\n");
    assert_eq!(
        std::fs::read_to_string(csi_root.path().join("vol-1/f")).unwrap(),
        "csi\n"
    );
    let pods = job_pods(cluster.cluster(), &ns, "claims").await.unwrap();
    let name = pods[0]["metadata"]["name"].as_str().unwrap();
    let log = pod_log(cluster.cluster(), &ns, name, None).await.unwrap();
    assert!(
        log.contains(&format!("token: \"system:serviceaccount:{ns}:backup\"")),
        "{log}"
    );

    // A pod whose claim is not bound is not scheduled.
    let mut job = shell_job(ns_name, "unbound", "exit 0", 0);
    let spec = &mut job["spec"]["template"]["spec"];
    spec["volumes"] = json!([{"name": "v", "persistentVolumeClaim": {"claimName": "unbound"}}]);
    cluster.create(job).await.unwrap();
    let deadline = std::time::Instant::now() + kubelet::TIMEOUT;
    let pod = loop {
        let pods = job_pods(cluster.cluster(), &ns, "unbound").await.unwrap();
        if let Some(p) = pods.first()
            && p["status"]["conditions"][0]["reason"] == "Unschedulable"
        {
            break p.clone();
        }
        assert!(std::time::Instant::now() < deadline, "{pods:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let message = pod["status"]["conditions"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("unbound immediate PersistentVolumeClaims"),
        "{message}"
    );

    // The stand-in's requests are recorded as its own user's: bindings,
    // pod and Job status writes, pod creation.
    let requests = cluster.server().unwrap().requests();
    let by_stand_in: Vec<_> = requests
        .iter()
        .filter(|r| r.user == kubelet::USER)
        .collect();
    for suffix in ["/binding", "/status"] {
        assert!(
            by_stand_in.iter().any(|r| r.path.ends_with(suffix)),
            "{suffix}"
        );
    }
    assert!(
        by_stand_in
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/pods"))
    );
    assert!(
        requests
            .iter()
            .any(|r| r.user.is_empty() && r.method == "POST")
    );
}

#[tokio::test]
async fn a_pod_of_two_containers_runs_both_and_serves_each_log() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::new().await.unwrap();
    let _kubelet = kubelet(&cluster, root.path()).await;
    let container = |name: &str, script: &str| json!({"name": name, "image": SHELL_IMAGE, "command": ["sh", "-c", script]});
    cluster
        .create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pair", "namespace": "kubelet-pair"},
        "spec": {"restartPolicy": "Never", "containers": [
            container("first", "echo one; echo two"),
            container("second", "echo three >&2; exit 1"),
        ]}}))
        .await
        .unwrap();
    let ns = cluster.namespace("kubelet-pair");
    let path = format!("/api/v1/namespaces/{ns}/pods/pair");
    let pod = wait_for(cluster.cluster(), &path, "finished", |p| {
        matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    })
    .await
    .unwrap();
    // One container failed, so the pod failed; each has its exit code.
    assert_eq!(pod["status"]["phase"], "Failed", "{pod}");
    let codes: Vec<(&Value, &Value)> = pod["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (&c["name"], &c["state"]["terminated"]["exitCode"]))
        .collect();
    assert_eq!(
        codes,
        [(&json!("first"), &json!(0)), (&json!("second"), &json!(1))]
    );
    let c = cluster.cluster();
    let which = pod_log(c, &ns, "pair", None).await.unwrap_err().to_string();
    assert!(
        which.contains(
            "a container name must be specified for pod pair, choose one of: [first second]"
        ),
        "{which}"
    );
    assert_eq!(
        pod_log(c, &ns, "pair", Some("first")).await.unwrap(),
        "one\ntwo\n"
    );
    assert_eq!(
        pod_log(c, &ns, "pair", Some("second")).await.unwrap(),
        "three\n"
    );
    let wrong = pod_log(c, &ns, "pair", Some("third"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        wrong.contains("container third is not valid for pod pair"),
        "{wrong}"
    );
    cluster.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_statefulset_makes_its_pods_and_claims_and_scales_to_zero_and_back() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::new().await.unwrap();
    let _kubelet = kubelet(&cluster, root.path()).await;
    let set = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "kubelet-sts"},
        "spec": {"replicas": 2, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": SHELL_IMAGE,
                                         "command": ["sh", "-c", "exec sleep 3600"]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Mi"}}}}]}});
    cluster.create(set).await.unwrap();
    let ns = cluster.namespace("kubelet-sts");
    let c = cluster.cluster();
    for i in 0..2 {
        let pod = wait_for(
            c,
            &format!("/api/v1/namespaces/{ns}/pods/db-{i}"),
            "made",
            |_| true,
        )
        .await
        .unwrap();
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
        let claim = format!("data-db-{i}");
        assert!(
            pod["spec"]["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["persistentVolumeClaim"]["claimName"] == claim),
            "{pod}"
        );
        c.get(&format!(
            "/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}"
        ))
        .await
        .unwrap()
        .expect("the claim from the template");
    }
    // To zero: the pods go, the claims stay.
    let path = format!("/apis/apps/v1/namespaces/{ns}/statefulsets/db");
    let mut s = c.get(&path).await.unwrap().unwrap();
    s["spec"]["replicas"] = json!(0);
    c.replace(&path, &s).await.unwrap();
    for i in 0..2 {
        wait_gone(c, &format!("/api/v1/namespaces/{ns}/pods/db-{i}"))
            .await
            .unwrap();
    }
    let s = wait_for(c, &path, "scaled to zero", |s| s["status"]["replicas"] == 0)
        .await
        .unwrap();
    assert_eq!(s["spec"]["replicas"], 0);
    assert!(
        c.get(&format!(
            "/api/v1/namespaces/{ns}/persistentvolumeclaims/data-db-1"
        ))
        .await
        .unwrap()
        .is_some()
    );
    // And back to one.
    let mut s = c.get(&path).await.unwrap().unwrap();
    s["spec"]["replicas"] = json!(1);
    c.replace(&path, &s).await.unwrap();
    wait_for(
        c,
        &format!("/api/v1/namespaces/{ns}/pods/db-0"),
        "made again",
        |_| true,
    )
    .await
    .unwrap();
    cluster.cleanup().await.unwrap();
}
