//! The node's side of the request/response protocol: accepts a client connection, checks
//! its hello, and answers each request stream with the node's [`RequestHandler`].
//!
//! [`RequestHandler`]: crate::RequestHandler

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use tracing::{Instrument, debug, warn};

use super::{REQUEST_FAILED, REQUEST_FRAME, RESPONSE_FRAME};
use crate::error::Error;
use crate::frame::{encode_frame, read_one};
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
    let caller = match handshake::accept(&connection, Protocol::Rpc, &shared.hello, timeout).await {
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
                let task = serve_request(Arc::clone(&handler), caller, remote, send, recv, max);
                tokio::spawn(task.instrument(shared.span.clone()));
            }
            Err(error) => {
                debug!(%caller, %remote, %error, "client connection closed");
                return;
            }
        }
    }
}

async fn serve_request(
    handler: Arc<dyn ErasedHandler>,
    caller: Caller,
    remote: SocketAddr,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    max: u32,
) {
    let request: Bytes = match read_one(&mut recv, remote, REQUEST_FRAME, max).await {
        Ok(request) => request,
        Err(error) => {
            warn!(%caller, %remote, %error, "request refused: malformed frame");
            let _ = recv.stop(REQUEST_FAILED);
            let _ = send.reset(REQUEST_FAILED);
            return;
        }
    };
    let response = handler.call(caller, request).await;
    let frame = match encode_frame(&response, RESPONSE_FRAME, max) {
        Ok(frame) => frame,
        Err(error) => {
            warn!(%caller, %remote, %error, "request failed: cannot frame the response");
            let _ = send.reset(REQUEST_FAILED);
            return;
        }
    };
    if let Err(error) = send.write_chunk(frame).await {
        debug!(%caller, %remote, %error, "response not delivered");
        return;
    }
    let _ = send.finish();
}
