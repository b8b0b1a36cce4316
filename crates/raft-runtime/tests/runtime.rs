//! The async driver end to end: clusters of real node tasks in one process, with in-memory
//! storage and a channel network. Every test is bounded in time; none may hang.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft_core::{Config, Entry, EntryPayload, LogIndex, Membership, NodeId, Role, Snapshot, Term};
use raft_runtime::{
    ChannelNetwork, Error, MemLogStore, MetricsSink, Raft, RaftHandle, RuntimeConfig, StateMachine,
};

/// The most any test may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A tick short enough for quick elections (10 ticks: 100–200 ms).
const TICK: Duration = Duration::from_millis(10);

/// Runs a test body under the timeout.
async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_TIMEOUT, body).await.expect("the test finished in time");
}

/// Records every command it applies, in order; answers each entry with the number of
/// commands applied so far, so exactly-once shows as distinct responses.
#[derive(Clone, Default)]
struct Recording {
    applied: Arc<Mutex<Vec<Bytes>>>,
    /// How many times it restored from a snapshot.
    restores: Arc<AtomicU64>,
}

impl Recording {
    fn commands(&self) -> Vec<Bytes> {
        self.applied.lock().unwrap().clone()
    }
}

impl StateMachine for Recording {
    type Response = u64;

    fn apply(&mut self, entries: &[Entry]) -> Vec<u64> {
        let mut applied = self.applied.lock().unwrap();
        entries
            .iter()
            .map(|entry| {
                if let EntryPayload::Command(command) = &entry.payload {
                    applied.push(command.clone());
                }
                applied.len() as u64
            })
            .collect()
    }

