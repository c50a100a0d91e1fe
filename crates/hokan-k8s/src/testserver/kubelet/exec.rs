//! The kubelet stand-in's side of `pods/NAME/exec`: a command run beside a
//! running container, with that container's environment, working
//! directory and mount paths rewritten to its volumes' directories (as its
//! own command is; see the module above). Its first word maps to an
//! executable as a container's command does ([`KubeletConfig::command`]);
//! an unmapped one fails as runc reports a missing executable.
//!
//! [`KubeletConfig::command`]: super::KubeletConfig::command

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, Weak};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::Shared;
use super::volumes::{Plan, rewrite};
use crate::testserver::exec::{Exec, ExecEvent, ExecRequest};
use crate::testserver::state::ApiError;

/// A running container, as exec needs it.
pub(super) struct Container {
    env: Vec<(String, String)>,
    mounts: Vec<(String, PathBuf)>,
    cwd: PathBuf,
}

impl Container {
    pub(super) fn of(plan: &Plan) -> Self {
        Container {
            env: plan.env.clone(),
            mounts: plan.mounts.clone(),
            cwd: plan.cwd.clone(),
        }
    }
}

/// The running containers of a pod, by name, and the process groups a
/// lost node or a deleted pod kills (exec's among them).
pub(super) struct PodContainers {
    pub uid: String,
    pub groups: Arc<Mutex<Vec<i32>>>,
    pub containers: BTreeMap<String, Container>,
}

/// Running pods by `(namespace, name)`.
pub(super) type Registry = Mutex<BTreeMap<(String, String), PodContainers>>;

/// The [`Exec`] the stand-in registers with the server; it holds the
/// stand-in weakly, so a stopped one answers as an unreachable kubelet.
pub(super) struct KubeletExec(pub Weak<Shared>);

impl Exec for KubeletExec {
    fn start(&self, request: ExecRequest) -> Result<mpsc::Receiver<ExecEvent>, ApiError> {
        let unreachable = || {
            ApiError::new(
                500,
                "InternalError",
                "error dialing backend: the node's kubelet is not running",
            )
        };
        let shared = self.0.upgrade().ok_or_else(unreachable)?;
        let key = (request.namespace.clone(), request.pod.clone());
        let (container, groups) = {
            let pods = crate::testserver::lock(&shared.exec);
            let pod = pods.get(&key);
            let found = pod.and_then(|p| p.containers.get(&request.container));
            match (pod, found) {
                (Some(p), Some(c)) => (
                    Container {
                        env: c.env.clone(),
                        mounts: c.mounts.clone(),
                        cwd: c.cwd.clone(),
                    },
                    p.groups.clone(),
                ),
                _ => {
                    return Err(ApiError::new(
                        500,
                        "InternalError",
                        format!(
                            "unable to upgrade connection: container not found (\"{}\")",
                            request.container
                        ),
                    ));
                }
            }
        };
        let (tx, rx) = mpsc::channel(16);
        let word = request.command[0].clone();
        let program = shared.config.executable(&word).map(PathBuf::from);
        let args: Vec<String> = request.command[1..]
            .iter()
            .map(|a| rewrite(a, &container.mounts))
            .collect();
        tokio::spawn(async move {
            let Some(program) = program else {
                let why = format!(
                    "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{word}\": executable file not found in $PATH: unknown"
                );
                let _ = tx.send(ExecEvent::Failed(why)).await;
                return;
            };
            run(program, args, container, groups, tx).await;
        });
        Ok(rx)
    }
}

/// Runs the command, sending its output and exit. A client that goes away
/// does not end it (a real kubelet's does not either); a deleted pod or a
/// lost node does, as its process group is the pod's.
async fn run(
    program: PathBuf,
    args: Vec<String>,
    container: Container,
    groups: Arc<Mutex<Vec<i32>>>,
    tx: mpsc::Sender<ExecEvent>,
) {
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&args)
        .env_clear()
        .envs(container.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&container.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let why = format!(
                "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{}\": {e}: unknown",
                program.display()
            );
            let _ = tx.send(ExecEvent::Failed(why)).await;
            return;
        }
    };
    if let Some(p) = child.id() {
        crate::testserver::lock(&groups).push(p as i32);
    }
    let out = child.stdout.take();
    let err = child.stderr.take();
    let (status, _, _) = tokio::join!(
        child.wait(),
        pump(out, ExecEvent::Stdout, tx.clone()),
        pump(err, ExecEvent::Stderr, tx.clone()),
    );
    let code = super::exit_code(status);
    let _ = tx.send(ExecEvent::Exited(code)).await;
}

/// Sends what `stream` yields as `wrap`ped events until its end; once the
/// client is gone, reads on without sending, so the process never blocks.
async fn pump<R: AsyncRead + Unpin>(
    stream: Option<R>,
    wrap: fn(Vec<u8>) -> ExecEvent,
    tx: mpsc::Sender<ExecEvent>,
) {
    let Some(mut stream) = stream else { return };
    let mut buf = vec![0u8; 16 * 1024];
    let mut open = true;
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if open {
            open = tx.send(wrap(buf[..n].to_vec())).await.is_ok();
        }
    }
}
