//! Leadership transfer (Raft dissertation §3.10): the leader stops accepting proposals,
//! brings the target up to date, and tells it to campaign at once with TimeoutNow. The
//! transfer is abandoned after an election timeout, and the leader accepts proposals again.

use tracing::info;

use super::Node;
use crate::error::{Error, TransferTargetProblem};
use crate::message::{Campaign, MessageBody};
use crate::role::{RoleState, Transfer};
use crate::types::NodeId;

impl Node {
    /// Hands leadership to `target`. Until the target wins (this node then becomes its
    /// follower) or an election timeout passes, proposals are refused with
    /// [`Error::TransferInProgress`].
    ///
    /// # Errors
    ///
    /// [`Error::NotLeader`] on a non-leader; [`Error::InvalidTransferTarget`] when `target`
    /// is this node or not a voter.
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<(), Error> {
        if !self.is_leader() {
            return Err(Error::NotLeader { leader_hint: self.leader() });
        }
        if target == self.config.id {
            let reason = TransferTargetProblem::AlreadyLeader;
            return Err(Error::InvalidTransferTarget { target, reason });
        }
        if !self.membership.is_voter(target) {
            let reason = TransferTargetProblem::NotVoter;
            return Err(Error::InvalidTransferTarget { target, reason });
        }
        info!(node = %self.config.id, %target, term = %self.term, "transferring leadership");
        if let Some(leader) = self.leader_state_mut() {
            leader.transfer = Some(Transfer { target, elapsed_ticks: 0, timeout_now_sent: false });
        }
        self.send_timeout_now_if_caught_up();
        // If the target is behind, replication catches it up and the ack calls back here.
        self.mark_replication_pending();
        Ok(())
    }

    /// The target of the transfer under way, if any.
    #[must_use]
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.leader_state()?.transfer.map(|transfer| transfer.target)
    }

    /// Sends TimeoutNow once the target's log matches ours.
    pub(crate) fn send_timeout_now_if_caught_up(&mut self) {
        let last_index = self.log.last_index();
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        let Some(transfer) = &mut leader.transfer else {
            return;
        };
        if transfer.timeout_now_sent {
            return;
        }
        let target = transfer.target;
        let caught_up = leader.progress.get(&target).is_some_and(|p| p.match_index() == last_index);
        if caught_up {
            transfer.timeout_now_sent = true;
            // The target may win inside this leader's lease, whenever TimeoutNow arrives.
            leader.reads.lease_revoked = true;
            self.send(target, MessageBody::TimeoutNow);
        }
    }

    /// Counts a leader tick against the transfer; abandons it after an election timeout.
    pub(crate) fn tick_transfer(&mut self) {
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        let Some(transfer) = &mut leader.transfer else {
            return;
        };
        transfer.elapsed_ticks += 1;
        if transfer.elapsed_ticks >= self.config.election_ticks {
            info!(node = %self.config.id, target = %transfer.target, "leadership transfer timed out");
            leader.transfer = None;
        }
    }

    /// The target's handling of TimeoutNow: campaign at once, skipping PreVote.
    pub(crate) fn handle_timeout_now(&mut self, leader: NodeId) {
        if !self.membership.is_voter(self.config.id) || self.is_leader() {
            return;
        }
        info!(node = %self.config.id, %leader, "campaigning on the leader's request");
        self.become_candidate(Campaign::Transfer);
    }
}
