//! The small HTTP server beside the controllers: `/metrics`, `/healthz`
//! (the process answers) and `/readyz` (connected to the API server; a
//! standby replica waiting for the Lease is ready too, so rollouts
//! proceed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// What the probes report.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    leading: AtomicBool,
}

impl Health {
    /// Marks the process ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Records whether this replica holds the Lease.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::SeqCst);
    }

    /// Whether this replica holds the Lease.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }
}

/// The server's shared state.
#[derive(Clone, Default)]
pub struct Endpoints {
    /// Gauges for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// State for the probes.
    pub health: Arc<Health>,
}

fn text(status: StatusCode, body: String, kind: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = kind.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Answers one request.
pub fn answer(e: &Endpoints, path: &str) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    match path {
        "/metrics" => {
            let mut body = e.metrics.render();
            body.push_str(&format!(
                "# HELP hokan_operator_leader 1 if this replica holds the Lease and reconciles.\n\
                 # TYPE hokan_operator_leader gauge\nhokan_operator_leader {}\n",
                u8::from(e.health.is_leading())
            ));
            text(
                StatusCode::OK,
                body,
                "text/plain; version=0.0.4; charset=utf-8",
            )
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into(), PLAIN),
        "/readyz" if e.health.is_ready() => text(StatusCode::OK, "ok\n".into(), PLAIN),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the API server has not answered yet\n".into(),
            PLAIN,
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz or /readyz\n".into(),
            PLAIN,
        ),
    }
}

/// Binds `addr` and returns the bound address with the serving future,
/// which runs until `shutdown` turns true.
pub async fn serve(
    addr: SocketAddr,
    endpoints: Endpoints,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let run = async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((s, _)) => s,
                    Err(_) => continue,
                },
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let e = endpoints.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let r = answer(&e, req.uri().path());
                    async move { Ok::<_, std::convert::Infallible>(r) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    Ok((bound, run))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn probes_and_metrics_over_http() {
        let e = Endpoints::default();
        e.metrics
            .set("hokan_x", "help", vec![("a", "b".into())], 2.0);
        let (tx, rx) = watch::channel(false);
        let (addr, run) = serve("127.0.0.1:0".parse().unwrap(), e.clone(), rx)
            .await
            .unwrap();
        let server = tokio::spawn(run);
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        e.health.set_ready(true);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let m = get(addr, "/metrics").await;
        assert!(m.contains("hokan_x{a=\"b\"} 2"), "{m}");
        assert!(m.contains("hokan_operator_leader 0"), "{m}");
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        tx.send(true).unwrap();
        server.await.unwrap();
    }
}
