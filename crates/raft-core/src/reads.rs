//! The leader's bookkeeping of reads waiting for a heartbeat round to confirm them (see
//! `node/read_index.rs` for the protocol).

use std::collections::VecDeque;

use crate::message::ReadId;
use crate::types::{LogIndex, NodeId};

/// The most reads a leader holds unconfirmed. Reads are confirmed within a heartbeat round
/// trip, so this bounds memory under a burst without limiting a healthy leader.
pub(crate) const PENDING_READS_MAX: usize = 16_384;

/// How many heartbeat rounds the leader remembers the send tick of, for leases. A round
/// older than this many rounds cannot hold a lease up anyway.
const ROUND_TICKS_KEPT: usize = 256;

/// A read waiting for confirmation on the leader.
#[derive(Clone, Debug)]
pub(crate) struct PendingRead {
    /// The caller's id for the read.
    pub(crate) read_id: ReadId,
    /// Who asked: the leader itself or a follower that forwarded it.
    pub(crate) requester: NodeId,
    /// The commit index when registered; `None` until the leader commits in its term.
    pub(crate) read_index: Option<LogIndex>,
    /// The first heartbeat round that can confirm it.
    pub(crate) round: u64,
}

/// The leader's read bookkeeping, for one term of leadership.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReadTracker {
    /// Reads registered since the last round was sent: a new round must go out.
    pub(crate) round_needed: bool,
    pending: VecDeque<PendingRead>,
    /// The leader's tick count when each recent round was sent (for leases).
    round_sent_ticks: VecDeque<(u64, u64)>,
    /// Ticks counted since this node became leader.
    pub(crate) leader_ticks: u64,
    /// A TimeoutNow went out this term: its target may campaign (and voters vote for it
    /// inside the lease) at any later moment the message arrives, so no lease can be
    /// trusted again until the next term. Reads then take a heartbeat round.
    pub(crate) lease_revoked: bool,
}

impl ReadTracker {
    /// How many reads wait for confirmation.
    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Records that heartbeat round `round` was sent now: it confirms every read waiting.
    pub(crate) fn on_round_sent(&mut self, round: u64) {
        self.round_needed = false;
        self.round_sent_ticks.push_back((round, self.leader_ticks));
        while self.round_sent_ticks.len() > ROUND_TICKS_KEPT {
            self.round_sent_ticks.pop_front();
        }
    }

    /// Queues a read until a heartbeat round confirms it; a new round must go out.
    pub(crate) fn register(&mut self, read: PendingRead) {
        self.pending.push_back(read);
        self.round_needed = true;
    }

    /// Gives reads registered before the first commit of the term their read index.
    pub(crate) fn on_first_commit(&mut self, commit_index: LogIndex) {
        for read in self.pending.iter_mut().filter(|read| read.read_index.is_none()) {
            read.read_index = Some(commit_index);
        }
    }

    /// Takes the oldest read if `confirmed_round` confirms it and its index is known.
    pub(crate) fn pop_confirmed(
        &mut self,
        confirmed_round: u64,
    ) -> Option<(NodeId, ReadId, LogIndex)> {
        let read = self.pending.front()?;
        let read_index = read.read_index?;
        if read.round > confirmed_round {
            return None;
        }
        let confirmed = (read.requester, read.read_id, read_index);
        self.pending.pop_front();
        Some(confirmed)
    }

    pub(crate) fn sent_tick(&self, round: u64) -> Option<u64> {
        let position = self.round_sent_ticks.binary_search_by_key(&round, |&(r, _)| r).ok()?;
        self.round_sent_ticks.get(position).map(|&(_, tick)| tick)
    }
}
