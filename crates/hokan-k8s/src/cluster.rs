//! [`Cluster`]: a live API server through kube-rs, with untyped objects so
//! any resource (built-in or custom) can be listed and written.

use std::path::PathBuf;

use http::{Method, Request};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::discovery::{ACCEPT_AGGREGATED, AggregatedList, Discovery, GroupVersions, ResourceList};
use crate::{Error, Result};

/// How to reach a cluster: `--kubeconfig`, `--context`; with neither, the
/// usual order (`$KUBECONFIG`, `~/.kube/config`, then the pod's service
/// account when running in a cluster).
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// A kubeconfig file to read instead of the default ones.
    pub kubeconfig: Option<PathBuf>,
    /// The context to use instead of the current one.
    pub context: Option<String>,
}

/// A connection to one API server.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    identity: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("identity", &self.identity)
            .finish()
    }
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    /// The list's `metadata.resourceVersion`.
    pub resource_version: String,
    /// The token for the next page; `None` on the last one.
    pub continue_token: Option<String>,
    /// The items, as the server wrote them (built-in kinds without
    /// `apiVersion` and `kind`, as real servers list them).
    pub items: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct RawList {
    #[serde(default)]
    metadata: RawListMeta,
    #[serde(default)]
    items: Option<Vec<Box<RawValue>>>,
}

#[derive(Default, Deserialize)]
struct RawListMeta {
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

/// Chooses rustls's process-wide crypto provider (aws-lc-rs) unless one
/// is chosen already. A program linking hokan's repository (object_store
/// uses aws-lc-rs) and its etcd client (tonic uses ring) has both compiled
/// in, and rustls then refuses to guess, panicking when kube builds its TLS
/// configuration. [`Cluster::connect`] calls this; call it before building
/// a `kube::Client` of your own for [`Cluster::from_client`].
pub fn install_crypto_provider() {
    // An error means a provider is installed already, which is as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

impl Cluster {
    /// Connects as `options` say. The identity (for choosing a backup's
    /// parent) is the context name, or the server URL in a pod.
    pub async fn connect(options: &ConnectOptions) -> Result<Self> {
        install_crypto_provider();
        let config_error = |reason: String, fix| Error::Config { reason, fix };
        let kube_options = KubeConfigOptions {
            context: options.context.clone(),
            ..Default::default()
        };
        let (config, identity) = if let Some(path) = &options.kubeconfig {
            let file = Kubeconfig::read_from(path).map_err(|e| {
                config_error(
                    format!("reading {}: {e}", path.display()),
                    "give a readable kubeconfig file",
                )
            })?;
            let context = options
                .context
                .clone()
                .or_else(|| file.current_context.clone())
                .unwrap_or_default();
            let config = kube::Config::from_custom_kubeconfig(file, &kube_options)
                .await
                .map_err(|e| {
                    config_error(
                        e.to_string(),
                        "check the context's name against `kubectl config get-contexts`",
                    )
                })?;
            (config, context)
        } else if options.context.is_some() {
            let config = kube::Config::from_kubeconfig(&kube_options)
                .await
                .map_err(|e| {
                    config_error(
                        e.to_string(),
                        "check the context's name against `kubectl config get-contexts`",
                    )
                })?;
            (config, options.context.clone().unwrap_or_default())
        } else {
            let config = kube::Config::infer().await.map_err(|e| {
                config_error(
                    e.to_string(),
                    "give a kubeconfig file, set KUBECONFIG, or run inside a pod",
                )
            })?;
            let identity = config.cluster_url.to_string();
            (config, identity)
        };
        let client = kube::Client::try_from(config).map_err(|e| {
            config_error(
                e.to_string(),
                "check the kubeconfig's certificates and server address",
            )
        })?;
        Ok(Cluster { client, identity })
    }

    /// A cluster from a kube client already built (an in-process server, a
    /// custom TLS setup), with the identity to record in snapshots.
    pub fn from_client(client: kube::Client, identity: impl Into<String>) -> Self {
        Cluster {
            client,
            identity: identity.into(),
        }
    }

    /// The identity of this cluster: the kube context name (or server URL).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The underlying kube client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Sends one request; `what` names it in errors.
    pub(crate) async fn send(
        &self,
        what: &(dyn Fn() -> String + Sync),
        method: Method,
        path: &str,
        accept: &str,
        body: Option<Vec<u8>>,
    ) -> Result<String> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::ACCEPT, accept);
        if body.is_some() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(body.unwrap_or_default())
            .map_err(|e| Error::InvalidOption {
                option: "request",
                value: path.to_string(),
                reason: e.to_string(),
            })?;
        self.client
            .request_text(request)
            .await
            .map_err(|e| map_error(what(), e))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        accept: &str,
    ) -> Result<T> {
        let what = || format!("get {path}");
        let text = self.send(&what, Method::GET, path, accept, None).await?;
        serde_json::from_str(&text).map_err(|e| Error::bad_object(path, e))
    }

