//! Velero's backup hooks: commands a pod's annotations ask to run in one of
//! its containers before and after its volumes are captured (a database
//! flush, `fsfreeze --freeze` and `--unfreeze`), run through the API
//! server's `pods/NAME/exec`, as Velero runs them.
//!
//! The annotations, per phase (`pre` or `post`):
//!
//! | annotation | meaning | default |
//! |---|---|---|
//! | `<phase>.hook.backup.velero.io/command` | a JSON array (`["/sbin/fsfreeze", "--freeze", "/data"]`), or one word | none: no hook |
//! | `<phase>.hook.backup.velero.io/container` | the container to run it in | the pod's first container |
//! | `<phase>.hook.backup.velero.io/on-error` | `Fail` (stop the backup of the pod) or `Continue` | `Fail` |
//! | `<phase>.hook.backup.velero.io/timeout` | how long it may run (`30s`, `2m`) | `30s` |
//!
//! A hook fails when its command exits non-zero, cannot be started, or
//! outlives its timeout (the stream is closed, which ends the process).
//! Hooks run only in pods that are `Running`, as Velero skips others.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use serde_json::Value;
use tokio::io::AsyncReadExt;

/// When a hook runs: before or after the volumes are captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before: quiesce (flush, freeze).
    Pre,
    /// After: resume (thaw).
    Post,
}

impl Phase {
    fn prefix(self) -> &'static str {
        match self {
            Phase::Pre => "pre.hook.backup.velero.io",
            Phase::Post => "post.hook.backup.velero.io",
        }
    }
}

/// What a failed hook means for the backup of its pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// The pod's volumes are not captured (pre) / the capture is reported
    /// failed (post).
    Fail,
    /// Noted, and the backup goes on.
    Continue,
}

/// One hook of one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container it runs in.
    pub container: String,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// What a failure means.
    pub on_error: OnError,
    /// How long it may run.
    pub timeout: Duration,
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "hook {:?} in container {} of pod {}/{}",
            self.command, self.container, self.namespace, self.pod
        )
    }
}

/// The default timeout, Velero's.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The `phase` hook `pod` (a Pod object) asks for: `Ok(None)` without a
/// command annotation or when the pod is not `Running`; `Err` names the
/// annotation that cannot be read and how to write it.
pub fn backup_hook(pod: &Value, phase: Phase) -> Result<Option<Hook>, String> {
    let annotations = &pod["metadata"]["annotations"];
    let get = |key: &str| {
        annotations[format!("{}/{key}", phase.prefix())]
            .as_str()
            .map(str::trim)
    };
    let Some(command) = get("command") else {
        return Ok(None);
    };
    if pod["status"]["phase"] != "Running" {
        return Ok(None);
    }
    let at = |key: &str| format!("annotation {}/{key}", phase.prefix());
    let command: Vec<String> = if command.starts_with('[') {
        serde_json::from_str(command).map_err(|e| {
            format!(
                "{} is not a JSON array of strings ({e}); write it as [\"/bin/sh\", \"-c\", \"...\"]",
                at("command")
            )
        })?
    } else {
        vec![command.to_string()]
    };
    if command.first().is_none_or(|c| c.is_empty()) {
        return Err(format!(
            "{} is empty; give the command to run",
            at("command")
        ));
    }
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match get("container") {
        Some(c) if containers.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(format!(
                "{} names {c}, which is not a container of the pod (it has {containers:?})",
                at("container")
            ));
        }
        None => containers
            .first()
            .map(|c| c.to_string())
            .ok_or_else(|| "the pod has no containers".to_string())?,
    };
    let on_error = match get("on-error") {
        None => OnError::Fail,
        Some(v) if v.eq_ignore_ascii_case("fail") => OnError::Fail,
        Some(v) if v.eq_ignore_ascii_case("continue") => OnError::Continue,
        Some(v) => {
            return Err(format!(
                "{} is {v:?}; write Fail or Continue",
                at("on-error")
            ));
        }
    };
    let timeout = match get("timeout") {
        None => DEFAULT_TIMEOUT,
        Some(t) => hokan_repo::parse_duration(t).map_err(|e| {
            format!(
                "{} is {t:?} ({e}); write a length such as 30s or 2m",
                at("timeout")
            )
        })?,
    };
    Ok(Some(Hook {
        namespace: pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        pod: pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        container,
        command,
        on_error,
        timeout,
    }))
}

