//! The reconcilers, one per kind, each a function of the object and the
//! world that converges and never assumes it ran before; kube-rs's
//! `Controller` calls them ([`crate::run`]).
//!
//! Status is written with server-side apply under one field manager, so
//! the operator owns exactly the status fields it writes and a field it
//! stops writing disappears.

pub mod backup;
pub mod policy;
pub mod repository;
pub mod restore;
pub mod volumes;

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use serde::Serialize;

use crate::clock::Clock;
use crate::convert::Invalid;
use crate::http::Endpoints;

/// The field manager of everything the operator writes.
pub const MANAGER: &str = "hokan-operator";

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The clock every decision reads.
    pub clock: Arc<dyn Clock>,
    /// Metrics and probes.
    pub endpoints: Endpoints,
    /// How repositories are opened (the cache directory, retries).
    pub open_options: hokan_repo::OpenOptions,
    /// The image Jobs run (`/usr/local/bin/hokan` inside).
    pub image: String,
}

/// Why a reconcile could not finish; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A field cannot be used.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Blocking work (opening a repository) could not finish.
    #[error("repository work stopped: {0}")]
    Blocking(String),
    /// The object has no namespace (every hokan kind is namespaced).
    #[error("{0} has no namespace; hokan's resources are namespaced")]
    NoNamespace(String),
}

/// Retries after an error: soon, then with kube-rs's own backoff on the
/// watch; one error never stops the controller.
pub fn error_policy<K>(_obj: Arc<K>, _err: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(30))
}

/// Publishes a Kubernetes event on `obj` (`kubectl describe` shows it).
/// An event that cannot be written is logged, never fatal. Notes say what
/// happened in words; they never carry a secret.
pub async fn event<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    warning: bool,
    reason: &str,
    action: &str,
    note: String,
) {
    let recorder = Recorder::new(
        ctx.client.clone(),
        Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &obj.object_ref(&())).await {
        crate::run::log(
            "warn",
            "could not write an event",
            &[("reason", reason.into()), ("error", e.to_string())],
        );
    }
}

/// Writes `status` into the object's status subresource.
pub async fn apply_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        // The API server takes an apply only with the name of its URL.
        "metadata": {"name": name},
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}
