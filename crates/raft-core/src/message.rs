//! The messages nodes exchange.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::snapshot::SnapshotMeta;
use crate::types::{Entry, LogId, LogIndex, NodeId, Term};

/// A message between two nodes. `term` is the sender's term, except in a pre-vote request
/// (the term the sender would campaign in) and a granted pre-vote response (that same term).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// The sender's term (see the type's documentation for the pre-vote exception).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The content of a [`Message`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// RequestVote, or a PreVote probe, as `campaign` says.
    VoteRequest {
        /// Which kind of campaign asks.
        campaign: Campaign,
        /// The candidate's last log entry, to check it is at least as up to date (§5.4.1).
        last_log_id: LogId,
    },
    /// The answer to a [`MessageBody::VoteRequest`].
    VoteResponse {
        /// The campaign of the request answered.
        campaign: Campaign,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// AppendEntries: a batch of entries following `prev_log_id`.
    AppendRequest {
        /// The entry just before `entries`; the follower must hold it to accept them.
        prev_log_id: LogId,
        /// The entries, bounded by the leader's `append_bytes_max`; may be empty.
        entries: Vec<Entry>,
        /// The leader's commit index.
        leader_commit: LogIndex,
        /// Whether the leader waits for the answer when the append carries no entries. A
        /// follower always answers an append with entries, and a rejection; it answers a
        /// successful empty append only when this is set. The leader clears it on an
        /// append that only brings a new commit index, whose answer would tell it nothing
        /// (its window does not count such appends, and heartbeats keep it informed that
        /// the follower is alive); it sets it on probes, which wait for their answer.
        answer_wanted: bool,
    },
    /// The answer to a [`MessageBody::AppendRequest`].
    AppendResponse {
        /// Accepted or rejected.
        result: AppendResult,
    },
    /// The leader's periodic proof of life. It carries no log position, so it cannot be
    /// rejected by a follower whose log is still catching up.
    Heartbeat {
        /// `min(leader commit, follower's match index)`: safe for the follower to commit,
        /// because its log matches the leader's up to its match index.
        commit_index: LogIndex,
        /// The leader's heartbeat round, echoed back so the leader knows which of its
        /// heartbeats a majority answered (to confirm reads and leases).
        round: u64,
    },
    /// The answer to a [`MessageBody::Heartbeat`].
    HeartbeatResponse {
        /// The round of the heartbeat answered (0 when answering a stale leader).
        round: u64,
    },
    /// The leader tells an up-to-date follower to start an election at once (leadership
    /// transfer, dissertation §3.10).
    TimeoutNow,
    /// One chunk of the leader's snapshot, for a follower that needs entries the leader
    /// compacted away.
    InstallSnapshot {
        /// What the snapshot covers.
        meta: SnapshotMeta,
        /// Where in the snapshot's bytes this chunk starts.
        offset: u64,
        /// The snapshot's whole size.
        total_bytes: u64,
        /// The chunk, at most the leader's `snapshot_chunk_bytes`.
        data: Bytes,
    },
    /// The answer to a snapshot chunk.
    InstallSnapshotResponse {
        /// The snapshot's last entry, naming which snapshot this answers.
        last_log_id: LogId,
        /// How many bytes of it the follower holds, contiguously from the start; equal to
        /// the total when it is installed (or was not needed).
        received_bytes: u64,
    },
    /// A follower asks the leader for a read index on behalf of one of its clients.
    ReadIndexRequest {
        /// The follower's id for the read, echoed in the response.
        read_id: ReadId,
    },
    /// The leader's answer: a read that starts now is linearizable once the follower has
    /// applied up to `read_index`.
    ReadIndexResponse {
        /// The id from the request.
        read_id: ReadId,
        /// The leader's commit index when the read was registered, confirmed by a quorum.
        read_index: LogIndex,
    },
}

/// Why a node asks for votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Campaign {
    /// A PreVote probe (dissertation §9.6): asks whether the voters would vote for the
    /// sender in the next term, changing no term and recording no vote, so a node that
    /// cannot win (partitioned, or behind) does not disturb the cluster.
    PreVote,
    /// An election after an election timeout, in a new term of the candidate's own.
    Election,
    /// An election the leader asked for (TimeoutNow, leadership transfer): voters answer
    /// even while they still follow that leader (dissertation §3.10).
    Transfer,
}

impl Campaign {
    /// Whether this is a pre-vote, which changes no durable state.
    #[must_use]
    pub fn is_pre_vote(self) -> bool {
        self == Campaign::PreVote
    }
}

/// The caller's name for one linearizable read, echoed in its [`crate::ReadState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReadId(pub u64);

/// The outcome of an AppendEntries request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendResult {
    /// The follower's log matches the leader's up to `match_index`, durably.
    Success {
        /// The last index covered by the request (`prev_log_id.index + entries.len()`).
        match_index: LogIndex,
    },
    /// The follower does not hold `prev_log_id`.
    Reject {
        /// The `prev_log_id.index` of the rejected request, so stale rejections are ignored.
        rejected_index: LogIndex,
        /// Where the leader should look next.
        hint: ConflictHint,
    },
}

/// A rejecting follower's hint, so the leader skips a whole term per round trip instead of
/// one entry (the "fast back-up" of the Raft paper, §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConflictHint {
    /// The follower's log ends before the requested index: retry after its last entry.
    LogTooShort {
        /// The follower's last index.
        last_index: LogIndex,
    },
    /// The follower has an entry of another term at the requested index.
    TermMismatch {
        /// The term of the follower's entry at the rejected index.
        conflict_term: Term,
        /// The first index the follower holds of `conflict_term`.
        first_index_of_term: LogIndex,
    },
}

impl MessageBody {
    /// A short name for the message kind, for logs and message counters.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            MessageBody::VoteRequest { campaign: Campaign::PreVote, .. } => "pre_vote_request",
            MessageBody::VoteRequest {
                campaign: Campaign::Election | Campaign::Transfer, ..
            } => "vote_request",
            MessageBody::VoteResponse { campaign: Campaign::PreVote, .. } => "pre_vote_response",
            MessageBody::VoteResponse {
                campaign: Campaign::Election | Campaign::Transfer, ..
            } => "vote_response",
            MessageBody::AppendRequest { .. } => "append_request",
            MessageBody::AppendResponse { .. } => "append_response",
            MessageBody::Heartbeat { .. } => "heartbeat",
            MessageBody::HeartbeatResponse { .. } => "heartbeat_response",
            MessageBody::TimeoutNow => "timeout_now",
            MessageBody::InstallSnapshot { .. } => "install_snapshot",
            MessageBody::InstallSnapshotResponse { .. } => "install_snapshot_response",
            MessageBody::ReadIndexRequest { .. } => "read_index_request",
            MessageBody::ReadIndexResponse { .. } => "read_index_response",
        }
    }
}
