//! Observability: the `MetricsSink` trait the driver calls at lifecycle points, and the
//! bookkeeping that turns messages into latencies.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::transport::Delivery;
use raft_core::SoftState;
use raft_core::{AppendResult, Message, MessageBody};
use raft_core::{Entry, LogId, LogIndex, NodeId, Role, Term};

/// Receives the driver's measurements. Every method has a no-op default, so a sink
/// implements only what it records.
///
/// Methods are called on the driver's tasks, some on the hot path (once per batch, not per
/// entry): they must be quick and must never block (update an atomic or a histogram; do not
/// send over the network).
pub trait MetricsSink: Send + Sync + 'static {
    /// The node's role, term or known leader changed.
    fn role_changed(&self, node: NodeId, soft_state: SoftState) {
        let _ = (node, soft_state);
    }

    /// The node started campaigning: `role` is `PreCandidate` or `Candidate`.
    fn election_started(&self, node: NodeId, term: Term, role: Role) {
        let _ = (node, term, role);
    }

    /// The node's campaign ended, `won` or not, `duration` after it started (a pre-vote
    /// followed by the election counts as one campaign).
    fn election_finished(&self, node: NodeId, term: Term, won: bool, duration: Duration) {
        let _ = (node, term, won, duration);
    }

    /// The leader sent `peer` an append of `entries` entries, `bytes` bytes in total (as
    /// [`raft_core::Entry::size_bytes`] counts them).
    fn append_sent(&self, node: NodeId, peer: NodeId, entries: u64, bytes: u64) {
        let _ = (node, peer, entries, bytes);
    }

    /// `peer` acknowledged entries up to `match_index`; `latency` is the time since the
    /// newest append it covers was sent (`None` when it covers no append with entries).
    fn append_acked(
        &self,
        node: NodeId,
        peer: NodeId,
        match_index: LogIndex,
        latency: Option<Duration>,
    ) {
        let _ = (node, peer, match_index, latency);
    }

    /// An append to `peer` failed.
    fn append_failed(&self, node: NodeId, peer: NodeId, failure: AppendFailure) {
        let _ = (node, peer, failure);
    }

    /// How many entries `peer` lags behind the leader's last entry, at its latest ack.
    fn follower_lag(&self, node: NodeId, peer: NodeId, lag_entries: u64) {
        let _ = (node, peer, lag_entries);
    }

    /// The number of entries the node holds in its log (after its snapshot), when it
    /// changed.
    fn log_length(&self, node: NodeId, entries: u64) {
        let _ = (node, entries);
    }

    /// One durable write finished: `entries` entries of `bytes` bytes (0 and 0 for a hard
    /// state alone) took `latency`.
    fn persisted(&self, node: NodeId, entries: u64, bytes: u64, latency: Duration) {
        let _ = (node, entries, bytes, latency);
    }

    /// The write just reported to [`MetricsSink::persisted`] ran on the node task (a
    /// follower whose persistence task was idle; see
    /// [`crate::RuntimeConfig::follower_persist_inline`]), not on the persistence task.
    fn persisted_inline(&self, node: NodeId) {
        let _ = node;
    }

    /// The application snapshotted itself up to `last_log_id`: `bytes` bytes in `duration`.
    fn snapshot_built(&self, node: NodeId, last_log_id: LogId, bytes: u64, duration: Duration) {
        let _ = (node, last_log_id, bytes, duration);
    }

    /// The application restored itself from a snapshot up to `last_log_id`: `bytes` bytes
    /// in `duration`.
    fn snapshot_installed(&self, node: NodeId, last_log_id: LogId, bytes: u64, duration: Duration) {
        let _ = (node, last_log_id, bytes, duration);
    }
}

/// Why an append did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppendFailure {
    /// The follower's log does not match where the append starts; the leader backs up.
    Rejected,
    /// The transport dropped the append (peer slow, stopped or unreachable).
    Dropped,
}

/// A [`MetricsSink`] that records nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopMetrics;

impl MetricsSink for NoopMetrics {}

/// The most unacknowledged appends remembered per follower for latency: the core's default
/// pipelining window is 64, and older ones are dropped (their latency goes unmeasured).
const SENT_APPENDS_KEPT: usize = 256;

/// What the metrics need of an outgoing append, taken before the transport consumes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AppendSummary {
    peer: NodeId,
    /// The last index the append covers.
    last_index: LogIndex,
    entries: u64,
    bytes: u64,
}

impl AppendSummary {
    /// The summary of `message` when it is an append.
    pub(crate) fn of(message: &Message) -> Option<AppendSummary> {
        let MessageBody::AppendRequest { prev_log_id, entries, .. } = &message.body else {
            return None;
        };
        let count = entries.len() as u64;
        Some(AppendSummary {
            peer: message.to,
            last_index: prev_log_id.index.plus(count),
            entries: count,
            bytes: entries.iter().map(Entry::size_bytes).sum(),
        })
    }
}

/// The node task's memory of what it told the sink, to report changes and latencies.
#[derive(Debug)]
pub(crate) struct Observer {
    node: NodeId,
    role: Role,
    /// When the current campaign started.
    campaign_started: Option<Instant>,
    /// Per follower: the last index and send time of each unacknowledged append.
    sent_appends: BTreeMap<NodeId, VecDeque<(LogIndex, Instant)>>,
    log_length: u64,
}

impl Observer {
    pub(crate) fn new(node: NodeId) -> Observer {
        Observer {
            node,
            role: Role::Follower,
            campaign_started: None,
            sent_appends: BTreeMap::new(),
            log_length: 0,
        }
    }

