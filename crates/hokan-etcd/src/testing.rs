//! A real etcd on loopback, for tests and benchmarks (this crate's and the
//! workspace's end-to-end tests).
//!
//! [`EtcdProcess::start`] runs Debian's `etcd` (3.4) on two free loopback
//! ports with a fresh data directory, waits until it answers, and kills it
//! and removes the directory on drop. When `etcd` is not installed it
//! returns `None` after printing why, or panics with the fix when
//! `HOKAN_REQUIRE_ETCD=1` (CI sets it, so a missing package fails the run
//! instead of skipping every test). [`KvClient`] loads keys into it and
//! reads them back.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use crate::grpc::etcdserverpb::kv_client::KvClient as Kv;
use crate::grpc::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest, request_op};

/// Server TLS settings: PEM files for the server and the CA it trusts for
/// client certificates.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// Server certificate.
    pub cert: PathBuf,
    /// Server key.
    pub key: PathBuf,
    /// CA that signs accepted client certificates (`--client-cert-auth`).
    pub client_ca: PathBuf,
}

/// A running etcd; see the module docs.
#[derive(Debug)]
pub struct EtcdProcess {
    child: Option<Child>,
    dir: PathBuf,
    /// Client URL (`http://127.0.0.1:PORT` or `https://…`).
    pub url: String,
    /// etcdctl arguments for TLS, empty without.
    tls_args: Vec<String>,
    /// etcd's arguments, to start it again on the same ports and data.
    args: Vec<std::ffi::OsString>,
}

