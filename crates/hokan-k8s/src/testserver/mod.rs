//! An in-process Kubernetes API server for tests and benchmarks (feature
//! `test-server`), faithful enough that an operator on kube-rs's runtime
//! (`Controller`, `watcher`, `reflector`, the events `Recorder`, Leases) and
//! `kubectl` (`apply -k`, `apply --server-side`, `get`, `describe`,
//! `delete`) work against it unchanged.
//!
//! It serves the real discovery documents in `shared/k8s/discovery/` (the
//! aggregated document when the client asks for it by `Accept` header, the
//! legacy documents derived from it otherwise) and objects: Kubernetes' own
//! API fixtures from `shared/k8s/api-testdata/` ([`TestServer::load_fixtures`]),
//! generated applications ([`TestServer::generate`]), or whatever a test
//! creates. It answers like the real server:
//!
//! - reads (`state.rs`): lists with `limit`/`continue` and
//!   `metadata.resourceVersion`, label selectors, field selectors on
//!   `metadata.name`/`metadata.namespace` (and the fields pods and events
//!   index), namespaced and cluster-scoped URLs; the `Table` form kubectl
//!   asks for (`table.rs`: a CRD's `additionalPrinterColumns`, Name/Age
//!   otherwise);
//! - watches (`watch.rs`): `?watch=true|1` on collections, from a
//!   resourceVersion or from the current state (`"0"`/none: ADDED first),
//!   `sendInitialEvents` with the `k8s.io/initial-events-end` bookmark,
//!   `allowWatchBookmarks`, `timeoutSeconds`, selectors (an object leaving a
//!   watch's selection is DELETED to it), and an ERROR event with a `410
//!   Expired` Status for a version older than the bounded history
//!   ([`TestServer::set_watch_history`] shrinks it);
//! - writes (`write.rs`, `patch.rs`, `delete.rs`): 201 on create, 409
//!   AlreadyExists and Conflict (stale resourceVersion, on update, patch and
//!   delete preconditions) as `Status` objects, 404, 422 Invalid; PATCH as
//!   JSON patch, merge patch, strategic merge patch and server-side apply;
//!   the `status` subresource; uid, creationTimestamp and generation
//!   (bumped when anything but metadata and status changes) set by the
//!   server; writes that change nothing not stored; finalizers,
//!   `propagationPolicy` (jobs default to Orphan, as on the real server),
//!   garbage collection by owner references with `blockOwnerDeletion`, and
//!   namespaces that terminate once empty;
//! - CRDs (`crd.rs`) that start serving their resources once Established;
//!   Services' cluster IPs and node ports (`services.rs`); events.k8s.io and
//!   core Events as one resource (`events.rs`); OpenAPI v3 documents enough
//!   for kubectl (`openapi.rs`);
//! - pods' `binding` subresource (as the scheduler binds them), `log`,
//!   and `exec` over WebSocket (`exec.rs`), served from and by the
//!   [`kubelet`] stand-in: it runs as a
//!   client beside the server, as a real cluster's job controller,
//!   scheduler and kubelets do, and runs Jobs' containers as real
//!   processes. Each request is recorded with the bearer token that sent
//!   it ([`RecordedRequest::user`]), so RBAC can be checked per account.
//!
//! Every request is recorded ([`TestServer::requests`]) so a test can
//! assert order and bodies.
//!
//! Known differences from a real server:
//! - no authentication or authorization (but [`TestServer::forbid`]), no
//!   admission webhooks, no defaulting, no schema validation
//!   (`fieldValidation=Strict` is accepted and unknown fields are kept),
//!   Secrets' `stringData` is stored as sent, and no version conversion: an
//!   object is served in any served version with only `apiVersion` changed,
//!   like a CRD with the `None` conversion strategy (events.k8s.io Events
//!   excepted, converted field by field); `dryRun` writes are refused (400)
//!   rather than made;
//! - lists ignore `resourceVersion`/`resourceVersionMatch` (always the
//!   current state), and a continued list reads the current state rather
//!   than a snapshot;
//! - watches are served on collection URLs only (not the deprecated
//!   `/watch/` paths or single-object URLs); the history is bounded by a
//!   count of events (10 000) rather than by time; a watch that falls
//!   behind the history gets `410 Expired`; a version newer than the
//!   server's waits for it instead of answering "too large resource
//!   version"; idle watches get a bookmark every 5 s and one at their
//!   timeout;
//! - strategic merge patches know merge keys by field name
//!   (`containers`, `volumes`, `env`, `ports`, `conditions`, ...), not from
//!   the kind's schema; server-side apply keeps no `managedFields`, detects
//!   no conflicts between managers (`force` changes nothing), keeps fields a
//!   manager stops applying, and reads apply configurations in JSON form
//!   only;
//! - the garbage collector runs inside the deleting request, not in the
//!   background, and ignores owner references to uids the server never
//!   held (the real one deletes such dependents); `gracePeriodSeconds` is
//!   ignored (a pod goes at once, there being no kubelet to stop it); a
//!   deleted CRD takes its objects at once, finalizers or not; namespaces'
//!   `spec.finalizers` are not modelled (their objects are deleted by a
//!   background tick every 100 ms, the namespace once they are gone);
//! - the Table form of built-in kinds has Name and Age only, not each
//!   kind's own columns; OpenAPI v3 documents list paths but no schemas
//!   (`kubectl explain` finds nothing) and `/openapi/v2` is 404.

