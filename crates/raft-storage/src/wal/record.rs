//! What the frames hold, and the in-memory log they rebuild: the same code applies a record
//! when it is written and when it is read back at open, so the two cannot disagree.

use std::borrow::Cow;
use std::path::Path;

use raft_core::{Entry, HardState, LogId, LogIndex, Membership, Term};

use crate::error::Error;
use crate::snapshot_file::SnapshotRecord;

/// One frame's body (postcard-encoded).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum Record<'a> {
    /// The first frame of every segment: the state before it, so that older segments can
    /// be deleted once a snapshot covers their entries.
    Checkpoint(Checkpoint),
    /// One `persist` call: the hard state and entries (overwriting the log from the first).
    Write {
        /// The new hard state, if it changed.
        hard_state: Option<HardState>,
        /// Contiguous entries, none covered by the snapshot.
        entries: Cow<'a, [Entry]>,
    },
    /// A snapshot became the stored one (its file is written and synced first).
    Snapshot {
        /// What the snapshot file holds.
        record: SnapshotRecord,
        /// Whether the log after the snapshot stays (it agrees with the snapshot).
        keep_suffix: bool,
    },
}

/// The state a segment starts from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Checkpoint {
    /// The segment's sequence number (its file name), so a renamed segment shows.
    pub(crate) sequence: u64,
    /// The membership the store was created with.
    pub(crate) bootstrap: Membership,
    /// The hard state when the segment started.
    pub(crate) hard_state: HardState,
    /// The snapshot when the segment started.
    pub(crate) snapshot: Option<SnapshotRecord>,
    /// The last log entry when the segment started.
    pub(crate) last: LogId,
}

/// The durable state, as the records so far make it.
#[derive(Debug)]
pub(crate) struct LogState {
    pub(crate) bootstrap: Membership,
    pub(crate) hard_state: HardState,
    pub(crate) snapshot: Option<SnapshotRecord>,
    /// Contiguous entries ending at `last`, starting at `known_from`.
    pub(crate) entries: Vec<Entry>,
    pub(crate) last: LogId,
    /// The first index `entries` holds. Above `compacted + 1` only while replaying from a
    /// segment whose older neighbours were deleted: the entries between are unknown.
    known_from: LogIndex,
}

impl LogState {
    /// The state a checkpoint describes, with the entries before it unknown.
    pub(crate) fn from_checkpoint(checkpoint: &Checkpoint) -> LogState {
        LogState {
            bootstrap: checkpoint.bootstrap.clone(),
            hard_state: checkpoint.hard_state,
            snapshot: checkpoint.snapshot.clone(),
            entries: Vec::new(),
            last: checkpoint.last,
            known_from: checkpoint.last.index.next(),
        }
    }

    /// The checkpoint that starts segment `sequence` from this state.
    pub(crate) fn checkpoint(&self, sequence: u64) -> Checkpoint {
        Checkpoint {
            sequence,
            bootstrap: self.bootstrap.clone(),
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            last: self.last,
        }
    }

    /// The last entry the snapshot covers (`LogId::ZERO` without one).
    pub(crate) fn compacted(&self) -> LogId {
        self.snapshot.as_ref().map_or(LogId::ZERO, |record| record.meta.last_log_id)
    }

