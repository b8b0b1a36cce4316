//! The simulated disk: what survives a crash, and the writes still on their way to it.

use raft_core::{Entry, HardState, LogId, LogIndex, Message, Snapshot};

/// What one node has durably stored: the hard state, the latest snapshot and the log after
/// it. It survives crashes; only completed writes reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableStore {
    hard_state: HardState,
    /// The latest snapshot, when the log was ever compacted or a snapshot installed.
    snapshot: Option<Snapshot>,
    /// The log after the snapshot (from index 1 without one), contiguous.
    entries: Vec<Entry>,
}

impl DurableStore {
    /// The stored hard state.
    #[must_use]
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The stored snapshot, if any.
    #[must_use]
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The id of the last entry the stored snapshot covers (`LogId::ZERO` without one).
    #[must_use]
    pub fn snapshot_log_id(&self) -> LogId {
        self.snapshot.as_ref().map_or(LogId::ZERO, |snapshot| snapshot.meta.last_log_id)
    }

    /// The stored log after the snapshot.
    #[must_use]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The stored entry at `index`, if any (`None` for indices the snapshot covers).
    #[must_use]
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let first = self.snapshot_log_id().index.next();
        let position = usize::try_from(index.0.checked_sub(first.0)?).ok()?;
        self.entries.get(position)
    }

    /// The id of the last stored entry, or of the snapshot's last entry when no entry follows
    /// it (`LogId::ZERO` for an empty store).
    #[must_use]
    pub fn last_log_id(&self) -> LogId {
        self.entries.last().map_or(self.snapshot_log_id(), |entry| entry.log_id)
    }

    /// Whether the store holds the *committed* entry `log_id`: as an entry, or under the
    /// snapshot. Only meaningful for committed entries: a snapshot covers the committed
    /// prefix it was taken from (the checker verifies each snapshot against the committed
    /// log), so any committed entry at or below its index is in it.
    #[must_use]
    pub fn holds_committed(&self, log_id: LogId) -> bool {
        let snapshot = self.snapshot_log_id();
        if log_id.index < snapshot.index {
            return true;
        }
        if log_id.index == snapshot.index {
            return log_id == snapshot;
        }
        self.entry(log_id.index).is_some_and(|entry| entry.log_id == log_id)
    }

    /// Makes `write` durable: first its snapshot (see [`DurableStore::install_snapshot`]),
    /// then the hard state replaces the stored one and the entries overwrite the stored log
    /// from the first one's index on.
    ///
    /// # Panics
    ///
    /// If the entries would leave a hole after the stored log, or are not contiguous: the
    /// node handed out a write its driver cannot perform.
    pub(crate) fn apply(&mut self, write: &PendingWrite) {
        if let Some(snapshot) = &write.snapshot {
            self.install_snapshot(snapshot.clone());
        }
        if let Some(hard_state) = write.hard_state {
            self.hard_state = hard_state;
        }
        // Entries a snapshot already covers are skipped: only a driver that acknowledged a
        // write before it was durable (a disk that ignores sync) can compact past a write
        // still on its way, and the snapshot holds those committed entries already.
        let covered = self.snapshot_log_id().index;
        let mut entries = write.entries.iter().filter(|entry| entry.log_id.index > covered);
        let Some(first) = entries.next() else {
            return;
        };
        let kept = first.log_id.index.0 - covered.0 - 1;
        assert!(
            kept <= self.entries.len() as u64,
            "a write starting at entry {} leaves a hole after the stored log ending at {}",
            first.log_id,
            self.last_log_id()
        );
        self.entries.truncate(kept as usize);
        for entry in std::iter::once(first).chain(entries) {
            let expected = self.last_log_id().index.next();
            assert_eq!(entry.log_id.index, expected, "a write's entries are contiguous");
            self.entries.push(entry.clone());
        }
    }

    /// Replaces the stored snapshot with `snapshot` and drops the stored entries it covers,
    /// as the `Ready` contract says: later entries are kept only if the stored entry at the
    /// snapshot's last index matches it (then they agree with the log the snapshot came
    /// from); otherwise the whole stored log goes.
    ///
    /// # Panics
    ///
    /// If `snapshot` is not past the stored one: a newer snapshot is never replaced.
    pub(crate) fn install_snapshot(&mut self, snapshot: Snapshot) {
        let last = snapshot.meta.last_log_id;
        assert!(
            last.index > self.snapshot_log_id().index,
            "snapshot {last} would replace the newer stored snapshot {}",
            self.snapshot_log_id()
        );
        let matches = self.entry(last.index).is_some_and(|entry| entry.log_id == last);
        if matches {
            let count = last.index.0 - self.snapshot_log_id().index.0;
            self.entries.drain(..usize::try_from(count).unwrap_or(usize::MAX));
        } else {
            self.entries.clear();
        }
        self.snapshot = Some(snapshot);
    }
}

