//! The handshake every connection starts with, after TLS: the dialer opens a bidirectional
//! stream and sends a [`Hello`]; the acceptor checks it against its own and against the
//! dialer's certificate, then answers with its own `Hello` or closes the connection with
//! [`REFUSED`] and a reason naming both sides' values.
//!
//! On TCP the hello travels on the connection itself, before the protocol's frames, and
//! the acceptor answers with an [`Answer`]: its own hello, or the refusal's reason (TCP has
//! no close reason to carry it).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use quinn::VarInt;
use raft_core::NodeId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;

use crate::certs::{ClientId, client_name, node_name};
use crate::error::Error;
use crate::frame::{decode_body, encode_frame, read_one};
use crate::tls::{certificate_names, chain_names};
use crate::wire::TlsStream;

/// The wire protocol's version; a node refuses a different one.
pub const PROTOCOL_VERSION: u32 = 3;

/// The close code of a refused handshake; the close reason says why.
pub const REFUSED: VarInt = VarInt::from_u32(0x52_46);

/// A hello is a few dozen bytes; this bounds what an unauthenticated-as-yet caller can make
/// us buffer.
const HELLO_BYTES_MAX: u32 = 1024;

/// Who is on the other end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Caller {
    /// A cluster node.
    Node(NodeId),
    /// A client.
    Client(ClientId),
}

impl fmt::Display for Caller {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Node(id) => write!(formatter, "node {id}"),
            Caller::Client(id) => write!(formatter, "client {id}"),
        }
    }
}

/// The first frame each side sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub protocol_version: u32,
    /// The cluster the sender belongs to.
    pub cluster_id: String,
    /// Who the sender says it is; checked against its certificate.
    pub caller: Caller,
}

/// Which protocol a connection speaks, from its ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Peer,
    Rpc,
}

/// Why a handshake was refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    VersionDiffers { ours: u32, theirs: u32 },
    ClusterDiffers { ours: String, theirs: String },
    ClientOnPeerProtocol { claimed: Caller },
    CertificateMismatch { claimed: Caller },
    SameNode { id: NodeId },
    UnexpectedNode { expected: NodeId, actual: Caller },
    NotAPeer { id: NodeId },
}

impl fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::VersionDiffers { ours, theirs } => {
                write!(formatter, "protocol version differs: ours {ours}, theirs {theirs}")
            }
            Refusal::ClusterDiffers { ours, theirs } => {
                write!(formatter, "cluster id differs: ours {ours:?}, theirs {theirs:?}")
            }
            Refusal::ClientOnPeerProtocol { claimed } => {
                write!(formatter, "{claimed} may not speak the peer protocol")
            }
            Refusal::CertificateMismatch { claimed } => {
                write!(formatter, "certificate does not name {claimed}")
            }
            Refusal::SameNode { id } => write!(formatter, "both sides claim node id {id}"),
            Refusal::UnexpectedNode { expected, actual } => {
                write!(formatter, "expected node {expected}, reached {actual}")
            }
            Refusal::NotAPeer { id } => {
                write!(formatter, "node {id} is not a member or a known joining node here")
            }
        }
    }
}

impl Refusal {
    /// Logs the refusal with both sides' values in fields.
    fn log(&self, remote: SocketAddr) {
        match self {
            Refusal::VersionDiffers { ours, theirs } => {
                warn!(%remote, ours, theirs, "handshake refused: protocol version differs");
            }
            Refusal::ClusterDiffers { ours, theirs } => {
                warn!(%remote, ours, theirs, "handshake refused: cluster id differs");
            }
            Refusal::ClientOnPeerProtocol { claimed } => {
                warn!(%remote, %claimed, "handshake refused: a client may not speak the peer protocol");
            }
            Refusal::CertificateMismatch { claimed } => {
                warn!(%remote, %claimed, "handshake refused: certificate does not name the caller");
            }
            Refusal::SameNode { id } => {
                warn!(%remote, %id, "handshake refused: both sides claim the same node id");
            }
            Refusal::UnexpectedNode { expected, actual } => {
                warn!(%remote, %expected, %actual, "handshake refused: reached an unexpected node");
            }
            Refusal::NotAPeer { id } => {
                warn!(%remote, %id, "handshake refused: the node is not a configured peer");
            }
        }
    }
}

fn check_common(ours: &Hello, theirs: &Hello) -> Result<(), Refusal> {
    if ours.protocol_version != theirs.protocol_version {
        return Err(Refusal::VersionDiffers {
            ours: ours.protocol_version,
            theirs: theirs.protocol_version,
        });
    }
    if ours.cluster_id != theirs.cluster_id {
        return Err(Refusal::ClusterDiffers {
            ours: ours.cluster_id.clone(),
            theirs: theirs.cluster_id.clone(),
        });
    }
    Ok(())
}

