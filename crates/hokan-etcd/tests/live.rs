//! Live snapshots from a real etcd: the bytes etcdctl would save, verified,
//! streamed into the splitter; TLS with client certificates; clear failures.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use hokan_etcd::testdata::configmap_json;
use hokan_etcd::testing::{EtcdProcess, ServerTls};
use hokan_etcd::{
    Error, EtcdEndpoint, IterSource, LiveSnapshot, MemorySink, SplitOptions, Trailer, rebuild,
    split, status,
};

fn load(etcd: &EtcdProcess, n: u64) {
    common::put_all(
        etcd,
        (0..n).map(|i| {
            (
                format!("/registry/configmaps/a/cm-{i}"),
                configmap_json(i, 0, 2500),
            )
        }),
    );
}

#[test]
fn a_live_snapshot_is_what_etcdctl_saves_and_splits_while_streaming() {
    let Some(etcd) = EtcdProcess::start() else {
        return;
    };
    load(&etcd, 800);
    let saved = etcd.scratch().join("etcdctl.db");
    common::save(&etcd, &saved);

    let live = LiveSnapshot::start(&EtcdEndpoint::new(&etcd.url).unwrap()).unwrap();
    let id = live.identity().clone();
    assert_ne!(id.cluster_id, 0);
    assert_ne!(id.member_id, 0);
    assert_eq!(id.member_name, "hokan-test");
    assert!(id.revision >= 2, "{id:?}");
    assert!(id.version.starts_with("3."), "{id:?}");

    // Streamed straight into the splitter, then rebuilt.
    let mut sink = MemorySink::default();
    let summary = split(live, &mut sink, &SplitOptions::bbolt("the snapshot stream")).unwrap();
    assert_eq!(summary.trailer, Trailer::Valid);
    assert!(summary.records >= 800);
    let mut bytes = Vec::new();
    rebuild(
        &sink.layout[..],
        &mut IterSource(sink.records.iter()),
        &mut bytes,
    )
    .unwrap();

    // Nothing was written in between: the same bytes etcdctl saved.
    let expected = std::fs::read(&saved).unwrap();
    assert_eq!(bytes.len(), expected.len());
    assert!(
        bytes == expected,
        "the live snapshot differs from etcdctl's"
    );
    let st = status(&bytes, "live").unwrap();
    assert_eq!(st.revision, id.revision);
    assert_eq!(summary.meta.unwrap().db_size() + 32, bytes.len() as u64);
}

#[test]
fn several_endpoints_are_refused_like_etcdctl() {
    let err = EtcdEndpoint::new("http://127.0.0.1:2379,http://127.0.0.1:22379").unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }));
    assert!(err.to_string().contains("exactly one etcd member"), "{err}");
}

#[test]
fn a_stopped_server_fails_fast_and_clearly() {
    let Some(mut etcd) = EtcdProcess::start() else {
        return;
    };
    let ep = EtcdEndpoint::new(&etcd.url).unwrap();
    etcd.stop();
    let t = Instant::now();
    let err = LiveSnapshot::start(&ep).unwrap_err().to_string();
    assert!(
        err.contains("cannot connect") && err.contains("refused"),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn a_server_that_dies_mid_stream_is_an_error_not_an_end() {
    let Some(mut etcd) = EtcdProcess::start() else {
        return;
    };
    // ~40 MB: far more than the socket buffers hold.
    for part in 0..4 {
        common::put_all(
            &etcd,
            (0..4000).map(|i| {
                let i = part * 4000 + i;
                (format!("/registry/bulk/{i}"), configmap_json(i, 0, 2500))
            }),
        );
    }
    let mut ep = EtcdEndpoint::new(&etcd.url).unwrap();
    ep.idle_timeout = Duration::from_secs(5);
    let mut live = LiveSnapshot::start(&ep).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    live.read_exact(&mut buf).unwrap();
    etcd.stop();
    let t = Instant::now();
    let mut rest = Vec::new();
    let err = live.read_to_end(&mut rest).unwrap_err();
    eprintln!("died mid-stream after {} more bytes: {err}", rest.len());
    let inner = err.into_inner().unwrap().downcast::<Error>().unwrap();
    assert!(
        matches!(*inner, Error::Truncated { .. } | Error::Etcd { .. }),
        "{inner}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    // Once failed, it stays failed: nobody can mistake the rest for an end.
    assert!(live.read(&mut buf).is_err());
}

#[test]
fn tls_with_client_certificates_and_a_wrong_ca() {
    if !hokan_etcd::testing::etcd_available() {
        return;
    }
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = common::pki(pki_dir.path());
    let server = ServerTls {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: pki.ca.clone(),
    };
    let etcd =
        EtcdProcess::start_tls(&server, (&pki.client_cert, &pki.client_key, &pki.ca)).unwrap();
    etcd.etcdctl_ok(&["put", "/registry/secrets/kube-system/x", "tls works"]);
    assert!(etcd.url.starts_with("https://"));

    let ep = EtcdEndpoint::new(&etcd.url)
        .unwrap()
        .with_ca_cert(&pki.ca)
        .with_client_cert(&pki.client_cert, &pki.client_key);
    let mut bytes = Vec::new();
    LiveSnapshot::start(&ep)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let st = status(&bytes, "tls snapshot").unwrap();
    assert!(st.total_key >= 1);

    // The server's certificate is not signed by this CA.
    let wrong = EtcdEndpoint::new(&etcd.url)
        .unwrap()
        .with_ca_cert(&pki.other_ca)
        .with_client_cert(&pki.client_cert, &pki.client_key);
    let t = Instant::now();
    let err = LiveSnapshot::start(&wrong).unwrap_err();
    eprintln!("wrong CA: {err}");
    assert!(
        matches!(
            err,
            Error::Tls {
                client_certificate: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("CA certificate"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );

    // No client certificate: etcd refuses the handshake.
    let anonymous = EtcdEndpoint::new(&etcd.url).unwrap().with_ca_cert(&pki.ca);
    let err = LiveSnapshot::start(&anonymous).unwrap_err();
    eprintln!("no client certificate: {err}");
    assert!(
        matches!(
            err,
            Error::Tls {
                client_certificate: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("client certificate and key"),
        "{err}"
    );

    // A key without a certificate is a usage error, found before connecting.
    let mut half = ep.clone();
    half.cert = None;
    let err = LiveSnapshot::start(&half).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
}
