//! The job controller stand-in: pods from a Job's template, counts of
//! succeeded and failed pods, retries up to `backoffLimit`, the deadline,
//! the TTL after finishing, and the Job's status as the real controller
//! writes it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Shared, now, str_at};
use crate::Result;

/// What the controller remembers between polls, per Job uid.
#[derive(Default)]
pub(super) struct Memory {
    jobs: HashMap<String, JobMemory>,
}

#[derive(Default)]
struct JobMemory {
    /// Pods already added to `succeeded` or `failed`.
    counted: HashSet<String>,
    /// When the last failure was seen, for the backoff before a new pod.
    last_failure: Option<Instant>,
}

/// One pass over every Job.
pub(super) async fn sync(shared: &Shared, jobs: &[Value], pods: &[Value]) -> Result<()> {
    let live: HashSet<&str> = jobs.iter().map(|j| str_at(j, "/metadata/uid")).collect();
    super::super::lock(&shared.jobs)
        .jobs
        .retain(|uid, _| live.contains(uid.as_str()));
    for job in jobs {
        let uid = str_at(job, "/metadata/uid");
        let owned = super::controlled_by(pods, uid);
        sync_job(shared, job, &owned).await?;
    }
    Ok(())
}

fn finished(job: &Value) -> Option<(&str, String)> {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
        .map(|c| {
            (
                if c["type"] == "Complete" {
                    "Complete"
                } else {
                    "Failed"
                },
                str_at(c, "/lastTransitionTime").to_string(),
            )
        })
}

