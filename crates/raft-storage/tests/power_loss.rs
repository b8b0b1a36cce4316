//! Power loss: the write-ahead log runs a deterministic workload on a simulated file
//! system (tests/common/simulated_fs.rs) that fails at a random operation, as a machine
//! losing power would; then every byte and directory entry that was not synced is lost
//! (or only some of it survives), the store is reopened, and it must hold exactly the
//! state after the last write it reported durable, or after the one in flight: nothing
//! acknowledged is lost, nothing unwritten is invented, and it opens without an error.
//!
//! `RAFT_STORAGE_POWER_LOSS_ITERATIONS` sets how many cuts (default 300, about a second).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::simulated_fs::{ROOT, SimulatedFileSystem, Survival};
use common::workload::{Operation, Rng, Workload};
use common::{block_on, membership};
use raft_core::{RestoredState, Term};
use raft_runtime::{LogStore, MemLogStore};
use raft_storage::{Error, Preallocation, WalConfig, WalLogStore};

const ITERATIONS_VARIABLE: &str = "RAFT_STORAGE_POWER_LOSS_ITERATIONS";
const ITERATIONS_DEFAULT: u64 = 300;
const OPERATIONS: usize = 40;
const SNAPSHOT_BYTES_MAX: u64 = 8 * 1024;
/// The workload takes 210 to 310 file operations (measured for its 16 seeds): cuts land
/// anywhere in it, and a few after it.
const OPERATIONS_MAX: u64 = 320;
/// Small segments: the workload's writes (up to 64 entries of up to 1 KiB) start new
/// segments often, and snapshots delete old ones, so cuts land in every kind of step.
/// Segments are made inline so that a cut's operation count replays exactly; the
/// helper-thread preallocation runs in every other iteration.
const CONFIG: WalConfig =
    WalConfig { segment_bytes: 16 * 1024, preallocation: Preallocation::Inline };

fn directory() -> PathBuf {
    Path::new(ROOT).join("node")
}

/// Runs `operation`; whether it reported success.
fn apply(store: &mut WalLogStore<SimulatedFileSystem>, operation: Operation) -> bool {
    match operation {
        Operation::Persist { hard_state, entries } => {
            store.persist_blocking(hard_state, entries).is_ok()
        }
        Operation::StoreSnapshot(snapshot) => store.store_snapshot_blocking(&snapshot).is_ok(),
    }
}

/// The model's state after the first `count` operations of `seed`'s workload.
fn model_after(seed: u64, count: u64) -> RestoredState {
    let mut model = MemLogStore::new(membership());
    block_on(async {
        for operation in Workload::new(seed, SNAPSHOT_BYTES_MAX).take(count as usize) {
            match operation {
                Operation::Persist { hard_state, entries } => {
                    model.persist(hard_state, entries).await.unwrap();
                }
                Operation::StoreSnapshot(snapshot) => model.store_snapshot(snapshot).await.unwrap(),
            }
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

/// One cut: returns whether the operation in flight was kept.
fn cut_and_check(iteration: u64, seed: u64, fail_at: u64, survival: Survival) -> bool {
    let file_system = SimulatedFileSystem::new();
    let mut rng = Rng::new(seed ^ fail_at);
    let preallocation =
        if iteration % 2 == 0 { Preallocation::Inline } else { Preallocation::Background };
    let config = WalConfig { preallocation, ..CONFIG };
    let mut store =
        WalLogStore::create_with(file_system.clone(), &directory(), &membership(), config.clone())
            .unwrap();
    file_system.fail_after(fail_at);
    let mut reported = 0;
    for operation in Workload::new(seed, SNAPSHOT_BYTES_MAX).take(OPERATIONS) {
        if !apply(&mut store, operation) {
            break;
        }
        reported += 1;
    }
    drop(store);
    file_system.cut_power(survival, &mut rng);

    let context = format!(
        "iteration {iteration} (seed {seed}, power failed at operation {fail_at}, {survival:?} \
         of the unsynced writes survived, {reported} operations reported durable, \
         {preallocation:?} preallocation)"
    );
    let mut store = WalLogStore::open_with(file_system.clone(), &directory(), config.clone())
        .unwrap_or_else(|error| panic!("{context}: reopening failed: {error}"));
    let restored =
        store.load_blocking().unwrap_or_else(|error| panic!("{context}: loading failed: {error}"));
    let durable = model_after(seed, reported);
    let in_flight_kept = restored != durable;
    if in_flight_kept {
        let next = model_after(seed, reported + 1);
        assert!(
            restored == next,
            "{context}: restored {} but expected {} or {}",
            describe(&restored),
            describe(&durable),
            describe(&next),
        );
    }
    // The recovered store takes writes that survive the next cut.
    let last = restored.entries.last().map_or(restored.compacted(), |entry| entry.log_id);
    let term = Term(restored.hard_state.term.0.max(last.term.0));
    let entry = common::entry(term.0, last.index.0 + 1);
    store.persist_blocking(None, vec![entry.clone()]).unwrap();
    drop(store);
    file_system.cut_power(Survival::Nothing, &mut rng);
    let mut store = WalLogStore::open_with(file_system, &directory(), config).unwrap();
    assert_eq!(store.load_blocking().unwrap().entries.last(), Some(&entry), "{context}");
    in_flight_kept
}

#[test]
fn power_loss_keeps_every_acknowledged_write_and_invents_nothing() {
    let iterations = std::env::var(ITERATIONS_VARIABLE)
        .ok()
        .map_or(ITERATIONS_DEFAULT, |value| value.parse().unwrap());
    let mut rng = Rng::new(0x0bad_5eed);
    let mut kept = 0;
    let survivals = [Survival::Nothing, Survival::Prefix, Survival::Sectors];
    for iteration in 0..iterations {
        let seed = rng.next() % 16;
        let fail_at = rng.range(1, OPERATIONS_MAX);
        let survival = survivals[(iteration % 3) as usize];
        kept += u64::from(cut_and_check(iteration, seed, fail_at, survival));
    }
    eprintln!("{kept} of {iterations} cuts kept the operation in flight");
    assert!(kept > 0, "no cut landed after a write's sync: the cuts are too early or too late");
}

#[test]
fn power_loss_during_creation_leaves_no_store_or_a_whole_one() {
    let mut complete_after = None;
    for fail_at in 1..200 {
        let file_system = SimulatedFileSystem::new();
        file_system.fail_after(fail_at);
        let created =
            WalLogStore::create_with(file_system.clone(), &directory(), &membership(), CONFIG);
        let finished = created.is_ok();
        drop(created);
        file_system.cut_power(Survival::Nothing, &mut Rng::new(fail_at));
        let mut store = match WalLogStore::open_with(file_system.clone(), &directory(), CONFIG) {
            Ok(store) => store,
            Err(Error::NotFound { .. }) => {
                assert!(!finished, "a store reported created is gone after a cut at {fail_at}");
                WalLogStore::create_with(file_system.clone(), &directory(), &membership(), CONFIG)
                    .unwrap_or_else(|error| panic!("cut at {fail_at}: creating again: {error}"))
            }
            Err(error) => panic!("cut at {fail_at}: {error}"),
        };
        let restored = store.load_blocking().unwrap();
        assert_eq!(restored.membership, membership());
        assert!(restored.entries.is_empty());
        if finished {
            complete_after = Some(fail_at);
            break;
        }
    }
    assert!(complete_after.is_some(), "creation never finished within 200 operations");
}
