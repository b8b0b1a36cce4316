//! One benchmark run from launch to report, and the comparison of two runs.

use kv_client::TransportKind;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tracing::{info, warn};

use crate::charts::{self, FaultMark, Resumed, TimeData};
use crate::cluster::{Cluster, LaunchConfig, NodeEndpoint};
use crate::cpu;
use crate::disk_probe::DiskProbe;
use crate::disk_writes;
use crate::error::Error;
use crate::floor::Floor;
use crate::metrics::{Samples, http_get};
use crate::parse::{Fault, FaultAction, FaultNode};

/// How long the fault schedule waits for a restarted node to answer its metrics.
const RESUME_WAIT: Duration = Duration::from_secs(15);
use crate::comparison::{self, Comparison};
use crate::report::{self, Summary};
use crate::scrape::Scraper;
use crate::seconds::SecondsSummary;
use crate::system::{Protocol, Server, System};
use crate::target::{EtcdTarget, KvTarget, Target};
use crate::watch::WatchSummary;
use crate::workload::{self, Outcome, Percentiles, WorkloadConfig};

/// Everything one run needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The system to drive.
    pub system: System,
    /// The workload.
    pub workload: WorkloadConfig,
    /// Nodes to launch.
    pub nodes: u64,
    /// The servers' snapshot threshold as given (`4MB`).
    pub snapshot_size: String,
    /// Our servers' log engine (`wal` or `redb`).
    pub storage: String,
    /// Threads per server process (`None`: each server's default).
    pub server_threads: Option<NonZeroUsize>,
    /// The wire our servers and kv-client speak.
    pub transport: TransportKind,
    /// The same in bytes.
    pub snapshot_bytes: u64,
    /// The fault schedule.
    pub faults: Vec<Fault>,
    /// An already running cluster's client addresses (nothing launched).
    pub endpoints: Option<Vec<SocketAddr>>,
    /// Its metrics addresses (`/metrics`), in the same order.
    pub metrics_endpoints: Option<Vec<SocketAddr>>,
    /// Client certificates for an already running cluster of ours.
    pub certs_dir: Option<PathBuf>,
    /// The server binary (`kv-server` or `etcd`).
    pub program: PathBuf,
    /// The report folder.
    pub out: PathBuf,
    /// The command line, for the report.
    pub command: String,
    /// Show the progress bar.
    pub progress: bool,
}

/// Aborts a spawned task when dropped, so nothing outlives a failed or interrupted run.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one benchmark and writes its report folder.
///
/// # Errors
///
/// Launch, client, file and chart errors.
pub async fn run_one(config: &RunConfig) -> Result<Summary, Error> {
    std::fs::create_dir_all(&config.out)
        .map_err(|source| Error::io("create", &config.out, source))?;
    let floor = measure_floor(config.nodes).await;
    let cluster = Arc::new(launch(config).await?);
    if !config.faults.is_empty() && !cluster.launched() {
        return Err(Error::invalid(
            "--fault",
            "",
            "faults need a cluster the harness launched (not --endpoints)",
        ));
    }
    let result = drive(config, &cluster).await;
    let stopper = Arc::clone(&cluster);
    let _ = tokio::task::spawn_blocking(move || stopper.stop()).await;
    let (outcome, faults, connection_model, verification) = result?;
    let node_ids: Vec<u64> = cluster.endpoints.iter().map(|node| node.id).collect();
    let watch = outcome
        .watch
        .as_ref()
        .map(|watch| WatchSummary::new(watch, outcome.measured_s, outcome.server_cpu_micros));
    let summary = Summary {
        system: config.system.name().to_owned(),
        workload: config.workload.kind.name().to_owned(),
        server: config.system.server().name().to_owned(),
        client: config.system.protocol().description(config.transport),
        connection_model,
        clients: config.workload.clients,
        read_ratio: config.workload.read_ratio,
        value_size: config.workload.value_size,
        keys: config.workload.keys,
        duration_s: outcome.measured_s,
        warmup_s: config.workload.warmup.as_secs_f64(),
        occ: config.workload.occ,
        consistency: if config.workload.linearizable { "linearizable" } else { "stale" }.into(),
        node_count: node_ids.len(),
        snapshot_size_bytes: config.snapshot_bytes,
        seed: config.workload.seed,
        ops: outcome.ops,
        ops_per_sec: if outcome.measured_s > 0.0 {
            outcome.ops as f64 / outcome.measured_s
        } else {
            0.0
        },
        errors: outcome.errors,
        conflicts: outcome.conflicts,
        server_cpu_us_per_op: cpu::per_op(outcome.server_cpu_micros, outcome.ops),
        client_cpu_us_per_op: cpu::per_op(outcome.client_cpu_micros, outcome.ops),
        server_write_bytes_per_op: disk_writes::per_op(outcome.server_write_bytes, outcome.ops),
        server_threads: config.server_threads.map(NonZeroUsize::get),
        floor,
        latency_ms: Percentiles::of(&outcome.all),
        read_latency_ms: Percentiles::of(&outcome.reads),
        write_latency_ms: Percentiles::of(&outcome.writes),
        verified: verification.verified,
        missing: verification.missing,
        verification,
        nodes: report::node_summaries(&node_ids, &outcome.rows),
        faults,
        error_samples: outcome.error_samples.clone(),
        watch,
        seconds: SecondsSummary::of(&outcome.rows),
        host_cpu: outcome.host,
    };
    write_report(config, &summary, &outcome, &node_ids)?;
    Ok(summary)
}

