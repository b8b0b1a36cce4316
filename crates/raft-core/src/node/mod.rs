//! The node: its state, its inputs (`tick`, `step`, `propose`, `on_persisted`) and its
//! output (`ready`). The protocol itself lives in the submodules, one per feature, each
//! adding methods to [`Node`]. The types they share live outside `node`, in modules that
//! hold no `impl Node`, so no module imports from one that imports it back.

mod election;
mod membership;
mod read_index;
mod replication;
mod snapshot;
mod transfer;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tracing::{debug, info};

use crate::config::Config;
use crate::error::{Error, RestoredStateProblem as Problem};
use crate::log::RaftLog;
use crate::message::{Campaign, Message, MessageBody};
use crate::progress::Progress;
use crate::quorum;
use crate::ready::{ReadState, Ready, SoftState};
use crate::role::{LeaderState, RoleState};
use crate::snapshot::{IncomingSnapshot, Snapshot};
use crate::types::{
    Entry, EntryPayload, HardState, LogId, LogIndex, Membership, NodeId, Role, Term,
};

/// What a node restarts from: the durable state its driver read back from storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoredState {
    /// The persisted hard state.
    pub hard_state: HardState,
    /// The membership in force before the first of `entries`: the bootstrap membership, or
    /// the snapshot's when there is one (the two must then agree).
    pub membership: Membership,
    /// The latest durable snapshot, when the log was ever compacted.
    pub snapshot: Option<Snapshot>,
    /// The persisted entries after the snapshot (from index 1 without one), in order.
    pub entries: Vec<Entry>,
    /// The last index the application's durable state already reflects; entries after it
    /// are handed out again for applying. `LogIndex::ZERO` for a volatile state machine.
    pub applied_index: LogIndex,
}

impl RestoredState {
    /// The state of a brand-new node of a cluster whose voters are `membership`. A node
    /// joining a running cluster starts with `Membership::default()` (no voters): it never
    /// campaigns, and learns the membership from the leader's log.
    #[must_use]
    pub fn bootstrap(membership: Membership) -> RestoredState {
        RestoredState {
            hard_state: HardState::default(),
            membership,
            snapshot: None,
            entries: Vec::new(),
            applied_index: LogIndex::ZERO,
        }
    }

    /// The id of the last entry the snapshot covers (`LogId::ZERO` without one).
    #[must_use]
    pub fn compacted(&self) -> LogId {
        self.snapshot.as_ref().map_or(LogId::ZERO, |snapshot| snapshot.meta.last_log_id)
    }

    fn validate(&self) -> Result<(), Error> {
        let compacted = self.compacted();
        let mut previous = compacted;
        for entry in &self.entries {
            if entry.log_id.index != previous.index.next() || entry.log_id.term < previous.term {
                return Err(Error::LogNotContiguous {
                    previous: previous.index,
                    found: entry.log_id,
                });
            }
            previous = entry.log_id;
        }
        let invalid = |reason| Err(Error::InvalidRestoredState { reason });
        if previous.term > self.hard_state.term {
            let hard_state_term = self.hard_state.term;
            return invalid(Problem::EntryTermAboveHardState { last: previous, hard_state_term });
        }
        if self.hard_state.commit_index > previous.index {
            let commit_index = self.hard_state.commit_index;
            return invalid(Problem::CommitIndexPastLog { commit_index, last: previous });
        }
        if self.applied_index > previous.index || self.applied_index < compacted.index {
            return invalid(Problem::AppliedIndexOutsideLog {
                applied_index: self.applied_index,
                compacted_index: compacted.index,
                last_index: previous.index,
            });
        }
        if let Some(snapshot) = &self.snapshot {
            if snapshot.meta.membership != self.membership {
                return invalid(Problem::SnapshotMembershipDiffers {
                    snapshot: snapshot.meta.membership.clone(),
                    restored: self.membership.clone(),
                });
            }
        }
        if let Some(&node) = self.membership.voters.intersection(&self.membership.learners).next() {
            return invalid(Problem::VoterAndLearner { node });
        }
        Ok(())
    }
}

