//! Benchmark: one node's pod volumes backed up one at a time and several
//! at once (`hokan k8s volumes backup --parallel N`), first and unchanged.
//!
//! ```sh
//! cargo run --release -p hokan-k8s --features test-server --example node_volumes -- \
//!     [VOLUMES] [FILES_PER_VOLUME] [DIR]
//! ```
//!
//! Builds a kubelet-shaped directory under DIR (default: a temporary
//! directory; put it on a real disk) with VOLUMES emptyDir volumes of
//! FILES_PER_VOLUME small text files each (1–16 KiB), serves the pods from
//! the in-process API server, and for each parallelism (1, 2, 4) backs them
//! up into a fresh local repository twice. The page cache is dropped
//! before each run when running as root, so the walk waits on the disk as
//! it does on a node.

use std::path::Path;
use std::time::Instant;

use hokan_core::fs::NoProgress;
use hokan_core::sample::{Kind, generate};
use hokan_k8s::testserver::TestServer;
use hokan_k8s::volumes;
use hokan_repo::{InitOptions, KdfParams, OpenOptions, Repository};
use serde_json::json;

type Fallible<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn drop_caches() -> &'static str {
    let ok = std::process::Command::new("sync").status().is_ok()
        && std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    if ok { "cold" } else { "warm (not root)" }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Fallible {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n_volumes: usize = args.first().map_or(Ok(12), |a| a.parse())?;
    let n_files: usize = args.get(1).map_or(Ok(2000), |a| a.parse())?;
    let tmp = tempfile::tempdir()?;
    let dir = args.get(2).map_or(tmp.path().to_path_buf(), Into::into);
    let server = TestServer::start().await?;
    let mut objects =
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})];
    for i in 0..n_volumes {
        objects.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("p{i}"), "namespace": "bench",
                         "annotations": {volumes::BACKUP_VOLUMES: "data"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "x"}],
                     "volumes": [{"name": "data", "emptyDir": {}}]},
            "status": {"phase": "Running"},
        }));
    }
    server.seed(objects)?;
    let cluster = server.cluster()?;
    let kubelet = dir.join("kubelet");
    let mut bytes = 0u64;
    for i in 0..n_volumes {
        let uid = server
            .object("", "pods", Some("bench"), &format!("p{i}"))
            .ok_or("a seeded pod is missing")?["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let root = kubelet.join(format!("pods/{uid}/volumes/kubernetes.io~empty-dir/data"));
        for f in 0..n_files {
            let sub = root.join(format!("d{}", f % 40));
            std::fs::create_dir_all(&sub)?;
            let len = 1024 + (f * 7919 + i * 104_729) % (15 * 1024);
            let data = generate(Kind::Text, len, (i * n_files + f) as u64);
            bytes += data.len() as u64;
            std::fs::write(sub.join(format!("f{f}.txt")), data)?;
        }
    }
    let found = volumes::node_volumes(&cluster, "node-1", &kubelet, false).await?;
    println!(
        "{} volumes, {} files, {:.1} MiB; machine: {} cores",
        found.found.len(),
        n_volumes * n_files,
        bytes as f64 / (1 << 20) as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| --parallel | first backup s | unchanged backup s | cache |");
    println!("|---:|---:|---:|---|");
    for threads in [1, 2, 4] {
        let location = dir.join(format!("repo-{threads}"));
        let _ = std::fs::remove_dir_all(&location);
        let location = location.to_string_lossy().into_owned();
        let init = InitOptions {
            kdf: KdfParams {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            ..Default::default()
        };
        Repository::init(&location, b"bench", init, OpenOptions::default())?;
        let mut times = Vec::new();
        let mut cache = "";
        for _ in 0..2 {
            let mut repo =
                Repository::open(&location, b"bench", OpenOptions::default())?.load_index()?;
            cache = drop_caches();
            let start = Instant::now();
            let done = volumes::backup_volumes(
                &mut repo,
                &found.found,
                "node-1",
                &[],
                &NoProgress,
                threads,
            )?;
            times.push(start.elapsed().as_secs_f64());
            for d in done {
                d?;
            }
        }
        println!(
            "| {threads} | {:.2} | {:.2} | {cache} |",
            times[0], times[1]
        );
        cleanup(Path::new(&location));
    }
    Ok(())
}

fn cleanup(location: &Path) {
    let _ = std::fs::remove_dir_all(location);
}
