//! Where a repository lives: a location string, the backend it names, and
//! a small synchronous facade with retries and clear errors.
//!
//! Locations:
//!
//! | location                                | store                                            |
//! |-----------------------------------------|--------------------------------------------------|
//! | `/path`, `./path`, `file:///path`       | a local directory (the default), [`LocalStore`]  |
//! | `s3://bucket/prefix`                    | S3; endpoint, region, credentials from `AWS_*`   |
//! | `s3:http://host:port/bucket/prefix`     | an S3-compatible server at an explicit endpoint  |
//! | `gs://bucket/prefix`                    | Google Cloud Storage, credentials from `GOOGLE_*`|
//! | `az://container/prefix`                 | Azure Blob Storage, credentials from `AZURE_*`   |
//! | `memory://name`                         | in-process memory, shared by name (tests)        |
//!
//! Remote stores go through the `object_store` crate; their I/O is async
//! (tokio), and this facade runs it on the repository's runtime and blocks
//! the calling thread, which is never a runtime thread: the data path calls
//! in from rayon. Local directories are written by [`LocalStore`], which
//! flushes every object to stable storage before it is named.
//!
//! Contract of every backend: `put` returns `Ok` only once the object is
//! stored durably and whole under its name; readers see all of an object
//! or nothing.
//!
//! In immutable mode ([`Store::set_immutable`]) every `put` is a
//! conditional create (S3 `If-None-Match: *`, GCS `ifGenerationMatch=0`,
//! Azure `If-None-Match: *`, a hard link for local directories): an object
//! already under the name is left alone, which is right because names are
//! the hash of the content (its size is checked). `delete` is refused
//! without a request; [`Store::remove`] deletes only once the object's
//! last-modified time plus the retention has passed, and reports a delete
//! the store refuses as kept.

mod errors;
mod local;
mod location;

pub use local::LocalStore;
pub use location::Location;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path as ObjPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};
use errors::{Classified, Op};

/// How hard to try before an operation fails as unreachable.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled after each failure.
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_millis(250),
        }
    }
}

/// The process-wide in-memory stores, by name.
fn memory_store(name: &str) -> Arc<InMemory> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    let mut map = STORES
        .get_or_init(Default::default)
        .lock()
        .expect("memory stores");
    map.entry(name.to_string())
        .or_insert_with(|| Arc::new(InMemory::new()))
        .clone()
}

/// The tokio runtime all stores of this process share: two workers are
/// plenty to keep dozens of requests in flight.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hokan-io")
            .enable_all()
            .build()
            .expect("starting the I/O runtime")
    })
}

/// One object listed in a directory of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The object's name within the directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written (Unix seconds).
    pub modified: i64,
}

#[derive(Clone, Debug)]
enum Backend {
    Local(Arc<LocalStore>),
    Remote(Arc<dyn ObjectStore>),
}

/// A repository's store: a local directory, or an `object_store` backend
/// under the repository's prefix, with retries and errors that name the
/// location.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    location: Location,
    retry: RetryPolicy,
    /// Immutable mode: the store's object lock retention, in seconds.
    immutable: Option<u64>,
}

/// What [`Store::remove`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// The object is gone (or was gone already).
    Deleted,
    /// Kept: the object lock still holds it until `until` (Unix seconds),
    /// or, with `None`, the store refused the delete.
    Kept {
        /// When the retention ends, if known.
        until: Option<i64>,
    },
}

impl Removal {
    /// Whether the object is gone.
    pub fn deleted(self) -> bool {
        self == Removal::Deleted
    }
}

impl Store {
    /// Connects to the store a location names. `create` makes a missing
    /// local directory (for `init`); otherwise a missing directory means
    /// there is no repository.
    pub fn connect(location: &Location, create: bool, retry: RetryPolicy) -> Result<Self> {
        Self::connect_with(location, create, retry, &StoreSettings::new())
    }

