//! The segment file format: a header, then 8-byte-aligned frames of length + CRC32 + body,
//! then zeros to the preallocated end; and the scan that reads frames back, telling a torn
//! tail (the last write, cut short) from damage (anything else).
//!
//! ```text
//! segment: magic "RAFT-WAL" (8) | version u32 | reserved u32 (0) | frame | frame | ... | 0...
//! frame:   body length u32 (> 0) | crc32 u32 of (length bytes, body) | body | 0-7 zero bytes
//! ```
//!
//! Frames start at multiples of 8, so a frame's 8-byte header never straddles a disk
//! sector: a torn write can lose a header only whole. A zero length marks the end of the
//! written part (segments are zero-filled when made).

use std::path::Path;

use crate::error::Error;

/// The first bytes of every segment.
const MAGIC: &[u8; 8] = b"RAFT-WAL";
/// The segment format this build writes and reads.
pub(crate) const VERSION: u32 = 1;
/// Bytes before the first frame.
pub(crate) const HEADER_BYTES: u64 = 16;
/// Bytes before a frame's body.
pub(crate) const FRAME_HEADER_BYTES: usize = 8;
/// Frames start at multiples of this.
const ALIGNMENT: usize = 8;

/// A segment's header.
pub(crate) fn header() -> [u8; HEADER_BYTES as usize] {
    let mut header = [0_u8; HEADER_BYTES as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header
}

/// Checks a segment's header: [`Error::ForeignFile`] for a file that is not a segment,
/// [`Error::UnsupportedVersion`] for another format.
pub(crate) fn check_header(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let foreign = |reason: String| Error::ForeignFile { path: path.to_path_buf(), reason };
    let Some(header) = bytes.get(..HEADER_BYTES as usize) else {
        return Err(foreign(format!(
            "{} bytes are too short for a write-ahead log segment header",
            bytes.len()
        )));
    };
    if &header[..8] != MAGIC {
        return Err(foreign(format!(
            "bad magic {:02x?}: not a raft-storage write-ahead log segment",
            &header[..8]
        )));
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: VERSION,
        });
    }
    Ok(())
}

/// Appends one frame holding `body` to `buffer` (padded to the alignment).
pub(crate) fn push_frame(path: &Path, buffer: &mut Vec<u8>, body: &[u8]) -> Result<(), Error> {
    let length = u32::try_from(body.len()).map_err(|_| Error::Encode {
        path: path.to_path_buf(),
        what: "write-ahead log record",
        reason: format!("{} bytes exceed the frame limit of {} bytes", body.len(), u32::MAX),
    })?;
    let length_bytes = length.to_le_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&length_bytes);
    hasher.update(body);
    buffer.extend_from_slice(&length_bytes);
    buffer.extend_from_slice(&hasher.finalize().to_le_bytes());
    buffer.extend_from_slice(body);
    buffer.resize(buffer.len().next_multiple_of(ALIGNMENT), 0);
    Ok(())
}

/// What lies at one offset of a segment.
enum FrameAt<'a> {
    /// A whole frame with a matching checksum; the next frame starts at `next`.
    Valid { body: &'a [u8], next: usize },
    /// A zero header: the end of what was written, if only zeros follow.
    Zero,
    /// Anything else.
    Bad(String),
}

fn frame_at(bytes: &[u8], offset: usize) -> FrameAt<'_> {
    let Some(header) = bytes.get(offset..offset + FRAME_HEADER_BYTES) else {
        return FrameAt::Bad("the segment ends inside a record header".to_string());
    };
    let length_bytes = [header[0], header[1], header[2], header[3]];
    let stored = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let length = u32::from_le_bytes(length_bytes);
    if length == 0 {
        return if stored == 0 {
            FrameAt::Zero
        } else {
            FrameAt::Bad("a zero length with a nonzero checksum".to_string())
        };
    }
    let start = offset + FRAME_HEADER_BYTES;
    let Some(body) =
        usize::try_from(length).ok().and_then(|length| bytes.get(start..start + length))
    else {
        return FrameAt::Bad(format!("a length of {length} bytes runs past the segment's end"));
    };
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&length_bytes);
    hasher.update(body);
    let computed = hasher.finalize();
    if computed != stored {
        return FrameAt::Bad(format!(
            "checksum mismatch: the record says {stored:#010x}, its {length} bytes give \
             {computed:#010x}"
        ));
    }
    FrameAt::Valid { body, next: (start + body.len()).next_multiple_of(ALIGNMENT) }
}

/// The offset of the first valid frame at or after `from`, if any (slow: damage only).
fn valid_frame_from(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(FRAME_HEADER_BYTES))
        .step_by(ALIGNMENT)
        .find(|&offset| matches!(frame_at(bytes, offset), FrameAt::Valid { .. }))
}

/// Which segment of the log is being scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Position {
    /// Every later segment was made after this one's last write was synced: it must be
    /// whole.
    Sealed,
    /// The newest segment: its last write may have been cut short by a crash.
    Last,
}

