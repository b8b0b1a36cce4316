//! Raft clusters over real QUIC (and TCP) on 127.0.0.1: election, replication, a restarted peer, and
//! a large snapshot that must not disturb the leader. Every test is bounded in time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::num::NonZeroU64;
use std::time::Duration;

use bytes::Bytes;
use common::{Cluster, TICK, bounded, no_tweak};
use raft_core::{Config, NodeId, Role};
use raft_net_quic::TransportKind;

fn command(text: String) -> Bytes {
    Bytes::from(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_quic_elect_a_leader_and_replicate() {
    elect_and_replicate(TransportKind::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_tcp_elect_a_leader_and_replicate() {
    elect_and_replicate(TransportKind::Tcp).await;
}

async fn elect_and_replicate(transport: TransportKind) {
    bounded(async {
        let cluster = Cluster::start_over(transport, 3, &[1, 2, 3], no_tweak, 0).await;
        let leader = cluster.handle(cluster.leader().await);
        for number in 0..50 {
            let response = leader.propose(command(format!("command {number}"))).await.unwrap();
            assert_eq!(response, number + 1);
        }
        let on_leader = cluster.wait_applied(leader.node(), 50).await;
        for id in cluster.running() {
            let applied = cluster.wait_applied(id, 50).await;
            assert_eq!(applied, on_leader, "node {id} applied the same commands in order");
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_peers_reconnect_and_catch_up() {
    restart_peers(TransportKind::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_peers_reconnect_over_tcp_and_catch_up() {
    restart_peers(TransportKind::Tcp).await;
}

async fn restart_peers(transport: TransportKind) {
    bounded(async {
        let mut cluster = Cluster::start_over(transport, 3, &[1, 2, 3], no_tweak, 0).await;
        let leader = cluster.leader().await;
        cluster.handle(leader).propose(command("before".to_owned())).await.unwrap();
        // Restart every follower: the lowest id dials, the others are dialed, so both
        // directions of reconnection are exercised.
        let followers: Vec<NodeId> =
            cluster.running().into_iter().filter(|&id| id != leader).collect();
        for &id in &followers {
            cluster.stop_node(id).await;
            cluster.handle(leader).propose(command(format!("while {id} was down"))).await.unwrap();
            cluster.start_node(id).await;
        }
        let leader = cluster.leader().await;
        cluster.handle(leader).propose(command("after".to_owned())).await.unwrap();
        let expected = cluster.wait_applied(leader, 4).await;
        for id in followers {
            let applied = cluster.wait_applied(id, 4).await;
            assert_eq!(applied, expected, "node {id} caught up after its restart");
        }
        cluster.shutdown().await;
    })
    .await;
}

/// Snapshots after a few KiB of log, sent in 256 KiB chunks.
fn snapshot_often(config: &mut Config) {
    config.snapshot_log_bytes = NonZeroU64::new(4096);
    config.snapshot_chunk_bytes = NonZeroU64::new(256 << 10).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_megabyte_snapshot_reaches_a_new_node_without_an_election() {
    snapshot_to_new_node(TransportKind::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_megabyte_snapshot_over_tcp_reaches_a_new_node_without_an_election() {
    snapshot_to_new_node(TransportKind::Tcp).await;
}

async fn snapshot_to_new_node(transport: TransportKind) {
    bounded(async {
        // Node 3 stays down while the others commit and compact; its snapshot then carries
        // 4 MiB of padding.
        let mut cluster = Cluster::start_over(transport, 3, &[1, 2], snapshot_often, 4 << 20).await;
        let leader = cluster.leader_among(&[NodeId(1), NodeId(2)]).await;
        let handle = cluster.handle(leader);
        for number in 0..200 {
            handle.propose(command(format!("command {number:040}"))).await.unwrap();
        }
        let leader_store = cluster.nodes[&leader].store.clone();
        while leader_store.snapshot().is_none() {
            tokio::time::sleep(TICK).await;
        }
        let snapshot_bytes = leader_store.snapshot().unwrap().data.len();
        assert!(snapshot_bytes >= 4 << 20, "snapshot of {snapshot_bytes} bytes");
        let term_before = handle.status().await.unwrap().term;

        cluster.start_node(NodeId(3)).await;
        // Watch every node while the snapshot streams: the leader must keep its term and
        // role, which it cannot if its heartbeats queue behind the chunks.
        let mut restored = false;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !restored {
            assert!(tokio::time::Instant::now() < deadline, "snapshot not installed in time");
            let status = handle.status().await.unwrap();
            assert_eq!(status.role, Role::Leader, "the leader kept its role");
            assert_eq!(status.term, term_before, "no election during the transfer");
            for id in cluster.running() {
                let term = cluster.handle(id).status().await.unwrap().term;
                assert!(term <= term_before, "node {id} moved to term {term}");
            }
            restored = *cluster.nodes[&NodeId(3)].application.restores.lock().unwrap() > 0;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let expected = cluster.wait_applied(leader, 200).await;
        assert_eq!(cluster.wait_applied(NodeId(3), 200).await, expected);
        assert_eq!(handle.status().await.unwrap().term, term_before);
        cluster.shutdown().await;
    })
    .await;
}
