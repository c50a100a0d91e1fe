//! `/metrics` in the Prometheus text format, with the names `hokan
//! --metrics-file` writes, so the alert rules written for the command
//! ("no successful backup in 24 hours") work unchanged for the operator.
//! Each run's figures are labelled with what the command's are (`command`,
//! `repository`) plus where the run comes from (`namespace`, `policy`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::api::common::Figures;

/// Labels of one sample, in order.
pub type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Family {
    help: &'static str,
    samples: BTreeMap<Labels, f64>,
}

/// The operator's gauges.
#[derive(Default)]
pub struct Metrics {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

/// How a finished run is reported.
#[derive(Debug, Clone)]
pub struct RunReport<'a> {
    /// As the CLI names its commands: `etcd backup`, `k8s backup`,
    /// `k8s volumes backup`, `backup`.
    pub command: &'a str,
    /// The repository's location.
    pub repository: &'a str,
    /// The run's namespace.
    pub namespace: &'a str,
    /// The policy, or empty for an on-demand run.
    pub policy: &'a str,
    /// Whether it succeeded (Completed; PartiallyFailed counts as not, as
    /// the command's exit code 3 does).
    pub success: bool,
    /// The command's exit code equivalent: 0, 3 (partial) or 1.
    pub exit_code: u8,
    /// Start and end.
    pub start: DateTime<Utc>,
    /// End.
    pub end: DateTime<Utc>,
    /// What was stored, when anything was.
    pub figures: Option<&'a Figures>,
    /// Entries that could not be read.
    pub errors: u64,
}

fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// A label value, escaped as the exposition format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Sets a gauge.
    pub fn set(&self, name: &'static str, help: &'static str, labels: Labels, value: f64) {
        let mut f = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = f.entry(name).or_default();
        family.help = help;
        family.samples.insert(labels, value);
    }

    /// Records a finished run under the command's metric names. The last
    /// success time is kept over failed runs, as the command keeps it in
    /// its file.
    pub fn record_run(&self, r: &RunReport<'_>) {
        let labels: Labels = vec![
            ("command", r.command.to_string()),
            ("repository", r.repository.to_string()),
            ("namespace", r.namespace.to_string()),
            ("policy", r.policy.to_string()),
        ];
        let set = |name, help, v: f64| self.set(name, help, labels.clone(), v);
        set(
            "hokan_command_success",
            "1 if the command succeeded (exit code 0), else 0.",
            if r.success { 1.0 } else { 0.0 },
        );
        set(
            "hokan_command_exit_code",
            "The command's exit code (3: backup finished, some files unreadable).",
            r.exit_code as f64,
        );
        set(
            "hokan_command_start_timestamp_seconds",
            "When the command started, Unix seconds.",
            seconds(r.start),
        );
        set(
            "hokan_command_end_timestamp_seconds",
            "When the command ended, Unix seconds.",
            seconds(r.end),
        );
        set(
            "hokan_command_duration_seconds",
            "How long the command ran.",
            (r.end - r.start).num_milliseconds().max(0) as f64 / 1000.0,
        );
        if r.success {
            set(
                "hokan_last_success_timestamp_seconds",
                "When this command last succeeded, Unix seconds.",
                seconds(r.end),
            );
        }
        if let Some(f) = r.figures {
            set(
                "hokan_backup_bytes_read",
                "Bytes of content in the new snapshot (read, or unchanged since the parent).",
                f.bytes_read as f64,
            );
            set(
                "hokan_backup_bytes_added",
                "Plaintext bytes of new data the backup added.",
                f.bytes_added as f64,
            );
            set(
                "hokan_backup_bytes_stored",
                "Bytes the backup added to the store (compressed, encrypted, packed).",
                f.bytes_stored as f64,
            );
            set(
                "hokan_backup_files",
                "Files (or objects) in the new snapshot.",
                (f.files + f.objects) as f64,
            );
            set(
                "hokan_backup_errors",
                "Entries that could not be read completely.",
                r.errors as f64,
            );
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let f = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, family) in f.iter() {
            out.push_str(&format!(
                "# HELP {name} {}\n# TYPE {name} gauge\n",
                family.help
            ));
            for (labels, v) in &family.samples {
                let l: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                out.push_str(&format!("{name}{{{}}} {v}\n", l.join(",")));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn report<'a>(success: bool, figures: Option<&'a Figures>, end_min: u32) -> RunReport<'a> {
        RunReport {
            command: "etcd backup",
            repository: "s3://b/p",
            namespace: "hokan-system",
            policy: "etcd",
            success,
            exit_code: if success { 0 } else { 1 },
            start: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 1, 1, 0, end_min, 0).unwrap(),
            figures,
            errors: 0,
        }
    }

    #[test]
    fn names_and_labels_are_the_commands() {
        let m = Metrics::default();
        let f = Figures {
            bytes_read: 100,
            bytes_added: 10,
            bytes_stored: 5,
            files: 2,
            objects: 0,
        };
        m.record_run(&report(true, Some(&f), 1));
        let text = m.render();
        let labels = r#"{command="etcd backup",repository="s3://b/p",namespace="hokan-system",policy="etcd"}"#;
        for line in [
            format!("hokan_command_success{labels} 1"),
            format!("hokan_command_duration_seconds{labels} 60"),
            format!("hokan_last_success_timestamp_seconds{labels} 1767225660"),
            format!("hokan_backup_bytes_read{labels} 100"),
            format!("hokan_backup_bytes_stored{labels} 5"),
            format!("hokan_backup_files{labels} 2"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(text.contains("# TYPE hokan_command_success gauge"));
    }

    #[test]
    fn a_failure_keeps_the_last_success() {
        let m = Metrics::default();
        m.record_run(&report(true, None, 1));
        m.record_run(&report(false, None, 9));
        let text = m.render();
        assert!(text.contains("hokan_command_success{") && text.contains("} 0\n"));
        let last: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("hokan_last_success_timestamp_seconds{"))
            .collect();
        assert_eq!(last.len(), 1);
        assert!(last[0].ends_with(" 1767225660"), "{last:?}");
    }
}
