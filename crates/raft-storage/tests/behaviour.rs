//! The `LogStore` contract, run against `RedbLogStore`, `WalLogStore` and `MemLogStore`:
//! each behaviour is one generic function, instantiated once per store at the bottom.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    Harness, MemHarness, RedbHarness, WalHarness, block_on, chain, entries, entry, membership,
    snapshot,
};
use raft_core::{HardState, LogId, LogIndex, Membership, NodeId, Term};
use raft_runtime::LogStore;

fn hard_state(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState { term: Term(term), voted_for: vote.map(NodeId), commit_index: LogIndex(commit) }
}

fn fresh_store_restores_the_bootstrap_membership_and_nothing_else<H: Harness>() {
    let mut harness = H::new(membership());
    harness.restart();
    let restored = block_on(harness.store().load()).unwrap();
    assert_eq!(restored.membership, membership());
    assert_eq!(restored.hard_state, HardState::default());
    assert!(restored.entries.is_empty());
    assert!(restored.snapshot.is_none());
    assert_eq!(restored.applied_index, LogIndex::ZERO);
}

fn persisted_entries_and_hard_state_survive_a_restart<H: Harness>() {
    let mut harness = H::new(membership());
    block_on(harness.store().persist(Some(hard_state(2, Some(1), 0)), entries(1, 1, 3))).unwrap();
    block_on(harness.store().persist(Some(hard_state(2, Some(1), 2)), entries(2, 4, 5))).unwrap();
    harness.restart();
    let restored = block_on(harness.store().load()).unwrap();
    let mut expected = entries(1, 1, 3);
    expected.extend(entries(2, 4, 5));
    assert_eq!(restored.entries, expected);
    assert_eq!(restored.hard_state, hard_state(2, Some(1), 2));
}

fn hard_state_alone_is_persisted_without_touching_the_log<H: Harness>() {
    let mut harness = H::new(membership());
    block_on(harness.store().persist(None, entries(1, 1, 2))).unwrap();
    block_on(harness.store().persist(Some(hard_state(5, Some(3), 1)), Vec::new())).unwrap();
    harness.restart();
    let restored = block_on(harness.store().load()).unwrap();
    assert_eq!(restored.hard_state, hard_state(5, Some(3), 1));
    assert_eq!(restored.entries, entries(1, 1, 2));
}

fn persist_overwrites_a_conflicting_suffix<H: Harness>() {
    let mut harness = H::new(membership());
    block_on(harness.store().persist(None, entries(1, 1, 6))).unwrap();
    block_on(harness.store().persist(Some(hard_state(3, None, 0)), vec![entry(3, 3)])).unwrap();
    harness.restart();
    let restored = block_on(harness.store().load()).unwrap();
    assert_eq!(restored.entries, vec![entry(1, 1), entry(1, 2), entry(3, 3)]);
    // Appending after the truncation continues from the new last entry.
    block_on(harness.store().persist(None, entries(3, 4, 5))).unwrap();
    let restored = block_on(harness.store().load()).unwrap();
    assert_eq!(restored.entries.len(), 5);
    assert_eq!(restored.entries.last().unwrap().log_id, LogId::new(Term(3), LogIndex(5)));
}

fn persist_refuses_a_hole_and_keeps_the_log<H: Harness>() {
    let mut harness = H::new(membership());
    block_on(harness.store().persist(None, entries(1, 1, 2))).unwrap();
    let error = block_on(harness.store().persist(None, vec![entry(1, 4)])).unwrap_err();
    assert!(matches!(error, raft_runtime::Error::Storage { .. }), "{error}");
    assert!(chain(&error).contains("hole"), "{}", chain(&error));
    assert!(chain(&error).contains('4'), "{}", chain(&error));
    let restored = block_on(harness.store().load()).unwrap();
    assert_eq!(restored.entries, entries(1, 1, 2));
}

fn snapshot_compacts_the_prefix_and_keeps_a_matching_suffix<H: Harness>() {
    let mut harness = H::new(membership());
    block_on(harness.store().persist(Some(hard_state(1, None, 4)), entries(1, 1, 6))).unwrap();
    block_on(harness.store().store_snapshot(snapshot(1, 4, b"state at 4"))).unwrap();
    harness.restart();
    let restored = block_on(harness.store().load()).unwrap();
    assert_eq!(restored.compacted(), LogId::new(Term(1), LogIndex(4)));
    assert_eq!(restored.entries, entries(1, 5, 6));
    assert_eq!(restored.snapshot.unwrap().data.as_ref(), b"state at 4");
    assert_eq!(restored.membership, snapshot(1, 4, b"").meta.membership);
}

