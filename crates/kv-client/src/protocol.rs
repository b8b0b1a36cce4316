//! The wire protocol between `kv-client` and `kv-server`: one postcard-encoded [`Request`]
//! per QUIC stream, answered by one [`Response`].
//!
//! The protocol speaks kv-store's vocabulary: a write is a [`kv_store::Command`] (a
//! [`Write`] under a [`Session`]) that the server proposes as it is, a read answers with
//! kv-store's [`KeyValue`], and nodes and indexes are raft-core's [`NodeId`], [`LogIndex`],
//! [`Term`] and [`Role`]. [`ServerError`] is the one error vocabulary: the server turns its
//! refusals into it here (`From` impls), and the client turns it into
//! [`Error`](crate::Error) in one place.
//!
//! Versioned by [`PROTOCOL_VERSION`]; the enums only grow at the end, so an old client
//! still decodes a new server's answers to old requests.

use std::net::SocketAddr;

use bytes::Bytes;
pub use kv_store::{Command, KeyValue, Session, Write};
use kv_store::{Rejection, Response as Applied};
use raft_core::{LogIndex, NodeId, Role, Term};
use serde::{Deserialize, Serialize};

/// A client id for a session starting now: [`Session::client_id_at`] with the wall clock
/// and random bits, so that it lies above every session the store evicted before.
#[must_use]
pub fn new_session_client_id() -> u64 {
    let unix_seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    Session::client_id_at(unix_seconds, rand::random())
}

/// The request/response format's version. 2: writes carry kv-store's [`Command`], and ids
/// and indexes are typed. 3: a key's metadata ([`KeyValue`]'s `meta`) also carries its
/// create and mod revisions and its lease, and [`Request::Apply`] and [`Request::Lease`]
/// serve the etcd API's forwarding.
pub const PROTOCOL_VERSION: u32 = 3;

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

/// A request to a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// A write (put, compare-and-set, delete) under its session. The server proposes
    /// exactly this command; a retry resends it unchanged, so it applies at most once.
    /// Member addresses change only through [`Request::MemberAdd`].
    Write(Command),
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
        id: NodeId,
        /// Its QUIC address, `HOST:PORT`.
        addr: String,
        /// Stop at learner.
        learner: bool,
    },
    /// Removes node `id` (voter or learner).
    MemberRemove {
        /// The node to remove.
        id: NodeId,
    },
    /// Hands leadership to `target`, or to the most up-to-date other voter.
    LeaderTransfer {
        /// The node to hand leadership to.
        target: Option<NodeId>,
    },
    /// Makes the answering node snapshot its state machine and compact its log now.
    Snapshot,
    /// A [`Request::Write`] the client waits for at most `timeout_ms` milliseconds from
    /// when the node receives it: once that passed the node no longer proposes it (the
    /// client gave up, and a late proposal would only add work and an entry nobody reads).
    /// A write already proposed still commits or not as Raft decides.
    WriteWithin {
        /// The write under its session, as for [`Request::Write`].
        command: Command,
        /// How long the client waits for the answer, in milliseconds.
        timeout_ms: u32,
    },
    /// Any user write (etcd's transactions, compactions and leases included), proposed
    /// like [`Request::WriteWithin`] and answered with the state machine's own response
    /// ([`Response::Applied`]): how a follower's etcd API forwards writes to the leader.
    Apply {
        /// The write under its session.
        command: Command,
        /// How long the client waits for the answer, in milliseconds.
        timeout_ms: u32,
    },
    /// Asks the leader, which alone counts leases down, how long lease `id` has left.
    Lease {
        /// The lease.
        id: i64,
        /// Restart the lease's countdown from its full time to live first (etcd's
        /// keep-alive).
        keep_alive: bool,
    },
}

impl Request {
    /// A short name for logs and metrics.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Write(command) | Request::WriteWithin { command, .. } => command.write.kind(),
            Request::Get { .. } => "get",
            Request::Range { .. } => "range",
            Request::Status => "status",
            Request::MemberList => "member_list",
            Request::MemberAdd { .. } => "member_add",
            Request::MemberRemove { .. } => "member_remove",
            Request::LeaderTransfer { .. } => "leader_transfer",
            Request::Snapshot => "snapshot",
            Request::Apply { command, .. } => command.write.kind(),
            Request::Lease { keep_alive: true, .. } => "lease_keep_alive",
            Request::Lease { keep_alive: false, .. } => "lease_time_to_live",
        }
    }
}

