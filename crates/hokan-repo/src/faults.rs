//! Test support: a store that misbehaves on purpose.
//!
//! [`FaultyStore`] wraps an in-memory `object_store` and, once a countdown
//! of writes runs out, makes writes fail, tear (leave a cut-short object
//! under the name, then fail, as a store without atomic writes would after
//! a crash), run out of space, or lose the connection altogether; it can
//! also delay every write. The fault tests and the model-based fault
//! harness (`tests/fault_model.rs`, `examples/fault_harness.rs`) drive the
//! engine through it.
//!
//! [`WormStore`] is a write-once policy: conditional creates only, no
//! overwrite, no delete (the immutable-mode tests).

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path as ObjPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use crate::store::{Location, RetryPolicy, Store};

/// What happens when the countdown runs out. Every fault is sticky: once
/// it happened, every later write fails too (a process that died, a disk
/// that is full) until [`Faults::clear`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Writes fail; nothing is written.
    Fail,
    /// The first half of the object is written under its name, then the
    /// write fails.
    Tear,
    /// "No space left on device".
    NoSpace,
    /// The store is gone: reads fail too.
    Outage,
}

/// The switches of a [`FaultyStore`], shared with the test that drives it.
#[derive(Debug)]
pub struct Faults {
    countdown: AtomicI64,
    fault: Mutex<Option<Fault>>,
    active: Mutex<Option<Fault>>,
    delay_ms: AtomicU64,
    injected: AtomicU64,
}

impl Faults {
    /// No faults armed.
    pub fn new() -> Arc<Self> {
        Arc::new(Faults {
            countdown: AtomicI64::new(-1),
            fault: Mutex::new(None),
            active: Mutex::new(None),
            delay_ms: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        })
    }

    /// After `writes` more successful writes (puts, deletes, copies),
    /// `fault` happens.
    pub fn arm(&self, writes: i64, fault: Fault) {
        *self.fault.lock().expect("faults") = Some(fault);
        self.countdown.store(writes, SeqCst);
    }

    /// Every write waits this long first.
    pub fn delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, SeqCst);
    }

    /// Back to a healthy store (the process restarted, space was freed).
    pub fn clear(&self) {
        *self.fault.lock().expect("faults") = None;
        *self.active.lock().expect("faults") = None;
        self.countdown.store(-1, SeqCst);
        self.delay_ms.store(0, SeqCst);
    }

    /// How many faults happened so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(SeqCst)
    }

    /// Whether a fault is in effect now.
    pub fn tripped(&self) -> bool {
        self.active.lock().expect("faults").is_some()
    }

    fn error(fault: Fault) -> object_store::Error {
        let msg = match fault {
            Fault::Fail => "injected fault: the write failed",
            Fault::Tear => "injected fault: the write was cut short",
            Fault::NoSpace => "injected fault: No space left on device (os error 28)",
            Fault::Outage => "injected fault: connection refused (os error 111)",
        };
        object_store::Error::Generic {
            store: "faulty",
            source: msg.into(),
        }
    }

    /// Counts a write; returns the fault in effect, if any.
    fn on_write(&self) -> Option<Fault> {
        if let Some(f) = *self.active.lock().expect("faults") {
            return Some(f);
        }
        let armed = *self.fault.lock().expect("faults");
        let fault = armed?;
        if self.countdown.fetch_sub(1, SeqCst) > 0 {
            return None;
        }
        *self.active.lock().expect("faults") = Some(fault);
        self.injected.fetch_add(1, SeqCst);
        Some(fault)
    }

    fn on_read(&self) -> object_store::Result<()> {
        match *self.active.lock().expect("faults") {
            Some(Fault::Outage) => Err(Self::error(Fault::Outage)),
            _ => Ok(()),
        }
    }
}