    fn snapshot(&mut self) -> impl Future<Output = Result<Bytes, Error>> + Send + 'static {
        let mut data = BytesMut::new();
        for command in self.applied.lock().unwrap().iter() {
            data.put_u32(command.len() as u32);
            data.put_slice(command);
        }
        std::future::ready(Ok(data.freeze()))
    }

    async fn restore(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        let mut data = snapshot.data.clone();
        let mut applied = Vec::new();
        while data.has_remaining() {
            let length = data.get_u32() as usize;
            applied.push(data.split_to(length));
        }
        *self.applied.lock().unwrap() = applied;
        self.restores.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

struct TestNode {
    store: MemLogStore,
    application: Recording,
    handle: Option<RaftHandle<u64>>,
}

/// A cluster of node tasks on one channel network.
struct Cluster {
    network: ChannelNetwork,
    nodes: BTreeMap<NodeId, TestNode>,
    tweak: fn(&mut Config),
}

impl Cluster {
    async fn start(count: u64, tweak: fn(&mut Config)) -> Cluster {
        Cluster::start_with_stores(count, tweak, |store| store).await
    }

    /// A cluster whose stores `store` sets up.
    async fn start_with_stores(
        count: u64,
        tweak: fn(&mut Config),
        store: fn(MemLogStore) -> MemLogStore,
    ) -> Cluster {
        let ids: Vec<NodeId> = (1..=count).map(NodeId).collect();
        let membership = Membership::with_voters(ids.iter().copied());
        let nodes = ids
            .iter()
            .map(|&id| {
                let node = TestNode {
                    store: store(MemLogStore::new(membership.clone())),
                    application: Recording::default(),
                    handle: None,
                };
                (id, node)
            })
            .collect();
        let mut cluster = Cluster { network: ChannelNetwork::new(), nodes, tweak };
        for id in ids {
            cluster.start_node(id).await;
        }
        cluster
    }

    /// Starts (or restarts) `id` from its store, with a fresh application.
    async fn start_node(&mut self, id: NodeId) {
        let mut config = Config::new(id);
        (self.tweak)(&mut config);
        let runtime = RuntimeConfig { tick: TICK, seed: 7, ..RuntimeConfig::default() };
        let node = self.nodes.get_mut(&id).unwrap();
        node.application = Recording::default();
        let transport = self.network.transport(id);
        let raft =
            Raft::new(config, runtime, node.store.clone(), transport, node.application.clone());
        node.handle = Some(raft.start().await.unwrap());
    }

    fn handle(&self, id: NodeId) -> RaftHandle<u64> {
        self.nodes[&id].handle.clone().expect("the node is running")
    }

    async fn stop_node(&mut self, id: NodeId) {
        let handle = self.nodes.get_mut(&id).unwrap().handle.take().unwrap();
        handle.shutdown().await.unwrap();
    }

    fn running(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|(_, node)| node.handle.is_some()).map(|(&id, _)| id).collect()
    }

    /// Waits until exactly one running node among `among` leads, in a term every one of
    /// them agrees on, and returns it.
    async fn leader_among(&self, among: &[NodeId]) -> NodeId {
        loop {
            let mut leaders = BTreeSet::new();
            let mut views = BTreeSet::new();
            for &id in among {
                let status = self.handle(id).status().await.unwrap();
                if status.role == Role::Leader {
                    leaders.insert(id);
                }
                views.insert((status.term, status.leader));
            }
            if leaders.len() == 1 && views.len() == 1 {
                return *leaders.first().unwrap();
            }
            tokio::time::sleep(TICK).await;
        }
    }

    async fn leader(&self) -> NodeId {
        self.leader_among(&self.running()).await
    }

    /// Waits until node `id`'s application has applied `count` commands.
    async fn wait_applied(&self, id: NodeId, count: usize) -> Vec<Bytes> {
        loop {
            let commands = self.nodes[&id].application.commands();
            if commands.len() >= count {
                return commands;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn shutdown(mut self) {
        for id in self.running() {
            self.stop_node(id).await;
        }
    }
}

fn no_tweak(_: &mut Config) {}

fn command(text: String) -> Bytes {
    Bytes::from(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_exactly_one_leader() {
    bounded(async {
        let cluster = Cluster::start(3, no_tweak).await;
        let leader = cluster.leader().await;
        for id in cluster.running() {
            let status = cluster.handle(id).status().await.unwrap();
            assert_eq!(status.leader, Some(leader), "node {id} follows the leader");
            assert!(status.term >= Term(1));
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_are_applied_exactly_once_on_every_node() {
    bounded(async {
        let cluster = Cluster::start(3, no_tweak).await;
        let leader = cluster.handle(cluster.leader().await);
        let (tasks, per_task) = (16, 50);
        let mut proposers = Vec::new();
        for task in 0..tasks {
            let leader = leader.clone();
            proposers.push(tokio::spawn(async move {
                let mut responses = Vec::new();
                for number in 0..per_task {
                    let payload = command(format!("task {task} command {number}"));
                    responses.push(leader.propose(payload).await.unwrap());
                }
                responses
            }));
        }
        let mut responses = Vec::new();
        for proposer in proposers {
            responses.extend(proposer.await.unwrap());
        }
        // Each command was applied once on the leader: the responses are 1..=total.
        let total = tasks * per_task;
        responses.sort_unstable();
        assert_eq!(responses, (1..=total as u64).collect::<Vec<_>>());
        let on_leader = cluster.wait_applied(leader.node(), total).await;
        assert_eq!(on_leader.iter().collect::<BTreeSet<_>>().len(), total, "no duplicates");
        for id in cluster.running() {
            let applied = cluster.wait_applied(id, total).await;
            assert_eq!(applied, on_leader, "node {id} applied the same commands in order");
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_proposal_is_refused_with_the_leader_hint() {
    bounded(async {
        let cluster = Cluster::start(3, no_tweak).await;
        let leader = cluster.leader().await;
        let follower = cluster.running().into_iter().find(|&id| id != leader).unwrap();
        let refused = cluster.handle(follower).propose(Bytes::from_static(b"x")).await;
        assert_eq!(
            refused,
            Err(Error::Core(raft_core::Error::NotLeader { leader_hint: Some(leader) }))
        );
        assert!(cluster.nodes[&follower].application.commands().is_empty());
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_on_every_node_see_the_writes_acknowledged_before_them() {
    bounded(async {
        let cluster = Cluster::start(3, no_tweak).await;
        let leader = cluster.handle(cluster.leader().await);
        for id in cluster.running() {
            let payload = command(format!("written before reading on node {id}"));
            leader.propose(payload.clone()).await.unwrap();
            let read_index = cluster.handle(id).read_index().await.unwrap();
            // The read returned only once this node's application had caught up.
            let applied = cluster.nodes[&id].application.commands();
            assert!(applied.contains(&payload), "node {id} at read index {read_index}");
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_on_a_cut_off_follower_fails_instead_of_hanging() {
    bounded(async {
        let cluster = Cluster::start(3, no_tweak).await;
        let leader = cluster.leader().await;
        let follower = cluster.running().into_iter().find(|&id| id != leader).unwrap();
        cluster.network.isolate(follower, true);
        let read = cluster.handle(follower).read_index().await;
        assert!(matches!(read, Err(Error::Core(raft_core::Error::NotLeader { .. }))), "{read:?}");
        cluster.network.isolate(follower, false);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_leader_elects_a_new_one_that_commits() {
    bounded(async {
        let mut cluster = Cluster::start(3, no_tweak).await;
        let first = cluster.leader().await;
        cluster.handle(first).propose(Bytes::from_static(b"before")).await.unwrap();
        let stopped = cluster.handle(first);
        cluster.stop_node(first).await;
        let second = cluster.leader().await;
        assert_ne!(first, second);
        let response = cluster.handle(second).propose(Bytes::from_static(b"after")).await;
        assert_eq!(response, Ok(2));
        let applied = cluster.wait_applied(second, 2).await;
        assert_eq!(applied, [Bytes::from_static(b"before"), Bytes::from_static(b"after")]);
        // The stopped node refuses work instead of hanging.
        let refused = stopped.propose(Bytes::from_static(b"x")).await;
        assert_eq!(refused, Err(Error::NodeStopped { node: first }));
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_cluster_recovers_its_log_and_rebuilds_the_application() {
    bounded(async {
        let mut cluster = Cluster::start(3, no_tweak).await;
        let leader = cluster.handle(cluster.leader().await);
        for number in 0..20 {
            leader.propose(command(format!("command {number}"))).await.unwrap();
        }
        let before = cluster.wait_applied(leader.node(), 20).await;
        for id in cluster.running() {
            cluster.stop_node(id).await;
        }
        for id in [NodeId(1), NodeId(2), NodeId(3)] {
            cluster.start_node(id).await;
        }
        let leader = cluster.handle(cluster.leader().await);
        let response = leader.propose(Bytes::from_static(b"after restart")).await;
        assert_eq!(response, Ok(21), "the application was rebuilt from the log first");
        for id in cluster.running() {
            let applied = cluster.wait_applied(id, 21).await;
            assert_eq!(applied[..20], before[..], "node {id}");
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_failure_stops_the_node_and_shutdown_reports_it() {
    bounded(async {
        let cluster = Cluster::start(1, no_tweak).await;
        let id = cluster.leader().await;
        let handle = cluster.handle(id);
        assert_eq!(handle.propose(Bytes::from_static(b"ok")).await, Ok(1));
        cluster.nodes[&id].store.fail_writes();
        let failed = handle.propose(Bytes::from_static(b"lost")).await;
        assert_eq!(failed, Err(Error::NodeStopped { node: id }));
        let error = handle.shutdown().await.unwrap_err();
        assert!(matches!(error, Error::Storage { .. }), "{error}");
        // Never retried: the node is gone and refuses everything.
        assert!(matches!(handle.status().await, Err(Error::NodeStopped { .. })));
        assert_eq!(cluster.nodes[&id].store.entries().len(), 2, "the empty entry and 'ok'");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_fails_its_pending_proposals_instead_of_hanging() {
    bounded(async {
        let cluster = Cluster::start(3, no_tweak).await;
        let leader = cluster.leader().await;
        cluster.network.isolate(leader, true);
        let handle = cluster.handle(leader);
        let pending = handle.propose(Bytes::from_static(b"never commits here"));
        // CheckQuorum makes the leader step down within two election timeouts.
        match pending.await {
            Err(Error::ProposalOutcomeUnknown { log_id, .. }) => {
                assert!(log_id.index > LogIndex(1));
            }
            other => panic!("expected an unknown outcome, got {other:?}"),
        }
        let others: Vec<NodeId> = cluster.running().into_iter().filter(|&i| i != leader).collect();
        let new_leader = cluster.leader_among(&others).await;
        assert_eq!(cluster.handle(new_leader).propose(Bytes::from_static(b"y")).await, Ok(1));
        cluster.network.isolate(leader, false);
        cluster.shutdown().await;
    })
    .await;
}

fn small_snapshots(config: &mut Config) {
    config.snapshot_log_bytes = std::num::NonZeroU64::new(2048);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_from_the_leaders_snapshot() {
    bounded(async {
        let cluster = Cluster::start(3, small_snapshots).await;
        let leader = cluster.leader().await;
        let lagging = cluster.running().into_iter().find(|&id| id != leader).unwrap();
        cluster.network.isolate(lagging, true);
        let handle = cluster.handle(leader);
        for number in 0..200 {
            handle.propose(command(format!("command {number:032}"))).await.unwrap();
        }
        let leader_store = &cluster.nodes[&leader].store;
        while leader_store.snapshot().is_none() {
            tokio::time::sleep(TICK).await;
        }
        assert!(leader_store.entries().len() < 200, "the leader compacted its stored log");
        cluster.network.isolate(lagging, false);
        let expected = cluster.wait_applied(leader, 200).await;
        let caught_up = cluster.wait_applied(lagging, 200).await;
        assert_eq!(caught_up, expected);
        let restores = cluster.nodes[&lagging].application.restores.load(Ordering::Relaxed);
        assert_eq!(restores, 1, "it was sent the snapshot, not the whole log");
        assert!(cluster.nodes[&lagging].store.snapshot().is_some());
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_transfer_moves_the_leader() {
    bounded(async {
        let cluster = Cluster::start(3, no_tweak).await;
        let leader = cluster.leader().await;
        let target = cluster.running().into_iter().find(|&id| id != leader).unwrap();
        cluster.handle(leader).transfer_leader(target).await.unwrap();
        loop {
            if cluster.leader().await == target {
                break;
            }
            tokio::time::sleep(TICK).await;
        }
        assert_eq!(cluster.handle(target).propose(Bytes::from_static(b"z")).await, Ok(1));
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_beyond_the_pending_maximum_are_refused() {
    bounded(async {
        let id = NodeId(1);
        // Every write takes 300 ms, so a proposal waits that long for its own commit.
        let store = MemLogStore::new(Membership::with_voters([id]))
            .with_latency(Duration::from_millis(300));
        let runtime = RuntimeConfig {
            tick: TICK,
            proposals_pending_max: std::num::NonZeroUsize::new(1).unwrap(),
            ..RuntimeConfig::default()
        };
        let network = ChannelNetwork::new();
        let transport = network.transport(id);
        let raft = Raft::new(Config::new(id), runtime, store, transport, Recording::default());
        let handle = raft.start().await.unwrap();
        while handle.status().await.unwrap().role != Role::Leader {
            tokio::time::sleep(TICK).await;
        }
        let waiting = handle.clone();
        let first = tokio::spawn(async move { waiting.propose(Bytes::from_static(b"a")).await });
        while handle.status().await.unwrap().last_log_id.index < LogIndex(2) {
            tokio::task::yield_now().await;
        }
        let second = handle.propose(Bytes::from_static(b"b")).await;
        assert_eq!(second, Err(Error::TooManyPendingProposals { pending: 1 }));
        assert_eq!(first.await.unwrap(), Ok(1));
        handle.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_runtime_config_is_refused_at_start() {
    bounded(async {
        let id = NodeId(1);
        let store = MemLogStore::new(Membership::with_voters([id]));
        let runtime = RuntimeConfig { tick: Duration::ZERO, ..RuntimeConfig::default() };
        let raft = Raft::new(
            Config::new(id),
            runtime,
            store,
            ChannelNetwork::new().transport(id),
            Recording::default(),
        );
        let error = raft.start().await.unwrap_err();
        assert!(matches!(error, Error::InvalidConfig { field: "tick", .. }), "{error}");
    })
    .await;
}

/// Counts what the driver reports.
#[derive(Default)]
struct Counters {
    elections_won: AtomicU64,
    appends_acked_with_latency: AtomicU64,
    writes: AtomicU64,
    written_entries: AtomicU64,
    log_length: AtomicU64,
}

impl MetricsSink for Counters {
    fn election_finished(&self, _: NodeId, _: Term, won: bool, _: Duration) {
        if won {
            self.elections_won.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn append_acked(&self, _: NodeId, _: NodeId, _: LogIndex, latency: Option<Duration>) {
        if latency.is_some() {
            self.appends_acked_with_latency.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn persisted(&self, _: NodeId, entries: u64, _: u64, _: Duration) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.written_entries.fetch_add(entries, Ordering::Relaxed);
    }
    fn log_length(&self, _: NodeId, entries: u64) {
        self.log_length.fetch_max(entries, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_see_elections_acknowledged_appends_and_writes() {
    bounded(async {
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let membership = Membership::with_voters(ids);
        let network = ChannelNetwork::new();
        let counters = Arc::new(Counters::default());
        let mut handles = Vec::new();
        for id in ids {
            let runtime = RuntimeConfig { tick: TICK, ..RuntimeConfig::default() };
            let store = MemLogStore::new(membership.clone());
            let raft = Raft::new(
                Config::new(id),
                runtime,
                store,
                network.transport(id),
                Recording::default(),
            )
            .with_metrics(Arc::clone(&counters));
            handles.push(raft.start().await.unwrap());
        }
        let leader = loop {
            let mut leader = None;
            for handle in &handles {
                if handle.status().await.unwrap().role == Role::Leader {
                    leader = Some(handle.clone());
                }
            }
            if let Some(leader) = leader {
                break leader;
            }
            tokio::time::sleep(TICK).await;
        };
        for number in 0..10 {
            leader.propose(command(format!("{number}"))).await.unwrap();
        }
        assert!(counters.elections_won.load(Ordering::Relaxed) >= 1);
        assert!(counters.appends_acked_with_latency.load(Ordering::Relaxed) >= 1);
        assert!(counters.writes.load(Ordering::Relaxed) >= 3);
        assert!(counters.written_entries.load(Ordering::Relaxed) >= 11);
        assert!(counters.log_length.load(Ordering::Relaxed) >= 11);
        for handle in handles {
            handle.shutdown().await.unwrap();
        }
    })
    .await;
}

/// Counts, per node, the writes made on the node task and all writes.
#[derive(Default)]
struct WritePaths {
    inline: Mutex<BTreeMap<NodeId, u64>>,
    all: Mutex<BTreeMap<NodeId, u64>>,
}

impl WritePaths {
    fn inline(&self, id: NodeId) -> u64 {
        self.inline.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
    fn all(&self, id: NodeId) -> u64 {
        self.all.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

impl MetricsSink for WritePaths {
    fn persisted(&self, node: NodeId, _: u64, _: u64, _: Duration) {
        *self.all.lock().unwrap().entry(node).or_default() += 1;
    }
    fn persisted_inline(&self, node: NodeId) {
        *self.inline.lock().unwrap().entry(node).or_default() += 1;
    }
}

/// Runs three nodes with `follower_persist_inline` set to `inline`, commits 20 proposals one
/// at a time on the leader, and returns the leader, the followers and what each wrote
/// where during those proposals (inline, all), once every node applied them.
async fn write_paths(inline: bool) -> (NodeId, Vec<NodeId>, BTreeMap<NodeId, (u64, u64)>) {
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let membership = Membership::with_voters(ids);
    let network = ChannelNetwork::new();
    let paths = Arc::new(WritePaths::default());
    let mut handles = BTreeMap::new();
    let mut applications = BTreeMap::new();
    for id in ids {
        let runtime = RuntimeConfig {
            tick: TICK,
            follower_persist_inline: inline,
            ..RuntimeConfig::default()
        };
        let application = Recording::default();
        let raft = Raft::new(
            Config::new(id),
            runtime,
            MemLogStore::new(membership.clone()),
            network.transport(id),
            application.clone(),
        )
        .with_metrics(Arc::clone(&paths));
        handles.insert(id, raft.start().await.unwrap());
        applications.insert(id, application);
    }
    let (leader, term) = loop {
        let mut found = None;
        for (&id, handle) in &handles {
            let status = handle.status().await.unwrap();
            if status.role == Role::Leader {
                found = Some((id, status.term));
            }
        }
        if let Some(found) = found {
            break found;
        }
        tokio::time::sleep(TICK).await;
    };
    let before: BTreeMap<NodeId, (u64, u64)> =
        ids.iter().map(|&id| (id, (paths.inline(id), paths.all(id)))).collect();
    for number in 0..20 {
        handles[&leader].propose(command(format!("{number}"))).await.unwrap();
    }
    for application in applications.values() {
        while application.commands().len() < 20 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let after = handles[&leader].status().await.unwrap();
    assert_eq!((after.role, after.term), (Role::Leader, term), "one leader throughout");
    let wrote = ids
        .iter()
        .map(|&id| (id, (paths.inline(id) - before[&id].0, paths.all(id) - before[&id].1)))
        .collect();
    for handle in handles.into_values() {
        handle.shutdown().await.unwrap();
    }
    let followers = ids.into_iter().filter(|&id| id != leader).collect();
    (leader, followers, wrote)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_followers_write_on_their_node_task_and_a_leader_never_does() {
    bounded(async {
        let (leader, followers, wrote) = write_paths(true).await;
        let (leader_inline, leader_all) = wrote[&leader];
        assert_eq!(leader_inline, 0, "the leader hands every write over");
        // Fewer than 20: the followers' acknowledgements commit an entry before the leader's
        // own write of it is durable, and its persistence task merges what queued meanwhile.
        assert!(leader_all >= 1, "the leader wrote through its persistence task");
        for follower in followers {
            let (inline, all) = wrote[&follower];
            // Proposals one at a time leave the persistence task idle before each append.
            assert!(inline >= 10, "follower {follower}: {inline} of {all} writes inline");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_write_through_the_persistence_task_when_told_to() {
    bounded(async {
        let (_, followers, wrote) = write_paths(false).await;
        for follower in followers {
            let (inline, all) = wrote[&follower];
            assert_eq!(inline, 0, "follower {follower}");
            assert!(all >= 1, "follower {follower} wrote its entries");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_write_fails_stops_and_the_others_go_on() {
    bounded(async {
        let mut cluster = Cluster::start(3, no_tweak).await;
        let leader = cluster.leader().await;
        let handle = cluster.handle(leader);
        assert_eq!(handle.propose(Bytes::from_static(b"before")).await, Ok(1));
        let follower = cluster.running().into_iter().find(|&id| id != leader).unwrap();
        cluster.nodes[&follower].store.fail_writes();
        // The other follower makes the quorum.
        assert_eq!(handle.propose(Bytes::from_static(b"after")).await, Ok(2));
        let stopped = cluster.handle(follower);
        loop {
            if matches!(stopped.status().await, Err(Error::NodeStopped { .. })) {
                break;
            }
            tokio::time::sleep(TICK).await;
        }
        let error = cluster.nodes.get_mut(&follower).unwrap().handle.take().unwrap();
        let error = error.shutdown().await.unwrap_err();
        assert!(matches!(error, Error::Storage { .. }), "{error}");
        let stored = cluster.nodes[&follower].store.entries();
        let after = EntryPayload::Command(Bytes::from_static(b"after"));
        assert!(
            stored.iter().all(|entry| entry.payload != after),
            "nothing written after the failure"
        );
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_snapshot_compacts_the_log_below_the_threshold() {
    bounded(async {
        let cluster = Cluster::start(3, no_tweak).await;
        let leader = cluster.handle(cluster.leader().await);
        for number in 0..10 {
            leader.propose(command(format!("command {number}"))).await.unwrap();
        }
        let before = leader.status().await.unwrap();
        assert_eq!(before.snapshot_last_log_id.index, LogIndex::ZERO, "far below 64 MiB");
        leader.snapshot().await.unwrap();
        let status = loop {
            let status = leader.status().await.unwrap();
            if status.snapshot_last_log_id.index > LogIndex::ZERO {
                break status;
            }
            tokio::time::sleep(TICK).await;
        };
        assert!(status.snapshot_last_log_id.index >= before.commit_index.min(before.applied_index));
        assert_eq!(status.first_index, status.snapshot_last_log_id.index.next());
        assert!(status.snapshot_bytes > 0);
        assert_eq!(status.membership.voters.len(), 3);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_written_ahead_then_stored_and_a_restart_restores_them() {
    bounded(async {
        let mut cluster =
            Cluster::start_with_stores(3, small_snapshots, MemLogStore::with_snapshot_writer).await;
        let leader = cluster.handle(cluster.leader().await);
        let mut sent = Vec::new();
        for number in 0..60 {
            let text = format!("command {number:02} padded to make the log outgrow the threshold");
            leader.propose(command(text.clone())).await.unwrap();
            sent.push(Bytes::from(text));
        }
        // Every node snapshots on its own; each snapshot goes through the writer first.
        for id in cluster.running() {
            let store = cluster.nodes[&id].store.clone();
            while store.snapshot().is_none() {
                tokio::time::sleep(TICK).await;
            }
            assert!(store.snapshots_stored_after_writing_ahead() >= 1, "node {id}");
        }
        let id = cluster.leader().await;
        cluster.stop_node(id).await;
        cluster.start_node(id).await;
        assert_eq!(cluster.wait_applied(id, sent.len()).await[..sent.len()], sent[..]);
        assert_eq!(cluster.nodes[&id].application.restores.load(Ordering::Relaxed), 1);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_while_writing_a_snapshot_ahead_waits_for_it_and_stores_it() {
    bounded(async {
        let mut cluster =
            Cluster::start_with_stores(1, no_tweak, MemLogStore::with_snapshot_writer).await;
        let id = cluster.leader().await;
        let handle = cluster.handle(id);
        assert_eq!(handle.propose(Bytes::from_static(b"ok")).await, Ok(1));
        let store = cluster.nodes[&id].store.clone();
        store.slow_snapshot_writes_ahead(Duration::from_millis(300));
        handle.snapshot().await.unwrap();
        while store.snapshot_writes_ahead_started() == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        cluster.stop_node(id).await;
        // Stopped: the write ahead finished and its switch was stored before the stop
        // returned, so the store is free and holds the snapshot.
        assert_eq!(store.snapshots_stored_after_writing_ahead(), 1);
        assert!(store.snapshot().is_some());
        cluster.start_node(id).await;
        assert_eq!(cluster.wait_applied(id, 1).await, vec![Bytes::from_static(b"ok")]);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_snapshot_write_ahead_stops_the_node_and_stores_nothing() {
    bounded(async {
        let cluster =
            Cluster::start_with_stores(1, no_tweak, MemLogStore::with_snapshot_writer).await;
        let id = cluster.leader().await;
        let handle = cluster.handle(id);
        assert_eq!(handle.propose(Bytes::from_static(b"ok")).await, Ok(1));
        let store = cluster.nodes[&id].store.clone();
        store.fail_snapshot_writes_ahead();
        handle.snapshot().await.unwrap();
        let error = loop {
            match handle.status().await {
                Ok(_) => tokio::time::sleep(TICK).await,
                Err(_) => break handle.shutdown().await.unwrap_err(),
            }
        };
        assert!(matches!(&error, Error::Storage { operation, .. } if operation.contains("ahead")));
        assert!(store.snapshot().is_none(), "the switch never ran");
        assert_eq!(store.entries().len(), 2, "the log is untouched");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_disk_stalls_keeps_leading_and_refuses_what_it_cannot_queue() {
    // The leader's disk stops answering for 2 s while clients keep proposing. Its write
    // queue (2 jobs) fills at once; the node task must keep ticking and heartbeating (no
    // election: every node stays in the same term under the same leader). Its followers
    // commit the first proposals, so those are answered; once it holds back as many
    // entries as it may (`proposals_pending_max`, 20 here), it refuses the rest with
    // TooManyPendingProposals, and it takes proposals again afterwards.
    bounded(async {
        let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let membership = Membership::with_voters(ids.iter().copied());
        let network = ChannelNetwork::new();
        let runtime = RuntimeConfig {
            tick: TICK,
            seed: 7,
            persist_queue_max: std::num::NonZeroUsize::new(2).unwrap(),
            proposals_pending_max: std::num::NonZeroUsize::new(20).unwrap(),
            ..RuntimeConfig::default()
        };
        let mut stores = BTreeMap::new();
        let mut handles = BTreeMap::new();
        for &id in &ids {
            let store = MemLogStore::new(membership.clone());
            let transport = network.transport(id);
            let raft = Raft::new(
                Config::new(id),
                runtime.clone(),
                store.clone(),
                transport,
                Recording::default(),
            );
            handles.insert(id, raft.start().await.unwrap());
            stores.insert(id, store);
        }
        let (leader, term) = loop {
            let status = handles[&ids[0]].status().await.unwrap();
            if let Some(leader) = status.leader {
                let leader_status = handles[&leader].status().await.unwrap();
                if leader_status.role == Role::Leader {
                    break (leader, leader_status.term);
                }
            }
            tokio::time::sleep(TICK).await;
        };
        let leader_handle = handles[&leader].clone();
        leader_handle.propose(command("before".to_string())).await.unwrap();

        let stall = Duration::from_secs(2);
        stores[&leader].stall_writes_for(stall);
        let stalled_until = tokio::time::Instant::now() + stall;
        // A proposal every 10 ms, each in a Ready (and so a write) of its own, none waiting
        // for the previous: the queue fills within a few of them.
        let mut proposals = Vec::new();
        let mut sequence = 0;
        while tokio::time::Instant::now() < stalled_until {
            sequence += 1;
            let handle = leader_handle.clone();
            let payload = command(format!("during-{sequence}"));
            proposals.push(tokio::spawn(async move { handle.propose(payload).await }));
            if sequence % 5 == 0 {
                for (&id, handle) in &handles {
                    let status = handle.status().await.unwrap();
                    assert_eq!(status.term, term, "node {id} left term {term} during the stall");
                    assert_eq!(status.leader, Some(leader), "node {id} lost the leader");
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (mut answered, mut refused) = (0, 0);
        for proposal in proposals {
            match proposal.await.unwrap() {
                Ok(_) => answered += 1,
                Err(Error::TooManyPendingProposals { .. }) => refused += 1,
                Err(error) => panic!("a proposal during the stall failed: {error}"),
            }
        }
        assert!(answered > 0, "the followers' acknowledgements committed nothing");
        assert!(refused > 0, "the leader held back entries without bound");
        // It takes proposals again once its disk has caught up with what it held back.
        let caught_up_by = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match leader_handle.propose(command("after".to_string())).await {
                Ok(_) => break,
                Err(Error::TooManyPendingProposals { .. })
                    if tokio::time::Instant::now() < caught_up_by =>
                {
                    tokio::time::sleep(TICK).await;
                }
                Err(error) => panic!("the leader still refuses after its disk caught up: {error}"),
            }
        }
        let status = leader_handle.status().await.unwrap();
        assert_eq!((status.role, status.term), (Role::Leader, term));
        for handle in handles.values() {
            handle.shutdown().await.unwrap();
        }
    })
    .await;
}