    /// Reads what the server serves: aggregated discovery when the server
    /// offers it (one request for `/api`, one for `/apis`), else the legacy
    /// per-group documents. Group versions that fail to answer (an
    /// aggregated API server that is down) are left out, as kubectl and
    /// Velero leave them out; the rest is returned.
    pub async fn discover(&self) -> Result<Discovery> {
        let core: Value = self.get_json("/api", ACCEPT_AGGREGATED).await?;
        if core.get("kind").and_then(Value::as_str) == Some("APIGroupDiscoveryList") {
            let core: AggregatedList =
                serde_json::from_value(core).map_err(|e| Error::bad_object("/api", e))?;
            let apis: AggregatedList = self.get_json("/apis", ACCEPT_AGGREGATED).await?;
            return Ok(Discovery::from_aggregated(&[core, apis]));
        }
        #[derive(Deserialize)]
        struct Versions {
            versions: Vec<String>,
        }
        #[derive(Deserialize)]
        struct GroupList {
            groups: Vec<Group>,
        }
        #[derive(Deserialize)]
        struct Group {
            name: String,
            versions: Vec<Gv>,
            #[serde(rename = "preferredVersion")]
            preferred: Option<Gv>,
        }
        #[derive(Deserialize)]
        struct Gv {
            version: String,
        }
        let core: Versions =
            serde_json::from_value(core).map_err(|e| Error::bad_object("/api", e))?;
        let mut groups = vec![GroupVersions {
            name: String::new(),
            versions: core.versions.clone(),
        }];
        let mut lists = Vec::new();
        for v in &core.versions {
            lists.push(
                self.get_json::<ResourceList>(&format!("/api/{v}"), "application/json")
                    .await?,
            );
        }
        let apis: GroupList = self.get_json("/apis", "application/json").await?;
        for g in apis.groups {
            let mut versions: Vec<String> = g.versions.into_iter().map(|v| v.version).collect();
            if let Some(p) = g.preferred {
                versions.retain(|v| *v != p.version);
                versions.insert(0, p.version);
            }
            let mut served = Vec::new();
            for v in versions {
                match self
                    .get_json::<ResourceList>(&format!("/apis/{}/{v}", g.name), "application/json")
                    .await
                {
                    Ok(list) => {
                        lists.push(list);
                        served.push(v);
                    }
                    // An unavailable aggregated API must not stop a backup of
                    // everything else (Velero and kubectl skip it too).
                    Err(e) if e.is_transient() || e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            if !served.is_empty() {
                groups.push(GroupVersions {
                    name: g.name,
                    versions: served,
                });
            }
        }
        Ok(Discovery::from_legacy(groups, &lists))
    }

    /// Lists one page of `path` (a collection path) with `limit` items.
    pub async fn list_page(
        &self,
        path: &str,
        selector: Option<&str>,
        continue_token: Option<&str>,
        limit: u32,
    ) -> Result<ListPage> {
        self.list_page_by_fields(path, selector, None, continue_token, limit)
            .await
    }

    /// [`list_page`](Self::list_page) with a field selector too
    /// (`spec.nodeName=node-1` for pods): the server filters, so a node's
    /// agent does not read every pod of the cluster.
    pub async fn list_page_by_fields(
        &self,
        path: &str,
        selector: Option<&str>,
        fields: Option<&str>,
        continue_token: Option<&str>,
        limit: u32,
    ) -> Result<ListPage> {
        let mut query = format!("limit={limit}");
        if let Some(s) = selector.filter(|s| !s.is_empty()) {
            query.push_str("&labelSelector=");
            query.push_str(&encode(s));
        }
        if let Some(f) = fields.filter(|f| !f.is_empty()) {
            query.push_str("&fieldSelector=");
            query.push_str(&encode(f));
        }
        if let Some(c) = continue_token {
            query.push_str("&continue=");
            query.push_str(&encode(c));
        }
        let url = format!("{path}?{query}");
        let what = || format!("list {path}");
        let text = self
            .send(&what, Method::GET, &url, "application/json", None)
            .await?;
        let list: RawList = serde_json::from_str(&text)
            .map_err(|e| Error::bad_object(format!("list {path}"), e))?;
        Ok(ListPage {
            resource_version: list.metadata.resource_version,
            continue_token: list.metadata.continue_token.filter(|c| !c.is_empty()),
            items: list.items.unwrap_or_default(),
        })
    }

    /// Gets one object; `None` when the server answers 404.
    pub async fn get(&self, path: &str) -> Result<Option<Value>> {
        let what = || format!("get {path}");
        match self
            .send(&what, Method::GET, path, "application/json", None)
            .await
        {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::bad_object(path, e)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// POSTs `body` to a collection path; returns the created object.
    pub async fn create(&self, collection: &str, body: &Value) -> Result<Value> {
        self.write(Method::POST, "create", collection, body).await
    }

    /// PUTs `body` to an object path (or its `/status`); returns the result.
    pub async fn replace(&self, path: &str, body: &Value) -> Result<Value> {
        self.write(Method::PUT, "update", path, body).await
    }

    /// Deletes the object at `path`.
    pub async fn delete(&self, path: &str) -> Result<()> {
        let what = || format!("delete {path}");
        self.send(&what, Method::DELETE, path, "application/json", None)
            .await
            .map(|_| ())
    }

    async fn write(&self, method: Method, verb: &str, path: &str, body: &Value) -> Result<Value> {
        let what = || {
            let name = body
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("{verb} {name} at {path}")
        };
        let bytes = serde_json::to_vec(body).map_err(|e| Error::bad_object(path, e))?;
        let text = self
            .send(&what, method, path, "application/json", Some(bytes))
            .await?;
        serde_json::from_str(&text).map_err(|e| Error::bad_object(path, e))
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Turns a kube error into ours, with the fix for the common statuses.
fn map_error(what: String, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(status) => {
            let hint = match status.code {
                401 => {
                    "; the credentials were refused: refresh the kubeconfig's token or certificate"
                }
                403 => {
                    "; grant the user or service account this verb on this resource (RBAC), or exclude the resource"
                }
                404 => "; the object or resource does not exist on this server",
                409 if status.reason == "AlreadyExists" => "; the object exists already",
                409 => "; the object changed meanwhile: read it again and retry",
                410 => {
                    "; the list expired while it was read: run again (or list with a larger page)"
                }
                422 => "; the server's validation refused the object: fix the field it names",
                429 => "; the server is throttling requests: retry later",
                500..=599 => {
                    "; the server failed: retry later, and check the API server's logs if it persists"
                }
                _ => "",
            };
            Error::Api {
                what,
                code: status.code,
                reason: status.reason,
                message: status.message,
                hint: hint.into(),
            }
        }
        other => Error::Unreachable {
            what,
            reason: other.to_string(),
        },
    }
}
