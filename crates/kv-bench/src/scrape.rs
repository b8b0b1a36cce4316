//! Once a second, every node's `/metrics`: role, term, log bounds, snapshot size,
//! elections and persistence latency (from histogram bucket deltas).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::cluster::NodeEndpoint;
use crate::metrics::{Samples, http_get, quantile_between};
use crate::system::{NodeRole, Server, System};

/// How long one scrape may take: a paused node must not hold up the second's row.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(400);

/// What one node said in one second; every field `None` when it did not answer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeSample {
    /// The node answered.
    pub up: bool,
    /// The node's role (etcd: leader or follower).
    pub role: Option<NodeRole>,
    /// The node's term (not exported by etcd).
    pub term: Option<u64>,
    /// First index in the log (ours only): the snapshot index + 1 after a compaction.
    pub log_first_index: Option<u64>,
    /// Last index in the log (etcd: proposals committed).
    pub log_last_index: Option<u64>,
    /// Index covered by the latest snapshot (ours only).
    pub snapshot_index: Option<u64>,
    /// Size of the latest snapshot (etcd: the backend database size).
    pub snapshot_bytes: Option<u64>,
    /// Elections the node started (etcd: leader changes it saw).
    pub elections: Option<u64>,
    /// Median persistence (fsync) latency during the second, in ms.
    pub persist_p50_ms: Option<f64>,
    /// 99th percentile persistence latency during the second, in ms.
    pub persist_p99_ms: Option<f64>,
}

/// The metric names of one server program.
struct MetricNames {
    term: Option<&'static str>,
    log_first: Option<&'static str>,
    log_last: &'static str,
    snapshot_index: Option<&'static str>,
    snapshot_bytes: &'static str,
    elections: &'static str,
    persist: &'static str,
}

const KV_NAMES: MetricNames = MetricNames {
    term: Some("raft_term"),
    log_first: Some("raft_log_first_index"),
    log_last: "raft_log_last_index",
    snapshot_index: Some("raft_snapshot_index"),
    snapshot_bytes: "raft_snapshot_bytes",
    elections: "raft_elections_total",
    persist: "raft_persist_duration_seconds",
};

const ETCD_NAMES: MetricNames = MetricNames {
    term: None,
    log_first: None,
    log_last: "etcd_server_proposals_committed_total",
    snapshot_index: None,
    snapshot_bytes: "etcd_mvcc_db_total_size_in_bytes",
    elections: "etcd_server_leader_changes_seen_total",
    persist: "etcd_disk_wal_fsync_duration_seconds",
};

/// Scrapes every node, remembering the last histogram of each for per-second deltas.
#[derive(Debug)]
pub struct Scraper {
    system: System,
    nodes: Vec<(u64, Option<SocketAddr>)>,
    previous: Vec<Vec<(f64, f64)>>,
}

impl Scraper {
    /// A scraper of the nodes at `endpoints`.
    #[must_use]
    pub fn new(system: System, endpoints: &[NodeEndpoint]) -> Scraper {
        let nodes: Vec<_> = endpoints.iter().map(|node| (node.id, node.metrics_addr)).collect();
        let previous = vec![Vec::new(); nodes.len()];
        Scraper { system, nodes, previous }
    }

    /// The node ids, in the order of [`Scraper::scrape`]'s samples.
    #[must_use]
    pub fn node_ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|(id, _)| *id).collect()
    }

    /// One sample per node, all scraped concurrently.
    pub async fn scrape(&mut self) -> Vec<NodeSample> {
        let mut tasks = Vec::new();
        for (_, addr) in &self.nodes {
            let addr = *addr;
            tasks.push(tokio::spawn(async move {
                let addr = addr?;
                match http_get(addr, "/metrics", SCRAPE_TIMEOUT).await {
                    Ok((200, body)) => Some(Samples::parse(&body)),
                    _ => None,
                }
            }));
        }
        let names = match self.system.server() {
            Server::KvServer => &KV_NAMES,
            Server::Etcd => &ETCD_NAMES,
        };
        let mut samples = Vec::new();
        for (slot, task) in tasks.into_iter().enumerate() {
            let scraped = task.await.ok().flatten();
            let Some(scraped) = scraped else {
                samples.push(NodeSample::default());
                continue;
            };
            let buckets = scraped.buckets(names.persist);
            let before = std::mem::replace(&mut self.previous[slot], buckets.clone());
            let whole = |name: &str| scraped.get(name).map(|value| value.max(0.0) as u64);
            let role = self.system.node_role(&scraped);
            samples.push(NodeSample {
                up: true,
                role,
                term: names.term.and_then(whole),
                log_first_index: names.log_first.and_then(whole),
                log_last_index: whole(names.log_last),
                snapshot_index: names.snapshot_index.and_then(whole),
                snapshot_bytes: whole(names.snapshot_bytes),
                elections: whole(names.elections),
                persist_p50_ms: quantile_between(&before, &buckets, 0.50).map(|s| s * 1000.0),
                persist_p99_ms: quantile_between(&before, &buckets, 0.99).map(|s| s * 1000.0),
            });
        }
        samples
    }
}
