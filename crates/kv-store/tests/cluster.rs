//! The store under the real Raft driver: three in-process nodes with in-memory logs and a
//! channel network; writes go through the leader and every replica must end in the same
//! state. Every test is bounded in time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU64;
use std::time::Duration;

use bytes::Bytes;
use kv_store::{Command, KvConfig, KvStore, Response, Session, SharedKvStore, Write, WriteResult};
use raft_core::{Config, LogIndex, Membership, NodeId, Role};
use raft_runtime::{ChannelNetwork, Error, MemLogStore, Raft, RaftHandle, RuntimeConfig};

const TEST_TIMEOUT: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_millis(10);

struct Cluster {
    network: ChannelNetwork,
    handles: Vec<RaftHandle<Response>>,
    stores: Vec<SharedKvStore>,
}

impl Cluster {
    /// Starts `count` nodes; a low snapshot threshold makes them snapshot and compact
    /// while the tests run.
    async fn start(count: u64) -> Cluster {
        let ids: Vec<NodeId> = (1..=count).map(NodeId).collect();
        let membership = Membership::with_voters(ids.iter().copied());
        let network = ChannelNetwork::new();
        let mut handles = Vec::new();
        let mut stores = Vec::new();
        for &id in &ids {
            let mut config = Config::new(id);
            config.snapshot_log_bytes = NonZeroU64::new(4096);
            let runtime = RuntimeConfig { tick: TICK, seed: 11, ..RuntimeConfig::default() };
            let store = SharedKvStore::new(KvStore::new(KvConfig::default()).unwrap());
            let log_store = MemLogStore::new(membership.clone());
            let raft = Raft::new(config, runtime, log_store, network.transport(id), store.clone());
            handles.push(raft.start().await.unwrap());
            stores.push(store);
        }
        Cluster { network, handles, stores }
    }

