//! Comparing two runs of the same workload: `comparison.json`, its `report.html` and the
//! numbers its chart draws. Every ratio is subject / reference; etcd, when in the
//! comparison, is the reference. Also the side-by-side table of a `--storage` sweep
//! (`storage-comparison.json` and `.html`).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::charts::CompareBars;
use crate::error::Error;
use crate::report::{Summary, bytes_cell, cpu_cell, escape, fill_template, write_json};
use crate::system::Server;
use crate::watch::WatchSummary;
use crate::workload::Percentiles;

/// The page comparing two runs; [`fill_template`] fills its `{{name}}` placeholders.
const COMPARISON_TEMPLATE: &str = include_str!("templates/comparison.html");

/// The page of a `--storage` sweep; [`fill_template`] fills its `{{name}}` placeholders.
const STORAGE_TEMPLATE: &str = include_str!("templates/storage-comparison.html");

/// `comparison.json`: two runs of the same workload. Every ratio is subject / reference;
/// etcd, when in the comparison, is the reference.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The subject's summary (ours).
    pub subject: Summary,
    /// The reference's summary (etcd, or the system `--compare` names).
    pub reference: Summary,
    /// ops/s subject / reference.
    pub ops_per_sec_ratio: f64,
    /// p99 subject / reference (below 1: the subject is faster).
    pub p99_ratio: f64,
    /// p50 subject / reference.
    pub p50_ratio: f64,
    /// p99.9 subject / reference.
    pub p999_ratio: f64,
    /// Server CPU per operation subject / reference (below 1: the subject spends less).
    pub server_cpu_ratio: Option<f64>,
    /// Watch workload: events delivered per second, subject / reference.
    pub events_per_sec_ratio: Option<f64>,
    /// Watch workload: delivery latency p99, subject / reference.
    pub delivery_p99_ratio: Option<f64>,
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 { numerator / denominator } else { f64::NAN }
}

impl Comparison {
    /// The comparison of two summaries.
    #[must_use]
    pub fn new(subject: Summary, reference: Summary) -> Comparison {
        let watches = subject.watch.as_ref().zip(reference.watch.as_ref());
        Comparison {
            ops_per_sec_ratio: ratio(subject.ops_per_sec, reference.ops_per_sec),
            p99_ratio: ratio(subject.latency_ms.p99, reference.latency_ms.p99),
            p50_ratio: ratio(subject.latency_ms.p50, reference.latency_ms.p50),
            p999_ratio: ratio(subject.latency_ms.p999, reference.latency_ms.p999),
            server_cpu_ratio: subject
                .server_cpu_us_per_op
                .zip(reference.server_cpu_us_per_op)
                .map(|(subject, reference)| ratio(subject, reference)),
            events_per_sec_ratio: watches.map(|(s, r)| ratio(s.events_per_sec, r.events_per_sec)),
            delivery_p99_ratio: watches
                .map(|(s, r)| ratio(s.delivery_latency_ms.p99, r.delivery_latency_ms.p99)),
            subject,
            reference,
        }
    }

    /// The comparison chart's bars: operations per second and latency, or for the watch
    /// workload events per second and delivery latency.
    #[must_use]
    pub fn bars(&self) -> CompareBars {
        let (subject, reference) = (&self.subject, &self.reference);
        let label = |summary: &Summary| {
            let ours = if summary.server == Server::KvServer.name() { " (ours)" } else { "" };
            format!("{}{ours}", summary.system)
        };
        let latencies = |latency: Percentiles| [latency.p50, latency.p99, latency.p999];
        let names = [label(subject), label(reference)];
        match (&subject.watch, &reference.watch) {
            (Some(subject_watch), Some(reference_watch)) => CompareBars {
                names,
                throughput: [subject_watch.events_per_sec, reference_watch.events_per_sec],
                latency_ms: [
                    latencies(subject_watch.delivery_latency_ms),
                    latencies(reference_watch.delivery_latency_ms),
                ],
                throughput_label: "events delivered/s".to_owned(),
                latency_label: "delivery latency (ms)".to_owned(),
                title: format!(
                    "{} watchers, {} writers, {} B",
                    subject_watch.watchers, subject.clients, subject.value_size
                ),
            },
            _ => CompareBars {
                names,
                throughput: [subject.ops_per_sec, reference.ops_per_sec],
                latency_ms: [latencies(subject.latency_ms), latencies(reference.latency_ms)],
                throughput_label: "ops/s".to_owned(),
                latency_label: "latency (ms)".to_owned(),
                title: format!(
                    "{} clients, {:.0}% reads, {} B",
                    subject.clients,
                    subject.read_ratio * 100.0,
                    subject.value_size
                ),
            },
        }
    }

