//! Benchmark: back up 100,000 generated objects in 200 namespaces from the
//! in-process API server into a local hokan repository, back them up again
//! unchanged, then restore the snapshot to a directory.
//!
//! ```sh
//! cargo run --release -p hokan-k8s --features test-server --example collect_100k -- [OBJECTS] [NAMESPACES]
//! ```
//!
//! Every phase runs in a process of its own (this binary started again
//! with `--serve`, `--collect`, `--backup`, `--dry-run` or `--restore`): the API server's store never
//! counts, and each phase's peak resident memory (`VmHWM`) is its own, not
//! what an earlier phase left in the allocator. Stored bytes are what the
//! repository's directory grew by (packs, index files, the snapshot).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use hokan_core::fs::NoProgress;
use hokan_k8s::repository::counts;
use hokan_k8s::testserver::{GenerateOptions, TestServer};
use hokan_k8s::{
    BackupOptions, BackupSummary, Cluster, ManifestDir, ObjectSink, RestoreOptions,
    SnapshotOptions, SnapshotSource, StoredObject, Target, backup, backup_to_repository,
    execute_with, plan,
};
use hokan_repo::{InitOptions, KdfParams, OpenOptions, Repository};

type Fallible<T = ()> = Result<T, Box<dyn std::error::Error>>;

const PASSWORD: &[u8] = b"bench";

/// A sink that keeps nothing: what listing alone costs.
#[derive(Default)]
struct Discard {
    objects: u64,
}

impl ObjectSink for Discard {
    async fn put(&mut self, _: StoredObject) -> hokan_k8s::Result<()> {
        self.objects += 1;
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

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn serve(objects: usize, namespaces: usize) -> Fallible {
    runtime()?.block_on(async {
        let server = TestServer::start().await?;
        server.generate(&GenerateOptions {
            objects,
            namespaces,
            seed: 1,
        });
        println!("READY {}", server.url());
        std::io::stdout().flush()?;
        // Serve until the parent closes our stdin.
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await;
        Ok(())
    })
}

fn cluster(url: &str) -> Fallible<Cluster> {
    hokan_k8s::cluster::install_crypto_provider();
    let client = kube::Client::try_from(kube::Config::new(url.parse()?))?;
    Ok(Cluster::from_client(client, "bench"))
}

fn open(repo: &str) -> Fallible<hokan_repo::IndexedRepository> {
    Ok(Repository::open(repo, PASSWORD, OpenOptions::default())?.load_index()?)
}

/// One phase, in its own process: prints one result line.
fn phase(which: &str, url: &str, repo: &str, out: &str) -> Fallible {
    runtime()?.block_on(async {
        let t = Instant::now();
        let line = match which {
            "--collect" => {
                let summary = backup(
                    &cluster(url)?,
                    &BackupOptions::default(),
                    &mut Discard::default(),
                )
                .await?;
                format!(
                    "{} objects, {:.1} MiB of JSON, {} list requests",
                    summary.objects,
                    summary.bytes as f64 / 1048576.0,
                    summary.pages
                )
            }
            "--backup" => {
                let mut repo = open(repo)?;
                let saved = backup_to_repository(
                    &cluster(url)?,
                    &BackupOptions::default(),
                    &mut repo,
                    &SnapshotOptions::default(),
                    &NoProgress,
                )
                .await?;
                let s = &saved.entry.snapshot.summary;
                format!(
                    "{} objects ({} new, {} unmodified), {} blobs added",
                    saved.value.objects,
                    s.count(counts::NEW),
                    s.count(counts::UNMODIFIED),
                    s.blobs_added
                )
            }
            "--restore" | "--dry-run" => {
                let repo = open(repo)?;
                let latest = repo.find_snapshot("latest", &Default::default())?;
                let source = SnapshotSource::new(&repo, &latest)?;
                let options = RestoreOptions::default();
                let restore_plan = plan(&source, None, &options).await?;
                let planned = t.elapsed().as_secs_f64();
                let dir = ManifestDir::new(out);
                // The dry run reads, maps and sanitizes every object and
                // writes nothing: the restore's cost without the files.
                let target = match which {
                    "--restore" => Target::Dir(&dir),
                    _ => Target::DryRun,
                };
                let report = execute_with(&restore_plan, &source, target, &options, |_| {}).await?;
                let done = report.totals.written + report.totals.would_create;
                assert_eq!(done as usize, restore_plan.steps.len());
                format!("{done} objects ({planned:.2} s of it planning)")
            }
            other => return Err(format!("unknown phase {other}").into()),
        };
        println!(
            "RESULT {:.2} s, peak RSS {:.1} MiB: {line}",
            t.elapsed().as_secs_f64(),
            peak_rss_mib()
        );
        Ok(())
    })
}

/// Runs a phase in a child process and returns its result line.
fn child(which: &str, url: &str, repo: &str, out: &str) -> Fallible<String> {
    let output = Command::new(std::env::current_exe()?)
        .args([which, url, repo, out])
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    match text.lines().find_map(|l| l.strip_prefix("RESULT ")) {
        Some(line) if output.status.success() => Ok(line.to_string()),
        _ => Err(format!("phase {which} failed: {text}").into()),
    }
}

/// Bytes of every file below `dir`.
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

fn main() -> Fallible {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--serve") => return serve(args[2].parse()?, args[3].parse()?),
        Some(p @ ("--collect" | "--backup" | "--restore" | "--dry-run")) => {
            return phase(p, &args[2], &args[3], &args[4]);
        }
        _ => {}
    }
    let objects: usize = args.get(1).map_or(Ok(100_000), |a| a.parse())?;
    let namespaces: usize = args.get(2).map_or(Ok(200), |a| a.parse())?;

    let started = Instant::now();
    let mut server = Command::new(std::env::current_exe()?)
        .args(["--serve", &objects.to_string(), &namespaces.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(server.stdout.take().ok_or("no stdout")?).lines();
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

    let dir = tempfile::tempdir()?;
    let repo_dir = dir.path().join("repo");
    let repo = repo_dir.to_str().ok_or("temporary path is not UTF-8")?;
    let out = dir.path().join("restore");
    let out = out.to_str().ok_or("temporary path is not UTF-8")?;
    let init = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    Repository::init(repo, PASSWORD, init, OpenOptions::default())?;

    println!(
        "collect only:            {}",
        child("--collect", &url, repo, out)?
    );
    let before = dir_size(&repo_dir);
    println!(
        "first backup:            {}",
        child("--backup", &url, repo, out)?
    );
    let first = dir_size(&repo_dir) - before;
    println!(
        "  stored {first} bytes ({:.2} MiB)",
        first as f64 / 1048576.0
    );
    println!(
        "unchanged second backup: {}",
        child("--backup", &url, repo, out)?
    );
    let second = dir_size(&repo_dir) - before - first;
    println!(
        "  stored {second} bytes, {:.3}% of the first",
        second as f64 * 100.0 / first.max(1) as f64
    );
    println!(
        "restore, dry run:        {}",
        child("--dry-run", &url, repo, out)?
    );
    println!(
        "restore to a directory:  {}",
        child("--restore", &url, repo, out)?
    );

    drop(server.stdin.take());
    server.wait()?;
    Ok(())
}
