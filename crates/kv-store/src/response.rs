//! What the store answers.

use bytes::Bytes;
use raft_core::LogIndex;
use serde::{Deserialize, Serialize};

use crate::command::decode_exact;
use crate::error::Error;
use crate::mvcc::TxnResponse;

/// The answer to one applied log entry.
///
/// The variants' order is part of the snapshot format (sessions remember responses): new
/// variants go at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A `Put` was applied.
    Written(WriteResult),
    /// A `Delete` was applied (whether or not the key existed).
    Deleted(DeleteResult),
    /// A conditional write found another version than it expected and changed nothing.
    /// This is an application outcome, not a failure: the client reads and retries.
    Conflict {
        /// The key's version when the write applied; `None` when the key was absent.
        current_version: Option<u64>,
    },
    /// The entry was the leader's empty entry or a membership change: nothing to apply.
    NoOp,
    /// The command was refused; it changed nothing.
    Rejected(Rejection),
    /// A `SetMemberAddress` or `RemoveMemberAddress` was applied.
    MemberAddressUpdated {
        /// The log index it applied at.
        index: LogIndex,
    },
    /// A [`Write::Txn`](crate::Write::Txn) was applied (whichever branch ran).
    Txn {
        /// The store's revision after the transaction: a new one when it changed a key,
        /// the one before it otherwise (etcd's response header revision).
        revision: u64,
        /// The transaction's answer.
        result: TxnResponse,
    },
    /// A [`Write::Compact`](crate::Write::Compact) was applied: history before the
    /// requested revision is gone.
    Compacted {
        /// The store's revision (compaction does not change it), as etcd's response
        /// header carries it.
        revision: u64,
    },
    /// A [`Write::LeaseGrant`](crate::Write::LeaseGrant) was applied.
    LeaseGranted {
        /// The new lease's id.
        id: i64,
        /// Its time to live, in seconds.
        ttl_seconds: i64,
        /// The store's revision (granting does not change it).
        revision: u64,
    },
    /// A [`Write::LeaseRevoke`](crate::Write::LeaseRevoke) was applied: the lease and its
    /// keys are gone.
    LeaseRevoked {
        /// The store's revision after the revocation: a new one when it deleted keys.
        revision: u64,
    },
}

impl Response {
    /// Encodes the response (postcard), as a snapshot stores a session's last response.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if postcard fails.
    pub fn encode(&self) -> Result<Bytes, Error> {
        crate::command::encode_sized(self)
            .map(Bytes::from)
            .map_err(|source| Error::Encode { what: "response", source })
    }

    /// Decodes a response; trailing bytes are an error.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the bytes are not exactly one response.
    pub fn decode(bytes: &[u8]) -> Result<Response, Error> {
        decode_exact(bytes, "response")
    }
}

/// The result of an applied [`Write::Put`](crate::Write::Put).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResult {
    /// The log index the write applied at (the key's new `mod_index`).
    pub index: LogIndex,
    /// The key's version after the write (1 when it created the key).
    pub version: u64,
    /// The key's metadata before the write; `None` when the write created it. Values are
    /// left out so a remembered session response stays small.
    pub previous: Option<KeyMeta>,
}

/// The result of an applied [`Write::Delete`](crate::Write::Delete).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResult {
    /// The log index the delete applied at.
    pub index: LogIndex,
    /// The deleted key's metadata; `None` when the key did not exist.
    pub previous: Option<KeyMeta>,
}

/// A key's metadata, without its value.
///
/// The field order is part of the log's and the snapshot's encodings (session responses
/// carry it): new fields go at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    /// Writes to the key since it was created, counting the one that created it.
    pub version: u64,
    /// The log index of the write that created the key.
    pub create_index: LogIndex,
    /// The log index of the write that last changed the key.
    pub mod_index: LogIndex,
    /// The store revision of the write that created the key (etcd's `create_revision`).
    pub create_revision: u64,
    /// The store revision of the write that last changed the key (etcd's
    /// `mod_revision`).
    pub mod_revision: u64,
    /// The lease the key is attached to; 0 for none.
    pub lease: i64,
}

/// A key, its value and its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// Its version and indexes.
    pub meta: KeyMeta,
}

/// The answer to [`KvStore::range`](crate::KvStore::range).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResult {
    /// The matching keys in key order, at most the limit.
    pub entries: Vec<KeyValue>,
    /// Whether more keys match than were returned.
    pub more: bool,
}

