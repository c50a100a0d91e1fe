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
//! | [`work`] | work done in-process: resource backups, retention, a run's snapshots |
//! | [`metrics`] | `/metrics` with the names `hokan --metrics-file` writes |
//! | [`http`] | the server for `/metrics`, `/healthz`, `/readyz` |
//! | [`reconcile`] | one reconcile per kind, and what they share |
//! | [`lease`] | one active replica through a Lease |
//! | [`run`] | the runtime: probes, Lease, controllers, clean stop |

pub mod api;
pub mod clock;
pub mod convert;
pub mod http;
pub mod jobs;
pub mod lease;
pub mod metrics;
pub mod reconcile;
pub mod run;
pub mod runs;
pub mod schedule;
pub mod work;
