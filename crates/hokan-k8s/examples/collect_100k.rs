//! Benchmark: back up 100,000 generated objects in 200 namespaces from the
//! in-process API server, then restore them to a directory.
//!
//! ```sh
//! cargo run --release -p hokan-k8s --features test-server --example collect_100k -- [OBJECTS] [NAMESPACES]
//! ```
//!
//! The API server runs in a child process (this binary started again with
//! `--serve`), so the peak memory measured is the backup's alone, not the
//! server's store. Peak RSS per phase comes from `VmHWM`, reset between
//! phases through `/proc/self/clear_refs`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use hokan_k8s::testserver::{GenerateOptions, TestServer};
use hokan_k8s::{
    BackupOptions, BackupSummary, Cluster, ManifestDir, ObjectSink, ObjectSource, RestoreOptions,
    StoredObject, Target, backup, execute, plan,
};

/// A sink that keeps nothing but a running hash and count, standing in for
/// a repository session whose blobs leave memory as they are packed.
#[derive(Default)]
struct Discard {
    objects: u64,
    bytes: u64,
    hash: u64,
}

impl ObjectSink for Discard {
    async fn put(&mut self, object: StoredObject) -> hokan_k8s::Result<()> {
        self.objects += 1;
        self.bytes += object.json.len() as u64;
        for b in object.json.iter().step_by(64) {
            self.hash = self.hash.rotate_left(5) ^ u64::from(*b);
        }
        Ok(())
    }

    async fn finish(&mut self, _: &BackupSummary) -> hokan_k8s::Result<()> {
        Ok(())
    }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn reset_peak() {
    // "5" resets the peak resident set size (Linux 4.0+).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn serve(objects: usize, namespaces: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let server = TestServer::start().await.expect("start the test server");
        server.generate(&GenerateOptions {
            objects,
            namespaces,
            seed: 1,
        });
        println!("READY {}", server.url());
        std::io::stdout().flush().ok();
        // Serve until the parent closes our stdin.
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await;
    });
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        serve(args[2].parse()?, args[3].parse()?);
        return Ok(());
    }
    let objects: usize = args.get(1).map_or(Ok(100_000), |a| a.parse())?;
    let namespaces: usize = args.get(2).map_or(Ok(200), |a| a.parse())?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(objects, namespaces))
}

async fn run(objects: usize, namespaces: usize) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--serve", &objects.to_string(), &namespaces.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let url = loop {
        let line = lines.next().ok_or("the server exited")??;
        if let Some(url) = line.strip_prefix("READY ") {
            break url.to_string();
        }
    };
    println!(
        "server with {objects} objects in {namespaces} namespaces ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let client = kube::Client::try_from(kube::Config::new(url.parse()?))?;
    let cluster = Cluster::from_client(client, "bench");

    reset_peak();
    let t = Instant::now();
    let mut discard = Discard::default();
    let summary = backup(&cluster, &BackupOptions::default(), &mut discard).await?;
    println!(
        "backup to a discarding sink: {} objects, {:.1} MiB of JSON, {} list requests in {:.2} s, peak RSS {:.1} MiB",
        summary.objects,
        summary.bytes as f64 / 1048576.0,
        summary.pages,
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );

    let dir = tempfile::tempdir()?;
    let mut manifests = ManifestDir::new(dir.path().join("backup"));
    reset_peak();
    let t = Instant::now();
    let summary = backup(&cluster, &BackupOptions::default(), &mut manifests).await?;
    println!(
        "backup to a manifest directory: {} objects in {:.2} s, peak RSS {:.1} MiB",
        summary.objects,
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );

    reset_peak();
    let t = Instant::now();
    let out = ManifestDir::new(dir.path().join("restore"));
    let restore_plan = plan(&manifests, None, &RestoreOptions::default()).await?;
    let planned = t.elapsed().as_secs_f64();
    let report = execute(
        &restore_plan,
        &manifests,
        Target::Dir(&out),
        &RestoreOptions::default(),
    )
    .await?;
    println!(
        "restore to a directory: {} objects ({} planned in {planned:.2} s) in {:.2} s, peak RSS {:.1} MiB",
        report.outcomes.len(),
        restore_plan.steps.len(),
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    assert_eq!(out.list().await?.len(), restore_plan.steps.len());

    drop(child.stdin.take());
    child.wait()?;
    Ok(())
}