/// One Raft node: a deterministic state machine with no I/O, clock or OS randomness.
///
/// Feed it inputs, then take a [`Ready`] and do what it says (see [`Ready`] for the order).
/// Given the same configuration, restored state, seed and inputs, it produces the same
/// `Ready`s.
#[derive(Debug)]
pub struct Node {
    pub(crate) config: Config,
    pub(crate) rng: ChaCha8Rng,
    /// The membership in force: the last membership entry in the log, else `base_membership`.
    pub(crate) membership: Membership,
    /// The index of the entry that set `membership` (the compacted index for the base).
    pub(crate) membership_index: LogIndex,
    /// The membership at the compacted boundary.
    pub(crate) base_membership: Membership,
    pub(crate) term: Term,
    pub(crate) voted_for: Option<NodeId>,
    pub(crate) log: RaftLog,
    /// The role, with the state that exists only in it.
    pub(crate) role: RoleState,
    /// Ticks since the last election timeout reset (followers, candidates) or since the last
    /// CheckQuorum round (leaders).
    pub(crate) election_elapsed_ticks: u64,
    /// This term's randomized election timeout, in `[election_ticks, 2 * election_ticks)`.
    pub(crate) election_timeout_ticks: u64,
    /// The last heartbeat round this node sent as leader. Rounds are numbered across all
    /// its terms, so a round number never repeats in its messages.
    pub(crate) heartbeat_round: u64,
    pub(crate) messages_now: Vec<Message>,
    pub(crate) messages_after_persist: Vec<Message>,
    /// Confirmed reads for the next `Ready`.
    pub(crate) read_states: Vec<ReadState>,
    /// The latest snapshot, sent to followers behind the compacted prefix.
    pub(crate) snapshot: Option<Snapshot>,
    /// A snapshot being received from the leader.
    pub(crate) incoming_snapshot: Option<IncomingSnapshot>,
    /// A received snapshot for the next `Ready`.
    pub(crate) snapshot_to_install: Option<Snapshot>,
    /// The hard state last handed out in a `Ready`.
    pub(crate) hard_state_handed_out: HardState,
    /// The soft state last handed out in a `Ready`.
    pub(crate) soft_state_handed_out: SoftState,
}

impl Node {
    /// Creates a node from its configuration, its restored durable state and a seed for its
    /// election-timeout randomness.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `config` breaks a rule; [`Error::InvalidRestoredState`]
    /// or [`Error::LogNotContiguous`] when `restored` is inconsistent.
    pub fn new(config: Config, restored: RestoredState, seed: u64) -> Result<Node, Error> {
        config.validate()?;
        restored.validate()?;
        let hard_state = restored.hard_state;
        let commit_index = hard_state.commit_index.max(restored.applied_index);
        let compacted = restored.compacted();
        let log =
            RaftLog::restored(compacted, restored.entries, commit_index, restored.applied_index);
        let soft_state = SoftState { role: Role::Follower, term: hard_state.term, leader: None };
        let mut node = Node {
            election_timeout_ticks: config.election_ticks,
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            membership: restored.membership.clone(),
            membership_index: compacted.index,
            base_membership: restored.membership,
            term: hard_state.term,
            voted_for: hard_state.voted_for,
            log,
            role: RoleState::Follower { leader: None },
            election_elapsed_ticks: 0,
            heartbeat_round: 0,
            messages_now: Vec::new(),
            messages_after_persist: Vec::new(),
            read_states: Vec::new(),
            snapshot: restored.snapshot,
            incoming_snapshot: None,
            snapshot_to_install: None,
            hard_state_handed_out: HardState { commit_index, ..hard_state },
            soft_state_handed_out: soft_state,
        };
        node.refresh_membership();
        node.reset_election_timeout();
        Ok(node)
    }

