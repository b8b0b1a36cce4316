//! The two wires a node can speak, QUIC (quinn) and TCP with TLS (tokio-rustls), and the
//! halves of a byte stream that the peer and request protocols read and write on either.
//!
//! Both wires carry the same frames and the same hello; they differ below that:
//!
//! | | QUIC | TCP |
//! |---|---|---|
//! | connection per peer pair | one, shared (the lower id dials) | one per direction and stream kind (each node dials its own) |
//! | client requests | one bidirectional stream | the connection itself |
//! | a refused hello | close code and reason | a refusal frame, then close |
//! | a dead peer | idle timeout, stateless reset | the kernel's reset or end of stream, read timeout |

use std::fmt;
use std::io;
use std::ops::Deref;
use std::str::FromStr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

/// TLS over a TCP connection, either side's.
pub(crate) type TlsStream = tokio_rustls::TlsStream<TcpStream>;

/// Which wire a node and its clients speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// QUIC over UDP (quinn), mutual TLS 1.3: the default.
    #[default]
    Quic,
    /// TCP with mutual TLS 1.3 (tokio-rustls): fewer wake-ups and system calls per message
    /// than QUIC in user space, at the cost of head-of-line blocking per connection.
    Tcp,
}

impl TransportKind {
    /// The name used on command lines and in configuration files.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Quic => "quic",
            TransportKind::Tcp => "tcp",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// The error of parsing a [`TransportKind`] from a string other than `quic` or `tcp`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport {0:?}: expected \"quic\" or \"tcp\"")]
pub struct UnknownTransport(pub String);

impl FromStr for TransportKind {
    type Err = UnknownTransport;

    fn from_str(name: &str) -> Result<TransportKind, UnknownTransport> {
        match name {
            "quic" => Ok(TransportKind::Quic),
            "tcp" => Ok(TransportKind::Tcp),
            other => Err(UnknownTransport(other.to_owned())),
        }
    }
}

/// The most bytes a TCP reader takes from the kernel at once.
const TCP_READ_BYTES: usize = 64 << 10;

/// Bytes just read: QUIC hands out its own buffer, TCP lends the reader's.
pub(crate) enum Chunk<'a> {
    Owned(Bytes),
    Borrowed(&'a [u8]),
}

impl Deref for Chunk<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Chunk::Owned(bytes) => bytes,
            Chunk::Borrowed(slice) => slice,
        }
    }
}

/// The receiving half of a byte stream.
pub(crate) enum StreamReader {
    Quic(quinn::RecvStream),
    Tcp { half: ReadHalf<TlsStream>, buffer: Box<[u8]> },
}

impl StreamReader {
    /// The receiving half of a TLS connection.
    pub(crate) fn tcp(half: ReadHalf<TlsStream>) -> StreamReader {
        StreamReader::Tcp { half, buffer: vec![0; TCP_READ_BYTES].into_boxed_slice() }
    }

    /// Up to `max` bytes that have arrived (waiting for at least one), or `None` once the
    /// stream has ended. Cancel safe: bytes are only taken by a read that completes.
    pub(crate) async fn read(&mut self, max: usize) -> io::Result<Option<Chunk<'_>>> {
        match self {
            StreamReader::Quic(stream) => {
                let chunk = stream.read_chunk(max, true).await?;
                Ok(chunk.map(|chunk| Chunk::Owned(chunk.bytes)))
            }
            StreamReader::Tcp { half, buffer } => {
                let limit = max.min(buffer.len());
                let read = half.read(&mut buffer[..limit]).await?;
                Ok((read > 0).then(|| Chunk::Borrowed(&buffer[..read])))
            }
        }
    }

    /// Tells the sender to stop (QUIC); a TCP connection ends when both halves are dropped.
    pub(crate) fn stop(&mut self, code: quinn::VarInt) {
        if let StreamReader::Quic(stream) = self {
            // Only fails on a stream already stopped or finished.
            let _ = stream.stop(code);
        }
    }
}

/// The sending half of a byte stream.
pub(crate) enum StreamWriter {
    Quic(quinn::SendStream),
    Tcp { half: WriteHalf<TlsStream>, buffer: Vec<u8> },
}

impl StreamWriter {
    /// The sending half of a TLS connection.
    pub(crate) fn tcp(half: WriteHalf<TlsStream>) -> StreamWriter {
        StreamWriter::Tcp { half, buffer: Vec::new() }
    }

    /// Writes `chunks` in order as one write (on TCP, one TLS record per 16 KiB and one
    /// system call where the kernel takes it all).
    pub(crate) async fn write_chunks(&mut self, chunks: &mut [Bytes]) -> io::Result<()> {
        match self {
            StreamWriter::Quic(stream) => Ok(stream.write_all_chunks(chunks).await?),
            StreamWriter::Tcp { half, buffer } => {
                buffer.clear();
                for chunk in chunks.iter() {
                    buffer.extend_from_slice(chunk);
                }
                half.write_all(buffer).await?;
                half.flush().await?;
                // A one-off large write (a snapshot chunk) does not stay allocated.
                if buffer.capacity() > TCP_READ_BYTES {
                    *buffer = Vec::new();
                }
                Ok(())
            }
        }
    }

    /// Ends the stream after what was written (QUIC); TCP ends when both halves drop.
    pub(crate) fn finish(&mut self) {
        if let StreamWriter::Quic(stream) = self {
            // Only fails on a stream already finished or reset.
            let _ = stream.finish();
        }
    }

    /// Abandons the stream (QUIC); TCP ends when both halves drop.
    pub(crate) fn reset(&mut self, code: quinn::VarInt) {
        if let StreamWriter::Quic(stream) = self {
            // Only fails on a stream already finished or reset.
            let _ = stream.reset(code);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn transport_names_round_trip_and_unknown_names_are_refused() {
        for kind in [TransportKind::Quic, TransportKind::Tcp] {
            assert_eq!(kind.name().parse::<TransportKind>().unwrap(), kind);
        }
        let error = "udp".parse::<TransportKind>().unwrap_err();
        assert!(error.to_string().contains("\"udp\"") && error.to_string().contains("tcp"));
        assert_eq!(TransportKind::default(), TransportKind::Quic);
    }
}
