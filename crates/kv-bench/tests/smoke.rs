//! Smoke tests for CI: the harness runs for about 3 s against three real `kv-server`
//! processes on 127.0.0.1 (through kv-client, and through their etcd API) or etcd, writes a
//! complete report folder, and every acknowledged write is read back; the watch workload's
//! watchers get every acknowledged write. Method: run the `kv-bench` binary as a user
//! would, then check the folder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files every report folder holds.
const REPORT_FILES: [&str; 19] = [
    "summary.json",
    "timeseries.csv",
    "report.html",
    "latency.hdr",
    "latency-percentiles.txt",
    "latency-read.hdr",
    "latency-write.hdr",
    "throughput_latency.png",
    "throughput_latency.svg",
    "persistence_latency.png",
    "persistence_latency.svg",
    "log_start_index.png",
    "log_start_index.svg",
    "roles.png",
    "roles.svg",
    "snapshot_size.png",
    "snapshot_size.svg",
    "logs",
    "latency-write-percentiles.txt",
];

/// `target/<profile>/kv-server`, beside the folder of this test executable
/// (`target/<profile>/deps`). Cargo does not build another package's binaries for this
/// test, so CI builds the workspace first.
fn kv_server() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let server = profile_dir.join("kv-server");
    assert!(
        server.is_file(),
        "{} is missing: run `cargo build --workspace` (CI: `cargo build --workspace \
         --all-targets`) before this test",
        server.display()
    );
    server
}