    /// The one-line verdict printed after a comparison.
    #[must_use]
    pub fn text_line(&self, dir: &Path) -> String {
        let names = format!("{}/{}", self.subject.system, self.reference.system);
        let mut line = format!(
            "== comparison ({} clients): ops/s {names} {:.2}, p99 {names} {:.2}, \
             server CPU/op {names} {}",
            self.subject.clients,
            self.ops_per_sec_ratio,
            self.p99_ratio,
            self.server_cpu_ratio.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}"))
        );
        if let (Some(events), Some(delivery)) = (self.events_per_sec_ratio, self.delivery_p99_ratio)
        {
            let _ = write!(line, "; events/s {names} {events:.2}, delivery p99 {delivery:.2}");
        }
        // A run the host took the CPUs from is not a fair half of a comparison: say so.
        if self.subject.host_cpu.is_some() || self.reference.host_cpu.is_some() {
            let _ = write!(
                line,
                "; host steal {}% / {}%",
                steal_cell(&self.subject),
                steal_cell(&self.reference)
            );
        }
        let _ = write!(line, "; {}", dir.join("comparison.json").display());
        line
    }
}

/// The share of the machine's CPU the hypervisor took in a run's measured window, in
/// percent ("n/a" where it could not be read).
fn steal_cell(summary: &Summary) -> String {
    summary.host_cpu.map_or_else(|| "n/a".to_owned(), |host| format!("{:.1}", host.steal_pct))
}

fn ratio_cell(value: Option<f64>) -> String {
    value.map_or_else(String::new, |r| format!("{r:.2}"))
}

/// A comparison table row: a heading, both values and their ratio (empty for none).
fn comparison_row(heading: &str, subject: &str, reference: &str, ratio: &str) -> String {
    format!(
        "<tr><th>{heading}</th><td>{}</td><td>{}</td><td>{}</td></tr>\n",
        escape(subject),
        escape(reference),
        escape(ratio)
    )
}

/// The watch workload's rows of the comparison table (none for the write workload).
fn comparison_watch_rows(comparison: &Comparison) -> String {
    let (Some(subject), Some(reference)) = (&comparison.subject.watch, &comparison.reference.watch)
    else {
        return String::new();
    };
    let latency = |watch: &WatchSummary, pick: fn(&Percentiles) -> f64| {
        format!("{:.2}", pick(&watch.delivery_latency_ms))
    };
    let delivery_ratio = |pick: fn(&Percentiles) -> f64| {
        format!(
            "{:.2}",
            ratio(pick(&subject.delivery_latency_ms), pick(&reference.delivery_latency_ms))
        )
    };
    let exactly_once = |watch: &WatchSummary| {
        format!(
            "{} delivered, {} missing, {} duplicates, {} out of order",
            watch.delivered, watch.missing, watch.duplicates, watch.out_of_order
        )
    };
    let mut rows = String::new();
    rows.push_str(&comparison_row(
        "watchers",
        &subject.watchers.to_string(),
        &reference.watchers.to_string(),
        "",
    ));
    rows.push_str(&comparison_row(
        "events delivered/s",
        &format!("{:.0}", subject.events_per_sec),
        &format!("{:.0}", reference.events_per_sec),
        &ratio_cell(comparison.events_per_sec_ratio),
    ));
    for (heading, pick) in [
        ("delivery p50 ms", (|p: &Percentiles| p.p50) as fn(&Percentiles) -> f64),
        ("delivery p99 ms", |p: &Percentiles| p.p99),
        ("delivery p99.9 ms", |p: &Percentiles| p.p999),
    ] {
        let (s, r) = (latency(subject, pick), latency(reference, pick));
        rows.push_str(&comparison_row(heading, &s, &r, &delivery_ratio(pick)));
    }
    rows.push_str(&comparison_row(
        "server CPU µs/event",
        &cpu_cell(subject.server_cpu_us_per_event),
        &cpu_cell(reference.server_cpu_us_per_event),
        "",
    ));
    rows.push_str(&comparison_row(
        "acknowledged writes × watchers",
        &exactly_once(subject),
        &exactly_once(reference),
        "",
    ));
    rows
}

