//! One node's endpoint (QUIC, or TCP: see [`crate::tcp`]): binds the socket, accepts
//! connections and hands each to the peer protocol or the request/response protocol by its
//! ALPN.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use raft_core::NodeId;
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, info, info_span, warn};

use crate::certs::Identity;
use crate::config::NetConfig;
use crate::error::Error;
use crate::fault::FaultInjector;
use crate::handler::{ErasedHandler, RequestHandler};
use crate::handshake::{Caller, Hello, PROTOCOL_VERSION, REFUSED};
use crate::peer::{self, PeerTransport};
use crate::rpc::{self, ByteBudget};
use crate::shared::{Shared, Wire, handshake_finished, stopped};
use crate::tcp;
use crate::tls::{self, ALPN_PEER, ALPN_RPC, Timings};
use crate::wire::TransportKind;

/// A node's endpoint, on QUIC or TCP ([`NetConfig::transport`]): the peer transport's
/// connections and the client listener.
///
/// Dropping it (or [`QuicNode::shutdown`]) closes every connection; the [`PeerTransport`]
/// then reports the end with `recv() == None`.
pub struct QuicNode {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for QuicNode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("QuicNode")
            .field("node_id", &self.shared.config.node_id)
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl QuicNode {
    /// Binds `config.listen_addr` and starts accepting connections. Peers are added with
    /// [`QuicNode::set_peer`]; client requests are served once [`QuicNode::serve_requests`]
    /// installs a handler (until then client connections are refused).
    ///
    /// Must be called inside a tokio runtime: the endpoint's tasks are spawned on it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`], TLS setup errors for a bad identity, [`Error::Bind`].
    pub fn bind(
        config: NetConfig,
        identity: &Identity,
    ) -> Result<(QuicNode, PeerTransport), Error> {
        config.validate()?;
        let (wire, tcp_listener) = match config.transport {
            TransportKind::Quic => (bind_quic(&config, identity)?, None),
            TransportKind::Tcp => {
                let (wire, listener) = tcp::bind(&config, identity)?;
                (Wire::Tcp(wire), Some(listener))
            }
        };
        let (inbox_sender, inbox) = mpsc::channel(config.inbox_max.get());
        let span = info_span!("quic", node = %config.node_id);
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: config.cluster_id.clone(),
            caller: Caller::Node(config.node_id),
        };
        let rpc_bytes_max = config.rpc_bytes_max.get();
        let shared = Arc::new(Shared {
            config,
            wire,
            hello,
            links: RwLock::new(HashMap::new()),
            allowed_peers: RwLock::new(BTreeSet::new()),
            inbox: inbox_sender,
            handler: RwLock::new(None),
            shutdown: watch::Sender::new(false),
            #[allow(clippy::default_constructed_unit_structs)] // A unit struct without the feature.
            faults: FaultInjector::default(),
            rpc_bytes: Arc::new(ByteBudget::new(rpc_bytes_max)),
            rpc_connections: AtomicUsize::new(0),
            span: span.clone(),
        });
        match tcp_listener {
            Some(listener) => {
                tokio::spawn(tcp::accept_loop(Arc::clone(&shared), listener).instrument(span))
            }
            None => tokio::spawn(accept_loop(Arc::clone(&shared)).instrument(span)),
        };
        let transport = PeerTransport::new(Arc::clone(&shared), inbox);
        Ok((QuicNode { shared }, transport))
    }

