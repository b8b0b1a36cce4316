//! Power loss, for both engines: a store runs a deterministic workload on a simulated file
//! system (tests/common/simulated_fs.rs) that fails at a chosen operation, as a machine
//! losing power would; then every byte, length change and directory entry that was not
//! synced is lost (or only some of it survives), the store is reopened, and it must hold
//! exactly the state after the last write it reported durable, or after the one in flight:
//! nothing acknowledged is lost, nothing unwritten is invented, and it opens without an
//! error. The redb engine runs over the same file system through its `StorageBackend`
//! adapter, so redb's own writes and syncs are cut too.
//!
//! Three scenarios, each against each engine: random cuts in a random workload (appends,
//! conflicting overwrites, hard-state saves, compacting and replacing snapshots); a cut at
//! every operation of a fixed snapshot-install-and-purge sequence; and a cut at every
//! operation of creating a store.
//!
//! `RAFT_STORAGE_POWER_LOSS_ITERATIONS` sets how many random cuts each engine takes
//! (default 300, about a second each).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::simulated_fs::{ROOT, SimulatedFileSystem, Survival};
use common::workload::{Operation, Rng, Workload};
use common::{block_on, membership};
use raft_core::{Entry, HardState, LogId, LogIndex, NodeId, RestoredState, Snapshot, Term};
use raft_runtime::{LogStore, MemLogStore};
use raft_storage::{Error, Preallocation, RedbLogStore, StoreConfig, WalConfig, WalLogStore};

const ITERATIONS_VARIABLE: &str = "RAFT_STORAGE_POWER_LOSS_ITERATIONS";
const ITERATIONS_DEFAULT: u64 = 300;
const OPERATIONS: usize = 40;
const SNAPSHOT_BYTES_MAX: u64 = 8 * 1024;
/// The workload's seeds: each engine's file-operation count is measured for each.
const SEEDS: u64 = 16;
/// Small segments: the workload's writes (up to 64 entries of up to 1 KiB) start new
/// segments often, and snapshots delete old ones, so cuts land in every kind of step.
/// Segments are made inline so that a cut's operation count replays exactly; the
/// helper-thread preallocation runs in every other iteration.
const WAL_CONFIG: WalConfig =
    WalConfig { segment_bytes: 16 * 1024, preallocation: Preallocation::Inline };

fn directory() -> PathBuf {
    Path::new(ROOT).join("node")
}

/// An engine under test: its store on the simulated file system.
trait Engine: Sized {
    type Store;
    const NAME: &'static str;
    /// The engine's configuration for `iteration` (one worth varying varies with it).
    fn for_iteration(iteration: u64) -> Self;
    fn describe(&self) -> String;
    fn create(&self, file_system: &SimulatedFileSystem) -> Result<Self::Store, Error>;
    fn open(&self, file_system: &SimulatedFileSystem) -> Result<Self::Store, Error>;
    fn persist(
        store: &mut Self::Store,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
    ) -> Result<(), Error>;
    fn store_snapshot(&self, store: &mut Self::Store, snapshot: &Snapshot) -> Result<bool, Error>;
    fn load(store: &mut Self::Store) -> Result<RestoredState, Error>;
}

/// The WAL engine, with `write_ahead` writing each snapshot's file ahead of its switch
/// (as the driver does with the engine's `SnapshotWriter`) rather than in the switch.
struct Wal {
    config: WalConfig,
    write_ahead: bool,
}

impl Engine for Wal {
    type Store = WalLogStore<SimulatedFileSystem>;
    const NAME: &'static str = "wal";
    fn for_iteration(iteration: u64) -> Wal {
        let preallocation =
            if iteration % 2 == 0 { Preallocation::Inline } else { Preallocation::Background };
        let config = WalConfig { preallocation, ..WAL_CONFIG };
        Wal { config, write_ahead: iteration % 4 >= 2 }
    }
    fn describe(&self) -> String {
        let snapshots = if self.write_ahead { "written ahead" } else { "written in the switch" };
        format!("{:?} preallocation, snapshots {snapshots}", self.config.preallocation)
    }
    fn create(&self, file_system: &SimulatedFileSystem) -> Result<Self::Store, Error> {
        WalLogStore::create_with(
            file_system.clone(),
            &directory(),
            &membership(),
            self.config.clone(),
        )
    }
    fn open(&self, file_system: &SimulatedFileSystem) -> Result<Self::Store, Error> {
        WalLogStore::open_with(file_system.clone(), &directory(), self.config.clone())
    }
    fn persist(
        store: &mut Self::Store,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
    ) -> Result<(), Error> {
        store.persist_blocking(hard_state, entries)
    }
    fn store_snapshot(&self, store: &mut Self::Store, snapshot: &Snapshot) -> Result<bool, Error> {
        if self.write_ahead {
            store.write_snapshot_ahead_blocking(snapshot)?;
        }
        store.store_snapshot_blocking(snapshot)
    }
    fn load(store: &mut Self::Store) -> Result<RestoredState, Error> {
        store.load_blocking()
    }
}

