//! The client's side of the request/response protocol: one connection to one node, one
//! long-lived stream on it that multiplexes every call.
//!
//! Two tasks per connection. The writer takes every call queued and writes their frames in
//! one write; the reader matches replies to calls by id and fails calls whose deadline
//! passed, sweeping them on one timer. A call costs a frame, a queue slot and a oneshot: no
//! stream, task or timer of its own.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use raft_core::NodeId;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_rustls::TlsConnector;

use super::{Frame, FrameReader, TAG_CALL, TAG_DONE, TAG_FAILED, TAG_OVERLOADED, header};
use crate::certs::{ANY_NODE_NAME, Identity, node_name};
use crate::error::Error;
use crate::frame::FRAME_BYTES_MAX_DEFAULT;
use crate::handshake::{self, Caller, Hello, PROTOCOL_VERSION};
use crate::tcp;
use crate::tls::{self, ALPN_RPC, Timings};
use crate::wire::{StreamReader, StreamWriter, TransportKind};

/// How a client connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcClientConfig {
    /// The cluster's name; must match the node's.
    pub cluster_id: String,
    /// Who this client is; must match its certificate.
    pub caller: Caller,
    /// The wire to dial on; the node must speak the same.
    pub transport: TransportKind,
    /// The local UDP address for QUIC (port 0 lets the OS pick); TCP lets the OS choose.
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
            transport: TransportKind::Quic,
            bind_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            keep_alive_interval: Duration::from_secs(2),
        }
    }
}

/// The most calls queued for the writer; a caller beyond it waits for room (up to its
/// deadline). Far above any client's concurrency.
const CALLS_QUEUED_MAX: usize = 4096;

/// The most request frames the writer puts in one write.
const WRITE_BATCH_MAX: usize = 256;

/// How often the reader fails calls whose deadline passed: a late answer to a timed-out
/// call costs at most this much extra waiting.
const DEADLINE_SWEEP_INTERVAL: Duration = Duration::from_millis(10);

/// A client's connection to one node. Clones share the connection; calls run concurrently,
/// multiplexed on one stream.
#[derive(Clone, Debug)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The QUIC endpoint and connection; TCP's connection belongs to the two tasks.
    quic: Option<(quinn::Endpoint, quinn::Connection)>,
    addr: SocketAddr,
    server: NodeId,
    frame_bytes_max: u32,
    next_id: AtomicU64,
    calls: mpsc::Sender<Call>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A call on its way to the writer: its frame's header and the request as it is.
#[derive(Debug)]
struct Call {
    header: Bytes,
    request: Bytes,
    waiting: Waiting,
}

/// A call the reader waits to answer.
#[derive(Debug)]
struct Waiting {
    id: u64,
    deadline: Instant,
    timeout: Duration,
    reply: oneshot::Sender<Result<Bytes, Error>>,
}

