//! The node's side of the request/response protocol: accepts a client connection, checks
//! its hello, and answers the requests multiplexed on each of its streams with the node's
//! [`RequestHandler`].
//!
//! One task per stream (a client opens one): it reads whatever frames have arrived, starts
//! a handler future for each (polled together, so a burst of writes reaches the node as one
//! batch of proposals), and writes every reply that is ready in one write. No task, stream
//! or timer per request.
//!
//! Memory is bounded: at most `rpc_connections_max` connections are served (more are
//! refused as overloaded), and the request bytes held, per connection and in all, stay
//! within the byte budgets (see the budget module): a request that does not fit is
//! answered "overloaded" as soon as its header arrives, and its body is skipped, not
//! buffered. Streams are read a bounded chunk at a time, so bytes not yet admitted stay
//! within a chunk per stream.
//!
//! [`RequestHandler`]: crate::RequestHandler

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tracing::{Instrument, debug, warn};

use super::budget::{ByteBudget, Reservation};
use super::{
    Frame, FrameReader, HEADER_BYTES, IN_FLIGHT_PER_STREAM_MAX, REQUEST_FAILED, TAG_CALL, TAG_DONE,
    TAG_FAILED, TAG_OVERLOADED, header,
};

/// The most bytes taken from a stream at once: what the reader holds before a frame's
/// header has been admitted is at most this much per stream.
const READ_CHUNK_BYTES_MAX: usize = 64 << 10;
use crate::error::Error;
use crate::handler::ErasedHandler;
use crate::handshake::{self, Caller, Protocol, REFUSED};
use crate::shared::{Shared, stopped};
use crate::wire::{StreamReader, StreamWriter, TlsStream};

/// A place among the client connections served, given back when dropped.
struct ConnectionSlot {
    shared: Arc<Shared>,
}

impl ConnectionSlot {
    /// Takes a place, unless `rpc_connections_max` connections are served already.
    fn take(shared: &Arc<Shared>) -> Option<ConnectionSlot> {
        let max = shared.config.rpc_connections_max.get();
        let counter = &shared.rpc_connections;
        let taken = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |served| {
            (served < max).then_some(served + 1)
        });
        taken.is_ok().then(|| ConnectionSlot { shared: Arc::clone(shared) })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.shared.rpc_connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes a connection slot and the handler for a new client connection, or says why not
/// (to log and send back as the refusal).
fn admit(shared: &Arc<Shared>) -> Result<(ConnectionSlot, Arc<dyn ErasedHandler>), String> {
    let Some(slot) = ConnectionSlot::take(shared) else {
        let max = shared.config.rpc_connections_max.get();
        return Err(format!("overloaded: this node serves at most {max} client connections"));
    };
    let handler = shared.handler.read().unwrap_or_else(PoisonError::into_inner).clone();
    match handler {
        Some(handler) => Ok((slot, handler)),
        None => Err("this node serves no client requests".to_owned()),
    }
}

/// The caller a client's hello named, or `None` after logging why the handshake failed (a
/// refusal was logged where it was made).
fn client_caller(accepted: Result<Caller, Error>, remote: SocketAddr) -> Option<Caller> {
    match accepted {
        Ok(caller) => Some(caller),
        Err(Error::HandshakeRefused { .. }) => None,
        Err(error) => {
            warn!(%remote, %error, "client handshake failed");
            None
        }
    }
}

/// Serves one QUIC client connection until it closes.
pub(crate) async fn serve_connection(shared: Arc<Shared>, connection: quinn::Connection) {
    let remote = connection.remote_address();
    let (_slot, handler) = match admit(&shared) {
        Ok(admitted) => admitted,
        Err(reason) => {
            warn!(%remote, reason, "client connection refused");
            connection.close(REFUSED, reason.as_bytes());
            return;
        }
    };
    let timeout = shared.config.handshake_timeout;
    let accepted =
        handshake::accept(&connection, Protocol::Rpc, &shared.hello, timeout, &|_| true).await;
    let Some(caller) = client_caller(accepted, remote) else {
        return;
    };
    connection.set_max_concurrent_uni_streams(0_u32.into());
    debug!(%caller, %remote, "client connected");
    let connection_budget = Arc::new(ByteBudget::new(shared.config.rpc_connection_bytes_max.get()));
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = connection.accept_bi() => accepted,
            () = stopped(&mut shutdown) => return,
        };
        match accepted {
            Ok((send, recv)) => {
                let stream = RequestStream::new(
                    &shared,
                    Arc::clone(&handler),
                    caller,
                    remote,
                    (StreamReader::Quic(recv), StreamWriter::Quic(send)),
                    Arc::clone(&connection_budget),
                );
                tokio::spawn(stream.serve().instrument(shared.span.clone()));
            }
            Err(error) => {
                debug!(%caller, %remote, %error, "client connection closed");
                return;
            }
        }
    }
}

