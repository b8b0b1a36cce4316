//! Property test: random sequences of appends, conflicting overwrites, hard states,
//! snapshots (compacting, replacing, stale), holes and restarts leave `RedbLogStore` and
//! `WalLogStore` in the same state as `MemLogStore`, the reference model, after every step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{block_on, entry, membership};
use proptest::prelude::*;
use raft_core::{
    Entry, HardState, LogId, LogIndex, Membership, NodeId, Snapshot, SnapshotMeta, Term,
};
use raft_runtime::{LogStore, MemLogStore};
use raft_storage::{Error, RedbLogStore, StoreConfig, WalConfig, WalLogStore};

#[derive(Clone, Debug)]
enum Step {
    Append { count: u64 },
    Overwrite { back: u64, count: u64 },
    Commit { permille: u64 },
    Snapshot { permille: u64 },
    LeaderSnapshot { ahead: u64 },
    StaleSnapshot,
    Hole { gap: u64 },
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1..8_u64).prop_map(|count| Step::Append { count }),
        2 => (0..6_u64, 1..4_u64).prop_map(|(back, count)| Step::Overwrite { back, count }),
        1 => (0..=1000_u64).prop_map(|permille| Step::Commit { permille }),
        2 => (0..=1000_u64).prop_map(|permille| Step::Snapshot { permille }),
        1 => (0..4_u64).prop_map(|ahead| Step::LeaderSnapshot { ahead }),
        1 => Just(Step::StaleSnapshot),
        1 => (2..4_u64).prop_map(|gap| Step::Hole { gap }),
        1 => Just(Step::Restart),
    ]
}

fn snapshot(log_id: LogId) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_log_id: log_id,
            membership: Membership::with_voters([NodeId(log_id.index.0 % 5 + 1)]),
        },
        data: bytes::Bytes::from(format!("state at {log_id}").repeat(7)),
    }
}

/// A store under test, reopened from its directory on `Step::Restart`.
trait ModelledStore: LogStore + Sized {
    fn create(directory: &std::path::Path) -> Self;
    fn reopen(self, directory: &std::path::Path) -> Self;
    /// Checks the store's read side against the model's state.
    fn check_reads(&self, expected: &raft_core::RestoredState, number: usize);
}

fn redb_config() -> StoreConfig {
    StoreConfig { tail_cache_bytes: 6 * entry(1, 1).size_bytes() }
}

impl ModelledStore for RedbLogStore {
    fn create(directory: &std::path::Path) -> RedbLogStore {
        RedbLogStore::create(directory, &membership(), redb_config()).unwrap()
    }
    fn reopen(self, directory: &std::path::Path) -> RedbLogStore {
        drop(self);
        RedbLogStore::open(directory, redb_config()).unwrap()
    }
    fn check_reads(&self, expected: &raft_core::RestoredState, number: usize) {
        // The read side agrees with what was stored.
        let reader = self.reader();
        let last = expected.entries.last().map_or(expected.compacted(), |entry| entry.log_id);
        assert_eq!(reader.last_log_id(), last, "step {number}");
        for stored in &expected.entries {
            assert_eq!(reader.term_at(stored.log_id.index), Some(stored.log_id.term));
        }
        let read = reader.entries(reader.first_index(), last.index.next(), None).unwrap();
        assert_eq!(read, expected.entries, "step {number}: replication read differs");
    }
}

/// Small segments, so the model's few dozen entries span several and snapshots purge.
fn wal_config() -> WalConfig {
    WalConfig { segment_bytes: 1024, ..WalConfig::default() }
}