/// A write handed to the disk but not yet durable, with the messages that must wait for it.
#[derive(Debug)]
pub(crate) struct PendingWrite {
    /// A snapshot received from the leader, stored before the rest of the write.
    pub(crate) snapshot: Option<Snapshot>,
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
    use bytes::Bytes;
    use raft_core::{EntryPayload, Membership, SnapshotMeta, Term};

    fn entry(term: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(Term(term), LogIndex(index)), payload: EntryPayload::Empty }
    }

    fn write(entries: Vec<Entry>) -> PendingWrite {
        PendingWrite {
            snapshot: None,
            hard_state: None,
            entries,
            messages_after_persist: Vec::new(),
            done_at_ms: 0,
        }
    }

    fn snapshot(term: u64, index: u64) -> Snapshot {
        let last_log_id = LogId::new(Term(term), LogIndex(index));
        Snapshot {
            meta: SnapshotMeta { last_log_id, membership: Membership::default() },
            data: Bytes::new(),
        }
    }

    fn ids(store: &DurableStore) -> Vec<LogId> {
        store.entries().iter().map(|entry| entry.log_id).collect()
    }

    #[test]
    fn a_write_overwrites_the_log_from_its_first_entry() {
        let mut store = DurableStore::default();
        store.apply(&write(vec![entry(1, 1), entry(1, 2), entry(1, 3)]));
        store.apply(&write(vec![entry(2, 2)]));
        assert_eq!(ids(&store), vec![entry(1, 1).log_id, entry(2, 2).log_id]);
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

    #[test]
    fn a_matching_snapshot_keeps_the_entries_after_it() {
        let mut store = DurableStore::default();
        store.apply(&write(vec![entry(1, 1), entry(1, 2), entry(1, 3)]));
        store.install_snapshot(snapshot(1, 2));
        assert_eq!(ids(&store), vec![entry(1, 3).log_id]);
        assert_eq!(store.entry(LogIndex(2)), None, "covered by the snapshot");
        assert!(store.holds_committed(entry(1, 1).log_id));
        assert!(store.holds_committed(entry(1, 2).log_id));
        assert!(!store.holds_committed(entry(2, 2).log_id));
        store.apply(&write(vec![entry(2, 4)]));
        assert_eq!(store.last_log_id(), entry(2, 4).log_id);
    }

    #[test]
    fn a_conflicting_snapshot_drops_the_whole_log() {
        let mut store = DurableStore::default();
        store.apply(&write(vec![entry(1, 1), entry(1, 2), entry(1, 3)]));
        store.install_snapshot(snapshot(2, 2));
        assert!(store.entries().is_empty());
        assert_eq!(store.last_log_id(), LogId::new(Term(2), LogIndex(2)));
        let mut newer = snapshot(3, 5);
        newer.data = Bytes::from_static(b"newer");
        store.install_snapshot(newer.clone());
        assert_eq!(store.snapshot(), Some(&newer));
    }
}
