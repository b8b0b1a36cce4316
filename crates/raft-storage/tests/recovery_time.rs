//! Measures recovery: opening and loading a store (redb, then the write-ahead log) with a
//! 4 MB snapshot and 100,000 log entries of 256 bytes after it. Ignored by default (it
//! writes ~30 MB per engine); `cargo bench -p raft-storage` measures the same in release:
//!
//! `cargo test -p raft-storage --test recovery_time -- --ignored --nocapture`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use bytes::Bytes;
use raft_core::{
    Entry, EntryPayload, LogId, LogIndex, Membership, NodeId, Snapshot, SnapshotMeta, Term,
};
use raft_storage::{RedbLogStore, StoreConfig, WalConfig, WalLogStore};

const SNAPSHOT_BYTES: usize = 4 << 20;
const ENTRIES: u64 = 100_000;
const BATCH: u64 = 1_000;

fn batch(first: u64) -> Vec<Entry> {
    let payload = Bytes::from(vec![0x5a; 256]);
    (first..first + BATCH)
        .map(|index| Entry {
            log_id: LogId::new(Term(1), LogIndex(index)),
            payload: EntryPayload::Command(payload.clone()),
        })
        .collect()
}

fn snapshot(membership: Membership) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta { last_log_id: LogId::new(Term(1), LogIndex(BATCH)), membership },
        data: Bytes::from((0..SNAPSHOT_BYTES).map(|i| (i % 251) as u8).collect::<Vec<u8>>()),
    }
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn wal_recovery_of_a_4_mb_snapshot_and_100_000_entries() {
    let directory = tempfile::tempdir().unwrap();
    let membership = Membership::with_voters([NodeId(1)]);
    let mut store =
        WalLogStore::create(directory.path(), &membership, WalConfig::default()).unwrap();
    store.persist_blocking(None, batch(1)).unwrap();
    store.store_snapshot_blocking(&snapshot(membership)).unwrap();
    let written = Instant::now();
    for first in (BATCH + 1..=BATCH + ENTRIES).step_by(BATCH as usize) {
        store.persist_blocking(None, batch(first)).unwrap();
    }
    let write_time = written.elapsed();
    drop(store);

    let started = Instant::now();
    let mut store = WalLogStore::open(directory.path(), WalConfig::default()).unwrap();
    let opened = started.elapsed();
    let restored = store.load_blocking().unwrap();
    let total = started.elapsed();
    assert_eq!(restored.entries.len() as u64, ENTRIES);
    assert_eq!(restored.compacted().index, LogIndex(BATCH));
    assert_eq!(restored.snapshot.unwrap().data.len(), SNAPSHOT_BYTES);
    eprintln!(
        "wal recovery: open {opened:?} (segments read and replayed), open+load {total:?} \
         ({ENTRIES} entries, {SNAPSHOT_BYTES} B snapshot; writing the entries in batches of \
         {BATCH} took {write_time:?})"
    );
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn recovery_of_a_4_mb_snapshot_and_100_000_entries() {
    let directory = tempfile::tempdir().unwrap();
    let membership = Membership::with_voters([NodeId(1)]);
    let mut store =
        RedbLogStore::create(directory.path(), &membership, StoreConfig::default()).unwrap();
    store.persist_blocking(None, batch(1)).unwrap();
    store.store_snapshot_blocking(&snapshot(membership)).unwrap();
    let written = Instant::now();
    for first in (BATCH + 1..=BATCH + ENTRIES).step_by(BATCH as usize) {
        store.persist_blocking(None, batch(first)).unwrap();
    }
    let write_time = written.elapsed();
    drop(store);

    let started = Instant::now();
    let mut store = RedbLogStore::open(directory.path(), StoreConfig::default()).unwrap();
    let opened = started.elapsed();
    let restored = store.load_blocking().unwrap();
    let total = started.elapsed();
    assert_eq!(restored.entries.len() as u64, ENTRIES);
    assert_eq!(restored.compacted().index, LogIndex(BATCH));
    assert_eq!(restored.snapshot.unwrap().data.len(), SNAPSHOT_BYTES);
    let database_bytes = std::fs::metadata(store.path()).unwrap().len();
    eprintln!(
        "recovery: open {opened:?} (checks + log shape), open+load {total:?} \
         ({ENTRIES} entries, {SNAPSHOT_BYTES} B snapshot, database {database_bytes} B; \
         writing the entries in batches of {BATCH} took {write_time:?})"
    );
}
