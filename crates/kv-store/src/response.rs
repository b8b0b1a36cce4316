//! What the store answers.

use bytes::Bytes;
use raft_core::LogIndex;
use serde::{Deserialize, Serialize};

use crate::command::decode_exact;
use crate::error::Error;

/// The answer to one request, or to one applied log entry.
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
    /// The answer to a `Get`: the key, or `None` when absent.
    Value(Option<KeyValue>),
    /// The answer to a `Range`.
    Range(RangeResult),
    /// The entry was the leader's empty entry or a membership change: nothing to apply.
    NoOp,
    /// The command was refused; it changed nothing.
    Rejected(Rejection),
}

impl Response {
    /// Encodes the response (postcard) for the client/server protocol.
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

/// The result of an applied `Put`.
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

/// The result of an applied `Delete`.
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

/// The answer to a `Range`.
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
    /// A `Get` or `Range` reached the log; reads are served without it.
    #[error("reads are not applied through the log; send them as reads")]
    NotAWrite,
    /// A `Put` or `Delete` was sent as a read; writes must be proposed.
    #[error("writes must be proposed through the log")]
    NotARead,
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
    /// The store remembers no session for the client, and the write is not the first of a
    /// session (sequence 1): the session was evicted, so a retry cannot be told from a new
    /// write. The write was not applied; the client must start a new session (new client
    /// id) and find out by reading whether its earlier write took effect.
    #[error(
        "client {client_id} has no session (expired or never started) and sent sequence \
         {sequence}, not 1; start a new session"
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