/// Writes the comparison's `report.html` linking both runs.
///
/// # Errors
///
/// [`Error::Io`].
pub fn write_comparison_html(
    dir: &Path,
    comparison: &Comparison,
    command: &str,
) -> Result<(), Error> {
    let (subject, reference) = (&comparison.subject, &comparison.reference);
    let html = fill_template(
        COMPARISON_TEMPLATE,
        &[
            ("command", &escape(command)),
            ("subject", &escape(&subject.system)),
            ("reference", &escape(&reference.system)),
            ("workload", &escape(&subject.workload)),
            ("subject_ops_per_sec", &format!("{:.0}", subject.ops_per_sec)),
            ("reference_ops_per_sec", &format!("{:.0}", reference.ops_per_sec)),
            ("ops_per_sec_ratio", &format!("{:.2}", comparison.ops_per_sec_ratio)),
            ("subject_p50_ms", &format!("{:.2}", subject.latency_ms.p50)),
            ("reference_p50_ms", &format!("{:.2}", reference.latency_ms.p50)),
            ("p50_ratio", &format!("{:.2}", comparison.p50_ratio)),
            ("subject_p99_ms", &format!("{:.2}", subject.latency_ms.p99)),
            ("reference_p99_ms", &format!("{:.2}", reference.latency_ms.p99)),
            ("p99_ratio", &format!("{:.2}", comparison.p99_ratio)),
            ("subject_p999_ms", &format!("{:.2}", subject.latency_ms.p999)),
            ("reference_p999_ms", &format!("{:.2}", reference.latency_ms.p999)),
            ("p999_ratio", &format!("{:.2}", comparison.p999_ratio)),
            ("subject_server_cpu", &cpu_cell(subject.server_cpu_us_per_op)),
            ("reference_server_cpu", &cpu_cell(reference.server_cpu_us_per_op)),
            ("server_cpu_ratio", &ratio_cell(comparison.server_cpu_ratio)),
            ("subject_client_cpu", &cpu_cell(subject.client_cpu_us_per_op)),
            ("reference_client_cpu", &cpu_cell(reference.client_cpu_us_per_op)),
            ("subject_steal", &steal_cell(subject)),
            ("reference_steal", &steal_cell(reference)),
            ("subject_errors", &subject.errors.to_string()),
            ("reference_errors", &reference.errors.to_string()),
            ("subject_missing", &subject.missing.to_string()),
            ("reference_missing", &reference.missing.to_string()),
            ("watch_rows", &comparison_watch_rows(comparison)),
            ("subject_server", &escape(&subject.server)),
            ("reference_server", &escape(&reference.server)),
            ("subject_client", &escape(&subject.client)),
            ("reference_client", &escape(&reference.client)),
            ("subject_connection", &escape(&subject.connection_model)),
            ("reference_connection", &escape(&reference.connection_model)),
        ],
    );
    let path = dir.join("report.html");
    std::fs::write(&path, html).map_err(|source| Error::io("write", &path, source))
}

/// One engine's run in `storage-comparison.json`.
#[derive(Clone, Debug, Serialize)]
pub struct StorageRow {
    /// The log engine (`wal` or `redb`).
    pub engine: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Measured operations per second.
    pub ops_per_sec: f64,
    /// Latency of all measured operations.
    pub latency_ms: Percentiles,
    /// Server CPU per operation in µs, as in the run's summary.
    pub server_cpu_us_per_op: Option<f64>,
    /// Server bytes written per operation, as in the run's summary.
    pub server_write_bytes_per_op: Option<f64>,
    /// Acknowledged keys read back.
    pub verified: u64,
    /// Acknowledged keys not found.
    pub missing: u64,
    /// The run's `report.html`, relative to the sweep's folder.
    pub report: String,
}