/// Why a command was refused. Refusals are deterministic: every replica answers the same
/// entry with the same refusal, and none of them changes the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The entry's payload is not a command (garbage, or a newer client's format).
    #[error("entry {index} is not a kv-store command: {reason}")]
    Undecodable {
        /// The entry's log index.
        index: LogIndex,
        /// What the decoder said.
        reason: String,
    },
    /// The key is longer than the store's `key_bytes_max`.
    #[error("a key of {bytes} bytes exceeds the maximum of {max} bytes; use a shorter key")]
    KeyTooLarge {
        /// The key's length.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The value is longer than the store's `value_bytes_max`.
    #[error("a value of {bytes} bytes exceeds the maximum of {max} bytes; split the value")]
    ValueTooLarge {
        /// The value's length.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The session has a newer write than this one: the client moved on, so this is a
    /// late duplicate and was not applied.
    #[error(
        "client {client_id} sent sequence {sequence}, older than its last write {last_sequence}; \
         it was not applied"
    )]
    StaleSequence {
        /// The client.
        client_id: u64,
        /// The sequence number sent.
        sequence: u64,
        /// The session's latest sequence number.
        last_sequence: u64,
    },
    /// The store remembers no session for the client, and either the write is not the
    /// first of a session (sequence 1) or the client id is at or below the highest id the
    /// store ever evicted: the session was evicted, so a retry cannot be told from a new
    /// write. The write was not applied now; whether an earlier attempt applied is unknown.
    /// The client must start a new session (a newer client id) and find out by reading.
    #[error(
        "client {client_id} has no session (it expired, or never started) for sequence \
         {sequence}; the write's outcome is unknown; start a new session"
    )]
    SessionExpired {
        /// The client.
        client_id: u64,
        /// The sequence number sent.
        sequence: u64,
    },
    /// The entry is at or below the state machine's applied index: it was applied already.
    #[error("entry {index} was already applied (applied index {applied_index})")]
    AlreadyApplied {
        /// The entry's index.
        index: LogIndex,
        /// The state machine's applied index.
        applied_index: LogIndex,
    },
    /// The member address book is full: a `SetMemberAddress` for a new node was refused.
    #[error(
        "the member address book already holds the maximum of {max} addresses; remove the \
         addresses of members that left"
    )]
    TooManyMemberAddresses {
        /// The limit.
        max: u64,
    },
    /// The revision asked for was compacted: its history is gone (etcd's "mvcc: required
    /// revision has been compacted"). A compaction at or below the compacted revision is
    /// refused the same way.
    #[error(
        "revision {requested} has been compacted (history starts at revision {compacted}); \
         read at revision {compacted} or later, or at the current revision"
    )]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The store's compact revision.
        compacted: u64,
    },
    /// The revision asked for is newer than the store's (etcd's "mvcc: required revision
    /// is a future revision").
    #[error(
        "revision {requested} is a future revision (the current revision is {current}); \
         ask for revision {current} or earlier"
    )]
    FutureRevision {
        /// The revision asked for.
        requested: u64,
        /// The store's revision.
        current: u64,
    },
    /// No lease has this id: it was never granted, or it was revoked or expired.
    #[error("lease {id} not found; grant a new lease")]
    LeaseNotFound {
        /// The lease id.
        id: i64,
    },
    /// A lease with this id exists already.
    #[error("lease {id} already exists; grant with another id")]
    LeaseExists {
        /// The lease id.
        id: i64,
    },
    /// A put with `ignore_value` or `ignore_lease` names a key that does not exist (etcd's
    /// "key not found").
    #[error("key not found: ignore_value and ignore_lease need an existing key; put a value")]
    KeyNotFound,
    /// A transaction writes one key twice: two puts of it, or a put and a delete range
    /// that holds it, in the same branch or in a branch and a nested transaction (etcd's
    /// "duplicate key given in txn request"). Puts in the two branches of one nested
    /// transaction do not count, since only one of them runs.
    #[error("duplicate key given in txn request: {key:?}; write each key at most once")]
    DuplicateKey {
        /// The key written twice.
        key: Bytes,
    },
    /// A transaction has more operations than the store's `txn_ops_max` (etcd's "too many
    /// operations in txn request"). Counted as etcd: per level the most of its compares,
    /// success and failure operations, and a nested transaction gets what its parent left.
    #[error(
        "too many operations in txn request: {ops} at one level, over the {max} allowed \
         there; split the transaction"
    )]
    TooManyOps {
        /// The operations counted at the level that went over.
        ops: u64,
        /// What that level was allowed.
        max: u64,
    },
    /// The store already holds its `leases_max` leases.
    #[error("the store already holds the maximum of {max} leases; revoke unused leases")]
    TooManyLeases {
        /// The limit.
        max: u64,
    },
    /// A lease grant with an id or a time to live the store does not accept.
    #[error("invalid lease grant: {reason}")]
    InvalidLease {
        /// What was wrong.
        reason: String,
    },
    /// A transaction nests transactions deeper than [`TXN_NESTING_MAX`](crate::TXN_NESTING_MAX).
    #[error("transactions nested {depth} deep, over the maximum of {max}; flatten the transaction")]
    TxnNestedTooDeep {
        /// The depth reached (the outer transaction is depth 1).
        depth: u64,
        /// The limit.
        max: u64,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn response_survives_encode_and_decode() {
        let response = Response::Written(WriteResult {
            index: LogIndex(9),
            version: 2,
            previous: Some(KeyMeta {
                version: 1,
                create_index: LogIndex(3),
                mod_index: LogIndex(3),
                create_revision: 2,
                mod_revision: 2,
                lease: 7,
            }),
        });
        assert_eq!(Response::decode(&response.encode().unwrap()).unwrap(), response);
    }

    #[test]
    fn garbage_response_is_a_decode_error() {
        let error = Response::decode(&[0xff, 0xff, 0xff]).unwrap_err();
        assert!(matches!(error, Error::Decode { what: "response", .. }), "{error}");
    }
}