/// Serves one TCP client connection (its requests follow the hello on the connection
/// itself) until it closes.
pub(crate) async fn serve_tcp(shared: Arc<Shared>, mut stream: TlsStream, remote: SocketAddr) {
    let timeout = shared.config.handshake_timeout;
    let (_slot, handler) = match admit(&shared) {
        Ok(admitted) => admitted,
        Err(reason) => {
            warn!(%remote, reason, "client connection refused");
            // Reads the hello and answers with the refusal, so the client learns why.
            handshake::refuse_stream(&mut stream, remote, reason, timeout).await;
            return;
        }
    };
    let accepted = handshake::accept_stream(
        &mut stream,
        remote,
        Protocol::Rpc,
        &shared.hello,
        timeout,
        &|_| true,
    )
    .await;
    let Some(caller) = client_caller(accepted, remote) else {
        return;
    };
    debug!(%caller, %remote, "client connected");
    let connection_budget = Arc::new(ByteBudget::new(shared.config.rpc_connection_bytes_max.get()));
    let (read, write) = tokio::io::split(stream);
    let halves = (StreamReader::tcp(read), StreamWriter::tcp(write));
    let request_stream =
        RequestStream::new(&shared, handler, caller, remote, halves, connection_budget);
    let mut shutdown = shared.shutdown.subscribe();
    tokio::select! {
        () = request_stream.serve() => {}
        () = stopped(&mut shutdown) => {}
    }
}

/// What a request is answered with.
enum Reply {
    /// The handler's response.
    Done(Bytes),
    /// The request was too large to take.
    Failed,
    /// The node holds as many request bytes as it allows.
    Overloaded,
}

/// A request's answer, tagged with the request's id.
type Answer = Pin<Box<dyn Future<Output = (u64, Reply)> + Send>>;

/// One client stream carrying many requests.
struct RequestStream {
    handler: Arc<dyn ErasedHandler>,
    caller: Caller,
    remote: SocketAddr,
    send: StreamWriter,
    recv: StreamReader,
    reader: FrameReader,
    frame_bytes_max: u32,
    /// The bytes taken for the frame being received, once its header was admitted.
    admitted: Option<Reservation>,
    connection_budget: Arc<ByteBudget>,
    node_budget: Arc<ByteBudget>,
}

impl RequestStream {
    fn new(
        shared: &Shared,
        handler: Arc<dyn ErasedHandler>,
        caller: Caller,
        remote: SocketAddr,
        (recv, send): (StreamReader, StreamWriter),
        connection_budget: Arc<ByteBudget>,
    ) -> RequestStream {
        let max = shared.config.frame_bytes_max;
        RequestStream {
            handler,
            caller,
            remote,
            send,
            recv,
            reader: FrameReader::new(max),
            frame_bytes_max: max,
            admitted: None,
            connection_budget,
            node_budget: Arc::clone(&shared.rpc_bytes),
        }
    }

