//! KV state machine benchmarks: postcard encode and decode of put commands, applying
//! batches of 256 puts of 256-byte values, and building and restoring a snapshot of a
//! 100,000-key map.
//!
//! `cargo bench -p kv-store`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kv_store::{Command, KvConfig, KvStore, Response, Session, Write};
use raft_core::{Entry, EntryPayload, LogId, LogIndex, Term};
use raft_runtime::StateMachine;

const BATCH: u64 = 256;
const VALUE_BYTES: usize = 256;
/// Keys cycle through this many, so the map stops growing during a long run.
const KEY_SPACE: u64 = 100_000;
/// Clients the puts are spread over, each with its own session.
const CLIENTS: u64 = 1_000;

/// The `number`th put (from 1): a 16-byte key, a 256-byte value, from the clients in turn,
/// each at its next sequence number (from 1, so no session is ever refused).
fn put(number: u64, value: &Bytes) -> Command {
    let nth = number - 1;
    Command {
        session: Session { client_id: nth % CLIENTS, sequence: nth / CLIENTS + 1 },
        write: Write::Put {
            key: Bytes::from(format!("key/{:012}", number % KEY_SPACE)),
            value: value.clone(),
            expect_version: None,
        },
    }
}

/// Entries `first..first + count`, each a put encoded as the proposal payload would be.
fn entries(first: u64, count: u64, value: &Bytes) -> Vec<Entry> {
    (first..first + count)
        .map(|index| Entry {
            log_id: LogId::new(Term(1), LogIndex(index)),
            payload: EntryPayload::Command(put(index, value).encode().unwrap()),
        })
        .collect()
}

fn codec(criterion: &mut Criterion) {
    let value = Bytes::from(vec![0x5a; VALUE_BYTES]);
    let commands: Vec<Command> = (1..=BATCH).map(|number| put(number, &value)).collect();
    let encoded: Vec<Bytes> = commands.iter().map(|command| command.encode().unwrap()).collect();
    let mut group = criterion.benchmark_group("codec");
    group.sample_size(20).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("encode_256_puts_256B", |bencher| {
        bencher.iter(|| {
            for command in &commands {
                black_box(command.encode().unwrap());
            }
        });
    });
    group.bench_function("decode_256_puts_256B", |bencher| {
        bencher.iter(|| {
            for bytes in &encoded {
                black_box(Command::decode(bytes).unwrap());
            }
        });
    });
    group.finish();
}

fn apply(criterion: &mut Criterion) {
    let value = Bytes::from(vec![0x5a; VALUE_BYTES]);
    let mut store = KvStore::new(KvConfig::default()).unwrap();
    let mut next = 1;
    let mut group = criterion.benchmark_group("apply");
    group.sample_size(20).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("batch_256_puts_256B", |bencher| {
        bencher.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                // Building the entries is the proposer's work, not the state machine's.
                let batch = entries(next, BATCH, &value);
                next += BATCH;
                let started = Instant::now();
                let responses = black_box(store.apply(&batch));
                elapsed += started.elapsed();
                assert!(responses.iter().all(|response| matches!(response, Response::Written(_))));
            }
            elapsed
        });
    });
    group.finish();
}

fn snapshot(criterion: &mut Criterion) {
    let value = Bytes::from(vec![0x5a; VALUE_BYTES]);
    let mut store = KvStore::new(KvConfig::default()).unwrap();
    for first in (1..=KEY_SPACE).step_by(BATCH as usize) {
        store.apply(&entries(first, BATCH.min(KEY_SPACE + 1 - first), &value));
    }
    assert_eq!(store.len() as u64, KEY_SPACE);
    let data = store.snapshot_bytes().unwrap();
    let mut group = criterion.benchmark_group("snapshot_100k_keys_256B");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("build", |bencher| {
        bencher.iter(|| black_box(store.snapshot_bytes().unwrap()));
    });
    let mut replica = KvStore::new(KvConfig::default()).unwrap();
    group.bench_function("restore", |bencher| {
        bencher.iter(|| replica.restore_bytes(&data, None).unwrap());
    });
    group.finish();
    assert_eq!(replica.snapshot_bytes().unwrap(), data);
}

criterion_group!(benches, codec, apply, snapshot);
criterion_main!(benches);
