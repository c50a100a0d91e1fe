//! `--metrics-file` and `--metrics-push`: each command's outcome in the
//! Prometheus text exposition format, for node-exporter's textfile
//! collector or a Pushgateway, so "no successful backup in 24 hours" can
//! be an alert rule.
//!
//! Every command writes `hokan_command_*` gauges labelled with the command
//! (`backup`, `etcd backup`, ...) and the repository; commands add their
//! own figures through [`gauge`] while they run.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use hokan_repo::SnapshotEntry;

/// One sample of a gauge.
#[derive(Clone, Debug)]
struct Sample {
    name: &'static str,
    help: &'static str,
    labels: Vec<(&'static str, String)>,
    value: f64,
}

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Figures commands recorded while running.
static RECORDED: Mutex<Vec<Sample>> = Mutex::new(Vec::new());

/// The metric that carries the last success over failed runs.
const LAST_SUCCESS: &str = "hokan_last_success_timestamp_seconds";

/// Turns recording on (only when metrics go somewhere: figures that cost
/// a listing are not gathered otherwise).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether any metrics output was asked for.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Records a command-specific gauge.
pub fn gauge(name: &'static str, help: &'static str, value: f64) {
    gauge_with(name, help, Vec::new(), value);
}

/// Records a gauge with labels of its own (beside command and repository).
pub fn gauge_with(
    name: &'static str,
    help: &'static str,
    labels: Vec<(&'static str, String)>,
    value: f64,
) {
    if let Ok(mut r) = RECORDED.lock() {
        r.push(Sample {
            name,
            help,
            labels,
            value,
        });
    }
}

/// Records what a backup (of any source) stored.
pub fn record_backup(saved: &SnapshotEntry) {
    let s = &saved.snapshot.summary;
    let files = s.count(hokan_repo::snapshot::counts::FILES) + s.count("objects");
    gauge(
        "hokan_backup_bytes_read",
        "Bytes of content in the new snapshot (read, or unchanged since the parent).",
        s.bytes as f64,
    );
    gauge(
        "hokan_backup_bytes_added",
        "Plaintext bytes of new data the backup added.",
        s.bytes_added as f64,
    );
    gauge(
        "hokan_backup_bytes_stored",
        "Bytes the backup added to the store (compressed, encrypted, packed).",
        s.bytes_stored as f64,
    );
    gauge(
        "hokan_backup_files",
        "Files (or objects) in the new snapshot.",
        files as f64,
    );
    gauge(
        "hokan_backup_errors",
        "Entries that could not be read completely.",
        s.errors as f64,
    );
    gauge_with(
        "hokan_backup_snapshot_info",
        "The snapshot the backup saved (always 1; the id is a label).",
        vec![
            ("snapshot_id", saved.id.to_hex()),
            ("source", saved.snapshot.source.name().to_string()),
            ("hostname", saved.snapshot.hostname.clone()),
        ],
        1.0,
    );
}

/// The command's name as typed: `backup`, `etcd backup`, `key add`.
pub fn command_name(m: &clap::ArgMatches) -> String {
    let mut parts = Vec::new();
    let mut cur = m;
    while let Some((name, sub)) = cur.subcommand() {
        parts.push(name.to_string());
        cur = sub;
    }
    parts.join(" ")
}

/// A label value, escaped as the exposition format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// The exposition text: `# HELP`, `# TYPE` and the samples of each gauge,
/// every sample labelled with the command and repository.
fn render(base: &[(&'static str, String)], samples: &[Sample]) -> String {
    let mut out = String::new();
    let mut done: Vec<&str> = Vec::new();
    for s in samples {
        if done.contains(&s.name) {
            continue;
        }
        done.push(s.name);
        out.push_str(&format!(
            "# HELP {} {}\n# TYPE {} gauge\n",
            s.name, s.help, s.name
        ));
        for x in samples.iter().filter(|x| x.name == s.name) {
            let labels: Vec<String> = base
                .iter()
                .chain(&x.labels)
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            out.push_str(&format!("{}{{{}}} {}\n", x.name, labels.join(","), x.value));
        }
    }
    out
}

/// The last success time an earlier run wrote to `path` for these labels:
/// a failed run must not make the textfile forget it.
fn previous_success(path: &Path, labels: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let prefix = format!("{LAST_SUCCESS}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// What `finish` writes, and where.
pub struct Outcome<'a> {
    pub command: &'a str,
    pub repository: &'a str,
    pub start: SystemTime,
    pub end: SystemTime,
    pub exit_code: u8,
}

/// Writes the metrics for a finished command to the file and/or the
/// Pushgateway the global flags name.
pub fn finish(g: &crate::Global, o: &Outcome) -> Result<()> {
    let base = vec![
        ("command", o.command.to_string()),
        ("repository", o.repository.to_string()),
    ];
    let success = o.exit_code == 0;
    let mut samples = vec![
        Sample {
            name: "hokan_command_success",
            help: "1 if the command succeeded (exit code 0), else 0.",
            labels: vec![],
            value: if success { 1.0 } else { 0.0 },
        },
        Sample {
            name: "hokan_command_exit_code",
            help: "The command's exit code (3: backup finished, some files unreadable).",
            labels: vec![],
            value: o.exit_code as f64,
        },
        Sample {
            name: "hokan_command_start_timestamp_seconds",
            help: "When the command started, Unix seconds.",
            labels: vec![],
            value: seconds(o.start),
        },
        Sample {
            name: "hokan_command_end_timestamp_seconds",
            help: "When the command ended, Unix seconds.",
            labels: vec![],
            value: seconds(o.end),
        },
        Sample {
            name: "hokan_command_duration_seconds",
            help: "How long the command ran.",
            labels: vec![],
            value: o
                .end
                .duration_since(o.start)
                .unwrap_or_default()
                .as_secs_f64(),
        },
    ];
    let label_text: String = base
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",");
    let last_success = if success {
        Some(seconds(o.end))
    } else {
        g.metrics_file
            .as_deref()
            .and_then(|p| previous_success(p, &label_text))
    };
    if let Some(t) = last_success {
        samples.push(Sample {
            name: LAST_SUCCESS,
            help: "When this command last succeeded, Unix seconds.",
            labels: vec![],
            value: t,
        });
    }
    samples.extend(RECORDED.lock().map(|r| r.clone()).unwrap_or_default());
    let text = render(&base, &samples);
    let mut result = Ok(());
    if let Some(path) = &g.metrics_file {
        result = write_file(path, &text);
    }
    if let Some(url) = &g.metrics_push {
        let pushed = push(url, o, &text, success);
        result = result.and(pushed);
    }
    result
}

/// Writes `text` to `path` atomically: the textfile collector must never
/// read a half-written file, so write `path.tmp` and rename it.
fn write_file(path: &Path, text: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// URL-safe base64 with padding, for grouping labels in a Pushgateway URL
/// (a repository location holds slashes).
fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// The Pushgateway URL for this command's group: one group per command
/// and repository, so runs of different commands do not replace each other.
pub fn push_url(base: &str, command: &str, repository: &str) -> String {
    format!(
        "{}/metrics/job/hokan/command@base64/{}/repository@base64/{}",
        base.trim_end_matches('/'),
        base64url(command.as_bytes()),
        base64url(repository.as_bytes())
    )
}

/// Pushes to a Pushgateway. A success replaces the group (PUT); a failure
/// only replaces the metrics it sends (POST), so the group keeps the last
/// success time an earlier run pushed.
fn push(base: &str, o: &Outcome, text: &str, success: bool) -> Result<()> {
    let url = push_url(base, o.command, o.repository);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("creating an HTTP client")?;
    let req = if success {
        client.put(&url)
    } else {
        client.post(&url)
    };
    req.header("Content-Type", "text/plain; version=0.0.4")
        .body(text.to_string())
        .send()
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("pushing metrics to {url}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_the_standard() {
        assert_eq!(base64url(b"/var/tmp"), "L3Zhci90bXA=");
        assert_eq!(base64url(b"ab"), "YWI=");
        assert_eq!(base64url(b"abc"), "YWJj");
        assert_eq!(base64url(b"a"), "YQ==");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8=");
    }

    #[test]
    fn labels_are_escaped() {
        let s = Sample {
            name: "m",
            help: "h",
            labels: vec![("x", "a\"b\\c\nd".into())],
            value: 1.5,
        };
        assert_eq!(
            render(&[], &[s]),
            "# HELP m h\n# TYPE m gauge\nm{x=\"a\\\"b\\\\c\\nd\"} 1.5\n"
        );
    }
}
