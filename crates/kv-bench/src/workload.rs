//! The workload: `clients` workers hammering random keys through a [`Target`], a sampler
//! that closes a row per second (ops, errors, latency percentiles, node metrics), and the
//! end-of-run check that every acknowledged write is still there. The watch workload adds
//! watchers of every key the workers write (see [`crate::watch`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::cpu::{CpuSample, HostCpuSample, HostShares, own_cpu_micros};
use crate::disk_probe::{DiskProbe, SyncSecond};
use crate::disk_writes::WriteBytesSample;
use crate::error::Error;
use crate::scrape::{NodeSample, Scraper};
use crate::target::{PutResult, Target};
use crate::watch::{MeasuredWindow, WatchOutcome, Watchers, nanos_since, timestamped_value};

/// The largest latency the histograms hold, in microseconds (one minute).
const LATENCY_US_MAX: u64 = 60_000_000;

/// How many times an OCC write retries after conflicts before it counts as an error.
const OCC_ATTEMPTS_MAX: usize = 32;

/// Concurrent reads while verifying acknowledged writes.
const VERIFY_CONCURRENCY: usize = 32;

/// Distinct error messages kept for the report.
const ERROR_SAMPLES_MAX: usize = 10;

/// Which workload runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// Workers read and write random keys.
    #[default]
    Write,
    /// Workers put random keys while watchers watch them all (etcd's API only).
    Watch,
}

impl WorkloadKind {
    /// The name used on the command line and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Write => "write",
            WorkloadKind::Watch => "watch",
        }
    }
}

/// What the workers do.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadConfig {
    /// Which workload.
    pub kind: WorkloadKind,
    /// Watchers of the watch workload (0 for the write workload).
    pub watchers: usize,
    /// Concurrent workers, each with one request in flight.
    pub clients: usize,
    /// Fraction of operations that are reads (0..=1).
    pub read_ratio: f64,
    /// Bytes per value.
    pub value_size: usize,
    /// Keys chosen uniformly from `key-00000000` up.
    pub keys: u64,
    /// Measured time after the warmup.
    pub duration: Duration,
    /// Time before measuring starts.
    pub warmup: Duration,
    /// Writes are compare-and-set on the version last seen.
    pub occ: bool,
    /// Reads are linearizable (else stale/serializable).
    pub linearizable: bool,
    /// Seed of the workers' random choices.
    pub seed: u64,
}

/// A one-second row of the time series.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    /// Seconds since the workload started, at the end of this row's interval.
    pub t_s: f64,
    /// Whether the second belongs to the warmup.
    pub warmup: bool,
    /// Operations completed.
    pub ops: u64,
    /// Operations failed.
    pub errors: u64,
    /// OCC conflicts met.
    pub conflicts: u64,
    /// Latency percentiles of the completed operations, in ms.
    pub latency_ms: Percentiles,
    /// One sample per node.
    pub nodes: Vec<NodeSample>,
    /// The watchers' second (watch workload only).
    pub watch: Option<WatchRow>,
    /// The whole machine's CPU in this second: how busy, and how much the hypervisor took
    /// (`None` where `/proc/stat` cannot tell).
    pub host: Option<HostShares>,
    /// CPU the server processes spent in this second, in ms (`None` for a cluster the
    /// harness did not launch). Against `ops`, it tells a second in which the servers did
    /// more work per operation from one in which the same work bought fewer.
    pub server_cpu_ms: Option<f64>,
    /// CPU the load generator (this process) spent in this second, in ms.
    pub client_cpu_ms: Option<f64>,
    /// The disk probe's syncs in this second (`None` without a probe, or when none
    /// finished): how fast a bare sync was on the servers' disk meanwhile.
    pub disk_sync: Option<SyncSecond>,
}

