//! Live snapshots: etcd's Maintenance `Snapshot` RPC as a [`Read`].
//!
//! etcd (3.4 `etcdserver/api/v3rpc/maintenance.go`) streams the database in
//! 32 KiB messages, each saying how many bytes remain, then one more message
//! holding the SHA-256 of all of them. [`LiveSnapshot`] yields exactly the
//! bytes `etcdctl snapshot save` would write (the database, then the 32-byte
//! SHA-256), checks the hash before it reports the end, and turns a cut
//! stream, a silent server or a hash mismatch into an error: whoever reads
//! it must keep nothing unless it reaches the end without error.
//!
//! The gRPC client is async (tokio); the snapshot runs on its own thread
//! with its own runtime, and hands messages over a bounded channel, so the
//! reader holds at most a few messages in memory whatever the database size.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::error::{Error, Result};
use crate::grpc::etcdserverpb::cluster_client::ClusterClient;
use crate::grpc::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::grpc::etcdserverpb::{MemberListRequest, SnapshotRequest, StatusRequest};
use crate::split::hex;

/// How to reach one etcd member.
#[derive(Clone, Debug)]
pub struct EtcdEndpoint {
    /// The member's client URL (`https://10.0.0.1:2379`, `http://127.0.0.1:2379`).
    pub url: String,
    /// PEM file of the CA that signed the server's certificate (`--cacert`).
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate (`--cert`); needs `key`.
    pub cert: Option<PathBuf>,
    /// PEM private key of the client certificate (`--key`).
    pub key: Option<PathBuf>,
    /// Longest wait to connect and for each answer before the stream starts.
    pub connect_timeout: Duration,
    /// Longest wait for the next message of the snapshot stream.
    pub idle_timeout: Duration,
}

impl EtcdEndpoint {
    /// Settings for the endpoints given as etcdctl's `--endpoints` takes them
    /// (comma-separated). A snapshot comes from exactly one member, so
    /// several endpoints are refused, as etcdctl does.
    pub fn new(endpoints: &str) -> Result<Self> {
        let list: Vec<&str> = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if list.len() != 1 {
            return Err(Error::invalid(
                "endpoints",
                format!(
                    "a snapshot is taken from exactly one etcd member, got {} ({endpoints:?}); \
                     name one endpoint, as `etcdctl snapshot save` requires",
                    list.len()
                ),
            ));
        }
        Ok(EtcdEndpoint {
            url: list[0].to_string(),
            ca_cert: None,
            cert: None,
            key: None,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        })
    }

    /// Uses TLS, trusting the CA in `ca_cert` (PEM).
    pub fn with_ca_cert(mut self, ca_cert: impl Into<PathBuf>) -> Self {
        self.ca_cert = Some(ca_cert.into());
        self
    }

    /// Authenticates with a client certificate and its key (PEM files).
    pub fn with_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.cert = Some(cert.into());
        self.key = Some(key.into());
        self
    }

    /// The TLS settings the files ask for; `None` without files.
    fn tls(&self) -> Result<Option<ClientTlsConfig>> {
        let read = |p: &PathBuf, what: &str| {
            std::fs::read(p)
                .map_err(|e| Error::io(format!("reading the {what} {}", p.display()), e))
        };
        let tls_wanted = self.ca_cert.is_some() || self.cert.is_some() || self.key.is_some();
        if !tls_wanted {
            return Ok(None);
        }
        if !self.url.starts_with("https://") {
            return Err(Error::invalid(
                "endpoint",
                format!(
                    "{} is not an https:// URL but TLS files were given; use https://",
                    self.url
                ),
            ));
        }
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &self.ca_cert {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca, "CA certificate")?));
        }
        match (&self.cert, &self.key) {
            (Some(c), Some(k)) => {
                tls = tls.identity(Identity::from_pem(
                    read(c, "client certificate")?,
                    read(k, "client key")?,
                ));
            }
            (None, None) => {}
            _ => {
                return Err(Error::invalid(
                    "client certificate",
                    "a client certificate and its key go together: give both or neither",
                ));
            }
        }
        Ok(Some(tls))
    }

    fn error(&self, reason: impl Into<String>) -> Error {
        Error::Etcd {
            endpoint: self.url.clone(),
            reason: reason.into(),
        }
    }

    /// A failed request: a TLS problem when `reason` reads like one (the
    /// error then says which files to check), else [`Error::Etcd`].
    fn failure(&self, reason: String) -> Error {
        let lower = reason.to_lowercase();
        if lower.contains("certificate") || lower.contains("unknownissuer") || lower.contains("tls")
        {
            return self.tls_failure(reason);
        }
        self.error(reason)
    }

    fn tls_failure(&self, reason: String) -> Error {
        Error::Tls {
            endpoint: self.url.clone(),
            reason,
            client_certificate: self.cert.is_some(),
        }
    }

    /// The `host:port` of the URL.
    fn authority(&self) -> &str {
        let rest = self.url.split("://").nth(1).unwrap_or(&self.url);
        rest.split('/').next().unwrap_or(rest)
    }
}

