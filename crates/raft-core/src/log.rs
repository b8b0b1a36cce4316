//! The node's view of its log: every entry after the compacted prefix, held in memory, with
//! cursors for what has been handed out for persisting, what is durable, what is committed
//! and what has been handed out for applying.
//!
//! Keeping the tail in memory means the leader's hot path never reads the disk for entries
//! it just wrote; the snapshot threshold (a later issue) bounds how long the tail grows.

use crate::types::{Entry, LogId, LogIndex, Term};

/// The log and its cursors. Invariants (checked by `debug_check`):
/// `compacted.index <= applied_index <= commit_index <= last_index` and
/// `persisted_index < unpersisted_from <= last_index + 1`.
#[derive(Debug)]
pub(crate) struct RaftLog {
    /// The id of the last entry before `entries` (`LogId::ZERO` when nothing was compacted).
    compacted: LogId,
    /// Entries `compacted.index + 1 ..= last_index`, contiguous.
    entries: Vec<Entry>,
    /// The highest index known to be committed.
    commit_index: LogIndex,
    /// The highest index handed out for applying.
    applied_index: LogIndex,
    /// The highest index known to be durable locally (every entry up to it is stored).
    persisted_index: LogIndex,
    /// The first index not yet handed out for persisting.
    unpersisted_from: LogIndex,
    /// The sum of `Entry::size_bytes` over `entries` (drives the snapshot threshold).
    entries_bytes: u64,
}

impl RaftLog {
    /// A log restored from storage: everything in `entries` is durable.
    pub(crate) fn restored(
        compacted: LogId,
        entries: Vec<Entry>,
        commit_index: LogIndex,
        applied_index: LogIndex,
    ) -> RaftLog {
        let last_index = entries.last().map_or(compacted.index, |entry| entry.log_id.index);
        let entries_bytes = entries.iter().map(Entry::size_bytes).sum();
        let log = RaftLog {
            entries_bytes,
            compacted,
            entries,
            commit_index,
            applied_index,
            persisted_index: last_index,
            unpersisted_from: last_index.next(),
        };
        log.debug_check();
        log
    }

    fn debug_check(&self) {
        debug_assert!(self.compacted.index <= self.applied_index);
        debug_assert!(self.applied_index <= self.commit_index);
        debug_assert!(self.commit_index <= self.last_index());
        debug_assert!(self.persisted_index < self.unpersisted_from);
        debug_assert!(self.unpersisted_from <= self.last_index().next());
    }

    /// The first index held in memory (may be `last_index + 1` when the log is empty).
    pub(crate) fn first_index(&self) -> LogIndex {
        self.compacted.index.next()
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        self.entries.last().map_or(self.compacted.index, |entry| entry.log_id.index)
    }

    pub(crate) fn last_log_id(&self) -> LogId {
        self.entries.last().map_or(self.compacted, |entry| entry.log_id)
    }

    pub(crate) fn commit_index(&self) -> LogIndex {
        self.commit_index
    }

    pub(crate) fn applied_index(&self) -> LogIndex {
        self.applied_index
    }

