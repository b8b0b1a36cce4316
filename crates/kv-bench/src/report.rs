//! A run's report folder: `summary.json`, `timeseries.csv` (and the watch workload's
//! `watch-timeseries.csv`), HdrHistogram files, `report.html` and the one-screen text
//! summary. The comparison of two runs is in [`crate::comparison`].

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer, V2Serializer};
use serde::Serialize;

use crate::charts::{FaultMark, TIME_CHARTS};
use crate::cpu::HostShares;
use crate::error::Error;
use crate::floor::Floor;
use crate::seconds::SecondsSummary;
use crate::system::NodeRole;
use crate::watch::WatchSummary;
use crate::workload::{Percentiles, Row, Verification};

/// One node's end-of-run figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeSummary {
    /// The node's id.
    pub id: u64,
    /// Log start (first) index at its last answer.
    pub start_index: Option<u64>,
    /// The highest log start index seen during the run.
    pub start_index_max: Option<u64>,
    /// Snapshot size at its last answer (etcd: backend db size).
    pub snapshot_bytes: Option<u64>,
    /// Elections started (etcd: leader changes seen), at its last answer.
    pub elections: Option<u64>,
    /// Term at its last answer.
    pub term: Option<u64>,
    /// Last log index at its last answer.
    pub log_last_index: Option<u64>,
    /// Role at its last answer (in JSON its code: 3 = leader).
    pub role: Option<NodeRole>,
    /// Seconds in which it did not answer its metrics.
    pub down_s: u64,
    /// Highest per-second persistence p99 seen, in ms.
    pub persist_p99_ms_max: Option<f64>,
}

/// `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// `kv`, `kv-etcd` or `etcd`.
    pub system: String,
    /// `write` or `watch`.
    pub workload: String,
    /// The server program: `kv-server` or `etcd`.
    pub server: String,
    /// The client library and protocol the workload used.
    pub client: String,
    /// How the harness connected.
    pub connection_model: String,
    /// Concurrent workers.
    pub clients: usize,
    /// Fraction of reads.
    pub read_ratio: f64,
    /// Bytes per value.
    pub value_size: usize,
    /// Keys in the key space.
    pub keys: u64,
    /// Measured seconds (after the warmup).
    pub duration_s: f64,
    /// Warmup seconds.
    pub warmup_s: f64,
    /// Compare-and-set writes.
    pub occ: bool,
    /// `linearizable` or `stale`.
    pub consistency: String,
    /// Number of nodes.
    pub node_count: usize,
    /// The servers' snapshot threshold in bytes (ours only).
    pub snapshot_size_bytes: u64,
    /// The workers' seed.
    pub seed: u64,
    /// Measured operations.
    pub ops: u64,
    /// Measured operations per second.
    pub ops_per_sec: f64,
    /// Measured failed operations.
    pub errors: u64,
    /// OCC conflicts.
    pub conflicts: u64,
    /// CPU time (user + system) all server processes spent in the measured window, per
    /// measured operation, in µs; `None` for a cluster the harness did not launch.
    pub server_cpu_us_per_op: Option<f64>,
    /// CPU time the load generator (this process) spent in the measured window, per
    /// measured operation, in µs.
    pub client_cpu_us_per_op: Option<f64>,
    /// Bytes all server processes sent to the storage layer in the measured window
    /// (`/proc/PID/io` `write_bytes`), per measured operation; `None` (JSON `null`, never 0)
    /// for a cluster the harness did not launch or when `/proc/PID/io` is unreadable.
    pub server_write_bytes_per_op: Option<f64>,
    /// Threads per server process as `--server-threads` set them (`None`: each server's
    /// default, one per CPU).
    pub server_threads: Option<usize>,
    /// The floor under one write's latency, measured just before the cluster started:
    /// a bare `fdatasync` and a loopback round trip (`None` when it could not be measured).
    pub floor: Option<Floor>,
    /// Latency of all measured operations.
    pub latency_ms: Percentiles,
    /// Latency of reads.
    pub read_latency_ms: Percentiles,
    /// Latency of writes.
    pub write_latency_ms: Percentiles,
    /// Keys whose acknowledged write was read back.
    pub verified: u64,
    /// Keys whose acknowledged write was not found.
    pub missing: u64,
    /// The read-back check in detail.
    pub verification: Verification,
    /// Per-node figures.
    pub nodes: Vec<NodeSummary>,
    /// The faults that fired.
    pub faults: Vec<FaultMark>,
    /// A few distinct error messages.
    pub error_samples: Vec<String>,
    /// The watchers' figures (watch workload only; the fields above are the writers').
    pub watch: Option<WatchSummary>,
    /// The measured seconds' throughput: the worst second against the median, and the
    /// seconds in which a node stored a snapshot against the others (`None` without a
    /// measured second that did anything).
    pub seconds: Option<SecondsSummary>,
    /// The whole machine's CPU over the measured window: how busy it was (every process,
    /// not only the cluster's) and how much the hypervisor took (`None` where `/proc/stat`
    /// cannot tell).
    pub host_cpu: Option<HostShares>,
}

