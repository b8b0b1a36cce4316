//! Storage benchmarks: group-commit throughput for batches of 1, 16 and 256 entries of
//! 256 bytes, and the latency of one durable append next to a bare `fdatasync` of a 4 KiB
//! write on the same disk, so the overhead over the physical limit shows as a ratio.
//!
//! `cargo bench -p raft-storage`; the store lives in a temporary directory (set `TMPDIR`
//! to benchmark another disk).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use raft_core::{Entry, EntryPayload, LogId, LogIndex, Membership, NodeId, Term};
use raft_runtime::LogStore;
use raft_storage::{RedbLogStore, StoreConfig};

const PAYLOAD_BYTES: usize = 256;

fn batch(first: u64, count: u64, payload: &Bytes) -> Vec<Entry> {
    (first..first + count)
        .map(|index| Entry {
            log_id: LogId::new(Term(1), LogIndex(index)),
            payload: EntryPayload::Command(payload.clone()),
        })
        .collect()
}

fn fresh_store(directory: &std::path::Path) -> RedbLogStore {
    let membership = Membership::with_voters([NodeId(1)]);
    RedbLogStore::create(directory, &membership, StoreConfig::default()).unwrap()
}

fn append_throughput(criterion: &mut Criterion) {
    let payload = Bytes::from(vec![0x5a; PAYLOAD_BYTES]);
    let mut group = criterion.benchmark_group("append_throughput");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    for count in [1_u64, 16, 256] {
        let directory = tempfile::tempdir().unwrap();
        let mut store = fresh_store(directory.path());
        let mut next = 1;
        group.throughput(Throughput::Elements(count));
        group.bench_with_input(
            BenchmarkId::new("entries_256B", count),
            &count,
            |bencher, &count| {
                bencher.iter(|| {
                    store.persist_blocking(None, batch(next, count, &payload)).unwrap();
                    next += count;
                });
            },
        );
    }
    group.finish();
}

fn durable_latency(criterion: &mut Criterion) {
    let payload = Bytes::from(vec![0x5a; PAYLOAD_BYTES]);
    let mut group = criterion.benchmark_group("durable_latency");
    group.sample_size(20).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    let directory = tempfile::tempdir().unwrap();

    // The physical limit: overwrite 4 KiB in place and wait for it to reach the disk.
    let path = directory.path().join("fdatasync.bin");
    let file =
        OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
    let block = vec![0xa5_u8; 4096];
    file.write_all_at(&block, 0).unwrap();
    file.sync_all().unwrap();
    group.bench_function("bare_fdatasync_4KiB", |bencher| {
        bencher.iter(|| {
            file.write_all_at(&block, 0).unwrap();
            file.sync_data().unwrap();
        });
    });

    let store_directory = directory.path().join("store");
    let mut store = fresh_store(&store_directory);
    let mut next = 1;
    group.bench_function("append_1x256B_blocking", |bencher| {
        bencher.iter(|| {
            store.persist_blocking(None, batch(next, 1, &payload)).unwrap();
            next += 1;
        });
    });

    // Through the LogStore trait, as the driver calls it (spawn_blocking hand-off included).
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    group.bench_function("append_1x256B_async", |bencher| {
        bencher.iter(|| {
            runtime.block_on(store.persist(None, batch(next, 1, &payload))).unwrap();
            next += 1;
        });
    });
    group.finish();
}

criterion_group!(benches, append_throughput, durable_latency);
criterion_main!(benches);
