//! The store under raft-core's runtime driver: a single-node cluster commits proposals
//! through each engine's store, stops, and restarts from the same directory with its log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use raft_core::{Config, Entry, EntryPayload, Membership, NodeId, Snapshot};
use raft_runtime::{ChannelNetwork, Error, Raft, RuntimeConfig, StateMachine};
use raft_storage::{AnyLogStore, Engine};

/// Counts the commands it applied.
struct Counter(u64);

impl StateMachine for Counter {
    type Response = u64;
    fn apply(&mut self, entries: &[Entry]) -> Vec<u64> {
        entries
            .iter()
            .map(|entry| {
                if matches!(entry.payload, EntryPayload::Command(_)) {
                    self.0 += 1;
                }
                self.0
            })
            .collect()
    }
    fn snapshot(&mut self) -> impl Future<Output = Result<Bytes, Error>> + Send + 'static {
        std::future::ready(Ok(Bytes::copy_from_slice(&self.0.to_le_bytes())))
    }
    async fn restore(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        self.0 = u64::from_le_bytes(snapshot.data.as_ref().try_into().unwrap());
        Ok(())
    }
}

async fn run_node(directory: &std::path::Path, engine: Engine, proposals: u64) -> u64 {
    let id = NodeId(1);
    let store =
        AnyLogStore::open_or_create(directory, engine, &Membership::with_voters([id])).unwrap();
    let network = ChannelNetwork::new();
    let runtime = RuntimeConfig { tick: Duration::from_millis(5), ..RuntimeConfig::default() };
    let handle = Raft::new(Config::new(id), runtime, store, network.transport(id), Counter(0))
        .start()
        .await
        .unwrap();
    let mut last = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut done = 0;
    while done < proposals {
        assert!(tokio::time::Instant::now() < deadline, "no leader within 20 s");
        match handle.propose(Bytes::from_static(b"+1")).await {
            Ok(response) => {
                last = response;
                done += 1;
            }
            Err(Error::Core(raft_core::Error::NotLeader { .. })) => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(error) => panic!("{error}"),
        }
    }
    handle.shutdown().await.unwrap();
    last
}

fn restarts_with_its_log(engine: Engine) {
    let directory = tempfile::tempdir().unwrap();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let first = runtime.block_on(run_node(directory.path(), engine, 20));
    assert_eq!(first, 20);
    // The application is rebuilt from the stored log at restart, so counting continues.
    let second = runtime.block_on(run_node(directory.path(), engine, 5));
    assert_eq!(second, 25);
}

#[test]
fn a_node_restarts_from_its_redb_store_with_its_log() {
    restarts_with_its_log(Engine::Redb);
}

#[test]
fn a_node_restarts_from_its_wal_store_with_its_log() {
    restarts_with_its_log(Engine::Wal);
}