/// The redb engine, with `write_ahead` as for [`Wal`].
struct Redb {
    write_ahead: bool,
}

impl Engine for Redb {
    type Store = RedbLogStore<SimulatedFileSystem>;
    const NAME: &'static str = "redb";
    fn for_iteration(iteration: u64) -> Redb {
        Redb { write_ahead: iteration % 2 == 1 }
    }
    fn describe(&self) -> String {
        let snapshots = if self.write_ahead { "written ahead" } else { "written in the switch" };
        format!("redb over the simulated file system, snapshots {snapshots}")
    }
    fn create(&self, file_system: &SimulatedFileSystem) -> Result<Self::Store, Error> {
        let config = StoreConfig::default();
        RedbLogStore::create_with(file_system.clone(), &directory(), &membership(), config)
    }
    fn open(&self, file_system: &SimulatedFileSystem) -> Result<Self::Store, Error> {
        RedbLogStore::open_with(file_system.clone(), &directory(), StoreConfig::default())
    }
    fn persist(
        store: &mut Self::Store,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
    ) -> Result<(), Error> {
        store.persist_blocking(hard_state, entries)
    }
    fn store_snapshot(&self, store: &mut Self::Store, snapshot: &Snapshot) -> Result<bool, Error> {
        if self.write_ahead {
            store.write_snapshot_ahead_blocking(snapshot)?;
        }
        store.store_snapshot_blocking(snapshot)
    }
    fn load(store: &mut Self::Store) -> Result<RestoredState, Error> {
        store.load_blocking()
    }
}

/// Runs `operation`; whether it reported success.
fn apply<E: Engine>(engine: &E, store: &mut E::Store, operation: &Operation) -> bool {
    match operation {
        Operation::Persist { hard_state, entries } => {
            E::persist(store, *hard_state, entries.clone()).is_ok()
        }
        Operation::StoreSnapshot(snapshot) => engine.store_snapshot(store, snapshot).is_ok(),
    }
}

