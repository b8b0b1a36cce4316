//! The peer transport: Raft messages between nodes, one connection per pair on QUIC (TCP
//! differs in its connections only: see [`crate::tcp`]).
//!
//! Each side of a connection opens two unidirectional streams of its own: a long-lived
//! message stream (appends, heartbeats, votes, in order, pipelined) and a snapshot stream
//! for `InstallSnapshot` chunks, at a lower priority, so a multi-megabyte snapshot never
//! queues ahead of a heartbeat. The node with the lower id dials and re-dials with
//! exponential backoff and jitter; the other accepts, replacing an older connection from
//! the same peer (it restarted). The higher-id node dials once when it starts, so a peer
//! still holding a connection to its previous life switches to the new one at once.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use raft_core::{Message, MessageBody, NodeId};
use raft_runtime::{Delivery, MessageSender, Transport};
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, info, warn};

use crate::certs::node_name;
use crate::config::NetConfig;
use crate::error::Error;
use crate::frame::{FrameDecoder, encode_frame};
use crate::handshake::{self, Caller, Protocol};
use crate::link::{PeerLink, StreamKind};
use crate::shared::{Shared, Wire, stopped};
use crate::tcp;
use crate::wire::{StreamReader, StreamWriter};

/// The stream-stop code for a malformed frame.
const MALFORMED: quinn::VarInt = quinn::VarInt::from_u32(0x4d46);
/// The most bytes taken from a stream at once: bounds each read, not the frame.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// The link to `peer`, created (with its writer tasks, and its dialer if this node dials)
/// on first use.
pub(crate) fn link_or_create(shared: &Arc<Shared>, peer: NodeId) -> Arc<PeerLink> {
    let mut links = shared.links.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(link) = links.get(&peer) {
        return Arc::clone(link);
    }
    let link = Arc::new(PeerLink::new(
        peer,
        shared.config.peer_queue_max.get(),
        shared.config.snapshot_queue_max.get(),
    ));
    links.insert(peer, Arc::clone(&link));
    drop(links);
    if let Wire::Tcp(_) = shared.wire {
        // Each node dials its own connections to each peer: no dialer or announce.
        for kind in [StreamKind::Messages, StreamKind::Snapshots] {
            let task = tcp::write_loop(Arc::clone(shared), Arc::clone(&link), kind);
            tokio::spawn(task.instrument(shared.span.clone()));
        }
        return link;
    }
    for kind in [StreamKind::Messages, StreamKind::Snapshots] {
        let task = write_loop(Arc::clone(shared), Arc::clone(&link), kind);
        tokio::spawn(task.instrument(shared.span.clone()));
    }
    if shared.config.node_id < peer {
        let task = dial_loop(Arc::clone(shared), Arc::clone(&link));
        tokio::spawn(task.instrument(shared.span.clone()));
    } else {
        let task = announce(Arc::clone(shared), Arc::clone(&link));
        tokio::spawn(task.instrument(shared.span.clone()));
    }
    link
}

/// Dials a lower-id peer once, when this node starts: the peer (which normally dials us)
/// may still hold a connection to this node's previous life, which it would only notice
/// at its idle timeout; a new connection from us replaces that one at once. If the dial
/// fails, the peer's own dialer connects as usual.
async fn announce(shared: Arc<Shared>, link: Arc<PeerLink>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut addresses = link.address.subscribe();
    let Some((addr, dialed)) = dial_when_known(&shared, &link, &mut addresses, &mut shutdown).await
    else {
        return;
    };
    match dialed {
        Ok(connection) => {
            info!(peer = %link.peer, %addr, "announced to peer");
            tokio::select! {
                () = receive(&shared, &link, connection) => {}
                () = stopped(&mut shutdown) => {}
            }
        }
        Err(error) => debug!(peer = %link.peer, %addr, %error, "announce failed; the peer dials"),
    }
}

/// This node's end of the peer network: implements raft-core's [`Transport`].
#[derive(Debug)]
pub struct PeerTransport {
    inbox: mpsc::Receiver<Message>,
    shutdown: watch::Receiver<bool>,
    sender: PeerSender,
}

impl PeerTransport {
    pub(crate) fn new(shared: Arc<Shared>, inbox: mpsc::Receiver<Message>) -> PeerTransport {
        PeerTransport {
            inbox,
            shutdown: shared.shutdown.subscribe(),
            sender: PeerSender { shared },
        }
    }
}