    pub(crate) fn persisted_index(&self) -> LogIndex {
        self.persisted_index
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The id of the last entry compacted away.
    pub(crate) fn compacted(&self) -> LogId {
        self.compacted
    }

    /// The size of the entries held, as counted against byte budgets.
    pub(crate) fn entries_bytes(&self) -> u64 {
        self.entries_bytes
    }

    /// Drops the entries up to `last` (inclusive), which a snapshot now covers.
    ///
    /// # Panics
    ///
    /// If `last` is not applied or not in the log: only applied state can be snapshotted.
    pub(crate) fn compact_to(&mut self, last: LogId) {
        assert!(last.index <= self.applied_index, "only applied entries are compacted");
        assert_eq!(self.term_at(last.index), Some(last.term), "the snapshot matches the log");
        if last.index <= self.compacted.index {
            return;
        }
        let count = last.index.distance_from(self.compacted.index);
        let removed = self.entries.drain(..usize::try_from(count).unwrap_or(usize::MAX));
        self.entries_bytes -= removed.map(|entry| entry.size_bytes()).sum::<u64>();
        self.compacted = last;
        self.debug_check();
    }

    /// Replaces the log's prefix with a snapshot received from the leader. Entries after
    /// it are kept if the log holds the snapshot's last entry (they agree with the leader up
    /// to there, by Log Matching); otherwise the whole log is discarded.
    ///
    /// # Panics
    ///
    /// If the snapshot is not beyond the commit index: committed state is never replaced.
    pub(crate) fn install_snapshot(&mut self, last: LogId) {
        assert!(last.index > self.commit_index, "a snapshot never replaces committed state");
        if self.term_at(last.index) == Some(last.term) {
            let count = last.index.distance_from(self.compacted.index);
            let removed = self.entries.drain(..usize::try_from(count).unwrap_or(usize::MAX));
            self.entries_bytes -= removed.map(|entry| entry.size_bytes()).sum::<u64>();
            self.persisted_index = self.persisted_index.max(last.index);
            self.unpersisted_from = self.unpersisted_from.max(last.index.next());
        } else {
            self.entries.clear();
            self.entries_bytes = 0;
            self.persisted_index = last.index;
            // The discarded log may have run past the snapshot, and its tail may already
            // have been handed out: whatever the leader sends after the snapshot replaces
            // it and must be handed out for persisting again.
            self.unpersisted_from = last.index.next();
        }
        self.compacted = last;
        self.commit_index = last.index;
        self.applied_index = last.index;
        self.debug_check();
    }

    fn offset(&self, index: LogIndex) -> Option<usize> {
        if index < self.first_index() || index > self.last_index() {
            return None;
        }
        usize::try_from(index.distance_from(self.first_index())).ok()
    }

    /// The entry at `index`, if held in memory.
    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.offset(index).and_then(|offset| self.entries.get(offset))
    }

