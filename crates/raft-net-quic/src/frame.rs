//! Framing: a 4-byte big-endian length, then that many bytes of postcard.
//!
//! Every byte read from the network goes through [`FrameDecoder`]; it never trusts a length
//! before checking it against the maximum, so a hostile peer cannot make it allocate more
//! than one maximum-sized frame per stream.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// The size of a frame's length prefix.
pub const HEADER_BYTES: usize = 4;

/// The default maximum frame: 4 MiB, four times raft-core's default 1 MiB append batch and
/// snapshot chunk, so a default-configured node never builds a frame it cannot send, while
/// one bad length costs at most 4 MiB of memory.
pub const FRAME_BYTES_MAX_DEFAULT: u32 = 4 << 20;

/// Encodes `value` as one frame.
///
/// # Errors
///
/// [`Error::FrameTooLarge`] when the encoding exceeds `max` (the receiver would refuse it),
/// [`Error::FrameEncode`] if postcard fails.
pub fn encode_frame<T: Serialize>(value: &T, what: &'static str, max: u32) -> Result<Bytes, Error> {
    // Sized first (a pass that writes nothing), so the buffer is allocated once rather
    // than grown by doubling: an append of many entries would otherwise copy itself
    // a dozen times.
    let size = postcard::experimental::serialized_size(value)
        .map_err(|source| Error::FrameEncode { what, source })?;
    let mut out = BytesMut::with_capacity(HEADER_BYTES + size).writer();
    out.get_mut().put_u32(0);
    let mut out = postcard::to_io(value, out)
        .map_err(|source| Error::FrameEncode { what, source })?
        .into_inner();
    let body = out.len() - HEADER_BYTES;
    let length = u32::try_from(body)
        .ok()
        .filter(|&length| length <= max)
        .ok_or(Error::FrameTooLarge { length: body as u64, max })?;
    out[..HEADER_BYTES].copy_from_slice(&length.to_be_bytes());
    Ok(out.freeze())
}

/// An incremental decoder: push bytes as they arrive, take whole frames out.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: BytesMut,
    max: u32,
}

impl FrameDecoder {
    /// A decoder refusing frames above `max` bytes (not counting the header).
    #[must_use]
    pub fn new(max: u32) -> FrameDecoder {
        FrameDecoder { buffer: BytesMut::new(), max }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// How many bytes are buffered and not yet decoded.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The next whole frame decoded as `T`, `None` if more bytes are needed.
    ///
    /// # Errors
    ///
    /// [`Error::FrameTooLarge`] as soon as the header announces more than the maximum (before
    /// the body arrives), [`Error::FrameDecode`] when the body is not a valid `T` or has
    /// bytes left over. The stream is unusable after an error: frame boundaries are lost.
    pub fn next<T: DeserializeOwned>(&mut self, what: &'static str) -> Result<Option<T>, Error> {
        let Some(header) = self.buffer.get(..HEADER_BYTES) else {
            return Ok(None);
        };
        let mut length_bytes = [0_u8; HEADER_BYTES];
        length_bytes.copy_from_slice(header);
        let length = u32::from_be_bytes(length_bytes);
        if length > self.max {
            return Err(Error::FrameTooLarge { length: u64::from(length), max: self.max });
        }
        let needed = HEADER_BYTES + length as usize;
        if self.buffer.len() < needed {
            // Reserve for the rest of this frame only: bounded by the checked maximum.
            self.buffer.reserve(needed - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(HEADER_BYTES);
        let body = self.buffer.split_to(length as usize);
        decode_body(&body, what).map(Some)
    }

    /// Checks that the stream ended on a frame boundary.
    ///
    /// # Errors
    ///
    /// [`Error::FrameTruncated`] when part of a frame is buffered.
    pub fn finish(&self) -> Result<(), Error> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let needed = match self.buffer.get(..HEADER_BYTES) {
            Some(header) => {
                let mut length_bytes = [0_u8; HEADER_BYTES];
                length_bytes.copy_from_slice(header);
                HEADER_BYTES + u32::from_be_bytes(length_bytes) as usize
            }
            None => HEADER_BYTES,
        };
        Err(Error::FrameTruncated { buffered: self.buffer.len(), needed })
    }
}

/// Decodes a frame's body as `T`; bytes left over make it malformed.
pub(crate) fn decode_body<T: DeserializeOwned>(
    body: &[u8],
    what: &'static str,
) -> Result<T, Error> {
    let (value, rest) = postcard::take_from_bytes::<T>(body)
        .map_err(|source| Error::FrameDecode { what, source })?;
    if !rest.is_empty() {
        return Err(Error::FrameDecode { what, source: postcard::Error::DeserializeBadEncoding });
    }
    Ok(value)
}

/// Reads exactly one frame from `stream` and expects the stream to end there.
pub(crate) async fn read_one<T: DeserializeOwned>(
    stream: &mut quinn::RecvStream,
    addr: std::net::SocketAddr,
    what: &'static str,
    max: u32,
) -> Result<T, Error> {
    let mut decoder = FrameDecoder::new(max);
    loop {
        if let Some(value) = decoder.next::<T>(what)? {
            return Ok(value);
        }
        match stream.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => decoder.push(&chunk.bytes),
            Ok(None) => {
                decoder.finish()?;
                return Err(Error::FrameTruncated { buffered: 0, needed: HEADER_BYTES });
            }
            Err(source) => return Err(Error::Read { addr, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn frame_split_anywhere_decodes_to_the_same_value() {
        let value = (7_u64, String::from("hello"), vec![1_u8; 300]);
        let frame = encode_frame(&value, "test", 1024).unwrap();
        for split in 0..frame.len() {
            let mut decoder = FrameDecoder::new(1024);
            decoder.push(&frame[..split]);
            assert!(decoder.next::<(u64, String, Vec<u8>)>("test").unwrap().is_none());
            decoder.push(&frame[split..]);
            assert_eq!(decoder.next("test").unwrap(), Some(value.clone()));
            decoder.finish().unwrap();
        }
    }

    #[test]
    fn oversized_length_is_refused_before_the_body_arrives() {
        let mut decoder = FrameDecoder::new(16);
        decoder.push(&17_u32.to_be_bytes());
        let error = decoder.next::<u64>("test").unwrap_err();
        assert!(matches!(error, Error::FrameTooLarge { length: 17, max: 16 }), "{error}");
    }

    #[test]
    fn encoding_above_the_maximum_is_refused_at_the_sender() {
        let error = encode_frame(&vec![0_u8; 100], "test", 16).unwrap_err();
        assert!(matches!(error, Error::FrameTooLarge { max: 16, .. }), "{error}");
    }

    #[test]
    fn truncated_frame_is_reported_at_the_end_of_the_stream() {
        let frame = encode_frame(&42_u64, "test", 16).unwrap();
        let mut decoder = FrameDecoder::new(16);
        decoder.push(&frame[..frame.len() - 1]);
        assert!(decoder.next::<u64>("test").unwrap().is_none());
        let error = decoder.finish().unwrap_err();
        assert!(matches!(error, Error::FrameTruncated { .. }), "{error}");
    }

    #[test]
    fn trailing_bytes_inside_a_frame_are_malformed() {
        let mut frame = BytesMut::new();
        frame.put_u32(2);
        frame.put_slice(&[1, 1]);
        let mut decoder = FrameDecoder::new(16);
        decoder.push(&frame);
        let error = decoder.next::<u8>("test").unwrap_err();
        assert!(matches!(error, Error::FrameDecode { .. }), "{error}");
    }
}
