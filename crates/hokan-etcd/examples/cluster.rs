//! A real etcd for `bench/compare.sh`: a snapshot of many Kubernetes
//! objects, or a member serving a saved snapshot while measurements run.
//!
//! ```text
//! cargo run --release -p hokan-etcd --example cluster -- objects FILE.db [N]
//! cargo run --release -p hokan-etcd --example cluster -- serve FILE.db
//! ```
//!
//! `objects` starts Debian's etcd on loopback, writes N objects (default
//! 100000) under the keys kube-apiserver uses, in the forms it stores them
//! (the protobuf envelopes of Kubernetes' own fixtures for ConfigMaps,
//! Secrets, Deployments, Services and Pods, renamed per object, and JSON
//! for a custom resource), and saves a snapshot with `etcdctl snapshot
//! save`. `serve` restores FILE.db with `etcdctl snapshot restore` into a
//! new member, prints its client URL on stdout, and serves until stdin
//! closes (the etcd process and its data go with it).

use std::io::Read;
use std::path::{Path, PathBuf};

use hokan_etcd::testing::EtcdProcess;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("objects") if args.len() >= 2 => {
            let n = args.get(2).map_or(100_000, |s| s.parse().expect("a count"));
            objects(Path::new(&args[1]), n);
        }
        Some("serve") if args.len() == 2 => serve(Path::new(&args[1])),
        _ => {
            eprintln!("usage: cluster objects FILE.db [N] | cluster serve FILE.db");
            std::process::exit(2);
        }
    }
}

fn testdata(name: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/k8s/api-testdata");
    std::fs::read(dir.join(name)).expect("shared/k8s/api-testdata")
}

/// The fixture's value with its generated name replaced, so each object
/// is its own: the envelope's protobuf strings are length-prefixed, so the
/// replacement keeps the length (`nameValue` is 9 bytes).
fn renamed(value: &[u8], i: u64) -> Vec<u8> {
    let name = format!("n{i:08}");
    let mut out = value.to_vec();
    let needle = b"nameValue";
    let mut at = 0;
    while let Some(p) = out[at..].windows(needle.len()).position(|w| w == needle) {
        out[at + p..at + p + needle.len()].copy_from_slice(name.as_bytes());
        at += p + needle.len();
    }
    out
}

fn objects(file: &Path, n: u64) {
    let etcd =
        EtcdProcess::start().expect("etcd is installed (apt-get install etcd-server etcd-client)");
    let kinds: Vec<(&str, Vec<u8>)> = vec![
        ("configmaps", testdata("core.v1.ConfigMap.pb")),
        ("secrets", testdata("core.v1.Secret.pb")),
        ("deployments", testdata("apps.v1.Deployment.pb")),
        ("services/specs", testdata("core.v1.Service.pb")),
        ("pods", testdata("core.v1.Pod.pb")),
    ];
    let mut client = etcd.client();
    let t = std::time::Instant::now();
    let mut batch = Vec::with_capacity(64);
    for i in 0..n {
        let ns = format!("team-{}", i % 200);
        let (key, value) = match i % 6 {
            5 => (
                format!("/registry/example.com/widgets/{ns}/w-{i}"),
                format!(
                    "{{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"metadata\":{{\"name\":\"w-{i}\",\"namespace\":\"{ns}\",\"uid\":\"{i:032x}\"}},\"spec\":{{\"size\":{i}}}}}"
                )
                .into_bytes(),
            ),
            k => {
                let (resource, value) = &kinds[k as usize];
                (format!("/registry/{resource}/{ns}/obj-{i}"), renamed(value, i))
            }
        };
        batch.push((key, value));
        if batch.len() == 64 || i + 1 == n {
            client.put_all(std::mem::take(&mut batch));
        }
    }
    let _ = std::fs::remove_file(file);
    etcd.etcdctl_ok(&["snapshot", "save", file.to_str().unwrap()]);
    println!(
        "{}: {n} objects, {} bytes, written in {:.1} s",
        file.display(),
        std::fs::metadata(file).unwrap().len(),
        t.elapsed().as_secs_f64()
    );
}

fn serve(file: &Path) {
    let etcd = EtcdProcess::start_restored(file).expect("etcd is installed");
    println!("{}", etcd.url);
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(etcd);
}
