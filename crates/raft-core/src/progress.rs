//! What a leader knows about each follower's log, and the flow control of appends to it.

use std::collections::VecDeque;

use crate::types::{LogId, LogIndex};

/// How the leader is sending to one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ReplicationState {
    /// The leader does not know where the follower's log matches: one append at a time,
    /// waiting for its answer (or the next heartbeat response) before sending another.
    Probe {
        /// An append is outstanding.
        paused: bool,
    },
    /// The follower matched: appends are pipelined, `next_index` advances optimistically,
    /// and each append's last index waits in `inflight` until acknowledged.
    Replicate {
        /// The last index of each unacknowledged append, oldest first.
        inflight: VecDeque<LogIndex>,
    },
    /// The follower needs entries the leader compacted: the snapshot goes in chunks, one
    /// at a time.
    Snapshot {
        /// The snapshot being sent.
        last_log_id: LogId,
        /// The next byte to send (the follower acknowledged everything before it).
        offset: u64,
        /// A chunk is outstanding.
        paused: bool,
    },
}

/// The leader's view of one follower.
///
/// The leader changes it only through the methods below, one per event (an append sent, an
/// answer received), as etcd's `tracker/progress.go` does, so the flow-control rules live in
/// one place.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// The highest index known to match the leader's log, durably on the follower.
    match_index: LogIndex,
    /// The next index to send.
    next_index: LogIndex,
    state: ReplicationState,
    /// Heard from the follower since the last CheckQuorum round.
    recent_active: bool,
    /// The commit index last sent to the follower, so a commit advance is propagated once.
    commit_sent: LogIndex,
    /// The latest heartbeat round the follower answered (confirms reads and leases).
    round_acked: u64,
}

impl Progress {
    /// A follower the leader knows nothing about yet: probe from the leader's next index.
    pub(crate) fn new(next_index: LogIndex) -> Progress {
        Progress {
            match_index: LogIndex::ZERO,
            next_index,
            state: ReplicationState::Probe { paused: false },
            recent_active: false,
            commit_sent: LogIndex::ZERO,
            round_acked: 0,
        }
    }

    /// The highest index known to match the leader's log, durably on the follower.
    pub(crate) fn match_index(&self) -> LogIndex {
        self.match_index
    }

    /// The next index to send.
    pub(crate) fn next_index(&self) -> LogIndex {
        self.next_index
    }

    /// The latest heartbeat round the follower answered.
    pub(crate) fn round_acked(&self) -> u64 {
        self.round_acked
    }

    /// Whether the follower was heard from since the last CheckQuorum round.
    pub(crate) fn is_recently_active(&self) -> bool {
        self.recent_active
    }

    /// Whether `commit_index` is news to the follower (it was not sent yet).
    pub(crate) fn has_commit_news(&self, commit_index: LogIndex) -> bool {
        self.commit_sent < commit_index
    }

    /// The follower was heard from: it counts toward the next CheckQuorum round.
    pub(crate) fn mark_recently_active(&mut self) {
        self.recent_active = true;
    }

    /// A new CheckQuorum round starts: the follower must be heard from again.
    pub(crate) fn clear_recently_active(&mut self) {
        self.recent_active = false;
    }

    /// Whether another append may be sent now.
    pub(crate) fn is_paused(&self, inflight_max: u64) -> bool {
        match &self.state {
            ReplicationState::Probe { paused } | ReplicationState::Snapshot { paused, .. } => {
                *paused
            }
            ReplicationState::Replicate { inflight } => inflight.len() as u64 >= inflight_max,
        }
    }

    /// Whether the leader does not yet know where the follower's log matches.
    pub(crate) fn is_probing(&self) -> bool {
        matches!(self.state, ReplicationState::Probe { .. })
    }

    /// Whether the follower is being sent a snapshot.
    pub(crate) fn is_sending_snapshot(&self) -> bool {
        matches!(self.state, ReplicationState::Snapshot { .. })
    }

    /// The last entry of the snapshot being sent, if one is.
    pub(crate) fn snapshot_being_sent(&self) -> Option<LogId> {
        match self.state {
            ReplicationState::Snapshot { last_log_id, .. } => Some(last_log_id),
            ReplicationState::Probe { .. } | ReplicationState::Replicate { .. } => None,
        }
    }

    /// Lets a probing leader send again (an answer arrived).
    pub(crate) fn resume(&mut self) {
        if let ReplicationState::Probe { paused } = &mut self.state {
            *paused = false;
        }
    }

    /// The follower answered a heartbeat: it is alive. A probe may go again, and a full
    /// pipeline frees its oldest slot, so that if every append in flight was lost the next
    /// append still goes out and the follower's rejection reveals the gap. `round` is the
    /// heartbeat round answered.
    pub(crate) fn on_heartbeat_response(&mut self, inflight_max: u64, round: u64) {
        self.round_acked = self.round_acked.max(round);
        match &mut self.state {
            ReplicationState::Probe { paused } | ReplicationState::Snapshot { paused, .. } => {
                *paused = false;
            }
            ReplicationState::Replicate { inflight } => {
                if inflight.len() as u64 >= inflight_max {
                    inflight.pop_front();
                }
            }
        }
    }

    /// Records that an append ending at `last_index` (`None`: no entries) and carrying
    /// `commit_index` was sent.
    pub(crate) fn on_append_sent(&mut self, last_index: Option<LogIndex>, commit_index: LogIndex) {
        self.commit_sent = commit_index;
        match &mut self.state {
            ReplicationState::Probe { paused } => *paused = true,
            ReplicationState::Replicate { inflight } => {
                if let Some(last_index) = last_index {
                    inflight.push_back(last_index);
                    self.next_index = last_index.next();
                }
            }
            ReplicationState::Snapshot { .. } => {}
        }
    }

