//! `pods/NAME/exec`: a command run in a pod's container, its output
//! streamed back over a WebSocket as the real server streams it (which
//! proxies the kubelet's stream): the `v5.channel.k8s.io` or
//! `v4.channel.k8s.io` subprotocol, each binary message a channel byte
//! (1 stdout, 2 stderr, 3 the final `Status`) and its data. A non-zero exit
//! is a `Failure` Status with reason `NonZeroExitCode` and the code as the
//! `ExitCode` cause, as kubectl and kube-rs read it.
//!
//! The command itself is run by whoever registered an [`Exec`] (the
//! [`Kubelet`](super::Kubelet) stand-in). Without one, the server answers
//! as one whose kubelet cannot be reached. Closing the stream does not end
//! the command, on a real cluster either.
//!
//! Differences: stdin and TTYs are refused (400): hooks need neither.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::state::{ApiError, Query};
use super::{Body, Inner, RecordedRequest, lock};

/// A command to run in a running container.
#[derive(Clone, Debug)]
pub struct ExecRequest {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container (resolved: the pod's only one when none was named).
    pub container: String,
    /// The command and its arguments.
    pub command: Vec<String>,
}

/// What a running command reports, in order; the last is `Exited` or
/// `Failed`.
#[derive(Clone, Debug)]
pub enum ExecEvent {
    /// Bytes written to standard output.
    Stdout(Vec<u8>),
    /// Bytes written to standard error.
    Stderr(Vec<u8>),
    /// It ended with this exit code.
    Exited(i32),
    /// It could not be started: the runtime's message.
    Failed(String),
}

/// Runs exec requests: the kubelet's part.
pub trait Exec: Send + Sync {
    /// Starts `request`, or refuses it as the kubelet would (the container
    /// is not running).
    fn start(&self, request: ExecRequest) -> Result<mpsc::Receiver<ExecEvent>, ApiError>;
}

/// The protocols served, in the server's order of preference.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// `(namespace, pod)` when `path` is a pod's exec subresource.
pub(super) fn target(path: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", pod, "exec"] => {
            Some((ns.to_string(), pod.to_string()))
        }
        _ => None,
    }
}

/// Answers an exec request: checks it, upgrades the connection and
/// streams the command's output.
pub(super) async fn serve(
    inner: Arc<Inner>,
    mut req: hyper::Request<Incoming>,
    (ns, pod): (String, String),
) -> hyper::Response<Body> {
    let method = req.method().as_str().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let user = header(&req, http::header::AUTHORIZATION)
        .strip_prefix("Bearer ")
        .unwrap_or_default()
        .to_string();
    let started = check(&inner, &req, &ns, &pod, &query).and_then(|(request, protocol)| {
        let exec = lock(&inner.state).exec.clone().ok_or_else(|| {
            ApiError::new(
                500,
                "InternalError",
                "error dialing backend: no kubelet serves this node",
            )
        })?;
        Ok((exec.start(request)?, protocol))
    });
    let status = if started.is_ok() { 101 } else { 0 };
    let response = match started {
        Err(e) => error(&e),
        Ok((events, protocol)) => {
            let key = header(&req, http::header::SEC_WEBSOCKET_KEY);
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        None,
                    )
                    .await;
                    stream(ws, events).await;
                }
            });
            hyper::Response::builder()
                .status(101)
                .header(http::header::UPGRADE, "websocket")
                .header(http::header::CONNECTION, "Upgrade")
                .header(
                    http::header::SEC_WEBSOCKET_ACCEPT,
                    derive_accept_key(key.as_bytes()),
                )
                .header(http::header::SEC_WEBSOCKET_PROTOCOL, protocol)
                .body(Full::new(Bytes::new()).boxed_unsync())
                .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new()).boxed_unsync()))
        }
    };
    lock(&inner.requests).push(RecordedRequest {
        method,
        path: format!("/api/v1/namespaces/{ns}/pods/{pod}/exec"),
        query,
        body: None,
        status: if status == 101 {
            101
        } else {
            response.status().as_u16()
        },
        user,
    });
    response
}

