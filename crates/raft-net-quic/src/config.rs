//! The endpoint's configuration.

use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use raft_core::NodeId;

use crate::error::Error;
use crate::frame::FRAME_BYTES_MAX_DEFAULT;
use crate::wire::TransportKind;

/// How one node's endpoint runs. `Default`-like values come from [`NetConfig::new`] and are
/// safe in production.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// The cluster's name; a peer or client with another is refused.
    pub cluster_id: String,
    /// This node.
    pub node_id: NodeId,
    /// The address to listen on: a UDP port for QUIC, a TCP port for TCP (port 0: the OS
    /// picks one; see `QuicNode::local_addr`).
    pub listen_addr: SocketAddr,
    /// The wire both protocols (peer and client) run on; every node of a cluster, and its
    /// clients, must use the same.
    pub transport: TransportKind,
    /// The largest frame sent or accepted, in bytes, not counting the 4-byte header. Must
    /// exceed raft-core's `append_bytes_max` and `snapshot_chunk_bytes` with room for
    /// framing.
    pub frame_bytes_max: u32,
    /// Messages received and not yet taken by the node; a full inbox slows the senders
    /// down through QUIC flow control.
    pub inbox_max: NonZeroUsize,
    /// Messages queued per peer while the connection is slow or down; when full, the oldest
    /// queued heartbeat is dropped to make room, else the new message is.
    pub peer_queue_max: NonZeroUsize,
    /// Snapshot chunks queued per peer (each up to a frame).
    pub snapshot_queue_max: NonZeroUsize,
    /// The most a TLS handshake plus hello exchange may take.
    pub handshake_timeout: Duration,
    /// How long a dial to a peer waits for its TLS handshake before giving up and backing
    /// off. QUIC does not fail fast on a closed port (its Initial packets are retried with
    /// growing delays), so this, not the handshake timeout, bounds how soon a restarted
    /// peer is reached again.
    pub connect_timeout: Duration,
    /// A connection silent this long is considered dead.
    pub idle_timeout: Duration,
    /// How often an otherwise idle connection sends a keep-alive.
    pub keep_alive_interval: Duration,
    /// The first reconnect delay after a failure; doubled per failure, with jitter.
    pub reconnect_backoff_min: Duration,
    /// The longest reconnect delay.
    pub reconnect_backoff_max: Duration,
    /// Requests a client connection may have in flight at once (one stream each).
    pub requests_in_flight_max: u32,
    /// The most client connections served at once; more are refused as overloaded in the
    /// handshake.
    pub rpc_connections_max: NonZeroUsize,
    /// The most request bytes one client connection may make the node hold (bodies
    /// waiting for their answer, and partial frames); a request past it is answered
    /// "overloaded". At least one frame of `frame_bytes_max`.
    pub rpc_connection_bytes_max: NonZeroU64,
    /// The most request bytes all client connections together may make the node hold; at
    /// least `rpc_connection_bytes_max`.
    pub rpc_bytes_max: NonZeroU64,
}

/// Default client connections: far above a cluster's clients and load generators, and
/// each costs a little memory and a task even when idle.
const RPC_CONNECTIONS_MAX_DEFAULT: NonZeroUsize = NonZeroUsize::new(1024).expect("non-zero");
/// Default request bytes per client connection: 64 MiB, sixteen maximal frames.
const RPC_CONNECTION_BYTES_MAX_DEFAULT: NonZeroU64 = NonZeroU64::new(64 << 20).expect("non-zero");
/// Default request bytes for all client connections: 512 MiB, enough for eight
/// connections at their maximum, small beside a server's memory.
const RPC_BYTES_MAX_DEFAULT: NonZeroU64 = NonZeroU64::new(512 << 20).expect("non-zero");

/// Default inbox: as raft-core's channel network, a few pipelining windows per peer.
const INBOX_MAX_DEFAULT: NonZeroUsize = NonZeroUsize::new(4096).expect("non-zero");
/// Default per-peer queue: raft-core's default window of 64 appends plus heartbeats and
/// votes, with room for a short stall.
const PEER_QUEUE_MAX_DEFAULT: NonZeroUsize = NonZeroUsize::new(1024).expect("non-zero");
/// Default snapshot queue: a few chunks are enough to keep the stream busy; the leader
/// re-sends what is dropped.
const SNAPSHOT_QUEUE_MAX_DEFAULT: NonZeroUsize = NonZeroUsize::new(8).expect("non-zero");