/// Checks the caller's claim against the protocol and its certificate, and on the peer
/// protocol that the node is one `is_peer` allows.
fn check_caller(
    names: &dyn Fn(&str) -> bool,
    protocol: Protocol,
    ours: &Hello,
    theirs: &Hello,
    is_peer: &(dyn Fn(NodeId) -> bool + Sync),
) -> Result<(), Refusal> {
    check_common(ours, theirs)?;
    let claimed = theirs.caller;
    let name = match claimed {
        Caller::Client(_) if protocol == Protocol::Peer => {
            return Err(Refusal::ClientOnPeerProtocol { claimed });
        }
        Caller::Node(id) if ours.caller == Caller::Node(id) => {
            return Err(Refusal::SameNode { id });
        }
        Caller::Node(id) => node_name(id),
        Caller::Client(id) => client_name(id),
    };
    if !names(&name) {
        return Err(Refusal::CertificateMismatch { claimed });
    }
    match claimed {
        Caller::Node(id) if protocol == Protocol::Peer && !is_peer(id) => {
            Err(Refusal::NotAPeer { id })
        }
        _ => Ok(()),
    }
}

fn refuse(connection: &quinn::Connection, refusal: &Refusal) -> Error {
    let remote = connection.remote_address();
    refusal.log(remote);
    let reason = refusal.to_string();
    connection.close(REFUSED, reason.as_bytes());
    Error::HandshakeRefused { addr: remote, reason }
}

/// The acceptor's half: reads the dialer's hello, checks it, answers with `ours`. On the
/// peer protocol only nodes `is_peer` allows pass.
pub(crate) async fn accept(
    connection: &quinn::Connection,
    protocol: Protocol,
    ours: &Hello,
    timeout: Duration,
    is_peer: &(dyn Fn(NodeId) -> bool + Sync),
) -> Result<Caller, Error> {
    let remote = connection.remote_address();
    let exchange = async {
        let (mut send, mut recv) = connection
            .accept_bi()
            .await
            .map_err(|source| Error::Connection { addr: remote, source })?;
        let theirs: Hello = read_one(&mut recv, remote, "hello", HELLO_BYTES_MAX).await?;
        let names = |name: &str| certificate_names(connection, name);
        if let Err(refusal) = check_caller(&names, protocol, ours, &theirs, is_peer) {
            return Err(refuse(connection, &refusal));
        }
        let frame = encode_frame(ours, "hello", HELLO_BYTES_MAX)?;
        send.write_all(&frame).await.map_err(|source| Error::Write { addr: remote, source })?;
        // Finishing only fails if the stream is already closed; the peer will notice.
        let _ = send.finish();
        Ok(theirs.caller)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => {
            connection.close(REFUSED, b"handshake timed out");
            Err(Error::Timeout { what: "handshake", addr: remote, after: timeout })
        }
    }
}

/// The dialer's half: sends `ours`, reads and checks the answer. `expected` is the node
/// the dialer meant to reach, if it knows.
pub(crate) async fn dial(
    connection: &quinn::Connection,
    ours: &Hello,
    expected: Option<NodeId>,
    timeout: Duration,
) -> Result<NodeId, Error> {
    let remote = connection.remote_address();
    let exchange = async {
        let (mut send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|source| Error::Connection { addr: remote, source })?;
        let frame = encode_frame(ours, "hello", HELLO_BYTES_MAX)?;
        send.write_all(&frame).await.map_err(|source| Error::Write { addr: remote, source })?;
        let _ = send.finish();
        let theirs: Hello = match read_one(&mut recv, remote, "hello", HELLO_BYTES_MAX).await {
            Ok(hello) => hello,
            Err(error) => return Err(refused_by_remote(connection).unwrap_or(error)),
        };
        check_answer(ours, &theirs, expected).map_err(|refusal| refuse(connection, &refusal))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => {
            connection.close(REFUSED, b"handshake timed out");
            Err(Error::Timeout { what: "handshake", addr: remote, after: timeout })
        }
    }
}

/// The dialer's check of the acceptor's hello: the same cluster and version, and a node
/// (the `expected` one, when the dialer knows which); the node's id.
fn check_answer(ours: &Hello, theirs: &Hello, expected: Option<NodeId>) -> Result<NodeId, Refusal> {
    check_common(ours, theirs)?;
    match (theirs.caller, expected) {
        (Caller::Node(id), Some(expected)) if id != expected => {
            Err(Refusal::UnexpectedNode { expected, actual: theirs.caller })
        }
        (Caller::Node(id), _) => Ok(id),
        (actual @ Caller::Client(_), _) => {
            Err(Refusal::UnexpectedNode { expected: expected.unwrap_or(NodeId(0)), actual })
        }
    }
}

