//! Log replication: the leader's heartbeats, appends and commit rule, and the follower's
//! handling of them (Raft paper §5.3, §5.4; dissertation §10.2 for pipelining).

use tracing::{debug, error, info};

use super::Node;
use crate::message::{AppendResult, ConflictHint, MessageBody};

use crate::progress::Progress;
use crate::quorum;
use crate::role::RoleState;
use crate::types::{Entry, EntryPayload, LogId, LogIndex, NodeId};

/// What to send a follower when it has no entries or commit index to learn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IfNothingNew {
    /// Send nothing (a probing follower still gets its probe).
    Skip,
    /// Send an empty append, so a follower that lost appends says where it stands.
    SendEmpty,
}

impl Node {
    /// A leader's tick: heartbeats, and the CheckQuorum round every election timeout.
    pub(crate) fn tick_leader(&mut self) {
        self.election_elapsed_ticks += 1;
        let Some(leader) = self.leader_state_mut() else {
            return;
        };
        leader.heartbeat_elapsed_ticks += 1;
        leader.reads.leader_ticks += 1;
        self.tick_transfer();
        if self.election_elapsed_ticks >= self.config.election_ticks {
            self.election_elapsed_ticks = 0;
            if self.config.check_quorum && !self.quorum_recently_active() {
                info!(node = %self.config.id, term = %self.term, "stepping down: quorum not heard");
                let term = self.term;
                self.become_follower(term, None);
                return;
            }
            if let Some(leader) = self.leader_state_mut() {
                leader.progress.values_mut().for_each(Progress::clear_recently_active);
            }
        }
        let heartbeat_ticks = self.config.heartbeat_ticks;
        let heartbeat_due = self.leader_state_mut().is_some_and(|leader| {
            let due = leader.heartbeat_elapsed_ticks >= heartbeat_ticks;
            if due {
                leader.heartbeat_elapsed_ticks = 0;
            }
            due
        });
        if heartbeat_due {
            self.broadcast_heartbeat();
        }
    }

    fn quorum_recently_active(&self) -> bool {
        let id = self.config.id;
        let Some(leader) = self.leader_state() else {
            return false;
        };
        quorum::has_quorum(&self.membership, |voter| {
            voter == id || leader.progress.get(&voter).is_some_and(Progress::is_recently_active)
        })
    }

    /// Sends every follower a heartbeat of a new round, which also confirms waiting reads.
    pub(crate) fn broadcast_heartbeat(&mut self) {
        let round = self.next_heartbeat_round();
        let commit_index = self.log.commit_index();
        let heartbeats: Vec<(NodeId, LogIndex)> = self
            .leader_state()
            .into_iter()
            .flat_map(|leader| &leader.progress)
            .map(|(&peer, progress)| (peer, commit_index.min(progress.match_index())))
            .collect();
        for (peer, commit_index) in heartbeats {
            self.send(peer, MessageBody::Heartbeat { commit_index, round });
        }
        // With no other voter, the leader's own round confirms its reads.
        self.confirm_reads();
    }

    /// Starts a new heartbeat round and returns its number.
    fn next_heartbeat_round(&mut self) -> u64 {
        self.heartbeat_round += 1;
        let round = self.heartbeat_round;
        if let Some(leader) = self.leader_state_mut() {
            leader.reads.on_round_sent(round);
        }
        round
    }