    /// Advances the node's logical clock by one tick: followers and candidates count toward
    /// an election timeout, leaders toward the next heartbeat and CheckQuorum round.
    pub fn tick(&mut self) {
        match self.role {
            RoleState::Leader(_) => self.tick_leader(),
            RoleState::Follower { .. } | RoleState::PreCandidate(_) | RoleState::Candidate(_) => {
                self.tick_election();
            }
        }
    }

    /// Handles a message from a peer.
    ///
    /// # Errors
    ///
    /// [`Error::MisaddressedMessage`] when the message is for another node; the node is
    /// unchanged.
    pub fn step(&mut self, message: Message) -> Result<(), Error> {
        if message.to != self.config.id {
            return Err(Error::MisaddressedMessage { to: message.to, this: self.config.id });
        }
        debug!(
            from = %message.from,
            term = %message.term,
            kind = message.body.kind(),
            "received message"
        );
        if message.term > self.term {
            if !self.step_higher_term(&message) {
                return Ok(());
            }
        } else if message.term < self.term {
            self.step_lower_term(&message);
            return Ok(());
        }
        self.step_current_term(message);
        Ok(())
    }

    /// Handles a message from a later term. Returns whether it should then be handled as a
    /// message of the current term.
    fn step_higher_term(&mut self, message: &Message) -> bool {
        match message.body {
            MessageBody::VoteRequest { campaign, .. } => {
                if self.in_leader_lease() && campaign != Campaign::Transfer {
                    // A node that heard from a live leader recently ignores candidates, so a
                    // node that cannot hear the leader does not depose it (§4.2.3).
                    debug!(from = %message.from, "ignored vote request inside leader lease");
                    return false;
                }
                if !campaign.is_pre_vote() {
                    self.become_follower(message.term, None);
                }
            }
            MessageBody::VoteResponse { campaign: Campaign::PreVote, granted: true } => {}
            MessageBody::AppendRequest { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => {
                self.become_follower(message.term, Some(message.from));
            }
            MessageBody::VoteResponse { .. }
            | MessageBody::AppendResponse { .. }
            | MessageBody::HeartbeatResponse { .. }
            | MessageBody::TimeoutNow
            | MessageBody::InstallSnapshotResponse { .. }
            | MessageBody::ReadIndexRequest { .. }
            | MessageBody::ReadIndexResponse { .. } => self.become_follower(message.term, None),
        }
        true
    }

    /// Handles a message from an earlier term: a stale leader learns our term so it steps
    /// down, a stale pre-candidate learns it lost; anything else is dropped.
    fn step_lower_term(&mut self, message: &Message) {
        match message.body {
            MessageBody::AppendRequest { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => {
                self.send(message.from, MessageBody::HeartbeatResponse { round: 0 });
            }
            MessageBody::VoteRequest { campaign: Campaign::PreVote, .. } => {
                let body =
                    MessageBody::VoteResponse { campaign: Campaign::PreVote, granted: false };
                self.send(message.from, body);
            }
            _ => debug!(from = %message.from, term = %message.term, "dropped stale message"),
        }
    }

    fn step_current_term(&mut self, message: Message) {
        let from = message.from;
        match message.body {
            MessageBody::VoteRequest { campaign, last_log_id } => {
                self.handle_vote_request(from, message.term, campaign, last_log_id);
            }
            MessageBody::VoteResponse { campaign, granted } => {
                self.handle_vote_response(from, campaign, granted);
            }
            MessageBody::AppendRequest { prev_log_id, entries, leader_commit, answer_wanted } => {
                self.handle_append_request(
                    from,
                    prev_log_id,
                    entries,
                    leader_commit,
                    answer_wanted,
                );
            }
            MessageBody::AppendResponse { result } => self.handle_append_response(from, result),
            MessageBody::Heartbeat { commit_index, round } => {
                self.handle_heartbeat(from, commit_index, round);
            }
            MessageBody::HeartbeatResponse { round } => self.handle_heartbeat_response(from, round),
            MessageBody::TimeoutNow => self.handle_timeout_now(from),
            MessageBody::InstallSnapshot { meta, offset, total_bytes, data } => {
                self.handle_install_snapshot(from, meta, offset, total_bytes, data);
            }
            MessageBody::InstallSnapshotResponse { last_log_id, received_bytes } => {
                self.handle_install_snapshot_response(from, last_log_id, received_bytes);
            }
            MessageBody::ReadIndexRequest { read_id } => {
                self.handle_read_index_request(from, read_id);
            }
            MessageBody::ReadIndexResponse { read_id, read_index } => {
                self.handle_read_index_response(read_id, read_index);
            }
        }
    }

    /// Appends a command to the leader's log for replication.
    ///
    /// The entry is committed only once a majority stores it; watch `committed_entries` for
    /// its id. It may never commit if leadership is lost first.
    ///
    /// # Errors
    ///
    /// [`Error::NotLeader`] with the leader this node knows of, when it is not the leader;
    /// [`Error::TransferInProgress`] while leadership is being handed over.
    pub fn propose(&mut self, payload: Bytes) -> Result<LogId, Error> {
        self.check_accepts_proposals()?;
        Ok(self.append_own_entry(EntryPayload::Command(payload)))
    }

    /// Whether this node takes proposals now: it leads and is not handing over leadership.
    ///
    /// # Errors
    ///
    /// [`Error::NotLeader`] or [`Error::TransferInProgress`], as for [`Node::propose`].
    pub(crate) fn check_accepts_proposals(&self) -> Result<(), Error> {
        let RoleState::Leader(leader) = &self.role else {
            return Err(Error::NotLeader { leader_hint: self.leader() });
        };
        if let Some(transfer) = leader.transfer {
            return Err(Error::TransferInProgress { target: transfer.target });
        }
        Ok(())
    }

    pub(crate) fn append_own_entry(&mut self, payload: EntryPayload) -> LogId {
        let log_id = LogId::new(self.term, self.log.last_index().next());
        let changes_membership = matches!(payload, EntryPayload::Membership(_));
        self.log.append(Entry { log_id, payload });
        if let Some(leader) = self.leader_state_mut() {
            leader.replication_pending = true;
        }
        if changes_membership {
            self.refresh_membership();
        }
        log_id
    }

    /// Whether [`Node::ready`] has work to hand out.
    #[must_use]
    pub fn has_ready(&self) -> bool {
        !self.messages_now.is_empty()
            || !self.messages_after_persist.is_empty()
            || self.log.has_unpersisted()
            || self.log.has_committed_to_apply()
            || !self.read_states.is_empty()
            || self.snapshot_to_install.is_some()
            || self
                .leader_state()
                .is_some_and(|leader| leader.replication_pending || leader.reads.round_needed)
            || self.hard_state_to_hand_out(&[]).is_some()
            || self.soft_state() != self.soft_state_handed_out
    }

    /// Hands out the work accumulated since the last call. See [`Ready`] for what the driver
    /// must do with it, and in which order.
    pub fn ready(&mut self) -> Ready {
        let replication_pending = self
            .leader_state_mut()
            .is_some_and(|leader| std::mem::take(&mut leader.replication_pending));
        if replication_pending {
            self.broadcast_append();
        }
        if self.leader_state().is_some_and(|leader| leader.reads.round_needed) {
            self.broadcast_heartbeat();
        }
        let entries_to_persist = self.log.take_unpersisted();
        let hard_state = self.hard_state_to_hand_out(&entries_to_persist);
        if let Some(hard_state) = hard_state {
            self.hard_state_handed_out = hard_state;
        }
        let soft_state = self.soft_state();
        let soft_state = (soft_state != self.soft_state_handed_out).then(|| {
            self.soft_state_handed_out = soft_state;
            soft_state
        });
        Ready {
            hard_state,
            entries_to_persist,
            messages_now: std::mem::take(&mut self.messages_now),
            messages_after_persist: std::mem::take(&mut self.messages_after_persist),
            committed_entries: self.log.take_committed(),
            soft_state,
            read_states: std::mem::take(&mut self.read_states),
            snapshot_to_install: self.snapshot_to_install.take(),
        }
    }

    /// Reports that every entry up to `last` (and the hard state handed out with it) is
    /// durable. Acknowledgements for entries since overwritten are ignored.
    pub fn on_persisted(&mut self, last: LogId) {
        if self.log.on_persisted(last) && self.is_leader() {
            self.advance_commit_index();
        }
    }

    /// The hard state as it stands now.
    #[must_use]
    pub fn hard_state(&self) -> HardState {
        self.current_hard_state()
    }

    /// The hard state a `Ready` must persist, if any: always when the term or vote changed;
    /// when only the commit index did, just when `entries_to_persist` are written anyway (it
    /// is a hint, not worth a write of its own).
    fn hard_state_to_hand_out(&self, entries_to_persist: &[Entry]) -> Option<HardState> {
        let current = self.current_hard_state();
        let handed_out = self.hard_state_handed_out;
        let vote_changed =
            current.term != handed_out.term || current.voted_for != handed_out.voted_for;
        let commit_changed = current.commit_index != handed_out.commit_index;
        (vote_changed || (commit_changed && !entries_to_persist.is_empty())).then_some(current)
    }

    fn current_hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
            commit_index: self.log.commit_index(),
        }
    }

