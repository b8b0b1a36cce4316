//! The node's side of the request/response protocol: accepts a client connection, checks
//! its hello, and answers the requests multiplexed on each of its streams with the node's
//! [`RequestHandler`].
//!
//! One task per stream (a client opens one): it reads whatever frames have arrived, starts
//! a handler future for each (polled together, so a burst of writes reaches the node as one
//! batch of proposals), and writes every reply that is ready in one write. No task, stream
//! or timer per request.
//!
//! [`RequestHandler`]: crate::RequestHandler

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tracing::{Instrument, debug, warn};

use super::{
    Frame, FrameReader, IN_FLIGHT_PER_STREAM_MAX, REQUEST_FAILED, TAG_CALL, TAG_DONE, TAG_FAILED,
    header,
};
use crate::error::Error;
use crate::handler::ErasedHandler;
use crate::handshake::{self, Caller, Protocol, REFUSED};
use crate::shared::{Shared, stopped};

/// Serves one client connection until it closes.
pub(crate) async fn serve_connection(shared: Arc<Shared>, connection: quinn::Connection) {
    let remote = connection.remote_address();
    let handler = shared.handler.read().unwrap_or_else(PoisonError::into_inner).clone();
    let Some(handler) = handler else {
        warn!(%remote, "connection refused: this node serves no client requests");
        connection.close(REFUSED, b"this node serves no client requests");
        return;
    };
    let timeout = shared.config.handshake_timeout;
    let accepted =
        handshake::accept(&connection, Protocol::Rpc, &shared.hello, timeout, &|_| true).await;
    let caller = match accepted {
        Ok(caller) => caller,
        Err(Error::HandshakeRefused { .. }) => return,
        Err(error) => {
            warn!(%remote, %error, "client handshake failed");
            return;
        }
    };
    connection.set_max_concurrent_uni_streams(0_u32.into());
    debug!(%caller, %remote, "client connected");
    let max = shared.config.frame_bytes_max;
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = connection.accept_bi() => accepted,
            () = stopped(&mut shutdown) => return,
        };
        match accepted {
            Ok((send, recv)) => {
                let stream = RequestStream {
                    handler: Arc::clone(&handler),
                    caller,
                    remote,
                    send,
                    recv,
                    reader: FrameReader::new(max),
                    frame_bytes_max: max,
                };
                tokio::spawn(stream.serve().instrument(shared.span.clone()));
            }
            Err(error) => {
                debug!(%caller, %remote, %error, "client connection closed");
                return;
            }
        }
    }
}

/// A request's answer, tagged with the request's id (`None`: the request was refused).
type Answer = Pin<Box<dyn Future<Output = (u64, Option<Bytes>)> + Send>>;

/// One client stream carrying many requests.
struct RequestStream {
    handler: Arc<dyn ErasedHandler>,
    caller: Caller,
    remote: SocketAddr,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    reader: FrameReader,
    frame_bytes_max: u32,
}

impl RequestStream {
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
                chunk = self.recv.read_chunk(usize::MAX, true),
                    if reading && in_flight.len() < IN_FLIGHT_PER_STREAM_MAX =>
                {
                    match chunk {
                        Ok(Some(chunk)) => {
                            self.reader.push(&chunk.bytes);
                            if let Err(error) = self.start_requests(&mut in_flight) {
                                warn!(%caller, %remote, %error, "requests refused: malformed frame");
                                let _ = self.recv.stop(REQUEST_FAILED);
                                let _ = self.send.reset(REQUEST_FAILED);
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
        let _ = self.send.finish();
    }

    /// Starts a handler future for every whole request frame received, and fails every
    /// oversized one (its body is skipped, not buffered).
    fn start_requests(&mut self, in_flight: &mut FuturesUnordered<Answer>) -> Result<(), Error> {
        while let Some(frame) = self.reader.next(&[TAG_CALL])? {
            match frame {
                Frame::Whole { id, body, .. } => {
                    let answer = Arc::clone(&self.handler).call(self.caller, body);
                    in_flight.push(Box::pin(answer.map(move |response| (id, Some(response)))));
                }
                Frame::Oversized { id, length } => {
                    let error = Error::FrameTooLarge {
                        length: u64::from(length),
                        max: self.frame_bytes_max,
                    };
                    warn!(caller = %self.caller, remote = %self.remote, %error,
                        "request refused: malformed frame");
                    in_flight.push(Box::pin(std::future::ready((id, None))));
                }
            }
        }
        Ok(())
    }

    /// Writes `first` and every other answer already done, in one write.
    async fn write_answers(
        &mut self,
        first: (u64, Option<Bytes>),
        in_flight: &mut FuturesUnordered<Answer>,
    ) -> Result<(), quinn::WriteError> {
        let mut chunks = Vec::new();
        self.push_reply(first, &mut chunks);
        while let Some(Some(answer)) = in_flight.next().now_or_never() {
            self.push_reply(answer, &mut chunks);
        }
        self.send.write_all_chunks(&mut chunks).await
    }

    /// Adds a reply's header and body (the handler's bytes as they are) to `chunks`.
    fn push_reply(&self, (id, response): (u64, Option<Bytes>), chunks: &mut Vec<Bytes>) {
        let fits = |response: &Bytes| {
            u32::try_from(response.len()).ok().filter(|&length| length <= self.frame_bytes_max)
        };
        match response {
            Some(response) => match fits(&response) {
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
            None => chunks.push(header(id, TAG_FAILED, 0)),
        }
    }
}
