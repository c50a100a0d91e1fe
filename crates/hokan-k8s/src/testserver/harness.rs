//! [`TestCluster`]: the one way tests get a cluster — the in-process server
//! by default, a real cluster when `HOKAN_TEST_KUBECONFIG` names a kubeconfig
//! (`HOKAN_TEST_CONTEXT` picks its context).
//!
//! Tests written against it create their own objects through the API in
//! namespaces it names, so they run unchanged on both. On a real cluster the
//! namespaces get a unique prefix and [`TestCluster::cleanup`] deletes them;
//! assertions on recorded requests are made only where
//! [`TestCluster::server`] is `Some`.

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};

use super::TestServer;
use crate::cluster::{Cluster, ConnectOptions};
use crate::object::{GroupResource, split_api_version};
use crate::{Error, Result};

/// The environment variable naming a real cluster's kubeconfig.
pub const KUBECONFIG_ENV: &str = "HOKAN_TEST_KUBECONFIG";

static RUN: AtomicU32 = AtomicU32::new(0);

/// A cluster for one test.
#[derive(Debug)]
pub struct TestCluster {
    cluster: Cluster,
    server: Option<TestServer>,
    prefix: String,
    created: Vec<String>,
}

impl TestCluster {
    /// The in-process server, or the real cluster `HOKAN_TEST_KUBECONFIG` names.
    pub async fn new() -> Result<Self> {
        if let Some(path) = std::env::var_os(KUBECONFIG_ENV).filter(|p| !p.is_empty()) {
            let options = ConnectOptions {
                kubeconfig: Some(path.into()),
                context: std::env::var("HOKAN_TEST_CONTEXT").ok(),
            };
            let cluster = Cluster::connect(&options).await?;
            let prefix = format!(
                "hokan-t{}-{}-",
                std::process::id() % 100_000,
                RUN.fetch_add(1, Ordering::Relaxed)
            );
            return Ok(TestCluster {
                cluster,
                server: None,
                prefix,
                created: Vec::new(),
            });
        }
        Self::in_process().await
    }

    /// Always the in-process server (for tests that need its fixtures or its
    /// request log).
    pub async fn in_process() -> Result<Self> {
        let server = TestServer::start().await?;
        Ok(TestCluster {
            cluster: server.cluster()?,
            server: Some(server),
            prefix: String::new(),
            created: Vec::new(),
        })
    }

    /// The cluster to back up from or restore to.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The in-process server, when this is one.
    pub fn server(&self) -> Option<&TestServer> {
        self.server.as_ref()
    }

    /// The real name of the test's namespace `name` (prefixed on a real
    /// cluster so runs do not collide).
    pub fn namespace(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Creates `object` through the API. A namespaced object's namespace is
    /// mapped by [`Self::namespace`] and created first if missing.
    pub async fn create(&mut self, mut object: Value) -> Result<Value> {
        let discovery = self.cluster.discover().await?;
        let api_version = object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let (group, version) = split_api_version(&api_version);
        let r = discovery
            .resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
            .ok_or_else(|| {
                Error::bad_object(
                    format!("{api_version} {kind}"),
                    "not served by the test cluster",
                )
            })?;
        let namespace = if r.namespaced {
            let ns = self.namespace(
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default"),
            );
            object["metadata"]["namespace"] = json!(ns);
            self.ensure_namespace(&ns).await?;
            Some(ns)
        } else {
            if r.group_resource() == GroupResource::new("", "namespaces") {
                let name = self.namespace(object["metadata"]["name"].as_str().unwrap_or_default());
                object["metadata"]["name"] = json!(name);
                self.created.push(name);
            }
            None
        };
        self.cluster
            .create(&r.collection_path(namespace.as_deref()), &object)
            .await
    }

    async fn ensure_namespace(&mut self, ns: &str) -> Result<()> {
        if self
            .cluster
            .get(&format!("/api/v1/namespaces/{ns}"))
            .await?
            .is_some()
        {
            return Ok(());
        }
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        self.cluster.create("/api/v1/namespaces", &body).await?;
        self.created.push(ns.to_string());
        Ok(())
    }

    /// Deletes the namespaces the test created (a no-op that still checks
    /// the API answers, on the in-process server, which is dropped anyway).
    pub async fn cleanup(&mut self) -> Result<()> {
        for ns in std::mem::take(&mut self.created) {
            match self
                .cluster
                .delete(&format!("/api/v1/namespaces/{ns}"))
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