impl ModelledStore for WalLogStore {
    fn create(directory: &std::path::Path) -> WalLogStore {
        WalLogStore::create(directory, &membership(), wal_config()).unwrap()
    }
    fn reopen(self, directory: &std::path::Path) -> WalLogStore {
        drop(self);
        WalLogStore::open(directory, wal_config()).unwrap()
    }
    fn check_reads(&self, _expected: &raft_core::RestoredState, number: usize) {
        // The WAL's only read is `load` (compared above); a second handle on the live
        // store must be refused, or two writers would interleave frames.
        let second = WalLogStore::open(self.path().parent().unwrap(), wal_config());
        assert!(matches!(second, Err(Error::Locked { .. })), "step {number}: {second:?}");
    }
}

/// Runs `steps` on the store and the model, comparing after each.
fn run<S: ModelledStore>(steps: Vec<Step>) {
    let directory = tempfile::tempdir().unwrap();
    let mut store = S::create(directory.path());
    let mut model = MemLogStore::new(membership());
    let mut term = 1;
    for (number, step) in steps.into_iter().enumerate() {
        let state = block_on(model.load()).unwrap();
        let compacted = state.compacted();
        let last = state.entries.last().map_or(compacted, |entry| entry.log_id);
        let entries = |term: u64, first: u64, count: u64| -> Vec<Entry> {
            (first..first + count).map(|index| entry(term, index)).collect()
        };
        let hard = |term: u64, commit: u64| HardState {
            term: Term(term),
            voted_for: Some(NodeId(1)),
            commit_index: LogIndex(commit),
        };
        let (hard_state, write, snap) = match step {
            Step::Append { count } => (None, Some(entries(term, last.index.0 + 1, count)), None),
            Step::Overwrite { back, count } => {
                term += 1;
                let first = (last.index.0 + 1).saturating_sub(back).max(compacted.index.0 + 1);
                (Some(hard(term, compacted.index.0)), Some(entries(term, first, count)), None)
            }
            Step::Commit { permille } => {
                let commit =
                    compacted.index.0 + last.index.distance_from(compacted.index) * permille / 1000;
                (Some(hard(term, commit)), Some(Vec::new()), None)
            }
            Step::Snapshot { permille } => {
                let span = last.index.distance_from(compacted.index);
                if span == 0 {
                    continue;
                }
                let index = compacted.index.0 + 1 + (span - 1) * permille / 1000;
                let entry_term =
                    state.entries.iter().find(|e| e.log_id.index.0 == index).unwrap().log_id.term;
                (None, None, Some(snapshot(LogId::new(entry_term, LogIndex(index)))))
            }
            Step::LeaderSnapshot { ahead } => {
                term += 1;
                let index = (last.index.0 + ahead).max(compacted.index.0 + 1);
                (None, None, Some(snapshot(LogId::new(Term(term), LogIndex(index)))))
            }
            Step::StaleSnapshot => {
                (None, None, Some(snapshot(LogId::new(Term(term), compacted.index))))
            }
            Step::Hole { gap } => (None, Some(entries(term, last.index.0 + gap, 1)), None),
            Step::Restart => {
                store = store.reopen(directory.path());
                (None, None, None)
            }
        };
        let (ours, theirs) = block_on(async {
            match (write, snap) {
                (Some(write), _) => (
                    store.persist(hard_state, write.clone()).await.is_ok(),
                    model.persist(hard_state, write).await.is_ok(),
                ),
                (None, Some(snap)) => (
                    store.store_snapshot(snap.clone()).await.is_ok(),
                    model.store_snapshot(snap).await.is_ok(),
                ),
                (None, None) => (true, true),
            }
        });
        assert_eq!(ours, theirs, "step {number}: outcomes differ");
        let expected = block_on(model.load()).unwrap();
        let restored = block_on(store.load()).unwrap();
        assert_eq!(restored, expected, "step {number}: states differ");
        store.check_reads(&expected, number);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn redb_store_matches_the_in_memory_model(steps in prop::collection::vec(step(), 1..24)) {
        run::<RedbLogStore>(steps);
    }

    #[test]
    fn wal_store_matches_the_in_memory_model(steps in prop::collection::vec(step(), 1..24)) {
        run::<WalLogStore>(steps);
    }
}
