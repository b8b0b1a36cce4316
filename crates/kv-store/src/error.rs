//! The crate's error type.

use crate::response::Rejection;

/// Everything that can go wrong in `kv-store` outside of applying a command (applying is
/// total: a command that cannot be carried out yields a [`Rejection`] response instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`KvConfig`](crate::KvConfig) field is out of range.
    #[error("invalid kv-store config: {field} = {value} breaks the rule \"{rule}\"")]
    InvalidConfig {
        /// The field's name.
        field: &'static str,
        /// The value it had.
        value: u64,
        /// The rule it broke.
        rule: &'static str,
    },
    /// A command would be refused at apply; the server should answer the client instead of
    /// proposing it.
    #[error("the command would be refused: {source}")]
    CommandRefused {
        /// Why, exactly as the state machine would answer.
        #[from]
        source: Rejection,
    },
    /// A command or response could not be encoded with postcard.
    #[error("failed to encode a {what} with postcard")]
    Encode {
        /// What was being encoded ("command", "response").
        what: &'static str,
        /// The codec's error.
        #[source]
        source: postcard::Error,
    },
    /// Bytes from the network or the log are not a valid command or response.
    #[error("failed to decode a {what} of {bytes} bytes: {reason}")]
    Decode {
        /// What was being decoded ("command", "response").
        what: &'static str,
        /// The input's length.
        bytes: usize,
        /// What was wrong with it.
        reason: String,
    },
    /// A snapshot's bytes are damaged, truncated or not a kv-store snapshot; the node must
    /// fetch a good snapshot (or keep its current state) rather than start from this one.
    #[error("corrupt kv-store snapshot of {bytes} bytes at offset {offset}: {reason}")]
    CorruptSnapshot {
        /// The snapshot's length.
        bytes: usize,
        /// Where in the snapshot the problem was found.
        offset: usize,
        /// What was wrong.
        reason: String,
    },
    /// A snapshot was written by a format version this build does not read; upgrade the
    /// node to a build that reads it.
    #[error(
        "kv-store snapshot format version {found} is not supported (this build reads {supported})"
    )]
    UnsupportedSnapshotVersion {
        /// The version in the snapshot's header.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// A snapshot's contents do not match what the log says it covers.
    #[error(
        "kv-store snapshot holds state applied up to index {found} but covers index {expected}"
    )]
    SnapshotMismatch {
        /// The last applied index according to the snapshot's metadata.
        expected: u64,
        /// The last applied index recorded in the snapshot's data.
        found: u64,
    },
    /// The state is too large to snapshot in this format (more than `u32::MAX` bytes in one
    /// key, value or response).
    #[error("a {what} of {bytes} bytes is too large for the snapshot format")]
    SnapshotFieldTooLarge {
        /// What the field is.
        what: &'static str,
        /// Its length.
        bytes: usize,
    },
}

#[cfg(feature = "runtime")]
impl Error {
    /// Wraps this error for the Raft driver, saying what the state machine was doing.
    #[must_use]
    pub fn into_raft(self, operation: String) -> raft_runtime::Error {
        raft_runtime::Error::StateMachine {
            operation,
            source: raft_runtime::ErrorSource::new(self),
        }
    }
}
