//! The crate's error type.

use crate::types::{LogId, LogIndex, Membership, MembershipChange, NodeId, Term};

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
        reason: RestoredStateProblem,
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
        reason: TransferTargetProblem,
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
        reason: MembershipChangeWait,
    },
    /// A membership change is not allowed at all.
    #[error("invalid membership change {change}: {reason}")]
    InvalidMembershipChange {
        /// The requested change.
        change: MembershipChange,
        /// The rule it breaks.
        reason: MembershipChangeProblem,
    },
    /// A snapshot cannot replace the log prefix it names.
    #[error("cannot compact the log to index {last_included}: {reason}")]
    SnapshotNotApplicable {
        /// The snapshot's last included index.
        last_included: LogIndex,
        /// Why not.
        reason: SnapshotProblem,
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

/// Why a restored state is inconsistent ([`Error::InvalidRestoredState`]).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoredStateProblem {
    /// The last entry's term is above the persisted term.
    #[error("last entry {last} has a term above the persisted term {hard_state_term}")]
    EntryTermAboveHardState {
        /// The last entry.
        last: LogId,
        /// The persisted term.
        hard_state_term: Term,
    },
    /// The persisted commit index is past the last entry.
    #[error("commit index {commit_index} is past the last entry {last}")]
    CommitIndexPastLog {
        /// The persisted commit index.
        commit_index: LogIndex,
        /// The last entry.
        last: LogId,
    },
    /// The applied index is before the snapshot or after the last entry.
    #[error("applied index {applied_index} is outside the log [{compacted_index}, {last_index}]")]
    AppliedIndexOutsideLog {
        /// The restored applied index.
        applied_index: LogIndex,
        /// The snapshot's last index (0 without one).
        compacted_index: LogIndex,
        /// The last entry's index.
        last_index: LogIndex,
    },
    /// The snapshot's membership is not the restored membership.
    #[error(
        "the snapshot's membership {snapshot:?} differs from the restored membership {restored:?}"
    )]
    SnapshotMembershipDiffers {
        /// The snapshot's membership.
        snapshot: Membership,
        /// The restored membership.
        restored: Membership,
    },
    /// A node is both a voter and a learner.
    #[error("node {node} is both a voter and a learner")]
    VoterAndLearner {
        /// The node.
        node: NodeId,
    },
}

/// Why a leadership transfer target cannot take over ([`Error::InvalidTransferTarget`]).
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferTargetProblem {
    /// The target is this node, which already leads.
    #[error("it is already leader")]
    AlreadyLeader,
    /// The target is not a voter, so it could not win an election.
    #[error("it is not a voter")]
    NotVoter,
}

/// What a membership change must wait for ([`Error::MembershipChangeNotReady`]).
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipChangeWait {
    /// The previous change is not committed yet: one change at a time.
    #[error(
        "the previous change at index {membership_index} is not committed yet \
         (commit index {commit_index})"
    )]
    PreviousChangeUncommitted {
        /// The index of the previous change's entry.
        membership_index: LogIndex,
        /// The leader's commit index.
        commit_index: LogIndex,
    },
    /// The leader has not committed an entry of its own term yet.
    #[error("the leader has not committed an entry of term {term} yet")]
    NoCommitInTerm {
        /// The leader's term.
        term: Term,
    },
}

/// Why a membership change is not allowed ([`Error::InvalidMembershipChange`]).
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipChangeProblem {
    /// The learner to add is already a member.
    #[error("it is already a member")]
    AlreadyMember,
    /// The voter to add is already a voter.
    #[error("it is already a voter")]
    AlreadyVoter,
    /// The node to remove is not a member.
    #[error("it is not a member")]
    NotMember,
    /// Removing the node would leave no voter.
    #[error("it would leave no voter")]
    NoVoterLeft,
}

/// Why the log cannot be compacted to a snapshot ([`Error::SnapshotNotApplicable`]).
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotProblem {
    /// The index is not applied yet, or not past the current snapshot.
    #[error(
        "it must be applied (applied index {applied_index}) and past the current snapshot \
         (index {compacted_index})"
    )]
    OutsideAppliedLog {
        /// The highest applied index.
        applied_index: LogIndex,
        /// The current snapshot's last index.
        compacted_index: LogIndex,
    },
    /// The entry at the index is not in the log.
    #[error("the entry is not in the log")]
    EntryNotInLog,
}