/// What a hook's run printed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookOutput {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs `hook` through `pods/NAME/exec`; `Err` says why it failed (the
/// server's refusal, the exit code with the end of its error output, or
/// the timeout).
pub async fn run(client: &kube::Client, hook: &Hook) -> Result<HookOutput, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &hook.namespace);
    let params = AttachParams::default()
        .container(hook.container.clone())
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let exec = async {
        let mut process = api
            .exec(&hook.pod, hook.command.clone(), &params)
            .await
            .map_err(|e| format!("{hook} could not start: {e}"))?;
        let status = process.take_status();
        let read = |stream: Option<tokio::io::ReadHalf<tokio::io::SimplexStream>>| async move {
            let mut text = Vec::new();
            if let Some(mut s) = stream {
                let _ = s.read_to_end(&mut text).await;
            }
            String::from_utf8_lossy(&text).into_owned()
        };
        // Both streams drained while waiting: kube's pipes are small, and
        // a full one would stall the process.
        let (stdout, stderr, status) =
            tokio::join!(read(process.stdout()), read(process.stderr()), async {
                match status {
                    Some(s) => s.await,
                    None => None,
                }
            });
        let output = HookOutput { stdout, stderr };
        match status {
            Some(s) if s.status.as_deref() == Some("Success") => Ok(output),
            Some(s) => Err(format!(
                "{hook} failed: {}{}",
                s.message.unwrap_or_default(),
                tail(&output.stderr)
            )),
            None => Err(format!(
                "{hook}: the stream ended without an exit status{}",
                tail(&output.stderr)
            )),
        }
    };
    match tokio::time::timeout(hook.timeout, exec).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{hook} timed out after {} s (its timeout annotation)",
            hook.timeout.as_secs_f64()
        )),
    }
}

/// The last line of `stderr`, as `: <line>`, for an error message.
fn tail(stderr: &str) -> String {
    match stderr.trim().lines().last() {
        Some(l) => format!(": {l}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(annotations: Value) -> Value {
        json!({"metadata": {"name": "db", "namespace": "shop", "annotations": annotations},
               "spec": {"containers": [{"name": "postgres"}, {"name": "sidecar"}]},
               "status": {"phase": "Running"}})
    }

    #[test]
    fn annotations_are_read_as_velero_reads_them() {
        let p = pod(json!({
            "pre.hook.backup.velero.io/command": "[\"/sbin/fsfreeze\", \"--freeze\", \"/data\"]",
            "pre.hook.backup.velero.io/container": "sidecar",
            "pre.hook.backup.velero.io/timeout": "2m",
            "post.hook.backup.velero.io/command": "/bin/thaw",
            "post.hook.backup.velero.io/on-error": "Continue",
        }));
        let pre = backup_hook(&p, Phase::Pre).unwrap().unwrap();
        assert_eq!(pre.command, ["/sbin/fsfreeze", "--freeze", "/data"]);
        assert_eq!(pre.container, "sidecar");
        assert_eq!(pre.on_error, OnError::Fail);
        assert_eq!(pre.timeout, Duration::from_secs(120));
        let post = backup_hook(&p, Phase::Post).unwrap().unwrap();
        assert_eq!(post.command, ["/bin/thaw"]);
        assert_eq!(post.container, "postgres", "the first container");
        assert_eq!(post.on_error, OnError::Continue);
        assert_eq!(post.timeout, DEFAULT_TIMEOUT);
        assert_eq!(backup_hook(&pod(json!({})), Phase::Pre).unwrap(), None);
        let mut pending = p.clone();
        pending["status"]["phase"] = json!("Pending");
        assert_eq!(backup_hook(&pending, Phase::Pre).unwrap(), None);
    }

    #[test]
    fn a_bad_annotation_is_named_with_its_fix() {
        for (key, value, says) in [
            ("command", "[\"a\", 1]", "JSON array of strings"),
            ("container", "nope", "not a container of the pod"),
            ("on-error", "maybe", "write Fail or Continue"),
            ("timeout", "soon", "such as 30s"),
        ] {
            let mut a = json!({"pre.hook.backup.velero.io/command": "/bin/true"});
            a[format!("pre.hook.backup.velero.io/{key}")] = json!(value);
            let e = backup_hook(&pod(a), Phase::Pre).unwrap_err();
            assert!(e.contains(key) && e.contains(says), "{e}");
        }
    }
}
