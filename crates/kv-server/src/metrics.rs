//! Prometheus metrics: everything raft-core's [`MetricsSink`] reports, the node's state
//! (sampled), and per-command request counts and latencies. Rendered as Prometheus text on
//! `/metrics`.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use raft_core::{LogId, LogIndex, NodeId, Role, SoftState, Term};
use raft_runtime::{AppendFailure, MetricsSink, Status};

/// The role as a number for the `raft_role` gauge: 0 follower, 1 pre-candidate,
/// 2 candidate, 3 leader, 4 learner.
#[must_use]
pub fn role_code(role: Role, learner: bool) -> i64 {
    match (role, learner) {
        (_, true) => 4,
        (Role::Follower, false) => 0,
        (Role::PreCandidate, false) => 1,
        (Role::Candidate, false) => 2,
        (Role::Leader, false) => 3,
    }
}

/// Labels naming a peer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: u64,
}

/// Labels naming an append outcome to a peer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppendLabels {
    peer: u64,
    outcome: &'static str,
}

/// Labels naming a client command and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    command: &'static str,
    outcome: &'static str,
}

/// Labels naming a client command.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: &'static str,
}

/// Latency buckets from 50 µs doubling to about 26 s: an fsync on a fast disk takes tens
/// of microseconds, a request stuck behind an election seconds.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// One node's metrics.
#[derive(Debug)]
pub struct ServerMetrics {
    registry: Registry,
    term: Gauge,
    role: Gauge,
    leader: Gauge,
    commit_index: Gauge,
    applied_index: Gauge,
    log_first_index: Gauge,
    log_last_index: Gauge,
    log_entries: Gauge,
    snapshot_index: Gauge,
    snapshot_bytes: Gauge,
    keys: Gauge,
    rpc_bytes_in_flight: Gauge,
    rpc_connections: Gauge,
    elections: Counter,
    elections_won: Counter,
    election_duration: Histogram,
    appends_sent: Family<PeerLabels, Counter>,
    append_entries_sent: Family<PeerLabels, Counter>,
    append_bytes_sent: Family<PeerLabels, Counter>,
    append_outcomes: Family<AppendLabels, Counter>,
    append_latency: Family<PeerLabels, Histogram, fn() -> Histogram>,
    follower_lag: Family<PeerLabels, Gauge>,
    persist_duration: Histogram,
    persist_bytes: Counter,
    persist_entries: Counter,
    persist_inline: Counter,
    snapshots_built: Counter,
    snapshots_installed: Counter,
    snapshot_build_duration: Histogram,
    snapshot_install_duration: Histogram,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<CommandLabels, Histogram, fn() -> Histogram>,
}

impl Default for ServerMetrics {
    fn default() -> ServerMetrics {
        ServerMetrics::new()
    }
}

