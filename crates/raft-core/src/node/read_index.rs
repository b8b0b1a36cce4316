//! Linearizable reads without writing to the log (Raft dissertation §6.4): ReadIndex, and
//! the optional leader lease of §6.4.1.
//!
//! A read registered at commit index `c` is safe to serve once (1) the leader has committed
//! an entry of its own term, so `c` covers every entry committed by earlier leaders, and
//! (2) a majority answered a heartbeat sent after the read was registered, so no newer
//! leader existed when it was registered. The application then serves it once it has
//! applied up to `c`.
//!
//! Heartbeats carry a round number; reads wait for the first round sent after them, and
//! every read registered before a round is confirmed by that round at once, so a burst of
//! reads costs one heartbeat round.

use tracing::debug;

use super::Node;
use crate::config::ReadMode;
use crate::error::Error;
use crate::message::{MessageBody, ReadId};
use crate::progress::Progress;
use crate::reads::{PENDING_READS_MAX, PendingRead};
use crate::ready::ReadState;
use crate::types::{LogIndex, NodeId, Role};

impl Node {
    /// Asks for a linearizable read. The answer comes as a [`ReadState`] with the same
    /// `read_id` in a later [`crate::Ready`]; serve the read once applied up to its index.
    /// On a follower the request is forwarded to the leader; if the leader changes first,
    /// no answer comes and the caller retries after its timeout.
    ///
    /// # Errors
    ///
    /// [`Error::NotLeader`] when no leader is known; [`Error::TooManyPendingReads`] when the
    /// leader's queue of unconfirmed reads is full.
    pub fn read_index(&mut self, read_id: ReadId) -> Result<(), Error> {
        match (self.role(), self.leader()) {
            (Role::Leader, _) => self.register_read(read_id, self.config.id),
            (_, Some(leader)) => {
                self.send(leader, MessageBody::ReadIndexRequest { read_id });
                Ok(())
            }
            (_, None) => Err(Error::NotLeader { leader_hint: None }),
        }
    }

    pub(crate) fn handle_read_index_request(&mut self, requester: NodeId, read_id: ReadId) {
        if !self.is_leader() {
            debug!(%requester, "read index request to a non-leader; dropped");
            return;
        }
        if let Err(error) = self.register_read(read_id, requester) {
            debug!(%requester, %error, "read index request refused; the follower will retry");
        }
    }

    pub(crate) fn handle_read_index_response(&mut self, read_id: ReadId, read_index: LogIndex) {
        self.read_states.push(ReadState { read_id, read_index });
    }

    fn register_read(&mut self, read_id: ReadId, requester: NodeId) -> Result<(), Error> {
        let Some(leader) = self.leader_state() else {
            return Err(Error::NotLeader { leader_hint: self.leader() });
        };
        let pending = leader.reads.pending_count();
        if pending >= PENDING_READS_MAX {
            return Err(Error::TooManyPendingReads { pending });
        }
        let read_index = self.committed_in_current_term().then(|| self.log.commit_index());
        if self.config.read_mode == ReadMode::Lease {
            if let Some(read_index) = read_index.filter(|_| self.lease_is_valid()) {
                self.deliver_read(requester, read_id, read_index);
                return Ok(());
            }
        }
        let round = self.heartbeat_round + 1;
        if let Some(leader) = self.leader_state_mut() {
            leader.reads.register(PendingRead { read_id, requester, read_index, round });
        }
        self.confirm_reads();
        Ok(())
    }

    /// Whether the leader has committed an entry of its own term (§6.4 step 1).
    pub(crate) fn committed_in_current_term(&self) -> bool {
        self.log.term_at(self.log.commit_index()) == Some(self.term)
    }

    /// Gives reads registered before the first commit of this term their read index.
    pub(crate) fn on_commit_for_reads(&mut self) {
        if !self.committed_in_current_term() {
            return;
        }
        let commit_index = self.log.commit_index();
        if let Some(leader) = self.leader_state_mut() {
            leader.reads.on_first_commit(commit_index);
        }
        self.confirm_reads();
    }

    /// The highest heartbeat round a majority (the leader included) has answered.
    fn quorum_round(&self) -> u64 {
        self.quorum_value(self.heartbeat_round, |p| Some(p.round_acked())).unwrap_or(0)
    }

    /// Hands out every read whose round a majority answered and whose index is known.
    pub(crate) fn confirm_reads(&mut self) {
        let confirmed_round = self.quorum_round();
        while let Some((requester, read_id, read_index)) =
            self.leader_state_mut().and_then(|leader| leader.reads.pop_confirmed(confirmed_round))
        {
            self.deliver_read(requester, read_id, read_index);
        }
    }

    fn deliver_read(&mut self, requester: NodeId, read_id: ReadId, read_index: LogIndex) {
        if requester == self.config.id {
            self.read_states.push(ReadState { read_id, read_index });
        } else {
            self.send(requester, MessageBody::ReadIndexResponse { read_id, read_index });
        }
    }

    /// Whether a majority answered a heartbeat sent less than `lease_ticks` ago, no
    /// leadership transfer (which lets a follower campaign inside the lease) is under way,
    /// and no TimeoutNow went out this term (its target may still win, however late).
    fn lease_is_valid(&self) -> bool {
        let Some(leader) = self.leader_state() else {
            return false;
        };
        if leader.transfer.is_some() || leader.reads.lease_revoked {
            return false;
        }
        let now = leader.reads.leader_ticks;
        let sent_tick = |p: &Progress| leader.reads.sent_tick(p.round_acked());
        let Some(lease_start) = self.quorum_value(now, sent_tick) else {
            return false;
        };
        now - lease_start < self.config.lease_ticks
    }
}