impl NetConfig {
    /// A configuration with production defaults: 4 MiB frames, 5 s handshakes (1 s to dial), 10 s idle
    /// timeout with 2 s keep-alives, reconnects between 50 ms and 2 s.
    #[must_use]
    pub fn new(cluster_id: impl Into<String>, node_id: NodeId, listen_addr: SocketAddr) -> Self {
        NetConfig {
            cluster_id: cluster_id.into(),
            node_id,
            listen_addr,
            transport: TransportKind::Quic,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            inbox_max: INBOX_MAX_DEFAULT,
            peer_queue_max: PEER_QUEUE_MAX_DEFAULT,
            snapshot_queue_max: SNAPSHOT_QUEUE_MAX_DEFAULT,
            handshake_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
            keep_alive_interval: Duration::from_secs(2),
            reconnect_backoff_min: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(2),
            requests_in_flight_max: 256,
            rpc_connections_max: RPC_CONNECTIONS_MAX_DEFAULT,
            rpc_connection_bytes_max: RPC_CONNECTION_BYTES_MAX_DEFAULT,
            rpc_bytes_max: RPC_BYTES_MAX_DEFAULT,
        }
    }

    /// Checks ranges and cross-field rules.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the field, its value and the rule.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field, value: String, rule| Err(Error::InvalidConfig { field, value, rule });
        if self.cluster_id.is_empty() || self.cluster_id.len() > 128 {
            return invalid("cluster_id", self.cluster_id.clone(), "must be 1 to 128 bytes");
        }
        if self.frame_bytes_max < 1024 {
            return invalid(
                "frame_bytes_max",
                self.frame_bytes_max.to_string(),
                "must be at least 1024 bytes",
            );
        }
        if self.keep_alive_interval >= self.idle_timeout {
            return invalid(
                "keep_alive_interval",
                format!("{:?}", self.keep_alive_interval),
                "must be shorter than idle_timeout, or idle connections time out",
            );
        }
        if self.reconnect_backoff_min.is_zero()
            || self.reconnect_backoff_min > self.reconnect_backoff_max
        {
            return invalid(
                "reconnect_backoff_min",
                format!("{:?}", self.reconnect_backoff_min),
                "must be non-zero and at most reconnect_backoff_max",
            );
        }
        if self.connect_timeout.is_zero() || self.connect_timeout > self.handshake_timeout {
            return invalid(
                "connect_timeout",
                format!("{:?}", self.connect_timeout),
                "must be non-zero and at most handshake_timeout",
            );
        }
        if self.handshake_timeout.is_zero() {
            return invalid("handshake_timeout", "0s".to_owned(), "must be non-zero");
        }
        if self.requests_in_flight_max == 0 {
            return invalid("requests_in_flight_max", "0".to_owned(), "must be non-zero");
        }
        // A maximal request frame (13-byte header and body) must fit one connection.
        if self.rpc_connection_bytes_max.get() < u64::from(self.frame_bytes_max) + 13 {
            return invalid(
                "rpc_connection_bytes_max",
                self.rpc_connection_bytes_max.to_string(),
                "must hold at least one frame of frame_bytes_max plus its 13-byte header",
            );
        }
        if self.rpc_bytes_max < self.rpc_connection_bytes_max {
            return invalid(
                "rpc_bytes_max",
                self.rpc_bytes_max.to_string(),
                "must be at least rpc_connection_bytes_max",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn config() -> NetConfig {
        NetConfig::new("test", NodeId(1), SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    #[test]
    fn default_config_is_valid() {
        config().validate().unwrap();
    }

    #[test]
    fn keep_alive_not_shorter_than_idle_timeout_is_refused() {
        let mut config = config();
        config.keep_alive_interval = config.idle_timeout;
        let error = config.validate().unwrap_err();
        assert!(error.to_string().contains("keep_alive_interval"), "{error}");
    }
}