    /// Reports a role, term or leader change, and the campaigns it starts or ends.
    pub(crate) fn on_soft_state(&mut self, sink: &impl MetricsSink, soft_state: SoftState) {
        sink.role_changed(self.node, soft_state);
        let campaigning = matches!(soft_state.role, Role::PreCandidate | Role::Candidate);
        match (self.campaign_started, campaigning) {
            (None, true) => {
                self.campaign_started = Some(Instant::now());
                sink.election_started(self.node, soft_state.term, soft_state.role);
            }
            (Some(started), false) => {
                self.campaign_started = None;
                let won = soft_state.role == Role::Leader;
                sink.election_finished(self.node, soft_state.term, won, started.elapsed());
            }
            (Some(_), true) => {
                if soft_state.role == Role::Candidate && self.role == Role::PreCandidate {
                    sink.election_started(self.node, soft_state.term, soft_state.role);
                }
            }
            (None, false) => {}
        }
        if soft_state.role != Role::Leader {
            self.sent_appends.clear();
        }
        self.role = soft_state.role;
    }

    /// Notes an append handed to the transport; `now` is read once per batch by the caller.
    pub(crate) fn on_append_sent(
        &mut self,
        sink: &impl MetricsSink,
        append: AppendSummary,
        delivery: Delivery,
        now: Instant,
    ) {
        if delivery == Delivery::Dropped {
            sink.append_failed(self.node, append.peer, AppendFailure::Dropped);
            return;
        }
        sink.append_sent(self.node, append.peer, append.entries, append.bytes);
        if append.entries == 0 {
            return;
        }
        let sent = self.sent_appends.entry(append.peer).or_default();
        if sent.len() >= SENT_APPENDS_KEPT {
            sent.pop_front();
        }
        sent.push_back((append.last_index, now));
    }

    /// Notes an incoming message before the node steps it.
    pub(crate) fn on_received(
        &mut self,
        sink: &impl MetricsSink,
        message: &Message,
        last_index: LogIndex,
    ) {
        let MessageBody::AppendResponse { result } = &message.body else {
            return;
        };
        if self.role != Role::Leader {
            return;
        }
        let peer = message.from;
        match result {
            AppendResult::Success { match_index } => {
                let mut newest = None;
                if let Some(sent) = self.sent_appends.get_mut(&peer) {
                    while let Some(&(index, sent_at)) = sent.front() {
                        if index > *match_index {
                            break;
                        }
                        newest = Some(sent_at);
                        sent.pop_front();
                    }
                }
                let latency = newest.map(|sent_at| sent_at.elapsed());
                sink.append_acked(self.node, peer, *match_index, latency);
                sink.follower_lag(self.node, peer, last_index.distance_from(*match_index));
            }
            AppendResult::Reject { .. } => {
                sink.append_failed(self.node, peer, AppendFailure::Rejected);
            }
        }
    }

    /// Reports the log's length when it changed.
    pub(crate) fn on_log_length(&mut self, sink: &impl MetricsSink, entries: u64) {
        if entries != self.log_length {
            self.log_length = entries;
            sink.log_length(self.node, entries);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use raft_core::EntryPayload;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl MetricsSink for Recorder {
        fn election_started(&self, _: NodeId, term: Term, role: Role) {
            self.0.lock().unwrap().push(format!("start {term} {role:?}"));
        }
        fn election_finished(&self, _: NodeId, term: Term, won: bool, _: Duration) {
            self.0.lock().unwrap().push(format!("end {term} {won}"));
        }
        fn append_acked(
            &self,
            _: NodeId,
            peer: NodeId,
            index: LogIndex,
            latency: Option<Duration>,
        ) {
            self.0.lock().unwrap().push(format!("ack {peer} {index} {}", latency.is_some()));
        }
    }

    fn soft(role: Role, term: u64) -> SoftState {
        SoftState { role, term: Term(term), leader: None }
    }

    #[test]
    fn a_pre_vote_and_election_count_as_one_campaign() {
        let sink = Recorder::default();
        let mut observer = Observer::new(NodeId(1));
        observer.on_soft_state(&sink, soft(Role::PreCandidate, 1));
        observer.on_soft_state(&sink, soft(Role::Candidate, 2));
        observer.on_soft_state(&sink, soft(Role::Leader, 2));
        let events = sink.0.lock().unwrap().clone();
        assert_eq!(events, ["start 1 PreCandidate", "start 2 Candidate", "end 2 true"]);
    }

    #[test]
    fn an_ack_measures_the_newest_append_it_covers() {
        let sink = Recorder::default();
        let mut observer = Observer::new(NodeId(1));
        observer.on_soft_state(&sink, soft(Role::Leader, 1));
        let entry = |index| Entry {
            log_id: LogId::new(Term(1), LogIndex(index)),
            payload: EntryPayload::Empty,
        };
        let append = Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(1),
            body: MessageBody::AppendRequest {
                prev_log_id: LogId::ZERO,
                entries: vec![entry(1), entry(2)],
                leader_commit: LogIndex::ZERO,
                answer_wanted: true,
            },
        };
        let summary = AppendSummary::of(&append).unwrap();
        observer.on_append_sent(&sink, summary, Delivery::Queued, Instant::now());
        let ack = |index| Message {
            from: NodeId(2),
            to: NodeId(1),
            term: Term(1),
            body: MessageBody::AppendResponse {
                result: AppendResult::Success { match_index: LogIndex(index) },
            },
        };
        observer.on_received(&sink, &ack(1), LogIndex(2));
        observer.on_received(&sink, &ack(2), LogIndex(2));
        observer.on_received(&sink, &ack(2), LogIndex(2));
        let events = sink.0.lock().unwrap().clone();
        assert_eq!(events, ["ack 2 1 false", "ack 2 2 true", "ack 2 2 false"]);
    }
}
