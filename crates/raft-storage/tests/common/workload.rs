//! A deterministic workload of store writes (appends, conflicting overwrites, hard states,
//! compacting and replacing snapshots), drawn from a seed, so a crashed writer's work can
//! be replayed against a model.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use raft_core::{
    Entry, HardState, LogId, LogIndex, Membership, NodeId, Snapshot, SnapshotMeta, Term,
};

use super::payload;

/// One call on a store.
#[derive(Clone, Debug)]
pub enum Operation {
    Persist { hard_state: Option<HardState>, entries: Vec<Entry> },
    StoreSnapshot(Snapshot),
}

/// splitmix64: a tiny deterministic generator, enough for workloads.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// Generates operations that a Raft node could hand a store, in order.
pub struct Workload {
    rng: Rng,
    term: u64,
    /// Terms of the log's entries by index (index 0 unused); entries up to `snapshot`
    /// are compacted.
    terms: Vec<u64>,
    snapshot: u64,
    commit: u64,
    snapshot_bytes_max: u64,
}

impl Workload {
    pub fn new(seed: u64, snapshot_bytes_max: u64) -> Workload {
        Workload {
            rng: Rng::new(seed),
            term: 1,
            terms: vec![0],
            snapshot: 0,
            commit: 0,
            snapshot_bytes_max,
        }
    }

    fn last_index(&self) -> u64 {
        self.terms.len() as u64 - 1
    }

    fn hard_state(&mut self) -> HardState {
        self.commit = self.commit.max(self.snapshot).min(self.last_index());
        HardState {
            term: Term(self.term),
            voted_for: Some(NodeId(1)),
            commit_index: LogIndex(self.commit),
        }
    }

    fn append(&mut self, first: u64, count: u64) -> Vec<Entry> {
        self.terms.truncate(first as usize);
        (first..first + count)
            .map(|index| {
                self.terms.push(self.term);
                let bytes = self.rng.range(8, 1024) as usize;
                Entry {
                    log_id: LogId::new(Term(self.term), LogIndex(index)),
                    payload: payload(self.term, index, bytes),
                }
            })
            .collect()
    }

    fn snapshot_of(&mut self, term: u64, index: u64) -> Snapshot {
        let bytes = self.rng.range(1, self.snapshot_bytes_max) as usize;
        let seed = self.rng.next();
        let data: Vec<u8> = (0..bytes).map(|position| (seed >> (position % 57)) as u8).collect();
        Snapshot {
            meta: SnapshotMeta {
                last_log_id: LogId::new(Term(term), LogIndex(index)),
                membership: Membership::with_voters([NodeId(1), NodeId(index % 3 + 2)]),
            },
            data: Bytes::from(data),
        }
    }
}

impl Iterator for Workload {
    type Item = Operation;

    fn next(&mut self) -> Option<Operation> {
        let choice = self.rng.range(0, 99);
        let last = self.last_index();
        let operation = if choice < 8 && last > self.snapshot {
            // The application snapshotted an applied prefix: the log keeps its suffix.
            let index = self.rng.range(self.snapshot + 1, last);
            self.snapshot = index;
            self.commit = self.commit.max(index);
            let term = self.terms[index as usize];
            Operation::StoreSnapshot(self.snapshot_of(term, index))
        } else if choice < 10 {
            // A leader's snapshot past our log: it replaces the whole log.
            self.term += 1;
            let index = last + self.rng.range(1, 5);
            self.terms.resize(index as usize + 1, self.term);
            self.snapshot = index;
            self.commit = index;
            let term = self.term;
            Operation::StoreSnapshot(self.snapshot_of(term, index))
        } else if choice < 16 && last > self.snapshot {
            // A new leader overwrites a conflicting suffix.
            self.term += 1;
            let first = self.rng.range(self.snapshot.max(self.commit) + 1, last + 1);
            let count = self.rng.range(1, 8);
            let entries = self.append(first, count);
            Operation::Persist { hard_state: Some(self.hard_state()), entries }
        } else if choice < 20 {
            self.commit = self.rng.range(self.commit, last);
            Operation::Persist { hard_state: Some(self.hard_state()), entries: Vec::new() }
        } else {
            let count = self.rng.range(1, 64);
            let entries = self.append(last + 1, count);
            let hard_state = (choice % 3 == 0).then(|| self.hard_state());
            Operation::Persist { hard_state, entries }
        };
        Some(operation)
    }
}
