//! The state a node's endpoint tasks share: the peer links, the inbox, the request handler
//! and the shutdown switch.
//!
//! It lives apart from [`crate::node`], which creates it, so the peer and request
//! protocols that read it need not import the node module that starts them.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, PoisonError, RwLock};

use raft_core::{Message, NodeId};
use tokio::sync::{mpsc, watch};

use crate::config::NetConfig;
use crate::fault::FaultInjector;
use crate::handler::ErasedHandler;
use crate::handshake::Hello;
use crate::link::PeerLink;
use crate::rpc::ByteBudget;
use crate::tcp::TcpWire;

/// The wire a node speaks, with what dialing and accepting on it needs.
pub(crate) enum Wire {
    Quic {
        endpoint: quinn::Endpoint,
        /// Dials peers (ALPN `raft-peer`).
        peer_client_config: quinn::ClientConfig,
    },
    Tcp(TcpWire),
}

/// What the endpoint's tasks share.
pub(crate) struct Shared {
    pub(crate) config: NetConfig,
    pub(crate) wire: Wire,
    pub(crate) hello: Hello,
    pub(crate) links: RwLock<HashMap<NodeId, Arc<PeerLink>>>,
    /// The nodes whose peer connections are accepted: those given to `set_peer`, or the
    /// set last given to `set_allowed_peers`.
    pub(crate) allowed_peers: RwLock<BTreeSet<NodeId>>,
    pub(crate) inbox: mpsc::Sender<Message>,
    pub(crate) handler: RwLock<Option<Arc<dyn ErasedHandler>>>,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) faults: FaultInjector,
    /// Request bytes all client connections hold.
    pub(crate) rpc_bytes: Arc<ByteBudget>,
    /// Client connections being served.
    pub(crate) rpc_connections: AtomicUsize,
    pub(crate) span: tracing::Span,
}

impl Shared {
    pub(crate) fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub(crate) fn is_allowed_peer(&self, peer: NodeId) -> bool {
        self.allowed_peers.read().unwrap_or_else(PoisonError::into_inner).contains(&peer)
    }

    pub(crate) fn link(&self, peer: NodeId) -> Option<Arc<PeerLink>> {
        let links = self.links.read().unwrap_or_else(PoisonError::into_inner);
        links.get(&peer).cloned()
    }
}

/// The connection of an accepted TLS handshake that finished within `timeout`, or `None`
/// after logging why not.
pub(crate) fn handshake_finished<T, E: std::fmt::Display>(
    outcome: Result<Result<T, E>, tokio::time::error::Elapsed>,
    remote: std::net::SocketAddr,
    timeout: std::time::Duration,
) -> Option<T> {
    match outcome {
        Ok(Ok(connection)) => Some(connection),
        Ok(Err(error)) => {
            tracing::warn!(%remote, %error, "connection refused during the TLS handshake");
            None
        }
        Err(_) => {
            tracing::warn!(%remote, ?timeout, "connection refused: the TLS handshake timed out");
            None
        }
    }
}

/// Resolves when `shutdown` turns true (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: the endpoint is gone too.
    let _ = shutdown.wait_for(|&stopped| stopped).await;
}
