//! Shared by the integration tests: loading keys into a real etcd, a test
//! PKI, and etcdctl's own answers to compare with.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hokan_etcd::testing::{EtcdProcess, KvClient};

/// Puts `pairs` into etcd in transactions of 64 keys (one revision each).
pub fn put_all(etcd: &EtcdProcess, pairs: impl IntoIterator<Item = (String, Vec<u8>)>) {
    etcd.client().put_all(pairs)
}

/// `etcdctl snapshot save` into `path` (a fresh file).
pub fn save(etcd: &EtcdProcess, path: &Path) {
    etcd.etcdctl_ok(&["snapshot", "save", path.to_str().unwrap()]);
}

/// `etcdctl snapshot status -w json` of a file, as (hash, revision, totalKey, totalSize).
pub fn etcdctl_status(path: &Path) -> (u32, i64, u64, u64) {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["hash"].as_u64().unwrap() as u32,
        v["revision"].as_i64().unwrap(),
        v["totalKey"].as_u64().unwrap(),
        v["totalSize"].as_u64().unwrap(),
    )
}

/// PEM files of a test PKI: a CA signing a server certificate for
/// 127.0.0.1 and a client certificate, and an unrelated CA.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
}

pub fn pki(dir: &Path) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, SanType,
    };
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let ca = |cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(params, key))
    };
    let (ca_pem, issuer) = ca("hokan test CA");
    let (other_pem, _) = ca("some other CA");
    let leaf = |cn: &str, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf("etcd server", ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = leaf("root", ExtendedKeyUsagePurpose::ClientAuth);
    Pki {
        ca: write("ca.pem", ca_pem),
        server_cert: write("server.pem", server_cert),
        server_key: write("server-key.pem", server_key),
        client_cert: write("client.pem", client_cert),
        client_key: write("client-key.pem", client_key),
        other_ca: write("other-ca.pem", other_pem),
    }
}

/// Every key and value in etcd, sorted by key.
pub fn all_kvs(url: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    KvClient::connect(url).all()
}

/// A fresh repository with cheap key stretching, index loaded.
pub fn repo(dir: &Path) -> hokan_repo::IndexedRepository {
    use hokan_repo::{InitOptions, KdfParams, OpenOptions, Repository};
    let location = dir.join("repo");
    let location = location.to_str().unwrap();
    let init = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    Repository::init(
        location,
        b"pw",
        init,
        OpenOptions {
            cache: hokan_repo::CacheMode::Off,
            ..Default::default()
        },
    )
    .unwrap();
    reopen(dir)
}

/// The repository of [`repo`] opened again (a fresh index).
pub fn reopen(dir: &Path) -> hokan_repo::IndexedRepository {
    let location = dir.join("repo");
    hokan_repo::Repository::open(
        location.to_str().unwrap(),
        b"pw",
        hokan_repo::OpenOptions {
            cache: hokan_repo::CacheMode::Off,
            ..Default::default()
        },
    )
    .unwrap()
    .load_index()
    .unwrap()
}

/// The store's current revision.
pub fn revision(url: &str) -> i64 {
    KvClient::connect(url).revision()
}
