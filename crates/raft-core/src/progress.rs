//! What a leader knows about each follower's log, and the flow control of appends to it.

use std::collections::VecDeque;

use crate::types::{LogId, LogIndex};

/// How the leader is sending to one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReplicationState {
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
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// The highest index known to match the leader's log, durably on the follower.
    pub(crate) match_index: LogIndex,
    /// The next index to send.
    pub(crate) next_index: LogIndex,
    pub(crate) state: ReplicationState,
    /// Heard from the follower since the last CheckQuorum round.
    pub(crate) recent_active: bool,
    /// The commit index last sent to the follower, so a commit advance is propagated once.
    pub(crate) commit_sent: LogIndex,
    /// The latest heartbeat round the follower answered (confirms reads and leases).
    pub(crate) round_acked: u64,
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

    /// Whether another append may be sent now.
    pub(crate) fn is_paused(&self, inflight_max: u64) -> bool {
        match &self.state {
            ReplicationState::Probe { paused } | ReplicationState::Snapshot { paused, .. } => {
                *paused
            }
            ReplicationState::Replicate { inflight } => inflight.len() as u64 >= inflight_max,
        }
    }

    pub(crate) fn is_probing(&self) -> bool {
        matches!(self.state, ReplicationState::Probe { .. })
    }

    /// Lets a probing leader send again (an answer arrived).
    pub(crate) fn resume(&mut self) {
        if let ReplicationState::Probe { paused } = &mut self.state {
            *paused = false;
        }
    }

    /// The follower answered a heartbeat: it is alive. A probe may go again, and a full
    /// pipeline frees its oldest slot, so that if every append in flight was lost the next
    /// append still goes out and the follower's rejection reveals the gap.
    pub(crate) fn on_heartbeat_response(&mut self, inflight_max: u64) {
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

    /// Records that an append ending at `last_index` was sent (`None`: no entries).
    pub(crate) fn on_append_sent(&mut self, last_index: Option<LogIndex>) {
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

    /// Falls back to probing from `next_index` after a rejection.
    pub(crate) fn become_probe(&mut self, next_index: LogIndex) {
        assert!(next_index > self.match_index, "a follower is never probed below its match");
        self.next_index = next_index;
        self.state = ReplicationState::Probe { paused: false };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_pauses_after_one_append_until_resumed() {
        let mut progress = Progress::new(LogIndex(5));
        assert!(!progress.is_paused(4));
        progress.on_append_sent(Some(LogIndex(5)));
        assert!(progress.is_paused(4));
        assert_eq!(progress.next_index, LogIndex(5), "probing does not advance next_index");
        progress.resume();
        assert!(!progress.is_paused(4));
    }

    #[test]
    fn heartbeat_response_unblocks_a_full_pipeline() {
        let mut progress = Progress::new(LogIndex(1));
        progress.on_match(LogIndex(1));
        progress.on_append_sent(Some(LogIndex(2)));
        assert!(progress.is_paused(1));
        progress.on_heartbeat_response(1);
        assert!(!progress.is_paused(1), "lost appends must not stall the follower forever");
    }

    #[test]
    fn match_switches_to_pipelined_replication_with_bounded_window() {
        let mut progress = Progress::new(LogIndex(5));
        assert!(progress.on_match(LogIndex(5)));
        assert!(!progress.is_probing());
        progress.on_append_sent(Some(LogIndex(6)));
        progress.on_append_sent(Some(LogIndex(8)));
        assert_eq!(progress.next_index, LogIndex(9));
        assert!(progress.is_paused(2), "window of two is full");
        assert!(progress.on_match(LogIndex(6)));
        assert!(!progress.is_paused(2), "one slot freed");
        assert!(!progress.on_match(LogIndex(6)), "a duplicate acknowledgement says nothing new");
    }
}
