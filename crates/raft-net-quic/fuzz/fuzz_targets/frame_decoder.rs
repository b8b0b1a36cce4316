//! Fuzzes the frame decoder every byte from the network goes through: the input's first
//! byte picks the chunk size the rest is fed in, and the frames are decoded as Raft
//! messages, handshakes and client payloads. Any panic or unbounded buffering is a bug.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use raft_core::Message;
use raft_net_quic::Hello;
use raft_net_quic::frame::FrameDecoder;

const MAX: u32 = 1 << 16;

fn feed<T: serde_like::Decode>(data: &[u8], chunk: usize) {
    let mut decoder = FrameDecoder::new(MAX);
    for piece in data.chunks(chunk) {
        decoder.push(piece);
        assert!(decoder.buffered() <= data.len());
        loop {
            match T::next(&mut decoder) {
                Ok(true) => {}
                Ok(false) => break,
                Err(()) => return,
            }
        }
    }
    let _ = decoder.finish();
}

/// The three frame types a node decodes.
mod serde_like {
    use super::*;

    pub trait Decode {
        fn next(decoder: &mut FrameDecoder) -> Result<bool, ()>;
    }

    macro_rules! decode {
        ($type:ty) => {
            impl Decode for $type {
                fn next(decoder: &mut FrameDecoder) -> Result<bool, ()> {
                    match decoder.next::<$type>("fuzz") {
                        Ok(Some(_)) => Ok(true),
                        Ok(None) => Ok(false),
                        Err(_) => Err(()),
                    }
                }
            }
        };
    }

    decode!(Message);
    decode!(Hello);
    decode!(Bytes);
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first).max(1);
    feed::<Message>(rest, chunk);
    feed::<Hello>(rest, chunk);
    feed::<Bytes>(rest, chunk);
});
