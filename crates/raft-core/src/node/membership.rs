//! Membership changes, one server at a time (Raft dissertation §4.1–4.3).
//!
//! Adding or removing a single voter keeps every majority of the old configuration
//! overlapping every majority of the new one, so no joint phase is needed. Two rules keep
//! it safe: a change starts only after the previous one committed, and only after the
//! leader committed an entry of its own term (the fix to the bug reported on raft-dev in
//! 2015: without it, a change from a previous term that never committed can be overridden
//! by a conflicting one, and two disjoint majorities can form).
//!
//! A configuration takes effect on each node as soon as its entry is in the log; if a
//! newer leader removes the entry, the node falls back to the previous configuration.

use tracing::info;

use super::Node;
use crate::error::{Error, MembershipChangeWait};
use crate::progress::Progress;
use crate::types::{EntryPayload, LogId, MembershipChange};

impl Node {
    /// Proposes a membership change. It takes effect on the leader at once and on each
    /// follower when the entry reaches its log; it is done when the returned entry commits.
    ///
    /// # Errors
    ///
    /// [`Error::NotLeader`]; [`Error::TransferInProgress`]; [`Error::MembershipChangeNotReady`]
    /// while a previous change is uncommitted or the leader has not yet committed an entry
    /// of its term; [`Error::InvalidMembershipChange`] for a change that is not allowed.
    pub fn propose_membership_change(&mut self, change: MembershipChange) -> Result<LogId, Error> {
        self.check_accepts_proposals()?;
        let commit_index = self.log.commit_index();
        if self.membership_index > commit_index {
            return Err(Error::MembershipChangeNotReady {
                reason: MembershipChangeWait::PreviousChangeUncommitted {
                    membership_index: self.membership_index,
                    commit_index,
                },
            });
        }
        if !self.committed_in_current_term() {
            return Err(Error::MembershipChangeNotReady {
                reason: MembershipChangeWait::NoCommitInTerm { term: self.term },
            });
        }
        let next = change.apply_to(&self.membership)?;
        info!(node = %self.config.id, %change, term = %self.term, "proposing membership change");
        Ok(self.append_own_entry(EntryPayload::Membership(next)))
    }

    /// The index of the entry that set the membership in force.
    #[must_use]
    pub fn membership_index(&self) -> crate::types::LogIndex {
        self.membership_index
    }

    /// Recomputes the membership in force from the log: the last membership entry, else the
    /// membership at the compacted boundary. Called after appending a membership entry and
    /// after truncating the log.
    pub(crate) fn refresh_membership(&mut self) {
        let latest = self.log.entries().iter().rev().find_map(|entry| match &entry.payload {
            EntryPayload::Membership(membership) => Some((entry.log_id.index, membership)),
            EntryPayload::Empty | EntryPayload::Command(_) => None,
        });
        let (index, membership) = match latest {
            Some((index, membership)) => (index, membership.clone()),
            None => {
                (self.log.first_index().prev().unwrap_or_default(), self.base_membership.clone())
            }
        };
        if index == self.membership_index && membership == self.membership {
            return;
        }
        info!(
            node = %self.config.id,
            %index,
            voters = ?membership.voters,
            learners = ?membership.learners,
            "membership in force changed"
        );
        self.membership = membership;
        self.membership_index = index;
        if self.is_leader() {
            self.sync_progress_with_membership();
        }
    }

    /// Gives the leader a progress entry for every member and none for former members.
    fn sync_progress_with_membership(&mut self) {
        let next_index = self.log.last_index().next();
        let members = self.replication_peers();
        let Some(leader) = self.leader_state_mut() else {
            return;
        };
        leader.progress.retain(|peer, _| members.contains(peer));
        for member in members {
            leader.progress.entry(member).or_insert_with(|| Progress::new(next_index));
        }
    }

    /// A leader removed from the voters steps down once its removal commits; until then it
    /// keeps replicating without counting itself (dissertation §4.2.2).
    pub(crate) fn step_down_if_removed(&mut self) {
        let removed = !self.membership.is_voter(self.config.id);
        if self.is_leader() && removed && self.membership_index <= self.log.commit_index() {
            info!(node = %self.config.id, term = %self.term, "stepping down: removed from voters");
            let term = self.term;
            self.become_follower(term, None);
        }
    }
}
