//! Progress on the terminal (a bar with bytes, files, rate and ETA) or as
//! JSON status lines, and warnings printed without tearing the bar.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hokan_core::NodeKind;
use hokan_core::fs::{Excludes, Progress, Warning};
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
    /// What the entries are called: `files`, `objects`.
    unit: &'static str,
    start: Instant,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl CliProgress {
    /// Starts showing progress of files.
    pub fn start(mode: Mode) -> Self {
        Self::start_counting(mode, "files")
    }

    /// Starts showing progress of entries called `unit` (`objects`).
    pub fn start_counting(mode: Mode, unit: &'static str) -> Self {
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
            unit,
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
        let unit = self.unit;
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
                    b.set_message(format!("{files}{total} {unit}{w}"));
                }
                if mode == Mode::Json && last_json.elapsed() >= Duration::from_secs(1) {
                    last_json = Instant::now();
                    let total_bytes = shared.total_bytes.load(Relaxed);
                    let bytes = shared.bytes.load(Relaxed);
                    let mut v = serde_json::json!({
                        "message_type": "status",
                        "seconds_elapsed": start.elapsed().as_secs(),
                        format!("{unit}_done"): files,
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

    /// Runs `work`, a backup of `paths`, counting what lies below them
    /// beside it ([`hokan_core::fs::with_totals`]) when the totals are
    /// shown: a bar on a terminal, or JSON status lines. The count walks
    /// the tree a second time (every `lstat` again), wasted where nothing
    /// shows it.
    pub fn with_totals<T>(
        &self,
        paths: &[PathBuf],
        excludes: &Excludes,
        read_special: bool,
        work: impl FnOnce() -> T,
    ) -> T {
        match self.bar.is_some() || self.mode == Mode::Json {
            true => hokan_core::fs::with_totals(paths, excludes, read_special, self, work),
            false => work(),
        }
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
    fn totals(&self, entries: u64, bytes: u64) {
        self.set_totals(entries, bytes);
    }

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
        let mut line = format!("warning: {w}");
        if w.kind == hokan_core::fs::WarningKind::DeviceKept {
            line.push_str(&format!(
                " (hokan restore SNAPSHOT --include PATH --to-device {})",
                w.path.display()
            ));
        }
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

/// Progress of `check` and `prune`: one bar (or spinner, when the total is
/// unknown) per phase on a terminal, JSON status lines with `--json`.
pub struct PhaseBar {
    mode: Mode,
    start: Instant,
    state: Mutex<PhaseState>,
    done: AtomicU64,
}

struct PhaseState {
    bar: Option<ProgressBar>,
    name: String,
    total: u64,
    last_json: Instant,
}

impl PhaseBar {
    /// Starts showing progress.
    pub fn start(mode: Mode) -> Self {
        PhaseBar {
            mode,
            start: Instant::now(),
            state: Mutex::new(PhaseState {
                bar: None,
                name: String::new(),
                total: 0,
                last_json: Instant::now(),
            }),
            done: AtomicU64::new(0),
        }
    }

    fn json_status(&self, st: &PhaseState) {
        let done = self.done.load(Relaxed);
        let mut v = serde_json::json!({
            "message_type": "status",
            "phase": st.name,
            "seconds_elapsed": self.start.elapsed().as_secs(),
            "done": done,
        });
        if st.total > 0 {
            v["total"] = st.total.into();
            v["percent_done"] = (done as f64 / st.total as f64).min(1.0).into();
        }
        println!("{v}");
    }

    /// Stops the display.
    pub fn finish(&self) {
        let mut st = self.state.lock().expect("phase state");
        if let Some(b) = st.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for PhaseBar {
    fn drop(&mut self) {
        self.finish();
    }
}

impl hokan_repo::maintenance::PhaseProgress for PhaseBar {
    fn phase(&self, name: &str, total: u64, unit: hokan_repo::maintenance::Unit) {
        use hokan_repo::maintenance::Unit;
        let mut st = self.state.lock().expect("phase state");
        if let Some(b) = st.bar.take() {
            b.finish_and_clear();
        }
        self.done.store(0, Relaxed);
        st.name = name.to_string();
        st.total = total;
        match self.mode {
            Mode::Quiet => {}
            // Status lines at most once a second, the first after a second:
            // quick commands print their summary alone.
            Mode::Json => {
                if st.last_json.elapsed() >= Duration::from_secs(1) {
                    st.last_json = Instant::now();
                    self.json_status(&st);
                }
            }
            Mode::Bar if std::io::stderr().is_terminal() => {
                let (pos, rate) = match unit {
                    Unit::Bytes => ("{binary_bytes}", "{binary_bytes_per_sec}"),
                    // indicatif's per_sec prints four decimals: no rate for counts.
                    Unit::Items => ("{human_pos}", ""),
                };
                let template = if total > 0 {
                    let len = if unit == Unit::Bytes {
                        "{binary_total_bytes}"
                    } else {
                        "{human_len}"
                    };
                    format!(
                        "[{{elapsed_precise}}] {{msg}} [{{bar:30}}] {pos}/{len} {rate} ETA {{eta}}"
                    )
                } else {
                    format!("{{spinner}} [{{elapsed_precise}}] {{msg}}: {pos} {rate}")
                };
                let b = ProgressBar::with_draw_target(
                    (total > 0).then_some(total),
                    ProgressDrawTarget::stderr_with_hz(8),
                );
                b.set_style(
                    ProgressStyle::with_template(&template)
                        .expect("template")
                        .progress_chars("=> "),
                );
                b.set_message(name.to_string());
                b.enable_steady_tick(Duration::from_millis(125));
                st.bar = Some(b);
            }
            Mode::Bar => {}
        }
    }

    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Relaxed);
        match self.mode {
            Mode::Json => {
                let mut st = self.state.lock().expect("phase state");
                if st.last_json.elapsed() >= Duration::from_secs(1) {
                    st.last_json = Instant::now();
                    self.json_status(&st);
                }
            }
            Mode::Bar => {
                let st = self.state.lock().expect("phase state");
                if let Some(b) = &st.bar {
                    b.inc(n);
                }
            }
            Mode::Quiet => {}
        }
    }
}
