//! The crate's one error type.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in `raft-net-quic`.
///
/// Setup errors (certificates, configuration, binding) are fatal for the caller; connection
/// and call errors are *refused* or *unreachable*: retry later or elsewhere.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A certificate or key file could not be read or written.
    #[error("cannot access {path}: {source}; check the path and its permissions")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("cannot parse {path} as PEM ({what}): {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was expected in it.
        what: &'static str,
        /// The parser's error.
        source: rustls_pki_types::pem::Error,
    },
    /// rcgen failed to make a key or certificate.
    #[error("cannot generate the {what}: {source}")]
    CertificateGeneration {
        /// Which certificate or key.
        what: String,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// rustls refused the certificates or keys (wrong key for the certificate, bad CA...).
    #[error("invalid TLS setup ({what}): {source}")]
    Tls {
        /// Which part of the setup.
        what: &'static str,
        /// rustls's error.
        source: rustls::Error,
    },
    /// The client certificate verifier could not be built (for example, an empty CA).
    #[error("invalid cluster CA for verifying certificates: {source}")]
    Verifier {
        /// rustls's error.
        source: rustls::server::VerifierBuilderError,
    },
    /// The TLS configuration has no cipher suite QUIC can start with.
    #[error("TLS configuration unusable for QUIC: {source}")]
    QuicCrypto {
        /// quinn's error.
        source: quinn::crypto::rustls::NoInitialCipherSuite,
    },
    /// A configuration value is out of range.
    #[error("invalid network config: {field} = {value}: {rule}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP {addr}: {source}; is the port in use?")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A connection could not be started (bad address or name).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The remote address.
        addr: SocketAddr,
        /// quinn's error.
        source: quinn::ConnectError,
    },
    /// The connection failed or was closed (TLS refusal, timeout, peer gone).
    #[error("connection to {addr} failed: {source}")]
    Connection {
        /// The remote address.
        addr: SocketAddr,
        /// quinn's error.
        source: quinn::ConnectionError,
    },
    /// The connection closed (or its request stream ended) with the request unanswered;
    /// whether the node acted on it is unknown.
    #[error("the connection to {addr} closed before the request was answered")]
    ConnectionClosed {
        /// The remote address.
        addr: SocketAddr,
    },
    /// The node took the request but could not send its response (larger than the frame
    /// maximum).
    #[error("{addr} could not send the response to a request (larger than the frame maximum)")]
    RequestFailed {
        /// The remote address.
        addr: SocketAddr,
    },
    /// A request/response frame carries a tag this side does not know: the stream's framing
    /// is broken (a buggy or hostile peer), so the stream is closed.
    #[error("request/response frame with unknown tag {tag}")]
    RpcFrameTag {
        /// The tag found.
        tag: u8,
    },
    /// The remote side refused our handshake, or we refused theirs.
    #[error("handshake with {addr} refused: {reason}")]
    HandshakeRefused {
        /// The remote address.
        addr: SocketAddr,
        /// Why, naming both sides' values.
        reason: String,
    },
    /// Something took longer than allowed.
    #[error("{what} with {addr} timed out after {after:?}")]
    Timeout {
        /// What was waited for.
        what: &'static str,
        /// The remote address.
        addr: SocketAddr,
        /// The limit.
        after: Duration,
    },
    /// Writing to a stream failed (the connection or stream closed).
    #[error("cannot write to {addr}: {source}")]
    Write {
        /// The remote address.
        addr: SocketAddr,
        /// quinn's error.
        source: quinn::WriteError,
    },
    /// Reading from a stream failed (the connection or stream closed).
    #[error("cannot read from {addr}: {source}")]
    Read {
        /// The remote address.
        addr: SocketAddr,
        /// quinn's error.
        source: quinn::ReadError,
    },
    /// A TCP connection failed: connecting, its TLS handshake, or reading or writing it.
    #[error("{what} with {addr} failed: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The remote address.
        addr: SocketAddr,
        /// The OS or TLS error.
        source: std::io::Error,
    },
    /// A TCP port could not be bound.
    #[error("cannot bind TCP {addr}: {source}; is the port in use?")]
    BindTcp {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The stream ended before a whole frame arrived.
    #[error("stream ended inside a frame: {buffered} bytes buffered, frame needs {needed}")]
    FrameTruncated {
        /// Bytes received of the frame, header included.
        buffered: usize,
        /// Bytes the frame needs, header included (4 when the header itself is cut).
        needed: usize,
    },
    /// A frame's length prefix is above the maximum.
    #[error("frame of {length} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The announced length.
        length: u64,
        /// The maximum.
        max: u32,
    },
    /// A frame's body is not valid postcard for the expected type.
    #[error("malformed {what} frame: {source}")]
    FrameDecode {
        /// What was expected.
        what: &'static str,
        /// postcard's error.
        source: postcard::Error,
    },
    /// A value could not be encoded (should not happen for our types).
    #[error("cannot encode {what}: {source}")]
    FrameEncode {
        /// What was being encoded.
        what: &'static str,
        /// postcard's error.
        source: postcard::Error,
    },
    /// The endpoint was shut down.
    #[error("the endpoint is shut down")]
    Shutdown,
    /// The node refused a request because it already holds as many request bytes as it
    /// allows (for this connection or for all): retry later, or elsewhere.
    #[error("{addr} is overloaded: it holds as many request bytes as it allows; retry later")]
    Overloaded {
        /// The remote address.
        addr: SocketAddr,
    },
}
