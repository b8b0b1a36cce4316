//! The runtime's error type: the driver's own failures, wrapping the core's refusals.

use raft_core::{LogId, NodeId};

use crate::storage::ErrorSource;

/// Everything a running node can refuse or fail with.
///
/// [`Error::Core`] carries the consensus state machine's own answers (`NotLeader`,
/// `TransferInProgress`, `TooManyPendingReads`, invalid membership changes, ...): *refused*
/// means "try elsewhere or later". The other variants are the driver's: storage and
/// state-machine failures (*fatal*: the node stopped), a stopped node, a proposal whose
/// outcome is unknown, and back-pressure.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The consensus state machine refused the request or the state handed to it.
    #[error(transparent)]
    Core(#[from] raft_core::Error),
    /// A [`crate::RuntimeConfig`] field breaks a rule.
    #[error("invalid runtime config: {field} = {value} {rule}")]
    InvalidConfig {
        /// The field's name.
        field: &'static str,
        /// The offending value.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// Durable storage failed. Fatal: the node stopped, and a failed write is never retried
    /// (after a failed fsync the disk's contents are unknown).
    #[error("storage failed while {operation}; the node stopped: repair storage, then restart it")]
    Storage {
        /// What the store was doing, with the values involved ("persisting entries 5..=9").
        operation: String,
        /// The underlying failure.
        #[source]
        source: ErrorSource,
    },
    /// The application's state machine failed to snapshot or restore itself. Restoring is
    /// fatal (the node stopped: its application state is unknown); a failed snapshot is not.
    #[error("the state machine failed while {operation}")]
    StateMachine {
        /// What the state machine was doing, with the values involved.
        operation: String,
        /// The underlying failure.
        #[source]
        source: ErrorSource,
    },
    /// The node's task has stopped (shut down, or a fatal error); its handle refuses work.
    /// A proposal that was in flight when it stopped may or may not have committed.
    #[error("node {node} has stopped; restart it or use another node")]
    NodeStopped {
        /// The stopped node.
        node: NodeId,
    },
    /// The leader lost leadership before the proposal's entry committed. It may still commit
    /// under the next leader, or be overwritten: retry only if applying it twice is harmless
    /// (or the command carries a client session that makes the retry idempotent).
    #[error(
        "leadership was lost before entry {log_id} committed, so whether it commits is unknown; \
         retry at node {} only if the command is idempotent",
        leader_hint.map_or_else(|| "unknown".to_string(), |id| id.to_string())
    )]
    ProposalOutcomeUnknown {
        /// The proposal's entry.
        log_id: LogId,
        /// The leader this node knows of, if any.
        leader_hint: Option<NodeId>,
    },
    /// This leader takes no more proposals for now: too many are waiting to be applied, or
    /// its disk is so far behind that its write queue is full. Retry after some complete.
    #[error(
        "{pending} proposals are waiting to be applied and the node is at its limit (proposals \
         or queued writes); retry later"
    )]
    TooManyPendingProposals {
        /// How many are waiting.
        pending: usize,
    },
    /// The node's transport stopped delivering messages (its network is gone); the node
    /// stopped, since it can no longer take part in the cluster.
    #[error("the transport of node {node} closed; the node stopped")]
    TransportClosed {
        /// The node whose transport closed.
        node: NodeId,
    },
}
