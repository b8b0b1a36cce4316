//! Store-level counters: durable-write latency (fsync included) and bytes, and how
//! replication reads were served.
//!
//! The runtime driver already reports every `persist` and `store_snapshot` call to its
//! `MetricsSink::persisted` (count, bytes as `Entry::size_bytes` counts them, latency
//! around the call), so the store does not report them again. These counters add what
//! only the store knows: the bytes it really wrote (encoded), the time spent in redb's
//! commit (where the fsync happens), and a latency histogram a metrics exporter can read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets of the latency histogram: bucket `i` counts writes that took less than `2^i`
/// microseconds (the last one everything slower). 2^23 µs is about 8 s, past any sane
/// fsync.
pub const LATENCY_BUCKETS: usize = 24;

/// Counters shared by a store and its readers; all updates are relaxed atomics.
#[derive(Debug, Default)]
pub struct StoreStats {
    persists: AtomicU64,
    persisted_entries: AtomicU64,
    persisted_bytes: AtomicU64,
    persist_nanos_total: AtomicU64,
    persist_nanos_max: AtomicU64,
    commit_nanos_total: AtomicU64,
    snapshots: AtomicU64,
    snapshot_bytes: AtomicU64,
    snapshot_nanos_total: AtomicU64,
    tail_reads: AtomicU64,
    disk_reads: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS],
}

/// A copy of [`StoreStats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsReport {
    /// Durable `persist` writes (each one redb transaction and one fsync).
    pub persists: u64,
    /// Entries those writes stored.
    pub persisted_entries: u64,
    /// Encoded bytes those writes stored (entries and hard state).
    pub persisted_bytes: u64,
    /// Total time inside `persist`, encoding and fsync included.
    pub persist_latency_total: Duration,
    /// The slowest `persist`.
    pub persist_latency_max: Duration,
    /// Of the total, the time inside redb's durable commit (the fsync and page writes).
    pub commit_latency_total: Duration,
    /// Snapshots stored.
    pub snapshots: u64,
    /// Bytes of snapshot data written.
    pub snapshot_bytes: u64,
    /// Total time storing snapshots (file, syncs and the metadata switch).
    pub snapshot_latency_total: Duration,
    /// Replication reads served from the in-memory tail.
    pub tail_reads: u64,
    /// Replication reads that had to read the database.
    pub disk_reads: u64,
    /// `persist` latency histogram: bucket `i` counts writes under `2^i` µs.
    pub persist_latency_buckets: [u64; LATENCY_BUCKETS],
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl StoreStats {
    pub(crate) fn record_persist(
        &self,
        entries: u64,
        bytes: u64,
        total: Duration,
        commit: Duration,
    ) {
        self.persists.fetch_add(1, Ordering::Relaxed);
        self.persisted_entries.fetch_add(entries, Ordering::Relaxed);
        self.persisted_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.persist_nanos_total.fetch_add(nanos(total), Ordering::Relaxed);
        self.persist_nanos_max.fetch_max(nanos(total), Ordering::Relaxed);
        self.commit_nanos_total.fetch_add(nanos(commit), Ordering::Relaxed);
        let micros = u64::try_from(total.as_micros()).unwrap_or(u64::MAX);
        let bucket = (u64::BITS - micros.leading_zeros()) as usize;
        if let Some(counter) = self.latency_buckets.get(bucket.min(LATENCY_BUCKETS - 1)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn record_snapshot(&self, bytes: u64, total: Duration) {
        self.snapshots.fetch_add(1, Ordering::Relaxed);
        self.snapshot_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.snapshot_nanos_total.fetch_add(nanos(total), Ordering::Relaxed);
    }

    pub(crate) fn record_read(&self, from_tail: bool) {
        let counter = if from_tail { &self.tail_reads } else { &self.disk_reads };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters' current values.
    #[must_use]
    pub fn report(&self) -> StatsReport {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsReport {
            persists: load(&self.persists),
            persisted_entries: load(&self.persisted_entries),
            persisted_bytes: load(&self.persisted_bytes),
            persist_latency_total: Duration::from_nanos(load(&self.persist_nanos_total)),
            persist_latency_max: Duration::from_nanos(load(&self.persist_nanos_max)),
            commit_latency_total: Duration::from_nanos(load(&self.commit_nanos_total)),
            snapshots: load(&self.snapshots),
            snapshot_bytes: load(&self.snapshot_bytes),
            snapshot_latency_total: Duration::from_nanos(load(&self.snapshot_nanos_total)),
            tail_reads: load(&self.tail_reads),
            disk_reads: load(&self.disk_reads),
            persist_latency_buckets: self.latency_buckets.each_ref().map(load),
        }
    }
}