fn int(job: &Value, pointer: &str, default: i64) -> i64 {
    job.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

fn seconds_since(timestamp: &str) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(timestamp).ok()?;
    Some((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
}

async fn sync_job(shared: &Shared, job: &Value, pods: &[&Value]) -> Result<()> {
    let ns = str_at(job, "/metadata/namespace");
    let name = str_at(job, "/metadata/name");
    let uid = str_at(job, "/metadata/uid").to_string();
    let job_path = format!("/apis/batch/v1/namespaces/{ns}/jobs/{name}");
    if let Some((_, at)) = finished(job) {
        // The TTL-after-finished controller.
        if let Some(ttl) = job
            .pointer("/spec/ttlSecondsAfterFinished")
            .and_then(Value::as_i64)
            && seconds_since(&at).is_some_and(|s| s >= ttl)
        {
            ignore_gone(shared.cluster.delete(&job_path).await)?;
            // No garbage collector in the test server: its pods go too.
            for p in pods {
                delete_pod(shared, p).await?;
            }
        }
        return Ok(());
    }
    let phase = |p: &&&Value| str_at(p, "/status/phase").to_string();
    let (mut new_succeeded, mut new_failed) = (0, 0);
    let mut newly_counted = Vec::new();
    {
        let mut memory = super::super::lock(&shared.jobs);
        let m = memory.jobs.entry(uid.clone()).or_default();
        for p in pods {
            let pod_uid = str_at(p, "/metadata/uid").to_string();
            match phase(&p).as_str() {
                "Succeeded" if m.counted.insert(pod_uid.clone()) => {
                    new_succeeded += 1;
                    newly_counted.push(pod_uid);
                }
                "Failed" if m.counted.insert(pod_uid.clone()) => {
                    new_failed += 1;
                    newly_counted.push(pod_uid);
                    m.last_failure = Some(Instant::now());
                }
                _ => {}
            }
        }
    }
    let status = &job["status"];
    let succeeded = int(status, "/succeeded", 0) + new_succeeded;
    let failed = int(status, "/failed", 0) + new_failed;
    let active: Vec<&&Value> = pods
        .iter()
        .filter(|p| !matches!(phase(p).as_str(), "Succeeded" | "Failed"))
        .collect();
    let ready = active
        .iter()
        .filter(|p| {
            p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .count();
    let completions = int(job, "/spec/completions", 1);
    let parallelism = int(job, "/spec/parallelism", 1);
    let backoff_limit = int(job, "/spec/backoffLimit", 6);
    let suspended = job["spec"]["suspend"].as_bool() == Some(true);
    let start_time = match str_at(status, "/startTime") {
        "" if suspended => None,
        "" => Some(now()),
        t => Some(t.to_string()),
    };
    let deadline = job
        .pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64);
    let past_deadline = deadline.is_some_and(|d| {
        start_time
            .as_deref()
            .and_then(seconds_since)
            .is_some_and(|s| s >= d)
    });
    let outcome = if succeeded >= completions {
        Some((
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        ))
    } else if failed > backoff_limit {
        Some((
            "Failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else if past_deadline {
        Some((
            "Failed",
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ))
    } else {
        None
    };
    let mut active_count = active.len() as i64;
    if let Some((kind, _, _)) = outcome {
        if kind == "Failed" {
            for p in &active {
                delete_pod(shared, p).await?;
            }
        }
        active_count = 0;
    } else if !suspended {
        let wanted = parallelism.min(completions - succeeded) - active_count;
        if wanted > 0 && backoff_elapsed(shared, &uid, failed) {
            for _ in 0..wanted {
                create_pod(shared, job).await?;
                active_count += 1;
            }
        }
    }
    let mut new_status = json!({
        "active": active_count, "ready": if outcome.is_some() { 0 } else { ready },
        "succeeded": succeeded, "failed": failed, "terminating": 0,
        "uncountedTerminatedPods": {},
    });
    if let Some(t) = &start_time {
        new_status["startTime"] = json!(t);
    }
    let mut conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    if let Some((kind, reason, message)) = outcome {
        // 1.31's controller first records the target, then the terminal
        // condition once no pod is left running (here: at once).
        let interim = if kind == "Complete" {
            "SuccessCriteriaMet"
        } else {
            "FailureTarget"
        };
        for t in [interim, kind] {
            conditions.push(json!({
                "type": t, "status": "True", "reason": reason, "message": message,
                "lastProbeTime": now(), "lastTransitionTime": now(),
            }));
        }
        if kind == "Complete" {
            new_status["completionTime"] = json!(now());
        }
    }
    if !conditions.is_empty() {
        new_status["conditions"] = json!(conditions);
    }
    if *status == new_status {
        return Ok(());
    }
    write_status(shared, job, new_status, &newly_counted).await
}

/// Writes the Job's status. On a conflict (the Job changed) the next poll
/// counts this round's pods again against the new Job.
async fn write_status(
    shared: &Shared,
    job: &Value,
    status: Value,
    newly_counted: &[String],
) -> Result<()> {
    let path = format!(
        "/apis/batch/v1/namespaces/{}/jobs/{}/status",
        str_at(job, "/metadata/namespace"),
        str_at(job, "/metadata/name")
    );
    let mut updated = job.clone();
    updated["status"] = status;
    match shared.cluster.replace(&path, &updated).await {
        Err(e) if e.status() == Some(409) => {
            let mut memory = super::super::lock(&shared.jobs);
            if let Some(m) = memory.jobs.get_mut(str_at(job, "/metadata/uid")) {
                for pod_uid in newly_counted {
                    m.counted.remove(pod_uid);
                }
            }
            Ok(())
        }
        other => ignore_gone(other.map(|_| ())),
    }
}

/// Whether the backoff after the `failed`-th failure has passed.
fn backoff_elapsed(shared: &Shared, uid: &str, failed: i64) -> bool {
    if failed == 0 || shared.config.backoff.is_zero() {
        return true;
    }
    let delay = shared.config.backoff * 2u32.saturating_pow(failed.clamp(1, 16) as u32 - 1);
    let delay = delay.min(Duration::from_secs(360));
    super::super::lock(&shared.jobs)
        .jobs
        .get(uid)
        .and_then(|m| m.last_failure)
        .is_none_or(|t| t.elapsed() >= delay)
}

/// Creates one pod from the Job's template, as the controller names and
/// labels it.
async fn create_pod(shared: &Shared, job: &Value) -> Result<()> {
    let ns = str_at(job, "/metadata/namespace");
    let name = str_at(job, "/metadata/name");
    let uid = str_at(job, "/metadata/uid");
    let template = &job["spec"]["template"];
    let mut metadata = template["metadata"].clone();
    if !metadata.is_object() {
        metadata = json!({});
    }
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", name),
        ("controller-uid", uid),
        ("job-name", name),
    ] {
        metadata["labels"][k] = json!(v);
    }
    metadata["generateName"] = json!(format!("{name}-"));
    metadata["namespace"] = json!(ns);
    metadata["ownerReferences"] = json!([{
        "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true,
    }]);
    if let Some(m) = metadata.as_object_mut() {
        m.remove("name");
    }
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": template["spec"].clone(),
    });
    shared
        .cluster
        .create(&format!("/api/v1/namespaces/{ns}/pods"), &pod)
        .await?;
    Ok(())
}

async fn delete_pod(shared: &Shared, pod: &Value) -> Result<()> {
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}",
        str_at(pod, "/metadata/namespace"),
        str_at(pod, "/metadata/name")
    );
    ignore_gone(shared.cluster.delete(&path).await)
}

fn ignore_gone(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}