/// The model's state after the first `count` of `operations`.
fn model_after(operations: &[Operation], count: usize) -> RestoredState {
    let mut model = MemLogStore::new(membership());
    block_on(async {
        for operation in operations.iter().take(count).cloned() {
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

/// The file operations `operations` take after the first `setup` of them, on `engine`'s
/// store without a cut: where cuts can land.
fn count_file_operations<E: Engine>(engine: &E, operations: &[Operation], setup: usize) -> u64 {
    let file_system = SimulatedFileSystem::new();
    let mut store = engine.create(&file_system).unwrap();
    for operation in &operations[..setup] {
        assert!(apply(engine, &mut store, operation), "{}: a setup operation failed", E::NAME);
    }
    let before = file_system.operations();
    for operation in &operations[setup..] {
        assert!(apply(engine, &mut store, operation), "{}: an operation failed", E::NAME);
    }
    file_system.operations() - before
}

/// One cut: a fresh store runs the first `setup` operations, then the power fails at the
/// `fail_at`-th file operation of the rest; the reopened store must hold the state after
/// the operations reported durable, or after the one in flight. Returns whether the one
/// in flight was kept.
fn cut_and_check<E: Engine>(
    engine: &E,
    operations: &[Operation],
    setup: usize,
    fail_at: u64,
    survival: Survival,
    context: &str,
) -> bool {
    let file_system = SimulatedFileSystem::new();
    let mut rng = Rng::new(fail_at ^ ((operations.len() as u64) << 32));
    let mut store = engine.create(&file_system).unwrap();
    for operation in &operations[..setup] {
        assert!(apply(engine, &mut store, operation), "{context}: a setup operation failed");
    }
    file_system.fail_after(fail_at);
    let mut reported = setup;
    for operation in &operations[setup..] {
        if !apply(engine, &mut store, operation) {
            break;
        }
        reported += 1;
    }
    drop(store);
    file_system.cut_power(survival, &mut rng);

    let context = format!(
        "{} engine, {context} (power failed at operation {fail_at}, {survival:?} of the \
         unsynced writes survived, {reported} operations reported durable, {})",
        E::NAME,
        engine.describe(),
    );
    let mut store = engine
        .open(&file_system)
        .unwrap_or_else(|error| panic!("{context}: reopening failed: {error}"));
    let restored =
        E::load(&mut store).unwrap_or_else(|error| panic!("{context}: loading failed: {error}"));
    let durable = model_after(operations, reported);
    let in_flight_kept = restored != durable;
    if in_flight_kept {
        let next = model_after(operations, reported + 1);
        assert!(
            reported < operations.len() && restored == next,
            "{context}: restored {} but expected {} or {}",
            describe(&restored),
            describe(&durable),
            describe(&next),
        );
    }
    check_takes_writes::<E>(engine, &file_system, store, &restored, &context);
    in_flight_kept
}

/// The recovered store takes a write that survives the next cut.
fn check_takes_writes<E: Engine>(
    engine: &E,
    file_system: &SimulatedFileSystem,
    mut store: E::Store,
    restored: &RestoredState,
    context: &str,
) {
    let last = restored.entries.last().map_or(restored.compacted(), |entry| entry.log_id);
    let term = Term(restored.hard_state.term.0.max(last.term.0));
    let entry = common::entry(term.0, last.index.0 + 1);
    E::persist(&mut store, None, vec![entry.clone()])
        .unwrap_or_else(|error| panic!("{context}: writing after recovery failed: {error}"));
    drop(store);
    file_system.cut_power(Survival::Nothing, &mut Rng::new(0));
    let mut store = engine
        .open(file_system)
        .unwrap_or_else(|error| panic!("{context}: reopening after a write failed: {error}"));
    let entries = E::load(&mut store)
        .unwrap_or_else(|error| panic!("{context}: loading after a write failed: {error}"))
        .entries;
    assert_eq!(entries.last(), Some(&entry), "{context}: the write after recovery is lost");
}

fn random_cuts_keep_every_acknowledged_write<E: Engine>() {
    let iterations = std::env::var(ITERATIONS_VARIABLE)
        .ok()
        .map_or(ITERATIONS_DEFAULT, |value| value.parse().unwrap());
    let workloads: Vec<Vec<Operation>> = (0..SEEDS)
        .map(|seed| Workload::new(seed, SNAPSHOT_BYTES_MAX).take(OPERATIONS).collect())
        .collect();
    let counts: Vec<u64> = workloads
        .iter()
        .map(|operations| count_file_operations(&E::for_iteration(0), operations, 0))
        .collect();
    let mut rng = Rng::new(0x0bad_5eed);
    let mut kept = 0;
    let survivals = [Survival::Nothing, Survival::Prefix, Survival::Sectors];
    for iteration in 0..iterations {
        let seed = rng.next() % SEEDS;
        // Anywhere in the workload, and a few cuts after it.
        let count = counts[seed as usize];
        let fail_at = rng.range(1, count + count / 16);
        let survival = survivals[(iteration % 3) as usize];
        let context = format!("iteration {iteration} (seed {seed})");
        let engine = E::for_iteration(iteration);
        kept += u64::from(cut_and_check(
            &engine,
            &workloads[seed as usize],
            0,
            fail_at,
            survival,
            &context,
        ));
    }
    eprintln!(
        "{}: {kept} of {iterations} cuts kept the operation in flight; the workloads take \
         {} to {} file operations",
        E::NAME,
        counts.iter().min().unwrap(),
        counts.iter().max().unwrap(),
    );
    assert!(kept > 0, "no cut landed after a write's sync: the cuts are too early or too late");
}

#[test]
fn wal_power_loss_keeps_every_acknowledged_write_and_invents_nothing() {
    random_cuts_keep_every_acknowledged_write::<Wal>();
}

#[test]
fn redb_power_loss_keeps_every_acknowledged_write_and_invents_nothing() {
    random_cuts_keep_every_acknowledged_write::<Redb>();
}

/// A log of 300 entries, then (the sequence cut) a hard-state save, a snapshot that
/// compacts a prefix (the redb engine then purges the compacted entries a batch at a time
/// with later writes, the WAL deletes whole segments), writes, a leader's snapshot past the
/// end of the log (installed: it replaces the whole log), writes of the new term, and a
/// second compaction that removes the installed snapshot's file.
fn snapshot_install_and_purge() -> Vec<Operation> {
    let hard_state = |term, commit| HardState {
        term: Term(term),
        voted_for: Some(NodeId(1)),
        commit_index: LogIndex(commit),
    };
    let entries = |term: u64, first: u64, last: u64| -> Vec<Entry> {
        (first..=last)
            .map(|index| Entry {
                log_id: LogId::new(Term(term), LogIndex(index)),
                payload: common::payload(term, index, 64),
            })
            .collect()
    };
    let snapshot = |term, index, bytes: usize| {
        let data: Vec<u8> =
            (0..bytes).map(|position| (position * 7 + index as usize) as u8).collect();
        common::snapshot(term, index, &data)
    };
    let persist = |hard_state, entries| Operation::Persist { hard_state, entries };
    vec![
        persist(Some(hard_state(1, 0)), entries(1, 1, 300)),
        persist(Some(hard_state(1, 250)), Vec::new()),
        Operation::StoreSnapshot(snapshot(1, 200, 3000)),
        persist(None, entries(1, 301, 304)),
        persist(None, entries(1, 305, 308)),
        persist(Some(hard_state(1, 300)), entries(1, 309, 312)),
        persist(None, entries(1, 313, 316)),
        Operation::StoreSnapshot(snapshot(2, 330, 5000)),
        persist(Some(hard_state(2, 330)), entries(2, 331, 340)),
        Operation::StoreSnapshot(snapshot(2, 335, 2000)),
        persist(None, entries(2, 341, 345)),
    ]
}

fn cuts_in_snapshot_install_and_purge_keep_every_acknowledged_write<E: Engine>(engine: &E) {
    let operations = snapshot_install_and_purge();
    let count = count_file_operations(engine, &operations, 1);
    let survivals = [Survival::Nothing, Survival::Prefix, Survival::Sectors];
    let mut kept = 0;
    // Every operation, and one past the end (the sequence completes, then the cut).
    for fail_at in 1..=count + 1 {
        let survival = survivals[(fail_at % 3) as usize];
        let context = "snapshot install and purge";
        kept += u64::from(cut_and_check(engine, &operations, 1, fail_at, survival, context));
    }
    eprintln!("{}: {kept} of {} cuts kept the operation in flight", E::NAME, count + 1);
    assert!(kept > 0, "no cut landed after a write's sync");
}

#[test]
fn wal_power_loss_during_snapshot_install_and_purge_keeps_every_acknowledged_write() {
    cuts_in_snapshot_install_and_purge_keep_every_acknowledged_write(&Wal::for_iteration(0));
}

#[test]
fn wal_power_loss_with_snapshots_written_ahead_keeps_every_acknowledged_write() {
    let engine = Wal::for_iteration(2);
    assert!(engine.write_ahead);
    cuts_in_snapshot_install_and_purge_keep_every_acknowledged_write(&engine);
}

#[test]
fn redb_power_loss_during_snapshot_install_and_purge_keeps_every_acknowledged_write() {
    cuts_in_snapshot_install_and_purge_keep_every_acknowledged_write(&Redb::for_iteration(0));
}

#[test]
fn redb_power_loss_with_snapshots_written_ahead_keeps_every_acknowledged_write() {
    let engine = Redb::for_iteration(1);
    assert!(engine.write_ahead);
    cuts_in_snapshot_install_and_purge_keep_every_acknowledged_write(&engine);
}

/// A cut at each operation of creating a store: after it there is no store (and creating
/// one again works) or an empty, valid one; never a half-made one, and never none once
/// creation was reported done.
fn creation_cut_leaves_no_store_or_a_whole_one<E: Engine>() {
    let engine = E::for_iteration(0);
    let survivals = [Survival::Nothing, Survival::Prefix, Survival::Sectors];
    let mut complete_after = None;
    for fail_at in 1..500 {
        let file_system = SimulatedFileSystem::new();
        file_system.fail_after(fail_at);
        let created = engine.create(&file_system);
        let finished = created.is_ok();
        drop(created);
        let survival = survivals[(fail_at % 3) as usize];
        file_system.cut_power(survival, &mut Rng::new(fail_at));
        let context = format!("{} engine, cut at {fail_at} ({survival:?} survived)", E::NAME);
        let mut store = match engine.open(&file_system) {
            Ok(store) => store,
            Err(Error::NotFound { .. }) => {
                assert!(!finished, "{context}: a store reported created is gone");
                engine
                    .create(&file_system)
                    .unwrap_or_else(|error| panic!("{context}: creating again: {error}"))
            }
            Err(error) => panic!("{context}: {error}"),
        };
        let restored = E::load(&mut store)
            .unwrap_or_else(|error| panic!("{context}: loading failed: {error}"));
        assert_eq!(restored.membership, membership(), "{context}");
        assert_eq!(restored.hard_state, HardState::default(), "{context}");
        assert!(restored.entries.is_empty(), "{context}");
        assert!(restored.snapshot.is_none(), "{context}");
        check_takes_writes::<E>(&engine, &file_system, store, &restored, &context);
        if finished {
            complete_after = Some(fail_at);
            break;
        }
    }
    let complete_after = complete_after.expect("creation never finished within 500 operations");
    eprintln!("{}: creation takes {complete_after} file operations", E::NAME);
}

#[test]
fn wal_power_loss_during_creation_leaves_no_store_or_a_whole_one() {
    creation_cut_leaves_no_store_or_a_whole_one::<Wal>();
}

#[test]
fn redb_power_loss_during_creation_leaves_no_store_or_a_whole_one() {
    creation_cut_leaves_no_store_or_a_whole_one::<Redb>();
}