    /// [`connect`](Self::connect) with `settings` over the environment:
    /// the store's variables by their environment names
    /// (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, `GOOGLE_SERVICE_ACCOUNT_KEY`,
    /// `AZURE_STORAGE_ACCOUNT_KEY`, ...), each taking precedence over the
    /// process's variable of that name. A program serving several
    /// repositories (the operator) passes each one's credentials here, as
    /// the environment is one per process. Names the backend does not know
    /// are ignored, as unrelated environment variables are.
    pub fn connect_with(
        location: &Location,
        create: bool,
        retry: RetryPolicy,
        settings: &StoreSettings,
    ) -> Result<Self> {
        let setting = |name: &str| {
            settings
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        };
        let map_build = |e: object_store::Error| Error::InvalidLocation {
            location: location.to_string(),
            reason: e.to_string(),
        };
        // The stores' own HTTP retries handle a blip; ours (above them)
        // handle longer outages and every backend alike.
        let http_retry = object_store::RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(15),
            ..Default::default()
        };
        let with_prefix = |store: Arc<dyn ObjectStore>, prefix: &str| -> Arc<dyn ObjectStore> {
            if prefix.is_empty() {
                store
            } else {
                Arc::new(PrefixStore::new(store, prefix))
            }
        };
        let remote: Arc<dyn ObjectStore> = match location {
            Location::Local(dir) => {
                let not_repo = |reason: String| Error::NotARepository {
                    location: location.to_string(),
                    reason,
                };
                match std::fs::metadata(dir) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(not_repo(
                            "it is a file, not a directory (a local repository is a directory)"
                                .into(),
                        ));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            local::failure_at(dir, "creating the repository directory", e)
                        })?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(not_repo("the directory does not exist".into()));
                    }
                    Err(e) => {
                        return Err(local::failure_at(dir, "looking up the repository", e));
                    }
                }
                return Ok(Store {
                    backend: Backend::Local(Arc::new(LocalStore::new(dir.clone()))),
                    location: location.clone(),
                    retry,
                    immutable: None,
                });
            }
            Location::S3 {
                endpoint,
                bucket,
                prefix,
            } => {
                let mut b = s3_builder_from_env();
                for (k, v) in settings {
                    if let Ok(key) = k.to_ascii_lowercase().parse() {
                        b = b.with_config(key, v);
                    }
                }
                b = b.with_bucket_name(bucket).with_retry(http_retry);
                // restic and rclone read AWS_DEFAULT_REGION; object_store reads AWS_REGION.
                if setting("AWS_REGION").is_none()
                    && let Some(r) = setting("AWS_DEFAULT_REGION")
                {
                    b = b.with_region(r);
                }
                let endpoint = endpoint.clone().or_else(|| setting("AWS_ENDPOINT_URL"));
                if let Some(e) = endpoint {
                    b = b.with_allow_http(e.starts_with("http://")).with_endpoint(e);
                }
                with_prefix(Arc::new(b.build().map_err(map_build)?), prefix)
            }
            Location::Gcs { bucket, prefix } => {
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env();
                for (k, v) in settings {
                    if let Ok(key) = k.to_ascii_lowercase().parse() {
                        b = b.with_config(key, v);
                    }
                }
                let b = b.with_bucket_name(bucket).with_retry(http_retry);
                with_prefix(Arc::new(b.build().map_err(map_build)?), prefix)
            }
            Location::Azure { container, prefix } => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env();
                for (k, v) in settings {
                    if let Ok(key) = k.to_ascii_lowercase().parse() {
                        b = b.with_config(key, v);
                    }
                }
                let b = b.with_container_name(container).with_retry(http_retry);
                with_prefix(Arc::new(b.build().map_err(map_build)?), prefix)
            }
            Location::Memory(name) => memory_store(name),
        };
        Ok(Store {
            backend: Backend::Remote(remote),
            location: location.clone(),
            retry,
            immutable: None,
        })
    }

    /// A store over any `object_store` backend (fault injection in tests,
    /// custom backends in embedding programs).
    pub fn from_object_store(
        inner: Arc<dyn ObjectStore>,
        location: Location,
        retry: RetryPolicy,
    ) -> Self {
        Store {
            backend: Backend::Remote(inner),
            location,
            retry,
            immutable: None,
        }
    }

    /// Switches immutable mode on (with the store's retention in seconds)
    /// or off; see the module documentation.
    pub fn set_immutable(&mut self, retention_secs: Option<u64>) {
        self.immutable = retention_secs;
    }

    /// The retention in seconds, in immutable mode.
    pub fn immutable(&self) -> Option<u64> {
        self.immutable
    }

    /// The location, for messages.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The local directory, for a local repository.
    pub fn local(&self) -> Option<&LocalStore> {
        match &self.backend {
            Backend::Local(l) => Some(l),
            Backend::Remote(_) => None,
        }
    }

    fn remote(&self) -> &Arc<dyn ObjectStore> {
        match &self.backend {
            Backend::Remote(r) => r,
            Backend::Local(_) => unreachable!("local stores answer before"),
        }
    }

    /// Reads a whole object; `Ok(None)` if there is none.
    pub fn get_opt(&self, path: &str) -> Result<Option<Bytes>> {
        if let Some(l) = self.local() {
            return l.get(path);
        }
        runtime().block_on(self.get_opt_async(path))
    }

    /// [`get_opt`](Self::get_opt) for async callers.
    pub async fn get_opt_async(&self, path: &str) -> Result<Option<Bytes>> {
        if let Backend::Local(l) = &self.backend {
            let (l, path) = (l.clone(), path.to_string());
            return blocking(move || l.get(&path)).await;
        }
        let p = ObjPath::from(path);
        let inner = self.remote();
        match self
            .retrying(Op::Get, path, || async {
                inner.get(&p).await?.bytes().await
            })
            .await
        {
            Ok(b) => Ok(Some(b)),
            Err(Failure::NotFound) => Ok(None),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    /// Reads a whole object that must exist.
    pub fn get(&self, path: &str) -> Result<Bytes> {
        self.get_opt(path)?.ok_or_else(|| Error::Missing {
            what: path.to_string(),
        })
    }

    /// Reads a byte range of an object that must exist.
    pub fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        let want = range.end - range.start;
        let missing = || Error::Missing {
            what: path.to_string(),
        };
        if let Some(l) = self.local() {
            return l.get_range(path, range)?.ok_or_else(missing);
        }
        let p = ObjPath::from(path);
        let inner = self.remote();
        let fetched = runtime().block_on(self.retrying(Op::Get, path, || async {
            inner.get_range(&p, range.clone()).await
        }));
        let bytes = match fetched {
            Ok(b) => b,
            Err(Failure::NotFound) => return Err(missing()),
            Err(Failure::Other(e)) => return Err(e),
        };
        if bytes.len() as u64 != want {
            return Err(Error::Core(hokan_core::Error::Truncated {
                what: path.to_string(),
                reason: format!(
                    "wanted {want} bytes at {}, got {}",
                    range.start,
                    bytes.len()
                ),
            }));
        }
        Ok(bytes)
    }

    /// Reads many objects with up to `concurrency` requests in flight;
    /// results in the order of `paths`, `None` for objects that are gone.
    pub fn get_many(&self, paths: &[String], concurrency: usize) -> Vec<Result<Option<Bytes>>> {
        if let Some(l) = self.local() {
            return paths.iter().map(|p| l.get(p)).collect();
        }
        runtime().block_on(
            futures::stream::iter(paths.iter().map(|p| self.get_opt_async(p)))
                .buffered(concurrency.max(1))
                .collect(),
        )
    }

    /// Writes an object whole and durably: readers see all of it or
    /// nothing, and once this returns it survives a crash.
    /// In immutable mode, a conditional create (see the module
    /// documentation).
    pub fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
        if let Some(l) = self.local() {
            return match self.immutable {
                None => l.put(path, &bytes),
                Some(_) => {
                    let existing = l.put_new(path, &bytes)?;
                    self.same_size(path, existing, bytes.len() as u64)
                }
            };
        }
        runtime().block_on(self.put_async(path, bytes))
    }

    /// [`put`](Self::put) for async callers.
    pub async fn put_async(&self, path: &str, bytes: Bytes) -> Result<()> {
        if let Backend::Local(_) = &self.backend {
            let (this, path) = (self.clone(), path.to_string());
            return blocking(move || this.put(&path, bytes)).await;
        }
        let p = ObjPath::from(path);
        let inner = self.remote();
        if self.immutable.is_some() {
            let len = bytes.len() as u64;
            // A retry after an attempt that did land finds the object: as
            // good as created, since the name is the hash of the bytes.
            let existing = self
                .retrying(Op::Put, path, || async {
                    let opts = PutOptions::from(PutMode::Create);
                    match inner
                        .put_opts(&p, PutPayload::from_bytes(bytes.clone()), opts)
                        .await
                    {
                        Ok(_) => Ok(None),
                        Err(object_store::Error::AlreadyExists { .. }) => {
                            inner.head(&p).await.map(|m| Some(m.size))
                        }
                        Err(e) => Err(e),
                    }
                })
                .await
                .map_err(|f| match f.into_error(path) {
                    Error::Storage { location, detail } if detail.contains("conditional put") => {
                        Error::Immutable {
                            location,
                            path: path.to_string(),
                            action: "written",
                            reason: format!(
                                "the repository is immutable, so every write must be a \
                                 conditional create, and the store client has conditional puts \
                                 switched off ({detail}); unset AWS_CONDITIONAL_PUT"
                            ),
                        }
                    }
                    e => e,
                })?;
            return self.same_size(path, existing, len);
        }
        self.retrying(Op::Put, path, || async {
            inner
                .put(&p, PutPayload::from_bytes(bytes.clone()))
                .await
                .map(|_| ())
        })
        .await
        .map_err(|f| f.into_error(path))
    }

    /// After a conditional create: an object that was already there must
    /// be the same one (same name, so same hash; its size is what can be
    /// checked without reading it).
    fn same_size(&self, path: &str, existing: Option<u64>, len: u64) -> Result<()> {
        match existing {
            Some(size) if size != len => Err(Error::Immutable {
                location: self.location.to_string(),
                path: path.to_string(),
                action: "overwritten",
                reason: format!(
                    "the repository is immutable and an object of {size} bytes already has this \
                     name, where {len} were to be written; the stored one is damaged or foreign \
                     (a check that reads the data finds which)"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Deletes an object; deleting one that is gone is not an error. In
    /// immutable mode this is refused without a request: deletions there
    /// go through [`remove`](Self::remove).
    pub fn delete(&self, path: &str) -> Result<()> {
        if self.immutable.is_some() {
            return Err(Error::Immutable {
                location: self.location.to_string(),
                path: path.to_string(),
                action: "deleted",
                reason: "the repository is immutable; only a prune deletes, once the object \
                         lock's retention has passed"
                    .into(),
            });
        }
        self.delete_now(path)
    }

    fn delete_now(&self, path: &str) -> Result<()> {
        if let Some(l) = self.local() {
            return l.delete(path);
        }
        let p = ObjPath::from(path);
        let inner = self.remote();
        match runtime()
            .block_on(self.retrying(Op::Delete, path, || async { inner.delete(&p).await }))
        {
            Ok(()) | Err(Failure::NotFound) => Ok(()),
            // Outside immutable mode a refused delete may be a bucket's
            // object lock, not a missing permission: say both.
            Err(Failure::Other(Error::Denied { location, detail })) if self.immutable.is_none() => {
                Err(Error::DeleteDenied {
                    location,
                    path: path.to_string(),
                    detail,
                })
            }
            Err(Failure::Other(e)) => Err(e),
        }
    }

    /// Deletes an object if the lock allows: always outside immutable
    /// mode; in it, once `modified` (its last-modified time, looked up
    /// when `None`) plus the retention has passed, and then a delete the
    /// store refuses (403, object locked) counts as kept, not as an error.
    /// The retention is the one configured at `init`: object_store cannot
    /// read an object's own retention date, so a longer per-object one
    /// shows up as a refused delete.
    pub fn remove(&self, path: &str, modified: Option<i64>) -> Result<Removal> {
        let Some(retention) = self.immutable else {
            self.delete_now(path)?;
            return Ok(Removal::Deleted);
        };
        let modified = match modified {
            Some(m) => m,
            None => match self.modified(path)? {
                Some(m) => m,
                None => return Ok(Removal::Deleted),
            },
        };
        let until = modified.saturating_add(retention as i64);
        if chrono::Utc::now().timestamp() < until {
            return Ok(Removal::Kept { until: Some(until) });
        }
        match self.delete_now(path) {
            Ok(()) => Ok(Removal::Deleted),
            Err(e) if refused(&e) => Ok(Removal::Kept { until: None }),
            Err(e) => Err(e),
        }
    }

    /// An object's last-modified time (Unix seconds); `None` if there is
    /// none.
    pub fn modified(&self, path: &str) -> Result<Option<i64>> {
        if let Some(l) = self.local() {
            return l.modified(path);
        }
        let p = ObjPath::from(path);
        let inner = self.remote();
        match runtime().block_on(self.retrying(Op::Head, path, || async { inner.head(&p).await })) {
            Ok(m) => Ok(Some(m.last_modified.timestamp())),
            Err(Failure::NotFound) => Ok(None),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    /// The objects under `dir` (e.g. `"index"`), at any depth, with names
    /// relative to it, sorted.
    pub fn list(&self, dir: &str) -> Result<Vec<Listed>> {
        if let Some(l) = self.local() {
            return l.list(dir);
        }
        let p = ObjPath::from(dir);
        let base = format!("{dir}/");
        let inner = self.remote();
        let listed = runtime().block_on(self.retrying(Op::List, dir, || async {
            inner.list(Some(&p)).try_collect::<Vec<_>>().await
        }));
        let metas = match listed {
            Ok(m) => m,
            Err(Failure::NotFound) => Vec::new(),
            Err(Failure::Other(e)) => return Err(e),
        };
        let mut out: Vec<Listed> = metas
            .into_iter()
            .filter_map(|m| {
                let full = m.location.to_string();
                let name = full.strip_prefix(&base)?.to_string();
                Some(Listed {
                    name,
                    size: m.size,
                    modified: m.last_modified.timestamp(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Temporary files under `dir` that writers left behind (local stores;
    /// object stores write whole objects and leave none).
    pub fn temporary_files(&self, dir: &str) -> Result<Vec<Listed>> {
        match self.local() {
            Some(l) => l.temporary_files(dir),
            None => Ok(Vec::new()),
        }
    }

    /// Whether an object exists.
    pub fn exists(&self, path: &str) -> Result<bool> {
        if let Some(l) = self.local() {
            return l.exists(path);
        }
        let p = ObjPath::from(path);
        let inner = self.remote();
        match runtime().block_on(self.retrying(Op::Head, path, || async { inner.head(&p).await })) {
            Ok(_) => Ok(true),
            Err(Failure::NotFound) => Ok(false),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    /// Runs an operation, retrying transient failures with exponential
    /// backoff. Permanent failures are reported at once.
    async fn retrying<T, F, Fut>(&self, what: Op, path: &str, op: F) -> Result<T, Failure>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = object_store::Result<T>>,
    {
        let mut backoff = self.retry.first_backoff;
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => match errors::classify(&self.location, what, path, e) {
                    Classified::NotFound => return Err(Failure::NotFound),
                    Classified::Permanent(err) => return Err(Failure::Other(err)),
                    Classified::Transient(err) => {
                        if attempt >= self.retry.attempts {
                            return Err(Failure::Other(err));
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = backoff.saturating_mul(2);
                        attempt += 1;
                    }
                },
            }
        }
    }
}

/// A store's settings by their environment names, over the environment
/// ([`Store::connect_with`]).
pub type StoreSettings = std::collections::BTreeMap<String, String>;

/// `AmazonS3Builder::from_env`, with a SHA-256 checksum on every upload.
///
/// A bucket with S3 Object Lock (the ransomware-safe setup) refuses
/// uploads without a checksum: AWS wants Content-MD5 or an
/// `x-amz-checksum-*` header. The server also verifies each pack as it
/// lands. (An unsigned `x-amz-sdk-checksum-algorithm` default header, which
/// moto asks for, is refused by Garage and AWS alike: `scripts/moto.sh`
/// lets moto take the checksum header as AWS does.)
fn s3_builder_from_env() -> object_store::aws::AmazonS3Builder {
    object_store::aws::AmazonS3Builder::from_env()
        .with_checksum_algorithm(object_store::aws::Checksum::SHA256)
}

/// Whether a failed delete was the store refusing it (object lock,
/// retention, a policy without delete permission), not a fault.
fn refused(e: &Error) -> bool {
    match e {
        Error::Denied { .. } | Error::DeleteDenied { .. } => true,
        Error::Storage { detail, .. } => {
            let d = detail.to_ascii_lowercase();
            [
                "objectlock",
                "object lock",
                "retention",
                "precondition",
                "worm",
            ]
            .iter()
            .any(|w| d.contains(w))
        }
        _ => false,
    }
}

/// Runs blocking file I/O from async code without stalling the runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::io("a file-system task", std::io::Error::other(e))))
}

enum Failure {
    NotFound,
    Other(Error),
}

impl Failure {
    fn into_error(self, path: &str) -> Error {
        match self {
            Failure::NotFound => Error::Missing {
                what: path.to_string(),
            },
            Failure::Other(e) => e,
        }
    }
}