/// What a committed write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOutcome {
    /// The log index the write committed at.
    pub index: LogIndex,
    /// The key's version after the write (0 after a delete).
    pub version: u64,
    /// Whether the key existed before the write.
    pub existed: bool,
    /// The leader that committed it.
    pub leader: NodeId,
}

impl WriteOutcome {
    /// What the state machine's answer to a user write means to the client: the outcome,
    /// or the refusal ([`ServerError::Conflict`] for a failed version check).
    ///
    /// # Errors
    ///
    /// The [`ServerError`] the answer amounts to.
    pub fn from_applied(applied: Applied, leader: NodeId) -> Result<WriteOutcome, ServerError> {
        match applied {
            Applied::Written(written) => Ok(WriteOutcome {
                index: written.index,
                version: written.version,
                existed: written.previous.is_some(),
                leader,
            }),
            Applied::Deleted(deleted) => Ok(WriteOutcome {
                index: deleted.index,
                version: 0,
                existed: deleted.previous.is_some(),
                leader,
            }),
            Applied::Conflict { current_version } => Err(ServerError::Conflict { current_version }),
            Applied::Rejected(rejection) => Err(rejection.into()),
            // The etcd writes (transactions, compaction, leases) have no answer in this
            // protocol: their clients speak the etcd API.
            Applied::NoOp
            | Applied::MemberAddressUpdated { .. }
            | Applied::Txn { .. }
            | Applied::Compacted { .. }
            | Applied::LeaseGranted { .. }
            | Applied::LeaseRevoked { .. } => Err(ServerError::Internal {
                reason: format!("a user write was answered with {applied:?}"),
            }),
        }
    }
}

/// A node's state, for `kvctl status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's id.
    pub id: NodeId,
    /// Its Raft role.
    pub role: Role,
    /// Whether it is a learner (it replicates but does not vote).
    pub learner: bool,
    /// Its current term.
    pub term: Term,
    /// The leader it follows, if known.
    pub leader: Option<NodeId>,
    /// The highest index it knows is committed.
    pub commit_index: LogIndex,
    /// The highest index its state machine applied.
    pub applied_index: LogIndex,
    /// Its first log index (entries before it are in the snapshot).
    pub log_first_index: LogIndex,
    /// Its last log index.
    pub log_last_index: LogIndex,
    /// The last index its snapshot covers (0: none).
    pub snapshot_index: LogIndex,
    /// Its snapshot's size in bytes.
    pub snapshot_bytes: u64,
    /// The number of keys it holds.
    pub keys: u64,
}

impl NodeStatus {
    /// The role as `kvctl status` shows it: `leader`, `follower`, `candidate`,
    /// `pre_candidate`, or `learner` for a learner whatever its role.
    #[must_use]
    pub fn role_name(&self) -> &'static str {
        if self.learner {
            return "learner";
        }
        match self.role {
            Role::Follower => "follower",
            Role::PreCandidate => "pre_candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// A member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's id.
    pub id: NodeId,
    /// Its QUIC address, if known.
    pub addr: Option<SocketAddr>,
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
        index: LogIndex,
    },
    /// A range's answer.
    Range {
        /// The keys, in order.
        entries: Vec<KeyValue>,
        /// More keys matched than `limit`.
        more: bool,
        /// The index the read reflects.
        index: LogIndex,
    },
    /// The node's state.
    Status(NodeStatus),
    /// The members and the leader.
    Members {
        /// The voters and learners.
        members: Vec<Member>,
        /// The current leader.
        leader: Option<NodeId>,
    },
    /// An administrative request completed.
    Done {
        /// The leader (after a transfer: the new one).
        leader: Option<NodeId>,
        /// The log index it reached (membership entry, snapshot index).
        index: LogIndex,
    },
    /// The request failed.
    Error(ServerError),
    /// The state machine's answer to a [`Request::Apply`].
    Applied {
        /// What applying the write answered (a refusal included).
        response: Applied,
        /// The leader that committed it.
        leader: NodeId,
    },
    /// The answer to a [`Request::Lease`].
    Lease(LeaseTtl),
}

