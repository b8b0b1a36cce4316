//! Request/response for clients on the node's endpoint (ALPN `raft-rpc`): a client opens
//! one long-lived bidirectional stream per connection and multiplexes every request on it.
//! Replies come back in whatever order requests finish, matched by id. Both sides batch:
//! the client writes every queued request in one write, the node every finished reply.
//!
//! A frame is a 13-byte header, then the body as is (no re-encoding, and the receiver
//! slices the body out of what it read, without copying):
//!
//! ```text
//!   length: u32 (big-endian, of the body) | id: u64 | tag: u8 | body: `length` bytes
//! ```
//!
//! Requests carry [`TAG_CALL`]; replies [`TAG_DONE`] with the response, or [`TAG_FAILED`]
//! with no body when the node could not take the request or send its response (above the
//! frame maximum). A frame above the maximum is skipped, not buffered, and only its own
//! call fails: the stream carries on.
//!
//! The payloads are opaque bytes; the KV crates put their own encoding on top.

mod budget;
mod client;
mod server;

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub(crate) use budget::ByteBudget;
pub use client::{RpcClient, RpcClientConfig};
pub(crate) use server::{serve_connection, serve_tcp};

use crate::error::Error;

/// The stream-reset code for a stream whose framing broke (an unknown tag).
pub const REQUEST_FAILED: quinn::VarInt = quinn::VarInt::from_u32(0x0052_464c);

/// The most requests one stream has in flight on the node; past it the node reads no more
/// from the stream until some finish (QUIC flow control then holds the client back). Far
/// above what a client's workers keep in flight, so it only bites on a misbehaving client.
const IN_FLIGHT_PER_STREAM_MAX: usize = 4096;

/// The header's length: body length, id, tag.
const HEADER_BYTES: usize = 4 + 8 + 1;

/// A request.
const TAG_CALL: u8 = 0;
/// A reply carrying the handler's response.
const TAG_DONE: u8 = 1;
/// A reply saying the request failed (too large to take, or its response too large to send).
const TAG_FAILED: u8 = 2;
/// A reply saying the node holds as many request bytes as it allows: retry later.
const TAG_OVERLOADED: u8 = 3;

/// The header of a frame whose body is `length` bytes.
fn header(id: u64, tag: u8, length: u32) -> Bytes {
    let mut header = BytesMut::with_capacity(HEADER_BYTES);
    header.put_u32(length);
    header.put_u64(id);
    header.put_u8(tag);
    header.freeze()
}

/// One frame as read.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// A whole frame.
    Whole {
        /// The call it belongs to.
        id: u64,
        /// What it is.
        tag: u8,
        /// The body, sliced from the read buffer.
        body: Bytes,
    },
    /// A frame whose body is above the maximum: its body is being skipped.
    Oversized {
        /// The call it belongs to.
        id: u64,
        /// The announced length.
        length: u32,
    },
    /// A frame the receiver did not admit (no room for it): its body is being skipped.
    Refused {
        /// The call it belongs to.
        id: u64,
    },
}

/// Splits a stream's bytes into frames, skipping oversized bodies without buffering them.
#[derive(Debug)]
struct FrameReader {
    buffer: BytesMut,
    /// Bytes of an oversized body still to be dropped as they arrive.
    skipping: usize,
    max: u32,
    /// Whether the frame whose header is at the front was admitted already.
    admitted: bool,
}

impl FrameReader {
    fn new(max: u32) -> FrameReader {
        FrameReader { buffer: BytesMut::new(), skipping: 0, max, admitted: false }
    }

    fn push(&mut self, bytes: &[u8]) {
        let skipped = self.skipping.min(bytes.len());
        self.skipping -= skipped;
        self.buffer.extend_from_slice(&bytes[skipped..]);
    }

    /// The next frame, if one has arrived whole (or, oversized, its header has).
    ///
    /// # Errors
    ///
    /// [`Error::RpcFrameTag`] for a tag this side does not know: the stream is broken.
    fn next(&mut self, tags: &[u8]) -> Result<Option<Frame>, Error> {
        self.next_admitting(tags, |_| true)
    }