/// Who took a snapshot: what groups snapshots of one cluster together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterIdentity {
    /// The cluster id every member reports (hex in etcdctl's output).
    pub cluster_id: u64,
    /// The member that sent the snapshot.
    pub member_id: u64,
    /// That member's name.
    pub member_name: String,
    /// The store's revision just before the snapshot started; the snapshot
    /// holds this revision or a later one ([`crate::status`] of the saved
    /// bytes gives the exact one).
    pub revision: i64,
    /// Raft term at that moment.
    pub raft_term: u64,
    /// The member's etcd version.
    pub version: String,
    /// The member's database size before the snapshot.
    pub db_size: i64,
}

/// The bytes of a live snapshot; see the module docs.
#[derive(Debug)]
pub struct LiveSnapshot {
    rx: mpsc::Receiver<Result<Msg>>,
    current: Vec<u8>,
    at: usize,
    state: State,
    hash: Sha256,
    size: Option<u64>,
    received: u64,
    identity: ClusterIdentity,
    url: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Database bytes are arriving.
    Data,
    /// The next message is the SHA-256.
    Hash,
    /// The SHA-256 matched; the stream must end now.
    End,
    Done,
    Failed,
}

/// Messages held between the network and the reader (32 KiB each).
const CHANNEL_MESSAGES: usize = 16;

#[derive(Debug)]
enum Msg {
    Identity(ClusterIdentity),
    /// A message's bytes and the bytes etcd says remain after it.
    Chunk(Vec<u8>, u64),
}

impl LiveSnapshot {
    /// Connects to `endpoint`, reads the member's identity, and starts the
    /// snapshot. Blocking: call it (and read) outside async tasks, e.g. in
    /// `tokio::task::spawn_blocking`.
    pub fn start(endpoint: &EtcdEndpoint) -> Result<LiveSnapshot> {
        let tls = endpoint.tls()?;
        let (tx, mut rx) = mpsc::channel::<Result<Msg>>(CHANNEL_MESSAGES);
        let ep = endpoint.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the etcd client runtime", e))?;
        std::thread::Builder::new()
            .name("hokan-etcd-snapshot".into())
            .spawn(move || {
                runtime.block_on(async move {
                    if let Err(e) = pump(&ep, tls, &tx).await {
                        let _ = tx.send(Err(e)).await;
                    }
                })
            })
            .map_err(|e| Error::io("starting the snapshot thread", e))?;
        let identity = match recv(&mut rx)? {
            Some(Ok(Msg::Identity(id))) => id,
            Some(Err(e)) => return Err(e),
            _ => return Err(endpoint.error("the snapshot thread stopped before etcd answered")),
        };
        Ok(LiveSnapshot {
            rx,
            current: Vec::new(),
            at: 0,
            state: State::Data,
            hash: Sha256::new(),
            size: None,
            received: 0,
            identity,
            url: endpoint.url.clone(),
        })
    }

    /// The member and cluster the snapshot comes from.
    pub fn identity(&self) -> &ClusterIdentity {
        &self.identity
    }

