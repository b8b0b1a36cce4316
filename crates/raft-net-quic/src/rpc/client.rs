//! The client's side of the request/response protocol: one connection to one node, one
//! bidirectional stream per call.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use raft_core::NodeId;

use super::{REQUEST_FRAME, RESPONSE_FRAME};
use crate::certs::{ANY_NODE_NAME, Identity, node_name};
use crate::error::Error;
use crate::frame::{FRAME_BYTES_MAX_DEFAULT, encode_frame, read_one};
use crate::handshake::{self, Caller, Hello, PROTOCOL_VERSION};
use crate::tls::{self, ALPN_RPC, Timings};

/// How a client connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcClientConfig {
    /// The cluster's name; must match the node's.
    pub cluster_id: String,
    /// Who this client is; must match its certificate.
    pub caller: Caller,
    /// The local UDP address (port 0 lets the OS pick).
    pub bind_addr: SocketAddr,
    /// The largest request or response, in bytes.
    pub frame_bytes_max: u32,
    /// The most the TLS handshake plus hello may take.
    pub handshake_timeout: Duration,
    /// A connection silent this long is dead.
    pub idle_timeout: Duration,
    /// Keep-alive interval of an idle connection.
    pub keep_alive_interval: Duration,
}

impl RpcClientConfig {
    /// Defaults matching [`crate::NetConfig::new`], bound to any local address.
    #[must_use]
    pub fn new(cluster_id: impl Into<String>, caller: Caller) -> RpcClientConfig {
        RpcClientConfig {
            cluster_id: cluster_id.into(),
            caller,
            bind_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            keep_alive_interval: Duration::from_secs(2),
        }
    }
}

/// A client's connection to one node. Clones share the connection; calls run concurrently.
#[derive(Clone, Debug)]
pub struct RpcClient {
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    server: NodeId,
    frame_bytes_max: u32,
}

impl RpcClient {
    /// Connects to the node at `addr`. With `node` given, the node's certificate must name
    /// it; without, any node certificate of the cluster is accepted.
    ///
    /// # Errors
    ///
    /// TLS setup errors for a bad identity, [`Error::Bind`], [`Error::Connection`] (refused
    /// in TLS, unreachable), [`Error::HandshakeRefused`], [`Error::Timeout`].
    pub async fn connect(
        config: &RpcClientConfig,
        identity: &Identity,
        addr: SocketAddr,
        node: Option<NodeId>,
    ) -> Result<RpcClient, Error> {
        let timings = Timings {
            idle_timeout: config.idle_timeout,
            keep_alive_interval: config.keep_alive_interval,
        };
        let client_config = tls::client_config(identity, ALPN_RPC, timings, 0)?;
        let bind = config.bind_addr;
        let endpoint =
            quinn::Endpoint::client(bind).map_err(|source| Error::Bind { addr: bind, source })?;
        let name = node.map_or_else(|| ANY_NODE_NAME.to_owned(), node_name);
        let connecting = endpoint
            .connect_with(client_config, addr, &name)
            .map_err(|source| Error::Connect { addr, source })?;
        let timeout = config.handshake_timeout;
        let connection = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| Error::Timeout { what: "TLS handshake", addr, after: timeout })?
            .map_err(|source| Error::Connection { addr, source })?;
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: config.cluster_id.clone(),
            caller: config.caller,
        };
        let server = handshake::dial(&connection, &hello, node, timeout).await?;
        Ok(RpcClient { endpoint, connection, server, frame_bytes_max: config.frame_bytes_max })
    }

    /// The node this client is connected to.
    #[must_use]
    pub fn server(&self) -> NodeId {
        self.server
    }

    /// Sends `request` and waits at most `timeout` for the response.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`]; [`Error::Connection`], [`Error::Write`] or [`Error::Read`] when
    /// the connection or the request's stream failed (the node reset it: malformed request
    /// or oversized response); [`Error::FrameTooLarge`] for a request above the maximum.
    pub async fn call(&self, request: Bytes, timeout: Duration) -> Result<Bytes, Error> {
        let addr = self.connection.remote_address();
        let frame = encode_frame(&request, REQUEST_FRAME, self.frame_bytes_max)?;
        let exchange = async {
            let (mut send, mut recv) = self
                .connection
                .open_bi()
                .await
                .map_err(|source| Error::Connection { addr, source })?;
            send.write_chunk(frame).await.map_err(|source| Error::Write { addr, source })?;
            let _ = send.finish();
            read_one::<Bytes>(&mut recv, addr, RESPONSE_FRAME, self.frame_bytes_max).await
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| Error::Timeout {
            what: "request",
            addr,
            after: timeout,
        })?
    }

    /// Closes the connection; pending calls fail.
    pub fn close(&self) {
        self.connection.close(quinn::VarInt::from_u32(0), b"client closed");
        self.endpoint.close(quinn::VarInt::from_u32(0), b"client closed");
    }
}
