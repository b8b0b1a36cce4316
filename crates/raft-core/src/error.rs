//! The crate's error type.

use crate::types::{LogId, LogIndex, NodeId};

/// Everything `raft-core` can refuse or fail with.
///
/// *Refused* errors (`NotLeader`) mean "try elsewhere or later"; *invalid* errors
/// (`InvalidConfig`, `InvalidRestoredState`) mean the caller handed in something wrong and
/// the node was not created.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A configuration field breaks a rule.
    #[error("invalid config: {field} = {value} {rule}")]
    InvalidConfig {
        /// The field's name.
        field: &'static str,
        /// The offending value.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The state handed to [`crate::Node::new`] is inconsistent (it came from storage, so
    /// storage is damaged or was written by a buggy driver).
    #[error("invalid restored state: {reason}")]
    InvalidRestoredState {
        /// What is inconsistent, with the values involved.
        reason: String,
    },
    /// A restored log has a hole or goes backwards.
    #[error("restored log is not contiguous: entry {found} follows index {previous}")]
    LogNotContiguous {
        /// The index before the offending entry.
        previous: LogIndex,
        /// The offending entry.
        found: LogId,
    },
    /// This node is not the leader; retry at `leader_hint` if known.
    #[error("not the leader; try node {}", leader_hint.map_or_else(|| "unknown".to_string(), |id| id.to_string()))]
    NotLeader {
        /// The leader this node knows of, if any.
        leader_hint: Option<NodeId>,
    },
    /// The leader is handing leadership to `target` and accepts no proposals meanwhile.
    #[error("leadership is being transferred to node {target}; retry there shortly")]
    TransferInProgress {
        /// The node taking over.
        target: NodeId,
    },
    /// A leadership transfer names a node that cannot take over.
    #[error("cannot transfer leadership to node {target}: {reason}")]
    InvalidTransferTarget {
        /// The requested node.
        target: NodeId,
        /// Why it cannot.
        reason: &'static str,
    },
    /// Too many reads are waiting for confirmation; retry after some complete.
    #[error("{pending} reads are already waiting for confirmation (the maximum); retry later")]
    TooManyPendingReads {
        /// How many are waiting.
        pending: usize,
    },
    /// A membership change cannot start now; retry once the reason clears.
    #[error("membership change refused: {reason}")]
    MembershipChangeNotReady {
        /// Why, with the values involved.
        reason: String,
    },
    /// A membership change is not allowed at all.
    #[error("invalid membership change {change}: {reason}")]
    InvalidMembershipChange {
        /// The requested change.
        change: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A snapshot cannot replace the log prefix it names.
    #[error("cannot compact the log to index {last_included}: {reason}")]
    SnapshotNotApplicable {
        /// The snapshot's last included index.
        last_included: crate::types::LogIndex,
        /// Why not.
        reason: String,
    },
    /// A message was addressed to another node.
    #[error("message for node {to} delivered to node {this}")]
    MisaddressedMessage {
        /// The message's recipient.
        to: NodeId,
        /// This node.
        this: NodeId,
    },
}
