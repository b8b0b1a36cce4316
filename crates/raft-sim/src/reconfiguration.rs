//! Membership changes driven toward a target set of voters, one server at a time, as an
//! operator's tool would drive them: new servers join as learners and are promoted once they
//! caught up, removed servers are shut down once their removal commits.

use std::collections::BTreeSet;

use raft_core::{MembershipChange, Node, NodeId, Role};

use crate::cluster::Cluster;

/// A plan to move the cluster's voters to `target`, one change at a time.
///
/// Each call to [`Reconfiguration::act`] looks at the leader's membership in force (which
/// includes a change not yet committed) and proposes the next step: add a missing target
/// voter as a learner; promote a learner once it has caught up with the leader's commit
/// index; remove a voter or learner not in the target. Additions come before removals, so
/// the cluster never runs on fewer voters than it started or ends with.
///
/// The plan does not wait for the previous change to commit before proposing the next: it is
/// raft-core's job to refuse a change while one is pending or before the leader committed in
/// its term, and an eager operator is what tests that it does. Proposals that are refused
/// (no leader, a change or transfer under way) or lost (the leader is deposed before the
/// entry commits) are simply retried at a later call: the plan aims at a state, not a
/// sequence of commands.
#[derive(Clone, Debug)]
pub struct Reconfiguration {
    target: BTreeSet<NodeId>,
    /// Nodes some call found outside the target: each is retired once the committed
    /// membership no longer contains it.
    leaving: BTreeSet<NodeId>,
    /// Changes the leader accepted (whether or not they committed).
    proposed: u64,
}

impl Reconfiguration {
    /// A plan whose end state has exactly `target` as voters and no learners.
    ///
    /// # Panics
    ///
    /// If `target` is empty: a cluster needs a voter.
    #[must_use]
    pub fn new(target: impl IntoIterator<Item = NodeId>) -> Reconfiguration {
        let target: BTreeSet<NodeId> = target.into_iter().collect();
        assert!(!target.is_empty(), "a reconfiguration needs at least one target voter");
        Reconfiguration { target, leaving: BTreeSet::new(), proposed: 0 }
    }

    /// The voters the plan ends with.
    #[must_use]
    pub fn target(&self) -> &BTreeSet<NodeId> {
        &self.target
    }

    /// How many changes a leader accepted so far.
    #[must_use]
    pub fn proposed(&self) -> u64 {
        self.proposed
    }

    /// Whether the committed membership is the target: its voters, no learners.
    #[must_use]
    pub fn is_done(&self, cluster: &Cluster) -> bool {
        let membership = cluster.membership();
        membership.voters == self.target && membership.learners.is_empty()
    }

    /// The next step from the membership in force on `leader`, or `None` when there is
    /// nothing to do now (done, or a learner is still catching up).
    #[must_use]
    pub fn next_change(&self, leader: &Node) -> Option<MembershipChange> {
        if leader.role() != Role::Leader {
            return None;
        }
        let membership = leader.membership();
        if let Some(&joining) = self.target.iter().find(|&&id| !membership.contains(id)) {
            return Some(MembershipChange::AddLearner(joining));
        }
        let learners = &membership.learners;
        if let Some(&extra) = learners.iter().find(|id| !self.target.contains(id)) {
            return Some(MembershipChange::Remove(extra));
        }
        let caught_up =
            |id: NodeId| leader.match_index(id).is_some_and(|index| index >= leader.commit_index());
        if let Some(&learner) = learners.iter().find(|&&id| caught_up(id)) {
            return Some(MembershipChange::AddVoter(learner));
        }
        if !learners.is_empty() {
            return None;
        }
        let voters = &membership.voters;
        voters.iter().find(|id| !self.target.contains(id)).map(|&id| MembershipChange::Remove(id))
    }

    /// One round: retires the nodes whose removal committed, then proposes the next change
    /// to the leader, if any is due. Returns whether the plan is done.
    pub fn act(&mut self, cluster: &mut Cluster) -> bool {
        let committed = cluster.membership().clone();
        for id in committed.members().filter(|id| !self.target.contains(id)) {
            self.leaving.insert(id);
        }
        let removed: Vec<NodeId> = self
            .leaving
            .iter()
            .copied()
            .filter(|&id| !committed.contains(id) && !cluster.is_retired(id))
            .collect();
        for id in removed {
            cluster.retire(id);
        }
        if self.is_done(cluster) {
            return true;
        }
        let Some(leader) = cluster.leader() else {
            return false;
        };
        let change = cluster.node(leader).and_then(|node| self.next_change(node));
        if let Some(change) = change {
            if let MembershipChange::Remove(id) = change {
                self.leaving.insert(id);
            }
            if cluster.propose_membership_change(leader, change).is_ok() {
                self.proposed += 1;
            }
        }
        false
    }
}