    /// As [`FrameReader::next`], but asks `admit` (once per frame, with its body length,
    /// before buffering the body) whether to take it: a frame not admitted is skipped like
    /// an oversized one and comes back as [`Frame::Refused`].
    fn next_admitting(
        &mut self,
        tags: &[u8],
        mut admit: impl FnMut(u32) -> bool,
    ) -> Result<Option<Frame>, Error> {
        if self.skipping > 0 || self.buffer.len() < HEADER_BYTES {
            return Ok(None);
        }
        let mut header = &self.buffer[..HEADER_BYTES];
        let (length, id, tag) = (header.get_u32(), header.get_u64(), header.get_u8());
        if !tags.contains(&tag) {
            return Err(Error::RpcFrameTag { tag });
        }
        if length > self.max {
            self.buffer.advance(HEADER_BYTES);
            let buffered = self.buffer.len().min(length as usize);
            self.buffer.advance(buffered);
            self.skipping = length as usize - buffered;
            return Ok(Some(Frame::Oversized { id, length }));
        }
        if !self.admitted && !admit(length) {
            self.buffer.advance(HEADER_BYTES);
            let buffered = self.buffer.len().min(length as usize);
            self.buffer.advance(buffered);
            self.skipping = length as usize - buffered;
            return Ok(Some(Frame::Refused { id }));
        }
        self.admitted = true;
        let needed = HEADER_BYTES + length as usize;
        if self.buffer.len() < needed {
            self.buffer.reserve(needed - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(HEADER_BYTES);
        let body = self.buffer.split_to(length as usize).freeze();
        self.admitted = false;
        Ok(Some(Frame::Whole { id, tag, body }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn frame(id: u64, tag: u8, body: &[u8]) -> Vec<u8> {
        let length = u32::try_from(body.len()).unwrap();
        let mut bytes = header(id, tag, length).to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn frames_split_anywhere_decode_to_the_same_frames() {
        let mut stream = frame(7, TAG_CALL, b"hello");
        stream.extend(frame(8, TAG_CALL, b""));
        stream.extend(frame(u64::MAX, TAG_CALL, &[9; 300]));
        for split in 0..stream.len() {
            let mut reader = FrameReader::new(1024);
            let mut frames = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                reader.push(part);
                while let Some(frame) = reader.next(&[TAG_CALL]).unwrap() {
                    frames.push(frame);
                }
            }
            let ids: Vec<u64> = frames
                .iter()
                .map(|frame| match frame {
                    Frame::Whole { id, .. }
                    | Frame::Oversized { id, .. }
                    | Frame::Refused { id } => *id,
                })
                .collect();
            assert_eq!(ids, vec![7, 8, u64::MAX], "split at {split}");
            assert_eq!(frames[0], Frame::Whole { id: 7, tag: TAG_CALL, body: "hello".into() });
            assert!(reader.buffer.is_empty());
        }
    }

    #[test]
    fn an_oversized_frame_is_skipped_and_the_next_one_decodes() {
        let mut stream = frame(1, TAG_CALL, &[0; 100]);
        stream.extend(frame(2, TAG_CALL, b"ok"));
        for split in 0..stream.len() {
            let mut reader = FrameReader::new(16);
            let mut frames = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                reader.push(part);
                while let Some(frame) = reader.next(&[TAG_CALL]).unwrap() {
                    frames.push(frame);
                }
            }
            assert_eq!(
                frames,
                vec![
                    Frame::Oversized { id: 1, length: 100 },
                    Frame::Whole { id: 2, tag: TAG_CALL, body: "ok".into() }
                ],
                "split at {split}"
            );
            assert!(reader.buffer.len() <= HEADER_BYTES + 16, "the body was not buffered");
        }
    }

    proptest::proptest! {
        /// Bytes from the network never panic the reader, and it never buffers more than one
        /// header plus one allowed body.
        #[test]
        fn arbitrary_bytes_are_frames_skips_or_an_error(
            chunks in proptest::collection::vec(proptest::collection::vec(0_u8..=255, 0..64), 0..16)
        ) {
            let mut reader = FrameReader::new(32);
            'chunks: for chunk in chunks {
                reader.push(&chunk);
                loop {
                    match reader.next(&[TAG_CALL, TAG_DONE]) {
                        Ok(Some(Frame::Whole { body, .. })) => proptest::prop_assert!(body.len() <= 32),
                        Ok(Some(Frame::Oversized { length, .. })) => proptest::prop_assert!(length > 32),
                        Ok(Some(Frame::Refused { .. })) => proptest::prop_assert!(false, "admitted"),
                        Ok(None) => break,
                        Err(_) => break 'chunks,
                    }
                }
                proptest::prop_assert!(reader.buffer.len() <= HEADER_BYTES + 32 + 64);
            }
        }
    }

    #[test]
    fn a_frame_not_admitted_is_skipped_and_admission_is_asked_once_per_frame() {
        let mut stream = frame(1, TAG_CALL, &[0; 100]);
        stream.extend(frame(2, TAG_CALL, b"ok"));
        for split in 0..stream.len() {
            let mut reader = FrameReader::new(1024);
            let mut asked = Vec::new();
            let mut frames = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                reader.push(part);
                let mut admit = |length: u32| {
                    asked.push(length);
                    length < 50
                };
                while let Some(frame) = reader.next_admitting(&[TAG_CALL], &mut admit).unwrap() {
                    frames.push(frame);
                }
            }
            assert_eq!(asked, vec![100, 2], "split at {split}");
            let ok = Frame::Whole { id: 2, tag: TAG_CALL, body: "ok".into() };
            assert_eq!(frames, vec![Frame::Refused { id: 1 }, ok], "split at {split}");
        }
    }

    #[test]
    fn an_unknown_tag_breaks_the_stream() {
        let mut reader = FrameReader::new(16);
        reader.push(&frame(1, 77, b"x"));
        let error = reader.next(&[TAG_CALL]).unwrap_err();
        assert!(matches!(error, Error::RpcFrameTag { tag: 77 }), "{error}");
    }
}