impl StorageRow {
    /// The row of `engine`'s run from its summary and the path of its report.
    #[must_use]
    pub fn new(engine: &str, summary: &Summary, report: &Path) -> StorageRow {
        StorageRow {
            engine: engine.to_owned(),
            clients: summary.clients,
            ops_per_sec: summary.ops_per_sec,
            latency_ms: summary.latency_ms,
            server_cpu_us_per_op: summary.server_cpu_us_per_op,
            server_write_bytes_per_op: summary.server_write_bytes_per_op,
            verified: summary.verified,
            missing: summary.missing,
            report: report.display().to_string(),
        }
    }

    /// The cells both the page and the console show, in the header's order.
    fn cells(&self) -> [String; 9] {
        let latency = self.latency_ms;
        [
            self.engine.clone(),
            self.clients.to_string(),
            format!("{:.0}", self.ops_per_sec),
            format!("{:.2}", latency.p50),
            format!("{:.2}", latency.p99),
            format!("{:.2}", latency.p999),
            cpu_cell(self.server_cpu_us_per_op),
            bytes_cell(self.server_write_bytes_per_op),
            format!("{} / {}", self.verified, self.missing),
        ]
    }
}

/// The console header of the storage table, matching [`StorageRow::cells`].
const STORAGE_HEADER: [&str; 9] = [
    "engine",
    "clients",
    "ops/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "CPU µs/op",
    "B written/op",
    "verified / missing",
];

/// `storage-comparison.json`: the runs of a `--storage` sweep side by side.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StorageComparison {
    /// One row per run, in the order they ran.
    pub rows: Vec<StorageRow>,
}

impl StorageComparison {
    /// The table printed at the end of the sweep, one line per run.
    #[must_use]
    pub fn text_table(&self, dir: &Path) -> String {
        let mut lines = vec![STORAGE_HEADER.map(str::to_owned)];
        lines.extend(self.rows.iter().map(StorageRow::cells));
        let widths: Vec<usize> = (0..STORAGE_HEADER.len())
            .map(|column| lines.iter().map(|line| line[column].chars().count()).max().unwrap_or(0))
            .collect();
        let mut text = String::from("== log engines side by side ==\n");
        for line in &lines {
            for (cell, width) in line.iter().zip(&widths) {
                let _ = write!(text, "   {cell:>width$}");
            }
            text.push('\n');
        }
        let _ = writeln!(text, "   {}", dir.join("storage-comparison.html").display());
        text
    }