fn run_bench(extra: &[&str], out: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_kv-bench"))
        .args(["--clients", "4", "--duration", "3s", "--warmup", "1s", "--keys", "500"])
        .args(["--snapshot-size", "64KB", "--no-progress", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kv-bench failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn check_report(dir: &Path, system: &str) -> serde_json::Value {
    for file in REPORT_FILES {
        let path = dir.join(file);
        assert!(path.exists(), "{} is missing", path.display());
        if path.is_file() {
            assert!(path.metadata().unwrap().len() > 0, "{} is empty", path.display());
        }
    }
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(summary["system"], system);
    assert!(summary["ops"].as_u64().unwrap() > 0, "no operations: {summary}");
    assert!(summary["ops_per_sec"].as_f64().unwrap() > 0.0);
    assert!(summary["verified"].as_u64().unwrap() > 0, "nothing verified: {summary}");
    assert_eq!(summary["missing"].as_u64(), Some(0), "acknowledged writes lost: {summary}");
    for field in ["p50", "p90", "p99", "p999", "max"] {
        assert!(summary["latency_ms"][field].as_f64().unwrap() > 0.0, "latency {field}");
    }
    assert_eq!(summary["nodes"].as_array().unwrap().len(), 3);
    let csv = std::fs::read_to_string(dir.join("timeseries.csv")).unwrap();
    assert!(csv.lines().count() >= 4, "too few rows:\n{csv}");
    assert!(csv.starts_with("t_s,warmup,ops,errors"));
    // The machine's CPU, read from /proc/stat every second and over the window.
    let header = csv.lines().next().unwrap();
    assert!(header.contains(",host_busy_pct,host_steal_pct,servers_cpu_ms,"), "{csv}");
    // The last measured second: the launched servers spent CPU on its operations.
    let columns: Vec<&str> = header.split(',').collect();
    let servers = columns.iter().position(|&column| column == "servers_cpu_ms").unwrap();
    let last: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
    assert!(last[servers].parse::<f64>().unwrap() > 0.0, "{csv}");
    let busy = summary["host_cpu"]["busy_pct"].as_f64().unwrap();
    assert!(busy > 0.0 && busy <= 100.0, "a cluster under load keeps the CPUs busy: {busy}");
    assert!(summary["seconds"]["steal"]["median_pct"].is_f64(), "{summary}");
    // The disk probe synced on the servers' disk every second of the run.
    let probe = columns.iter().position(|&column| column == "disk_sync_p50_ms").unwrap();
    assert_eq!(columns[probe + 1], "disk_sync_max_ms", "{header}");
    assert!(last[probe].parse::<f64>().unwrap() > 0.0, "{csv}");
    assert!(summary["seconds"]["disk_sync"]["median_p50_ms"].as_f64().unwrap() > 0.0);
    summary
}

#[test]
fn a_short_run_against_three_kv_servers_writes_a_complete_report() {
    let server = kv_server();
    let out = tempfile::tempdir().unwrap();
    run_bench(&["--server-bin", server.to_str().unwrap()], out.path());
    let summary = check_report(out.path(), "kv");
    // Our nodes export their log bounds: every node answered at least once.
    for node in summary["nodes"].as_array().unwrap() {
        assert!(node["start_index"].is_u64(), "node without metrics: {node}");
    }
}

#[test]
fn a_short_run_against_kv_servers_etcd_api_writes_a_complete_report() {
    let server = kv_server();
    let out = tempfile::tempdir().unwrap();
    run_bench(&["--server-bin", server.to_str().unwrap(), "--system", "kv-etcd"], out.path());
    let summary = check_report(out.path(), "kv-etcd");
    assert_eq!(summary["server"], "kv-server");
    let client = summary["client"].as_str().unwrap();
    assert!(client.starts_with("etcd-client"), "driven through etcd's client: {client}");
    let model = summary["connection_model"].as_str().unwrap();
    assert!(model.contains("etcd API") && model.contains("kv-server"), "{model}");
    assert!(summary["server_cpu_us_per_op"].as_f64().unwrap() > 0.0, "server CPU: {summary}");
    // Our metrics are scraped as for `kv`: every node reports its log and its role.
    for node in summary["nodes"].as_array().unwrap() {
        assert!(node["start_index"].is_u64(), "node without metrics: {node}");
        assert!(node["role"].is_u64(), "node without a role: {node}");
    }
}

#[test]
fn a_short_watch_run_through_kv_servers_etcd_api_delivers_every_acknowledged_write() {
    let server = kv_server();
    let out = tempfile::tempdir().unwrap();
    let system = ["--server-bin", server.to_str().unwrap(), "--system", "kv-etcd"];
    let watch = ["--workload", "watch", "--watchers", "4"];
    run_bench(&[&system[..], &watch[..]].concat(), out.path());
    let summary = check_report(out.path(), "kv-etcd");
    assert_eq!(summary["workload"], "watch");
    for file in ["watch-timeseries.csv", "delivery-latency.hdr"] {
        assert!(out.path().join(file).is_file(), "{file} is missing");
    }
    let watch = &summary["watch"];
    assert_eq!(watch["watchers"], 4);
    assert!(watch["events"].as_u64().unwrap() > 0, "no events delivered: {watch}");
    assert!(watch["delivery_latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    let expected = watch["expected_events"].as_u64().unwrap();
    assert!(expected > 0, "no acknowledged writes: {watch}");
    assert_eq!(watch["acknowledged_writes"].as_u64().unwrap() * 4, expected);
    assert_eq!(watch["delivered"].as_u64(), Some(expected), "{watch}");
    assert_eq!(watch["missing"], 0, "events lost: {watch}");
    assert_eq!(watch["duplicates"], 0, "events delivered twice: {watch}");
    assert_eq!(watch["out_of_order"], 0, "events out of revision order: {watch}");
    assert_eq!(watch["failed_watchers"], 0, "watch streams ended: {watch}");
}

#[test]
fn a_watch_run_through_kv_client_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_kv-bench"))
        .args(["--system", "kv", "--workload", "watch", "--no-progress"])
        .output()
        .unwrap();
    assert!(!output.status.success(), "kv-client cannot watch");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--system kv-etcd"), "the error says what to use: {stderr}");
}

#[test]
fn a_short_run_against_etcd_writes_a_complete_report() {
    if Command::new("etcd").arg("--version").output().is_err() {
        // etcd is an optional comparison target; CI installs Debian's `etcd-server`.
        eprintln!("SKIPPED: no `etcd` on PATH (apt-get install etcd-server)");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    run_bench(&["--system", "etcd"], out.path());
    check_report(out.path(), "etcd");
}

#[test]
fn a_short_storage_sweep_reports_each_engine_and_puts_them_side_by_side() {
    let server = kv_server();
    let out = tempfile::tempdir().unwrap();
    let sweep = ["--server-bin", server.to_str().unwrap(), "--storage", "wal,redb"];
    run_bench(&sweep, out.path());
    for engine in ["wal", "redb"] {
        let summary = check_report(&out.path().join(format!("storage-{engine}")), "kv");
        let written = &summary["server_write_bytes_per_op"];
        assert!(written.is_null() || written.as_f64().unwrap() > 0.0, "{engine}: {written}");
    }
    let html = std::fs::read_to_string(out.path().join("storage-comparison.html")).unwrap();
    assert!(html.contains("<a href=\"storage-redb/report.html\">"), "{html}");
    let text = std::fs::read_to_string(out.path().join("storage-comparison.json")).unwrap();
    let table: serde_json::Value = serde_json::from_str(&text).unwrap();
    let engines: Vec<&str> = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["engine"].as_str().unwrap())
        .collect();
    assert_eq!(engines, ["wal", "redb"]);
}
