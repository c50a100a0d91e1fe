//! Where a repository lives: a location string, the `object_store` backend
//! it names, and a small synchronous facade with retries and clear errors.
//!
//! Locations:
//!
//! | location                                | store                                            |
//! |-----------------------------------------|--------------------------------------------------|
//! | `/path`, `./path`, `file:///path`       | a local directory (the default)                  |
//! | `s3://bucket/prefix`                    | S3; endpoint, region, credentials from `AWS_*`   |
//! | `s3:http://host:port/bucket/prefix`     | an S3-compatible server at an explicit endpoint  |
//! | `gs://bucket/prefix`                    | Google Cloud Storage, credentials from `GOOGLE_*`|
//! | `az://container/prefix`                 | Azure Blob Storage, credentials from `AZURE_*`   |
//! | `memory://name`                         | in-process memory, shared by name (tests)        |
//!
//! Network I/O is async (tokio); this facade runs it on the repository's
//! runtime and blocks the calling thread, which is never a runtime thread:
//! the data path calls in from rayon.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path as ObjPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Error, Result};

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

/// A parsed repository location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A directory on this machine.
    Local(PathBuf),
    /// An S3 bucket, with an explicit endpoint when given in the location.
    S3 {
        /// `http(s)://host:port`, or `None` for the environment's or AWS's.
        endpoint: Option<String>,
        /// The bucket.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/`.
        prefix: String,
    },
    /// A Google Cloud Storage bucket.
    Gcs {
        /// The bucket.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
    /// An Azure Blob Storage container.
    Azure {
        /// The container.
        container: String,
        /// Key prefix.
        prefix: String,
    },
    /// An in-process store, shared by name within the process.
    Memory(String),
}

impl Location {
    /// Parses a location string (see the module documentation).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidLocation {
            location: s.to_string(),
            reason: reason.to_string(),
        };
        let bucket_and_prefix = |rest: &str| -> Result<(String, String)> {
            let rest = rest.trim_matches('/');
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name"));
            }
            Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
        };
        if s.is_empty() {
            return Err(bad(
                "empty; give a directory or a URL such as s3://bucket/prefix",
            ));
        }
        if let Some(rest) = s.strip_prefix("memory://") {
            return Ok(Location::Memory(rest.to_string()));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = bucket_and_prefix(rest)?;
            return Ok(Location::S3 {
                endpoint: None,
                bucket,
                prefix,
            });
        }
        if let Some(url) = s.strip_prefix("s3:") {
            // restic's form: s3:http://host:port/bucket/prefix
            let (scheme, rest) = url.split_once("://").ok_or_else(|| {
                bad("expected s3://bucket/prefix or s3:http(s)://host:port/bucket/prefix")
            })?;
            if scheme != "http" && scheme != "https" {
                return Err(bad("the endpoint must be http:// or https://"));
            }
            let (host, path) = rest
                .split_once('/')
                .ok_or_else(|| bad("no bucket after the endpoint"))?;
            let (bucket, prefix) = bucket_and_prefix(path)?;
            return Ok(Location::S3 {
                endpoint: Some(format!("{scheme}://{host}")),
                bucket,
                prefix,
            });
        }
        if let Some(rest) = s.strip_prefix("gs://") {
            let (bucket, prefix) = bucket_and_prefix(rest)?;
            return Ok(Location::Gcs { bucket, prefix });
        }
        if let Some(rest) = s.strip_prefix("az://") {
            let (container, prefix) = bucket_and_prefix(rest)?;
            return Ok(Location::Azure { container, prefix });
        }
        if let Some(path) = s.strip_prefix("file://") {
            return Ok(Location::Local(PathBuf::from(path)));
        }
        if s.contains("://") {
            return Err(bad(
                "unknown scheme; use a path, s3://, gs://, az:// or memory://",
            ));
        }
        Ok(Location::Local(PathBuf::from(s)))
    }

    /// True for a directory on this machine.
    pub fn is_local(&self) -> bool {
        matches!(self, Location::Local(_))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |a: &str, p: &str| {
            if p.is_empty() {
                a.to_string()
            } else {
                format!("{a}/{p}")
            }
        };
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 {
                endpoint: Some(e),
                bucket,
                prefix,
            } => write!(f, "s3:{e}/{}", join(bucket, prefix)),
            Location::S3 { bucket, prefix, .. } => write!(f, "s3://{}", join(bucket, prefix)),
            Location::Gcs { bucket, prefix } => write!(f, "gs://{}", join(bucket, prefix)),
            Location::Azure { container, prefix } => write!(f, "az://{}", join(container, prefix)),
            Location::Memory(n) => write!(f, "memory://{n}"),
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

/// A repository's store: an `object_store` backend under the repository's
/// prefix, with retries and errors that name the location.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    location: Location,
    retry: RetryPolicy,
    /// Local repositories read byte ranges straight from the files, with
    /// open handles kept: a restore reads one blob per small file, and an
    /// open and a runtime round trip per blob would dominate.
    local: Option<Arc<LocalReads>>,
}