/// The per-node summaries from the rows.
#[must_use]
pub fn node_summaries(node_ids: &[u64], rows: &[Row]) -> Vec<NodeSummary> {
    node_ids
        .iter()
        .enumerate()
        .map(|(slot, &id)| {
            let mut summary = NodeSummary { id, ..NodeSummary::default() };
            for row in rows {
                let Some(node) = row.nodes.get(slot) else { continue };
                if !node.up {
                    summary.down_s += 1;
                    continue;
                }
                summary.start_index = node.log_first_index.or(summary.start_index);
                summary.start_index_max = summary.start_index_max.max(node.log_first_index);
                summary.snapshot_bytes = node.snapshot_bytes.or(summary.snapshot_bytes);
                summary.elections = node.elections.or(summary.elections);
                summary.term = node.term.or(summary.term);
                summary.log_last_index = node.log_last_index.or(summary.log_last_index);
                summary.role = node.role.or(summary.role);
                if let Some(p99) = node.persist_p99_ms {
                    summary.persist_p99_ms_max =
                        Some(summary.persist_p99_ms_max.map_or(p99, |max: f64| max.max(p99)));
                }
            }
            summary
        })
        .collect()
}

/// Writes `value` as pretty JSON to `path`.
///
/// # Errors
///
/// [`Error::Encode`] or [`Error::Io`].
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|error| Error::Encode { what: "json", reason: error.to_string() })?;
    std::fs::write(path, text + "\n").map_err(|source| Error::io("write", path, source))
}

fn cell<T: ToString>(value: Option<T>) -> String {
    value.map(|value| value.to_string()).unwrap_or_default()
}

/// CPU per operation in µs, or "n/a" when it was not measured (a cluster the harness did
/// not launch).
pub(crate) fn cpu_cell(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |micros| format!("{micros:.1}"))
}

/// Bytes per operation, or "n/a" when they were not measured.
pub(crate) fn bytes_cell(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |bytes| format!("{bytes:.0}"))
}

fn cell_ms(value: Option<f64>) -> String {
    value.map(|value| format!("{value:.3}")).unwrap_or_default()
}

/// The machine's CPU over the measured window, in words.
fn host_text(host: HostShares) -> String {
    format!(
        "CPUs {:.0}% busy (every process), {:.1}% taken by the hypervisor (steal)",
        host.busy_pct, host.steal_pct
    )
}

/// Writes `timeseries.csv`: one row per second, the workload, the machine's CPU (busy and
/// stolen, percent of all CPUs), the CPU the servers and the load generator spent (ms), the
/// disk probe's median and longest sync (ms, [`crate::disk_probe`]), then each node's
/// columns.
///
/// # Errors
///
/// [`Error::Io`].
pub fn write_timeseries(path: &Path, node_ids: &[u64], rows: &[Row]) -> Result<(), Error> {
    let mut text = String::from(
        "t_s,warmup,ops,errors,conflicts,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,host_busy_pct,host_steal_pct,servers_cpu_ms,load_generator_cpu_ms,disk_sync_p50_ms,disk_sync_max_ms",
    );
    for id in node_ids {
        for column in [
            "up",
            "role",
            "term",
            "log_first_index",
            "log_last_index",
            "snapshot_index",
            "snapshot_bytes",
            "elections",
            "persist_p50_ms",
            "persist_p99_ms",
        ] {
            let _ = write!(text, ",n{id}_{column}");
        }
    }
    text.push('\n');
    for row in rows {
        let _ = write!(
            text,
            "{:.3},{},{},{},{},{},{},{},{},{},{},{}",
            row.t_s,
            u8::from(row.warmup),
            row.ops,
            row.errors,
            row.conflicts,
            latency_cells(&row.latency_ms),
            row.host.map(|host| format!("{:.1}", host.busy_pct)).unwrap_or_default(),
            row.host.map(|host| format!("{:.1}", host.steal_pct)).unwrap_or_default(),
            row.server_cpu_ms.map(|ms| format!("{ms:.1}")).unwrap_or_default(),
            row.client_cpu_ms.map(|ms| format!("{ms:.1}")).unwrap_or_default(),
            cell_ms(row.disk_sync.map(|sync| sync.p50_ms)),
            cell_ms(row.disk_sync.map(|sync| sync.max_ms)),
        );
        for node in &row.nodes {
            let _ = write!(
                text,
                ",{},{},{},{},{},{},{},{},{},{}",
                u8::from(node.up),
                cell(node.role.map(NodeRole::code)),
                cell(node.term),
                cell(node.log_first_index),
                cell(node.log_last_index),
                cell(node.snapshot_index),
                cell(node.snapshot_bytes),
                cell(node.elections),
                cell_ms(node.persist_p50_ms),
                cell_ms(node.persist_p99_ms),
            );
        }
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|source| Error::io("write", path, source))
}