    /// Sends each follower what it is missing, within its flow-control window.
    pub(crate) fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self
            .leader_state()
            .into_iter()
            .flat_map(|leader| leader.progress.keys().copied())
            .collect();
        for peer in peers {
            self.send_append(peer, IfNothingNew::Skip);
        }
    }

    /// Sends `peer` what it is missing: one probe when probing, otherwise batches until its
    /// pipelining window is full. `if_nothing_new` says whether the first append goes even
    /// with nothing new (to make a follower that lost appends reveal where it stands).
    fn send_append(&mut self, peer: NodeId, if_nothing_new: IfNothingNew) {
        let mut if_nothing_new = if_nothing_new;
        while self.send_one_append(peer, if_nothing_new) {
            if_nothing_new = IfNothingNew::Skip;
        }
    }

    /// Sends `peer` one append if its window allows. Returns whether another may follow.
    fn send_one_append(&mut self, peer: NodeId, if_nothing_new: IfNothingNew) -> bool {
        let commit_index = self.log.commit_index();
        let bytes_max = self.config.append_bytes_max.get();
        let inflight_max = self.config.inflight_appends_max.get();
        let RoleState::Leader(leader) = &mut self.role else {
            return false;
        };
        let Some(progress) = leader.progress.get_mut(&peer) else {
            return false;
        };
        if progress.is_paused(inflight_max) {
            return false;
        }
        let next_index = progress.next_index();
        if progress.is_sending_snapshot() || next_index <= self.log.compacted().index {
            return self.send_snapshot_chunk(peer);
        }
        let Some(prev_index) = next_index.prev() else {
            error!(%peer, "next index is zero; not sending");
            return false;
        };
        let Some(prev_term) = self.log.term_at(prev_index) else {
            // Needs a snapshot, which this log never compacts yet.
            error!(%peer, %prev_index, "entry before next index is not in the log");
            return false;
        };
        let entries = self.log.entries_from(next_index, bytes_max);
        let commit_news = progress.has_commit_news(commit_index);
        let probing = progress.is_probing();
        let send_empty = if_nothing_new == IfNothingNew::SendEmpty;
        if entries.is_empty() && !send_empty && !probing {
            // A commit index alone is not worth a message (and its answer) while entries are
            // in flight: it rides on the next append, or on the append sent when their
            // answers arrive (or on a heartbeat).
            if !commit_news || progress.has_entries_in_flight() {
                return false;
            }
        }
        let more = !entries.is_empty() && !probing;
        // Only an append that brings nothing but a commit index goes unanswered.
        let answer_wanted = !entries.is_empty() || send_empty || probing;
        progress.on_append_sent(entries.last().map(|entry| entry.log_id.index), commit_index);
        let prev_log_id = LogId::new(prev_term, prev_index);
        let body = MessageBody::AppendRequest {
            prev_log_id,
            entries,
            leader_commit: commit_index,
            answer_wanted,
        };
        self.send(peer, body);
        more
    }

    /// A leader's handling of an answer to an append.
    pub(crate) fn handle_append_response(&mut self, peer: NodeId, result: AppendResult) {
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        let Some(progress) = leader.progress.get_mut(&peer) else {
            return;
        };
        progress.mark_recently_active();
        match result {
            AppendResult::Success { match_index } => {
                if match_index > self.log.last_index() {
                    error!(%peer, %match_index, "follower claims entries the leader never sent");
                    return;
                }
                progress.resume();
                if progress.on_match(match_index) {
                    self.advance_commit_index();
                    self.send_timeout_now_if_caught_up();
                    self.mark_replication_pending();
                }
            }
            AppendResult::Reject { rejected_index, hint } => {
                if progress.is_stale_rejection(rejected_index) {
                    return;
                }
                let next_index = self.next_index_after_reject(rejected_index, hint);
                debug!(%peer, %rejected_index, %next_index, "append rejected; probing");
                let leader = self.leader_state_mut();
                if let Some(progress) = leader.and_then(|leader| leader.progress.get_mut(&peer)) {
                    progress.on_rejected(next_index);
                }
                self.send_append(peer, IfNothingNew::Skip);
            }
        }
    }

    /// Where to probe next after a follower rejected `prev_log_id.index == rejected_index`:
    /// skip the follower's whole conflicting term in one step.
    fn next_index_after_reject(&self, rejected_index: LogIndex, hint: ConflictHint) -> LogIndex {
        let next_index = match hint {
            ConflictHint::LogTooShort { last_index } => last_index.next(),
            ConflictHint::TermMismatch { conflict_term, first_index_of_term } => {
                // If we hold that term, our logs agree up to our last entry of it (Log
                // Matching); otherwise none of the follower's entries of that term are ours.
                match self.log.last_index_of_term(conflict_term) {
                    Some(last_of_term) => last_of_term.next(),
                    None => first_index_of_term,
                }
            }
        };
        // The follower lacks `rejected_index`, so the next probe must start at or before it.
        next_index.min(rejected_index).max(LogIndex(1))
    }

    pub(crate) fn handle_heartbeat_response(&mut self, peer: NodeId, round: u64) {
        let last_index = self.log.last_index();
        let inflight_max = self.config.inflight_appends_max.get();
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        let Some(progress) = leader.progress.get_mut(&peer) else {
            return;
        };
        progress.mark_recently_active();
        progress.on_heartbeat_response(inflight_max, round);
        let behind = progress.match_index() < last_index;
        self.confirm_reads();
        if behind {
            // The follower may have lost appends; an append (empty if need be) makes it say
            // where it stands.
            self.send_append(peer, IfNothingNew::SendEmpty);
        }
    }

    /// Commits the highest index a majority stores durably, if it is of the current term
    /// (Raft paper §5.4.2, Figure 8: older entries commit only beneath a current one).
    pub(crate) fn advance_commit_index(&mut self) {
        assert!(self.is_leader(), "only a leader counts replicas");
        // The leader counts itself only once its own write is durable.
        let own = self.log.persisted_index();
        let Some(quorum_index) = self.quorum_value(own, |p| Some(p.match_index())) else {
            return;
        };
        if self.log.term_at(quorum_index) != Some(self.term) {
            return;
        }
        if self.log.commit_to(quorum_index) {
            debug!(commit_index = %quorum_index, "advanced commit index");
            self.mark_replication_pending();
            self.on_commit_for_reads();
            self.step_down_if_removed();
        }
    }

    /// A follower's handling of an append from the leader of the current term.
    pub(crate) fn handle_append_request(
        &mut self,
        leader: NodeId,
        prev_log_id: LogId,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
        answer_wanted: bool,
    ) {
        if self.is_leader() {
            error!(%leader, term = %self.term, "append from another leader of our term; ignored");
            return;
        }
        self.follow(leader);
        let brings_entries = !entries.is_empty();
        let commit_index = self.log.commit_index();
        let (prev_log_id, entries) = if prev_log_id.index < commit_index {
            // Entries up to our commit index match the leader's already; skip them.
            let skip = commit_index.distance_from(prev_log_id.index);
            let rest = entries.into_iter().skip(skip.try_into().unwrap_or(usize::MAX)).collect();
            let commit_term = self.log.term_at(commit_index).unwrap_or_default();
            (LogId::new(commit_term, commit_index), rest)
        } else {
            (prev_log_id, entries)
        };
        let result = match self.log.term_at(prev_log_id.index) {
            Some(term) if term == prev_log_id.term => {
                let match_index = prev_log_id.index.plus(entries.len() as u64);
                self.append_from_leader(entries);
                self.log.commit_to(leader_commit.min(match_index));
                AppendResult::Success { match_index }
            }
            Some(conflict_term) => AppendResult::Reject {
                rejected_index: prev_log_id.index,
                hint: ConflictHint::TermMismatch {
                    conflict_term,
                    first_index_of_term: self.log.first_index_of_term(conflict_term),
                },
            },
            None => AppendResult::Reject {
                rejected_index: prev_log_id.index,
                hint: ConflictHint::LogTooShort { last_index: self.log.last_index() },
            },
        };
        if !brings_entries && !answer_wanted && matches!(result, AppendResult::Success { .. }) {
            // A new commit index alone: the leader does not wait for this answer.
            return;
        }
        self.send(leader, MessageBody::AppendResponse { result });
    }

    /// Appends the leader's entries that follow a matching `prev_log_id`, truncating our log
    /// at the first entry that conflicts.
    fn append_from_leader(&mut self, entries: Vec<Entry>) {
        let mut membership_touched = false;
        let mut entries = entries.into_iter().peekable();
        while let Some(entry) = entries.next_if(|e| self.log.term_at(e.log_id.index).is_some()) {
            if self.log.term_at(entry.log_id.index) != Some(entry.log_id.term) {
                debug!(from_index = %entry.log_id.index, "truncating conflicting entries");
                self.log.truncate_from(entry.log_id.index);
                membership_touched = true;
                self.log.append(entry);
                break;
            }
        }
        for entry in entries {
            membership_touched |= matches!(entry.payload, EntryPayload::Membership(_));
            self.log.append(entry);
        }
        if membership_touched {
            self.refresh_membership();
        }
    }

    pub(crate) fn handle_heartbeat(&mut self, leader: NodeId, commit_index: LogIndex, round: u64) {
        if self.is_leader() {
            error!(%leader, term = %self.term, "heartbeat from another leader of our term");
            return;
        }
        self.follow(leader);
        let commit_index = commit_index.min(self.log.last_index());
        self.log.commit_to(commit_index);
        self.send(leader, MessageBody::HeartbeatResponse { round });
    }

    /// Asks for entries or a commit index to go to the followers at the next `ready()`
    /// (nothing on a node that is not, or no longer, the leader).
    pub(crate) fn mark_replication_pending(&mut self) {
        if let Some(leader) = self.leader_state_mut() {
            leader.replication_pending = true;
        }
    }

    /// Recognises `leader` as the leader of the current term.
    pub(crate) fn follow(&mut self, leader: NodeId) {
        let following =
            matches!(self.role, RoleState::Follower { leader: known } if known == Some(leader));
        if !following {
            let term = self.term;
            self.become_follower(term, Some(leader));
        } else {
            self.election_elapsed_ticks = 0;
        }
    }
}