impl RpcClient {
    /// Connects to the node at `addr` and opens the stream calls share. With `node` given,
    /// the node's certificate must name it; without, any node certificate of the cluster is
    /// accepted.
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
        let name = node.map_or_else(|| ANY_NODE_NAME.to_owned(), node_name);
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: config.cluster_id.clone(),
            caller: config.caller,
        };
        let timeout = config.handshake_timeout;
        let (quic, server, halves) = match config.transport {
            TransportKind::Quic => {
                let client_config = tls::client_config(identity, ALPN_RPC, timings, 0)?;
                let bind = config.bind_addr;
                let endpoint = quinn::Endpoint::client(bind)
                    .map_err(|source| Error::Bind { addr: bind, source })?;
                let connecting = endpoint
                    .connect_with(client_config, addr, &name)
                    .map_err(|source| Error::Connect { addr, source })?;
                let connection = tokio::time::timeout(timeout, connecting)
                    .await
                    .map_err(|_| Error::Timeout { what: "TLS handshake", addr, after: timeout })?
                    .map_err(|source| Error::Connection { addr, source })?;
                let server = handshake::dial(&connection, &hello, node, timeout).await?;
                let (send, recv) = connection
                    .open_bi()
                    .await
                    .map_err(|source| Error::Connection { addr, source })?;
                let halves = (StreamWriter::Quic(send), StreamReader::Quic(recv));
                (Some((endpoint, connection)), server, halves)
            }
            TransportKind::Tcp => {
                let connector = TlsConnector::from(Arc::new(tls::tls_client(identity, ALPN_RPC)?));
                let mut stream = tcp::connect(&connector, addr, &name, timeout, timings).await?;
                let server =
                    handshake::dial_stream(&mut stream, addr, &hello, node, timeout).await?;
                let (read, write) = tokio::io::split(stream);
                (None, server, (StreamWriter::tcp(write), StreamReader::tcp(read)))
            }
        };
        let (send, recv) = halves;
        let (calls, queued) = mpsc::channel(CALLS_QUEUED_MAX);
        let (registrations, registered) = mpsc::channel(CALLS_QUEUED_MAX);
        let max = config.frame_bytes_max;
        let settled = Arc::new(AtomicU64::new(0));
        let tasks = [
            tokio::spawn(write_calls(send, queued, registrations, Arc::clone(&settled))),
            tokio::spawn(read_replies(recv, registered, addr, max, settled)),
        ];
        let inner = Inner {
            quic,
            addr,
            server,
            frame_bytes_max: max,
            next_id: AtomicU64::new(0),
            calls,
            tasks,
        };
        Ok(RpcClient { inner: Arc::new(inner) })
    }

    /// The node this client is connected to.
    #[must_use]
    pub fn server(&self) -> NodeId {
        self.inner.server
    }

    /// Sends `request` and waits at most `timeout` for the response.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`]; [`Error::ConnectionClosed`] when the connection ended first (the
    /// request may or may not have been acted on); [`Error::RequestFailed`] when the node
    /// could not send the response; [`Error::FrameTooLarge`] for a request above the
    /// maximum.
    pub async fn call(&self, request: Bytes, timeout: Duration) -> Result<Bytes, Error> {
        let inner = &self.inner;
        let max = inner.frame_bytes_max;
        let length = u32::try_from(request.len())
            .ok()
            .filter(|&length| length <= max)
            .ok_or(Error::FrameTooLarge { length: request.len() as u64, max })?;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        let header = header(id, TAG_CALL, length);
        let call = Call { header, request, waiting: Waiting { id, deadline, timeout, reply } };
        let closed = || Error::ConnectionClosed { addr: inner.addr };
        match inner.calls.try_send(call) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(call)) => {
                let timed_out =
                    Error::Timeout { what: "request", addr: inner.addr, after: timeout };
                tokio::time::timeout_at(deadline, inner.calls.send(call))
                    .await
                    .map_err(|_| timed_out)?
                    .map_err(|_| closed())?;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(closed()),
        }
        answer.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Closes the connection; pending calls fail.
    pub fn close(&self) {
        match &self.inner.quic {
            Some((endpoint, connection)) => {
                connection.close(quinn::VarInt::from_u32(0), b"client closed");
                endpoint.close(quinn::VarInt::from_u32(0), b"client closed");
            }
            // The tasks own the connection's halves: it closes as they end.
            None => {
                for task in &self.inner.tasks {
                    task.abort();
                }
            }
        }
    }
}

/// The writer: hands each call to the reader, then writes every queued frame in one write.
/// `settled` counts the calls the reader answered or timed out.
async fn write_calls(
    mut send: StreamWriter,
    mut calls: mpsc::Receiver<Call>,
    registrations: mpsc::Sender<Waiting>,
    settled: Arc<AtomicU64>,
) {
    let mut frames = Vec::with_capacity(2 * WRITE_BATCH_MAX);
    let mut registered = 0_u64;
    while let Some(first) = calls.recv().await {
        // With other calls awaiting replies, their callers, woken by one burst of replies,
        // queue their next calls one after another (on the runtime's other threads too), and
        // this task wakes at the first: yielding once lets those already running queue
        // theirs, so one write carries them all rather than one each. A lone caller does
        // not wait for the scheduler's round.
        if registered > settled.load(Ordering::Acquire) {
            tokio::task::yield_now().await;
        }
        let mut next = Some(first);
        while let Some(call) = next.take() {
            // Registered before it is written, so its reply always finds it.
            if registrations.send(call.waiting).await.is_err() {
                return;
            }
            registered += 1;
            frames.push(call.header);
            if !call.request.is_empty() {
                frames.push(call.request);
            }
            if frames.len() < 2 * WRITE_BATCH_MAX {
                next = calls.try_recv().ok();
            }
        }
        if send.write_chunks(&mut frames).await.is_err() {
            return;
        }
        frames.clear();
    }
    send.finish();
}