/// A row's latency columns: p50, p90, p99, p99.9 and max, in ms.
fn latency_cells(latency: &Percentiles) -> String {
    format!(
        "{:.3},{:.3},{:.3},{:.3},{:.3}",
        latency.p50, latency.p90, latency.p99, latency.p999, latency.max
    )
}

/// Writes `watch-timeseries.csv`: one row per second with the events the watchers received
/// (summed over watchers) and their delivery latency percentiles.
///
/// # Errors
///
/// [`Error::Io`].
pub fn write_watch_timeseries(path: &Path, rows: &[Row]) -> Result<(), Error> {
    let mut text = String::from("t_s,warmup,events,p50_ms,p90_ms,p99_ms,p999_ms,max_ms\n");
    for row in rows {
        let Some(watch) = row.watch else { continue };
        let _ = writeln!(
            text,
            "{:.3},{},{},{}",
            row.t_s,
            u8::from(row.warmup),
            watch.events,
            latency_cells(&watch.latency_ms)
        );
    }
    std::fs::write(path, text).map_err(|source| Error::io("write", path, source))
}

/// Writes a histogram as `<stem>.hdr` (HdrHistogram V2, microseconds) and
/// `<stem>-percentiles.txt` (the classic percentile distribution, in ms).
///
/// # Errors
///
/// [`Error::Encode`] or [`Error::Io`].
pub fn write_histogram(dir: &Path, stem: &str, histogram: &Histogram<u64>) -> Result<(), Error> {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(histogram, &mut bytes)
        .map_err(|error| Error::Encode { what: "histogram", reason: format!("{error:?}") })?;
    let path = dir.join(format!("{stem}.hdr"));
    std::fs::write(&path, bytes).map_err(|source| Error::io("write", &path, source))?;
    let mut text = String::from("       Value(ms)   Percentile   TotalCount 1/(1-Percentile)\n\n");
    if !histogram.is_empty() {
        for step in histogram.iter_quantiles(5) {
            let quantile = step.quantile_iterated_to();
            let inverse = if quantile < 1.0 { 1.0 / (1.0 - quantile) } else { f64::INFINITY };
            let _ = writeln!(
                text,
                "{:>16.3} {:>12.6} {:>12} {:>14.2}",
                step.value_iterated_to() as f64 / 1000.0,
                quantile,
                step.count_since_last_iteration(),
                inverse
            );
        }
    }
    let _ = writeln!(
        text,
        "#[Mean = {:.3}, StdDeviation = {:.3}]\n#[Max = {:.3}, Total count = {}]",
        histogram.mean() / 1000.0,
        histogram.stdev() / 1000.0,
        histogram.max() as f64 / 1000.0,
        histogram.len()
    );
    let path = dir.join(format!("{stem}-percentiles.txt"));
    std::fs::write(&path, text).map_err(|source| Error::io("write", &path, source))
}

/// `text` with HTML's special characters escaped.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The page of one run; [`fill_template`] fills its `{{name}}` placeholders.
const REPORT_TEMPLATE: &str = include_str!("templates/report.html");

/// `template` with each `{{name}}` replaced by the value `values` gives for `name`, in one
/// pass, so a value that itself contains `{{...}}` is never expanded. A placeholder without
/// a value stays as it is (the tests check that every template placeholder gets one).
pub(crate) fn fill_template(template: &str, values: &[(&str, &str)]) -> String {
    let mut filled = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let (before, from_open) = rest.split_at(open);
        filled.push_str(before);
        let Some(close) = from_open.find("}}") else {
            rest = from_open;
            break;
        };
        let name = &from_open[2..close];
        match values.iter().find(|(key, _)| *key == name) {
            Some((_, value)) => filled.push_str(value),
            None => filled.push_str(&from_open[..close + 2]),
        }
        rest = &from_open[close + 2..];
    }
    filled.push_str(rest);
    filled
}

/// Table rows of `(name, value)` pairs, the values escaped.
fn table_rows(pairs: &[(&str, String)]) -> String {
    let mut rows = String::new();
    for (name, value) in pairs {
        let _ = write!(rows, "<tr><th>{name}</th><td>{}</td></tr>", escape(value));
    }
    rows
}

/// A section with a heading and a list, or nothing when there are no items.
fn list_section(heading: &str, items: impl Iterator<Item = String>) -> String {
    let items: String = items.map(|item| format!("<li>{item}</li>")).collect();
    if items.is_empty() { String::new() } else { format!("<h2>{heading}</h2><ul>{items}</ul>") }
}

