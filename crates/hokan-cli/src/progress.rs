//! Progress on the terminal (a bar with bytes, files, rate and ETA) or as
//! JSON status lines, and warnings printed without tearing the bar.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hokan_core::NodeKind;
use hokan_core::fs::{Progress, Warning};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A bar on stderr (when it is a terminal).
    Bar,
    /// JSON status lines on stdout, once a second.
    Json,
    /// Nothing but warnings.
    Quiet,
}

#[derive(Default)]
struct Shared {
    bytes: AtomicU64,
    files: AtomicU64,
    warnings: AtomicU64,
    total_bytes: AtomicU64,
    total_files: AtomicU64,
    totals_known: AtomicBool,
    done: AtomicBool,
}

/// Progress for one long operation.
pub struct CliProgress {
    shared: Arc<Shared>,
    bar: Option<ProgressBar>,
    mode: Mode,
    start: Instant,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl CliProgress {
    /// Starts showing progress.
    pub fn start(mode: Mode) -> Self {
        let shared = Arc::new(Shared::default());
        let bar = (mode == Mode::Bar && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8));
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {binary_bytes} {binary_bytes_per_sec} {msg}",
                )
                .expect("template"),
            );
            b.enable_steady_tick(Duration::from_millis(125));
            b
        });
        let mut p = CliProgress {
            shared,
            bar,
            mode,
            start: Instant::now(),
            ticker: Mutex::new(None),
        };
        p.spawn_ticker();
        p
    }

    fn spawn_ticker(&mut self) {
        let shared = self.shared.clone();
        let bar = self.bar.clone();
        let mode = self.mode;
        let start = self.start;
        let handle = std::thread::spawn(move || {
            let mut last_json = Instant::now();
            let mut styled_total = false;
            while !shared.done.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let files = shared.files.load(Relaxed);
                if let Some(b) = &bar {
                    if shared.totals_known.load(Relaxed) && !styled_total {
                        styled_total = true;
                        b.set_length(shared.total_bytes.load(Relaxed).max(1));
                        b.set_style(
                            ProgressStyle::with_template(
                                "[{elapsed_precise}] [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
                            )
                            .expect("template")
                            .progress_chars("=> "),
                        );
                    }
                    b.set_position(shared.bytes.load(Relaxed));
                    let total = if shared.totals_known.load(Relaxed) {
                        format!("/{}", shared.total_files.load(Relaxed))
                    } else {
                        String::new()
                    };
                    let warnings = shared.warnings.load(Relaxed);
                    let w = if warnings > 0 {
                        format!(", {warnings} warnings")
                    } else {
                        String::new()
                    };
                    b.set_message(format!("{files}{total} files{w}"));
                }
                if mode == Mode::Json && last_json.elapsed() >= Duration::from_secs(1) {
                    last_json = Instant::now();
                    let total_bytes = shared.total_bytes.load(Relaxed);
                    let bytes = shared.bytes.load(Relaxed);
                    let mut v = serde_json::json!({
                        "message_type": "status",
                        "seconds_elapsed": start.elapsed().as_secs(),
                        "files_done": files,
                        "bytes_done": bytes,
                        "error_count": shared.warnings.load(Relaxed),
                    });
                    if shared.totals_known.load(Relaxed) {
                        v["total_files"] = shared.total_files.load(Relaxed).into();
                        v["total_bytes"] = total_bytes.into();
                        v["percent_done"] = (if total_bytes > 0 {
                            bytes as f64 / total_bytes as f64
                        } else {
                            1.0
                        })
                        .into();
                    }
                    println!("{v}");
                }
            }
        });
        *self.ticker.lock().expect("ticker") = Some(handle);
    }

    /// The end of the operation is now known.
    pub fn set_totals(&self, files: u64, bytes: u64) {
        self.shared.total_files.store(files, Relaxed);
        self.shared.total_bytes.store(bytes, Relaxed);
        self.shared.totals_known.store(true, Relaxed);
    }

    /// Stops the display.
    pub fn finish(&self) {
        self.shared.done.store(true, Relaxed);
        if let Some(h) = self.ticker.lock().expect("ticker").take() {
            let _ = h.join();
        }
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

impl Drop for CliProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Progress for CliProgress {
    fn bytes(&self, n: u64) {
        self.shared.bytes.fetch_add(n, Relaxed);
    }

    fn entry_done(&self, _path: &Path, kind: NodeKind) {
        if kind != NodeKind::Dir {
            self.shared.files.fetch_add(1, Relaxed);
        }
    }

    fn warning(&self, w: &Warning) {
        self.shared.warnings.fetch_add(1, Relaxed);
        if self.mode == Mode::Json {
            eprintln!(
                "{}",
                serde_json::json!({"message_type": "error", "item": w.path.display().to_string(), "error": w.message})
            );
            return;
        }
        let line = format!("warning: {w}");
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}