mod crd;
pub mod csi;
mod delete;
mod docs;
mod events;
pub mod exec;
mod fixtures;
mod harness;
pub mod kubelet;
mod openapi;
mod patch;
mod pod_routes;
mod routes;
mod services;
mod state;
mod table;
mod watch;
mod write;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;

pub use csi::{Csi, CsiConfig};
pub use docs::data_dir;
pub use fixtures::{FixtureReport, GenerateOptions};
pub use harness::{KUBECONFIG_ENV, TestCluster};
pub use kubelet::{Kubelet, KubeletConfig};

use crate::cluster::Cluster;
use crate::{Error, Result};

/// One request the server answered.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// `GET`, `POST`, `PUT`, `DELETE`.
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The JSON body of a write.
    pub body: Option<Value>,
    /// The status code answered.
    pub status: u16,
    /// Who sent it: the bearer token, taken as the user's name as a token
    /// file authenticator maps it (empty without one). The kubelet
    /// stand-in's pods send `system:serviceaccount:<ns>:<name>`.
    pub user: String,
}

impl RecordedRequest {
    /// `POST /api/v1/namespaces/x/configmaps -> 201`, for messages.
    pub fn line(&self) -> String {
        format!("{} {} -> {}", self.method, self.path, self.status)
    }
}

struct Inner {
    state: Mutex<state::State>,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// A running in-process API server on a loopback port. Stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
    /// The namespace controller's ticks.
    controller: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
        self.controller.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not make every later request fail too.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TestServer {
    /// Starts a server with the real discovery documents and no objects,
    /// on the current tokio runtime.
    pub async fn start() -> Result<Self> {
        let data = data_dir();
        let docs = docs::Docs::load(&data)?;
        let inner = Arc::new(Inner {
            state: Mutex::new(state::State::new(docs)),
            requests: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::io("listen on", "127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("listen on", "127.0.0.1:0", e))?;
        let served = inner.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let inner = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(inner.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        let ticked = Arc::downgrade(&inner);
        let controller = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
            loop {
                tick.tick().await;
                let Some(inner) = ticked.upgrade() else {
                    return;
                };
                lock(&inner.state).finalize_namespaces();
            }
        });
        Ok(TestServer {
            addr,
            inner,
            task,
            controller,
        })
    }

    /// The server's URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A [`Cluster`] connected to this server.
    pub fn cluster(&self) -> Result<Cluster> {
        self.connect(None)
    }

    /// A [`Cluster`] whose requests carry `user` as their bearer token, so
    /// they are recorded as that user's.
    pub fn cluster_as(&self, user: &str) -> Result<Cluster> {
        self.connect(Some(user))
    }

    fn connect(&self, user: Option<&str>) -> Result<Cluster> {
        crate::cluster::install_crypto_provider();
        let uri: http::Uri =
            self.url()
                .parse()
                .map_err(|e: http::uri::InvalidUri| Error::Config {
                    reason: e.to_string(),
                    fix: "this is a bug in the test server",
                })?;
        let mut config = kube::Config::new(uri);
        if let Some(user) = user {
            let value = http::HeaderValue::from_str(&format!("Bearer {user}")).map_err(|e| {
                Error::Config {
                    reason: format!("user {user:?} cannot be a bearer token: {e}"),
                    fix: "name the user with visible ASCII characters",
                }
            })?;
            config.headers.push((http::header::AUTHORIZATION, value));
        }
        let client = kube::Client::try_from(config).map_err(|e| Error::Config {
            reason: e.to_string(),
            fix: "this is a bug in the test server",
        })?;
        Ok(Cluster::from_client(
            client,
            format!("test-server-{}", self.addr.port()),
        ))
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.requests).clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.inner.requests).clear();
    }

    /// Makes newly created CRDs answer "not Established" to the first `gets`
    /// GETs, as a real server takes a moment to establish them.
    pub fn set_crd_establish_after(&self, gets: u32) {
        lock(&self.inner.state).crd_establish_after = gets;
    }

    /// Refuses every request to a resource with 403 Forbidden, as RBAC
    /// does for a service account without rights to it.
    pub fn forbid(&self, group: &str, resource: &str) {
        lock(&self.inner.state)
            .forbidden
            .insert(crate::GroupResource::new(group, resource));
    }

    /// Fails every request to a resource with `code` (a 5xx status), as a
    /// server failing to serve it does.
    pub fn fail(&self, group: &str, resource: &str, code: u16) {
        lock(&self.inner.state)
            .failing
            .insert(crate::GroupResource::new(group, resource), code);
    }

    /// Writes a kubeconfig whose context `context` (also its current one)
    /// reaches this server, for programs that connect the usual way (the
    /// `hokan` binary in tests). The context name is the cluster's identity
    /// in snapshots.
    pub fn write_kubeconfig(&self, path: &std::path::Path, context: &str) -> Result<()> {
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {context}\n\
             clusters:\n- name: {context}\n  cluster:\n    server: {}\n\
             users:\n- name: {context}\n  user:\n    token: test\n\
             contexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n",
            self.url()
        );
        std::fs::write(path, text).map_err(|e| Error::io("write", path, e))
    }

