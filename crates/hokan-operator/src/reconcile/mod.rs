//! The reconcilers, one per kind, each a function of the object and the
//! world that converges and never assumes it ran before; kube-rs's
//! `Controller` calls them ([`crate::run`]).
//!
//! Status is written with server-side apply under one field manager, so
//! the operator owns exactly the status fields it writes and a field it
//! stops writing disappears.

pub mod backup;
pub mod copies;
mod hooks;
pub mod policy;
pub mod repository;
pub mod restore;
mod scale;
pub mod snapshot_restore;
pub mod snapshots;
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
    /// Pods a Job may make after a failed one (its `backoffLimit`), where
    /// a second attempt is safe; Kubernetes spaces them with its backoff.
    pub job_retries: i32,
    /// Failed reconciles in a row, for [`error_policy`]'s backoff.
    pub failures: Failures,
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

/// Failed reconciles in a row, per object; a success clears its count.
#[derive(Debug, Default)]
pub struct Failures(std::sync::Mutex<std::collections::HashMap<String, u32>>);

impl Failures {
    /// Counts one more failure of `key`; the count now.
    fn bump(&self, key: String) -> u32 {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets the failures of `key`.
    fn clear(&self, key: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

/// The wait before the `n`th retry in a row: 5 s, doubling, at most five
/// minutes (an API server refusing for a while is not asked again and again).
pub fn backoff(n: u32) -> Duration {
    let secs = 5u64.saturating_mul(1 << n.saturating_sub(1).min(6));
    Duration::from_secs(secs.min(300))
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

/// Retries after an error with [`backoff`] by the object's failures in a
/// row; one error never stops the controller.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    // The error itself is logged where the controller's results are read.
    let _ = err;
    let wait = backoff(ctx.failures.bump(key(obj.as_ref())));
    Action::requeue(wait)
}

/// `reconcile`, with the object's failure count cleared when it succeeds.
pub async fn counted<K, F, Fut>(
    reconcile: F,
    obj: Arc<K>,
    ctx: Arc<Context>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, Error>>,
{
    let k = key(obj.as_ref());
    let result = reconcile(obj, ctx.clone()).await;
    if result.is_ok() {
        ctx.failures.clear(&k);
    }
    result
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

/// A run's Job: made once under its name, found by it afterwards; a Job
/// missing after the run recorded it is lost (`Err` with the reason, the
/// run to be made `again`). The first time, the run is started with it:
/// an event with `note`, and its status written.
pub(crate) async fn ensure_job<K, S>(
    ctx: &Context,
    ns: &str,
    run: &K,
    want: k8s_openapi::api::batch::v1::Job,
    status: &mut S,
    note: String,
    again: &str,
) -> Result<Result<k8s_openapi::api::batch::v1::Job, String>, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    S: crate::runs::RunStatus + Serialize,
{
    use k8s_openapi::api::batch::v1::Job;
    use kube::ResourceExt;
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let name = want.name_any();
    let job = match jobs.get_opt(&name).await? {
        Some(j) => j,
        None if status.parts().job.is_some() => {
            return Ok(Err(format!(
                "Job {name} was lost (deleted before it finished); {again}"
            )));
        }
        None => jobs.create(&Default::default(), &want).await?,
    };
    let job_ref = crate::api::common::JobRef {
        name,
        namespace: ns.to_string(),
        uid: job.uid(),
    };
    if crate::runs::begin(
        status,
        Some(job_ref),
        run.meta().generation,
        ctx.clock.now(),
    ) {
        event(ctx, run, false, "Started", "CreateJob", note).await;
        let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
        apply_status(&api, &run.name_any(), status).await?;
    }
    Ok(Ok(job))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_a_success_starts_over() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        let f = Failures::default();
        assert_eq!(f.bump("Backup/ns/a".into()), 1);
        assert_eq!(f.bump("Backup/ns/a".into()), 2);
        assert_eq!(f.bump("Backup/ns/b".into()), 1);
        f.clear("Backup/ns/a");
        assert_eq!(f.bump("Backup/ns/a".into()), 1);
    }
}