/// The latency floor on the file system the servers write to (the temporary directory),
/// measured on a blocking thread before the cluster starts; `None`, with a warning, when it
/// cannot be.
async fn measure_floor(nodes: u64) -> Option<Floor> {
    let directory = std::env::temp_dir();
    let nodes = usize::try_from(nodes).unwrap_or(usize::MAX);
    match tokio::task::spawn_blocking(move || Floor::measure(&directory, nodes)).await {
        Ok(Ok(floor)) => Some(floor),
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not measure the latency floor");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "the latency floor's measurement failed");
            None
        }
    }
}

/// The disk probe on the file system the servers write to (the temporary directory, as for
/// the floor); `None`, with a warning, when it cannot start.
fn start_disk_probe() -> Option<DiskProbe> {
    let directory = std::env::temp_dir();
    DiskProbe::start(&directory)
        .inspect_err(|error| tracing::warn!(%error, "could not start the disk probe"))
        .ok()
}

async fn launch(config: &RunConfig) -> Result<Cluster, Error> {
    if let Some(addrs) = &config.endpoints {
        let endpoints = addrs
            .iter()
            .enumerate()
            .map(|(slot, addr)| NodeEndpoint {
                id: slot as u64 + 1,
                client_addr: *addr,
                metrics_addr: match (&config.metrics_endpoints, config.system.server()) {
                    (Some(metrics), _) => metrics.get(slot).copied(),
                    (None, Server::Etcd) => Some(*addr),
                    (None, Server::KvServer) => None,
                },
            })
            .collect();
        return Ok(Cluster::external(config.system, endpoints, config.certs_dir.clone()));
    }
    let launch = LaunchConfig {
        nodes: config.nodes,
        program: config.program.clone(),
        snapshot_size: config.snapshot_size.clone(),
        storage: config.storage.clone(),
        server_threads: config.server_threads,
        transport: config.transport,
        log_dir: config.out.join("logs"),
    };
    info!(system = config.system.name(), nodes = config.nodes, "launching cluster");
    Cluster::launch(config.system, &launch).await
}

type Driven = (Outcome, Vec<FaultMark>, String, workload::Verification);

async fn drive(config: &RunConfig, cluster: &Arc<Cluster>) -> Result<Driven, Error> {
    match config.system.protocol() {
        Protocol::KvClient => {
            let addrs: Vec<SocketAddr> =
                cluster.endpoints.iter().map(|node| node.client_addr).collect();
            let certs = cluster.certs_dir.clone().ok_or_else(|| {
                Error::invalid("--certs-dir", "", "an external cluster of ours needs --certs-dir")
            })?;
            let target = KvTarget::new(addrs, &certs, config.transport)?;
            let model = kv_connection_model(config.transport);
            let result = drive_target(config, cluster, target.clone(), model).await;
            target.close().await;
            result
        }
        Protocol::EtcdClient => {
            let (connect, model) = etcd_connection(config, cluster).await;
            let target = EtcdTarget::connect(&connect).await?;
            drive_target(config, cluster, target, model).await
        }
    }
}

