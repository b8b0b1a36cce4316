//! Crash safety: a child process (this test binary, re-executed) writes a deterministic
//! workload and prints the number of each operation once it is durable; the parent kills
//! it with SIGKILL after a random delay, reopens the store and checks that it holds
//! exactly the state after the last reported operation or after the one in flight:
//! nothing reported durable is lost and nothing half-written is visible.
//!
//! `RAFT_STORAGE_CRASH_ITERATIONS` sets how many kills (default 24).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::workload::{Operation, Rng, Workload};
use common::{DiskEngine, Redb, Wal, block_on, membership};
use raft_core::RestoredState;
use raft_runtime::{LogStore, MemLogStore};

const CHILD_VARIABLE: &str = "RAFT_STORAGE_CRASH_CHILD";
const ITERATIONS_VARIABLE: &str = "RAFT_STORAGE_CRASH_ITERATIONS";
const ITERATIONS_DEFAULT: u64 = 24;
/// Snapshots up to this size take several milliseconds to write, so kills land inside
/// snapshot writes as well as inside log writes.
const SNAPSHOT_BYTES_MAX: u64 = 256 * 1024;
/// The child stops by itself after this many operations or this long, if never killed.
const CHILD_OPERATIONS_MAX: u64 = 5_000;
const CHILD_DURATION_MAX: Duration = Duration::from_secs(10);

async fn apply(store: &mut impl LogStore, operation: Operation) {
    match operation {
        Operation::Persist { hard_state, entries } => store.persist(hard_state, entries).await,
        Operation::StoreSnapshot(snapshot) => store.store_snapshot(snapshot).await,
    }
    .unwrap();
}

/// Not a test on its own: the writer the crash test runs in a child process.
#[test]
fn crash_writer_child() {
    let Ok(argument) = std::env::var(CHILD_VARIABLE) else {
        return;
    };
    let (engine, rest) = argument.split_once(':').unwrap();
    let (directory, seed) = rest.rsplit_once(':').unwrap();
    let seed: u64 = seed.parse().unwrap();
    match engine {
        Redb::NAME => write_until_killed::<Redb>(Path::new(directory), seed),
        Wal::NAME => write_until_killed::<Wal>(Path::new(directory), seed),
        other => panic!("unknown engine {other}"),
    }
}

fn write_until_killed<E: DiskEngine>(directory: &Path, seed: u64) {
    let mut store = E::open(directory).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    let started = Instant::now();
    let mut stdout = std::io::stdout().lock();
    let workload = Workload::new(seed, SNAPSHOT_BYTES_MAX);
    for (number, operation) in workload.take(CHILD_OPERATIONS_MAX as usize).enumerate() {
        runtime.block_on(apply(&mut store, operation));
        writeln!(stdout, "durable {number}").unwrap();
        stdout.flush().unwrap();
        if started.elapsed() > CHILD_DURATION_MAX {
            break;
        }
    }
}

/// The model's state after the first `count` operations of `seed`'s workload.
fn model_after(seed: u64, count: u64) -> RestoredState {
    let mut model = MemLogStore::new(membership());
    block_on(async {
        for operation in Workload::new(seed, SNAPSHOT_BYTES_MAX).take(count as usize) {
            apply(&mut model, operation).await;
        }
        model.load().await.unwrap()
    })
}

fn describe(state: &RestoredState) -> String {
    format!(
        "hard state {:?}, snapshot {:?}, {} entries up to {:?}",
        state.hard_state,
        state.snapshot.as_ref().map(|snapshot| snapshot.meta.last_log_id),
        state.entries.len(),
        state.entries.last().map(|entry| entry.log_id),
    )
}

/// Runs one child, kills it after `delay`, and returns how many operations it reported.
fn run_and_kill(engine: &str, directory: &Path, seed: u64, delay: Duration) -> u64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_writer_child", "--exact", "--nocapture", "--test-threads=1", "--quiet"])
        .env(CHILD_VARIABLE, format!("{engine}:{}:{seed}", directory.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reported = Arc::new(AtomicU64::new(0));
    let reader = {
        let reported = Arc::clone(&reported);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(number) = line.strip_prefix("durable ") {
                    reported.store(number.parse::<u64>().unwrap() + 1, Ordering::SeqCst);
                }
            }
        })
    };
    std::thread::sleep(delay);
    // `Child::kill` sends SIGKILL on Unix: no chance to flush or clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    reported.load(Ordering::SeqCst)
}

#[test]
fn killed_redb_writer_keeps_every_reported_write_and_no_torn_one() {
    killed_writer_keeps_every_reported_write_and_no_torn_one::<Redb>();
}

#[test]
fn killed_wal_writer_keeps_every_reported_write_and_no_torn_one() {
    killed_writer_keeps_every_reported_write_and_no_torn_one::<Wal>();
}

fn killed_writer_keeps_every_reported_write_and_no_torn_one<E: DiskEngine>() {
    let iterations = std::env::var(ITERATIONS_VARIABLE)
        .ok()
        .map_or(ITERATIONS_DEFAULT, |value| value.parse().unwrap());
    let mut rng = Rng::new(0x5eed);
    let mut in_flight_kept = 0;
    for iteration in 0..iterations {
        let seed = rng.next();
        let delay = Duration::from_millis(rng.range(15, 250));
        let directory = tempfile::tempdir().unwrap();
        drop(E::create(directory.path(), &membership()));
        let reported = run_and_kill(E::NAME, directory.path(), seed, delay);

        let mut store = E::open(directory.path())
            .unwrap_or_else(|error| panic!("iteration {iteration} (seed {seed}): {error}"));
        let restored = block_on(store.load())
            .unwrap_or_else(|error| panic!("iteration {iteration} (seed {seed}): {error}"));
        let durable = model_after(seed, reported);
        if restored != durable {
            let next = model_after(seed, reported + 1);
            assert!(
                restored == next,
                "iteration {iteration} (seed {seed}, killed after {delay:?}, {reported} \
                 operations reported): restored {} but expected {} or {}",
                describe(&restored),
                describe(&durable),
                describe(&next),
            );
            in_flight_kept += 1;
        }
        // The recovered store takes writes again.
        let last = restored.entries.last().map_or(restored.compacted(), |entry| entry.log_id);
        let entry = common::entry(restored.hard_state.term.0.max(last.term.0), last.index.0 + 1);
        block_on(store.persist(None, vec![entry.clone()])).unwrap();
        assert_eq!(block_on(store.load()).unwrap().entries.last(), Some(&entry));
        eprintln!(
            "{} iteration {iteration}: {reported} operations reported before the kill",
            E::NAME
        );
    }
    eprintln!("{in_flight_kept} of {iterations} kills kept the operation in flight");
}