    /// Waits for a leader all nodes in `among` agree on, and returns its position.
    async fn leader_among(&self, among: &[usize]) -> usize {
        loop {
            let mut leaders = Vec::new();
            let mut views = std::collections::BTreeSet::new();
            for &position in among {
                let status = self.handles[position].status().await.unwrap();
                if status.role == Role::Leader {
                    leaders.push(position);
                }
                views.insert((status.term, status.leader));
            }
            if leaders.len() == 1 && views.len() == 1 {
                return leaders[0];
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// Proposes `command` at the leader of `among`, retrying (the same command, so the
    /// session makes it exactly-once) while leadership moves.
    async fn write(&self, among: &[usize], command: &Command) -> Response {
        let payload = command.encode().unwrap();
        loop {
            let leader = self.leader_among(among).await;
            match self.handles[leader].propose(payload.clone()).await {
                Ok(response) => return response,
                Err(
                    Error::Core(raft_core::Error::NotLeader { .. })
                    | Error::ProposalOutcomeUnknown { .. },
                ) => {
                    tokio::time::sleep(TICK).await;
                }
                Err(error) => panic!("proposal failed: {error}"),
            }
        }
    }

    /// Waits until every store has applied at least `index`.
    async fn wait_applied(&self, index: LogIndex) {
        for store in &self.stores {
            while store.applied_index() < index {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    /// Every replica's snapshot, for byte-for-byte comparison, once all have applied
    /// `index` and the same last entry (a leader change may append an empty entry late).
    async fn snapshots(&self, index: LogIndex) -> Vec<Bytes> {
        self.wait_applied(index).await;
        for _ in 0..100 {
            let applied: std::collections::BTreeSet<LogIndex> =
                self.stores.iter().map(SharedKvStore::applied_index).collect();
            if applied.len() == 1 {
                break;
            }
            tokio::time::sleep(TICK).await;
        }
        self.stores
            .iter()
            .map(|store| store.with_read(|store| store.snapshot_bytes().unwrap()))
            .collect()
    }

    async fn shutdown(self) {
        for handle in &self.handles {
            handle.shutdown().await.unwrap();
        }
    }
}

fn put(client_id: u64, sequence: u64, key: &str, value: &str, expect: Option<u64>) -> Command {
    let write = Write::Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        expect_version: expect,
    };
    Command { session: Session { client_id, sequence }, write }
}

fn written_index(response: &Response) -> LogIndex {
    match response {
        Response::Written(WriteResult { index, .. }) => *index,
        other => panic!("expected a write, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_apply_the_same_puts_into_identical_state() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = Cluster::start(3).await;
        let all = [0, 1, 2];
        let mut last_index = LogIndex::ZERO;
        for sequence in 1..=100_u64 {
            let key = format!("key/{}", sequence % 10);
            let value = format!("value {sequence}");
            let response = cluster.write(&all, &put(1, sequence, &key, &value, None)).await;
            last_index = written_index(&response);
        }
        // Compare-and-set against the version the puts left (key/3 written 10 times).
        let cas = put(2, 1, "key/3", "swapped", Some(10));
        let swapped = cluster.write(&all, &cas).await;
        assert!(matches!(swapped, Response::Written(WriteResult { version: 11, .. })));
        // The same command again is a retry: the original answer, no second write.
        assert_eq!(cluster.write(&all, &cas).await, swapped);
        let stale = cluster.write(&all, &put(3, 1, "key/3", "lost", Some(10))).await;
        assert_eq!(stale, Response::Conflict { current_version: Some(11) });
        assert!(written_index(&swapped) > last_index);

        // A linearizable read: once ReadIndex answers, the leader's store has every write
        // (the conflict's entry included, though its response names no index).
        let leader = cluster.leader_among(&all).await;
        let read_index = cluster.handles[leader].read_index().await.unwrap();
        assert!(read_index > written_index(&swapped));
        assert!(cluster.stores[leader].applied_index() >= read_index);
        assert_eq!(cluster.stores[leader].get(b"key/3").unwrap().meta.version, 11);

        let snapshots = cluster.snapshots(read_index).await;
        assert_eq!(snapshots[0], snapshots[1]);
        assert_eq!(snapshots[0], snapshots[2]);
        for store in &cluster.stores {
            assert_eq!(store.get(b"key/3").unwrap().value, Bytes::from_static(b"swapped"));
            assert_eq!(store.range(b"key/", None).entries.len(), 10);
        }
        cluster.shutdown().await;
    })
    .await
    .expect("the test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_replica_catches_up_from_a_snapshot_into_identical_state() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = Cluster::start(3).await;
        let all = [0, 1, 2];
        let first_leader = cluster.leader_among(&all).await;
        let lagging = (first_leader + 1) % 3;
        let majority: Vec<usize> = all.into_iter().filter(|&node| node != lagging).collect();
        cluster.network.isolate(NodeId(lagging as u64 + 1), true);
        // Enough writes of 200 bytes to pass the 4 KiB snapshot threshold many times, so
        // the majority compacts past what the lagging node has.
        let value = "v".repeat(200);
        let mut last_index = LogIndex::ZERO;
        for sequence in 1..=120_u64 {
            let key = format!("key/{}", sequence % 40);
            let response = cluster.write(&majority, &put(5, sequence, &key, &value, None)).await;
            last_index = written_index(&response);
        }
        // The entries the lagging node misses are gone from the leader's log, so only a
        // snapshot (and the store's restore) can bring it up to date.
        let leader = cluster.leader_among(&majority).await;
        let lagging_applied = cluster.stores[lagging].applied_index();
        loop {
            let status = cluster.handles[leader].status().await.unwrap();
            if status.first_index > lagging_applied.next() {
                break;
            }
            tokio::time::sleep(TICK).await;
        }
        cluster.network.isolate(NodeId(lagging as u64 + 1), false);
        let snapshots = cluster.snapshots(last_index).await;
        assert_eq!(snapshots[lagging], snapshots[first_leader]);
        assert_eq!(snapshots[0], snapshots[1]);
        assert_eq!(snapshots[1], snapshots[2]);
        cluster.shutdown().await;
    })
    .await
    .expect("the test finished in time");
}