    /// The database size etcd announced, once the first message arrived.
    pub fn db_size(&self) -> Option<u64> {
        self.size
    }

    fn fail(&self, reason: String) -> Error {
        Error::Etcd {
            endpoint: self.url.clone(),
            reason,
        }
    }

    /// Takes the next message and checks it against what came before.
    fn next_message(&mut self) -> Result<()> {
        let msg = match recv(&mut self.rx)? {
            Some(Ok(Msg::Chunk(b, remaining))) => Some((b, remaining)),
            Some(Ok(Msg::Identity(_))) => {
                return Err(self.fail("etcd client sent its identity twice".into()));
            }
            Some(Err(e)) => return Err(e),
            None => None,
        };
        let size = |s: &Self| s.size.map_or("?".to_string(), |n| n.to_string());
        match (self.state, msg) {
            (State::Data, Some((b, remaining))) => {
                let total = self.received + b.len() as u64 + remaining;
                let expected = *self.size.get_or_insert(total);
                if total != expected {
                    return Err(self.fail(format!(
                        "the stream is inconsistent: after {} bytes etcd says {remaining} remain \
                         of {expected}",
                        self.received + b.len() as u64
                    )));
                }
                self.received += b.len() as u64;
                self.hash.update(&b);
                self.current = b;
                if remaining == 0 {
                    self.state = State::Hash;
                }
            }
            (State::Data, None) => {
                return Err(Error::Truncated {
                    what: format!("the snapshot stream from {}", self.url),
                    reason: format!("it ended after {} of {} bytes", self.received, size(self)),
                });
            }
            (State::Hash, Some((b, _))) => {
                let actual: [u8; 32] = self.hash.clone().finalize().into();
                if b.len() != 32 || b[..] != actual {
                    return Err(Error::HashMismatch {
                        what: format!("the snapshot stream from {}", self.url),
                        expected: hex(&b),
                        actual: hex(&actual),
                    });
                }
                // Passed on: it is the trailer `etcdctl snapshot save` writes.
                self.current = b;
                self.state = State::End;
            }
            (State::Hash, None) => {
                return Err(Error::Truncated {
                    what: format!("the snapshot stream from {}", self.url),
                    reason: format!(
                        "it ended after all {} bytes but before the SHA-256 etcd sends last",
                        self.received
                    ),
                });
            }
            (State::End, None) => self.state = State::Done,
            (State::End, Some((b, _))) => {
                return Err(self.fail(format!(
                    "etcd sent {} more bytes after the SHA-256 that ends a snapshot",
                    b.len()
                )));
            }
            (State::Done | State::Failed, _) => {}
        }
        self.at = 0;
        Ok(())
    }
}

impl Read for LiveSnapshot {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.at < self.current.len() {
                let n = buf.len().min(self.current.len() - self.at);
                buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            match self.state {
                State::Done => return Ok(0),
                State::Failed => {
                    return Err(std::io::Error::other(self.fail(
                        "the snapshot stream already failed; discard what was read".into(),
                    )));
                }
                _ => {}
            }
            self.current.clear();
            if let Err(e) = self.next_message() {
                self.state = State::Failed;
                return Err(std::io::Error::other(e));
            }
        }
    }
}

/// Waits for the next message; refuses to block an async task (which would
/// stall its runtime) instead of panicking as tokio would.
fn recv<T>(rx: &mut mpsc::Receiver<T>) -> Result<Option<T>> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::invalid(
            "caller",
            "a live snapshot is read with blocking calls; read it from a plain thread or \
             tokio::task::spawn_blocking, not from an async task",
        ));
    }
    Ok(rx.blocking_recv())
}

