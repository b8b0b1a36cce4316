//! Elections: timeouts, PreVote, voting and counting votes (Raft paper §5.2, dissertation
//! §9.6 for PreVote).

use tracing::{debug, info};

use super::Node;
use crate::message::{Campaign, MessageBody};

use crate::quorum::{Vote, VoteResult, Votes};
use crate::role::RoleState;
use crate::types::{LogId, NodeId, Role, Term};

impl Node {
    /// A follower's or candidate's tick: start a (pre-)campaign when the timeout expires.
    pub(crate) fn tick_election(&mut self) {
        self.election_elapsed_ticks += 1;
        if self.election_elapsed_ticks < self.election_timeout_ticks {
            return;
        }
        if !self.membership.is_voter(self.config.id) {
            // Non-voters never campaign; they wait for a leader to find them.
            self.reset_election_timeout();
            return;
        }
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate(Campaign::Election);
        }
    }

    /// Asks the voters whether they would vote for us in the next term, without changing the
    /// term, so a node that cannot win (partitioned, or behind) does not disturb the cluster.
    fn become_pre_candidate(&mut self) {
        info!(node = %self.config.id, term = %self.term, "became pre-candidate");
        self.role = RoleState::PreCandidate(Votes::new(self.config.id));
        self.reset_election_timeout();
        let next_term = self.term.next();
        let last_log_id = self.log.last_log_id();
        for peer in self.voting_peers() {
            let body = MessageBody::VoteRequest { campaign: Campaign::PreVote, last_log_id };
            self.send_in_term(peer, next_term, body);
        }
        if self.tally() == VoteResult::Won {
            self.become_candidate(Campaign::Election);
        }
    }

    /// Starts an election in a new term, voting for ourselves. The vote requests wait for
    /// the new term and vote to be durable (they are `messages_after_persist`).
    /// `campaign` is [`Campaign::Election`], or [`Campaign::Transfer`] when the leader asked
    /// us to (voters then ignore their lease).
    pub(crate) fn become_candidate(&mut self, campaign: Campaign) {
        debug_assert!(!campaign.is_pre_vote(), "a pre-vote takes no term of its own");
        self.term = self.term.next();
        self.voted_for = Some(self.config.id);
        self.role = RoleState::Candidate(Votes::new(self.config.id));
        info!(node = %self.config.id, term = %self.term, "became candidate");
        self.reset_election_timeout();
        let last_log_id = self.log.last_log_id();
        for peer in self.voting_peers() {
            self.send(peer, MessageBody::VoteRequest { campaign, last_log_id });
        }
        if self.tally() == VoteResult::Won {
            self.become_leader();
        }
    }

    /// Counts the votes of the campaign under way (`Pending` when there is none).
    fn tally(&self) -> VoteResult {
        match &self.role {
            RoleState::PreCandidate(votes) | RoleState::Candidate(votes) => {
                votes.tally(&self.membership)
            }
            RoleState::Follower { .. } | RoleState::Leader(_) => VoteResult::Pending,
        }
    }

    /// Answers a (pre-)vote request whose term is not below ours (the term was handled by
    /// `step`: a real vote request of a later term made us a follower of that term).
    pub(crate) fn handle_vote_request(
        &mut self,
        candidate: NodeId,
        candidate_term: Term,
        campaign: Campaign,
        candidate_last: LogId,
    ) {
        let log_ok = self.log.is_up_to_date(candidate_last);
        let pre_vote = campaign.is_pre_vote();
        let can_vote = if pre_vote {
            // A pre-vote promises nothing: grant it to any later term whose log is current,
            // unless we still follow a live leader (checked in `step`).
            candidate_term > self.term || self.voted_for == Some(candidate)
        } else {
            self.voted_for == Some(candidate)
                || (self.voted_for.is_none() && self.leader().is_none())
        };
        // The candidate's own configuration decides whose votes count, not ours: ours may be
        // stale (the entry that added the candidate has not reached us yet), and refusing
        // such a candidate can leave the cluster without any electable node (dissertation
        // §4.1: a server grants its vote to a candidate not in its latest configuration).
        let granted = can_vote && log_ok;
        debug!(%candidate, pre_vote, granted, log_ok, "answered vote request");
        if granted && !pre_vote {
            assert_eq!(candidate_term, self.term, "a vote is granted in the candidate's term");
            assert!(
                self.voted_for.is_none() || self.voted_for == Some(candidate),
                "one vote per term"
            );
            self.voted_for = Some(candidate);
            // Granting a vote resets the timer, so we do not compete with that candidate.
            self.reset_election_timeout();
        }
        let response_term = if granted { candidate_term } else { self.term };
        let body = MessageBody::VoteResponse { campaign, granted };
        self.send_in_term(candidate, response_term, body);
    }

    /// Counts a vote of the current (pre-)campaign.
    pub(crate) fn handle_vote_response(
        &mut self,
        voter: NodeId,
        campaign: Campaign,
        granted: bool,
    ) {
        let votes = match &mut self.role {
            RoleState::PreCandidate(votes) if campaign.is_pre_vote() => votes,
            RoleState::Candidate(votes) if !campaign.is_pre_vote() => votes,
            _ => return,
        };
        votes.record(voter, Vote::from_granted(granted));
        match (self.tally(), self.role()) {
            (VoteResult::Won, Role::PreCandidate) => self.become_candidate(Campaign::Election),
            (VoteResult::Won, _) => self.become_leader(),
            (VoteResult::Lost, _) => {
                let term = self.term;
                self.become_follower(term, None);
            }
            (VoteResult::Pending, _) => {}
        }
    }
}
