//! Connections and bytes a node must refuse or drop — foreign certificates, client
//! certificates on the peer protocol, wrong cluster or version, garbage datagrams, bad
//! frames — each with a log line, while it keeps serving its real peer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::{bind, bounded, exchange, loopback, wait_for_log};
use raft_core::NodeId;
use raft_net_quic::certs::{CertificateAuthority, node_name};
use raft_net_quic::frame::encode_frame;
use raft_net_quic::tls::dialer_config;
use raft_net_quic::{
    ALPN_PEER, Caller, ClientId, Identity, PROTOCOL_VERSION, PeerTransport, QuicNode, REFUSED,
};

const CLUSTER: &str = "refusals";

/// Two real nodes, 1 and 2, connected to each other.
struct Pair {
    ca: CertificateAuthority,
    one: QuicNode,
    one_transport: PeerTransport,
    two: QuicNode,
    two_transport: PeerTransport,
}

impl Pair {
    async fn start() -> Pair {
        let ca = CertificateAuthority::new("test CA").unwrap();
        let (one, one_transport) = bind(&ca, CLUSTER, 1, loopback());
        let (two, two_transport) = bind(&ca, CLUSTER, 2, loopback());
        one.set_peer(NodeId(2), two.local_addr().unwrap());
        two.set_peer(NodeId(1), one.local_addr().unwrap());
        let mut pair = Pair { ca, one, one_transport, two, two_transport };
        pair.assert_serving().await;
        pair
    }

    fn addr(&self) -> SocketAddr {
        self.two.local_addr().unwrap()
    }

    /// Node 2 still exchanges messages with node 1, both ways.
    async fn assert_serving(&mut self) {
        exchange(&self.one_transport, &mut self.two_transport, 1, 2).await;
        exchange(&self.two_transport, &mut self.one_transport, 2, 1).await;
    }

    async fn shutdown(self) {
        self.one.shutdown().await;
        self.two.shutdown().await;
    }
}

/// A hand-made connection to `addr` as `identity`, speaking `alpn`.
async fn dial(
    identity: &Identity,
    addr: SocketAddr,
    alpn: &[u8],
    server: NodeId,
) -> (quinn::Endpoint, Result<quinn::Connection, quinn::ConnectionError>) {
    let endpoint = quinn::Endpoint::client(loopback()).unwrap();
    let config = dialer_config(identity, alpn).unwrap();
    let connecting = endpoint.connect_with(config, addr, &node_name(server)).unwrap();
    let connection = connecting.await;
    (endpoint, connection)
}

fn local(endpoint: &quinn::Endpoint) -> String {
    format!("remote={}", endpoint.local_addr().unwrap())
}

/// Sends `hello` on a new stream and returns the close reason if the node refuses it.
async fn say_hello(connection: &quinn::Connection, hello: &raft_net_quic::Hello) -> Option<String> {
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&encode_frame(hello, "hello", 1024).unwrap()).await.unwrap();
    send.finish().unwrap();
    match recv.read_to_end(1024).await {
        Ok(_) => None,
        Err(_) => match connection.closed().await {
            quinn::ConnectionError::ApplicationClosed(close) => {
                assert_eq!(close.error_code, REFUSED);
                Some(String::from_utf8_lossy(&close.reason).into_owned())
            }
            other => panic!("unexpected close: {other}"),
        },
    }
}

