//! `kv-store`: the deterministic key-value state machine of the replicated store.
//!
//! This crate owns the store's vocabulary. Writes ([`Write::Put`], [`Write::Delete`], each
//! optionally conditional on the key's version, and the member address book's
//! [`Write::SetMemberAddress`] and [`Write::RemoveMemberAddress`]) travel through the Raft
//! log as postcard-encoded [`Command`]s: a [`Write`] under a client [`Session`]. The client
//! builds the command, the wire protocol carries it as it is, and the server proposes its
//! encoding. [`KvStore`] applies committed entries in log order and answers each with a
//! [`Response`]. Reads never enter the log: the server confirms a ReadIndex, waits until
//! the store has applied that index, and calls [`KvStore::get`] or [`KvStore::range`].
//!
//! ```text
//!  client ──Command{Session, Write}──> server ──validate_write──> Command::encode
//!                                                                       v
//!                                        RaftHandle::propose(Bytes) ── log ── committed Entry
//!                                                                                  │
//!   Response (Written / Deleted / Conflict / Rejected / NoOp / ...) <── KvStore::apply_entry
//!
//!  client ──get/range──> server ──read_index──> KvStore::get / KvStore::range ──> KeyValue
//! ```
//!
//! Every key carries a version (writes since it was created, starting at 1), the index that
//! created it and the index that last changed it. Client sessions make a retried write
//! apply once; sessions, keys and values are bounded by [`KvConfig`], member addresses by
//! [`MEMBER_ADDRESSES_MAX`]. Snapshots ([`KvStore::snapshot_bytes`]) are deterministic,
//! versioned and checksummed, and carry the member address book.
//!
//! The store is also the state machine of an etcd v3 compatible API, with etcd's
//! semantics: a cluster-wide [revision](KvStore::revision) that every write changing keys
//! moves by one, keys carrying their create and mod revisions and a lease, transactions
//! ([`Write::Txn`]: compares, then puts, delete ranges, ranges and nested transactions),
//! leases ([`Write::LeaseGrant`], [`Write::LeaseRevoke`]), and a bounded history of
//! [`Event`]s that serves reads at past revisions ([`KvStore::range_at`]) and watches
//! ([`KvStore::events_since`]) until it is compacted ([`Write::Compact`], or by itself past
//! [`KvConfig::history_revisions_max`]). etcd's clients have no sessions: their writes use
//! [`Session::UNSESSIONED`].
//!
//! To run under the Raft driver (the `runtime` feature implements raft-runtime's
//! `StateMachine`), hand a [`SharedKvStore`] to `raft_runtime::Raft::new`
//! and keep a clone to serve reads.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use kv_store::{Command, KvConfig, KvStore, Response, Session, Write};
//! use raft_core::{Entry, EntryPayload, LogId, LogIndex, Term};
//!
//! let mut store = KvStore::new(KvConfig::default())?;
//! let put = Command {
//!     session: Session { client_id: 42, sequence: 1 },
//!     write: Write::Put {
//!         key: Bytes::from_static(b"greeting"),
//!         value: Bytes::from_static(b"hello"),
//!         expect_version: Some(0), // create only
//!     },
//! };
//! // The server proposes `put.encode()?`; here the entry commits at index 1.
//! let entry = Entry {
//!     log_id: LogId::new(Term(1), LogIndex(1)),
//!     payload: EntryPayload::Command(put.encode()?),
//! };
//! let Response::Written(result) = store.apply_entry(&entry) else { unreachable!() };
//! assert_eq!((result.index, result.version), (LogIndex(1), 1));
//!
//! let value = store.get(b"greeting").map(|found| found.value);
//! assert_eq!(value, Some(Bytes::from_static(b"hello")));
//!
//! // Snapshots restore to an identical state.
//! let snapshot = store.snapshot_bytes()?;
//! let mut replica = KvStore::new(KvConfig::default())?;
//! replica.restore_bytes(&snapshot, None)?;
//! assert_eq!(replica.snapshot_bytes()?, snapshot);
//! # Ok::<(), kv_store::Error>(())
//! ```

mod command;
mod config;
mod error;
mod history;
mod key_index;
mod lease;
mod mvcc;
mod range;
mod read;
mod response;
#[cfg(feature = "runtime")]
mod runtime;
mod session;
mod shared;
mod snapshot;
mod snapshot_legacy;
mod store;
#[cfg(test)]
mod test_support;
mod txn;
mod txn_check;

pub use command::{Command, Session, Write, decode_sharing, encode_sized};
pub use config::{
    HISTORY_BYTES_MAX_LIMIT, HISTORY_REVISIONS_MAX_LIMIT, KEY_BYTES_MAX_LIMIT, KvConfig,
    LEASES_MAX_LIMIT, MEMBER_ADDRESSES_MAX, RANGE_ENTRIES_MAX_LIMIT, SESSIONS_MAX_LIMIT,
    TXN_OPS_MAX_LIMIT, VALUE_BYTES_MAX_LIMIT,
};
pub use error::Error;
pub use lease::LEASE_TTL_SECONDS_MAX;
pub use mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Event,
    EventKind, LeaseInfo, PutRequest, PutResponse, RangeRequest, RangeResponse, SortOrder,
    SortTarget, TXN_NESTING_MAX, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
pub use range::KeyRange;
pub use response::{
    DeleteResult, KeyMeta, KeyValue, RangeResult, Rejection, Response, WriteResult,
};
pub use shared::{ApplyListener, SharedKvStore};
pub use snapshot::SNAPSHOT_FORMAT_VERSION;
pub use store::KvStore;
