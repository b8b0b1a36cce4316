//! The wire protocol between `kv-client` and `kv-server`: one postcard-encoded [`Request`]
//! per QUIC stream, answered by one [`Response`].
//!
//! Versioned by [`PROTOCOL_VERSION`] through the transport's handshake; the enums only grow
//! at the end, so an old client still decodes a new server's answers to old requests.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The request/response format's version.
pub const PROTOCOL_VERSION: u32 = 1;

/// Which node may answer a read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Consistency {
    /// Linearizable: the leader confirms its leadership with a heartbeat round (ReadIndex)
    /// and the answering node has applied everything committed before the read began.
    #[default]
    Linearizable,
    /// Whatever the answering node has applied: possibly stale, never torn.
    Stale,
}

/// A client session's position: a retried write with the same client id and sequence is
/// applied once, and answered with the first outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Session {
    /// The client's id, random per session.
    pub client_id: u64,
    /// The write's number within the session, from 1, one more per new write.
    pub sequence: u64,
}

/// A request to a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Writes `value` at `key`; with `expect_version`, only if the key's version is that
    /// (0: only if the key does not exist).
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// The version the key must have for the write to happen.
        expect_version: Option<u64>,
        /// Exactly-once bookkeeping.
        session: Session,
    },
    /// Deletes `key`; with `expect_version`, only if the key's version is that.
    Delete {
        /// The key.
        key: Bytes,
        /// The version the key must have for the delete to happen.
        expect_version: Option<u64>,
        /// Exactly-once bookkeeping.
        session: Session,
    },
    /// Reads one key.
    Get {
        /// The key.
        key: Bytes,
        /// Who may answer.
        consistency: Consistency,
    },
    /// Reads the keys starting with `prefix`, in key order, at most `limit` of them.
    Range {
        /// The prefix (empty: every key).
        prefix: Bytes,
        /// The most keys returned.
        limit: u32,
        /// Who may answer.
        consistency: Consistency,
    },
    /// The answering node's own state.
    Status,
    /// The cluster's members with their addresses.
    MemberList,
    /// Adds node `id` at `addr` as a learner, and then (unless `learner`) promotes it to
    /// voter once it has caught up.
    MemberAdd {
        /// The new node's id.
        id: u64,
        /// Its QUIC address, `HOST:PORT`.
        addr: String,
        /// Stop at learner.
        learner: bool,
    },
    /// Removes node `id` (voter or learner).
    MemberRemove {
        /// The node to remove.
        id: u64,
    },
    /// Hands leadership to `target`, or to the most up-to-date other voter.
    LeaderTransfer {
        /// The node to hand leadership to.
        target: Option<u64>,
    },
    /// Makes the answering node snapshot its state machine and compact its log now.
    Snapshot,
}

impl Request {
    /// A short name for logs and metrics.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Put { expect_version: None, .. } => "put",
            Request::Put { expect_version: Some(_), .. } => "cas",
            Request::Delete { .. } => "delete",
            Request::Get { .. } => "get",
            Request::Range { .. } => "range",
            Request::Status => "status",
            Request::MemberList => "member_list",
            Request::MemberAdd { .. } => "member_add",
            Request::MemberRemove { .. } => "member_remove",
            Request::LeaderTransfer { .. } => "leader_transfer",
            Request::Snapshot => "snapshot",
        }
    }
}

/// A key with its value and version bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// Writes since the key was created, from 1.
    pub version: u64,
    /// The log index of the write that created the key.
    pub create_index: u64,
    /// The log index of the write that last changed it.
    pub mod_index: u64,
}

/// What a committed write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOutcome {
    /// The log index the write committed at.
    pub index: u64,
    /// The key's version after the write (0 after a delete).
    pub version: u64,
    /// Whether the key existed before the write.
    pub existed: bool,
    /// The leader that committed it.
    pub leader: u64,
}

