//! The sources built into the repository crate, each a user of the session
//! API ([`crate::session`]) like any other: file systems and byte streams.
//! Kubernetes resources and etcd snapshots live in their own crates and
//! plug in the same way.

mod fs;
mod stream;

pub use fs::{FsBackup, FsBackupResult};