/// The events the watchers received in one second.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct WatchRow {
    /// Events received, summed over watchers.
    pub events: u64,
    /// Their delivery latency, in ms.
    pub latency_ms: Percentiles,
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of a histogram of microseconds.
    #[must_use]
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// The last acknowledged write of a key.
#[derive(Clone, Copy, Debug)]
pub struct Ack {
    /// The version the write produced.
    pub version: u64,
    /// FNV-1a hash of the value written.
    pub value_hash: u64,
}

/// Everything the workload measured.
#[derive(Debug)]
pub struct Outcome {
    /// One row per second, warmup included.
    pub rows: Vec<Row>,
    /// Latency of every measured operation, in µs.
    pub all: Histogram<u64>,
    /// Latency of measured reads, in µs.
    pub reads: Histogram<u64>,
    /// Latency of measured writes, in µs.
    pub writes: Histogram<u64>,
    /// Measured operations (after the warmup).
    pub ops: u64,
    /// Measured errors.
    pub errors: u64,
    /// Measured OCC conflicts.
    pub conflicts: u64,
    /// Seconds measured.
    pub measured_s: f64,
    /// The last acknowledged write per key index.
    pub acks: Vec<Option<Ack>>,
    /// A few distinct error messages.
    pub error_samples: Vec<String>,
    /// CPU the server processes spent in the measured window, in µs (`None` when the harness
    /// did not launch them, so it knows no process ids).
    pub server_cpu_micros: Option<u64>,
    /// CPU this process (the load generator) spent in the measured window, in µs.
    pub client_cpu_micros: Option<u64>,
    /// Bytes the server processes sent to the storage layer in the measured window
    /// (`/proc/PID/io` `write_bytes`); `None` when the harness knows no process ids or
    /// `/proc` would not tell.
    pub server_write_bytes: Option<u64>,
    /// What the watchers saw (watch workload only).
    pub watch: Option<WatchOutcome>,
    /// The whole machine's CPU over the measured window (`None` where `/proc/stat` cannot
    /// tell).
    pub host: Option<HostShares>,
}

impl Outcome {
    fn new() -> Outcome {
        Outcome {
            rows: Vec::new(),
            all: new_histogram(),
            reads: new_histogram(),
            writes: new_histogram(),
            ops: 0,
            errors: 0,
            conflicts: 0,
            measured_s: 0.0,
            acks: Vec::new(),
            error_samples: Vec::new(),
            server_cpu_micros: None,
            client_cpu_micros: None,
            server_write_bytes: None,
            watch: None,
            host: None,
        }
    }

    /// Notes the CPU the servers and this process spent, and the bytes the servers wrote,
    /// between the readings.
    fn close_window(&mut self, start: &WindowReading, end: &WindowReading) {
        self.server_write_bytes = end.server_writes.since(&start.server_writes);
        if !end.servers.micros.is_empty() {
            self.server_cpu_micros = Some(end.servers.since(&start.servers));
        }
        self.client_cpu_micros =
            end.client.zip(start.client).map(|(end, start)| end.saturating_sub(start));
        self.host = end.host.zip(start.host).and_then(|(end, start)| end.since(&start));
    }

    /// Adds a measured (post-warmup) interval of `seconds`.
    fn measure(&mut self, interval: &Interval, seconds: f64) {
        let _ = self.all.add(&interval.all);
        let _ = self.reads.add(&interval.reads);
        let _ = self.writes.add(&interval.writes);
        self.ops += interval.ops;
        self.errors += interval.errors;
        self.conflicts += interval.conflicts;
        self.measured_s += seconds;
    }
}

/// What happened in the current second; the sampler swaps it out.
struct Interval {
    all: Histogram<u64>,
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    ops: u64,
    errors: u64,
    conflicts: u64,
}

impl Interval {
    fn new() -> Interval {
        Interval {
            all: new_histogram(),
            reads: new_histogram(),
            writes: new_histogram(),
            ops: 0,
            errors: 0,
            conflicts: 0,
        }
    }
}