impl ServerMetrics {
    /// Registers every metric.
    #[must_use]
    pub fn new() -> ServerMetrics {
        let mut registry = Registry::default();
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter: Counter<u64, AtomicU64> = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let histogram = |registry: &mut Registry, name: &str, help: &str| {
            let histogram = latency_histogram();
            registry.register(name, help, histogram.clone());
            histogram
        };
        let r = &mut registry;
        let metrics = ServerMetrics {
            term: gauge(r, "raft_term", "Current term"),
            role: gauge(
                r,
                "raft_role",
                "Role: 0 follower, 1 pre-candidate, 2 candidate, 3 leader, 4 learner",
            ),
            leader: gauge(r, "raft_leader", "The leader this node follows (0: none known)"),
            commit_index: gauge(r, "raft_commit_index", "Highest index known committed"),
            applied_index: gauge(
                r,
                "raft_applied_index",
                "Highest index handed to the state machine",
            ),
            log_first_index: gauge(
                r,
                "raft_log_first_index",
                "First index in the log (after the snapshot)",
            ),
            log_last_index: gauge(r, "raft_log_last_index", "Last index in the log"),
            log_entries: gauge(r, "raft_log_entries", "Entries held in the log"),
            snapshot_index: gauge(r, "raft_snapshot_index", "Last index the snapshot covers"),
            snapshot_bytes: gauge(r, "raft_snapshot_bytes", "Size of the latest snapshot"),
            keys: gauge(r, "kv_keys", "Keys in the state machine"),
            rpc_bytes_in_flight: gauge(
                r,
                "kv_rpc_bytes_in_flight",
                "Client request bytes the node holds (bounded by the transport's budget)",
            ),
            rpc_connections: gauge(r, "kv_rpc_connections", "Client connections served"),
            elections: counter(r, "raft_elections", "Campaigns this node started"),
            elections_won: counter(r, "raft_elections_won", "Campaigns this node won"),
            election_duration: histogram(r, "raft_election_duration_seconds", "Campaign durations"),
            appends_sent: Family::default(),
            append_entries_sent: Family::default(),
            append_bytes_sent: Family::default(),
            append_outcomes: Family::default(),
            append_latency: Family::new_with_constructor(latency_histogram),
            follower_lag: Family::default(),
            persist_duration: histogram(
                r,
                "raft_persist_duration_seconds",
                "Durable write latency, fsync included",
            ),
            persist_bytes: counter(r, "raft_persist_bytes", "Bytes of entries written durably"),
            persist_entries: counter(r, "raft_persist_entries", "Entries written durably"),
            persist_inline: counter(
                r,
                "raft_persist_inline",
                "Durable writes a follower made on its node task (its persistence task idle)",
            ),
            snapshots_built: counter(
                r,
                "raft_snapshots_built",
                "Snapshots the state machine built",
            ),
            snapshots_installed: counter(
                r,
                "raft_snapshots_installed",
                "Snapshots installed from a leader",
            ),
            snapshot_build_duration: histogram(
                r,
                "raft_snapshot_build_duration_seconds",
                "Snapshot build time",
            ),
            snapshot_install_duration: histogram(
                r,
                "raft_snapshot_install_duration_seconds",
                "Snapshot restore time",
            ),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            registry: Registry::default(),
        };
        registry.register(
            "raft_appends_sent",
            "Appends sent per peer",
            metrics.appends_sent.clone(),
        );
        registry.register(
            "raft_append_entries_sent",
            "Entries sent per peer",
            metrics.append_entries_sent.clone(),
        );
        registry.register(
            "raft_append_bytes_sent",
            "Entry bytes sent per peer",
            metrics.append_bytes_sent.clone(),
        );
        registry.register(
            "raft_append_outcomes",
            "Append outcomes per peer: acked, rejected, dropped",
            metrics.append_outcomes.clone(),
        );
        registry.register(
            "raft_append_latency_seconds",
            "Append round trip per peer",
            metrics.append_latency.clone(),
        );
        registry.register(
            "raft_follower_lag_entries",
            "Entries a follower lags behind the leader",
            metrics.follower_lag.clone(),
        );
        registry.register(
            "kv_requests",
            "Client requests by command and outcome",
            metrics.requests.clone(),
        );
        registry.register(
            "kv_request_duration_seconds",
            "Client request latency by command",
            metrics.request_duration.clone(),
        );
        ServerMetrics { registry, ..metrics }
    }

    /// The metrics in Prometheus text format.
    #[must_use]
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Records the node's sampled state.
    pub fn observe_status(&self, status: &Status, keys: u64) {
        let learner = status.membership.learners.contains(&status.node);
        self.term.set(to_i64(status.term.0));
        self.role.set(role_code(status.role, learner));
        self.leader.set(to_i64(status.leader.map_or(0, |leader| leader.0)));
        self.commit_index.set(to_i64(status.commit_index.0));
        self.applied_index.set(to_i64(status.applied_index.0));
        self.log_first_index.set(to_i64(status.first_index.0));
        self.log_last_index.set(to_i64(status.last_log_id.index.0));
        self.snapshot_index.set(to_i64(status.snapshot_last_log_id.index.0));
        self.snapshot_bytes.set(to_i64(status.snapshot_bytes));
        self.keys.set(to_i64(keys));
    }

    /// Records the client connections served and the request bytes they make the node
    /// hold.
    pub fn observe_rpc(&self, bytes_in_flight: u64, connections: usize) {
        self.rpc_bytes_in_flight.set(to_i64(bytes_in_flight));
        self.rpc_connections.set(i64::try_from(connections).unwrap_or(i64::MAX));
    }

