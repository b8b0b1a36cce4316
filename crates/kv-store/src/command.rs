//! Requests and the commands that carry writes through the log.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;

use crate::error::Error;

/// What a client asks of the store.
///
/// Writes (`Put`, `Delete`) go through the log inside a [`Command`]; reads (`Get`,
/// `Range`) are served by the server from [`KvStore::read`](crate::KvStore::read) after
/// a ReadIndex round, never through the log. All four share one enum so a client/server
/// protocol can carry any of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
        /// `None`: write unconditionally. `Some(0)`: only if the key does not exist.
        /// `Some(n)`: only if the key's current version is `n` (compare-and-set).
        expect_version: Option<u64>,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: Bytes,
        /// `None`: delete unconditionally (deleting a missing key succeeds and changes
        /// nothing). `Some(0)`: only if the key does not exist (a no-op that checks).
        /// `Some(n)`: only if the key's current version is `n`.
        expect_version: Option<u64>,
    },
    /// Reads one key.
    Get {
        /// The key.
        key: Bytes,
    },
    /// Reads the keys starting with `prefix`, in key order.
    Range {
        /// The prefix; empty means every key.
        prefix: Bytes,
        /// The most entries to return; `None`, or more than the store's
        /// `range_entries_max`, means `range_entries_max`.
        limit: Option<NonZeroU32>,
    },
}

impl Request {
    /// Whether this request changes the store (and so must go through the log).
    #[must_use]
    pub fn is_write(&self) -> bool {
        matches!(self, Request::Put { .. } | Request::Delete { .. })
    }

    /// The key (or, for `Range`, the prefix) the request is about.
    #[must_use]
    pub fn key(&self) -> &Bytes {
        match self {
            Request::Put { key, .. } | Request::Delete { key, .. } | Request::Get { key } => key,
            Request::Range { prefix, .. } => prefix,
        }
    }
}

/// A write as proposed to the log: the request and the client session it belongs to.
///
/// A client numbers its writes `1, 2, 3, ...` within its session and sends one at a time,
/// retrying the same `(client_id, sequence)` until it gets an answer; the state machine
/// applies each sequence number at most once and answers a retry with the original
/// response.
///
/// Encode it with [`Command::encode`] into the payload for
/// `raft_runtime::RaftHandle::propose`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The client's session id, chosen at random by the client (so two clients never
    /// share one).
    pub client_id: u64,
    /// The write's number in the session, starting at 1.
    pub sequence: u64,
    /// The write. A read proposed through the log is answered with
    /// [`Rejection::NotAWrite`](crate::Rejection::NotAWrite).
    pub request: Request,
}

impl Command {
    /// Encodes the command (postcard) as a Raft proposal payload.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if postcard fails (it does not for these types in practice).
    pub fn encode(&self) -> Result<Bytes, Error> {
        postcard::to_allocvec(self)
            .map(Bytes::from)
            .map_err(|source| Error::Encode { what: "command", source })
    }

    /// Decodes a command from a proposal payload; trailing bytes are an error, so exactly
    /// one encoding is accepted.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the bytes are not exactly one command.
    pub fn decode(bytes: &[u8]) -> Result<Command, Error> {
        decode_exact(bytes, "command")
    }
}

/// Decodes exactly one `T` from `bytes` with postcard.
pub(crate) fn decode_exact<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, Error> {
    let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|error| Error::Decode {
        what,
        bytes: bytes.len(),
        reason: error.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(Error::Decode {
            what,
            bytes: bytes.len(),
            reason: format!("{} trailing bytes after the {what}", rest.len()),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn put() -> Command {
        Command {
            client_id: 7,
            sequence: 3,
            request: Request::Put {
                key: Bytes::from_static(b"key"),
                value: Bytes::from_static(b"value"),
                expect_version: Some(2),
            },
        }
    }

    #[test]
    fn command_survives_encode_and_decode() {
        let command = put();
        assert_eq!(Command::decode(&command.encode().unwrap()).unwrap(), command);
    }

    #[test]
    fn trailing_bytes_after_a_command_are_refused() {
        let mut bytes = put().encode().unwrap().to_vec();
        bytes.push(0);
        let error = Command::decode(&bytes).unwrap_err();
        assert!(matches!(error, Error::Decode { what: "command", .. }), "{error}");
    }

    #[test]
    fn truncated_command_is_refused() {
        let bytes = put().encode().unwrap();
        let error = Command::decode(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(matches!(error, Error::Decode { .. }), "{error}");
    }

    #[test]
    fn only_put_and_delete_are_writes() {
        let key = Bytes::from_static(b"k");
        assert!(Request::Delete { key: key.clone(), expect_version: None }.is_write());
        assert!(!Request::Get { key: key.clone() }.is_write());
        assert!(!Request::Range { prefix: key, limit: None }.is_write());
    }
}