/// Records `latency` in a histogram of [`new_histogram`]'s microseconds, clamped to its
/// bounds.
pub fn record_micros(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    let _ = histogram.record(micros.clamp(1, LATENCY_US_MAX));
}

/// An empty latency histogram of microseconds with 3 significant digits.
#[must_use]
#[allow(clippy::expect_used)]
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
        .expect("1..=LATENCY_US_MAX with 3 significant digits are valid histogram bounds")
}

struct Shared {
    interval: Mutex<Interval>,
    acks: Vec<Mutex<Option<Ack>>>,
    /// Every acknowledged write's version (etcd: revision), for the watchers' check; only
    /// kept for the watch workload.
    acked_revisions: Option<Mutex<Vec<u64>>>,
    stop: AtomicBool,
    error_samples: Mutex<Vec<String>>,
}

impl Shared {
    fn new(config: &WorkloadConfig) -> Shared {
        let keys = usize::try_from(config.keys.max(1)).unwrap_or(usize::MAX);
        let acked_revisions = match config.kind {
            WorkloadKind::Write => None,
            WorkloadKind::Watch => Some(Mutex::new(Vec::new())),
        };
        Shared {
            interval: Mutex::new(Interval::new()),
            acks: (0..keys).map(|_| Mutex::new(None)).collect(),
            acked_revisions,
            stop: AtomicBool::new(false),
            error_samples: Mutex::new(Vec::new()),
        }
    }

    /// Every acknowledged write's revision so far (none for the write workload).
    fn take_revisions(&self) -> Vec<u64> {
        self.acked_revisions.as_ref().map_or_else(Vec::new, |revisions| {
            std::mem::take(&mut *revisions.lock().unwrap_or_else(PoisonError::into_inner))
        })
    }

    /// The interval just ended; a fresh one starts.
    fn take_interval(&self) -> Interval {
        let mut current = self.interval.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *current, Interval::new())
    }

    fn record(&self, latency: Duration, read: bool, result: &OpResult) {
        let us = (latency.as_micros() as u64).clamp(1, LATENCY_US_MAX);
        let mut interval = self.interval.lock().unwrap_or_else(PoisonError::into_inner);
        interval.conflicts += result.conflicts;
        if result.error.is_some() {
            interval.errors += 1;
        } else {
            interval.ops += 1;
            let _ = interval.all.record(us);
            let _ = if read { interval.reads.record(us) } else { interval.writes.record(us) };
        }
        drop(interval);
        if let Some(message) = &result.error {
            let mut samples = self.error_samples.lock().unwrap_or_else(PoisonError::into_inner);
            if samples.len() < ERROR_SAMPLES_MAX && !samples.contains(message) {
                samples.push(message.clone());
            }
        }
    }

    fn acknowledge(&self, key: usize, version: u64, value_hash: u64) {
        if let Some(revisions) = &self.acked_revisions {
            revisions.lock().unwrap_or_else(PoisonError::into_inner).push(version);
        }
        let Some(slot) = self.acks.get(key) else { return };
        let mut ack = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if ack.is_none_or(|known| known.version < version) {
            *ack = Some(Ack { version, value_hash });
        }
    }
}

struct OpResult {
    error: Option<String>,
    conflicts: u64,
}

/// The name of key `index`.
#[must_use]
pub fn key_name(index: u64) -> Bytes {
    use std::io::Write as _;
    // Allocated once at its usual size: the load generator shares the servers' cores.
    let mut name = Vec::with_capacity(16);
    let _ = write!(name, "key-{index:08}");
    Bytes::from(name)
}

/// FNV-1a, to remember a value without keeping it.
#[must_use]
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn make_value(worker: usize, sequence: u64, size: usize) -> Bytes {
    use std::io::Write as _;
    let mut value = Vec::with_capacity(size.max(48));
    let _ = write!(value, "w{worker}-s{sequence}-");
    value.resize(size.max(1), b'x');
    Bytes::from(value)
}

/// Called once a second with the row just closed, for the progress display.
pub type OnRow = Box<dyn FnMut(&Row) + Send>;

