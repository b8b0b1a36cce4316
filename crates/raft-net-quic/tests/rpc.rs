//! The client request/response layer on a node's endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{bind_over, bounded, loopback, wait_for_log};
use raft_core::NodeId;
use raft_net_quic::certs::CertificateAuthority;
use raft_net_quic::{
    Caller, ClientId, Error, QuicNode, RequestHandler, RpcClient, RpcClientConfig, TransportKind,
};

const CLUSTER: &str = "rpc";

/// Answers `<caller>: <request>`; a request "sleep" takes two seconds.
struct Echo;

impl RequestHandler for Echo {
    async fn handle(&self, caller: Caller, request: Bytes) -> Bytes {
        if request.as_ref() == b"sleep" {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        Bytes::from(format!("{caller}: {}", String::from_utf8_lossy(&request)))
    }
}

fn client_config(id: u64, transport: TransportKind) -> RpcClientConfig {
    let mut config = RpcClientConfig::new(CLUSTER, Caller::Client(ClientId(id)));
    config.bind_addr = loopback();
    config.transport = transport;
    config
}

/// A node serving [`Echo`] and client 1 connected to it.
async fn echo_node_and_client(transport: TransportKind) -> (QuicNode, RpcClient) {
    let ca = CertificateAuthority::new("test CA").unwrap();
    let node = serving_node(&ca, transport);
    let identity = ca.issue_client(ClientId(1)).unwrap().identity;
    let addr = node.local_addr().unwrap();
    let config = client_config(1, transport);
    let client = RpcClient::connect(&config, &identity, addr, Some(NodeId(1))).await.unwrap();
    (node, client)
}

fn serving_node(ca: &CertificateAuthority, transport: TransportKind) -> QuicNode {
    let (node, _transport) = bind_over(transport, ca, CLUSTER, 1, loopback());
    node.serve_requests(Echo);
    node
}

on_both_transports!(concurrent_calls_on_one_connection_each_get_their_own_answer);

async fn concurrent_calls_on_one_connection_each_get_their_own_answer(transport: TransportKind) {
    bounded(async {
        let ca = CertificateAuthority::new("test CA").unwrap();
        let node = serving_node(&ca, transport);
        let identity = ca.issue_client(ClientId(5)).unwrap().identity;
        let addr = node.local_addr().unwrap();
        let client =
            RpcClient::connect(&client_config(5, transport), &identity, addr, Some(NodeId(1)))
                .await
                .unwrap();
        assert_eq!(client.server(), NodeId(1));
        let calls: Vec<_> = (0..100)
            .map(|number| {
                let client = client.clone();
                tokio::spawn(async move {
                    let request = Bytes::from(format!("request {number}"));
                    client.call(request, Duration::from_secs(5)).await.unwrap()
                })
            })
            .collect();
        for (number, call) in calls.into_iter().enumerate() {
            let response = call.await.unwrap();
            assert_eq!(response, Bytes::from(format!("client 5: request {number}")));
        }
        client.close();
        node.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_the_node_id_reaches_any_node_of_the_cluster() {
    bounded(async {
        let ca = CertificateAuthority::new("test CA").unwrap();
        let node = serving_node(&ca, TransportKind::Quic);
        let identity = ca.issue_client(ClientId(6)).unwrap().identity;
        let client = RpcClient::connect(
            &client_config(6, TransportKind::Quic),
            &identity,
            node.local_addr().unwrap(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(client.server(), NodeId(1));
        let response = client.call(Bytes::from_static(b"hi"), Duration::from_secs(5)).await;
        assert_eq!(response.unwrap(), Bytes::from_static(b"client 6: hi"));
        node.shutdown().await;
    })
    .await;
}

on_both_transports!(slow_call_times_out_and_the_connection_stays_usable);

async fn slow_call_times_out_and_the_connection_stays_usable(transport: TransportKind) {
    bounded(async {
        let (node, client) = echo_node_and_client(transport).await;
        let slow = client.call(Bytes::from_static(b"sleep"), Duration::from_millis(100)).await;
        assert!(matches!(slow, Err(Error::Timeout { what: "request", .. })), "{slow:?}");
        let fast = client.call(Bytes::from_static(b"x"), Duration::from_secs(5)).await.unwrap();
        assert_eq!(fast, Bytes::from_static(b"client 1: x"));
        node.shutdown().await;
    })
    .await;
}

on_both_transports!(client_of_another_ca_is_refused_in_tls);

async fn client_of_another_ca_is_refused_in_tls(transport: TransportKind) {
    bounded(async {
        let ca = CertificateAuthority::new("test CA").unwrap();
        let node = serving_node(&ca, transport);
        let foreign = CertificateAuthority::new("foreign CA").unwrap();
        let mut identity = foreign.issue_client(ClientId(1)).unwrap().identity;
        identity.ca = ca.issue_client(ClientId(1)).unwrap().identity.ca;
        let addr = node.local_addr().unwrap();
        let result =
            RpcClient::connect(&client_config(1, transport), &identity, addr, Some(NodeId(1)))
                .await;
        assert!(result.is_err(), "a foreign client got through");
        wait_for_log(&["connection refused during the TLS handshake", "UnknownIssuer"]).await;
        node.shutdown().await;
    })
    .await;
}

on_both_transports!(client_claiming_another_id_than_its_certificate_is_refused);

async fn client_claiming_another_id_than_its_certificate_is_refused(transport: TransportKind) {
    bounded(async {
        let ca = CertificateAuthority::new("test CA").unwrap();
        let node = serving_node(&ca, transport);
        let identity = ca.issue_client(ClientId(1)).unwrap().identity;
        let addr = node.local_addr().unwrap();
        let error =
            RpcClient::connect(&client_config(2, transport), &identity, addr, Some(NodeId(1)))
                .await
                .unwrap_err();
        assert!(
            matches!(&error, Error::HandshakeRefused { reason, .. }
            if reason.contains("certificate does not name client 2")),
            "{error}"
        );
        node.shutdown().await;
    })
    .await;
}

on_both_transports!(node_without_a_handler_refuses_clients_with_a_reason);

async fn node_without_a_handler_refuses_clients_with_a_reason(transport: TransportKind) {
    bounded(async {
        let ca = CertificateAuthority::new("test CA").unwrap();
        let (node, _transport) = bind_over(transport, &ca, CLUSTER, 1, loopback());
        let identity = ca.issue_client(ClientId(1)).unwrap().identity;
        let addr = node.local_addr().unwrap();
        let error =
            RpcClient::connect(&client_config(1, transport), &identity, addr, Some(NodeId(1)))
                .await
                .unwrap_err();
        assert!(error.to_string().contains("serves no client requests"), "{error}");
        node.shutdown().await;
    })
    .await;
}

on_both_transports!(request_above_the_nodes_maximum_is_refused_and_the_node_serves_on);

async fn request_above_the_nodes_maximum_is_refused_and_the_node_serves_on(
    transport: TransportKind,
) {
    bounded(async {
        let ca = CertificateAuthority::new("test CA").unwrap();
        let node = serving_node(&ca, transport);
        let identity = ca.issue_client(ClientId(1)).unwrap().identity;
        let addr = node.local_addr().unwrap();
        let mut config = client_config(1, transport);
        config.frame_bytes_max = 16 << 20;
        let client = RpcClient::connect(&config, &identity, addr, Some(NodeId(1))).await.unwrap();
        let huge = Bytes::from(vec![0_u8; 5 << 20]);
        let refused = client.call(huge, Duration::from_secs(10)).await;
        assert!(refused.is_err(), "a 5 MiB request passed a 4 MiB limit");
        wait_for_log(&["request refused: malformed frame", "exceeds the maximum"]).await;
        let fine = client.call(Bytes::from_static(b"ok"), Duration::from_secs(5)).await.unwrap();
        assert_eq!(fine, Bytes::from_static(b"client 1: ok"));
        node.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_does_not_hold_back_a_later_fast_one_on_the_shared_stream() {
    bounded(async {
        let (node, client) = echo_node_and_client(TransportKind::Quic).await;
        let slow_client = client.clone();
        let slow = tokio::spawn(async move {
            slow_client.call(Bytes::from_static(b"sleep"), Duration::from_secs(10)).await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let fast = client.call(Bytes::from_static(b"x"), Duration::from_secs(5)).await.unwrap();
        assert_eq!(fast, Bytes::from_static(b"client 1: x"));
        assert!(started.elapsed() < Duration::from_secs(1), "the fast call waited behind");
        assert!(!slow.is_finished(), "the slow call cannot be done yet");
        let slow = slow.await.unwrap().unwrap();
        assert_eq!(slow, Bytes::from_static(b"client 1: sleep"));
        node.shutdown().await;
    })
    .await;
}

on_both_transports!(calls_waiting_when_the_connection_closes_fail_at_once);

async fn calls_waiting_when_the_connection_closes_fail_at_once(transport: TransportKind) {
    bounded(async {
        let (node, client) = echo_node_and_client(transport).await;
        let waiting = client.clone();
        let pending = tokio::spawn(async move {
            waiting.call(Bytes::from_static(b"sleep"), Duration::from_secs(20)).await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        client.close();
        let outcome = pending.await.unwrap();
        assert!(matches!(outcome, Err(Error::ConnectionClosed { .. })), "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(1), "the call waited for its deadline");
        let after = client.call(Bytes::from_static(b"x"), Duration::from_secs(1)).await;
        assert!(matches!(after, Err(Error::ConnectionClosed { .. })), "{after:?}");
        node.shutdown().await;
    })
    .await;
}

/// Answers "ping" at once and holds every other request until `release` turns true.
struct Hold {
    release: tokio::sync::watch::Receiver<bool>,
}

impl RequestHandler for Hold {
    async fn handle(&self, _caller: Caller, request: Bytes) -> Bytes {
        if request.as_ref() != b"ping" {
            let mut release = self.release.clone();
            let _ = release.wait_for(|&released| released).await;
        }
        Bytes::from(request.len().to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bytes_and_connections_stay_within_their_budgets_and_others_are_served() {
    bounded(async {
        // Goal: a client that floods the node with large requests it holds cannot make the
        // node hold more than the byte budgets, gets "overloaded" answers instead, and a
        // second client is still served; connections past the maximum are refused.
        let ca = CertificateAuthority::new("test CA").unwrap();
        let identity = ca.issue_node(NodeId(1)).unwrap().identity;
        let mut config = raft_net_quic::NetConfig::new(CLUSTER, NodeId(1), loopback());
        config.frame_bytes_max = 64 << 10;
        config.rpc_connection_bytes_max = std::num::NonZeroU64::new(256 << 10).unwrap();
        config.rpc_bytes_max = std::num::NonZeroU64::new(512 << 10).unwrap();
        config.rpc_connections_max = std::num::NonZeroUsize::new(3).unwrap();
        let (node, _transport) = QuicNode::bind(config, &identity).unwrap();
        let (release, released) = tokio::sync::watch::channel(false);
        node.serve_requests(Hold { release: released });
        let addr = node.local_addr().unwrap();
        let connect = |id: u64| {
            let identity = ca.issue_client(ClientId(id)).unwrap().identity;
            async move {
                RpcClient::connect(&client_config(id, TransportKind::Quic), &identity, addr, None)
                    .await
            }
        };
        let flooder = connect(1).await.unwrap();
        let calls: Vec<_> = (0..40)
            .map(|_| {
                let flooder = flooder.clone();
                let request = Bytes::from(vec![7_u8; 60 << 10]);
                tokio::spawn(async move { flooder.call(request, Duration::from_secs(20)).await })
            })
            .collect();
        // The refusals come back at once; the held requests wait.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let answered_at_once = calls.iter().filter(|call| call.is_finished()).count();
        assert!(node.rpc_bytes_in_flight() <= 256 << 10, "{}", node.rpc_bytes_in_flight());
        assert!(answered_at_once > 0, "no request was refused as overloaded");
        assert!(node.rpc_bytes_in_flight() > 0, "nothing is held");
        // Another client is served meanwhile.
        let other = connect(2).await.unwrap();
        let pong = other.call(Bytes::from_static(b"ping"), Duration::from_secs(5)).await.unwrap();
        assert_eq!(pong, Bytes::from_static(b"4"));
        // Three connections are served; the fourth is refused, naming the reason.
        let third = connect(3).await.unwrap();
        assert_eq!(node.rpc_connections(), 3);
        let refused = connect(4).await.unwrap_err().to_string();
        assert!(refused.contains("overloaded"), "{refused}");
        wait_for_log(&["client connection refused", "overloaded"]).await;
        // Released, the held requests finish and every byte is given back.
        release.send_replace(true);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while node.rpc_bytes_in_flight() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(node.rpc_bytes_in_flight(), 0);
        let mut overloaded = 0;
        for call in calls {
            match call.await.unwrap() {
                Ok(_) => {}
                Err(Error::Overloaded { .. }) => overloaded += 1,
                Err(other) => panic!("neither served nor overloaded: {other}"),
            }
        }
        assert_eq!(overloaded, answered_at_once, "only the refusals came back at once");
        let pong = third.call(Bytes::from_static(b"ping"), Duration::from_secs(5)).await.unwrap();
        assert_eq!(pong, Bytes::from_static(b"4"));
        node.shutdown().await;
    })
    .await;
}