    /// The follower installed a snapshot ending at `last_index`: probe from just after it.
    pub(crate) fn on_snapshot_installed(&mut self, last_index: LogIndex) {
        self.match_index = self.match_index.max(last_index);
        self.next_index = self.match_index.next();
        self.state = ReplicationState::Probe { paused: false };
    }

    /// Records an acknowledged match. Returns whether it told the leader anything new.
    pub(crate) fn on_match(&mut self, match_index: LogIndex) -> bool {
        if match_index <= self.match_index {
            return false;
        }
        self.match_index = match_index;
        self.next_index = self.next_index.max(match_index.next());
        match &mut self.state {
            ReplicationState::Probe { .. } => {
                self.state = ReplicationState::Replicate { inflight: VecDeque::new() };
                self.next_index = match_index.next();
            }
            // A late answer to an append sent before the snapshot began: keep sending the
            // snapshot unless this answer already covers it.
            ReplicationState::Snapshot { last_log_id, .. } => {
                if match_index >= last_log_id.index {
                    self.state = ReplicationState::Replicate { inflight: VecDeque::new() };
                    self.next_index = match_index.next();
                }
            }
            ReplicationState::Replicate { inflight } => {
                while inflight.front().is_some_and(|&last| last <= match_index) {
                    inflight.pop_front();
                }
            }
        }
        true
    }

    /// Whether a rejection of an append whose `prev_log_id.index` was `rejected_index` is
    /// stale: it answers an append sent before the leader learned more.
    pub(crate) fn is_stale_rejection(&self, rejected_index: LogIndex) -> bool {
        match &self.state {
            ReplicationState::Replicate { .. } => rejected_index <= self.match_index,
            ReplicationState::Probe { .. } => self.next_index.prev() != Some(rejected_index),
            ReplicationState::Snapshot { .. } => true,
        }
    }

    /// Falls back to probing after a rejection, from `next_index` but never at or below
    /// the known match.
    pub(crate) fn on_rejected(&mut self, next_index: LogIndex) {
        let next_index = next_index.max(self.match_index.next());
        self.become_probe(next_index);
    }

    /// Falls back to probing from `next_index`.
    fn become_probe(&mut self, next_index: LogIndex) {
        assert!(next_index > self.match_index, "a follower is never probed below its match");
        self.next_index = next_index;
        self.state = ReplicationState::Probe { paused: false };
    }

    /// Where to send the next chunk of the snapshot ending at `last_log_id` from, or `None`
    /// while a chunk of it is outstanding. A different snapshot starts from the beginning.
    pub(crate) fn snapshot_chunk_offset(&self, last_log_id: LogId) -> Option<u64> {
        match self.state {
            ReplicationState::Snapshot { last_log_id: sending, offset, paused } => {
                if paused && sending == last_log_id {
                    return None;
                }
                Some(if sending == last_log_id { offset } else { 0 })
            }
            ReplicationState::Probe { .. } | ReplicationState::Replicate { .. } => Some(0),
        }
    }

    /// Records that the chunk at `offset` of the snapshot ending at `last_log_id` was sent:
    /// no other goes until it is answered.
    pub(crate) fn on_snapshot_chunk_sent(&mut self, last_log_id: LogId, offset: u64) {
        self.state = ReplicationState::Snapshot { last_log_id, offset, paused: true };
    }

    /// The follower holds `received_bytes` of the snapshot ending at `last_log_id` but not
    /// all of it: the next chunk goes from there.
    pub(crate) fn on_snapshot_chunk_acked(&mut self, last_log_id: LogId, received_bytes: u64) {
        self.state =
            ReplicationState::Snapshot { last_log_id, offset: received_bytes, paused: false };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_pauses_after_one_append_until_resumed() {
        let mut progress = Progress::new(LogIndex(5));
        assert!(!progress.is_paused(4));
        progress.on_append_sent(Some(LogIndex(5)), LogIndex::ZERO);
        assert!(progress.is_paused(4));
        assert_eq!(progress.next_index, LogIndex(5), "probing does not advance next_index");
        progress.resume();
        assert!(!progress.is_paused(4));
    }

    #[test]
    fn heartbeat_response_unblocks_a_full_pipeline() {
        let mut progress = Progress::new(LogIndex(1));
        progress.on_match(LogIndex(1));
        progress.on_append_sent(Some(LogIndex(2)), LogIndex::ZERO);
        assert!(progress.is_paused(1));
        progress.on_heartbeat_response(1, 1);
        assert!(!progress.is_paused(1), "lost appends must not stall the follower forever");
    }

    #[test]
    fn match_switches_to_pipelined_replication_with_bounded_window() {
        let mut progress = Progress::new(LogIndex(5));
        assert!(progress.on_match(LogIndex(5)));
        assert!(!progress.is_probing());
        progress.on_append_sent(Some(LogIndex(6)), LogIndex::ZERO);
        progress.on_append_sent(Some(LogIndex(8)), LogIndex::ZERO);
        assert_eq!(progress.next_index, LogIndex(9));
        assert!(progress.is_paused(2), "window of two is full");
        assert!(progress.on_match(LogIndex(6)));
        assert!(!progress.is_paused(2), "one slot freed");
        assert!(!progress.on_match(LogIndex(6)), "a duplicate acknowledgement says nothing new");
    }
}
