//! Helpers shared by the integration tests: entries, snapshots, runtimes and harnesses
//! that run one behaviour against every store.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod simulated_fs;
pub mod workload;

use std::future::Future;
use std::path::Path;

use bytes::Bytes;
use raft_core::{
    Entry, EntryPayload, LogId, LogIndex, Membership, NodeId, Snapshot, SnapshotMeta, Term,
};
use raft_runtime::{LogStore, MemLogStore};
use raft_storage::{RedbLogStore, StoreConfig, WalConfig, WalLogStore};
use tempfile::TempDir;

/// An entry whose payload is derived from its id, so a torn or misplaced one shows.
pub fn entry(term: u64, index: u64) -> Entry {
    Entry { log_id: LogId::new(Term(term), LogIndex(index)), payload: payload(term, index, 16) }
}

/// The payload `entry` gives: `bytes` bytes derived from the log id.
pub fn payload(term: u64, index: u64, bytes: usize) -> EntryPayload {
    let seed = term.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index;
    let data: Vec<u8> = (0..bytes)
        .map(|position| (seed.rotate_left(position as u32 % 64) as u8) ^ position as u8)
        .collect();
    EntryPayload::Command(Bytes::from(data))
}

/// Entries `first..=last`, all of `term`.
pub fn entries(term: u64, first: u64, last: u64) -> Vec<Entry> {
    (first..=last).map(|index| entry(term, index)).collect()
}

pub fn membership() -> Membership {
    Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)])
}

pub fn snapshot(term: u64, index: u64, data: &[u8]) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_log_id: LogId::new(Term(term), LogIndex(index)),
            membership: Membership::with_voters([NodeId(1), NodeId(2)]),
        },
        data: Bytes::copy_from_slice(data),
    }
}

pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// A store under test that can be restarted (dropped and reopened from what it stored).
pub trait Harness {
    type Store: LogStore;
    fn new(membership: Membership) -> Self;
    fn store(&mut self) -> &mut Self::Store;
    fn restart(&mut self);
}

pub struct MemHarness(MemLogStore);

impl Harness for MemHarness {
    type Store = MemLogStore;
    fn new(membership: Membership) -> MemHarness {
        MemHarness(MemLogStore::new(membership))
    }
    fn store(&mut self) -> &mut MemLogStore {
        &mut self.0
    }
    fn restart(&mut self) {
        // Clones share the state: a new handle is a restarted node over the same "disk".
        self.0 = self.0.clone();
    }
}

/// A disk engine under test: how to create and reopen its store in a directory.
pub trait DiskEngine {
    type Store: LogStore;
    const NAME: &'static str;
    fn create(directory: &Path, membership: &Membership) -> Self::Store;
    fn open(directory: &Path) -> Result<Self::Store, raft_storage::Error>;
}

pub struct Redb;

impl DiskEngine for Redb {
    type Store = RedbLogStore;
    const NAME: &'static str = "redb";
    fn create(directory: &Path, membership: &Membership) -> RedbLogStore {
        RedbLogStore::create(directory, membership, StoreConfig::default()).unwrap()
    }
    fn open(directory: &Path) -> Result<RedbLogStore, raft_storage::Error> {
        RedbLogStore::open(directory, StoreConfig::default())
    }
}

pub struct Wal;

/// Segments this small make writes start new segments and snapshots purge old ones
/// within a few operations, so every test crosses segment boundaries.
pub const TEST_SEGMENT_BYTES: u64 = 4096;

impl DiskEngine for Wal {
    type Store = WalLogStore;
    const NAME: &'static str = "wal";
    fn create(directory: &Path, membership: &Membership) -> WalLogStore {
        let config = WalConfig { segment_bytes: TEST_SEGMENT_BYTES, ..WalConfig::default() };
        WalLogStore::create(directory, membership, config).unwrap()
    }
    fn open(directory: &Path) -> Result<WalLogStore, raft_storage::Error> {
        WalLogStore::open(
            directory,
            WalConfig { segment_bytes: TEST_SEGMENT_BYTES, ..WalConfig::default() },
        )
    }
}

/// A store of engine `E` in a temporary directory.
pub struct DiskHarness<E: DiskEngine> {
    pub directory: TempDir,
    pub store: Option<E::Store>,
}

pub type RedbHarness = DiskHarness<Redb>;
pub type WalHarness = DiskHarness<Wal>;

impl<E: DiskEngine> Harness for DiskHarness<E> {
    type Store = E::Store;
    fn new(membership: Membership) -> DiskHarness<E> {
        let directory = tempfile::tempdir().unwrap();
        let store = E::create(directory.path(), &membership);
        DiskHarness { directory, store: Some(store) }
    }
    fn store(&mut self) -> &mut E::Store {
        self.store.as_mut().unwrap()
    }
    fn restart(&mut self) {
        self.store = None;
        self.store = Some(E::open(self.directory.path()).unwrap());
    }
}

/// The error and its whole source chain, as one string.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