fn snapshot_not_matching_the_log_replaces_the_whole_log<H: Harness>() {
    let mut harness = H::new(membership());
    block_on(harness.store().persist(None, entries(1, 1, 6))).unwrap();
    // A leader's snapshot at an index we hold with another term: the logs diverge.
    block_on(harness.store().store_snapshot(snapshot(2, 4, b"leader's"))).unwrap();
    harness.restart();
    let restored = block_on(harness.store().load()).unwrap();
    assert!(restored.entries.is_empty());
    assert_eq!(restored.compacted(), LogId::new(Term(2), LogIndex(4)));
    // A snapshot past our last entry also replaces the log.
    block_on(harness.store().persist(None, entries(2, 5, 5))).unwrap();
    block_on(harness.store().store_snapshot(snapshot(2, 9, b"later"))).unwrap();
    let restored = block_on(harness.store().load()).unwrap();
    assert!(restored.entries.is_empty());
    assert_eq!(restored.compacted(), LogId::new(Term(2), LogIndex(9)));
}

fn older_snapshot_is_ignored<H: Harness>() {
    let mut harness = H::new(membership());
    block_on(harness.store().persist(None, entries(1, 1, 6))).unwrap();
    block_on(harness.store().store_snapshot(snapshot(1, 4, b"four"))).unwrap();
    block_on(harness.store().store_snapshot(snapshot(1, 3, b"three"))).unwrap();
    block_on(harness.store().store_snapshot(snapshot(1, 4, b"four again"))).unwrap();
    harness.restart();
    let restored = block_on(harness.store().load()).unwrap();
    assert_eq!(restored.snapshot.unwrap().data.as_ref(), b"four");
    assert_eq!(restored.entries, entries(1, 5, 6));
}

fn entries_covered_by_the_snapshot_are_skipped<H: Harness>() {
    let mut harness = H::new(membership());
    block_on(harness.store().store_snapshot(snapshot(2, 3, b"s"))).unwrap();
    block_on(harness.store().persist(None, entries(2, 2, 5))).unwrap();
    harness.restart();
    let restored = block_on(harness.store().load()).unwrap();
    assert_eq!(restored.entries, entries(2, 4, 5));
    // A write entirely inside the snapshot changes nothing.
    block_on(harness.store().persist(None, entries(2, 1, 3))).unwrap();
    let restored = block_on(harness.store().load()).unwrap();
    assert_eq!(restored.entries, entries(2, 4, 5));
}

fn restart_resumes_from_the_snapshot_not_from_zero<H: Harness>() {
    let mut harness = H::new(membership());
    for batch in 0..10_u64 {
        let first = batch * 10 + 1;
        let state = hard_state(1, Some(1), first.saturating_sub(1));
        block_on(harness.store().persist(Some(state), entries(1, first, first + 9))).unwrap();
    }
    block_on(harness.store().store_snapshot(snapshot(1, 95, &[7; 4096]))).unwrap();
    harness.restart();
    let mut restored = block_on(harness.store().load()).unwrap();
    assert_eq!(restored.compacted().index, LogIndex(95));
    assert_eq!(restored.entries.first().unwrap().log_id.index, LogIndex(96));
    assert_eq!(restored.entries.len(), 5);
    assert_eq!(restored.hard_state.commit_index, LogIndex(90));
    // The restored state is one a node accepts, once the driver set the applied index
    // to the snapshot's (as `Raft::start` does).
    restored.applied_index = restored.compacted().index;
    raft_core::Node::new(raft_core::Config::new(NodeId(1)), restored, 7).unwrap();
}

fn node_joining_with_no_voters_restores_an_empty_membership<H: Harness>() {
    let mut harness = H::new(Membership::default());
    harness.restart();
    let restored = block_on(harness.store().load()).unwrap();
    assert_eq!(restored.membership, Membership::default());
}

fn empty_write_changes_nothing<H: Harness>() {
    let mut harness = H::new(membership());
    block_on(harness.store().persist(Some(hard_state(1, None, 0)), entries(1, 1, 1))).unwrap();
    block_on(harness.store().persist(None, Vec::new())).unwrap();
    let restored = block_on(harness.store().load()).unwrap();
    assert_eq!(restored.entries, entries(1, 1, 1));
    assert_eq!(restored.hard_state, hard_state(1, None, 0));
}

macro_rules! suite {
    ($($behaviour:ident),* $(,)?) => {
        mod mem_store {
            $(#[test] fn $behaviour() { super::$behaviour::<super::MemHarness>(); })*
        }
        mod redb_store {
            $(#[test] fn $behaviour() { super::$behaviour::<super::RedbHarness>(); })*
        }
        mod wal_store {
            $(#[test] fn $behaviour() { super::$behaviour::<super::WalHarness>(); })*
        }
    };
}

suite!(
    fresh_store_restores_the_bootstrap_membership_and_nothing_else,
    persisted_entries_and_hard_state_survive_a_restart,
    hard_state_alone_is_persisted_without_touching_the_log,
    persist_overwrites_a_conflicting_suffix,
    persist_refuses_a_hole_and_keeps_the_log,
    snapshot_compacts_the_prefix_and_keeps_a_matching_suffix,
    snapshot_not_matching_the_log_replaces_the_whole_log,
    older_snapshot_is_ignored,
    entries_covered_by_the_snapshot_are_skipped,
    restart_resumes_from_the_snapshot_not_from_zero,
    node_joining_with_no_voters_restores_an_empty_membership,
    empty_write_changes_nothing,
);