fn hello(cluster: &str, version: u32, caller: Caller) -> raft_net_quic::Hello {
    raft_net_quic::Hello { protocol_version: version, cluster_id: cluster.to_owned(), caller }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_certificate_from_another_ca_is_refused_in_the_tls_handshake() {
    bounded(async {
        let mut pair = Pair::start().await;
        let foreign = CertificateAuthority::new("foreign CA").unwrap();
        let mut identity = foreign.issue_node(NodeId(3)).unwrap().identity;
        // It trusts our CA, so the refusal is ours, of its certificate.
        identity.ca = pair.ca.issue_node(NodeId(3)).unwrap().identity.ca;
        let (endpoint, connection) = dial(&identity, pair.addr(), ALPN_PEER, NodeId(2)).await;
        let refused = match connection {
            Err(error) => error.to_string(),
            // The client may finish its side before the server's verdict arrives.
            Ok(connection) => connection.closed().await.to_string(),
        };
        assert!(refused.to_lowercase().contains("certificate"), "{refused}");
        let line =
            wait_for_log(&["connection refused during the TLS handshake", &local(&endpoint)]).await;
        assert!(line.contains("UnknownIssuer"), "{line}");
        pair.assert_serving().await;
        pair.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_cannot_speak_the_peer_protocol() {
    bounded(async {
        let mut pair = Pair::start().await;
        let client = pair.ca.issue_client(ClientId(7)).unwrap().identity;
        // Saying so openly.
        let (endpoint, connection) = dial(&client, pair.addr(), ALPN_PEER, NodeId(2)).await;
        let as_client = hello(CLUSTER, PROTOCOL_VERSION, Caller::Client(ClientId(7)));
        let reason = say_hello(&connection.unwrap(), &as_client).await.expect("refused");
        assert!(reason.contains("may not speak the peer protocol"), "{reason}");
        wait_for_log(&["a client may not speak the peer protocol", &local(&endpoint)]).await;
        // Pretending to be node 3.
        let (endpoint, connection) = dial(&client, pair.addr(), ALPN_PEER, NodeId(2)).await;
        let as_node = hello(CLUSTER, PROTOCOL_VERSION, Caller::Node(NodeId(3)));
        let reason = say_hello(&connection.unwrap(), &as_node).await.expect("refused");
        assert!(reason.contains("certificate does not name node 3"), "{reason}");
        wait_for_log(&["certificate does not name the caller", &local(&endpoint)]).await;
        pair.assert_serving().await;
        pair.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_of_another_cluster_or_version_is_refused_naming_both_values() {
    bounded(async {
        let mut pair = Pair::start().await;
        let node = pair.ca.issue_node(NodeId(3)).unwrap().identity;
        let (endpoint, connection) = dial(&node, pair.addr(), ALPN_PEER, NodeId(2)).await;
        let other = hello("elsewhere", PROTOCOL_VERSION, Caller::Node(NodeId(3)));
        let reason = say_hello(&connection.unwrap(), &other).await.expect("refused");
        assert!(reason.contains("\"refusals\"") && reason.contains("\"elsewhere\""), "{reason}");
        let line = wait_for_log(&["cluster id differs", &local(&endpoint)]).await;
        let both = line.contains("ours=\"refusals\"") && line.contains("theirs=\"elsewhere\"");
        assert!(both, "{line}");

        let (endpoint, connection) = dial(&node, pair.addr(), ALPN_PEER, NodeId(2)).await;
        let future = hello(CLUSTER, PROTOCOL_VERSION + 98, Caller::Node(NodeId(3)));
        let reason = say_hello(&connection.unwrap(), &future).await.expect("refused");
        let (ours, theirs) = (PROTOCOL_VERSION, PROTOCOL_VERSION + 98);
        assert!(reason.contains(&format!("ours {ours}, theirs {theirs}")), "{reason}");
        let line = wait_for_log(&["protocol version differs", &local(&endpoint)]).await;
        let both = line.contains(&format!("ours={ours}"));
        assert!(both && line.contains(&format!("theirs={theirs}")), "{line}");
        pair.assert_serving().await;
        pair.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_not_a_configured_peer_is_refused_naming_its_id() {
    bounded(async {
        let mut pair = Pair::start().await;
        // Node 3 has a certificate from the cluster's CA, but node 2 was never told of it.
        let node = pair.ca.issue_node(NodeId(3)).unwrap().identity;
        let as_node = hello(CLUSTER, PROTOCOL_VERSION, Caller::Node(NodeId(3)));
        let (endpoint, connection) = dial(&node, pair.addr(), ALPN_PEER, NodeId(2)).await;
        let reason = say_hello(&connection.unwrap(), &as_node).await.expect("refused");
        assert!(reason.contains("node 3 is not a member"), "{reason}");
        let line = wait_for_log(&["the node is not a configured peer", &local(&endpoint)]).await;
        assert!(line.contains("id=3"), "{line}");
        // Once allowed (a joining node the leader knows), it passes.
        pair.two.set_allowed_peers([NodeId(1), NodeId(3)].into());
        let (_endpoint, connection) = dial(&node, pair.addr(), ALPN_PEER, NodeId(2)).await;
        let connection = connection.unwrap();
        assert_eq!(say_hello(&connection, &as_node).await, None, "an allowed node passes");
        // Removed again: its connection closes and a new one is refused.
        pair.two.set_allowed_peers([NodeId(1)].into());
        let closed = tokio::time::timeout(Duration::from_secs(5), connection.closed()).await;
        assert!(closed.is_ok(), "the removed node's connection stays open");
        let (_endpoint, connection) = dial(&node, pair.addr(), ALPN_PEER, NodeId(2)).await;
        let reason = say_hello(&connection.unwrap(), &as_node).await.expect("refused");
        assert!(reason.contains("node 3 is not a member"), "{reason}");
        pair.assert_serving().await;
        pair.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_and_garbage_datagrams_are_dropped() {
    bounded(async {
        let mut pair = Pair::start().await;
        let socket = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for round in 0..200 {
            let datagram: Vec<u8> = if round % 2 == 0 {
                b"GET / HTTP/1.1\r\nHost: raft\r\n\r\n".to_vec()
            } else {
                (0..1200)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect()
            };
            socket.send_to(&datagram, pair.addr()).await.unwrap();
        }
        pair.assert_serving().await;
        pair.shutdown().await;
    })
    .await;
}

/// A connection that passed TLS and the hello as node 3 (allowed as a peer for this):
/// what it sends next is the test.
async fn peer_stream(pair: &Pair) -> (quinn::Endpoint, quinn::Connection, quinn::SendStream) {
    pair.two.set_allowed_peers([NodeId(1), NodeId(3)].into());
    let node = pair.ca.issue_node(NodeId(3)).unwrap().identity;
    let (endpoint, connection) = dial(&node, pair.addr(), ALPN_PEER, NodeId(2)).await;
    let connection = connection.unwrap();
    let ours = hello(CLUSTER, PROTOCOL_VERSION, Caller::Node(NodeId(3)));
    assert_eq!(say_hello(&connection, &ours).await, None, "the handshake passes");
    let stream = connection.open_uni().await.unwrap();
    (endpoint, connection, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_the_stream_and_the_node_serves_on() {
    bounded(async {
        let mut pair = Pair::start().await;
        let (endpoint, _connection, mut stream) = peer_stream(&pair).await;
        stream.write_all(&(64_u32 << 20).to_be_bytes()).await.unwrap();
        let line = wait_for_log(&["peer stream closed: malformed frame", &local(&endpoint)]).await;
        assert!(line.contains("exceeds the maximum"), "{line}");
        pair.assert_serving().await;
        pair.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_is_logged_and_the_node_serves_on() {
    bounded(async {
        let mut pair = Pair::start().await;
        let (endpoint, _connection, mut stream) = peer_stream(&pair).await;
        let mut frame = BytesMut::new();
        frame.put_u32(100);
        frame.put_slice(&[0; 10]);
        stream.write_all(&frame).await.unwrap();
        stream.finish().unwrap();
        let line = wait_for_log(&["peer stream closed: truncated frame", &local(&endpoint)]).await;
        assert!(line.contains("10") || line.contains("14"), "{line}");
        pair.assert_serving().await;
        pair.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_after_a_valid_handshake_close_only_that_stream() {
    bounded(async {
        let mut pair = Pair::start().await;
        // A plausible length followed by noise: the body is not a message.
        let (endpoint, connection, mut stream) = peer_stream(&pair).await;
        let mut frame = BytesMut::new();
        frame.put_u32(64);
        frame.put_slice(&[0xFF; 64]);
        stream.write_all(&frame).await.unwrap();
        let line = wait_for_log(&["peer stream closed: malformed frame", &local(&endpoint)]).await;
        assert!(line.contains("malformed message frame"), "{line}");
        // Pure noise on another stream of the same connection.
        let mut noise = connection.open_uni().await.unwrap();
        let bytes: Vec<u8> =
            (0..4096_u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let _ = noise.write_all(&bytes).await;
        pair.assert_serving().await;
        pair.shutdown().await;
    })
    .await;
}