/// Writes `report.html`: parameters, results, per-node table, faults and every chart.
///
/// # Errors
///
/// [`Error::Io`].
pub fn write_html(dir: &Path, summary: &Summary, command: &str) -> Result<(), Error> {
    let parameters = table_rows(&[
        ("system", summary.system.clone()),
        ("workload", summary.workload.clone()),
        ("server", summary.server.clone()),
        ("client", summary.client.clone()),
        ("connection model", summary.connection_model.clone()),
        ("clients", summary.clients.to_string()),
        ("read ratio", summary.read_ratio.to_string()),
        ("value size (bytes)", summary.value_size.to_string()),
        ("keys", summary.keys.to_string()),
        ("duration (s, measured)", format!("{:.1}", summary.duration_s)),
        ("warmup (s)", format!("{:.1}", summary.warmup_s)),
        ("nodes", summary.node_count.to_string()),
        ("snapshot threshold (bytes)", summary.snapshot_size_bytes.to_string()),
        ("OCC", summary.occ.to_string()),
        ("consistency", summary.consistency.clone()),
        ("seed", summary.seed.to_string()),
    ]);
    let latency = summary.latency_ms;
    let mut results = table_rows(&[
        ("operations", summary.ops.to_string()),
        ("operations/s", format!("{:.0}", summary.ops_per_sec)),
        ("errors", summary.errors.to_string()),
        ("conflicts", summary.conflicts.to_string()),
        (
            "server CPU per operation (µs, all server processes)",
            cpu_cell(summary.server_cpu_us_per_op),
        ),
        ("load generator CPU per operation (µs)", cpu_cell(summary.client_cpu_us_per_op)),
        (
            "server bytes written per operation (all server processes: /proc/PID/io write_bytes, \
             pages dirtied; a page dirtied again after an fsync counts again, so this can far \
             exceed the bytes that reach the disk)",
            bytes_cell(summary.server_write_bytes_per_op),
        ),
        (
            "machine CPU (all CPUs, every process)",
            summary.host_cpu.map_or_else(|| "n/a".to_owned(), host_text),
        ),
        (
            "latency p50 / p90 / p99 / p99.9 / max (ms)",
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2} / {:.2}",
                latency.p50, latency.p90, latency.p99, latency.p999, latency.max
            ),
        ),
        (
            "acknowledged keys verified / missing / unreadable",
            format!(
                "{} / {} / {}",
                summary.verified, summary.missing, summary.verification.read_errors
            ),
        ),
    ]);
    if let Some(seconds) = &summary.seconds {
        results.push_str(&table_rows(&[(
            "per-second throughput (the worst second against the median; seconds in which a \
             node stored a snapshot against the others)",
            seconds.text(),
        )]));
    }
    if let Some(watch) = &summary.watch {
        results.push_str(&table_rows(&watch_results(watch)));
    }
    let mut nodes = String::new();
    for node in &summary.nodes {
        let _ = writeln!(
            nodes,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            node.id,
            cell(node.start_index),
            cell(node.start_index_max),
            cell(node.snapshot_bytes),
            cell(node.elections),
            cell(node.term),
            cell(node.log_last_index),
            node.down_s,
            cell_ms(node.persist_p99_ms_max),
        );
    }
    let faults = list_section(
        "Faults",
        summary.faults.iter().map(|fault| format!("{:.1} s: {}", fault.t_s, escape(&fault.label))),
    );
    let error_samples = list_section(
        "Error samples",
        summary.error_samples.iter().map(|error| format!("<code>{}</code>", escape(error))),
    );
    let mut charts = String::new();
    for (stem, title) in TIME_CHARTS {
        let _ = writeln!(
            charts,
            "<h3>{title}</h3><img src=\"{stem}.svg\" alt=\"{title}\">\
             <p><a href=\"{stem}.png\">PNG</a> · <a href=\"{stem}.svg\">SVG</a></p>"
        );
    }
    let html = fill_template(
        REPORT_TEMPLATE,
        &[
            ("system", &escape(&summary.system)),
            ("command", &escape(command)),
            ("parameters", &parameters),
            ("results", &results),
            ("nodes", &nodes),
            ("faults", &faults),
            ("error_samples", &error_samples),
            ("charts", &charts),
        ],
    );
    let path = dir.join("report.html");
    std::fs::write(&path, html).map_err(|source| Error::io("write", &path, source))
}