impl Transport for PeerTransport {
    type Sender = PeerSender;

    fn sender(&self) -> PeerSender {
        self.sender.clone()
    }

    async fn recv(&mut self) -> Option<Message> {
        // Both branches are cancel safe: a message is only taken by the branch that wins.
        tokio::select! {
            biased;
            message = self.inbox.recv() => message,
            () = stopped(&mut self.shutdown) => None,
        }
    }

    fn try_recv(&mut self) -> Option<Message> {
        self.inbox.try_recv().ok()
    }
}

/// Queues messages for peers; never waits.
#[derive(Clone)]
pub struct PeerSender {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PeerSender {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("PeerSender").field("node", &self.shared.config.node_id).finish()
    }
}

impl MessageSender for PeerSender {
    fn send(&self, message: Message) -> Delivery {
        if self.shared.is_shut_down() {
            return Delivery::Dropped;
        }
        let Some(link) = self.shared.link(message.to) else {
            return Delivery::Dropped;
        };
        if self.shared.faults.drops_outgoing(link.peer) {
            return Delivery::Dropped;
        }
        let kind = match message.body {
            MessageBody::InstallSnapshot { .. } => StreamKind::Snapshots,
            _ => StreamKind::Messages,
        };
        link.queue(kind).push(message)
    }
}

/// Sends one queue's messages on its own stream of whichever connection is current.
async fn write_loop(shared: Arc<Shared>, link: Arc<PeerLink>, kind: StreamKind) {
    let mut connections = link.connection.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let open = |current: &Option<quinn::Connection>| {
            current.as_ref().is_some_and(|c| c.close_reason().is_none())
        };
        let connection = tokio::select! {
            current = connections.wait_for(open) => match current {
                Ok(current) => current.clone(),
                Err(_) => return,
            },
            () = stopped(&mut shutdown) => return,
        };
        let Some(connection) = connection else {
            continue;
        };
        let result = tokio::select! {
            result = write_stream(&shared, &link, kind, &connection) => result,
            () = stopped(&mut shutdown) => return,
        };
        if let Err(error) = result {
            debug!(peer = %link.peer, stream = kind.name(), %error, "peer stream write failed");
        }
        // Do not spin on a connection that is closing but not yet replaced.
        tokio::select! {
            () = tokio::time::sleep(shared.config.reconnect_backoff_min) => {}
            () = stopped(&mut shutdown) => return,
        }
    }
}

async fn write_stream(
    shared: &Shared,
    link: &PeerLink,
    kind: StreamKind,
    connection: &quinn::Connection,
) -> Result<(), Error> {
    let addr = connection.remote_address();
    let stream =
        connection.open_uni().await.map_err(|source| Error::Connection { addr, source })?;
    // Only fails on a stream already closed, which the next write reports.
    let _ = stream.set_priority(kind.priority());
    let closed = async { Error::Connection { addr, source: connection.closed().await } };
    send_queue(shared, link, kind, addr, &mut StreamWriter::Quic(stream), closed).await
}

/// Sends `link`'s `kind` queue on `writer` (to `addr`) until a write fails or `closed`
/// resolves (with the error to report).
pub(crate) async fn send_queue(
    shared: &Shared,
    link: &PeerLink,
    kind: StreamKind,
    addr: SocketAddr,
    writer: &mut StreamWriter,
    closed: impl Future<Output = Error>,
) -> Result<(), Error> {
    let queue = link.queue(kind);
    let mut frames = Vec::with_capacity(PEER_WRITE_BATCH_MAX);
    let mut closed = std::pin::pin!(closed);
    loop {
        let first = tokio::select! {
            message = queue.pop() => message,
            error = &mut closed => return Err(error),
        };
        // Everything already queued goes in the same write: one stream write (and one wake
        // of the connection) per burst rather than per message.
        let mut next = Some(first);
        while let Some(message) = next.take() {
            let delay = shared.faults.delay(link.peer);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match encode_frame(&message, "message", shared.config.frame_bytes_max) {
                Ok(frame) => frames.push(frame),
                Err(error) => {
                    let kind = message.body.kind();
                    warn!(peer = %link.peer, kind, %error, "message dropped: cannot frame it");
                }
            }
            if frames.len() < PEER_WRITE_BATCH_MAX {
                next = queue.try_pop();
            }
        }
        writer.write_chunks(&mut frames).await.map_err(|source| Error::Io {
            what: "sending to peer",
            addr,
            source,
        })?;
        frames.clear();
    }
}

