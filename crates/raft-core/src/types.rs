//! Typed identifiers and the values the log is made of.

use std::collections::BTreeSet;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The identity of a cluster member.
///
/// "No node" is spelled `Option<NodeId>`; there is no reserved id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A Raft term: a logical clock that only moves forward and names at most one leader.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Term(pub u64);

impl Term {
    /// The term every node starts in, before any election.
    pub const ZERO: Term = Term(0);

    /// The term after this one.
    #[must_use]
    pub fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A position in the replicated log. The first entry has index 1; index 0 names the empty
/// prefix before it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogIndex(pub u64);

impl LogIndex {
    /// The index of the empty prefix, before the first entry.
    pub const ZERO: LogIndex = LogIndex(0);

    /// The index after this one.
    #[must_use]
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index before this one, or `None` for index 0.
    #[must_use]
    pub fn prev(self) -> Option<LogIndex> {
        self.0.checked_sub(1).map(LogIndex)
    }

    /// The index `count` entries after this one.
    #[must_use]
    pub fn plus(self, count: u64) -> LogIndex {
        LogIndex(self.0 + count)
    }

    /// How many entries lie in `(earlier, self]`, or 0 when `earlier` is not before `self`.
    #[must_use]
    pub fn distance_from(self, earlier: LogIndex) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Names one log entry: by the Log Matching property, two entries with the same `LogId` are
/// identical and are preceded by identical logs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogId {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: LogIndex,
}

impl LogId {
    /// The id of the empty prefix (term 0, index 0): every log matches it.
    pub const ZERO: LogId = LogId { term: Term::ZERO, index: LogIndex::ZERO };

    /// A log id from its parts.
    #[must_use]
    pub fn new(term: Term, index: LogIndex) -> LogId {
        LogId { term, index }
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.index, self.term)
    }
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// Appended by every new leader so that it can commit entries of earlier terms (Raft
    /// paper §5.4.2). The application skips it.
    Empty,
    /// An application command, opaque to consensus.
    Command(Bytes),
    /// A new cluster membership. It takes effect on every node as soon as the entry is in
    /// its log, committed or not (dissertation §4.1), and is undone if the entry is removed.
    Membership(Membership),
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The entry's term and index.
    pub log_id: LogId,
    /// The entry's content.
    pub payload: EntryPayload,
}

impl Entry {
    /// Bytes of fixed overhead counted per entry when batching by size: the log id and the
    /// payload tag, roughly as postcard encodes them.
    pub const OVERHEAD_BYTES: u64 = 24;

    /// The size this entry counts for against byte budgets (`append_bytes_max`).
    #[must_use]
    pub fn size_bytes(&self) -> u64 {
        let payload = match &self.payload {
            EntryPayload::Empty => 0,
            EntryPayload::Command(bytes) => bytes.len() as u64,
            EntryPayload::Membership(membership) => {
                8 * (membership.voters.len() + membership.learners.len()) as u64
            }
        };
        Self::OVERHEAD_BYTES + payload
    }
}

/// The state a node must persist before it sends any message that depends on it.
///
/// `term` and `voted_for` are what make elections safe: a node that forgot its vote could vote
/// twice in one term. `commit_index` is a lower bound of the commit index, saved when it is
/// free to do so (along with a term, vote or entries write), so a restarted node can apply
/// what it already knew was committed without waiting for a leader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub voted_for: Option<NodeId>,
    /// A lower bound of the commit index known when this was saved.
    pub commit_index: LogIndex,
}

/// The cluster's members: voters elect the leader and count toward the commit quorum;
/// learners receive the log but do not vote (a new node catches up as a learner first).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The voting members.
    pub voters: BTreeSet<NodeId>,
    /// The non-voting members. Never also voters.
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    /// A membership of the given voters and no learners.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership { voters: voters.into_iter().collect(), learners: BTreeSet::new() }
    }

    /// Whether `id` is a voter or a learner.
    #[must_use]
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// Every member, voters then learners.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(&self.learners).copied()
    }

    /// How many voters make a majority.
    #[must_use]
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Whether `id` is a voter.
    #[must_use]
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }
}

/// One step of a membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// Adds a non-voting member that receives the log (to catch a new node up before it
    /// votes, so the cluster's availability does not hinge on a node with an empty log).
    AddLearner(NodeId),
    /// Adds a voter, or promotes a learner to voter.
    AddVoter(NodeId),
    /// Removes a voter or learner.
    Remove(NodeId),
}

impl fmt::Display for MembershipChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipChange::AddLearner(id) => write!(f, "add learner {id}"),
            MembershipChange::AddVoter(id) => write!(f, "add voter {id}"),
            MembershipChange::Remove(id) => write!(f, "remove {id}"),
        }
    }
}

/// A node's role in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Follows a leader (or waits for one) and grants votes.
    Follower,
    /// Asks for pre-votes before disturbing the cluster with a new term (dissertation §9.6).
    PreCandidate,
    /// Asks for votes in a term of its own.
    Candidate,
    /// Accepts proposals and replicates the log.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_prev_of_zero_is_none() {
        assert_eq!(LogIndex::ZERO.prev(), None);
        assert_eq!(LogIndex(5).prev(), Some(LogIndex(4)));
        assert_eq!(LogIndex(5).next(), LogIndex(6));
    }

    #[test]
    fn quorum_is_a_strict_majority() {
        let sizes_and_quorums = [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)];
        for (size, quorum) in sizes_and_quorums {
            let membership = Membership::with_voters((1..=size).map(NodeId));
            assert_eq!(membership.quorum(), quorum, "cluster of {size}");
        }
    }

    #[test]
    fn entry_size_counts_payload_and_overhead() {
        let entry = Entry {
            log_id: LogId::new(Term(1), LogIndex(1)),
            payload: EntryPayload::Command(Bytes::from_static(b"hello")),
        };
        assert_eq!(entry.size_bytes(), Entry::OVERHEAD_BYTES + 5);
    }
}
