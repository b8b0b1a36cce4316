//! What the store keeps of its log in memory: the term of every entry (as runs of equal
//! terms) and the most recent entries (the tail), so replication reads of what was just
//! written never touch the disk.

use std::collections::VecDeque;

use raft_core::{Entry, LogId, LogIndex, Term};

/// The durable log's shape and recent tail, updated after each durable write.
#[derive(Debug)]
pub(crate) struct LogView {
    /// The last entry the snapshot covers (`LogId::ZERO` without one).
    pub(crate) compacted: LogId,
    /// The last stored entry (`compacted` when the log is empty).
    pub(crate) last: LogId,
    /// Where each term starts: `(first index, term)`, ascending, covering
    /// `compacted.index + 1 ..= last.index`. Terms change rarely, so this stays short.
    term_runs: Vec<(LogIndex, Term)>,
    /// The newest durable entries, contiguous and ending at `last`.
    tail: VecDeque<Entry>,
    tail_bytes: u64,
    tail_bytes_max: u64,
}

impl LogView {
    /// A view of an empty log after `compacted`.
    pub(crate) fn new(compacted: LogId, tail_bytes_max: u64) -> LogView {
        LogView {
            compacted,
            last: compacted,
            term_runs: Vec::new(),
            tail: VecDeque::new(),
            tail_bytes: 0,
            tail_bytes_max,
        }
    }

    /// The index of the first stored entry (which may not exist yet).
    pub(crate) fn first_index(&self) -> LogIndex {
        self.compacted.index.next()
    }

    /// Notes an entry's log id while the log is read at open; ids arrive in order.
    pub(crate) fn push_log_id(&mut self, log_id: LogId) {
        debug_assert_eq!(log_id.index, self.last.index.next(), "entries arrive in order");
        if self.term_runs.last().is_none_or(|&(_, term)| term != log_id.term) {
            self.term_runs.push((log_id.index, log_id.term));
        }
        self.last = log_id;
    }

    /// The term of the entry at `index`: the snapshot's last entry or a stored one.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.compacted.index {
            return Some(self.compacted.term);
        }
        if index < self.first_index() || index > self.last.index {
            return None;
        }
        let run = self.term_runs.partition_point(|&(start, _)| start <= index);
        run.checked_sub(1).and_then(|run| self.term_runs.get(run)).map(|&(_, term)| term)
    }

    /// Removes every entry at or after `index` (a conflicting suffix being overwritten).
    pub(crate) fn truncate_from(&mut self, index: LogIndex) {
        if index > self.last.index {
            return;
        }
        let Some(previous) = index.prev() else {
            return;
        };
        let previous_term = self.term_at(previous).unwrap_or(Term::ZERO);
        let keep = self.term_runs.partition_point(|&(start, _)| start < index);
        self.term_runs.truncate(keep);
        while self.tail.back().is_some_and(|entry| entry.log_id.index >= index) {
            if let Some(entry) = self.tail.pop_back() {
                self.tail_bytes -= entry.size_bytes();
            }
        }
        self.last = LogId::new(previous_term, previous);
    }

    /// Appends durable entries that directly follow `last`.
    pub(crate) fn append(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            assert_eq!(entry.log_id.index, self.last.index.next(), "appends are contiguous");
            self.push_log_id(entry.log_id);
            self.tail_bytes += entry.size_bytes();
            self.tail.push_back(entry);
        }
        while self.tail_bytes > self.tail_bytes_max {
            let Some(entry) = self.tail.pop_front() else {
                break;
            };
            self.tail_bytes -= entry.size_bytes();
        }
    }

    /// Forgets everything up to `snapshot`; keeps later entries when `keep_suffix`.
    pub(crate) fn compact_to(&mut self, snapshot: LogId, keep_suffix: bool) {
        if !keep_suffix {
            self.term_runs.clear();
            self.tail.clear();
            self.tail_bytes = 0;
            self.compacted = snapshot;
            self.last = snapshot;
            return;
        }
        let first = snapshot.index.next();
        let covering = self.term_runs.partition_point(|&(start, _)| start <= first);
        let drop = covering.saturating_sub(1);
        self.term_runs.drain(..drop);
        if let Some(run) = self.term_runs.first_mut() {
            run.0 = run.0.max(first);
        }
        while self.tail.front().is_some_and(|entry| entry.log_id.index <= snapshot.index) {
            if let Some(entry) = self.tail.pop_front() {
                self.tail_bytes -= entry.size_bytes();
            }
        }
        self.compacted = snapshot;
        if self.last.index <= snapshot.index {
            self.term_runs.clear();
            self.last = snapshot;
        }
    }

    /// The first index the tail holds (`None` when it is empty).
    pub(crate) fn tail_first_index(&self) -> Option<LogIndex> {
        self.tail.front().map(|entry| entry.log_id.index)
    }

    /// Clones the tail's entries from `start` up to before `end`, within `bytes_max` (at
    /// least one entry when any is in range). `start` must be in the tail.
    pub(crate) fn tail_range(&self, start: LogIndex, end: LogIndex, bytes_max: u64) -> Vec<Entry> {
        let Some(first) = self.tail_first_index() else {
            return Vec::new();
        };
        let skip = usize::try_from(start.distance_from(first)).unwrap_or(usize::MAX);
        let mut bytes = 0_u64;
        let mut entries = Vec::new();
        for entry in self.tail.iter().skip(skip).take_while(|entry| entry.log_id.index < end) {
            bytes += entry.size_bytes();
            if bytes > bytes_max && !entries.is_empty() {
                break;
            }
            entries.push(entry.clone());
        }
        entries
    }
}

#[cfg(test)]
mod tests {
    use raft_core::EntryPayload;

    use super::*;

    fn entry(term: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(Term(term), LogIndex(index)), payload: EntryPayload::Empty }
    }

    #[test]
    fn terms_follow_appends_truncations_and_compaction() {
        let mut view = LogView::new(LogId::ZERO, u64::MAX);
        view.append(vec![entry(1, 1), entry(1, 2), entry(2, 3), entry(2, 4)]);
        assert_eq!(view.term_at(LogIndex(0)), Some(Term(0)));
        assert_eq!(view.term_at(LogIndex(2)), Some(Term(1)));
        assert_eq!(view.term_at(LogIndex(4)), Some(Term(2)));
        assert_eq!(view.term_at(LogIndex(5)), None);
        view.truncate_from(LogIndex(3));
        assert_eq!(view.last, LogId::new(Term(1), LogIndex(2)));
        view.append(vec![entry(3, 3)]);
        assert_eq!(view.term_at(LogIndex(3)), Some(Term(3)));
        view.compact_to(LogId::new(Term(1), LogIndex(2)), true);
        assert_eq!(view.term_at(LogIndex(1)), None);
        assert_eq!(view.term_at(LogIndex(2)), Some(Term(1)));
        assert_eq!(view.term_at(LogIndex(3)), Some(Term(3)));
        assert_eq!(view.tail_first_index(), Some(LogIndex(3)));
    }

    #[test]
    fn tail_evicts_its_oldest_entries_past_its_byte_limit() {
        let mut view = LogView::new(LogId::ZERO, 3 * Entry::OVERHEAD_BYTES);
        view.append((1..=5).map(|index| entry(1, index)).collect());
        assert_eq!(view.tail_first_index(), Some(LogIndex(3)));
        assert_eq!(view.term_at(LogIndex(1)), Some(Term(1)));
        let range = view.tail_range(LogIndex(3), LogIndex(10), 2 * Entry::OVERHEAD_BYTES);
        assert_eq!(range, vec![entry(1, 3), entry(1, 4)]);
    }
}
