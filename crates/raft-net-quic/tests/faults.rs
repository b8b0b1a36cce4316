//! The `fault-injection` switchboard: partitions, drops and delays at run time.
//! Run with `cargo test -p raft-net-quic --features fault-injection`.
#![cfg(feature = "fault-injection")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Cluster, bind, bounded, loopback, no_tweak};
use raft_core::{LogIndex, Message, MessageBody, NodeId, Term};
use raft_net_quic::PeerFault;
use raft_net_quic::certs::CertificateAuthority;
use raft_runtime::{Delivery, MessageSender, Transport};

fn heartbeat(round: u64) -> Message {
    Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(1),
        body: MessageBody::Heartbeat { commit_index: LogIndex(0), round },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_drops_and_delay_are_switched_at_run_time() {
    bounded(async {
        let ca = CertificateAuthority::new("test CA").unwrap();
        let (one, one_transport) = bind(&ca, "faults", 1, loopback());
        let (two, mut two_transport) = bind(&ca, "faults", 2, loopback());
        one.set_peer(NodeId(2), two.local_addr().unwrap());
        two.set_peer(NodeId(1), one.local_addr().unwrap());
        let sender = one_transport.sender();
        // Connected: something gets through.
        for round in 1.. {
            sender.send(heartbeat(round));
            let got = tokio::time::timeout(Duration::from_millis(50), two_transport.recv()).await;
            if got.is_ok() {
                break;
            }
        }
        while two_transport.try_recv().is_some() {}

        one.faults().partition(NodeId(2), true);
        assert_eq!(sender.send(heartbeat(1000)), Delivery::Dropped);
        // The receiving side's partition drops what the other side still sends.
        one.faults().partition(NodeId(2), false);
        two.faults().partition(NodeId(1), true);
        assert_eq!(sender.send(heartbeat(1001)), Delivery::Queued);
        let silent = tokio::time::timeout(Duration::from_millis(300), two_transport.recv()).await;
        assert!(silent.is_err(), "a partitioned peer's message arrived: {silent:?}");
        two.faults().clear();

        one.faults().set(NodeId(2), PeerFault { drop_probability: 1.0, ..PeerFault::default() });
        assert_eq!(sender.send(heartbeat(1002)), Delivery::Dropped);

        let delay = Duration::from_millis(200);
        one.faults().set(NodeId(2), PeerFault { delay, ..PeerFault::default() });
        let start = tokio::time::Instant::now();
        assert_eq!(sender.send(heartbeat(1003)), Delivery::Queued);
        let message = two_transport.recv().await.unwrap();
        assert_eq!(message, heartbeat(1003));
        assert!(start.elapsed() >= delay, "arrived after {:?}", start.elapsed());
        one.shutdown().await;
        two.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_leader_is_replaced_and_rejoins_after_healing() {
    bounded(async {
        let cluster = Cluster::start(3, &[1, 2, 3], no_tweak, 0).await;
        let old = cluster.leader().await;
        let others: Vec<NodeId> = cluster.running().into_iter().filter(|&id| id != old).collect();
        let faults = cluster.nodes[&old].quic.as_ref().unwrap().faults();
        for &peer in &others {
            faults.partition(peer, true);
        }
        let new = cluster.leader_among(&others).await;
        assert_ne!(new, old);
        cluster.handle(new).propose(Bytes::from_static(b"during")).await.unwrap();
        faults.clear();
        let leader = cluster.leader().await;
        cluster.handle(leader).propose(Bytes::from_static(b"healed")).await.unwrap();
        let expected = cluster.wait_applied(leader, 2).await;
        assert_eq!(cluster.wait_applied(old, 2).await, expected, "the old leader caught up");
        cluster.shutdown().await;
    })
    .await;
}
