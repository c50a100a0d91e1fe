//! The few calls of etcd's v3 gRPC API that hokan makes (Maintenance
//! `Status` and `Snapshot`, Cluster `MemberList`; KV `Range` and `Txn` for
//! [`crate::testing`]), and the channel they run on.
//!
//! The Rust code in `grpc/` is generated from a subset of etcd's protos by
//! `tools/etcd-grpc` and committed, so that building hokan needs no
//! protobuf compiler (`docs/DECISIONS.md`, "No protoc to build"). It is
//! included rather than declared as modules so `cargo fmt` leaves it as
//! generated, which `tools/etcd-grpc -- --check` compares.

use std::time::Duration;

use tonic::transport::{ClientTlsConfig, Endpoint};

/// etcd's `mvccpb` package.
#[allow(missing_docs, dead_code, clippy::all, clippy::pedantic)]
pub(crate) mod mvccpb {
    include!("grpc/mvccpb.rs");
}

/// etcd's `etcdserverpb` package.
#[allow(missing_docs, dead_code, clippy::all, clippy::pedantic)]
pub(crate) mod etcdserverpb {
    include!("grpc/etcdserverpb.rs");
}

/// The endpoint for an etcd client URL, as etcdctl and etcd-client read
/// one: `https://` uses TLS (with `tls`, or no client certificate and no
/// CA), `http://` and a bare `host:port` do not.
pub(crate) fn endpoint(
    url: &str,
    tls: Option<ClientTlsConfig>,
    connect_timeout: Duration,
) -> Result<Endpoint, tonic::transport::Error> {
    let url = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let https = url.starts_with("https://");
    let mut endpoint = Endpoint::from_shared(url)?.connect_timeout(connect_timeout);
    if https {
        endpoint = endpoint.tls_config(tls.unwrap_or_default())?;
    }
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_as_etcdctl_reads_them() {
        let t = Duration::from_secs(1);
        let uri = |u: &str| endpoint(u, None, t).unwrap().uri().to_string();
        assert_eq!(uri("127.0.0.1:2379"), "http://127.0.0.1:2379/");
        assert_eq!(uri("http://127.0.0.1:2379"), "http://127.0.0.1:2379/");
        assert_eq!(uri("https://10.0.0.1:2379"), "https://10.0.0.1:2379/");
        assert!(endpoint("http://[bad", None, t).is_err());
    }
}