fn header(req: &hyper::Request<Incoming>, name: http::header::HeaderName) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The request to run and the protocol chosen, or the refusal the real
/// server gives.
fn check(
    inner: &Inner,
    req: &hyper::Request<Incoming>,
    ns: &str,
    pod: &str,
    query: &str,
) -> Result<(ExecRequest, &'static str), ApiError> {
    if !matches!(req.method().as_str(), "GET" | "POST") {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ));
    }
    let q = Query::parse(query);
    let command: Vec<String> = q.all("command").into_iter().map(str::to_string).collect();
    let flag = |k: &str| matches!(q.get(k), Some("true" | "1"));
    if command.is_empty() {
        return Err(ApiError::new(
            400,
            "BadRequest",
            "you must specify at least 1 command",
        ));
    }
    if !flag("stdout") && !flag("stderr") && !flag("stdin") {
        return Err(ApiError::new(
            400,
            "BadRequest",
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    if flag("stdin") || flag("tty") {
        return Err(ApiError::new(
            400,
            "BadRequest",
            "the test server's exec serves no stdin or tty (hooks need neither)",
        ));
    }
    let object = {
        let mut state = lock(&inner.state);
        let r = state
            .resource("", "v1", "pods")
            .ok_or_else(|| ApiError::new(404, "NotFound", "pods are not served"))?;
        state.get(&r, ns, pod)?
    };
    let containers: Vec<&str> = object["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match q.get("container") {
        Some(c) if containers.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!("container {c} is not valid for pod {pod}"),
            ));
        }
        None if containers.len() == 1 => containers[0].to_string(),
        None => {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!(
                    "a container name must be specified for pod {pod}, choose one of: [{}]",
                    containers.join(" ")
                ),
            ));
        }
    };
    let phase = object["status"]["phase"].as_str().unwrap_or_default();
    if matches!(phase, "Succeeded" | "Failed") {
        return Err(ApiError::new(
            400,
            "BadRequest",
            format!("cannot exec into a container in a completed pod; current phase is {phase}"),
        ));
    }
    let upgrade = header(req, http::header::UPGRADE);
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err(ApiError::new(400, "BadRequest", "Upgrade request required"));
    }
    let offered = header(req, http::header::SEC_WEBSOCKET_PROTOCOL);
    let protocol = offered
        .split(',')
        .map(str::trim)
        .find_map(|p| PROTOCOLS.into_iter().find(|s| *s == p))
        .ok_or_else(|| {
            ApiError::new(
                400,
                "BadRequest",
                format!("no supported subprotocol in {offered:?}; the server speaks {PROTOCOLS:?}"),
            )
        })?;
    Ok((
        ExecRequest {
            namespace: ns.to_string(),
            pod: pod.to_string(),
            container,
            command,
        },
        protocol,
    ))
}

fn error(e: &ApiError) -> hyper::Response<Body> {
    let body = serde_json::to_vec(&e.to_status()).unwrap_or_default();
    hyper::Response::builder()
        .status(e.code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

/// Sends the command's output, then its Status, then closes; stops early
/// when the client closes.
async fn stream<S>(ws: WebSocketStream<S>, mut events: mpsc::Receiver<ExecEvent>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut send, mut recv) = ws.split();
    let framed = |channel: u8, data: &[u8]| {
        let mut v = Vec::with_capacity(data.len() + 1);
        v.push(channel);
        v.extend_from_slice(data);
        Message::binary(v)
    };
    loop {
        tokio::select! {
            event = events.recv() => {
                let (message, last) = match event {
                    Some(ExecEvent::Stdout(b)) => (framed(1, &b), false),
                    Some(ExecEvent::Stderr(b)) => (framed(2, &b), false),
                    Some(ExecEvent::Exited(code)) => (framed(3, &exit_status(code).to_string().into_bytes()), true),
                    Some(ExecEvent::Failed(why)) => {
                        let status = json!({"metadata": {}, "status": "Failure", "message": why,
                                            "reason": "InternalError"});
                        (framed(3, status.to_string().as_bytes()), true)
                    }
                    None => break,
                };
                if send.send(message).await.is_err() {
                    return;
                }
                if last {
                    break;
                }
            }
            incoming = recv.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    }
    let _ = send.send(Message::Close(None)).await;
}

/// The Status of an exit, as the kubelet reports it.
fn exit_status(code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({"metadata": {}, "status": "Failure",
           "message": format!("command terminated with non-zero exit code: error executing command, exit code {code}"),
           "reason": "NonZeroExitCode",
           "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
}