    /// The address the endpoint listens on (with the port the OS picked for port 0).
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.shared.wire {
            Wire::Quic { endpoint, .. } => endpoint.local_addr().ok(),
            Wire::Tcp(wire) => Some(wire.local_addr),
        }
    }

    /// The wire this node speaks.
    #[must_use]
    pub fn transport(&self) -> TransportKind {
        self.shared.config.transport
    }

    /// This node's id.
    #[must_use]
    pub fn node_id(&self) -> NodeId {
        self.shared.config.node_id
    }

    /// Adds peer `id` at `addr`, or changes its address, and accepts its connections (see
    /// [`QuicNode::set_allowed_peers`]). The node with the lower id dials; the other waits
    /// for it, so each pair shares one connection.
    pub fn set_peer(&self, id: NodeId, addr: SocketAddr) {
        if id == self.shared.config.node_id {
            return;
        }
        self.shared.allowed_peers.write().unwrap_or_else(PoisonError::into_inner).insert(id);
        let link = peer::link_or_create(&self.shared, id);
        link.set_address(addr);
    }

    /// Accepts peer connections only from `peers` from now on (the cluster's members and the
    /// nodes being added), and closes the current connection of any peer no longer in it.
    ///
    /// Every node holding a certificate from the cluster's CA passes TLS; this set is what
    /// keeps a node that is not (or no longer) a member from talking Raft to this one. A
    /// refused node is logged with its id. [`QuicNode::set_peer`] adds to the set.
    pub fn set_allowed_peers(&self, peers: BTreeSet<NodeId>) {
        let previous = std::mem::replace(
            &mut *self.shared.allowed_peers.write().unwrap_or_else(PoisonError::into_inner),
            peers.clone(),
        );
        for removed in previous.difference(&peers) {
            let Some(link) = self.shared.link(*removed) else {
                continue;
            };
            if let Some(connection) = link.connection.send_replace(None) {
                info!(peer = %removed, "closed the connection of a node no longer a peer");
                connection.close(REFUSED, b"no longer a peer");
            }
        }
    }

    /// The nodes whose peer connections are accepted.
    #[must_use]
    pub fn allowed_peers(&self) -> BTreeSet<NodeId> {
        self.shared.allowed_peers.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The request bytes client connections make this node hold now (never above
    /// `NetConfig::rpc_bytes_max`).
    #[must_use]
    pub fn rpc_bytes_in_flight(&self) -> u64 {
        self.shared.rpc_bytes.used()
    }

    /// The client connections being served now (never above
    /// `NetConfig::rpc_connections_max`).
    #[must_use]
    pub fn rpc_connections(&self) -> usize {
        self.shared.rpc_connections.load(Ordering::Acquire)
    }

    /// Serves client requests with `handler` from now on (replacing any earlier handler).
    pub fn serve_requests<H: RequestHandler>(&self, handler: H) {
        let handler: Arc<dyn ErasedHandler> = Arc::new(handler);
        *self.shared.handler.write().unwrap_or_else(PoisonError::into_inner) = Some(handler);
    }

    /// The fault-injection switchboard for this node's peer traffic.
    #[cfg(feature = "fault-injection")]
    #[must_use]
    pub fn faults(&self) -> FaultInjector {
        self.shared.faults.clone()
    }

    /// Closes every connection and stops the endpoint's tasks, then waits (briefly) for
    /// the close to reach the other sides.
    pub async fn shutdown(&self) {
        self.close();
        let Wire::Quic { endpoint, .. } = &self.shared.wire else {
            // TCP connections close as their tasks see the shutdown and drop them.
            return;
        };
        let idle = endpoint.wait_idle();
        // Peers learn of the close from the first packet; do not wait out slow ones.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), idle).await;
    }

    fn close(&self) {
        self.shared.shutdown.send_replace(true);
        if let Wire::Quic { endpoint, .. } = &self.shared.wire {
            endpoint.close(SHUTDOWN, b"node shutting down");
        }
    }
}

impl Drop for QuicNode {
    fn drop(&mut self) {
        self.close();
    }
}

/// The close code of a node shutting down.
const SHUTDOWN: quinn::VarInt = quinn::VarInt::from_u32(0x5344);

/// Derives the stateless-reset key from the node's private key, so a node restarted on the
/// same address can reset its peers' connections to its previous life at once instead of
/// leaving them to the idle timeout.
fn endpoint_config(identity: &Identity) -> quinn::EndpointConfig {
    let digest = ring::digest::digest(&ring::digest::SHA256, identity.key.secret_der());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, digest.as_ref());
    quinn::EndpointConfig::new(Arc::new(key))
}

/// Binds the UDP socket and the QUIC endpoint.
fn bind_quic(config: &NetConfig, identity: &Identity) -> Result<Wire, Error> {
    let timings = Timings {
        idle_timeout: config.idle_timeout,
        keep_alive_interval: config.keep_alive_interval,
    };
    let server_config = tls::server_config(identity, timings, config.requests_in_flight_max)?;
    let peer_client_config = tls::client_config(identity, ALPN_PEER, timings, 0)?;
    let addr = config.listen_addr;
    let socket = std::net::UdpSocket::bind(addr).map_err(|source| Error::Bind { addr, source })?;
    let endpoint = quinn::Endpoint::new(
        endpoint_config(identity),
        Some(server_config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|source| Error::Bind { addr, source })?;
    Ok(Wire::Quic { endpoint, peer_client_config })
}

async fn accept_loop(shared: Arc<Shared>) {
    let Wire::Quic { endpoint, .. } = &shared.wire else {
        return;
    };
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            () = stopped(&mut shutdown) => return,
        };
        let Some(incoming) = incoming else {
            return;
        };
        let span = shared.span.clone();
        tokio::spawn(handle_incoming(Arc::clone(&shared), incoming).instrument(span));
    }
}

async fn handle_incoming(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(error) => {
            warn!(%remote, %error, "connection refused before the TLS handshake");
            return;
        }
    };
    let timeout = shared.config.handshake_timeout;
    let outcome = tokio::time::timeout(timeout, connecting).await;
    let Some(connection) = handshake_finished(outcome, remote, timeout) else {
        return;
    };
    match tls::negotiated_protocol(&connection).as_deref() {
        Some(ALPN_PEER) => peer::accept(shared, connection).await,
        Some(ALPN_RPC) => rpc::serve_connection(shared, connection).await,
        _ => {
            warn!(%remote, "connection refused: no known application protocol");
            connection.close(REFUSED, b"no known application protocol");
        }
    }
}
