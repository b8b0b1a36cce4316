//! The simulated application: a log-shaped state machine whose whole state is how many
//! commands it applied and a running hash of them, so two states compare in constant time and a
//! snapshot is a few bytes.

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, LogIndex};

/// The state after applying some prefix of the log: the commands applied and a running hash
/// over them, in order. Membership and empty entries are Raft's, not the application's, so
/// they leave it unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StateDigest {
    /// How many commands were applied.
    pub commands: u64,
    /// A running FNV-1a hash over each command's length and bytes.
    pub hash: u64,
}

impl StateDigest {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// The state of an application that applied nothing.
    pub const EMPTY: StateDigest = StateDigest { commands: 0, hash: StateDigest::OFFSET };

    /// The state after also applying `entry`.
    #[must_use]
    pub fn after(self, entry: &Entry) -> StateDigest {
        let EntryPayload::Command(command) = &entry.payload else {
            return self;
        };
        let mut hash = self.hash;
        // The length goes first, so that two commands never hash like their concatenation.
        for byte in (command.len() as u64).to_le_bytes().iter().chain(command.iter()) {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(StateDigest::PRIME);
        }
        StateDigest { commands: self.commands + 1, hash }
    }
}

/// One node's application: the last index it applied and its state there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateMachine {
    /// The last index applied (or restored from a snapshot).
    pub applied_index: LogIndex,
    /// The state at `applied_index`.
    pub digest: StateDigest,
}

/// Bytes in an encoded snapshot: the applied index, the command count and the hash.
pub(crate) const SNAPSHOT_BYTES: usize = 24;

impl StateMachine {
    /// An application that applied nothing.
    pub const EMPTY: StateMachine =
        StateMachine { applied_index: LogIndex::ZERO, digest: StateDigest::EMPTY };

    /// Applies `entry`, which must be the next index.
    ///
    /// # Panics
    ///
    /// If `entry` is not at the index after `applied_index`: the driver skipped or repeated
    /// an entry.
    pub(crate) fn apply(&mut self, entry: &Entry) {
        assert_eq!(
            entry.log_id.index,
            self.applied_index.next(),
            "the application applies indices in order"
        );
        self.applied_index = entry.log_id.index;
        self.digest = self.digest.after(entry);
    }

    /// The application's state as snapshot bytes.
    pub(crate) fn encode(&self) -> Bytes {
        let mut bytes = Vec::with_capacity(SNAPSHOT_BYTES);
        bytes.extend_from_slice(&self.applied_index.0.to_le_bytes());
        bytes.extend_from_slice(&self.digest.commands.to_le_bytes());
        bytes.extend_from_slice(&self.digest.hash.to_le_bytes());
        Bytes::from(bytes)
    }

    /// The application restored from snapshot bytes, or `None` if they are not a snapshot
    /// [`StateMachine::encode`] wrote (a transfer that corrupted or truncated them).
    pub(crate) fn decode(bytes: &[u8]) -> Option<StateMachine> {
        if bytes.len() != SNAPSHOT_BYTES {
            return None;
        }
        let word = |position: usize| -> Option<u64> {
            let slice = bytes.get(position * 8..position * 8 + 8)?;
            Some(u64::from_le_bytes(slice.try_into().ok()?))
        };
        Some(StateMachine {
            applied_index: LogIndex(word(0)?),
            digest: StateDigest { commands: word(1)?, hash: word(2)? },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{LogId, Term};

    fn entry(index: u64, payload: EntryPayload) -> Entry {
        Entry { log_id: LogId::new(Term(1), LogIndex(index)), payload }
    }

    fn command(index: u64, bytes: &'static [u8]) -> Entry {
        entry(index, EntryPayload::Command(Bytes::from_static(bytes)))
    }

    #[test]
    fn only_commands_change_the_state_and_order_matters() {
        let mut first = StateMachine::EMPTY;
        first.apply(&command(1, b"a"));
        first.apply(&entry(2, EntryPayload::Empty));
        first.apply(&command(3, b"b"));
        assert_eq!(first.digest.commands, 2);
        let swapped = StateDigest::EMPTY.after(&command(1, b"b")).after(&command(2, b"a"));
        assert_ne!(first.digest, swapped);
        let joined = StateDigest::EMPTY.after(&command(1, b"ab"));
        let split = StateDigest::EMPTY.after(&command(1, b"a")).after(&command(2, b"b"));
        assert_ne!(joined.hash, split.hash);
    }

    #[test]
    fn snapshots_round_trip_and_garbage_is_refused() {
        let mut machine = StateMachine::EMPTY;
        machine.apply(&command(1, b"x"));
        assert_eq!(StateMachine::decode(&machine.encode()), Some(machine));
        assert_eq!(StateMachine::decode(&machine.encode()[..23]), None);
    }

    #[test]
    #[should_panic(expected = "applies indices in order")]
    fn skipping_an_index_is_refused() {
        let mut machine = StateMachine::EMPTY;
        machine.apply(&command(2, b"x"));
    }
}
