//! `Repository`: open it as `hokan --repo` does, with the password from
//! its Secret, list its snapshots, and say in status what was found.
//! Checked again every `checkIntervalSeconds`, and at once when the spec
//! changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::{Context, Error, apply_status};
use crate::api::common::{SecretKeyRef, condition, set_condition};
use crate::api::repository::{Repository, RepositoryStatus};
use crate::clock::{from_time, to_time};

/// The default time between checks.
pub const DEFAULT_INTERVAL_SECS: u32 = 300;

/// What opening the repository found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The format version.
    pub format: u32,
    /// Snapshots per source kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Snapshot files that could not be read.
    pub unreadable: usize,
    /// The immutable retention the repository was made with, in days.
    pub immutable_days: Option<u32>,
}

/// Opens the repository and lists its snapshots: the calls `hokan
/// snapshots` makes. Blocking; the error is in words, with the fix.
pub fn check(
    location: &str,
    password: &[u8],
    options: hokan_repo::OpenOptions,
) -> Result<Found, String> {
    let repo =
        hokan_repo::Repository::open(location, password, options).map_err(|e| e.to_string())?;
    let list = repo.snapshot_list().map_err(|e| e.to_string())?;
    let mut by_kind = BTreeMap::new();
    for e in &list.entries {
        *by_kind
            .entry(e.snapshot.source.name().to_string())
            .or_insert(0) += 1;
    }
    Ok(Found {
        format: u32::from(repo.format().number()),
        by_kind,
        unreadable: list.unreadable.len(),
        immutable_days: repo
            .config()
            .immutable
            .as_ref()
            .map(|i| (i.retention_secs / 86_400) as u32),
    })
}

/// The status after a check at `now` that found `result`.
pub fn status_after(
    repo: &Repository,
    result: Result<Found, String>,
    now: DateTime<Utc>,
) -> RepositoryStatus {
    let generation = repo.meta().generation;
    let mut s = repo.status.clone().unwrap_or_default();
    s.last_check_time = Some(to_time(now));
    s.observed_generation = generation;
    match result {
        Ok(found) => {
            s.reachable = true;
            s.format = Some(found.format);
            s.snapshot_count = Some(found.by_kind.values().sum());
            s.snapshots_by_kind = found.by_kind;
            s.immutable_retention_days = found.immutable_days;
            let mut notes = Vec::new();
            if found.unreadable > 0 {
                notes.push(format!(
                    "{} snapshot file(s) could not be read; run a check of the repository",
                    found.unreadable
                ));
            }
            let want = repo.spec.immutable.as_ref().map(|i| i.retention_days);
            if want != found.immutable_days {
                notes.push(format!(
                    "spec.immutable says {} but the repository was made with {}; the \
                     repository's own setting applies",
                    days(want),
                    days(found.immutable_days)
                ));
            }
            s.message = (!notes.is_empty()).then(|| notes.join("; "));
            set_condition(
                &mut s.conditions,
                condition::READY,
                true,
                "Opened",
                s.message.as_deref().unwrap_or("opened and listed"),
                generation,
                to_time(now),
            );
        }
        Err(reason) => {
            s.reachable = false;
            s.message = Some(reason.clone());
            set_condition(
                &mut s.conditions,
                condition::READY,
                false,
                "Unreachable",
                &reason,
                generation,
                to_time(now),
            );
        }
    }
    s
}

fn days(d: Option<u32>) -> String {
    match d {
        Some(d) => format!("an object lock of {d} day(s)"),
        None => "no object lock".into(),
    }
}

/// How long until the next check is due: none when due now (never
/// checked, the spec changed since, or the interval passed).
pub fn until_next_check(repo: &Repository, now: DateTime<Utc>) -> Option<Duration> {
    let s = repo.status.as_ref()?;
    if s.observed_generation != repo.meta().generation {
        return None;
    }
    let last = from_time(s.last_check_time.as_ref()?);
    let interval = i64::from(
        repo.spec
            .check_interval_seconds
            .unwrap_or(DEFAULT_INTERVAL_SECS),
    );
    let left = (last + chrono::TimeDelta::seconds(interval) - now).num_seconds();
    (left > 0).then(|| Duration::from_secs(left as u64))
}

/// Reads a Secret's key, or says what is missing and how to fix it.
pub async fn secret_value(
    client: &kube::Client,
    namespace: &str,
    r: &SecretKeyRef,
) -> Result<Vec<u8>, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = match api.get_opt(&r.name).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(format!(
                "Secret {namespace}/{} does not exist; create it with the key {}",
                r.name, r.key
            ));
        }
        Err(e) => {
            return Err(format!(
                "Secret {namespace}/{} could not be read ({e}); the operator needs get on \
                 secrets in {namespace} (a RoleBinding to hokan-operator-secrets)",
                r.name
            ));
        }
    };
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .map(|b| b.0.clone())
        .ok_or_else(|| format!("Secret {namespace}/{} has no key {}", r.name, r.key))
}

/// How the operator opens `repo` in its own process: its options with the
/// repository's `config` and the keys of its credentials Secret as the
/// store's settings, over the operator's environment — what a Job of the
/// repository gets as its environment. (A web identity reaches Jobs only:
/// in-process work uses the operator's own identity.)
pub async fn open_options(
    ctx: &Context,
    ns: &str,
    repo: &Repository,
) -> Result<hokan_repo::OpenOptions, String> {
    let mut options = ctx.open_options.clone();
    options.store_settings.extend(repo.spec.config.clone());
    let Some(name) = repo
        .spec
        .credentials
        .as_ref()
        .and_then(|c| c.secret_name.as_ref())
    else {
        return Ok(options);
    };
    let what = format!("the store's credentials (Secret {ns}/{name})");
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| {
            format!(
                "{what} could not be read ({e}); the operator needs get on secrets in {ns} \
                 (a RoleBinding to hokan-operator-secrets)"
            )
        })?
        .ok_or_else(|| format!("{what} does not exist; create it with the store's variables"))?;
    for (key, value) in secret.data.unwrap_or_default() {
        let text = String::from_utf8(value.0)
            .map_err(|_| format!("{what}: the value of {key} is not UTF-8 text"))?;
        options.store_settings.insert(key, text);
    }
    Ok(options)
}