/// How long a lease has left, as its leader counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTtl {
    /// The lease.
    pub id: i64,
    /// The time to live it was granted with, in seconds (0 when it does not exist).
    pub granted_seconds: i64,
    /// The seconds left before the leader revokes it, rounded up; -1 when the lease does
    /// not exist (expired, revoked or never granted), as etcd answers.
    pub remaining_seconds: i64,
}

/// Why a node could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerError {
    /// Only the leader does this; `leader` is who the node believes leads.
    NotLeader {
        /// The leader's id, if known.
        leader: Option<NodeId>,
        /// The leader's address, if known.
        addr: Option<SocketAddr>,
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

impl From<Rejection> for ServerError {
    /// A state machine refusal, as the client sees it.
    fn from(rejection: Rejection) -> ServerError {
        match rejection {
            Rejection::KeyTooLarge { bytes, max } => {
                ServerError::TooLarge { what: "key".to_owned(), bytes, max }
            }
            Rejection::ValueTooLarge { bytes, max } => {
                ServerError::TooLarge { what: "value".to_owned(), bytes, max }
            }
            Rejection::StaleSequence { .. } | Rejection::SessionExpired { .. } => {
                ServerError::SessionExpired { reason: rejection.to_string() }
            }
            other => ServerError::Invalid { reason: other.to_string() },
        }
    }
}

impl From<kv_store::Error> for ServerError {
    /// A request the state machine's limits refuse before it is proposed, or a store
    /// failure.
    fn from(error: kv_store::Error) -> ServerError {
        match error {
            kv_store::Error::CommandRefused { source } => source.into(),
            kv_store::Error::Encode { .. } => ServerError::Internal { reason: error.to_string() },
            other => ServerError::Invalid { reason: other.to_string() },
        }
    }
}

/// Encodes a request or response with postcard.
///
/// # Errors
///
/// Only if serialization fails, which the types here never do.
pub fn encode<T: Serialize>(value: &T) -> Result<Bytes, postcard::Error> {
    kv_store::encode_sized(value).map(Bytes::from)
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
        let request = Request::Write(Command {
            session: Session { client_id: 7, sequence: 9 },
            write: Write::Put {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
                expect_version: Some(3),
            },
        });
        let bytes = encode(&request).unwrap();
        assert_eq!(decode::<Request>(&bytes).unwrap(), request);
    }

    #[test]
    fn a_write_request_carries_the_command_s_own_encoding() {
        let command = Command {
            session: Session { client_id: 7, sequence: 9 },
            write: Write::Delete { key: Bytes::from_static(b"k"), expect_version: None },
        };
        let request = encode(&Request::Write(command.clone())).unwrap();
        assert_eq!(&request[1..], command.encode().unwrap().as_ref());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<Request>(&[0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode::<Response>(&[]).is_err());
    }

    #[test]
    fn size_refusals_name_what_was_too_large() {
        let refusal = ServerError::from(Rejection::ValueTooLarge { bytes: 5, max: 4 });
        let expected = ServerError::TooLarge { what: "value".to_owned(), bytes: 5, max: 4 };
        assert_eq!(refusal, expected);
    }

    #[test]
    fn a_conflict_is_a_refusal_and_a_put_an_outcome() {
        let conflict = Applied::Conflict { current_version: Some(2) };
        let refused = WriteOutcome::from_applied(conflict, NodeId(1));
        assert_eq!(refused, Err(ServerError::Conflict { current_version: Some(2) }));
        let written = Applied::Written(kv_store::WriteResult {
            index: LogIndex(4),
            version: 1,
            previous: None,
        });
        let outcome = WriteOutcome::from_applied(written, NodeId(1)).unwrap();
        assert_eq!((outcome.index, outcome.existed), (LogIndex(4), false));
    }
}