    /// Records one client request.
    pub fn observe_request(&self, command: &'static str, outcome: &'static str, latency: Duration) {
        self.requests.get_or_create(&RequestLabels { command, outcome }).inc();
        self.request_duration
            .get_or_create(&CommandLabels { command })
            .observe(latency.as_secs_f64());
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl MetricsSink for ServerMetrics {
    fn role_changed(&self, _node: NodeId, soft_state: SoftState) {
        self.term.set(to_i64(soft_state.term.0));
        self.role.set(role_code(soft_state.role, false));
        self.leader.set(to_i64(soft_state.leader.map_or(0, |leader| leader.0)));
    }

    fn election_started(&self, _node: NodeId, _term: Term, role: Role) {
        if role == Role::Candidate || role == Role::PreCandidate {
            self.elections.inc();
        }
    }

    fn election_finished(&self, _node: NodeId, _term: Term, won: bool, duration: Duration) {
        if won {
            self.elections_won.inc();
        }
        self.election_duration.observe(duration.as_secs_f64());
    }

    fn append_sent(&self, _node: NodeId, peer: NodeId, entries: u64, bytes: u64) {
        let labels = PeerLabels { peer: peer.0 };
        self.appends_sent.get_or_create(&labels).inc();
        self.append_entries_sent.get_or_create(&labels).inc_by(entries);
        self.append_bytes_sent.get_or_create(&labels).inc_by(bytes);
    }

    fn append_acked(
        &self,
        _node: NodeId,
        peer: NodeId,
        _match: LogIndex,
        latency: Option<Duration>,
    ) {
        self.append_outcomes.get_or_create(&AppendLabels { peer: peer.0, outcome: "acked" }).inc();
        if let Some(latency) = latency {
            self.append_latency
                .get_or_create(&PeerLabels { peer: peer.0 })
                .observe(latency.as_secs_f64());
        }
    }

    fn append_failed(&self, _node: NodeId, peer: NodeId, failure: AppendFailure) {
        let outcome = match failure {
            AppendFailure::Rejected => "rejected",
            AppendFailure::Dropped => "dropped",
            _ => "failed",
        };
        self.append_outcomes.get_or_create(&AppendLabels { peer: peer.0, outcome }).inc();
    }

    fn follower_lag(&self, _node: NodeId, peer: NodeId, lag_entries: u64) {
        self.follower_lag.get_or_create(&PeerLabels { peer: peer.0 }).set(to_i64(lag_entries));
    }

    fn log_length(&self, _node: NodeId, entries: u64) {
        self.log_entries.set(to_i64(entries));
    }

    fn persisted(&self, _node: NodeId, entries: u64, bytes: u64, latency: Duration) {
        self.persist_duration.observe(latency.as_secs_f64());
        self.persist_bytes.inc_by(bytes);
        self.persist_entries.inc_by(entries);
    }

    fn persisted_inline(&self, _node: NodeId) {
        self.persist_inline.inc();
    }

    fn snapshot_built(&self, _node: NodeId, last_log_id: LogId, bytes: u64, duration: Duration) {
        self.snapshots_built.inc();
        self.snapshot_build_duration.observe(duration.as_secs_f64());
        self.snapshot_index.set(to_i64(last_log_id.index.0));
        self.snapshot_bytes.set(to_i64(bytes));
    }

    fn snapshot_installed(
        &self,
        _node: NodeId,
        last_log_id: LogId,
        bytes: u64,
        duration: Duration,
    ) {
        self.snapshots_installed.inc();
        self.snapshot_install_duration.observe(duration.as_secs_f64());
        self.snapshot_index.set(to_i64(last_log_id.index.0));
        self.snapshot_bytes.set(to_i64(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_text_carries_the_names_the_bench_scrapes() {
        let metrics = ServerMetrics::new();
        metrics.persisted(NodeId(1), 3, 300, Duration::from_micros(800));
        metrics.persisted_inline(NodeId(1));
        metrics.observe_request("put", "ok", Duration::from_millis(2));
        metrics.append_sent(NodeId(1), NodeId(2), 4, 400);
        metrics.observe_rpc(4096, 3);
        let text = metrics.render();
        for name in [
            "raft_term ",
            "raft_role ",
            "raft_log_first_index ",
            "raft_snapshot_bytes ",
            "raft_elections_total ",
            "raft_persist_duration_seconds_bucket{le=",
            "raft_persist_bytes_total 300",
            "raft_persist_inline_total 1",
            "kv_requests_total{command=\"put\",outcome=\"ok\"} 1",
            "kv_request_duration_seconds_count{command=\"put\"} 1",
            "raft_appends_sent_total{peer=\"2\"} 1",
            "kv_rpc_bytes_in_flight 4096",
            "kv_rpc_connections 3",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