/// The watch workload's rows of a run's results table.
fn watch_results(watch: &WatchSummary) -> Vec<(&'static str, String)> {
    let latency = watch.delivery_latency_ms;
    vec![
        ("watchers", format!("{} (prefix {:?})", watch.watchers, watch.prefix)),
        ("events delivered (measured, all watchers)", watch.events.to_string()),
        ("events delivered/s", format!("{:.0}", watch.events_per_sec)),
        (
            "delivery latency p50 / p90 / p99 / p99.9 / max (ms)",
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2} / {:.2}",
                latency.p50, latency.p90, latency.p99, latency.p999, latency.max
            ),
        ),
        ("server CPU per event (µs)", cpu_cell(watch.server_cpu_us_per_event)),
        (
            "acknowledged writes × watchers: expected / delivered / missing",
            format!("{} / {} / {}", watch.expected_events, watch.delivered, watch.missing),
        ),
        (
            "duplicates / out of order / unacknowledged writes seen",
            format!(
                "{} / {} / {}",
                watch.duplicates, watch.out_of_order, watch.unacknowledged_events
            ),
        ),
        (
            "drain after the writers stopped (s)",
            format!(
                "{:.2}{}",
                watch.drain_s,
                if watch.caught_up { "" } else { " (gave up: not caught up)" }
            ),
        ),
        ("watch streams ended early", watch.failed_watchers.to_string()),
    ]
}

/// The watch workload's lines of the text summary.
fn watch_text(text: &mut String, watch: &WatchSummary) {
    let latency = watch.delivery_latency_ms;
    let _ = writeln!(
        text,
        "   watch: {} watchers  events {}  events/s {:.0}  server CPU {} µs/event",
        watch.watchers,
        watch.events,
        watch.events_per_sec,
        cpu_cell(watch.server_cpu_us_per_event)
    );
    let _ = writeln!(
        text,
        "   delivery latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        latency.p50, latency.p90, latency.p99, latency.p999, latency.max
    );
    let _ = writeln!(
        text,
        "   acknowledged writes × watchers: {} expected, {} delivered, {} missing, \
         {} duplicates, {} out of order; drain {:.2} s{}",
        watch.expected_events,
        watch.delivered,
        watch.missing,
        watch.duplicates,
        watch.out_of_order,
        watch.drain_s,
        if watch.failed_watchers > 0 {
            format!("; {} streams ended early", watch.failed_watchers)
        } else {
            String::new()
        }
    );
}

/// The one-screen text summary.
#[must_use]
pub fn text_summary(summary: &Summary, dir: &Path) -> String {
    let latency = summary.latency_ms;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "== {} == {} workload, {} clients, read ratio {}, {} B values, {} keys, {:.1} s \
         measured{}",
        summary.system,
        summary.workload,
        summary.clients,
        summary.read_ratio,
        summary.value_size,
        summary.keys,
        summary.duration_s,
        if summary.occ { ", OCC" } else { "" }
    );
    let threads = match summary.server_threads {
        None => "its default threads per process".to_owned(),
        Some(1) => "1 thread per process".to_owned(),
        Some(threads) => format!("{threads} threads per process"),
    };
    let _ = writeln!(text, "   server: {} ({threads})  client: {}", summary.server, summary.client);
    let _ = writeln!(text, "   connection: {}", summary.connection_model);
    let _ = writeln!(
        text,
        "   ops {}  ops/s {:.0}  errors {}  conflicts {}",
        summary.ops, summary.ops_per_sec, summary.errors, summary.conflicts
    );
    let _ = writeln!(
        text,
        "   latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        latency.p50, latency.p90, latency.p99, latency.p999, latency.max
    );
    let _ = writeln!(
        text,
        "   CPU per op: servers {} µs  load generator {} µs",
        cpu_cell(summary.server_cpu_us_per_op),
        cpu_cell(summary.client_cpu_us_per_op)
    );
    let _ = writeln!(
        text,
        "   bytes written per op: servers {} B (pages dirtied, /proc/PID/io; not bytes on disk)",
        bytes_cell(summary.server_write_bytes_per_op)
    );
    if let Some(host) = summary.host_cpu {
        let _ = writeln!(text, "   machine: {}", host_text(host));
    }
    if let Some(floor) = summary.floor {
        // Only a lone client's latency is judged against the floor; with more, queueing
        // dominates.
        let judged = |floor_ms: f64| {
            if summary.clients == 1 {
                format!("; the p50 is {:.2}x it", latency.p50 / floor_ms)
            } else {
                String::new()
            }
        };
        let _ = writeln!(
            text,
            "   latency floor: bare 4 KiB fdatasync p50 {:.3} ms + loopback round trip p50 {:.3} \
             ms = {:.3} ms{}",
            floor.fdatasync_p50_ms,
            floor.loopback_round_trip_p50_ms,
            floor.total_ms(),
            judged(floor.total_ms()),
        );
        let _ = writeln!(
            text,
            "   cluster floor (nodes sharing this disk): fdatasync p50 with {} at once {:.3} ms \
             + 2 round trips = {:.3} ms{}",
            floor.concurrent_syncs,
            floor.concurrent_fdatasync_p50_ms,
            floor.cluster_ms(),
            judged(floor.cluster_ms()),
        );
    }
    if let Some(seconds) = &summary.seconds {
        let _ = writeln!(text, "   {}", seconds.text());
    }
    let _ = writeln!(
        text,
        "   acknowledged keys: {} verified, {} missing, {} unreadable",
        summary.verified, summary.missing, summary.verification.read_errors
    );
    if let Some(watch) = &summary.watch {
        watch_text(&mut text, watch);
    }
    for node in &summary.nodes {
        let _ = writeln!(
            text,
            "   node {}: start index {}  snapshot {} B  elections {}  term {}  down {} s",
            node.id,
            cell(node.start_index),
            cell(node.snapshot_bytes),
            cell(node.elections),
            cell(node.term),
            node.down_s
        );
    }
    for fault in &summary.faults {
        let _ = writeln!(text, "   fault at {:.1} s: {}", fault.t_s, fault.label);
    }
    let _ = writeln!(text, "   report: {}", dir.join("report.html").display());
    text
}