/// An error and its causes on one line.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = String::new();
    let mut cur = Some(e);
    while let Some(c) = cur {
        // A gRPC status's Display repeats its cause in Debug form; its
        // message, and the causes below it, say the same in words.
        let text = match c.downcast_ref::<tonic::Status>() {
            Some(st) if c.source().is_some() => st.message().to_string(),
            Some(st) if st.message().is_empty() => st.code().description().to_string(),
            Some(st) => format!("{} ({})", st.message(), st.code().description()),
            None => c.to_string(),
        };
        if !s.contains(&text) {
            if !s.is_empty() {
                s.push_str(": ");
            }
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// Runs the RPCs on the snapshot thread and forwards what arrives.
async fn pump(
    ep: &EtcdEndpoint,
    tls: Option<ClientTlsConfig>,
    tx: &mpsc::Sender<Result<Msg>>,
) -> Result<()> {
    use tokio::time::timeout;
    let wait = ep.connect_timeout;
    let late = |what: &str| {
        ep.error(format!(
            "no answer to {what} within {wait:?}; is this an etcd client URL?"
        ))
    };
    // Before the first answer, a TLS endpoint that drops the connection has
    // most likely refused the handshake (the server's alert for a missing
    // client certificate reads like any other): say which files to check.
    let refused = |e: &(dyn std::error::Error + 'static)| {
        let s = describe(e);
        if ep.url.starts_with("https://") {
            return ep.tls_failure(s);
        }
        ep.failure(s)
    };
    // A plain TCP connect first: it tells "refused" and "unreachable" apart,
    // which the gRPC channel reports only as a timeout.
    match timeout(wait, tokio::net::TcpStream::connect(ep.authority())).await {
        Err(_) => {
            return Err(ep.error(format!(
                "cannot connect within {wait:?}; check the address and that nothing blocks the port"
            )));
        }
        Ok(Err(e)) => {
            return Err(ep.error(format!(
                "cannot connect: {e}; is etcd running and listening on this address?"
            )));
        }
        Ok(Ok(_)) => {}
    }
    let endpoint = crate::grpc::endpoint(&ep.url, tls, wait).map_err(|e| ep.error(describe(&e)))?;
    let channel = timeout(wait, endpoint.connect())
        .await
        .map_err(|_| late("the connection"))?
        .map_err(|e| refused(&e))?;
    let mut maintenance = MaintenanceClient::new(channel.clone());
    let status = timeout(wait, maintenance.status(StatusRequest {}))
        .await
        .map_err(|_| late("Status"))?
        .map_err(|e| refused(&e))?
        .into_inner();
    let members = timeout(
        wait,
        ClusterClient::new(channel).member_list(MemberListRequest::default()),
    )
    .await
    .map_err(|_| late("MemberList"))?
    .map_err(|e| ep.failure(describe(&e)))?
    .into_inner();
    let header = status
        .header
        .ok_or_else(|| ep.error("the Status answer has no header"))?;
    let member_id = header.member_id;
    let identity = ClusterIdentity {
        cluster_id: header.cluster_id,
        member_id,
        member_name: members
            .members
            .into_iter()
            .find(|m| m.id == member_id)
            .map(|m| m.name)
            .unwrap_or_default(),
        revision: header.revision,
        raft_term: header.raft_term,
        version: status.version,
        db_size: status.db_size,
    };
    if tx.send(Ok(Msg::Identity(identity))).await.is_err() {
        return Ok(());
    }
    let mut stream = timeout(wait, maintenance.snapshot(SnapshotRequest {}))
        .await
        .map_err(|_| late("Snapshot"))?
        .map_err(|e| ep.failure(describe(&e)))?
        .into_inner();
    let idle = ep.idle_timeout;
    loop {
        let msg = timeout(idle, stream.message()).await.map_err(|_| {
            ep.error(format!(
                "no snapshot data for {idle:?}; the member stopped sending"
            ))
        })?;
        match msg.map_err(|e| ep.failure(format!("the snapshot stream broke: {}", describe(&e))))? {
            // The channel closing tells the reader the stream ended.
            None => return Ok(()),
            Some(m) => {
                let chunk = Msg::Chunk(m.blob, m.remaining_bytes);
                if tx.send(Ok(chunk)).await.is_err() {
                    // The reader was dropped: stop asking etcd for more.
                    return Ok(());
                }
            }
        }
    }
}
