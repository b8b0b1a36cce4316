//! Storage benchmarks, each engine next to the physical limit:
//!
//! - `append_throughput`: group commit of 1, 16 and 256 entries of 256 bytes per durable
//!   write, for the write-ahead log and redb, and `bare_fdatasync` of the same number of
//!   bytes (overwritten in place in a preallocated file, then `fdatasync`).
//! - `durable_latency`: one 256-byte entry per write, on the calling thread and through
//!   the `LogStore` trait (the calls the driver makes on its persistence thread).
//! - `recovery`: opening and loading a store holding a 4 MB snapshot and 100,000 entries
//!   of 256 bytes after it.
//!
//! `cargo bench -p raft-storage`; stores live in a temporary directory (set `TMPDIR` to
//! benchmark another disk).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use raft_core::{
    Entry, EntryPayload, LogId, LogIndex, Membership, NodeId, Snapshot, SnapshotMeta, Term,
};
use raft_runtime::LogStore;
use raft_storage::{Engine, RedbLogStore, StoreConfig, WalConfig, WalLogStore};

const PAYLOAD_BYTES: usize = 256;
const RECOVERY_SNAPSHOT_BYTES: usize = 4 << 20;
const RECOVERY_ENTRIES: u64 = 100_000;
const RECOVERY_BATCH: u64 = 1_000;

fn batch(first: u64, count: u64, payload: &Bytes) -> Vec<Entry> {
    (first..first + count)
        .map(|index| Entry {
            log_id: LogId::new(Term(1), LogIndex(index)),
            payload: EntryPayload::Command(payload.clone()),
        })
        .collect()
}

fn membership() -> Membership {
    Membership::with_voters([NodeId(1)])
}

/// A store of either engine, written on the calling thread.
enum BenchStore {
    Redb(RedbLogStore),
    Wal(WalLogStore),
}

impl BenchStore {
    fn create(engine: Engine, directory: &Path) -> BenchStore {
        match engine {
            Engine::Wal => BenchStore::Wal(
                WalLogStore::create(directory, &membership(), WalConfig::default()).unwrap(),
            ),
            _ => BenchStore::Redb(
                RedbLogStore::create(directory, &membership(), StoreConfig::default()).unwrap(),
            ),
        }
    }

    fn open(engine: Engine, directory: &Path) -> BenchStore {
        match engine {
            Engine::Wal => {
                BenchStore::Wal(WalLogStore::open(directory, WalConfig::default()).unwrap())
            }
            _ => BenchStore::Redb(RedbLogStore::open(directory, StoreConfig::default()).unwrap()),
        }
    }

    fn persist(&mut self, entries: Vec<Entry>) {
        match self {
            BenchStore::Redb(store) => store.persist_blocking(None, entries).unwrap(),
            BenchStore::Wal(store) => store.persist_blocking(None, entries).unwrap(),
        }
    }

    fn store_snapshot(&mut self, snapshot: &Snapshot) {
        match self {
            BenchStore::Redb(store) => store.store_snapshot_blocking(snapshot).unwrap(),
            BenchStore::Wal(store) => store.store_snapshot_blocking(snapshot).unwrap(),
        };
    }

    fn load_entries(&mut self) -> usize {
        match self {
            BenchStore::Redb(store) => store.load_blocking().unwrap().entries.len(),
            BenchStore::Wal(store) => store.load_blocking().unwrap().entries.len(),
        }
    }
}

/// Overwrites `bytes` bytes at the start of a preallocated file and waits for the disk:
/// the least a durable write of that size costs.
fn bare_fdatasync(directory: &Path, bytes: usize) -> impl FnMut() {
    let path = directory.join(format!("fdatasync-{bytes}.bin"));
    let file =
        OpenOptions::new().create(true).truncate(true).read(true).write(true).open(path).unwrap();
    let block = vec![0xa5_u8; bytes];
    file.write_all_at(&block, 0).unwrap();
    file.sync_all().unwrap();
    move || {
        file.write_all_at(&block, 0).unwrap();
        file.sync_data().unwrap();
    }
}