/// A node's state, for `kvctl status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's id.
    pub id: u64,
    /// `leader`, `follower`, `candidate`, `pre_candidate` or `learner`.
    pub role: String,
    /// Its current term.
    pub term: u64,
    /// The leader it follows, if known.
    pub leader: Option<u64>,
    /// The highest index it knows is committed.
    pub commit_index: u64,
    /// The highest index its state machine applied.
    pub applied_index: u64,
    /// Its first log index (entries before it are in the snapshot).
    pub log_first_index: u64,
    /// Its last log index.
    pub log_last_index: u64,
    /// The last index its snapshot covers (0: none).
    pub snapshot_index: u64,
    /// Its snapshot's size in bytes.
    pub snapshot_bytes: u64,
    /// The number of keys it holds.
    pub keys: u64,
}

/// A member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's id.
    pub id: u64,
    /// Its QUIC address, if known.
    pub addr: Option<String>,
    /// Voter (`true`) or learner.
    pub voter: bool,
}

/// An answer from a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A put or delete committed (or was refused by its version check: see
    /// [`ServerError::Conflict`]).
    Written(WriteOutcome),
    /// A get's answer: the key, or `None` when it does not exist.
    Value {
        /// The key's value and versions.
        found: Option<KeyValue>,
        /// The index the read reflects.
        index: u64,
    },
    /// A range's answer.
    Range {
        /// The keys, in order.
        entries: Vec<KeyValue>,
        /// More keys matched than `limit`.
        more: bool,
        /// The index the read reflects.
        index: u64,
    },
    /// The node's state.
    Status(NodeStatus),
    /// The members and the leader.
    Members {
        /// The voters and learners.
        members: Vec<Member>,
        /// The current leader.
        leader: Option<u64>,
    },
    /// An administrative request completed.
    Done {
        /// The leader (after a transfer: the new one).
        leader: Option<u64>,
        /// The log index it reached (membership entry, snapshot index).
        index: u64,
    },
    /// The request failed.
    Error(ServerError),
}

/// Why a node could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerError {
    /// Only the leader does this; `leader` is who the node believes leads.
    NotLeader {
        /// The leader's id, if known.
        leader: Option<u64>,
        /// The leader's address, if known.
        addr: Option<String>,
    },
    /// The version check failed; the key's current version (`None`: it does not exist).
    Conflict {
        /// The key's version now.
        current_version: Option<u64>,
    },
    /// A key or value over the limit.
    TooLarge {
        /// `key` or `value`.
        what: String,
        /// Its size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The request is malformed or not allowed.
    Invalid {
        /// Why.
        reason: String,
    },
    /// The node cannot serve now (no leader yet, a transfer in progress, shutting down):
    /// retry shortly, possibly elsewhere.
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The write may or may not have been committed (leadership changed while it was in
    /// flight): retry with the same session sequence, which applies it at most once.
    OutcomeUnknown {
        /// Why.
        reason: String,
    },
    /// The session no longer remembers this write's sequence (it was evicted or a later
    /// write was seen): the write's outcome cannot be reported.
    SessionExpired {
        /// Why.
        reason: String,
    },
    /// The node failed in a way the client cannot fix.
    Internal {
        /// Why.
        reason: String,
    },
}

/// Encodes a request or response with postcard.
///
/// # Errors
///
/// Only if serialization fails, which the types here never do.
pub fn encode<T: Serialize>(value: &T) -> Result<Bytes, postcard::Error> {
    postcard::to_allocvec(value).map(Bytes::from)
}

/// Decodes a request or response.
///
/// # Errors
///
/// When the bytes are not a valid encoding of `T`.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let request = Request::Put {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"v"),
            expect_version: Some(3),
            session: Session { client_id: 7, sequence: 9 },
        };
        let bytes = encode(&request).unwrap();
        assert_eq!(decode::<Request>(&bytes).unwrap(), request);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<Request>(&[0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode::<Response>(&[]).is_err());
    }
}
