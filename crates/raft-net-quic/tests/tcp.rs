//! What the TCP transport must refuse, and how a peer's removal cuts it off: each with a
//! log line, while the node keeps serving. (Clusters, snapshots and client calls over TCP
//! are in `cluster.rs` and `rpc.rs`, beside their QUIC twins.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{bind_over, bounded, exchange, heartbeat, loopback, wait_for_log};
use raft_core::NodeId;
use raft_net_quic::certs::CertificateAuthority;
use raft_net_quic::{PeerTransport, QuicNode, TransportKind};
use raft_runtime::{MessageSender, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLUSTER: &str = "tcp";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_not_allowed_is_refused_with_the_reason_and_cut_off_once_removed() {
    bounded(async {
        let ca = CertificateAuthority::new("test CA").unwrap();
        let (one, one_transport) = bind_over(TransportKind::Tcp, &ca, CLUSTER, 1, loopback());
        let (two, mut two_transport) = bind_over(TransportKind::Tcp, &ca, CLUSTER, 2, loopback());
        assert_eq!(two.transport(), TransportKind::Tcp);
        two.set_allowed_peers([NodeId(3)].into());
        one.set_peer(NodeId(2), two.local_addr().unwrap());
        // Node 2 refuses node 1's connections, and node 1 learns why.
        one_transport.sender().send(heartbeat(1, 2, 1));
        let line = wait_for_log(&["handshake refused: the node is not a configured peer"]).await;
        assert!(line.contains("id=1"), "{line}");
        let line = wait_for_log(&["cannot connect to peer", "node 1 is not a member"]).await;
        assert!(line.contains("peer=2"), "{line}");
        // Allowed, node 1 gets through.
        two.set_allowed_peers([NodeId(1)].into());
        exchange(&one_transport, &mut two_transport, 1, 2).await;
        // Removed, its connection is cut at its next message and nothing more arrives.
        two.set_allowed_peers([NodeId(3)].into());
        let sender = one_transport.sender();
        sender.send(heartbeat(1, 2, 1000));
        wait_for_log(&["peer stream closed: no longer a configured peer"]).await;
        while two_transport.try_recv().is_some() {}
        for round in 1001..1010 {
            sender.send(heartbeat(1, 2, round));
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert!(two_transport.try_recv().is_none(), "a removed peer's message was delivered");
        one.shutdown().await;
        two.shutdown().await;
    })
    .await;
}

/// Nodes 1 and 2 over TCP, each the other's peer.
fn tcp_pair() -> ((QuicNode, PeerTransport), (QuicNode, PeerTransport)) {
    let ca = CertificateAuthority::new("test CA").unwrap();
    let (one, one_transport) = bind_over(TransportKind::Tcp, &ca, CLUSTER, 1, loopback());
    let (two, two_transport) = bind_over(TransportKind::Tcp, &ca, CLUSTER, 2, loopback());
    one.set_peer(NodeId(2), two.local_addr().unwrap());
    two.set_peer(NodeId(1), one.local_addr().unwrap());
    ((one, one_transport), (two, two_transport))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_on_the_tcp_port_is_refused_in_tls_and_the_node_serves_on() {
    bounded(async {
        let ((one, mut one_transport), (two, mut two_transport)) = tcp_pair();
        let mut socket = tokio::net::TcpStream::connect(two.local_addr().unwrap()).await.unwrap();
        let garbage = format!("remote={}", socket.local_addr().unwrap());
        socket.write_all(b"GET / HTTP/1.1\r\nHost: raft\r\n\r\n").await.unwrap();
        wait_for_log(&["connection refused during the TLS handshake", &garbage]).await;
        // A connection that never speaks is dropped at the handshake timeout; meanwhile
        // the peers talk both ways.
        exchange(&one_transport, &mut two_transport, 1, 2).await;
        exchange(&two_transport, &mut one_transport, 2, 1).await;
        one.shutdown().await;
        two.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_is_bounded_and_the_peers_talk_on() {
    bounded(async {
        let ((one, mut one_transport), (two, mut two_transport)) = tcp_pair();
        exchange(&one_transport, &mut two_transport, 1, 2).await;
        // 256 connections that never start TLS hold every handshake place (until the
        // handshake timeout); the next one is closed at once.
        let addr = two.local_addr().unwrap();
        let mut silent = Vec::new();
        for _ in 0..256 {
            silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut byte = [0_u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "the connection past the limit was kept: {read:?}"
        );
        // The peers' established connections are untouched.
        exchange(&one_transport, &mut two_transport, 1, 2).await;
        exchange(&two_transport, &mut one_transport, 2, 1).await;
        drop(silent);
        one.shutdown().await;
        two.shutdown().await;
    })
    .await;
}