/// The calls the reader waits to answer, and their deadlines in order.
struct Pending {
    calls: HashMap<u64, Waiting>,
    deadlines: BTreeSet<(Instant, u64)>,
    /// How many calls were answered or timed out: shared with the writer.
    settled: Arc<AtomicU64>,
}

impl Pending {
    fn insert(&mut self, waiting: Waiting) {
        self.deadlines.insert((waiting.deadline, waiting.id));
        self.calls.insert(waiting.id, waiting);
    }

    fn answer(&mut self, id: u64, result: Result<Bytes, Error>) -> bool {
        let Some(waiting) = self.calls.remove(&id) else {
            return false;
        };
        self.settled.fetch_add(1, Ordering::Release);
        self.deadlines.remove(&(waiting.deadline, id));
        // The caller may have given up and dropped its end: nothing to do then.
        let _ = waiting.reply.send(result);
        true
    }

    fn expire(&mut self, now: Instant, addr: SocketAddr) {
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                return;
            }
            self.deadlines.pop_first();
            if let Some(waiting) = self.calls.remove(&id) {
                self.settled.fetch_add(1, Ordering::Release);
                let after = waiting.timeout;
                let _ = waiting.reply.send(Err(Error::Timeout { what: "request", addr, after }));
            }
        }
    }
}

/// The reader: matches replies to calls by id and fails calls past their deadline. When the
/// stream ends, every call still waiting learns the connection closed (its sender drops).
async fn read_replies(
    mut recv: StreamReader,
    mut registered: mpsc::Receiver<Waiting>,
    addr: SocketAddr,
    max: u32,
    settled: Arc<AtomicU64>,
) {
    let mut pending = Pending { calls: HashMap::new(), deadlines: BTreeSet::new(), settled };
    let mut reader = FrameReader::new(max);
    let mut sweep = tokio::time::interval(DEADLINE_SWEEP_INTERVAL);
    sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            Some(waiting) = registered.recv() => pending.insert(waiting),
            chunk = recv.read(usize::MAX) => match chunk {
                Ok(Some(chunk)) => {
                    reader.push(&chunk);
                    if deliver(&mut reader, &mut pending, &mut registered, addr).is_err() {
                        return;
                    }
                }
                Ok(None) | Err(_) => return,
            },
            _ = sweep.tick(), if !pending.deadlines.is_empty() => {
                pending.expire(Instant::now(), addr);
            }
        }
    }
}

/// Answers every call whose reply frame has arrived whole.
fn deliver(
    reader: &mut FrameReader,
    pending: &mut Pending,
    registered: &mut mpsc::Receiver<Waiting>,
    addr: SocketAddr,
) -> Result<(), Error> {
    while let Some(frame) = reader.next(&[TAG_DONE, TAG_FAILED, TAG_OVERLOADED])? {
        let (id, result) = match frame {
            Frame::Whole { id, tag: TAG_DONE, body } => (id, Ok(body)),
            Frame::Whole { id, tag: TAG_OVERLOADED, .. } => (id, Err(Error::Overloaded { addr })),
            Frame::Whole { id, .. } => (id, Err(Error::RequestFailed { addr })),
            Frame::Oversized { id, length } => {
                let max = reader.max;
                (id, Err(Error::FrameTooLarge { length: u64::from(length), max }))
            }
            // The client admits every reply.
            Frame::Refused { id } => (id, Err(Error::RequestFailed { addr })),
        };
        if pending.calls.contains_key(&id) {
            pending.answer(id, result);
            continue;
        }
        // Its registration may still be queued behind others.
        while let Ok(waiting) = registered.try_recv() {
            pending.insert(waiting);
        }
        // Unknown even then: a call that timed out and was swept. Its answer is dropped.
        pending.answer(id, result);
    }
    Ok(())
}