/// The most messages one stream write carries: enough to cover a burst of appends and
/// acknowledgements, small enough that a snapshot chunk's write does not grow unbounded.
const PEER_WRITE_BATCH_MAX: usize = 64;

/// Waits until the peer's address is known, then dials it once; `None` when the node
/// stops first.
async fn dial_when_known(
    shared: &Shared,
    link: &PeerLink,
    addresses: &mut watch::Receiver<Option<SocketAddr>>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(SocketAddr, Result<quinn::Connection, Error>)> {
    let addr = tokio::select! {
        addr = addresses.wait_for(Option::is_some) => (*addr.ok()?)?,
        () = stopped(shutdown) => return None,
    };
    tokio::select! {
        dialed = dial(shared, link.peer, addr) => Some((addr, dialed)),
        () = stopped(shutdown) => None,
    }
}

/// Dials `link.peer` and keeps a connection to it, re-dialing with backoff.
async fn dial_loop(shared: Arc<Shared>, link: Arc<PeerLink>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut addresses = link.address.subscribe();
    let mut redial = Redial::new(&shared.config);
    loop {
        if !until_allowed(&shared, link.peer, &mut shutdown).await {
            return;
        }
        let Some((addr, dialed)) =
            dial_when_known(&shared, &link, &mut addresses, &mut shutdown).await
        else {
            return;
        };
        match dialed {
            Ok(connection) => {
                info!(peer = %link.peer, %addr, "peer connected");
                redial.connected();
                tokio::select! {
                    () = receive(&shared, &link, connection) => {}
                    () = stopped(&mut shutdown) => return,
                }
            }
            Err(error) => redial.failed(link.peer, addr, &error, true),
        }
        if !redial.wait(&mut shutdown).await {
            return;
        }
    }
}

/// Waits until `peer` is among the allowed peers (a node removed from them is not dialed),
/// looking again every `reconnect_backoff_max`; `false` when the node stops first.
pub(crate) async fn until_allowed(
    shared: &Shared,
    peer: NodeId,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    while !shared.is_allowed_peer(peer) {
        tokio::select! {
            () = tokio::time::sleep(shared.config.reconnect_backoff_max) => {}
            () = stopped(shutdown) => return false,
        }
    }
    true
}

/// The backoff between dials of one peer (doubled per failure, from `reconnect_backoff_min`
/// to `reconnect_backoff_max`, with jitter), and the logging of failed dials.
pub(crate) struct Redial {
    backoff: Duration,
    min: Duration,
    max: Duration,
    failures: u64,
}

impl Redial {
    pub(crate) fn new(config: &NetConfig) -> Redial {
        let (min, max) = (config.reconnect_backoff_min, config.reconnect_backoff_max);
        Redial { backoff: min, min, max, failures: 0 }
    }

    /// A dial succeeded: the next failure starts over.
    pub(crate) fn connected(&mut self) {
        self.failures = 0;
        self.backoff = self.min;
    }

    /// A dial failed: the first failure is news (a warning, when `news` says this dialer
    /// reports for the peer); the retries that follow are not.
    pub(crate) fn failed(&mut self, peer: NodeId, addr: SocketAddr, error: &Error, news: bool) {
        self.failures += 1;
        let failures = self.failures;
        if failures == 1 && news {
            warn!(%peer, %addr, %error, "cannot connect to peer; retrying");
        } else {
            debug!(%peer, %addr, %error, failures, "peer still unreachable");
        }
    }

    /// Waits out the backoff, jittered over its upper half so peers restarted together
    /// spread out, and doubles it; `false` when the node stops first.
    pub(crate) async fn wait(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let delay = self.backoff.mul_f64(rand::random_range(0.5..=1.0));
        self.backoff = self.backoff.saturating_mul(2).min(self.max);
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = stopped(shutdown) => false,
        }
    }
}

async fn dial(shared: &Shared, peer: NodeId, addr: SocketAddr) -> Result<quinn::Connection, Error> {
    let Wire::Quic { endpoint, peer_client_config } = &shared.wire else {
        return Err(Error::Shutdown);
    };
    let timeout = shared.config.connect_timeout;
    let connecting = endpoint
        .connect_with(peer_client_config.clone(), addr, &node_name(peer))
        .map_err(|source| Error::Connect { addr, source })?;
    let connection = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| Error::Timeout { what: "TLS handshake", addr, after: timeout })?
        .map_err(|source| Error::Connection { addr, source })?;
    let timeout = shared.config.handshake_timeout;
    handshake::dial(&connection, &shared.hello, Some(peer), timeout).await?;
    Ok(connection)
}

