//! hokan in the cluster: the custom resources and the operator that
//! reconciles them, on kube-rs's runtime, with the same library calls the
//! `hokan` command makes.
//!
//! | module | what it holds |
//! |--------|---------------|
//! | [`api`] | the CRD types: `Repository`, `BackupPolicy`, `Backup`, `Restore` |
//! | [`clock`] | the injectable clock every decision reads |
//! | [`schedule`] | cron in a time zone, what is due, run names |
//! | [`convert`] | resource fields → the libraries' options (retention, filters) |
//! | [`runs`] | a run's phase: the one-way transitions |
//! | [`jobs`] | the Jobs runs are made of (etcd: `cluster-backup.sh`'s way) |
//! | [`restore_jobs`] | the Job of an etcd restore, on its node |
//! | [`volume_jobs`] | pod volumes: a backup Job per node, a restore Job mounting the claim |
//! | [`work`] | work done in-process: resource backups, retention, a run's snapshots |
//! | [`metrics`] | `/metrics` with the names `hokan --metrics-file` writes |
//! | [`http`] | the server for `/metrics`, `/healthz`, `/readyz` |
//! | [`reconcile`] | one reconcile per kind, and what they share |
//! | [`lease`] | one active replica through a Lease |
//! | [`run`] | the runtime: probes, Lease, controllers, clean stop |
//! | [`rbac`] | RBAC evaluated as the API server does, to check `deploy/` |
//! | [`snapshot_jobs`] | a policy's CSI snapshots and copies: the objects |
//!
//! # Example
//!
//! What a policy does at a moment, and the name of the run it makes:
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use hokan_operator::schedule::{Due, Schedule, due, run_name};
//!
//! // OpenShift's example: 04:20 every day, Tokyo time (19:20 UTC).
//! let s = Schedule::parse("20 4 * * *", Some("Asia/Tokyo")).unwrap();
//! let created = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
//! let last = Some(Utc.with_ymd_and_hms(2026, 12, 5, 19, 20, 0).unwrap());
//! // The operator was down over the 6th's tick and comes back at 20:00 UTC:
//! // the missed tick runs once, now.
//! let now = Utc.with_ymd_and_hms(2026, 12, 6, 20, 0, 0).unwrap();
//! let Due::Run { tick, .. } = due(&s, last, created, now, None) else { panic!() };
//! assert_eq!(run_name("etcd", tick), "etcd-20261206192000");
//! // With a 30-minute starting deadline it is skipped instead.
//! assert!(matches!(due(&s, last, created, now, Some(1800)), Due::Skip { .. }));
//! ```

#![warn(missing_docs)]

pub mod api;
pub mod clock;
pub mod convert;
pub mod http;
pub mod jobs;
pub mod lease;
pub mod metrics;
pub mod rbac;
pub mod reconcile;
pub mod restore_jobs;
pub mod run;
pub mod runs;
pub mod schedule;
pub mod snapshot_jobs;
pub mod volume_jobs;
pub mod work;