/// An in-memory store with faults; see the module documentation.
#[derive(Debug, Clone)]
pub struct FaultyStore {
    inner: Arc<InMemory>,
    faults: Arc<Faults>,
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl FaultyStore {
    /// A faulty store over `inner`, switched by `faults`.
    pub fn new(inner: Arc<InMemory>, faults: Arc<Faults>) -> Self {
        FaultyStore { inner, faults }
    }

    /// A repository [`Store`] over it that does not retry (a fault is seen
    /// at once).
    pub fn store(&self, name: &str) -> Store {
        Store::from_object_store(
            Arc::new(self.clone()),
            Location::Memory(name.into()),
            RetryPolicy {
                attempts: 1,
                first_backoff: Duration::from_millis(1),
            },
        )
    }

    async fn write_gate(&self) -> object_store::Result<Option<Fault>> {
        let ms = self.faults.delay_ms.load(SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        match self.faults.on_write() {
            None => Ok(None),
            Some(Fault::Tear) => Ok(Some(Fault::Tear)),
            Some(f) => Err(Faults::error(f)),
        }
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &ObjPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if let Some(Fault::Tear) = self.write_gate().await? {
            let bytes: bytes::Bytes = payload.into();
            let half = bytes.slice(..bytes.len() / 2);
            let _ = self.inner.put(location, PutPayload::from_bytes(half)).await;
            return Err(Faults::error(Fault::Tear));
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if self.write_gate().await?.is_some() {
            return Err(Faults::error(Fault::Tear));
        }
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.faults.on_read()?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjPath>> {
        let this = self.clone();
        locations
            .then(move |l| {
                let this = this.clone();
                async move {
                    let l = l?;
                    if this.write_gate().await?.is_some() {
                        return Err(Faults::error(Fault::Fail));
                    }
                    this.inner.delete(&l).await?;
                    Ok(l)
                }
            })
            .boxed()
    }

    fn list(
        &self,
        prefix: Option<&ObjPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if let Err(e) = self.faults.on_read() {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjPath>,
    ) -> object_store::Result<ListResult> {
        self.faults.on_read()?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjPath,
        to: &ObjPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        if self.write_gate().await?.is_some() {
            return Err(Faults::error(Fault::Fail));
        }
        self.inner.copy_opts(from, to, options).await
    }
}

/// What a [`WormStore`] saw: the writes and deletes it refused.
#[derive(Debug, Default)]
pub struct WormLog {
    /// Puts without a create-only condition (refused: they could overwrite).
    pub unconditional_puts: AtomicU64,
    /// Conditional creates of a name already taken (refused by the store).
    pub create_conflicts: AtomicU64,
    /// Deletes (all refused).
    pub deletes: AtomicU64,
    /// Copies and renames (all refused).
    pub copies: AtomicU64,
}

/// A store with a write-once policy, as a bucket whose object lock never
/// expires: it accepts only conditional creates of new names, and refuses
/// every put that could overwrite, every delete and every copy with
/// "access denied", counting them. An in-memory double of a policy, not of
/// a server: the immutable-mode tests drive the engine through it.
#[derive(Debug, Clone)]
pub struct WormStore {
    inner: Arc<InMemory>,
    log: Arc<WormLog>,
}

impl fmt::Display for WormStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WormStore({})", self.inner)
    }
}

impl WormStore {
    /// A write-once store over `inner`.
    pub fn new(inner: Arc<InMemory>) -> Self {
        WormStore {
            inner,
            log: Arc::new(WormLog::default()),
        }
    }

    /// What it refused so far.
    pub fn log(&self) -> &WormLog {
        &self.log
    }

    /// A repository [`Store`] over it that does not retry.
    pub fn store(&self, name: &str) -> Store {
        Store::from_object_store(
            Arc::new(self.clone()),
            Location::Memory(name.into()),
            RetryPolicy {
                attempts: 1,
                first_backoff: Duration::from_millis(1),
            },
        )
    }

    fn denied(what: &str, location: &ObjPath) -> object_store::Error {
        object_store::Error::PermissionDenied {
            path: location.to_string(),
            source: format!("AccessDenied: write-once policy refuses {what}").into(),
        }
    }
}

#[async_trait]
impl ObjectStore for WormStore {
    async fn put_opts(
        &self,
        location: &ObjPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if !matches!(opts.mode, object_store::PutMode::Create) {
            self.log.unconditional_puts.fetch_add(1, SeqCst);
            return Err(Self::denied("a put that may overwrite", location));
        }
        let r = self.inner.put_opts(location, payload, opts).await;
        if let Err(object_store::Error::AlreadyExists { .. }) = &r {
            self.log.create_conflicts.fetch_add(1, SeqCst);
        }
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjPath,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.log.unconditional_puts.fetch_add(1, SeqCst);
        Err(Self::denied("a multipart upload", location))
    }

    async fn get_opts(
        &self,
        location: &ObjPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjPath>> {
        let log = self.log.clone();
        locations
            .map(move |l| {
                let l = l?;
                log.deletes.fetch_add(1, SeqCst);
                Err(Self::denied("a delete", &l))
            })
            .boxed()
    }

    fn list(
        &self,
        prefix: Option<&ObjPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        _from: &ObjPath,
        to: &ObjPath,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        self.log.copies.fetch_add(1, SeqCst);
        Err(Self::denied("a copy", to))
    }
}