    async fn serve(mut self) {
        let (caller, remote) = (self.caller, self.remote);
        let mut in_flight: FuturesUnordered<Answer> = FuturesUnordered::new();
        let mut reading = true;
        while reading || !in_flight.is_empty() {
            tokio::select! {
                biased;
                Some(answer) = in_flight.next(), if !in_flight.is_empty() => {
                    if let Err(error) = self.write_answers(answer, &mut in_flight).await {
                        debug!(%caller, %remote, %error, "replies not delivered");
                        return;
                    }
                }
                chunk = self.recv.read(READ_CHUNK_BYTES_MAX),
                    if reading && in_flight.len() < IN_FLIGHT_PER_STREAM_MAX =>
                {
                    match chunk {
                        Ok(Some(chunk)) => {
                            self.reader.push(&chunk);
                            if let Err(error) = self.start_requests(&mut in_flight) {
                                warn!(%caller, %remote, %error, "requests refused: malformed frame");
                                self.recv.stop(REQUEST_FAILED);
                                self.send.reset(REQUEST_FAILED);
                                return;
                            }

                        }
                        // The client finished its side: answer what is in flight, then end.
                        Ok(None) => reading = false,
                        Err(error) => {
                            debug!(%caller, %remote, %error, "request stream closed");
                            return;
                        }
                    }
                }
            }
        }
        self.send.finish();
    }

    /// Starts a handler future for every whole request frame received, and fails every
    /// oversized one (its body is skipped, not buffered).
    fn start_requests(&mut self, in_flight: &mut FuturesUnordered<Answer>) -> Result<(), Error> {
        loop {
            let (connection, node) = (&self.connection_budget, &self.node_budget);
            let admitted = &mut self.admitted;
            // A frame is admitted when its header arrives, if its bytes fit the budgets.
            let admit = |length: u32| {
                let mut reservation = Reservation::empty(connection, node);
                let fits = reservation.resize(HEADER_BYTES as u64 + u64::from(length));
                *admitted = fits.then_some(reservation);
                fits
            };
            let Some(frame) = self.reader.next_admitting(&[TAG_CALL], admit)? else {
                break;
            };
            match frame {
                Frame::Whole { id, body, .. } => {
                    let held = self.admitted.take();
                    let answer = Arc::clone(&self.handler).call(self.caller, body);
                    // The reservation lasts until the answer is ready.
                    let answer = answer.map(move |response| {
                        drop(held);
                        (id, Reply::Done(response))
                    });
                    in_flight.push(Box::pin(answer));
                }
                Frame::Refused { id } => {
                    debug!(caller = %self.caller, remote = %self.remote, "request refused: overloaded");
                    in_flight.push(Box::pin(std::future::ready((id, Reply::Overloaded))));
                }
                Frame::Oversized { id, length } => {
                    let error = Error::FrameTooLarge {
                        length: u64::from(length),
                        max: self.frame_bytes_max,
                    };
                    warn!(caller = %self.caller, remote = %self.remote, %error,
                        "request refused: malformed frame");
                    in_flight.push(Box::pin(std::future::ready((id, Reply::Failed))));
                }
            }
        }
        Ok(())
    }

    /// Writes `first` and every other answer already done, in one write.
    async fn write_answers(
        &mut self,
        first: (u64, Reply),
        in_flight: &mut FuturesUnordered<Answer>,
    ) -> std::io::Result<()> {
        let mut chunks = Vec::new();
        self.push_reply(first, &mut chunks);
        while let Some(Some(answer)) = in_flight.next().now_or_never() {
            self.push_reply(answer, &mut chunks);
        }
        self.send.write_chunks(&mut chunks).await
    }

    /// Adds a reply's header and body (the handler's bytes as they are) to `chunks`.
    fn push_reply(&self, (id, reply): (u64, Reply), chunks: &mut Vec<Bytes>) {
        let fits = |response: &Bytes| {
            u32::try_from(response.len()).ok().filter(|&length| length <= self.frame_bytes_max)
        };
        match reply {
            Reply::Done(response) => match fits(&response) {
                Some(length) => {
                    chunks.push(header(id, TAG_DONE, length));
                    chunks.push(response);
                }
                None => {
                    let length = response.len();
                    warn!(caller = %self.caller, remote = %self.remote, length,
                        max = self.frame_bytes_max, "request failed: response too large");
                    chunks.push(header(id, TAG_FAILED, 0));
                }
            },
            Reply::Failed => chunks.push(header(id, TAG_FAILED, 0)),
            Reply::Overloaded => chunks.push(header(id, TAG_OVERLOADED, 0)),
        }
    }
}
