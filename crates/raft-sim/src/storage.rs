//! The simulated disk: what survives a crash, and the writes still on their way to it.

use raft_core::{Entry, HardState, LogId, LogIndex, Message};

/// What one node has durably stored: the hard state and the log. It survives crashes; only
/// completed writes reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableStore {
    hard_state: HardState,
    /// The log from index 1 on (the simulator never compacts).
    entries: Vec<Entry>,
}

impl DurableStore {
    /// The stored hard state.
    #[must_use]
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The stored log, from index 1 on.
    #[must_use]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The stored entry at `index`, if any.
    #[must_use]
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let position = usize::try_from(index.0.checked_sub(1)?).ok()?;
        self.entries.get(position)
    }

    /// The id of the last stored entry (`LogId::ZERO` for an empty log).
    #[must_use]
    pub fn last_log_id(&self) -> LogId {
        self.entries.last().map_or(LogId::ZERO, |entry| entry.log_id)
    }

    /// Makes `write` durable: the hard state replaces the stored one, and the entries
    /// overwrite the stored log from the first one's index on.
    ///
    /// # Panics
    ///
    /// If the entries would leave a hole after the stored log, or are not contiguous: the
    /// node handed out a write its driver cannot perform.
    pub(crate) fn apply(&mut self, write: &PendingWrite) {
        if let Some(hard_state) = write.hard_state {
            self.hard_state = hard_state;
        }
        let Some(first) = write.entries.first() else {
            return;
        };
        let kept = first.log_id.index.0 - 1;
        assert!(
            kept <= self.entries.len() as u64,
            "a write starting at entry {} leaves a hole after the stored log ending at {}",
            first.log_id,
            self.last_log_id()
        );
        self.entries.truncate(kept as usize);
        for entry in &write.entries {
            let expected = self.last_log_id().index.next();
            assert_eq!(entry.log_id.index, expected, "a write's entries are contiguous");
            self.entries.push(entry.clone());
        }
    }
}

/// A write handed to the disk but not yet durable, with the messages that must wait for it.
#[derive(Debug)]
pub(crate) struct PendingWrite {
    pub(crate) hard_state: Option<HardState>,
    pub(crate) entries: Vec<Entry>,
    /// Messages that promise this write (and every earlier one) is durable.
    pub(crate) messages_after_persist: Vec<Message>,
    /// When the write becomes durable.
    pub(crate) done_at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{EntryPayload, Term};

    fn entry(term: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(Term(term), LogIndex(index)), payload: EntryPayload::Empty }
    }

    fn write(entries: Vec<Entry>) -> PendingWrite {
        PendingWrite {
            hard_state: None,
            entries,
            messages_after_persist: Vec::new(),
            done_at_ms: 0,
        }
    }

    #[test]
    fn a_write_overwrites_the_log_from_its_first_entry() {
        let mut store = DurableStore::default();
        store.apply(&write(vec![entry(1, 1), entry(1, 2), entry(1, 3)]));
        store.apply(&write(vec![entry(2, 2)]));
        let ids: Vec<LogId> = store.entries().iter().map(|entry| entry.log_id).collect();
        assert_eq!(ids, vec![entry(1, 1).log_id, entry(2, 2).log_id]);
        assert_eq!(store.entry(LogIndex(2)), Some(&entry(2, 2)));
        assert_eq!(store.entry(LogIndex(3)), None);
        assert_eq!(store.entry(LogIndex(0)), None);
    }

    #[test]
    #[should_panic(expected = "leaves a hole")]
    fn a_write_past_the_end_is_refused() {
        let mut store = DurableStore::default();
        store.apply(&write(vec![entry(1, 2)]));
    }
}