/// `YYYYMMDD-HHMMSS` (UTC) for the default report folder.
#[must_use]
pub fn timestamp() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Summaries for the tests of the report and the comparison.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub(crate) fn summary(system: &str) -> Summary {
        Summary {
            system: system.to_owned(),
            workload: "write".to_owned(),
            server: if system == "etcd" { "etcd" } else { "kv-server" }.to_owned(),
            client: format!("{system}'s client"),
            connection_model: "one <shared> client".to_owned(),
            clients: 4,
            read_ratio: 0.5,
            value_size: 256,
            keys: 500,
            duration_s: 3.0,
            warmup_s: 1.0,
            occ: false,
            consistency: "linearizable".to_owned(),
            node_count: 3,
            snapshot_size_bytes: 65_536,
            seed: 1,
            ops: 1200,
            ops_per_sec: 400.0,
            errors: 2,
            conflicts: 0,
            server_cpu_us_per_op: Some(150.0),
            client_cpu_us_per_op: Some(40.0),
            server_write_bytes_per_op: Some(2048.0),
            server_threads: None,
            floor: Some(Floor {
                fdatasync_p50_ms: 0.25,
                loopback_round_trip_p50_ms: 0.05,
                concurrent_fdatasync_p50_ms: 0.4,
                concurrent_syncs: 3,
            }),
            latency_ms: Percentiles { p50: 1.0, p90: 2.0, p99: 5.0, p999: 9.0, max: 20.0 },
            read_latency_ms: Percentiles::default(),
            write_latency_ms: Percentiles::default(),
            verified: 480,
            missing: 0,
            verification: Verification::default(),
            nodes: vec![NodeSummary { id: 1, down_s: 2, ..NodeSummary::default() }],
            faults: vec![FaultMark { t_s: 1.5, label: "kill 2".to_owned(), resumed: None }],
            error_samples: vec!["timed out {{command}}".to_owned()],
            watch: None,
            seconds: None,
            host_cpu: Some(HostShares { busy_pct: 97.0, steal_pct: 2.5 }),
        }
    }

    fn watch_summary(events_per_sec: f64, p99: f64) -> WatchSummary {
        WatchSummary {
            watchers: 16,
            prefix: "key-".to_owned(),
            events: (events_per_sec * 3.0) as u64,
            events_per_sec,
            delivery_latency_ms: Percentiles { p50: 1.0, p90: 2.0, p99, p999: 9.0, max: 20.0 },
            server_cpu_us_per_event: Some(12.5),
            acknowledged_writes: 100,
            expected_events: 1600,
            delivered: 1599,
            missing: 1,
            duplicates: 0,
            out_of_order: 0,
            unacknowledged_events: 2,
            untracked_events: 0,
            unparsable_events: 0,
            drain_s: 0.25,
            caught_up: true,
            failed_watchers: 0,
            failures: Vec::new(),
        }
    }

    pub(crate) fn watching(system: &str, events_per_sec: f64, p99: f64) -> Summary {
        Summary {
            workload: "watch".to_owned(),
            watch: Some(watch_summary(events_per_sec, p99)),
            ..summary(system)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{summary, watching};
    use super::*;
    use crate::disk_probe::SyncSecond;

    #[test]
    fn placeholders_are_filled_once_and_unknown_ones_stay() {
        let filled = fill_template("a {{x}} b {{y}} c {{z}", &[("x", "{{y}}"), ("y", "1")]);
        assert_eq!(filled, "a {{y}} b 1 c {{z}");
        assert_eq!(fill_template("{{missing}}!", &[]), "{{missing}}!");
    }

    #[test]
    fn the_run_page_fills_every_placeholder_and_escapes_values() {
        let dir = tempfile::tempdir().unwrap();
        write_html(dir.path(), &summary("kv"), "kv-bench --clients <4>").unwrap();
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<title>kv-bench: kv</title>"));
        assert!(html.contains("<code>kv-bench --clients &lt;4&gt;</code>"));
        assert!(html.contains("<tr><th>connection model</th><td>one &lt;shared&gt; client</td>"));
        assert!(html.contains("<li>1.5 s: kill 2</li>"));
        assert!(html.contains("<li><code>timed out {{command}}</code></li>"), "values stay");
        assert!(html.contains("<img src=\"roles.svg\" alt=\"Role of each node\">"));
        assert!(html.contains("<td>150.0</td>"), "server CPU per operation");
        assert!(html.contains("<td>40.0</td>"), "load generator CPU per operation");
        assert!(html.contains("<td>2048</td>"), "server bytes written per operation");
        assert_eq!(html.matches("{{").count(), 1, "only the error sample's braces remain");
    }

    #[test]
    fn the_text_summary_gives_cpu_per_operation_or_says_it_was_not_measured() {
        let text = text_summary(&summary("kv"), Path::new("out"));
        assert!(text.contains("CPU per op: servers 150.0 µs  load generator 40.0 µs"), "{text}");
        let external = Summary { server_cpu_us_per_op: None, ..summary("kv") };
        let text = text_summary(&external, Path::new("out"));
        assert!(text.contains("servers n/a µs"), "{text}");
    }

    #[test]
    fn the_machines_cpu_is_given_when_known() {
        let text = text_summary(&summary("kv"), Path::new("out"));
        let line = "machine: CPUs 97% busy (every process), 2.5% taken by the hypervisor (steal)";
        assert!(text.contains(line), "{text}");
        let dir = tempfile::tempdir().unwrap();
        write_html(dir.path(), &summary("kv"), "kv-bench").unwrap();
        let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(page.contains("2.5% taken by the hypervisor"), "{page}");
        let blind = Summary { host_cpu: None, ..summary("kv") };
        assert!(!text_summary(&blind, Path::new("out")).contains("machine:"));
        write_html(dir.path(), &blind, "kv-bench").unwrap();
        let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(page.contains("every process)</th><td>n/a</td>"), "{page}");
    }

    #[test]
    fn the_time_series_gives_the_machines_cpu_and_the_disk_probe_each_second() {
        let dir = tempfile::tempdir().unwrap();
        let row = |host, cpu_ms: Option<f64>, disk_sync| Row {
            t_s: 1.0,
            ops: 7,
            host,
            server_cpu_ms: cpu_ms,
            client_cpu_ms: cpu_ms.map(|ms| ms / 10.0),
            disk_sync,
            ..Row::default()
        };
        let host = Some(HostShares { busy_pct: 99.04, steal_pct: 12.55 });
        let sync = Some(SyncSecond { syncs: 50, p50_ms: 0.2114, max_ms: 3.0 });
        let path = dir.path().join("timeseries.csv");
        let rows = [row(host, Some(1234.56), sync), row(None, None, None)];
        write_timeseries(&path, &[], &rows).unwrap();
        let csv = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        let header = "max_ms,host_busy_pct,host_steal_pct,servers_cpu_ms,load_generator_cpu_ms,\
                      disk_sync_p50_ms,disk_sync_max_ms";
        assert!(lines[0].ends_with(header), "{csv}");
        assert!(lines[1].ends_with(",99.0,12.6,1234.6,123.5,0.211,3.000"), "{csv}");
        assert!(lines[2].ends_with(",,,,,,"), "unknown is empty, never 0: {csv}");
    }

    #[test]
    fn bytes_written_per_operation_are_given_or_absent_never_zero() {
        let text = text_summary(&summary("kv"), Path::new("out"));
        assert!(text.contains("bytes written per op: servers 2048 B"), "{text}");
        let unreadable = Summary { server_write_bytes_per_op: None, ..summary("etcd") };
        let text = text_summary(&unreadable, Path::new("out"));
        assert!(text.contains("bytes written per op: servers n/a B"), "{text}");
        let json = serde_json::to_value(&unreadable).unwrap();
        assert!(json["server_write_bytes_per_op"].is_null(), "{json}");
    }

    #[test]
    fn the_text_summary_and_the_page_give_the_worst_second_against_the_median() {
        let seconds = SecondsSummary {
            count: 60,
            median_ops: 20_000.0,
            worst_ops: 15_000,
            worst_second: 41,
            worst_ratio: 0.75,
            snapshot_seconds: 50,
            shared_snapshot_seconds: 12,
            snapshot_mean_ratio: Some(1.01),
            snapshot_worst_ratio: Some(0.75),
            other_mean_ratio: Some(0.98),
            other_worst_ratio: Some(0.9),
            steal: Some(crate::seconds::StealSummary {
                median_pct: 0.5,
                worst_second_pct: 22.0,
                stolen_seconds: 3,
                calm_worst_ratio: Some(0.88),
            }),
            disk_sync: Some(crate::seconds::DiskSyncSummary {
                median_p50_ms: 0.2,
                worst_second_p50_ms: Some(0.41),
                slow_seconds: 4,
                ops_correlation: Some(-0.8),
                quiet_worst_ratio: Some(0.91),
            }),
        };
        let with = Summary { seconds: Some(seconds), ..summary("kv") };
        let text = text_summary(&with, Path::new("out"));
        assert!(text.contains("worst 15000 (0.75x the median, second 41 of 60)"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        write_html(dir.path(), &with, "kv-bench").unwrap();
        let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(page.contains("a snapshot: 50 (12 with two or more;"), "{page}");
        assert!(page.contains("22.0% in the worst second, 3 seconds at 5% or more"), "{page}");
        assert!(page.contains("0.410 ms in the worst second, 4 seconds at 1.5x"), "{page}");
        assert!(page.contains("r(ops, sync) -0.80 (worst second neither"), "{page}");
        let without = text_summary(&summary("kv"), Path::new("out"));
        assert!(!without.contains("per second:"), "{without}");
    }

    #[test]
    fn the_text_summary_says_how_many_threads_each_server_ran_on() {
        let text = text_summary(&summary("kv"), Path::new("out"));
        assert!(text.contains("server: kv-server (its default threads per process)"), "{text}");
        let one = Summary { server_threads: Some(1), ..summary("etcd") };
        let text = text_summary(&one, Path::new("out"));
        assert!(text.contains("server: etcd (1 thread per process)"), "{text}");
        let json = serde_json::to_value(&one).unwrap();
        assert_eq!(json["server_threads"], 1, "{json}");
    }

    #[test]
    fn the_latency_floor_is_given_and_a_lone_clients_p50_is_judged_against_it() {
        // The fixture's floor: 0.25 + 0.05 = 0.30 ms; its p50 is 1.0 ms.
        let text = text_summary(&summary("kv"), Path::new("out"));
        assert!(
            text.contains(
                "latency floor: bare 4 KiB fdatasync p50 0.250 ms + loopback round \
                           trip p50 0.050 ms = 0.300 ms\n"
            ),
            "{text}"
        );
        let lone = Summary { clients: 1, ..summary("kv") };
        let text = text_summary(&lone, Path::new("out"));
        assert!(text.contains("= 0.300 ms; the p50 is 3.33x it"), "{text}");
        // 0.4 + 2 * 0.05 = 0.5 ms.
        assert!(
            text.contains(
                "cluster floor (nodes sharing this disk): fdatasync p50 with 3 at once 0.400 ms \
                 + 2 round trips = 0.500 ms; the p50 is 2.00x it\n"
            ),
            "{text}"
        );
        let unmeasured = Summary { floor: None, ..summary("kv") };
        assert!(!text_summary(&unmeasured, Path::new("out")).contains("latency floor"));
        let json = serde_json::to_value(&lone).unwrap();
        assert_eq!(json["floor"]["fdatasync_p50_ms"], 0.25, "{json}");
        assert_eq!(json["floor"]["concurrent_fdatasync_p50_ms"], 0.4, "{json}");
    }

    #[test]
    fn a_watch_run_reports_its_watchers_in_the_page_and_the_text() {
        let summary = watching("kv-etcd", 3000.0, 4.0);
        let dir = tempfile::tempdir().unwrap();
        write_html(dir.path(), &summary, "kv-bench --workload watch").unwrap();
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(html.contains("<tr><th>events delivered/s</th><td>3000</td></tr>"));
        assert!(html.contains("<td>1600 / 1599 / 1</td>"), "expected / delivered / missing");
        assert!(html.contains("<tr><th>workload</th><td>watch</td></tr>"));
        let text = text_summary(&summary, Path::new("out"));
        assert!(text.contains("watch: 16 watchers  events 9000  events/s 3000"), "{text}");
        assert!(text.contains("delivery latency ms: p50 1.00"), "{text}");
        assert!(text.contains("1600 expected, 1599 delivered, 1 missing, 0 duplicates"), "{text}");
    }

    #[test]
    fn the_watch_time_series_has_a_row_per_watched_second() {
        let dir = tempfile::tempdir().unwrap();
        let row = |t_s: f64, watch: Option<crate::workload::WatchRow>| Row {
            t_s,
            warmup: false,
            ops: 1,
            errors: 0,
            conflicts: 0,
            latency_ms: Percentiles::default(),
            nodes: Vec::new(),
            watch,
            host: None,
            server_cpu_ms: None,
            client_cpu_ms: None,
            disk_sync: None,
        };
        let watched = crate::workload::WatchRow { events: 42, latency_ms: Percentiles::default() };
        let path = dir.path().join("watch-timeseries.csv");
        write_watch_timeseries(&path, &[row(1.0, Some(watched)), row(2.0, None)]).unwrap();
        let csv = std::fs::read_to_string(path).unwrap();
        assert_eq!(csv.lines().count(), 2, "{csv}");
        assert!(csv.lines().nth(1).unwrap().starts_with("1.000,0,42,"), "{csv}");
    }
}