fn append_throughput(criterion: &mut Criterion) {
    let payload = Bytes::from(vec![0x5a; PAYLOAD_BYTES]);
    let mut group = criterion.benchmark_group("append_throughput");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    for count in [1_u64, 16, 256] {
        group.throughput(Throughput::Elements(count));
        let directory = tempfile::tempdir().unwrap();
        let mut sync = bare_fdatasync(directory.path(), count as usize * PAYLOAD_BYTES);
        group.bench_function(BenchmarkId::new("bare_fdatasync_256B", count), |bencher| {
            bencher.iter(&mut sync);
        });
        for engine in Engine::ALL {
            let directory = tempfile::tempdir().unwrap();
            let mut store = BenchStore::create(engine, directory.path());
            let mut next = 1;
            let name = format!("{engine}_entries_256B");
            group.bench_function(BenchmarkId::new(name, count), |bencher| {
                bencher.iter(|| {
                    store.persist(batch(next, count, &payload));
                    next += count;
                });
            });
        }
    }
    group.finish();
}

fn durable_latency(criterion: &mut Criterion) {
    let payload = Bytes::from(vec![0x5a; PAYLOAD_BYTES]);
    let mut group = criterion.benchmark_group("durable_latency");
    group.sample_size(20).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    let directory = tempfile::tempdir().unwrap();
    let mut sync = bare_fdatasync(directory.path(), PAYLOAD_BYTES);
    group.bench_function("bare_fdatasync_256B", |bencher| bencher.iter(&mut sync));
    let mut sync = bare_fdatasync(directory.path(), 4096);
    group.bench_function("bare_fdatasync_4KiB", |bencher| bencher.iter(&mut sync));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    for engine in Engine::ALL {
        let store_directory = directory.path().join(engine.name());
        let mut store = BenchStore::create(engine, &store_directory);
        let mut next = 1;
        group.bench_function(format!("{engine}_append_1x256B_blocking"), |bencher| {
            bencher.iter(|| {
                store.persist(batch(next, 1, &payload));
                next += 1;
            });
        });
        // Through the LogStore trait, as the driver calls it.
        group.bench_function(format!("{engine}_append_1x256B_async"), |bencher| {
            bencher.iter(|| {
                let entries = batch(next, 1, &payload);
                match &mut store {
                    BenchStore::Redb(store) => runtime.block_on(store.persist(None, entries)),
                    BenchStore::Wal(store) => runtime.block_on(store.persist(None, entries)),
                }
                .unwrap();
                next += 1;
            });
        });
    }
    group.finish();
}

/// Writes a 4 MB snapshot and 100,000 entries of 256 bytes after it, in batches of 1,000.
fn recovery_store(engine: Engine, directory: &Path) {
    let payload = Bytes::from(vec![0x5a; PAYLOAD_BYTES]);
    let mut store = BenchStore::create(engine, directory);
    store.persist(batch(1, RECOVERY_BATCH, &payload));
    let data: Vec<u8> = (0..RECOVERY_SNAPSHOT_BYTES).map(|i| (i % 251) as u8).collect();
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            last_log_id: LogId::new(Term(1), LogIndex(RECOVERY_BATCH)),
            membership: membership(),
        },
        data: Bytes::from(data),
    };
    store.store_snapshot(&snapshot);
    let last = RECOVERY_BATCH + RECOVERY_ENTRIES;
    for first in (RECOVERY_BATCH + 1..=last).step_by(RECOVERY_BATCH as usize) {
        store.persist(batch(first, RECOVERY_BATCH, &payload));
    }
}

fn recovery(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("recovery");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for engine in Engine::ALL {
        let directory = tempfile::tempdir().unwrap();
        recovery_store(engine, directory.path());
        group.bench_function(format!("{engine}_4MB_snapshot_100k_entries"), |bencher| {
            bencher.iter(|| {
                let mut store = BenchStore::open(engine, directory.path());
                assert_eq!(store.load_entries() as u64, RECOVERY_ENTRIES);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, append_throughput, durable_latency, recovery);
criterion_main!(benches);