    /// The term of the entry at `index`: known for the compacted boundary and every entry
    /// held; `None` before the boundary or after the last entry.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.compacted.index {
            return Some(self.compacted.term);
        }
        self.entry(index).map(|entry| entry.log_id.term)
    }

    /// Whether a log ending at `other` is at least as up to date as this one (§5.4.1): a
    /// later last term wins, and with equal terms the longer log wins.
    pub(crate) fn is_up_to_date(&self, other: LogId) -> bool {
        let ours = self.last_log_id();
        (other.term, other.index) >= (ours.term, ours.index)
    }

    /// The first index of `term` at or before `index`. Terms never fall along a log, so the
    /// entries of one term are contiguous and a binary search finds the start.
    pub(crate) fn first_index_of_term(&self, term: Term) -> LogIndex {
        let position = self.entries.partition_point(|entry| entry.log_id.term < term);
        self.first_index().plus(position as u64)
    }

    /// The last index holding an entry of `term`, if this log holds any.
    pub(crate) fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        let position = self.entries.partition_point(|entry| entry.log_id.term <= term);
        let last = position.checked_sub(1)?;
        let entry = self.entries.get(last)?;
        (entry.log_id.term == term).then_some(entry.log_id.index)
    }

    /// Entries from `from` onward, at least one (when any) and then no more than
    /// `bytes_max` bytes in total.
    pub(crate) fn entries_from(&self, from: LogIndex, bytes_max: u64) -> Vec<Entry> {
        let Some(start) = self.offset(from) else {
            return Vec::new();
        };
        let mut bytes = 0;
        let mut batch = Vec::new();
        for entry in &self.entries[start..] {
            bytes += entry.size_bytes();
            if !batch.is_empty() && bytes > bytes_max {
                break;
            }
            batch.push(entry.clone());
        }
        batch
    }

    /// Appends one entry, which must directly follow the last.
    pub(crate) fn append(&mut self, entry: Entry) {
        assert_eq!(entry.log_id.index, self.last_index().next(), "appended entries are contiguous");
        assert!(entry.log_id.term >= self.last_log_id().term, "terms never fall along the log");
        self.entries_bytes += entry.size_bytes();
        self.entries.push(entry);
    }

    /// Removes every entry from `from` onward.
    ///
    /// # Panics
    ///
    /// If `from` is committed: committed entries are never truncated.
    pub(crate) fn truncate_from(&mut self, from: LogIndex) {
        assert!(from > self.commit_index, "committed entries are never truncated");
        let Some(offset) = self.offset(from) else {
            return;
        };
        let removed = self.entries.drain(offset..);
        self.entries_bytes -= removed.map(|entry| entry.size_bytes()).sum::<u64>();
        // The stored log will be overwritten from `from`; until that write is durable only
        // the entries before it are known to be stored.
        self.unpersisted_from = self.unpersisted_from.min(from);
        if let Some(before) = from.prev() {
            self.persisted_index = self.persisted_index.min(before);
        }
        self.debug_check();
    }

    /// Raises the commit index.
    ///
    /// # Panics
    ///
    /// If `index` is past the last entry.
    pub(crate) fn commit_to(&mut self, index: LogIndex) -> bool {
        if index <= self.commit_index {
            return false;
        }
        assert!(index <= self.last_index(), "only entries in the log can be committed");
        self.commit_index = index;
        true
    }

    /// Hands out the entries not yet handed out for persisting.
    pub(crate) fn take_unpersisted(&mut self) -> Vec<Entry> {
        let Some(start) = self.offset(self.unpersisted_from) else {
            return Vec::new();
        };
        let batch = self.entries[start..].to_vec();
        self.unpersisted_from = self.last_index().next();
        batch
    }

    pub(crate) fn has_unpersisted(&self) -> bool {
        self.unpersisted_from <= self.last_index()
    }

    /// Records that the driver made every entry up to `last` durable. Ignored when the entry
    /// has since been replaced (a newer truncation is still on its way to disk) or when
    /// `last` was not handed out.
    pub(crate) fn on_persisted(&mut self, last: LogId) -> bool {
        if last.index <= self.persisted_index || last.index >= self.unpersisted_from {
            return false;
        }
        if self.term_at(last.index) != Some(last.term) {
            return false;
        }
        self.persisted_index = last.index;
        self.debug_check();
        true
    }

    /// The last index that may be applied: committed, and handed out for persisting here.
    ///
    /// A committed entry is durable on a majority, so it may be applied before this node's
    /// own write of it is durable: a leader commits on its followers' acknowledgements
    /// alone while its own disk is busy (storing a snapshot, say), and its proposers get
    /// their answers meanwhile. It must have been handed out, though, so that nothing made
    /// durable here from applied state (a snapshot, written in the order the writes were
    /// handed out) can reach the disk before the entries it covers.
    fn applicable_index(&self) -> LogIndex {
        let handed_out = LogIndex(self.unpersisted_from.0.saturating_sub(1));
        self.commit_index.min(handed_out)
    }

    pub(crate) fn has_committed_to_apply(&self) -> bool {
        self.applicable_index() > self.applied_index
    }

    /// Hands out committed entries not yet handed out for applying.
    pub(crate) fn take_committed(&mut self) -> Vec<Entry> {
        let until = self.applicable_index();
        if until <= self.applied_index {
            return Vec::new();
        }
        let (Some(start), Some(end)) = (self.offset(self.applied_index.next()), self.offset(until))
        else {
            return Vec::new();
        };
        let batch = self.entries[start..=end].to_vec();
        self.applied_index = until;
        self.debug_check();
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EntryPayload;

    fn entry(term: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(Term(term), LogIndex(index)), payload: EntryPayload::Empty }
    }

    fn log_with_terms(terms: &[u64]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(position, &term)| entry(term, position as u64 + 1))
            .collect();
        RaftLog::restored(LogId::ZERO, entries, LogIndex::ZERO, LogIndex::ZERO)
    }

    #[test]
    fn term_lookup_covers_boundary_and_tail() {
        let log = log_with_terms(&[1, 1, 2]);
        assert_eq!(log.term_at(LogIndex(0)), Some(Term(0)));
        assert_eq!(log.term_at(LogIndex(3)), Some(Term(2)));
        assert_eq!(log.term_at(LogIndex(4)), None);
    }

    #[test]
    fn first_and_last_index_of_term_find_term_boundaries() {
        let log = log_with_terms(&[1, 1, 3, 3, 3, 5]);
        assert_eq!(log.first_index_of_term(Term(3)), LogIndex(3));
        assert_eq!(log.last_index_of_term(Term(3)), Some(LogIndex(5)));
        assert_eq!(log.last_index_of_term(Term(2)), None);
        assert_eq!(log.last_index_of_term(Term(5)), Some(LogIndex(6)));
    }

    #[test]
    fn entries_from_respects_byte_budget_but_sends_at_least_one() {
        let log = log_with_terms(&[1, 1, 1, 1]);
        let one = Entry::OVERHEAD_BYTES;
        assert_eq!(log.entries_from(LogIndex(1), 1).len(), 1);
        assert_eq!(log.entries_from(LogIndex(1), 2 * one).len(), 2);
        assert_eq!(log.entries_from(LogIndex(3), 100 * one).len(), 2);
        assert!(log.entries_from(LogIndex(5), 100 * one).is_empty());
    }

    #[test]
    fn truncation_lowers_persisted_cursor() {
        let mut log = log_with_terms(&[1, 1, 1]);
        log.truncate_from(LogIndex(2));
        assert_eq!(log.persisted_index(), LogIndex(1));
        log.append(entry(2, 2));
        assert_eq!(log.take_unpersisted(), vec![entry(2, 2)]);
        // An acknowledgement of the replaced entry must not count.
        assert!(!log.on_persisted(LogId::new(Term(1), LogIndex(2))));
        assert!(log.on_persisted(LogId::new(Term(2), LogIndex(2))));
        assert_eq!(log.persisted_index(), LogIndex(2));
    }

    #[test]
    fn a_snapshot_that_discards_a_longer_log_hands_out_what_follows_it_again() {
        let mut log = log_with_terms(&[1, 1, 1, 1, 1]);
        log.install_snapshot(LogId::new(Term(2), LogIndex(3)));
        assert_eq!(log.last_index(), LogIndex(3));
        assert_eq!(log.persisted_index(), LogIndex(3));
        log.append(entry(2, 4));
        log.append(entry(2, 5));
        // Entries 4 and 5 replace the discarded ones and were never handed out.
        assert_eq!(log.take_unpersisted(), vec![entry(2, 4), entry(2, 5)]);
        assert!(!log.on_persisted(LogId::new(Term(1), LogIndex(5))));
        assert!(log.on_persisted(LogId::new(Term(2), LogIndex(5))));
    }

    #[test]
    fn a_snapshot_matching_the_log_keeps_the_suffix_and_its_cursors() {
        let mut log = log_with_terms(&[1, 1, 1, 1, 1]);
        log.install_snapshot(LogId::new(Term(1), LogIndex(3)));
        assert_eq!(log.last_index(), LogIndex(5));
        assert_eq!(log.first_index(), LogIndex(4));
        assert!(log.take_unpersisted().is_empty());
    }

    #[test]
    #[should_panic(expected = "committed entries are never truncated")]
    fn truncating_committed_entries_panics() {
        let mut log = log_with_terms(&[1, 1, 1]);
        log.commit_to(LogIndex(2));
        log.truncate_from(LogIndex(2));
    }

    #[test]
    fn committed_entries_apply_once_handed_out_for_persisting_not_once_durable() {
        let mut log = log_with_terms(&[1]);
        log.append(entry(1, 2));
        log.commit_to(LogIndex(2));
        assert_eq!(log.take_committed(), vec![entry(1, 1)]);
        assert!(!log.has_committed_to_apply(), "entry 2 is not handed out yet");
        assert_eq!(log.take_unpersisted(), vec![entry(1, 2)]);
        assert!(log.has_committed_to_apply());
        assert_eq!(log.take_committed(), vec![entry(1, 2)]);
        assert_eq!(log.persisted_index(), LogIndex(1), "applied before its write is durable");
        assert!(log.on_persisted(LogId::new(Term(1), LogIndex(2))));
        assert!(!log.has_committed_to_apply());
    }
}