    /// Writes `storage-comparison.json` and `storage-comparison.html` into `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] or [`Error::Io`].
    pub fn write(&self, dir: &Path, command: &str) -> Result<(), Error> {
        write_json(&dir.join("storage-comparison.json"), self)?;
        let mut rows = String::new();
        for row in &self.rows {
            rows.push_str("<tr>");
            for cell in row.cells() {
                let _ = write!(rows, "<td>{}</td>", escape(&cell));
            }
            let link = escape(&row.report);
            let _ = writeln!(rows, "<td><a href=\"{link}\">{link}</a></td></tr>");
        }
        let html =
            fill_template(STORAGE_TEMPLATE, &[("command", &escape(command)), ("rows", &rows)]);
        let path = dir.join("storage-comparison.html");
        std::fs::write(&path, html).map_err(|source| Error::io("write", &path, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{summary, watching};

    #[test]
    fn the_comparison_page_fills_every_placeholder() {
        let dir = tempfile::tempdir().unwrap();
        let comparison = Comparison::new(summary("kv-etcd"), summary("etcd"));
        write_comparison_html(dir.path(), &comparison, "kv-bench --compare etcd").unwrap();
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(html.contains("<title>kv-bench: kv-etcd vs etcd</title>"));
        assert!(html.contains("<th>ratio kv-etcd/etcd</th>"));
        assert!(html.contains("<a href=\"kv-etcd/report.html\">kv-etcd report</a>"));
        assert!(html.contains("<td>400</td><td>400</td>"));
        assert!(html.contains("<td>1.00</td>"));
        assert!(html.contains("<td>one &lt;shared&gt; client</td>"));
        assert!(html.contains("<th>server</th><td>kv-server</td><td>etcd</td>"));
        assert!(html.contains("<th>client</th><td>kv-etcd's client</td><td>etcd's client</td>"));
        assert!(html.contains("<th>server CPU µs/op</th><td>150.0</td><td>150.0</td>"));
        assert!(html.contains("by the hypervisor (%)</th><td>2.5</td>\n<td>2.5</td>"), "{html}");
        assert!(!html.contains("events delivered/s"), "no watch rows for the write workload");
        assert_eq!(comparison.server_cpu_ratio, Some(1.0));
        assert_eq!(comparison.events_per_sec_ratio, None);
        assert!(!html.contains("{{"), "every placeholder is filled");
    }

    #[test]
    fn a_watch_comparison_gives_event_rate_and_delivery_ratios_everywhere() {
        let comparison =
            Comparison::new(watching("kv-etcd", 3000.0, 4.0), watching("etcd", 2000.0, 8.0));
        assert_eq!(comparison.events_per_sec_ratio, Some(1.5));
        assert_eq!(comparison.delivery_p99_ratio, Some(0.5));
        let line = comparison.text_line(Path::new("out"));
        assert!(line.contains("events/s kv-etcd/etcd 1.50, delivery p99 0.50"), "{line}");
        assert!(line.contains("; host steal 2.5% / 2.5%;"), "{line}");
        let json = serde_json::to_value(&comparison).unwrap();
        assert_eq!(json["subject"]["watch"]["missing"], 1);
        assert_eq!(json["reference"]["system"], "etcd");
        let dir = tempfile::tempdir().unwrap();
        write_comparison_html(dir.path(), &comparison, "kv-bench --workload watch").unwrap();
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(
            html.contains("<th>events delivered/s</th><td>3000</td><td>2000</td><td>1.50</td>")
        );
        assert!(html.contains("<th>delivery p99 ms</th><td>4.00</td><td>8.00</td><td>0.50</td>"));
        assert!(html.contains("1599 delivered, 1 missing, 0 duplicates, 0 out of order"));
        assert!(!html.contains("{{"), "every placeholder is filled");
    }

    #[test]
    fn the_storage_table_puts_two_engines_side_by_side() {
        let redb = Summary { ops_per_sec: 250.0, server_write_bytes_per_op: None, ..summary("kv") };
        let comparison = StorageComparison {
            rows: vec![
                StorageRow::new("wal", &summary("kv"), Path::new("storage-wal/report.html")),
                StorageRow::new("redb", &redb, Path::new("storage-redb/report.html")),
            ],
        };
        let text = comparison.text_table(Path::new("out"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[1].contains("engine") && lines[1].contains("B written/op"), "{text}");
        assert!(lines[2].trim_start().starts_with("wal"), "{text}");
        assert!(lines[2].contains("400") && lines[2].contains("2048"), "{text}");
        assert!(lines[3].contains("250") && lines[3].contains("n/a"), "{text}");
        assert!(lines[2].contains("480 / 0"), "verified / missing: {text}");
        assert_eq!(lines[1].chars().count(), lines[2].chars().count(), "aligned: {text}");
        let dir = tempfile::tempdir().unwrap();
        comparison.write(dir.path(), "kv-bench --storage wal,redb").unwrap();
        let html = std::fs::read_to_string(dir.path().join("storage-comparison.html")).unwrap();
        assert!(html.contains("<code>kv-bench --storage wal,redb</code>"));
        assert!(html.contains("<tr><td>wal</td><td>4</td><td>400</td><td>1.00</td><td>5.00</td>"));
        assert!(html.contains("<td>150.0</td><td>2048</td><td>480 / 0</td>"));
        assert!(html.contains("<td>n/a</td><td>480 / 0</td>"), "redb's bytes are absent");
        assert!(html.contains("<a href=\"storage-redb/report.html\">"));
        assert!(!html.contains("{{"), "every placeholder is filled");
        let json = std::fs::read_to_string(dir.path().join("storage-comparison.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(json["rows"][1]["engine"], "redb");
        assert!(json["rows"][1]["server_write_bytes_per_op"].is_null());
        assert_eq!(json["rows"][0]["latency_ms"]["p999"], 9.0);
    }
}