/// Opens `repo` in the operator's process with its index loaded, as runs
/// read and change it (retention, their snapshots). Blocking work in place.
pub async fn open_indexed(
    ctx: &Context,
    ns: &str,
    repo: &Repository,
) -> Result<hokan_repo::IndexedRepository, String> {
    let password = secret_value(&ctx.client, ns, &repo.spec.password_secret_ref).await?;
    let options = open_options(ctx, ns, repo).await?;
    let location = repo.spec.location.clone();
    tokio::task::block_in_place(|| {
        hokan_repo::Repository::open(&location, &password, options).and_then(|r| r.load_index())
    })
    .map_err(|e| e.to_string())
}

/// The reconcile: check when due, write status, come back at the next check.
pub async fn reconcile(repo: Arc<Repository>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = repo.name_any();
    let ns = repo
        .namespace()
        .ok_or_else(|| Error::NoNamespace(format!("Repository {name}")))?;
    let now = ctx.clock.now();
    if let Some(wait) = until_next_check(&repo, now) {
        return Ok(Action::requeue(wait));
    }
    let result = match secret_value(&ctx.client, &ns, &repo.spec.password_secret_ref).await {
        Err(reason) => Err(format!("the password: {reason}")),
        Ok(password) => match open_options(&ctx, &ns, &repo).await {
            Err(reason) => Err(reason),
            Ok(options) => {
                let location = repo.spec.location.clone();
                tokio::task::spawn_blocking(move || check(&location, &password, options))
                    .await
                    .map_err(|e| Error::Blocking(e.to_string()))?
            }
        },
    };
    let status = status_after(&repo, result, ctx.clock.now());
    let api: Api<Repository> = Api::namespaced(ctx.client.clone(), &ns);
    apply_status(&api, &name, &status).await?;
    let interval = repo
        .spec
        .check_interval_seconds
        .unwrap_or(DEFAULT_INTERVAL_SECS);
    Ok(Action::requeue(Duration::from_secs(u64::from(interval))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::repository::{Immutability, RepositorySpec};
    use chrono::TimeZone;
    use hokan_repo::{CacheMode, InitOptions, KdfParams, OpenOptions};

    fn options() -> OpenOptions {
        OpenOptions {
            cache: CacheMode::Off,
            ..Default::default()
        }
    }

    fn resource(location: &str, generation: i64) -> Repository {
        let mut r = Repository::new(
            "main",
            RepositorySpec {
                location: location.into(),
                ..Default::default()
            },
        );
        r.metadata.generation = Some(generation);
        r
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 3, 0, 0).unwrap()
    }

    #[test]
    fn a_real_repository_opens_and_counts_its_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("repo");
        let loc = loc.to_str().unwrap();
        let init = InitOptions {
            kdf: KdfParams {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            ..Default::default()
        };
        hokan_repo::Repository::init(loc, b"pw", init, options()).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("f"), b"hello").unwrap();
        let mut repo = hokan_repo::Repository::open(loc, b"pw", options())
            .unwrap()
            .load_index()
            .unwrap();
        repo.backup_paths(
            std::slice::from_ref(&data),
            &Default::default(),
            &hokan_core::fs::NoProgress,
        )
        .unwrap();
        drop(repo);

        let found = check(loc, b"pw", options()).unwrap();
        assert_eq!(found.by_kind.get("fs"), Some(&1));
        assert_eq!(found.format, 2);
        let r = resource(loc, 1);
        let s = status_after(&r, Ok(found), now());
        assert!(s.reachable);
        assert_eq!(s.snapshot_count, Some(1));
        assert_eq!(s.conditions[0].status, "True");
        assert_eq!(s.message, None);

        let wrong = check(loc, b"not it", options()).unwrap_err();
        let s = status_after(&r, Err(wrong.clone()), now());
        assert!(!s.reachable);
        assert_eq!(s.conditions[0].reason, "Unreachable");
        assert!(wrong.to_lowercase().contains("password"), "{wrong}");
    }

    #[test]
    fn a_missing_repository_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("nothing");
        let e = check(loc.to_str().unwrap(), b"pw", options()).unwrap_err();
        assert!(e.contains("no hokan repository"), "{e}");
    }

    #[test]
    fn an_immutable_mismatch_is_reported_not_fatal() {
        let mut r = resource("/r", 1);
        r.spec.immutable = Some(Immutability { retention_days: 30 });
        let s = status_after(&r, Ok(Found::default()), now());
        assert!(s.reachable);
        assert!(s.message.unwrap().contains("30 day(s)"));
    }

    #[test]
    fn checks_come_at_the_interval_and_on_spec_changes() {
        let mut r = resource("/r", 1);
        assert_eq!(until_next_check(&r, now()), None, "never checked");
        r.status = Some(status_after(&r, Ok(Found::default()), now()));
        let later = now() + chrono::TimeDelta::seconds(100);
        assert_eq!(until_next_check(&r, later), Some(Duration::from_secs(200)));
        assert_eq!(
            until_next_check(&r, now() + chrono::TimeDelta::seconds(300)),
            None
        );
        r.metadata.generation = Some(2);
        assert_eq!(until_next_check(&r, later), None, "spec changed");
    }
}
