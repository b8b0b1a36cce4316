//! The TCP transport: the same peer and request protocols as QUIC, over TCP with mutual
//! TLS 1.3 (tokio-rustls, the same rustls configuration and certificates).
//!
//! Peers: each node dials its own connections to each peer, one per stream kind (messages,
//! snapshots), and only writes on them; it reads what its peers dial to it. So there is no
//! "who dials" rule and no connection to replace: a restarted peer dials anew, and the
//! connections of its previous life end with the kernel's reset or end of stream (or, when
//! its machine is gone, TCP keep-alive and the user timeout after `idle_timeout`).
//!
//! Clients: a connection carries the request frames of [`crate::rpc`] directly, after the
//! hello.
//!
//! After TLS, the dialer sends its hello and the acceptor answers (see
//! [`crate::handshake`]), as on QUIC. ALPN tells the acceptor which protocol follows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raft_core::NodeId;
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{Instrument, debug, info, warn};

use crate::certs::{Identity, node_name};
use crate::config::NetConfig;
use crate::error::Error;
use crate::handshake::{self, Caller, Hello, Protocol};
use crate::link::{PeerLink, StreamKind};
use crate::peer::{self, Redial};
use crate::rpc;
use crate::shared::{Shared, Wire, handshake_finished, stopped};
use crate::tls::{self, ALPN_PEER, ALPN_RPC};
use crate::wire::{StreamReader, StreamWriter, TlsStream};

/// A node's TCP side: its address and TLS configurations (the listener lives in the accept
/// task).
pub(crate) struct TcpWire {
    pub(crate) local_addr: SocketAddr,
    acceptor: TlsAcceptor,
    /// Dials peers (ALPN [`ALPN_PEER`]).
    connector: TlsConnector,
}

/// Binds `config.listen_addr` for TCP.
pub(crate) fn bind(
    config: &NetConfig,
    identity: &Identity,
) -> Result<(TcpWire, TcpListener), Error> {
    let acceptor = TlsAcceptor::from(Arc::new(tls::tls_server(identity)?));
    let connector = TlsConnector::from(Arc::new(tls::tls_client(identity, ALPN_PEER)?));
    let addr = config.listen_addr;
    let bind_error = |source| Error::BindTcp { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    let listener = TcpListener::from_std(listener).map_err(bind_error)?;
    Ok((TcpWire { local_addr, acceptor, connector }, listener))
}

/// Sets what every connection of ours gets: no Nagle delay (frames are written whole, in
/// batches), keep-alive probes from `keep_alive` on, and `idle` as the longest a peer that
/// went silent (or writes left unacknowledged) keeps the connection open.
fn tune(stream: &TcpStream, keep_alive: Duration, idle: Duration) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let socket = socket2::SockRef::from(stream);
    let probes = u32::try_from(idle.as_millis() / keep_alive.as_millis().max(1)).unwrap_or(9);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(keep_alive)
        .with_interval(keep_alive)
        .with_retries(probes.max(1));
    socket.set_tcp_keepalive(&keepalive)?;
    socket.set_tcp_user_timeout(Some(idle))
}

/// Connects to `addr` and runs the TLS handshake, naming the expected server `name`, within
/// `connect_timeout`; the socket gets `timings`' keep-alive and idle timeout.
pub(crate) async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: &str,
    connect_timeout: Duration,
    timings: tls::Timings,
) -> Result<TlsStream, Error> {
    let server_name = ServerName::try_from(name.to_owned()).map_err(|_| Error::InvalidConfig {
        field: "server name",
        value: name.to_owned(),
        rule: "must be a DNS name",
    })?;
    let dial = async {
        let io = |what| move |source| Error::Io { what, addr, source };
        let socket = TcpStream::connect(addr).await.map_err(io("connecting"))?;
        tune(&socket, timings.keep_alive_interval, timings.idle_timeout)
            .map_err(io("setting socket options"))?;
        let stream = connector.connect(server_name, socket).await.map_err(io("TLS handshake"))?;
        Ok(TlsStream::from(stream))
    };
    tokio::time::timeout(connect_timeout, dial).await.unwrap_or(Err(Error::Timeout {
        what: "TCP connect and TLS handshake",
        addr,
        after: connect_timeout,
    }))
}

/// Accepts TCP connections until the node stops.
///
/// At most [`tls::INCOMING_MAX`] connections are in their TLS handshake at once, as on QUIC:
/// past that a new connection is closed at once (a flood of handshakes cannot hold unbounded
/// tasks and buffers; a real peer or client retries).
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut shutdown = shared.shutdown.subscribe();
    let handshakes = Arc::new(tokio::sync::Semaphore::new(tls::INCOMING_MAX));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut shutdown) => return,
        };
        match accepted {
            Ok((socket, remote)) => {
                let Ok(handshake) = Arc::clone(&handshakes).try_acquire_owned() else {
                    debug!(%remote, "connection refused: too many handshakes in progress");
                    continue;
                };
                let task = handle_incoming(Arc::clone(&shared), socket, remote, handshake);
                tokio::spawn(task.instrument(shared.span.clone()));
            }
            Err(error) => {
                // Out of descriptors or memory: the backlog waits, so does this loop.
                warn!(%error, "cannot accept a TCP connection; retrying shortly");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    () = stopped(&mut shutdown) => return,
                }
            }
        }
    }
}