/// Serves an accepted peer connection once its handshake passes.
pub(crate) async fn accept(shared: Arc<Shared>, connection: quinn::Connection) {
    let remote = connection.remote_address();
    let timeout = shared.config.handshake_timeout;
    let is_peer = |id: NodeId| shared.is_allowed_peer(id);
    let accepted =
        handshake::accept(&connection, Protocol::Peer, &shared.hello, timeout, &is_peer).await;
    let peer = match accepted {
        Ok(Caller::Node(peer)) => peer,
        Ok(caller) => {
            // `handshake::accept` refuses clients on the peer protocol; be safe anyway.
            warn!(%remote, %caller, "connection refused: not a node");
            connection.close(handshake::REFUSED, b"not a node");
            return;
        }
        Err(Error::HandshakeRefused { .. }) => return,
        Err(error) => {
            warn!(%remote, %error, "peer handshake failed");
            return;
        }
    };
    connection.set_max_concurrent_bi_streams(0_u32.into());
    info!(%peer, %remote, "peer connected");
    let link = link_or_create(&shared, peer);
    let mut shutdown = shared.shutdown.subscribe();
    tokio::select! {
        () = receive(&shared, &link, connection) => {}
        () = stopped(&mut shutdown) => {}
    }
}

/// Makes `connection` current for `link` and reads the peer's streams until it closes.
async fn receive(shared: &Arc<Shared>, link: &Arc<PeerLink>, connection: quinn::Connection) {
    link.install(connection.clone());
    let remote = connection.remote_address();
    // `set_allowed_peers` may have removed the peer since the handshake, before the
    // connection was installed where it looks.
    if !shared.is_allowed_peer(link.peer) {
        warn!(peer = %link.peer, %remote, "peer connection closed: no longer a configured peer");
        connection.close(handshake::REFUSED, b"no longer a peer");
    }
    loop {
        match connection.accept_uni().await {
            Ok(stream) => {
                let stream = StreamReader::Quic(stream);
                let task = read_stream(Arc::clone(shared), link.peer, remote, stream);
                tokio::spawn(task.instrument(shared.span.clone()));
            }
            Err(error) => {
                info!(peer = %link.peer, %remote, %error, "peer connection closed");
                break;
            }
        }
    }
    link.uninstall(&connection);
}

/// Decodes one stream's frames into the inbox; a bad frame closes the stream only, and so
/// does the peer's removal from the allowed peers.
pub(crate) async fn read_stream(
    shared: Arc<Shared>,
    peer: NodeId,
    remote: SocketAddr,
    mut stream: StreamReader,
) {
    let mut decoder = FrameDecoder::new(shared.config.frame_bytes_max);
    loop {
        loop {
            match decoder.next::<Message>("message") {
                Ok(Some(message)) => {
                    if !deliver(&shared, peer, message).await {
                        return;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    warn!(%peer, %remote, %error, "peer stream closed: malformed frame");
                    stream.stop(MALFORMED);
                    return;
                }
            }
        }
        match stream.read(READ_CHUNK_BYTES).await {
            Ok(Some(chunk)) => {
                decoder.push(&chunk);
                if !shared.is_allowed_peer(peer) {
                    warn!(%peer, %remote, "peer stream closed: no longer a configured peer");
                    stream.stop(handshake::REFUSED);
                    return;
                }
            }
            Ok(None) => {
                if let Err(error) = decoder.finish() {
                    warn!(%peer, %remote, %error, "peer stream closed: truncated frame");
                }
                return;
            }
            Err(error) => {
                debug!(%peer, %remote, %error, "peer stream ended");
                return;
            }
        }
    }
}

/// Hands a received message to the node; `false` once the node is gone.
async fn deliver(shared: &Shared, peer: NodeId, message: Message) -> bool {
    if message.from != peer || message.to != shared.config.node_id {
        let (from, to) = (message.from, message.to);
        warn!(%peer, %from, %to, "message dropped: wrong sender or recipient");
        return true;
    }
    if shared.faults.drops_incoming(peer) {
        return true;
    }
    // Waiting here is backpressure: QUIC flow control slows the sender down.
    shared.inbox.send(message).await.is_ok()
}
