//! Random bytes into the frame decoder never panic, never yield a frame above the maximum,
//! and never make it buffer more than one frame; split points never change the result.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use raft_core::Message;
use raft_net_quic::frame::{FrameDecoder, HEADER_BYTES, encode_frame};

const MAX: u32 = 4096;

/// Feeds `bytes` in `chunk`-sized pieces; returns the messages decoded and whether the
/// decoder stopped on an error.
fn decode_all(bytes: &[u8], chunk: usize) -> (Vec<Message>, bool) {
    let mut decoder = FrameDecoder::new(MAX);
    let mut messages = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        decoder.push(piece);
        assert!(decoder.buffered() <= bytes.len());
        loop {
            match decoder.next::<Message>("message") {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(_) => return (messages, true),
            }
        }
    }
    (messages, false)
}

#[test]
fn random_bytes_into_the_decoder_never_panic_and_ignore_split_points() {
    // Deterministic: a fixed seed, so a failure replays exactly.
    let config = Config { cases: 512, failure_persistence: None, ..Config::default() };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let strategy = (proptest::collection::vec(any::<u8>(), 0..2048), 1_usize..300, any::<bool>());
    runner
        .run(&strategy, |(mut bytes, chunk, plausible_length)| {
            if plausible_length && bytes.len() >= HEADER_BYTES {
                // Most random lengths are oversized; make some fit so bodies get decoded.
                let length = (bytes.len() - HEADER_BYTES) as u32;
                bytes[..HEADER_BYTES].copy_from_slice(&length.to_be_bytes());
            }
            let whole = decode_all(&bytes, bytes.len());
            let split = decode_all(&bytes, chunk);
            prop_assert_eq!(whole, split);
            Ok(())
        })
        .unwrap();
}

#[test]
fn encoded_messages_followed_by_noise_decode_up_to_the_noise() {
    let message = Message {
        from: raft_core::NodeId(1),
        to: raft_core::NodeId(2),
        term: raft_core::Term(3),
        body: raft_core::MessageBody::TimeoutNow,
    };
    let frame = encode_frame(&message, "message", MAX).unwrap();
    let mut bytes = frame.to_vec();
    bytes.extend_from_slice(&frame);
    bytes.extend_from_slice(&[0xFF; 9]);
    let (messages, failed) = decode_all(&bytes, 3);
    assert_eq!(messages, vec![message.clone(), message]);
    assert!(failed, "the noise announces an oversized frame");
}
