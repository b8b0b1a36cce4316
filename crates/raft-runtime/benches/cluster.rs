//! Committed proposals per second of a 3-node cluster in one process: the real driver
//! (`raft_runtime`) with in-memory storage (`MemLogStore`, no artificial latency), the
//! channel network and a no-op state machine. The shape of openraft's published benchmark
//! (in-memory log, no-op state machine, function-call network).
//!
//! `propose/<flavor>/throughput/N`: N tasks propose to the leader concurrently, each waiting
//! for its proposal to be applied before sending the next; Criterion reports proposals per
//! second. `propose/<flavor>/latency/1`: one proposer; the time per iteration is one
//! proposal's latency (from `propose` to the response, through replication, both writes and
//! apply). `<flavor>` is the tokio runtime: `current_thread` (the whole cluster on one core)
//! or `multi_thread` (two workers).
//!
//! Run with `cargo bench -p raft-runtime --bench cluster`.

// A benchmark that cannot set up its cluster has nothing to measure: stopping is right. And
// a benchmark reads the clock: the crate's ban protects the state machine, not its timing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use raft_core::{Config, Entry, Membership, NodeId, Role, Snapshot};
use raft_runtime::{
    ChannelNetwork, Error, MemLogStore, Raft, RaftHandle, RuntimeConfig, StateMachine,
};
use tokio::runtime::Runtime;

/// Applies nothing and answers nothing.
struct Noop;

impl StateMachine for Noop {
    type Response = ();

    fn apply(&mut self, entries: &[Entry]) -> Vec<()> {
        vec![(); entries.len()]
    }

    fn snapshot(&mut self) -> impl Future<Output = Result<Bytes, Error>> + Send + 'static {
        std::future::ready(Ok(Bytes::new()))
    }

    async fn restore(&mut self, _: &Snapshot) -> Result<(), Error> {
        Ok(())
    }
}

/// A small command, like a short key-value write; static, so cloning it costs nothing.
const PAYLOAD: &[u8] = b"key-00000042=value-0000000042";

/// Starts three nodes and returns their handles, the leader's first.
async fn start_cluster() -> Vec<RaftHandle<()>> {
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let membership = Membership::with_voters(ids);
    let network = ChannelNetwork::new();
    let mut handles = Vec::new();
    for id in ids {
        // The default configuration, snapshots included: they keep the in-memory logs
        // bounded, as in production (without them, growing the logs by millions of entries
        // spends a quarter of the time in page faults).
        let config = Config::new(id);
        let runtime =
            RuntimeConfig { tick: Duration::from_millis(50), seed: 1, ..RuntimeConfig::default() };
        let store = MemLogStore::new(membership.clone());
        let raft = Raft::new(config, runtime, store, network.transport(id), Noop);
        handles.push(raft.start().await.expect("the node starts"));
    }
    let started = Instant::now();
    loop {
        for position in 0..handles.len() {
            if handles[position].status().await.expect("running").role == Role::Leader {
                handles.swap(0, position);
                return handles;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no leader within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `total` proposals from `proposers` concurrent tasks; returns the time it took.
async fn propose_concurrently(leader: &RaftHandle<()>, proposers: u64, total: u64) -> Duration {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for proposer in 0..proposers {
        let share = total / proposers + u64::from(proposer < total % proposers);
        if share == 0 {
            continue;
        }
        let leader = leader.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                leader.propose(Bytes::from_static(PAYLOAD)).await.expect("the proposal commits");
            }
        }));
    }
    for task in tasks {
        task.await.expect("the proposer finishes");
    }
    started.elapsed()
}

/// Benchmarks one cluster on `runtime`, naming the results after `flavor`.
fn bench_cluster(criterion: &mut Criterion, flavor: &str, runtime: &Runtime) {
    let handles = runtime.block_on(start_cluster());
    let leader = handles[0].clone();

    let mut group = criterion.benchmark_group(format!("propose/{flavor}/throughput"));
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    for proposers in [1_u64, 64, 256] {
        group.bench_with_input(BenchmarkId::from_parameter(proposers), &proposers, |bench, &n| {
            bench.iter_custom(|total| runtime.block_on(propose_concurrently(&leader, n, total)));
        });
    }
    group.finish();

    let mut group = criterion.benchmark_group(format!("propose/{flavor}/latency"));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("1", |bench| {
        bench.iter_custom(|total| runtime.block_on(propose_concurrently(&leader, 1, total)));
    });
    group.finish();

    runtime.block_on(async {
        for handle in handles {
            handle.shutdown().await.expect("a clean stop");
        }
    });
}

fn cluster(criterion: &mut Criterion) {
    // All three nodes on one thread: handing work between tasks costs a queue push, not a
    // cross-thread wake-up.
    let current_thread =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    bench_cluster(criterion, "current_thread", &current_thread);
    // One worker per core of the 2-core machine the numbers are reported for.
    let multi_thread = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    bench_cluster(criterion, "multi_thread", &multi_thread);
}

// What `criterion_group!`/`criterion_main!` expand to, written out because the macro's
// public `benches` function would need documentation the crate's lints demand.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    cluster(&mut criterion);
    criterion.final_summary();
}