/// How kv-client reaches the nodes over `transport`, in words.
fn kv_connection_model(transport: TransportKind) -> String {
    let (connection, multiplexed) = match transport {
        TransportKind::Quic => ("QUIC connection", "one stream per connection"),
        TransportKind::Tcp => ("TCP connection (TLS)", "the connection"),
    };
    format!(
        "one shared KvClient for all workers: one {connection} per node, requests \
         multiplexed on {multiplexed}, sent to the leader"
    )
}

/// The etcd API addresses to connect to, and the connection model in words. One HTTP/2
/// connection to the leader multiplexing every worker (and every watcher) is etcd's
/// fastest setup here, and `kv-etcd` gets exactly the same; with faults the client needs
/// every endpoint to survive the leader.
async fn etcd_connection(config: &RunConfig, cluster: &Cluster) -> (Vec<SocketAddr>, String) {
    let server = config.system.server().name();
    let watchers = match config.workload.kind {
        workload::WorkloadKind::Write => String::new(),
        workload::WorkloadKind::Watch => format!(
            "; each of the {} watchers on its own gRPC watch stream over the same connection",
            config.workload.watchers
        ),
    };
    let leader = cluster.leader().await;
    let leader_addr =
        cluster.endpoints.iter().find(|node| Some(node.id) == leader).map(|node| node.client_addr);
    match leader_addr {
        Some(addr) if config.faults.is_empty() => (
            vec![addr],
            format!(
                "one shared etcd-client (one HTTP/2 connection to the leader's etcd API at \
                 {addr}, served by {server}) multiplexing all workers{watchers}"
            ),
        ),
        _ => (
            cluster.endpoints.iter().map(|node| node.client_addr).collect(),
            format!(
                "one shared etcd-client balancing over one HTTP/2 connection per endpoint's \
                 etcd API (served by {server}), multiplexing all workers{watchers}"
            ),
        ),
    }
}

async fn drive_target<T: Target>(
    config: &RunConfig,
    cluster: &Arc<Cluster>,
    target: T,
    model: String,
) -> Result<Driven, Error> {
    let scraper = Scraper::new(config.system, &cluster.endpoints);
    let total = config.workload.warmup + config.workload.duration;
    let progress = progress_bar(config, total);
    let started = Instant::now();
    let marks = Arc::new(Mutex::new(Vec::new()));
    let _faults = AbortOnDrop(tokio::spawn(run_faults(
        Arc::clone(cluster),
        config.faults.clone(),
        started,
        Arc::clone(&marks),
    )));
    let bar = progress.clone();
    let on_row: workload::OnRow = Box::new(move |row| {
        bar.set_position(row.t_s.round() as u64);
        let watch = row.watch.map_or_else(String::new, |watch| {
            format!("  events/s {}  delivery p99 {:.2} ms", watch.events, watch.latency_ms.p99)
        });
        bar.set_message(format!(
            "{} ops/s  p99 {:.2} ms  errors {}{watch}",
            row.ops, row.latency_ms.p99, row.errors
        ));
    });
    let pids_of = Arc::clone(cluster);
    let server_pids: workload::ServerPids = Box::new(move || pids_of.server_pids());
    let disk_probe = start_disk_probe();
    let outcome = workload::run(
        target.clone(),
        &config.workload,
        scraper,
        started,
        on_row,
        server_pids,
        disk_probe,
    )
    .await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            progress.finish_and_clear();
            return Err(error);
        }
    };
    progress.finish_and_clear();
    let faults = marks.lock().unwrap_or_else(PoisonError::into_inner).clone();
    info!(keys = outcome.acks.iter().flatten().count(), "verifying acknowledged writes");
    let verification = workload::verify(&target, &outcome.acks).await;
    Ok((outcome, faults, model, verification))
}

fn progress_bar(config: &RunConfig, total: Duration) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total.as_secs());
    let style =
        ProgressStyle::with_template("{prefix:>5} [{bar:30.cyan/blue}] {pos:>3}/{len}s  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(config.system.name());
    bar
}

