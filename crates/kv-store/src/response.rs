//! What the store answers.

use bytes::Bytes;
use raft_core::LogIndex;
use serde::{Deserialize, Serialize};

use crate::command::decode_exact;
use crate::error::Error;

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
}

impl Response {
    /// Encodes the response (postcard), as a snapshot stores a session's last response.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if postcard fails.
    pub fn encode(&self) -> Result<Bytes, Error> {
        postcard::to_allocvec(self)
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    /// Writes to the key since it was created, counting the one that created it.
    pub version: u64,
    /// The log index of the write that created the key.
    pub create_index: LogIndex,
    /// The log index of the write that last changed the key.
    pub mod_index: LogIndex,
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