/// Open pack files of a local repository, for positioned reads.
#[derive(Debug)]
struct LocalReads {
    root: PathBuf,
    open: Mutex<HashMap<String, Arc<std::fs::File>>>,
}

/// Open files kept per local repository.
const LOCAL_OPEN_FILES: usize = 256;

impl LocalReads {
    fn read_range(&self, path: &str, range: Range<u64>) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let file = {
            let mut open = self.open.lock().expect("open files");
            match open.get(path) {
                Some(f) => f.clone(),
                None => {
                    let f = Arc::new(std::fs::File::open(self.root.join(path))?);
                    if open.len() >= LOCAL_OPEN_FILES {
                        open.clear();
                    }
                    open.insert(path.to_string(), f.clone());
                    f
                }
            }
        };
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        file.read_exact_at(&mut buf, range.start)?;
        Ok(buf)
    }
}

impl Store {
    /// Connects to the store a location names. `create` makes a missing
    /// local directory (for `init`); otherwise a missing directory means
    /// there is no repository.
    pub fn connect(location: &Location, create: bool, retry: RetryPolicy) -> Result<Self> {
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
        let local = match location {
            Location::Local(dir) => Some(Arc::new(LocalReads {
                root: dir.clone(),
                open: Mutex::new(HashMap::new()),
            })),
            _ => None,
        };
        let inner: Arc<dyn ObjectStore> = match location {
            Location::Local(dir) => {
                if create {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
                } else if !dir.is_dir() {
                    return Err(Error::NotARepository {
                        location: location.to_string(),
                        reason: "the directory does not exist".into(),
                    });
                }
                Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(dir)
                        .map_err(map_build)?
                        .with_automatic_cleanup(true),
                )
            }
            Location::S3 {
                endpoint,
                bucket,
                prefix,
            } => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(http_retry);
                // restic and rclone read AWS_DEFAULT_REGION; object_store reads AWS_REGION.
                if std::env::var_os("AWS_REGION").is_none()
                    && let Ok(r) = std::env::var("AWS_DEFAULT_REGION")
                {
                    b = b.with_region(r);
                }
                let endpoint = endpoint
                    .clone()
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
                if let Some(e) = endpoint {
                    b = b.with_allow_http(e.starts_with("http://")).with_endpoint(e);
                }
                with_prefix(Arc::new(b.build().map_err(map_build)?), prefix)
            }
            Location::Gcs { bucket, prefix } => {
                let b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(http_retry);
                with_prefix(Arc::new(b.build().map_err(map_build)?), prefix)
            }
            Location::Azure { container, prefix } => {
                let b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(container)
                    .with_retry(http_retry);
                with_prefix(Arc::new(b.build().map_err(map_build)?), prefix)
            }
            Location::Memory(name) => memory_store(name),
        };
        Ok(Store {
            inner,
            location: location.clone(),
            retry,
            local,
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
            inner,
            location,
            retry,
            local: None,
        }
    }

    /// The location, for messages.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Drops a kept handle: the object is being replaced or removed.
    fn forget_open(&self, path: &str) {
        if let Some(local) = &self.local {
            local.open.lock().expect("open files").remove(path);
        }
    }

    /// Reads a whole object; `Ok(None)` if there is none.
    pub fn get_opt(&self, path: &str) -> Result<Option<Bytes>> {
        runtime().block_on(self.get_opt_async(path))
    }

    /// [`get_opt`](Self::get_opt) for async callers.
    pub async fn get_opt_async(&self, path: &str) -> Result<Option<Bytes>> {
        let p = ObjPath::from(path);
        match self
            .retrying(path, || async { self.inner.get(&p).await?.bytes().await })
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
        if let Some(local) = &self.local {
            return match local.read_range(path, range.clone()) {
                Ok(b) => Ok(Bytes::from(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Missing {
                    what: path.to_string(),
                }),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    Err(Error::Core(hokan_core::Error::Truncated {
                        what: path.to_string(),
                        reason: format!("wanted {want} bytes at {}", range.start),
                    }))
                }
                Err(e) => Err(Error::Storage {
                    location: self.location.to_string(),
                    detail: format!("{path}: {e}"),
                }),
            };
        }
        let p = ObjPath::from(path);
        let fetched = runtime().block_on(self.retrying(path, || async {
            self.inner.get_range(&p, range.clone()).await
        }));
        let bytes = match fetched {
            Ok(b) => b,
            Err(Failure::NotFound) => {
                return Err(Error::Missing {
                    what: path.to_string(),
                });
            }
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
        runtime().block_on(
            futures::stream::iter(paths.iter().map(|p| self.get_opt_async(p)))
                .buffered(concurrency.max(1))
                .collect(),
        )
    }

    /// Writes an object whole: readers see all of it or nothing.
    pub fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
        runtime().block_on(self.put_async(path, bytes))
    }

    /// [`put`](Self::put) for async callers.
    pub async fn put_async(&self, path: &str, bytes: Bytes) -> Result<()> {
        self.forget_open(path);
        let p = ObjPath::from(path);
        self.retrying(path, || async {
            self.inner
                .put(&p, PutPayload::from_bytes(bytes.clone()))
                .await
                .map(|_| ())
        })
        .await
        .map_err(|f| f.into_error(path))
    }

    /// Deletes an object; deleting one that is gone is not an error.
    pub fn delete(&self, path: &str) -> Result<()> {
        self.forget_open(path);
        let p = ObjPath::from(path);
        match runtime().block_on(self.retrying(path, || async { self.inner.delete(&p).await })) {
            Ok(()) | Err(Failure::NotFound) => Ok(()),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    /// The objects under `dir` (e.g. `"index"`), at any depth, with names
    /// relative to it, sorted.
    pub fn list(&self, dir: &str) -> Result<Vec<Listed>> {
        let p = ObjPath::from(dir);
        let base = format!("{dir}/");
        let listed = runtime().block_on(self.retrying(dir, || async {
            self.inner.list(Some(&p)).try_collect::<Vec<_>>().await
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

    /// Whether an object exists.
    pub fn exists(&self, path: &str) -> Result<bool> {
        let p = ObjPath::from(path);
        match runtime().block_on(self.retrying(path, || async { self.inner.head(&p).await })) {
            Ok(_) => Ok(true),
            Err(Failure::NotFound) => Ok(false),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    /// Runs an operation, retrying transient failures with exponential
    /// backoff. Permanent failures are reported at once.
    async fn retrying<T, F, Fut>(&self, path: &str, op: F) -> Result<T, Failure>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = object_store::Result<T>>,
    {
        let mut backoff = self.retry.first_backoff;
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => match self.classify(path, e) {
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

    fn classify(&self, path: &str, e: object_store::Error) -> Classified {
        use object_store::Error as E;
        let location = self.location.to_string();
        if chain(&e).contains("NoSuchBucket") {
            return Classified::Permanent(Error::NotARepository {
                location,
                reason: "the bucket does not exist (create it first, then run init)".into(),
            });
        }
        match e {
            E::NotFound { .. } => Classified::NotFound,
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                Classified::Permanent(Error::Denied {
                    location,
                    detail: format!("{path}: {}", chain(&e)),
                })
            }
            E::Generic { .. } | E::JoinError { .. } => {
                let detail = chain(&e);
                let lower = detail.to_ascii_lowercase();
                if has_status(&lower, "403")
                    || has_status(&lower, "401")
                    || lower.contains("forbidden")
                    || lower.contains("access denied")
                    || lower.contains("accessdenied")
                    || lower.contains("invalidaccesskeyid")
                    || lower.contains("signaturedoesnotmatch")
                {
                    Classified::Permanent(Error::Denied {
                        location,
                        detail: format!("{path}: {detail}"),
                    })
                } else if lower.contains("no space left") || lower.contains("quota") {
                    Classified::Permanent(Error::Storage {
                        location,
                        detail: format!(
                            "{path}: the store is full ({detail}); free space and retry"
                        ),
                    })
                } else if lower.contains("permission denied") {
                    Classified::Permanent(Error::Denied {
                        location,
                        detail: format!("{path}: {detail}"),
                    })
                } else {
                    Classified::Transient(Error::Unreachable {
                        location,
                        detail: format!("{path}: {detail}"),
                    })
                }
            }
            other => Classified::Permanent(Error::Storage {
                location,
                detail: format!("{path}: {}", chain(&other)),
            }),
        }
    }
}

/// Whether an HTTP status code stands in `text` as a number of its own:
/// "status 403", "403 Forbidden", not the digits of "244.334031ms".
fn has_status(text: &str, code: &str) -> bool {
    let b = text.as_bytes();
    let number_char = |c: u8| c.is_ascii_alphanumeric() || c == b'.';
    text.match_indices(code).any(|(i, _)| {
        let end = i + code.len();
        (i == 0 || !number_char(b[i - 1])) && (end == b.len() || !number_char(b[end]))
    })
}

enum Classified {
    NotFound,
    Transient(Error),
    Permanent(Error),
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

/// An error and its sources, joined, for messages.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_whole_numbers() {
        // A refused connection whose timing holds the digits 4, 0, 3 is not
        // a denial (this misreport once reached CI).
        let refused = "error performing get http://127.0.0.1:9/bucket/repo/config in 244.334031ms, after 2 retries - http error: tcp connect error: connection refused (os error 111)";
        assert!(!has_status(refused, "403") && !has_status(refused, "401"));
        assert!(has_status(
            "client error with status 403 forbidden: <error>",
            "403"
        ));
        assert!(has_status("status: 401", "401"));
        assert!(has_status("403", "403"));
        assert!(!has_status("port 14030", "403"));
        assert!(!has_status("v1.403", "403"));
    }

    #[test]
    fn parse_locations() {
        assert_eq!(
            Location::parse("/tmp/r").unwrap(),
            Location::Local("/tmp/r".into())
        );
        assert_eq!(
            Location::parse("file:///tmp/r").unwrap(),
            Location::Local("/tmp/r".into())
        );
        assert_eq!(
            Location::parse("s3://b/some/prefix/").unwrap(),
            Location::S3 {
                endpoint: None,
                bucket: "b".into(),
                prefix: "some/prefix".into()
            }
        );
        let restic_style = Location::parse("s3:http://127.0.0.1:3900/bucket/p").unwrap();
        assert_eq!(
            restic_style,
            Location::S3 {
                endpoint: Some("http://127.0.0.1:3900".into()),
                bucket: "bucket".into(),
                prefix: "p".into()
            }
        );
        assert_eq!(
            restic_style.to_string(),
            "s3:http://127.0.0.1:3900/bucket/p"
        );
        assert_eq!(
            Location::parse("gs://g").unwrap(),
            Location::Gcs {
                bucket: "g".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            Location::parse("az://c/x").unwrap(),
            Location::Azure {
                container: "c".into(),
                prefix: "x".into()
            }
        );
        assert_eq!(
            Location::parse("memory://t").unwrap(),
            Location::Memory("t".into())
        );
        for bad in ["", "ftp://x", "s3://", "s3:ftp://h/b", "s3:http://host"] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
