//! The operator's runtime: the probe and metrics server, the Lease, one
//! kube-rs `Controller` per kind, and a clean stop.
//!
//! Order of events: serve `/healthz` at once; `/readyz` once the API
//! server answers; wait for the Lease (a standby replica waits here,
//! ready); run the controllers while renewing the Lease; on a stop signal
//! (SIGTERM) or a lost Lease, let running reconciles finish
//! (`graceful_shutdown_on`), then release the Lease.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use k8s_openapi::api::batch::v1::Job;

use crate::api::{Backup, BackupPolicy, Repository, Restore};
use crate::clock::Clock;
use crate::http::{self, Endpoints};
use crate::lease::{self, Elector};
use crate::reconcile::policy::POLICY_LABEL;
use crate::reconcile::{self, Context, counted, error_policy};

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub listen: SocketAddr,
    /// The operator's own namespace, where its Lease lives.
    pub namespace: String,
    /// This replica's name in the Lease (its pod name).
    pub identity: String,
    /// The Lease's name.
    pub lease_name: String,
    /// How repositories are opened.
    pub open_options: hokan_repo::OpenOptions,
    /// The image Jobs run.
    pub image: String,
    /// Backups reconciled at once (each may back up resources in-process);
    /// more wait their turn. Jobs already started run on regardless.
    pub max_concurrent_runs: u16,
    /// Pods a Job may make after a failed one, where a second attempt is
    /// safe (etcd backups, resource restores); Kubernetes's backoff spaces
    /// them (10 s, 20 s, 40 s, ...).
    pub job_retries: i32,
    /// How long running reconciles may take to finish after the stop
    /// signal before they are dropped (keep it below the pod's
    /// `terminationGracePeriodSeconds`). A controller whose first list
    /// never succeeded (its CRD missing, its RBAC denied) only stops by this
    /// bound: kube-runtime holds its queue until the first list.
    pub shutdown_grace: Duration,
}

/// Why the operator stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The probe server's address could not be bound.
    #[error("cannot serve on {addr}: {source}; choose another --listen address")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The reason.
        source: std::io::Error,
    },
    /// The Lease was lost (another replica took it, or the API server
    /// could not be reached to renew it): stopping is the safe answer.
    #[error("lost the Lease {0}; stopped so that only one replica works")]
    LostLease(String),
}

/// One line of structured log on stderr (JSON, as log collectors read it).
pub fn log(level: &str, msg: &str, fields: &[(&str, String)]) {
    let mut o = serde_json::Map::new();
    o.insert("ts".into(), chrono::Utc::now().to_rfc3339().into());
    o.insert("level".into(), level.into());
    o.insert("msg".into(), msg.into());
    for (k, v) in fields {
        o.insert((*k).into(), v.clone().into());
    }
    eprintln!("{}", serde_json::Value::Object(o));
}

/// Resolves when `rx` turns true (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A stream of the clock's jumps (a test's clock), so every policy is
/// looked at again when the time moves.
fn jumps(clock: &dyn Clock) -> Option<impl Stream<Item = ()> + Send + 'static> {
    let rx = clock.jumps()?;
    Some(futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    }))
}

/// Waits until the API server answers (true) or the stop signal (false).
async fn until_ready(
    client: &Client,
    endpoints: &Endpoints,
    shutdown: &watch::Receiver<bool>,
) -> bool {
    loop {
        if *shutdown.borrow() {
            return false;
        }
        match client.apiserver_version().await {
            Ok(v) => {
                log("info", "API server answers", &[("version", v.git_version)]);
                endpoints.health.set_ready(true);
                return true;
            }
            Err(e) => log(
                "warn",
                "API server does not answer yet",
                &[("error", e.to_string())],
            ),
        }
        let mut s = shutdown.clone();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.wait_for(|s| *s)).await;
    }
}

/// Waits until this replica holds the Lease (true) or the stop signal (false).
async fn until_leading(elector: &Elector, shutdown: &watch::Receiver<bool>) -> bool {
    loop {
        if *shutdown.borrow() {
            return false;
        }
        match elector.try_hold().await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(e) => log(
                "warn",
                "cannot reach the Lease",
                &[("error", e.to_string())],
            ),
        }
        let mut s = shutdown.clone();
        let _ = tokio::time::timeout(lease::RENEW_EVERY, s.wait_for(|s| *s)).await;
    }
}