    fn soft_state(&self) -> SoftState {
        SoftState { role: self.role(), term: self.term, leader: self.leader() }
    }

    /// Queues a message in the current term.
    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        let term = self.term;
        self.send_in_term(to, term, body);
    }

    /// Queues a message, choosing whether it may leave before the pending write is durable.
    ///
    /// A leader's appends and heartbeats go at once: its term was made durable before it
    /// could win, and its own entries count toward commit only once persisted. Pre-votes
    /// change no durable state. Everything else (votes, acknowledgements) promises durable
    /// state and waits for the write.
    pub(crate) fn send_in_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        let sends_now = matches!(
            body,
            MessageBody::AppendRequest { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::VoteRequest { campaign: Campaign::PreVote, .. }
                | MessageBody::VoteResponse { campaign: Campaign::PreVote, .. }
        );
        let message = Message { from: self.config.id, to, term, body };
        if sends_now {
            self.messages_now.push(message);
        } else {
            self.messages_after_persist.push(message);
        }
    }

    /// The highest value a majority of the voters has reached, counting `own` for this node
    /// (when it is a voter) and `peer` of each other voter's progress (`None`: not reached).
    /// Used for the commit index, confirmed read rounds and the lease start.
    pub(crate) fn quorum_value<T: Ord + Copy>(
        &self,
        own: T,
        peer: impl Fn(&Progress) -> Option<T>,
    ) -> Option<T> {
        let id = self.config.id;
        let progress = self.leader_state().map(|leader| &leader.progress);
        quorum::quorum_value(&self.membership, |voter| {
            if voter == id {
                Some(own)
            } else {
                progress.and_then(|progress| progress.get(&voter)).and_then(&peer)
            }
        })
    }

    /// The voters other than this node: whom to ask for votes.
    pub(crate) fn voting_peers(&self) -> Vec<NodeId> {
        let id = self.config.id;
        self.membership.voters.iter().copied().filter(|&voter| voter != id).collect()
    }

    /// Every member other than this node: whom the leader replicates to.
    pub(crate) fn replication_peers(&self) -> Vec<NodeId> {
        let id = self.config.id;
        self.membership.members().filter(|&member| member != id).collect()
    }

    pub(crate) fn reset_election_timeout(&mut self) {
        let min = self.config.election_ticks;
        self.election_timeout_ticks = self.rng.random_range(min..2 * min);
        self.election_elapsed_ticks = 0;
    }

    /// A leader was heard from within the minimum election timeout (only with CheckQuorum,
    /// which is what makes a lease trustworthy).
    pub(crate) fn in_leader_lease(&self) -> bool {
        self.config.check_quorum
            && self.leader().is_some()
            && self.election_elapsed_ticks < self.config.election_ticks
    }

    /// Becomes a follower in `term` (which must not be lower than the current one).
    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(term >= self.term, "terms never fall");
        if term > self.term {
            self.term = term;
            self.voted_for = None;
        }
        if self.role() != Role::Follower || self.leader() != leader {
            info!(node = %self.config.id, %term, leader = ?leader, "became follower");
        }
        // A leader's state goes with its role: unconfirmed reads are dropped (their callers
        // time out and retry at the new leader), and so is a transfer under way.
        self.role = RoleState::Follower { leader };
        self.reset_election_timeout();
    }

    /// Becomes leader of the current term after winning its election.
    pub(crate) fn become_leader(&mut self) {
        assert_eq!(self.role(), Role::Candidate, "only a candidate becomes leader");
        assert_eq!(self.voted_for, Some(self.config.id), "a leader voted for itself");
        info!(node = %self.config.id, term = %self.term, "became leader");
        self.election_elapsed_ticks = 0;
        let next_index = self.log.last_index().next();
        let progress = self
            .replication_peers()
            .into_iter()
            .map(|peer| (peer, Progress::new(next_index)))
            .collect();
        self.role = RoleState::Leader(LeaderState::new(progress));
        // An entry of the new term lets the leader commit everything before it (§5.4.2).
        self.append_own_entry(EntryPayload::Empty);
        self.advance_commit_index();
    }

    /// This node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// This node's configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node's current role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role.role()
    }

    /// Whether this node leads the current term.
    pub(crate) fn is_leader(&self) -> bool {
        matches!(self.role, RoleState::Leader(_))
    }

    /// The leader's state, on a leader.
    pub(crate) fn leader_state(&self) -> Option<&LeaderState> {
        match &self.role {
            RoleState::Leader(leader) => Some(leader),
            RoleState::Follower { .. } | RoleState::PreCandidate(_) | RoleState::Candidate(_) => {
                None
            }
        }
    }

    /// The leader's state, on a leader, for changing.
    pub(crate) fn leader_state_mut(&mut self) -> Option<&mut LeaderState> {
        match &mut self.role {
            RoleState::Leader(leader) => Some(leader),
            RoleState::Follower { .. } | RoleState::PreCandidate(_) | RoleState::Candidate(_) => {
                None
            }
        }
    }

    /// The node's current term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.term
    }

    /// The leader of the current term this node knows of.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        match self.role {
            RoleState::Follower { leader } => leader,
            RoleState::PreCandidate(_) | RoleState::Candidate(_) => None,
            RoleState::Leader(_) => Some(self.config.id),
        }
    }

    /// The candidate this node voted for in the current term.
    #[must_use]
    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }

    /// The highest index this node knows is committed.
    #[must_use]
    pub fn commit_index(&self) -> LogIndex {
        self.log.commit_index()
    }

    /// The highest index handed out for applying.
    #[must_use]
    pub fn applied_index(&self) -> LogIndex {
        self.log.applied_index()
    }

    /// The highest index reported durable with [`Node::on_persisted`].
    #[must_use]
    pub fn persisted_index(&self) -> LogIndex {
        self.log.persisted_index()
    }

    /// The id of the last entry in the log.
    #[must_use]
    pub fn last_log_id(&self) -> LogId {
        self.log.last_log_id()
    }

    /// The first index held in memory (after the compacted prefix).
    #[must_use]
    pub fn first_index(&self) -> LogIndex {
        self.log.first_index()
    }

    /// The entries held in memory, from [`Node::first_index`] on.
    #[must_use]
    pub fn log_entries(&self) -> &[Entry] {
        self.log.entries()
    }

    /// The term of the entry at `index`, when known.
    #[must_use]
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.log.term_at(index)
    }

    /// The membership in force.
    #[must_use]
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// On a leader, the highest index known to match on `peer`.
    #[must_use]
    pub fn match_index(&self, peer: NodeId) -> Option<LogIndex> {
        self.leader_state()?.progress.get(&peer).map(Progress::match_index)
    }
}