/// The server processes' ids, asked again at every sample (a restarted node has a new one).
pub type ServerPids = Box<dyn Fn() -> Vec<u32> + Send>;

/// Readings at one moment: the servers' and this process's CPU, the servers' bytes
/// written, and the machine's CPU. Taken every second; the measured window is between two.
#[derive(Clone)]
struct WindowReading {
    servers: CpuSample,
    client: Option<u64>,
    server_writes: WriteBytesSample,
    host: Option<HostCpuSample>,
}

impl WindowReading {
    fn now(server_pids: &ServerPids) -> WindowReading {
        let pids = server_pids();
        WindowReading {
            servers: CpuSample::read(&pids),
            client: own_cpu_micros(),
            server_writes: WriteBytesSample::read(&pids),
            host: HostCpuSample::read(),
        }
    }

    /// The machine's CPU shares, and the CPU the servers and this process spent (in ms),
    /// since `earlier` (the server figure is `None` without server processes).
    fn second_since(
        &self,
        earlier: &WindowReading,
    ) -> (Option<HostShares>, Option<f64>, Option<f64>) {
        let host = self.host.zip(earlier.host).and_then(|(now, then)| now.since(&then));
        let server_cpu_ms = (!self.servers.micros.is_empty())
            .then(|| self.servers.since(&earlier.servers) as f64 / 1000.0);
        let client_cpu_ms = self
            .client
            .zip(earlier.client)
            .map(|(now, then)| now.saturating_sub(then) as f64 / 1000.0);
        (host, server_cpu_ms, client_cpu_ms)
    }
}