async fn handle_incoming(
    shared: Arc<Shared>,
    socket: TcpStream,
    remote: SocketAddr,
    handshake: tokio::sync::OwnedSemaphorePermit,
) {
    let Wire::Tcp(wire) = &shared.wire else {
        return;
    };
    let config = &shared.config;
    if let Err(error) = tune(&socket, config.keep_alive_interval, config.idle_timeout) {
        warn!(%remote, %error, "connection refused: cannot set its socket options");
        return;
    }
    let timeout = config.handshake_timeout;
    let outcome = tokio::time::timeout(timeout, wire.acceptor.accept(socket)).await;
    let Some(stream) = handshake_finished(outcome, remote, timeout) else {
        return;
    };
    // Past TLS the caller holds a certificate of the cluster's CA; its hello has its own
    // timeout, and the connection limits of the protocols apply from here.
    drop(handshake);
    let stream = TlsStream::from(stream);
    let protocol = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    match protocol.as_deref() {
        Some(ALPN_PEER) => accept_peer(shared, stream, remote).await,
        Some(ALPN_RPC) => rpc::serve_tcp(shared, stream, remote).await,
        _ => warn!(%remote, "connection refused: no known application protocol"),
    }
}

/// Reads the messages a peer sends on a connection it dialed, once its hello passes.
async fn accept_peer(shared: Arc<Shared>, mut stream: TlsStream, remote: SocketAddr) {
    let timeout = shared.config.handshake_timeout;
    let is_peer = |id: NodeId| shared.is_allowed_peer(id);
    let accepted = handshake::accept_stream(
        &mut stream,
        remote,
        Protocol::Peer,
        &shared.hello,
        timeout,
        &is_peer,
    )
    .await;
    let peer = match accepted {
        Ok(Caller::Node(peer)) => peer,
        Ok(caller) => {
            warn!(%remote, %caller, "connection refused: not a node");
            return;
        }
        Err(Error::HandshakeRefused { .. }) => return,
        Err(error) => {
            warn!(%remote, %error, "peer handshake failed");
            return;
        }
    };
    debug!(%peer, %remote, "peer connection accepted");
    // Nothing is written back after the hello; the write half closes with the read half.
    let (read, _write) = tokio::io::split(stream);
    let mut shutdown = shared.shutdown.subscribe();
    let reader = StreamReader::tcp(read);
    tokio::select! {
        () = peer::read_stream(Arc::clone(&shared), peer, remote, reader) => {}
        () = stopped(&mut shutdown) => {}
    }
}

/// Keeps one of `link`'s outgoing connections (one per stream kind) and sends its queue on
/// it, re-dialing with backoff and jitter.
pub(crate) async fn write_loop(shared: Arc<Shared>, link: Arc<PeerLink>, kind: StreamKind) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut addresses = link.address.subscribe();
    let mut redial = Redial::new(&shared.config);
    loop {
        if !peer::until_allowed(&shared, link.peer, &mut shutdown).await {
            return;
        }
        let addr = tokio::select! {
            addr = addresses.wait_for(Option::is_some) => match addr.ok().and_then(|addr| *addr) {
                Some(addr) => addr,
                None => return,
            },
            () = stopped(&mut shutdown) => return,
        };
        let dialed = tokio::select! {
            dialed = dial(&shared, link.peer, addr) => dialed,
            () = stopped(&mut shutdown) => return,
        };
        match dialed {
            Ok(stream) => {
                if kind == StreamKind::Messages {
                    info!(peer = %link.peer, %addr, "peer connected");
                }
                redial.connected();
                // The acceptor writes nothing after its hello; its end of stream arrives
                // as a failed write.
                let (_read, write) = tokio::io::split(stream);
                let mut writer = StreamWriter::tcp(write);
                let sent = tokio::select! {
                    sent = peer::send_queue(&shared, &link, kind, addr, &mut writer, std::future::pending()) => sent,
                    () = stopped(&mut shutdown) => return,
                };
                if let Err(error) = sent {
                    info!(peer = %link.peer, %addr, stream = kind.name(), %error,
                        "peer connection closed");
                }
            }
            // The message stream's dialer reports for the peer; the snapshot stream's is
            // quiet about the same failure.
            Err(error) => redial.failed(link.peer, addr, &error, kind == StreamKind::Messages),
        }
        if !redial.wait(&mut shutdown).await {
            return;
        }
    }
}

/// Dials `peer` at `addr`: TCP, TLS naming the peer, then the hello exchange.
async fn dial(shared: &Shared, peer: NodeId, addr: SocketAddr) -> Result<TlsStream, Error> {
    let Wire::Tcp(wire) = &shared.wire else {
        return Err(Error::Shutdown);
    };
    let config = &shared.config;
    let timings = tls::Timings {
        idle_timeout: config.idle_timeout,
        keep_alive_interval: config.keep_alive_interval,
    };
    let name = node_name(peer);
    let mut stream = connect(&wire.connector, addr, &name, config.connect_timeout, timings).await?;
    let hello: &Hello = &shared.hello;
    handshake::dial_stream(&mut stream, addr, hello, Some(peer), config.handshake_timeout).await?;
    Ok(stream)
}
