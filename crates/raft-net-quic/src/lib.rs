//! `raft-net-quic`: Raft peer transport and client request/response over QUIC with mutual
//! TLS (quinn + rustls).
//!
//! ```text
//!            cluster CA (rcgen: certs::generate)
//!                 │ signs node-N and client-N certificates
//!                 v
//!  raft_runtime ──Message──> PeerSender ──bounded queue──> [QUIC stream] ──> peer
//!  raft_runtime <──Message── PeerTransport::recv <── bounded inbox <── peer streams
//!  RpcClient::call(bytes) ──[QUIC bi stream, ALPN raft-rpc]──> RequestHandler ──> bytes
//! ```
//!
//! One [`QuicNode`] per node binds one UDP port for both protocols. Every connection must
//! present a certificate signed by the cluster CA or it fails in the TLS handshake; then
//! a [`Hello`] (cluster id, caller, protocol version) is checked against the certificate
//! before any Raft message or request is read. Frames are a 4-byte length and postcard
//! ([`frame`]), at most [`NetConfig::frame_bytes_max`].
//!
//! TLS uses rustls with the `ring` crypto provider: it builds from crates.io with only a C
//! compiler, needing no cmake, Go or NASM (which aws-lc-rs would).
//!
//! The `fault-injection` feature adds [`QuicNode::faults`]: per-peer drop, delay and
//! partition switches for tests.
//!
//! # Example
//!
//! ```
//! use raft_net_quic::{certs, NetConfig, QuicNode};
//! use raft_core::NodeId;
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let ca = certs::CertificateAuthority::new("example CA")?;
//! let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
//! let (one, _transport_one) =
//!     QuicNode::bind(NetConfig::new("demo", NodeId(1), loopback), &ca.issue_node(NodeId(1))?.identity)?;
//! let (two, _transport_two) =
//!     QuicNode::bind(NetConfig::new("demo", NodeId(2), loopback), &ca.issue_node(NodeId(2))?.identity)?;
//! one.set_peer(NodeId(2), two.local_addr().unwrap());
//! two.set_peer(NodeId(1), one.local_addr().unwrap());
//! // Hand each transport to `raft_runtime::Raft::new(..)`.
//! one.shutdown().await;
//! two.shutdown().await;
//! # Ok::<(), raft_net_quic::Error>(())
//! # }).unwrap();
//! ```

pub mod certs;
mod config;
mod error;
mod fault;
pub mod frame;
mod handler;
mod handshake;
mod link;
mod node;
mod peer;
mod queue;
mod rpc;
mod shared;
mod tcp;
pub mod tls;
mod wire;

pub use certs::{ClientId, Identity};
pub use config::NetConfig;
pub use error::Error;
#[cfg(feature = "fault-injection")]
pub use fault::{FaultInjector, PeerFault};
pub use handler::RequestHandler;
pub use handshake::{Caller, Hello, PROTOCOL_VERSION, REFUSED};
pub use node::QuicNode;
pub use peer::{PeerSender, PeerTransport};
pub use rpc::{REQUEST_FAILED, RpcClient, RpcClientConfig};
pub use tls::{ALPN_PEER, ALPN_RPC};
pub use wire::{TransportKind, UnknownTransport};