    /// The term of the entry at `index` (the snapshot's last one or a stored one).
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        let compacted = self.compacted();
        if index == compacted.index {
            return Some(compacted.term);
        }
        if index == self.last.index {
            return Some(self.last.term);
        }
        let position = usize::try_from(index.0.checked_sub(self.known_from.0)?).ok()?;
        self.entries.get(position).map(|entry| entry.log_id.term)
    }

    /// How many leading entries of a write the snapshot already covers.
    pub(crate) fn covered(&self, entries: &[Entry]) -> usize {
        let compacted = self.compacted().index;
        entries.partition_point(|entry| entry.log_id.index <= compacted)
    }

    /// Checks that `entries` (none covered by the snapshot) follow the log without a hole.
    pub(crate) fn check_follows(&self, entries: &[Entry]) -> Result<(), Error> {
        match entries.first() {
            Some(first) if first.log_id.index > self.last.index.next() => {
                Err(Error::LogHole { first_index: first.log_id.index, last_log_id: self.last })
            }
            _ => Ok(()),
        }
    }

    /// Applies a write: `entries` (none covered, checked to follow) replace the log from
    /// the first one's index.
    pub(crate) fn apply_write(&mut self, hard_state: Option<HardState>, entries: Vec<Entry>) {
        if let Some(hard_state) = hard_state {
            self.hard_state = hard_state;
        }
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return;
        };
        let first_index = first.log_id.index;
        let last_log_id = last.log_id;
        if first_index < self.known_from {
            self.entries.clear();
            self.known_from = first_index;
        } else {
            let keep = usize::try_from(first_index.distance_from(self.known_from)).unwrap_or(0);
            self.entries.truncate(keep);
        }
        self.entries.extend(entries);
        self.last = last_log_id;
    }

    /// Applies a snapshot: the log up to it goes, and the rest too unless `keep_suffix`.
    pub(crate) fn apply_snapshot(&mut self, record: SnapshotRecord, keep_suffix: bool) {
        let compacted = record.meta.last_log_id;
        let first = compacted.index.next();
        if keep_suffix && compacted.index < self.last.index {
            let drop = usize::try_from(first.0.saturating_sub(self.known_from.0)).unwrap_or(0);
            self.entries.drain(..drop.min(self.entries.len()));
            self.known_from = self.known_from.max(first);
        } else {
            self.entries.clear();
            self.known_from = first;
            self.last = compacted;
        }
        self.snapshot = Some(record);
    }

    /// Applies one record read back at open.
    pub(crate) fn replay(
        &mut self,
        path: &Path,
        offset: u64,
        record: Record<'_>,
    ) -> Result<(), Error> {
        match record {
            Record::Checkpoint(checkpoint) => {
                let expected = self.checkpoint(checkpoint.sequence);
                if checkpoint != expected {
                    return Err(Error::CorruptFrame {
                        path: path.to_path_buf(),
                        offset,
                        reason: format!(
                            "the segment's checkpoint {checkpoint:?} contradicts the state the \
                             segments before it leave, {expected:?}"
                        ),
                    });
                }
            }
            Record::Write { hard_state, entries } => {
                let entries = entries.into_owned();
                let covered = self.covered(&entries);
                let entries = entries.get(covered..).map(<[Entry]>::to_vec).unwrap_or_default();
                self.check_contiguous(path, offset, &entries)?;
                self.apply_write(hard_state, entries);
            }
            Record::Snapshot { record, keep_suffix } => {
                let last = record.meta.last_log_id;
                // The entry may be unknown (in a deleted segment); a known one must agree.
                if keep_suffix && self.term_at(last.index).is_some_and(|term| term != last.term) {
                    return Err(self.corrupt(
                        path,
                        offset,
                        "a snapshot keeps a log it contradicts",
                    ));
                }
                self.apply_snapshot(record, keep_suffix);
            }
        }
        Ok(())
    }

    fn check_contiguous(&self, path: &Path, offset: u64, entries: &[Entry]) -> Result<(), Error> {
        if self.check_follows(entries).is_err() {
            return Err(self.corrupt(path, offset, "a write leaves a hole in the log"));
        }
        let ordered =
            entries.windows(2).all(|pair| pair[1].log_id.index == pair[0].log_id.index.next());
        if !ordered {
            return Err(self.corrupt(path, offset, "a write's entries are not contiguous"));
        }
        Ok(())
    }

    fn corrupt(&self, path: &Path, offset: u64, what: &str) -> Error {
        Error::CorruptFrame {
            path: path.to_path_buf(),
            offset,
            reason: format!("{what} (last entry {}, snapshot at {})", self.last, self.compacted()),
        }
    }

    /// Checks, after the last segment, that no entry is missing between the snapshot and
    /// the first entry known: the segment that held them is gone.
    pub(crate) fn check_complete(&self, directory: &Path) -> Result<(), Error> {
        let first_needed = self.compacted().index.next();
        if self.known_from > first_needed {
            return Err(Error::MissingSegment {
                path: directory.to_path_buf(),
                reason: format!(
                    "entries {first_needed}..{} are neither in the snapshot nor in any segment",
                    self.known_from
                ),
            });
        }
        Ok(())
    }
}