/// Whether `etcd` and `etcdctl` are installed; prints the reason to skip or
/// panics when `HOKAN_REQUIRE_ETCD=1`.
pub fn etcd_available() -> bool {
    let found = [("etcd", "--version"), ("etcdctl", "version")]
        .iter()
        .all(|(b, arg)| {
            Command::new(b)
                .arg(arg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    if !found {
        let why =
            "etcd and etcdctl are not installed (Debian: apt-get install etcd-server etcd-client)";
        if std::env::var("HOKAN_REQUIRE_ETCD").as_deref() == Ok("1") {
            panic!("HOKAN_REQUIRE_ETCD=1 but {why}");
        }
        eprintln!("skipped: {why}; set HOKAN_REQUIRE_ETCD=1 to make this a failure");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl EtcdProcess {
    /// Starts a plain-HTTP etcd; `None` when etcd is not installed.
    pub fn start() -> Option<EtcdProcess> {
        Self::start_with(None, None)
    }

    /// Restores a snapshot file with `etcdctl snapshot restore` into a new
    /// data directory (as an operator recovering a cluster does) and starts
    /// a plain-HTTP etcd on it; `None` when etcd is not installed. Panics
    /// with etcdctl's words if it refuses the file.
    pub fn start_restored(snapshot: &Path) -> Option<EtcdProcess> {
        Self::start_with(None, Some(snapshot))
    }

    /// Starts etcd serving clients over TLS and requiring client
    /// certificates; `client` is the (cert, key, ca) etcdctl uses.
    pub fn start_tls(server: &ServerTls, client: (&Path, &Path, &Path)) -> Option<EtcdProcess> {
        let mut e = Self::start_with(Some(server), None)?;
        e.tls_args = vec![
            format!("--cert={}", client.0.display()),
            format!("--key={}", client.1.display()),
            format!("--cacert={}", client.2.display()),
        ];
        e.wait_ready();
        Some(e)
    }

    fn start_with(tls: Option<&ServerTls>, restore: Option<&Path>) -> Option<EtcdProcess> {
        if !etcd_available() {
            return None;
        }
        let (client, peer) = (free_port(), free_port());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        static SERVERS: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hokan-etcd-{}-{}-{client}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("etcd data directory");
        if let Some(snapshot) = restore {
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg("snapshot")
                .arg("restore")
                .arg(snapshot)
                .arg(format!("--data-dir={}", dir.join("data").display()))
                .arg("--name=hokan-test")
                .arg(format!("--initial-cluster=hokan-test={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .output()
                .expect("etcdctl runs");
            assert!(
                out.status.success(),
                "etcdctl snapshot restore {} failed: {}",
                snapshot.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut cmd = Command::new("etcd");
        cmd.arg("--name=hokan-test")
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=hokan-test={peer_url}"))
            .arg("--logger=zap")
            .arg("--log-level=error")
            .arg("--quota-backend-bytes=8589934592")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("etcd.log")).expect("etcd log file"),
            ));
        if let Some(t) = tls {
            cmd.arg(format!("--cert-file={}", t.cert.display()))
                .arg(format!("--key-file={}", t.key.display()))
                .arg(format!("--trusted-ca-file={}", t.client_ca.display()))
                .arg("--client-cert-auth");
        }
        let args = cmd.get_args().map(|a| a.to_os_string()).collect();
        let child = cmd.spawn().expect("etcd starts");
        let mut e = EtcdProcess {
            child: Some(child),
            dir,
            url,
            tls_args: Vec::new(),
            args,
        };
        if tls.is_none() {
            e.wait_ready();
        }
        Some(e)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.etcdctl(&["endpoint", "health"]);
            if out.status.success() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("etcd exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become healthy in 30 s: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }

    /// A scratch directory removed with the server.
    pub fn scratch(&self) -> &Path {
        &self.dir
    }

    /// Runs `etcdctl` (API v3) against this server with `args`.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.url))
            .args(&self.tls_args)
            .arg("--command-timeout=120s")
            .args(args)
            .output()
            .expect("etcdctl runs")
    }

    /// Runs `etcdctl` and panics with its output unless it succeeds.
    pub fn etcdctl_ok(&self, args: &[&str]) -> String {
        let out = self.etcdctl(args);
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A client for loading keys into this server and reading them back.
    pub fn client(&self) -> KvClient {
        KvClient::connect(&self.url)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server now (the directory stays until drop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl EtcdProcess {
    /// Starts a [`stop`](Self::stop)ped server again on the same ports and
    /// data directory (a member that was down comes back), and waits until
    /// it answers. Does nothing while it runs.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            return;
        }
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join("etcd.log"))
            .expect("etcd log file");
        let child = Command::new("etcd")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("etcd starts");
        self.child = Some(child);
        self.wait_ready();
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Keys into a running etcd and back out, through etcd's KV API (`Txn`,
/// `Range`) over plain HTTP: what tests load before they take a snapshot
/// and compare after a restore. Blocking (it runs its own runtime): call it
/// from a test's thread, not from an async task. It panics with etcd's
/// answer when a call fails, as test support does.
#[derive(Debug)]
pub struct KvClient {
    runtime: tokio::runtime::Runtime,
    kv: Kv<Channel>,
    url: String,
}

/// Puts per transaction: etcd allows 128 operations in one.
const PUTS_PER_TXN: usize = 64;

impl KvClient {
    /// Connects to the etcd at `url` (`http://127.0.0.1:PORT`).
    pub fn connect(url: &str) -> KvClient {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let endpoint = crate::grpc::endpoint(url, None, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("etcd endpoint {url}: {e}"));
        let channel = runtime
            .block_on(endpoint.connect())
            .unwrap_or_else(|e| panic!("connecting to etcd at {url}: {e:?}"));
        // A test may read back more than gRPC's default 4 MiB in one answer.
        let kv = Kv::new(channel).max_decoding_message_size(usize::MAX);
        KvClient {
            runtime,
            kv,
            url: url.to_string(),
        }
    }

    /// Puts `pairs` in order, 64 keys to a transaction (one revision each).
    pub fn put_all<K, V>(&mut self, pairs: impl IntoIterator<Item = (K, V)>)
    where
        K: Into<Vec<u8>>,
        V: Into<Vec<u8>>,
    {
        let ops: Vec<RequestOp> = pairs
            .into_iter()
            .map(|(key, value)| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: key.into(),
                    value: value.into(),
                    ..Default::default()
                })),
            })
            .collect();
        for batch in ops.chunks(PUTS_PER_TXN) {
            let txn = TxnRequest {
                success: batch.to_vec(),
                ..Default::default()
            };
            self.runtime
                .block_on(self.kv.txn(txn))
                .unwrap_or_else(|e| panic!("putting keys into etcd at {}: {e}", self.url));
        }
    }

    /// Every key and its value, sorted by key.
    pub fn all(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        // Key "\0" and range end "\0": every key from the smallest on.
        let range = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        };
        let answer = self
            .runtime
            .block_on(self.kv.range(range))
            .unwrap_or_else(|e| panic!("reading keys from etcd at {}: {e}", self.url));
        answer
            .into_inner()
            .kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect()
    }

    /// The store's current revision.
    pub fn revision(&mut self) -> i64 {
        let range = RangeRequest {
            key: b"/".to_vec(),
            count_only: true,
            ..Default::default()
        };
        let answer = self
            .runtime
            .block_on(self.kv.range(range))
            .unwrap_or_else(|e| panic!("reading the revision of etcd at {}: {e}", self.url));
        answer
            .into_inner()
            .header
            .unwrap_or_else(|| panic!("etcd at {} answered without a header", self.url))
            .revision
    }
}
