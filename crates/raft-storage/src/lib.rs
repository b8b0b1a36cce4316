//! `raft-storage`: a node's durable Raft state (hard state, log, snapshots), on a segmented
//! write-ahead log or on redb.
//!
//! Two engines implement [`raft_runtime::LogStore`], the trait the `raft_runtime` driver
//! writes through, so a node's votes, terms and log survive crashes, power loss and
//! restarts; [`Engine`] names them and [`AnyLogStore`] holds either (binaries choose with a
//! flag; the data directory's [`ENGINE_FILE`] records which one wrote it).
//!
//! [`WalLogStore`]: preallocated segment files under `<dir>/wal/`, one frame (length,
//! CRC32, hard state and entries) per `persist` call written in place with one
//! `fdatasync`; every segment starts with a checkpoint of the state before it, so a
//! snapshot deletes whole segments. At open only a torn last write is dropped; other
//! damage is an error naming the segment and offset.
//!
//! [`RedbLogStore`]: one directory per node holds a redb database and the current
//! snapshot file:
//!
//! ```text
//!                   persistence task (raft_runtime)
//!     persist(hard state, entries)   store_snapshot(snapshot)   load()
//!                 │                           │                    ^
//!                 v                           v                    │ RestoredState
//!   ┌─────────────────────────────────── RedbLogStore ─────────────┴─────────────┐
//!   │ one redb transaction       snapshot file: write .tmp, fsync, rename,       │
//!   │ per batch (group commit)   fsync dir; then one transaction switches the    │
//!   │                            metadata and compacts the log; old file removed │
//!   │            in memory: term of every entry + recent tail ──> LogReader      │
//!   └──────────┬─────────────────────────────┬───────────────────────────────────┘
//!              v                             v                   LogReader: entries
//!   <dir>/raft-log.redb                <dir>/snapshot-<index>-<term>.snap  (byte budget),
//!     raft_meta: format, bootstrap       header, meta, data, crc32         term_at, stats
//!       membership, first index, snapshot record
//!     raft_hard_state: term, vote, commit index
//!     raft_entries: index -> postcard(Entry)
//! ```
//!
//! Every write is durable on return (redb's `Durability::Immediate`: one fsync per
//! transaction). A crash at any point leaves either the state before a write or after
//! it, and either the old snapshot or the new one, never a torn one. Opening a damaged,
//! truncated, empty or foreign file fails with an [`Error`] naming the file and what is
//! wrong; nothing is reset silently.
//!
//! Both engines do every file operation through the [`FileSystem`] trait ([`RealFileSystem`]
//! unless a test injects faults): segments, snapshot files, directories, and the redb
//! database too, which redb opens with `Database::builder().create_with_backend` on an
//! adapter implementing redb's `StorageBackend` (`len`, `read`, `set_len`, `sync_data`,
//! `write`) over a [`StorageFile`]. The adapter adds one thing to redb's own syncs: a
//! length change is synced at once, because redb 3.1 cannot open a file whose header
//! reached the disk before its new length did. The power-loss test
//! (`tests/power_loss.rs`) runs both engines on a file system that forgets everything
//! unsynced at a cut, and checks that every write reported durable survives and nothing
//! else appears.
//!
//! A durable write blocks in fsync for a millisecond or more. The runtime calls `persist`
//! and `store_snapshot` on a thread it keeps for the store (its persistence thread), so
//! both engines do that work right there, on the calling thread; only `load`, awaited on a
//! runtime worker when the node starts, goes to tokio's blocking pool. The `*_blocking`
//! methods run the same work on the calling thread from outside the runtime.
//!
//! The driver reports each write's latency and bytes to its `MetricsSink::persisted`;
//! the store does not report them again. [`LogReader::stats`] adds what only the store
//! sees: encoded bytes, time inside redb's commit, and a latency histogram.
//!
//! # Example
//!
//! ```
//! use raft_runtime::LogStore;
//! use raft_core::{Entry, EntryPayload, HardState, LogId, LogIndex, Membership, NodeId, Term};
//! use raft_storage::{RedbLogStore, StoreConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let directory = tempfile::tempdir()?;
//! let membership = Membership::with_voters([NodeId(1)]);
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//!
//! let mut store = RedbLogStore::create(directory.path(), &membership, StoreConfig::default())?;
//! let hard_state = HardState { term: Term(1), voted_for: Some(NodeId(1)), commit_index: LogIndex(0) };
//! let entry = Entry { log_id: LogId::new(Term(1), LogIndex(1)), payload: EntryPayload::Empty };
//! runtime.block_on(store.persist(Some(hard_state), vec![entry.clone()]))?;
//! drop(store);
//!
//! // After a restart, everything persisted is there.
//! let mut store = RedbLogStore::open(directory.path(), StoreConfig::default())?;
//! let restored = runtime.block_on(store.load())?;
//! assert_eq!(restored.hard_state, hard_state);
//! assert_eq!(restored.entries, vec![entry]);
//! assert_eq!(store.reader().term_at(LogIndex(1)), Some(Term(1)));
//! # Ok(())
//! # }
//! ```

mod blocking;
mod engine;
mod error;
mod file_system;
mod log_view;
mod redb_backend;
mod snapshot_file;
mod stats;
mod store;
mod tables;
mod wal;

pub use engine::{AnyLogStore, ENGINE_FILE, Engine, stored_engine};
pub use error::Error;
pub use file_system::{
    DIRECT_ALIGNMENT, FileSystem, RealFileSystem, StorageFile, create_data_directory,
    create_directory_all,
};
pub use stats::{LATENCY_BUCKETS, StatsReport, StoreStats};
pub use store::{DATABASE_FILE, LogReader, RedbLogStore, StoreConfig};
pub use wal::{Preallocation, WAL_DIRECTORY, WalConfig, WalLogStore};