/// Runs the workload for warmup + duration, scraping the nodes every second, and reads the
/// CPU time of `server_pids` and of this process, and the bytes `server_pids` wrote, at the
/// start and end of the measured window. `disk_probe`, if any, is read every second and
/// stopped at the end.
/// The watch workload creates its watchers first and, once the workers stop, waits for them
/// to deliver the last acknowledged write.
///
/// # Errors
///
/// [`Error::Watch`] when a watcher cannot be created.
pub async fn run<T: Target>(
    target: T,
    config: &WorkloadConfig,
    mut scraper: Scraper,
    started: Instant,
    mut on_row: OnRow,
    server_pids: ServerPids,
    disk_probe: Option<DiskProbe>,
) -> Result<Outcome, Error> {
    let total = config.warmup + config.duration;
    let watchers = match config.kind {
        WorkloadKind::Write => None,
        WorkloadKind::Watch => {
            let window = MeasuredWindow { started, warmup: config.warmup, end: total };
            Some(Watchers::start(&target, config.watchers, window).await?)
        }
    };
    let shared = Arc::new(Shared::new(config));
    let workers: Vec<_> = (0..config.clients)
        .map(|worker| {
            let (target, shared, config) = (target.clone(), Arc::clone(&shared), config.clone());
            tokio::spawn(async move { work(worker, target, &config, &shared, started).await })
        })
        .collect();
    let mut outcome = Outcome::new();
    let mut watch_events = 0;
    // The measured window starts after the last warmup second (or now, without a warmup).
    let mut window_start = WindowReading::now(&server_pids);
    let mut previous = window_start.clone();
    let mut last = started;
    let mut tick = 1u32;
    loop {
        let due = started + Duration::from_secs(u64::from(tick)).min(total);
        tokio::time::sleep_until(due.into()).await;
        let interval = shared.take_interval();
        let watch = watchers.as_ref().map(|watchers| {
            let second = watchers.take_interval();
            WatchRow { events: second.events, latency_ms: Percentiles::of(&second.latency) }
        });
        let now = Instant::now();
        let reading = WindowReading::now(&server_pids);
        let (host, server_cpu_ms, client_cpu_ms) = reading.second_since(&previous);
        let disk_sync = disk_probe.as_ref().and_then(DiskProbe::take_second);
        let warmup = now.duration_since(started) <= config.warmup + Duration::from_millis(100);
        if warmup {
            window_start = reading.clone();
        }
        let nodes = scraper.scrape().await;
        if !warmup {
            outcome.measure(&interval, now.duration_since(last).as_secs_f64());
            watch_events += watch.map_or(0, |row| row.events);
        }
        last = now;
        let row = Row {
            t_s: now.duration_since(started).as_secs_f64(),
            warmup,
            ops: interval.ops,
            errors: interval.errors,
            conflicts: interval.conflicts,
            latency_ms: Percentiles::of(&interval.all),
            nodes,
            watch,
            host,
            server_cpu_ms,
            client_cpu_ms,
            disk_sync,
        };
        on_row(&row);
        outcome.rows.push(row);
        if due >= started + total {
            outcome.close_window(&window_start, &reading);
            break;
        }
        previous = reading;
        tick += 1;
    }
    if let Some(probe) = disk_probe {
        // Stopping joins its thread, which may be inside a sync.
        let _ = tokio::task::spawn_blocking(move || drop(probe)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    outcome.acks = shared
        .acks
        .iter()
        .map(|slot| *slot.lock().unwrap_or_else(PoisonError::into_inner))
        .collect();
    outcome.error_samples =
        shared.error_samples.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if let Some(watchers) = watchers {
        outcome.watch = Some(watchers.finish(shared.take_revisions(), watch_events).await);
    }
    Ok(outcome)
}

/// One worker: one operation at a time until told to stop.
async fn work<T: Target>(
    worker: usize,
    target: T,
    config: &WorkloadConfig,
    shared: &Shared,
    started: Instant,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ (worker as u64).wrapping_mul(0x9e37));
    let mut known_versions = std::collections::HashMap::new();
    let mut sequence = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let key_index = rng.random_range(0..config.keys.max(1));
        let key = key_name(key_index);
        let read = config.read_ratio > 0.0 && rng.random_bool(config.read_ratio.min(1.0));
        let start = Instant::now();
        let result = if read {
            match target.get(key, config.linearizable).await {
                Ok(_) => OpResult { error: None, conflicts: 0 },
                Err(error) => OpResult { error: Some(error), conflicts: 0 },
            }
        } else {
            sequence += 1;
            let value = match config.kind {
                WorkloadKind::Write => make_value(worker, sequence, config.value_size),
                WorkloadKind::Watch => {
                    timestamped_value(nanos_since(started), worker, sequence, config.value_size)
                }
            };
            let hash = fnv1a(&value);
            let outcome = if config.occ {
                let known = known_versions.get(&key_index).copied();
                occ_write(&target, key, value, known).await
            } else {
                let put = target.put(key, value, None).await;
                put.map(|result| (result, 0))
            };
            match outcome {
                Ok((PutResult::Written { version }, conflicts)) => {
                    let slot = usize::try_from(key_index).unwrap_or(usize::MAX);
                    shared.acknowledge(slot, version, hash);
                    known_versions.insert(key_index, version);
                    OpResult { error: None, conflicts }
                }
                Ok((PutResult::Conflict { .. }, conflicts)) => OpResult {
                    error: Some(format!("still conflicting after {OCC_ATTEMPTS_MAX} attempts")),
                    conflicts,
                },
                Err(error) => OpResult { error: Some(error), conflicts: 0 },
            }
        };
        shared.record(start.elapsed(), read, &result);
        if result.error.is_some() {
            // A down cluster answers at once; do not spin on it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Compare-and-set with the version last seen (read first if unknown); on a conflict,
/// read the latest version and try again. Returns the last result and the conflicts met.
async fn occ_write<T: Target>(
    target: &T,
    key: Bytes,
    value: Bytes,
    known: Option<u64>,
) -> Result<(PutResult, u64), String> {
    let mut expect = match known {
        Some(version) => version,
        None => target.get(key.clone(), true).await?.map_or(0, |found| found.version),
    };
    let mut conflicts = 0;
    let mut last = PutResult::Conflict { current: None };
    for _ in 0..OCC_ATTEMPTS_MAX {
        last = target.put(key.clone(), value.clone(), Some(expect)).await?;
        match last {
            PutResult::Written { .. } => return Ok((last, conflicts)),
            PutResult::Conflict { .. } => {
                conflicts += 1;
                expect = target.get(key.clone(), true).await?.map_or(0, |found| found.version);
            }
        }
    }
    Ok((last, conflicts))
}

/// The result of reading back every acknowledged write.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    /// Keys with an acknowledged write.
    pub keys_checked: u64,
    /// Keys found at the acknowledged version or newer.
    pub verified: u64,
    /// Keys missing, older than acknowledged, or with another value at that version.
    pub missing: u64,
    /// Keys that could not be read (counted in neither of the above).
    pub read_errors: u64,
    /// A few of the missing keys, described.
    pub missing_examples: Vec<String>,
}

/// Reads every acknowledged key linearizably and checks it is at least as new as the last
/// acknowledged write.
pub async fn verify<T: Target>(target: &T, acks: &[Option<Ack>]) -> Verification {
    let checks: Vec<(u64, Ack)> =
        acks.iter().enumerate().filter_map(|(index, ack)| Some((index as u64, (*ack)?))).collect();
    let checks = Arc::new(checks);
    let mut tasks = Vec::new();
    for lane in 0..VERIFY_CONCURRENCY {
        let target = target.clone();
        let checks = Arc::clone(&checks);
        tasks.push(tokio::spawn(async move {
            let mut result = Verification::default();
            for (index, ack) in checks.iter().skip(lane).step_by(VERIFY_CONCURRENCY) {
                result.keys_checked += 1;
                let read = target.get(key_name(*index), true).await;
                let problem = match read {
                    Err(_) => {
                        result.read_errors += 1;
                        continue;
                    }
                    Ok(None) => Some(format!("key-{index:08}: absent, acked v{}", ack.version)),
                    Ok(Some(found)) if found.version < ack.version => Some(format!(
                        "key-{index:08}: at v{}, acked v{}",
                        found.version, ack.version
                    )),
                    Ok(Some(found))
                        if found.version == ack.version
                            && fnv1a(&found.value) != ack.value_hash =>
                    {
                        Some(format!("key-{index:08}: other value at acked v{}", ack.version))
                    }
                    Ok(Some(_)) => None,
                };
                match problem {
                    Some(problem) => {
                        result.missing += 1;
                        if result.missing_examples.len() < 5 {
                            result.missing_examples.push(problem);
                        }
                    }
                    None => result.verified += 1,
                }
            }
            result
        }));
    }
    let mut total = Verification::default();
    for task in tasks {
        if let Ok(part) = task.await {
            total.keys_checked += part.keys_checked;
            total.verified += part.verified;
            total.missing += part.missing;
            total.read_errors += part.read_errors;
            for example in part.missing_examples {
                if total.missing_examples.len() < 10 {
                    total.missing_examples.push(example);
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_requested_size_and_differ() {
        let a = make_value(1, 1, 256);
        let b = make_value(1, 2, 256);
        assert_eq!(a.len(), 256);
        assert_ne!(fnv1a(&a), fnv1a(&b));
        assert_eq!(make_value(3, 9, 4).len(), 4);
        assert_eq!(&make_value(3, 9, 8)[..], b"w3-s9-xx");
        assert_eq!(&key_name(7)[..], b"key-00000007");
    }

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut histogram = new_histogram();
        for us in 1..=1000 {
            histogram.record(us * 10).unwrap();
        }
        let percentiles = Percentiles::of(&histogram);
        assert!((percentiles.p50 - 5.0).abs() < 0.1, "{percentiles:?}");
        assert!((percentiles.max - 10.0).abs() < 0.1);
    }
}