/// Runs the operator until `shutdown` turns true; `endpoints` (the
/// caller's, to read metrics and probes) are served first.
pub async fn run(
    client: Client,
    clock: Arc<dyn Clock>,
    options: RunOptions,
    endpoints: Endpoints,
    shutdown: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let (addr, server) = http::serve(options.listen, endpoints.clone(), shutdown.clone())
        .await
        .map_err(|source| RunError::Listen {
            addr: options.listen,
            source,
        })?;
    let server = tokio::spawn(server);
    log(
        "info",
        "serving probes and metrics",
        &[("addr", addr.to_string())],
    );

    // Ready once the API server answers; then wait for the Lease.
    if !until_ready(&client, &endpoints, &shutdown).await {
        let _ = server.await;
        return Ok(());
    }
    let elector = Elector::new(
        client.clone(),
        &options.namespace,
        &options.lease_name,
        &options.identity,
    );
    let lease_id = format!("{}/{}", options.namespace, options.lease_name);
    if !until_leading(&elector, &shutdown).await {
        let _ = server.await;
        return Ok(());
    }
    endpoints.health.set_leading(true);
    log(
        "info",
        "holding the Lease; reconciling",
        &[("lease", lease_id.clone())],
    );

    // Stop on the signal, or when the Lease is lost.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let forward = {
        let stop_tx = stop_tx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            stopped(shutdown).await;
            stop_tx.send_replace(true);
        })
    };
    let renew = {
        let stop_tx = stop_tx.clone();
        let mut stop_rx = stop_rx.clone();
        let elector = Elector::new(
            client.clone(),
            &options.namespace,
            &options.lease_name,
            &options.identity,
        );
        tokio::spawn(async move {
            let mut last_ok = tokio::time::Instant::now();
            let limit = Duration::from_secs(lease::DURATION_SECS as u64);
            loop {
                if tokio::time::timeout(lease::RENEW_EVERY, stop_rx.wait_for(|s| *s))
                    .await
                    .is_ok()
                {
                    return false;
                }
                match elector.try_hold().await {
                    Ok(true) => last_ok = tokio::time::Instant::now(),
                    Ok(false) => {
                        stop_tx.send_replace(true);
                        return true;
                    }
                    Err(_) if last_ok.elapsed() > limit => {
                        stop_tx.send_replace(true);
                        return true;
                    }
                    Err(_) => {}
                }
            }
        })
    };

    let ctx = Arc::new(Context {
        client: client.clone(),
        clock: clock.clone(),
        endpoints: endpoints.clone(),
        open_options: options.open_options.clone(),
        image: options.image.clone(),
        job_retries: options.job_retries,
        failures: Default::default(),
    });
    {
        let work = controllers(
            client,
            clock.as_ref(),
            ctx,
            stop_rx.clone(),
            options.max_concurrent_runs,
        );
        tokio::pin!(work);
        let grace = options.shutdown_grace;
        let bounded = async {
            stopped(stop_rx.clone()).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            _ = &mut work => {}
            _ = bounded => log(
                "warn",
                "reconciles still running after the grace period; dropping them",
                &[("grace_seconds", grace.as_secs().to_string())],
            ),
        }
    }

    stop_tx.send_replace(true);
    forward.abort();
    let lost = renew.await.unwrap_or(false);
    endpoints.health.set_leading(false);
    if let Err(e) = elector.release().await {
        log(
            "warn",
            "could not release the Lease; it expires by itself",
            &[("error", e.to_string())],
        );
    }
    let _ = server.await;
    if lost {
        return Err(RunError::LostLease(lease_id));
    }
    log("info", "stopped cleanly", &[]);
    Ok(())
}

/// Logs a failed reconcile (it is retried by [`error_policy`]).
async fn report<T, E: std::fmt::Display>(kind: &'static str, r: Result<T, E>) {
    if let Err(e) = r {
        log(
            "warn",
            "reconcile failed",
            &[("kind", kind.into()), ("error", e.to_string())],
        );
    }
}

/// Runs one controller per kind until `stop` turns true.
async fn controllers(
    client: Client,
    clock: &dyn Clock,
    ctx: Arc<Context>,
    stop: watch::Receiver<bool>,
    max_runs: u16,
) {
    let repositories = Controller::new(
        Api::<Repository>::all(client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(stopped(stop.clone()))
    .run(
        |o, c| counted(reconcile::repository::reconcile, o, c),
        error_policy,
        ctx.clone(),
    )
    .for_each(|r| report("Repository", r));

    // A policy is looked at again when one of its Backups changes (its
    // status lists them) and, with a test's clock, when the time jumps.
    let mut policies = Controller::new(
        Api::<BackupPolicy>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<Backup>::all(client.clone()),
        watcher::Config::default().labels(POLICY_LABEL),
        |b: Backup| {
            let ns = b.namespace()?;
            let policy = b.labels().get(POLICY_LABEL)?.clone();
            Some(ObjectRef::<BackupPolicy>::new(&policy).within(&ns))
        },
    )
    .graceful_shutdown_on(stopped(stop.clone()));
    if let Some(j) = jumps(clock) {
        policies = policies.reconcile_all_on(j);
    }
    let policies = policies
        .run(
            |o, c| counted(reconcile::policy::reconcile, o, c),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| report("BackupPolicy", r));

    // A run is woken when its Job changes.
    let backups = Controller::new(
        Api::<Backup>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(kube::runtime::controller::Config::default().concurrency(max_runs.max(1)))
    .owns(
        Api::<Job>::all(client.clone()),
        watcher::Config::default().labels(crate::jobs::RUN_LABEL),
    )
    .graceful_shutdown_on(stopped(stop.clone()))
    .run(
        |o, c| counted(reconcile::backup::reconcile, o, c),
        error_policy,
        ctx.clone(),
    )
    .for_each(|r| report("Backup", r));

    // A restore is woken when its Job changes, and when the Backup it
    // waits for changes (it starts once that Backup has finished).
    let restores = Controller::new(
        Api::<Restore>::all(client.clone()),
        watcher::Config::default(),
    );
    let waiting = restores.store();
    let restores = restores
        .watches(
            Api::<Backup>::all(client.clone()),
            watcher::Config::default(),
            move |b: Backup| {
                let ns = b.namespace();
                let name = b.name_any();
                waiting
                    .state()
                    .into_iter()
                    .filter(|r| r.namespace() == ns && r.spec.backup_name.as_deref() == Some(&name))
                    .map(|r| ObjectRef::from_obj(r.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .with_config(kube::runtime::controller::Config::default().concurrency(max_runs.max(1)))
        .owns(
            Api::<Job>::all(client.clone()),
            watcher::Config::default().labels(crate::jobs::RUN_LABEL),
        )
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(
            |o, c| counted(reconcile::restore::reconcile, o, c),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| report("Restore", r));

    futures::join!(repositories, policies, backups, restores);
}