/// Fires the faults at their times, noting each for the charts.
async fn run_faults(
    cluster: Arc<Cluster>,
    faults: Vec<Fault>,
    started: Instant,
    marks: Arc<Mutex<Vec<FaultMark>>>,
) {
    for fault in faults {
        tokio::time::sleep_until((started + fault.at).into()).await;
        let id = match fault.node {
            FaultNode::Id(id) => Some(id),
            FaultNode::Leader => cluster.leader().await,
        };
        let Some(id) = id else {
            warn!(action = fault.action.name(), "no leader to fault");
            continue;
        };
        let label = match fault.node {
            FaultNode::Id(_) => format!("{} {id}", fault.action.name()),
            FaultNode::Leader => format!("{}-leader ({id})", fault.action.name()),
        };
        let applier = Arc::clone(&cluster);
        let action = fault.action;
        let applied = tokio::task::spawn_blocking(move || applier.apply(id, action)).await;
        match applied {
            Ok(Ok(())) => info!(%label, "fault applied"),
            Ok(Err(error)) => warn!(%label, %error, "fault failed"),
            Err(error) => warn!(%label, %error, "fault task failed"),
        }
        let t_s = started.elapsed().as_secs_f64();
        let resumed = match action {
            FaultAction::Restart => first_answer(&cluster, id, started).await,
            _ => None,
        };
        let mark = FaultMark { t_s, label, resumed };
        marks.lock().unwrap_or_else(PoisonError::into_inner).push(mark);
    }
}

/// Polls a restarted node's metrics until it answers (at most [`RESUME_WAIT`]) and returns
/// the log start index it came back with: the snapshot it resumed from.
async fn first_answer(cluster: &Cluster, id: u64, started: Instant) -> Option<Resumed> {
    let addr = cluster.endpoints.iter().find(|node| node.id == id)?.metrics_addr?;
    let deadline = Instant::now() + RESUME_WAIT;
    while Instant::now() < deadline {
        if let Ok((200, body)) = http_get(addr, "/metrics", Duration::from_millis(200)).await {
            let samples = Samples::parse(&body);
            if let Some(index) = samples.get("raft_log_first_index") {
                let t_s = started.elapsed().as_secs_f64();
                info!(node = id, log_first_index = index, "restarted node answers");
                return Some(Resumed { node: id, t_s, log_first_index: index.max(0.0) as u64 });
            }
            if samples.get("etcd_server_is_leader").is_some() {
                return None;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

fn write_report(
    config: &RunConfig,
    summary: &Summary,
    outcome: &Outcome,
    node_ids: &[u64],
) -> Result<(), Error> {
    let dir = &config.out;
    report::write_json(&dir.join("summary.json"), summary)?;
    report::write_timeseries(&dir.join("timeseries.csv"), node_ids, &outcome.rows)?;
    report::write_histogram(dir, "latency", &outcome.all)?;
    report::write_histogram(dir, "latency-read", &outcome.reads)?;
    report::write_histogram(dir, "latency-write", &outcome.writes)?;
    if let Some(watch) = &outcome.watch {
        report::write_histogram(dir, "delivery-latency", &watch.latency)?;
        report::write_watch_timeseries(&dir.join("watch-timeseries.csv"), &outcome.rows)?;
    }
    let data = TimeData {
        rows: &outcome.rows,
        node_ids,
        faults: &summary.faults,
        system: config.system.name(),
    };
    charts::draw_time_charts(data, dir)?;
    report::write_html(dir, summary, &config.command)?;
    Ok(())
}

/// Runs `subject` then `reference` with the same workload into `<out>/<subject>` and
/// `<out>/<reference>` (the systems' names), and writes `comparison.json`,
/// `comparison.{png,svg}` and `report.html` into `<out>` (`subject`'s `out`). Ratios are
/// subject / reference.
///
/// # Errors
///
/// As [`run_one`], and [`Error::Invalid`] when both name the same system.
pub async fn run_compare(subject: &RunConfig, reference: &RunConfig) -> Result<Comparison, Error> {
    if subject.system == reference.system {
        return Err(Error::invalid("--compare", subject.system.name(), "compare two systems"));
    }
    let out = subject.out.clone();
    let mut subject = subject.clone();
    subject.out = out.join(subject.system.name());
    let mut reference = reference.clone();
    reference.out = out.join(reference.system.name());
    let subject_summary = run_one(&subject).await?;
    eprint!("{}", report::text_summary(&subject_summary, &subject.out));
    let reference_summary = run_one(&reference).await?;
    eprint!("{}", report::text_summary(&reference_summary, &reference.out));
    let comparison = Comparison::new(subject_summary, reference_summary);
    report::write_json(&out.join("comparison.json"), &comparison)?;
    charts::draw_comparison(&comparison.bars(), &out)?;
    comparison::write_comparison_html(&out, &comparison, &subject.command)?;
    Ok(comparison)
}
