//! Quorum arithmetic: majorities of the voters, for votes, commits, read rounds, leases and
//! CheckQuorum (Raft paper §5.2, §5.3; etcd keeps the same in `quorum/majority.go`).
//!
//! Everything here counts only the voters of the membership it is given: a learner's
//! answer, or a vote from a node that is no longer a voter, never makes a majority.

use std::collections::BTreeMap;

use crate::types::{Membership, NodeId};

/// One voter's answer to a (pre-)vote request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Vote {
    /// The voter would (pre-vote) or did (vote) vote for the candidate.
    Granted,
    /// The voter refused.
    Refused,
}

impl Vote {
    /// The vote a response's `granted` flag stands for.
    pub(crate) fn from_granted(granted: bool) -> Vote {
        if granted { Vote::Granted } else { Vote::Refused }
    }
}

/// The outcome of counting the votes of one (pre-)campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoteResult {
    /// A majority of the voters granted.
    Won,
    /// A majority of the voters refused: the campaign cannot win.
    Lost,
    /// Neither yet.
    Pending,
}

/// The votes received in one (pre-)campaign, the candidate's own included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Votes {
    received: BTreeMap<NodeId, Vote>,
}

impl Votes {
    /// The votes of a campaign that just started: only the candidate's own.
    pub(crate) fn new(candidate: NodeId) -> Votes {
        Votes { received: BTreeMap::from([(candidate, Vote::Granted)]) }
    }

    /// Records `voter`'s answer, replacing an earlier one from the same voter.
    pub(crate) fn record(&mut self, voter: NodeId, vote: Vote) {
        self.received.insert(voter, vote);
    }

    /// Counts the votes of the current voters of `membership`.
    pub(crate) fn tally(&self, membership: &Membership) -> VoteResult {
        let quorum = membership.quorum();
        let counted = |wanted: Vote| {
            self.received
                .iter()
                .filter(|&(voter, &vote)| vote == wanted && membership.is_voter(*voter))
                .count()
        };
        if counted(Vote::Granted) >= quorum {
            VoteResult::Won
        } else if counted(Vote::Refused) >= quorum {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }
}

/// The highest value a majority of the voters of `membership` has reached, given each
/// voter's value (`None`: it reached none). `None` when fewer than a majority have one.
///
/// Used for the commit index (values are match indexes), confirmed read rounds and the
/// lease start (values are the leader ticks of answered heartbeat rounds).
pub(crate) fn quorum_value<T: Ord + Copy>(
    membership: &Membership,
    value_of: impl Fn(NodeId) -> Option<T>,
) -> Option<T> {
    let mut values: Vec<T> =
        membership.voters.iter().filter_map(|&voter| value_of(voter)).collect();
    values.sort_unstable_by(|a, b| b.cmp(a));
    values.get(membership.quorum() - 1).copied()
}

/// Whether a majority of the voters of `membership` satisfy `is_active` (CheckQuorum).
pub(crate) fn has_quorum(membership: &Membership, is_active: impl Fn(NodeId) -> bool) -> bool {
    let active = membership.voters.iter().filter(|&&voter| is_active(voter)).count();
    active >= membership.quorum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership(voters: u64) -> Membership {
        Membership::with_voters((1..=voters).map(NodeId))
    }

    #[test]
    fn quorum_value_is_the_highest_value_a_majority_reached() {
        let values = [(1, 9), (2, 5), (3, 7), (4, 1), (5, 3)];
        let value_of = |id: NodeId| values.iter().find(|(voter, _)| *voter == id.0).map(|v| v.1);
        assert_eq!(quorum_value(&membership(5), value_of), Some(5));
    }

    #[test]
    fn quorum_value_needs_a_majority_of_known_values() {
        let value_of = |id: NodeId| (id.0 <= 2).then_some(id.0);
        assert_eq!(quorum_value(&membership(5), value_of), None);
        assert_eq!(quorum_value(&membership(3), value_of), Some(1));
    }

    #[test]
    fn votes_of_non_voters_do_not_count() {
        let mut votes = Votes::new(NodeId(1));
        votes.record(NodeId(9), Vote::Granted);
        assert_eq!(votes.tally(&membership(3)), VoteResult::Pending);
        votes.record(NodeId(2), Vote::Granted);
        assert_eq!(votes.tally(&membership(3)), VoteResult::Won);
    }

    #[test]
    fn a_majority_of_refusals_loses() {
        let mut votes = Votes::new(NodeId(1));
        votes.record(NodeId(2), Vote::Refused);
        votes.record(NodeId(3), Vote::Refused);
        assert_eq!(votes.tally(&membership(3)), VoteResult::Lost);
    }

    #[test]
    fn has_quorum_counts_only_voters() {
        assert!(has_quorum(&membership(3), |id| id.0 != 3));
        assert!(!has_quorum(&membership(3), |id| id.0 == 1));
    }
}