/// The remote's refusal reason, if it closed the connection as [`REFUSED`].
fn refused_by_remote(connection: &quinn::Connection) -> Option<Error> {
    match connection.close_reason()? {
        quinn::ConnectionError::ApplicationClosed(close) if close.error_code == REFUSED => {
            Some(Error::HandshakeRefused {
                addr: connection.remote_address(),
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            })
        }
        _ => None,
    }
}

/// A TCP acceptor's answer to the dialer's hello.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Answer {
    /// The hello passed; the acceptor's own.
    Accepted(Hello),
    /// The hello was refused, for this reason (naming both sides' values).
    Refused(String),
}

/// Reads exactly one frame from a TLS stream (nothing past it: the protocol's frames follow
/// on the same connection).
async fn read_frame<T: DeserializeOwned>(
    stream: &mut TlsStream,
    remote: SocketAddr,
    what: &'static str,
) -> Result<T, Error> {
    let io = |source| Error::Io { what: "reading the handshake", addr: remote, source };
    let mut length = [0_u8; 4];
    stream.read_exact(&mut length).await.map_err(io)?;
    let length = u32::from_be_bytes(length);
    if length > HELLO_BYTES_MAX {
        return Err(Error::FrameTooLarge { length: u64::from(length), max: HELLO_BYTES_MAX });
    }
    let mut body = vec![0_u8; length as usize];
    stream.read_exact(&mut body).await.map_err(io)?;
    decode_body(&body, what)
}

async fn write_frame<T: Serialize>(
    stream: &mut TlsStream,
    remote: SocketAddr,
    value: &T,
    what: &'static str,
) -> Result<(), Error> {
    let frame = encode_frame(value, what, HELLO_BYTES_MAX)?;
    let io = |source| Error::Io { what: "writing the handshake", addr: remote, source };
    stream.write_all(&frame).await.map_err(io)?;
    stream.flush().await.map_err(io)
}

/// The acceptor's half on TCP: as [`accept`], answering with an [`Answer`].
pub(crate) async fn accept_stream(
    stream: &mut TlsStream,
    remote: SocketAddr,
    protocol: Protocol,
    ours: &Hello,
    timeout: Duration,
    is_peer: &(dyn Fn(NodeId) -> bool + Sync),
) -> Result<Caller, Error> {
    let exchange = async {
        let theirs: Hello = read_frame(stream, remote, "hello").await?;
        let chain = stream.get_ref().1.peer_certificates().unwrap_or_default().to_vec();
        let names = |name: &str| chain_names(&chain, name);
        if let Err(refusal) = check_caller(&names, protocol, ours, &theirs, is_peer) {
            refusal.log(remote);
            let reason = refusal.to_string();
            // The dialer learns why; the connection closes either way.
            let _ = write_frame(stream, remote, &Answer::Refused(reason.clone()), "answer").await;
            return Err(Error::HandshakeRefused { addr: remote, reason });
        }
        write_frame(stream, remote, &Answer::Accepted(ours.clone()), "answer").await?;
        Ok(theirs.caller)
    };
    tokio::time::timeout(timeout, exchange).await.unwrap_or(Err(Error::Timeout {
        what: "handshake",
        addr: remote,
        after: timeout,
    }))
}

/// Refuses a TCP dialer for `reason` before looking at its hello (the node is overloaded,
/// or serves no requests): reads the hello, answers with the refusal.
pub(crate) async fn refuse_stream(
    stream: &mut TlsStream,
    remote: SocketAddr,
    reason: String,
    timeout: Duration,
) {
    let exchange = async {
        let _: Hello = read_frame(stream, remote, "hello").await?;
        write_frame(stream, remote, &Answer::Refused(reason), "answer").await
    };
    // The connection closes either way; the dialer just does not learn why.
    let _ = tokio::time::timeout(timeout, exchange).await;
}

/// The dialer's half on TCP: as [`dial`], reading an [`Answer`].
pub(crate) async fn dial_stream(
    stream: &mut TlsStream,
    remote: SocketAddr,
    ours: &Hello,
    expected: Option<NodeId>,
    timeout: Duration,
) -> Result<NodeId, Error> {
    let exchange = async {
        write_frame(stream, remote, ours, "hello").await?;
        let theirs = match read_frame(stream, remote, "answer").await? {
            Answer::Accepted(hello) => hello,
            Answer::Refused(reason) => {
                return Err(Error::HandshakeRefused { addr: remote, reason });
            }
        };
        check_answer(ours, &theirs, expected).map_err(|refusal| {
            refusal.log(remote);
            Error::HandshakeRefused { addr: remote, reason: refusal.to_string() }
        })
    };
    tokio::time::timeout(timeout, exchange).await.unwrap_or(Err(Error::Timeout {
        what: "handshake",
        addr: remote,
        after: timeout,
    }))
}