/// The frames of a segment, and where its written part ends.
#[derive(Debug)]
pub(crate) struct Scanned<'a> {
    /// Each frame's offset and body, in order.
    pub(crate) frames: Vec<(u64, &'a [u8])>,
    /// Where the next frame goes.
    pub(crate) end: u64,
    /// A torn last write found at `end`: the bytes from `end` up to this offset are its
    /// remains (to be zeroed before the segment is written again).
    pub(crate) torn_until: Option<u64>,
}

/// Reads the frames of a whole segment (`bytes`, header included) at `path`.
///
/// A frame that is not whole and valid ends the log only when it is the newest segment's
/// last write: nothing valid may follow it. Anywhere else it is damage, reported with the
/// segment and the offset ([`Error::CorruptFrame`]); acknowledged records are never
/// dropped silently.
pub(crate) fn scan<'a>(
    path: &Path,
    bytes: &'a [u8],
    position: Position,
) -> Result<Scanned<'a>, Error> {
    check_header(path, bytes)?;
    let mut frames = Vec::new();
    let mut offset = HEADER_BYTES as usize;
    let problem = loop {
        if offset >= bytes.len() {
            break None;
        }
        match frame_at(bytes, offset) {
            FrameAt::Valid { body, next } => {
                frames.push((offset as u64, body));
                offset = next;
            }
            FrameAt::Zero if bytes[offset..].iter().all(|byte| *byte == 0) => break None,
            FrameAt::Zero => break Some("a zero record header followed by data".to_string()),
            FrameAt::Bad(reason) => break Some(reason),
        }
    };
    let end = offset as u64;
    let Some(reason) = problem else {
        return Ok(Scanned { frames, end, torn_until: None });
    };
    let corrupt =
        |reason: String| Error::CorruptFrame { path: path.to_path_buf(), offset: end, reason };
    if let Some(later) = valid_frame_from(bytes, offset + ALIGNMENT) {
        return Err(corrupt(format!(
            "{reason}; a valid record follows at offset {later}, so this is damage, not a \
             write cut short"
        )));
    }
    if position == Position::Sealed {
        return Err(corrupt(format!("{reason}, in a segment that later segments follow")));
    }
    let last_nonzero = bytes.iter().rposition(|byte| *byte != 0).map_or(offset, |at| at + 1);
    Ok(Scanned { frames, end, torn_until: Some(last_nonzero.max(offset) as u64) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(bodies: &[&[u8]], size: usize) -> Vec<u8> {
        let path = Path::new("test.wal");
        let mut bytes = header().to_vec();
        for body in bodies {
            push_frame(path, &mut bytes, body).unwrap();
        }
        bytes.resize(size, 0);
        bytes
    }

    #[test]
    fn frames_are_read_back_in_order_up_to_the_zeros() {
        let bytes = segment(&[b"one", b"second frame", b"3"], 256);
        let scanned = scan(Path::new("s"), &bytes, Position::Sealed).unwrap();
        let bodies: Vec<&[u8]> = scanned.frames.iter().map(|(_, body)| *body).collect();
        assert_eq!(bodies, vec![&b"one"[..], b"second frame", b"3"]);
        assert_eq!(scanned.end % 8, 0);
        assert!(scanned.torn_until.is_none());
    }

    #[test]
    fn a_cut_last_frame_is_a_torn_tail_only_in_the_last_segment() {
        let mut bytes = segment(&[b"one", b"a frame that gets cut short"], 256);
        let second = scan(Path::new("s"), &bytes, Position::Last).unwrap().frames[1].0 as usize;
        // The write reached the header and part of the body only.
        bytes[second + 12..second + 40].fill(0);
        let scanned = scan(Path::new("s"), &bytes, Position::Last).unwrap();
        assert_eq!(scanned.frames.len(), 1);
        assert_eq!(scanned.end, second as u64);
        assert!(scanned.torn_until.is_some());
        let error = scan(Path::new("s"), &bytes, Position::Sealed).unwrap_err();
        assert!(matches!(error, Error::CorruptFrame { offset, .. } if offset == second as u64));
    }

    #[test]
    fn a_bad_frame_before_a_valid_one_is_damage_with_its_offset() {
        let mut bytes = segment(&[b"one", b"two", b"three"], 256);
        let second = scan(Path::new("s"), &bytes, Position::Last).unwrap().frames[1].0 as usize;
        bytes[second + 9] ^= 0x10;
        let error = scan(Path::new("seg"), &bytes, Position::Last).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, Error::CorruptFrame { offset, .. } if offset == second as u64));
        assert!(text.contains("seg") && text.contains("checksum"), "{text}");
    }

    #[test]
    fn a_file_without_the_magic_is_foreign() {
        let error = scan(Path::new("s"), b"not a segment at all", Position::Last).unwrap_err();
        assert!(matches!(error, Error::ForeignFile { .. }), "{error}");
    }
}
