//! hokan in the cluster: the custom resources and the operator that
//! reconciles them, on kube-rs's runtime, with the same library calls the
//! `hokan` command makes.
//!
//! | module | what it holds |
//! |--------|---------------|
//! | [`api`] | the CRD types: `Repository`, `BackupPolicy`, `Backup`, `Restore` |
//! | [`clock`] | the injectable clock every decision reads |
//! | [`schedule`] | cron in a time zone, what is due, run names |

pub mod api;
pub mod clock;
pub mod schedule;