    /// Keeps only the last `events` changes for watches (10 000 unless
    /// set): a watch from an older resourceVersion gets `410 Expired`, so a
    /// test can make a client relist.
    pub fn set_watch_history(&self, events: usize) {
        lock(&self.inner.state).set_history_limit(events);
    }

    /// Serves legacy discovery only, as servers before 1.26 do (`true`
    /// restores aggregated discovery).
    pub fn set_aggregated_discovery(&self, on: bool) {
        lock(&self.inner.state).aggregated = on;
    }

    /// Stores objects as if created earlier and updated by controllers
    /// (status kept, server fields filled in, nothing validated, nothing
    /// recorded). Each object's `apiVersion` and `kind` pick its resource.
    pub fn seed(&self, objects: impl IntoIterator<Item = Value>) -> Result<usize> {
        let mut state = lock(&self.inner.state);
        let mut n = 0;
        for object in objects {
            let r = fixtures::resource_of(&state.discovery, &object)?;
            state.seed(&r, object);
            n += 1;
        }
        Ok(n)
    }

    /// How many objects the server holds.
    pub fn object_count(&self) -> usize {
        lock(&self.inner.state)
            .objects
            .values()
            .map(|m| m.len())
            .sum()
    }

    /// The stored object, as served in its preferred version; `None` when absent.
    pub fn object(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let state = lock(&self.inner.state);
        let r = state
            .discovery
            .preferred(&crate::GroupResource::new(group, resource))?
            .clone();
        let stored = state
            .objects
            .get(&r.group_resource())?
            .get(&(namespace.unwrap_or_default().to_string(), name.to_string()))?;
        Some(state.served(&r, stored))
    }

    /// Loads one object of every served kind from `api-testdata/` (the
    /// resource's preferred version where a fixture exists), namespaced ones
    /// into `namespace` (created if needed).
    pub fn load_fixtures(&self, namespace: &str) -> Result<FixtureReport> {
        let mut state = lock(&self.inner.state);
        fixtures::load(&mut state, &data_dir(), namespace)
    }

    /// Generates realistic application objects (config maps, secrets,
    /// services, deployments, replica sets, pods, service accounts) spread
    /// over namespaces; for benchmarks.
    pub fn generate(&self, options: &GenerateOptions) -> usize {
        let mut state = lock(&self.inner.state);
        fixtures::generate(&mut state, options)
    }
}

type Body = UnsyncBoxBody<Bytes, std::convert::Infallible>;

async fn handle(
    inner: Arc<Inner>,
    req: hyper::Request<Incoming>,
) -> std::result::Result<hyper::Response<Body>, hyper::Error> {
    if let Some(target) = exec::target(req.uri().path()) {
        return Ok(exec::serve(inner, req, target).await);
    }
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let header = |name: http::header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let accept = header(http::header::ACCEPT);
    let content_type = header(http::header::CONTENT_TYPE);
    let user = header(http::header::AUTHORIZATION)
        .strip_prefix("Bearer ")
        .unwrap_or_default()
        .to_string();
    let body = req.into_body().collect().await?.to_bytes();
    let reply = {
        let mut state = lock(&inner.state);
        let accept = if state.aggregated || !accept.contains("apidiscovery") {
            accept
        } else {
            String::new()
        };
        let request = routes::Request {
            method: &method,
            query: &query,
            accept: &accept,
            content_type: &content_type,
            body: &body,
        };
        routes::route(&mut state, &path, &request)
    };
    let recorded_body =
        (!body.is_empty()).then(|| serde_json::from_slice(&body).unwrap_or(Value::Null));
    lock(&inner.requests).push(RecordedRequest {
        method,
        path,
        query,
        body: recorded_body,
        status: reply.status,
        user,
    });
    let response_body: Body = match reply.watch {
        Some(spec) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
            tokio::spawn(watch::serve(inner.clone(), spec, tx));
            let frames = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok(hyper::body::Frame::data(b)), rx))
            });
            StreamBody::new(frames).boxed_unsync()
        }
        None => Full::new(Bytes::from(reply.body)).boxed_unsync(),
    };
    let response = hyper::Response::builder()
        .status(reply.status)
        .header(http::header::CONTENT_TYPE, reply.content_type)
        .body(response_body)
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new()).boxed_unsync()));
    Ok(response)
}
