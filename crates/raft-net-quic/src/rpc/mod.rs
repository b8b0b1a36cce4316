//! Request/response for clients on the node's endpoint (ALPN `raft-rpc`): each request is
//! one bidirectional stream carrying one request frame and one response frame, so many
//! requests run concurrently on a connection without ids or head-of-line blocking.
//!
//! The payloads are opaque bytes; the KV crates put their own encoding on top.

mod client;
mod server;

pub use client::{RpcClient, RpcClientConfig};
pub(crate) use server::serve_connection;

/// The stream-reset code for a request that could not be served (malformed request,
/// response too large).
pub const REQUEST_FAILED: quinn::VarInt = quinn::VarInt::from_u32(0x0052_464c);

/// What a request frame is called in frame errors, on both sides.
const REQUEST_FRAME: &str = "request";
/// What a response frame is called in frame errors, on both sides.
const RESPONSE_FRAME: &str = "response";
