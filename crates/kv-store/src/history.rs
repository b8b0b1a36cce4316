//! The store's history: every change to a key since the compact revision, with the key's
//! previous state, in the order applied.
//!
//! One list serves both readers. A watch ([`KvStore::events_since`]) reads it forwards
//! from a revision. A read at a past revision ([`KvStore::range_at`]) takes the current map
//! and undoes, for the keys it reads, every event newer than that revision: the oldest such
//! event's previous state is what the key held then. That read costs a scan of the events
//! after its revision (a binary search finds the first) plus the keys it reads; reads at
//! the current revision cost nothing extra. Writes cost one event per changed key, which
//! shares the key and value buffers with the map (`Bytes` clones, no copies). An event
//! holds its key's previous value too, so a value overwritten or deleted stays in memory
//! until compaction drops the last event that names it.
//!
//! Compaction at revision `r` drops the events before `r`: reads at `r` and later still
//! work, and so does a watch from `r`, which needs the events at `r` itself.
//!
//! [`KvStore::events_since`]: crate::KvStore::events_since
//! [`KvStore::range_at`]: crate::KvStore::range_at

use std::collections::VecDeque;

use crate::mvcc::Event;

/// Events in revision order (within a revision, in the order applied).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct History {
    events: VecDeque<Event>,
    /// The key and value bytes the events name, to size a snapshot up front.
    bytes: u64,
}

impl History {
    /// Appends an event; its revision is at least the last one's.
    pub(crate) fn push(&mut self, event: Event) {
        debug_assert!(self.last_revision().is_none_or(|last| last <= event.revision()));
        self.bytes = self.bytes.saturating_add(event_bytes(&event));
        self.events.push_back(event);
    }

    /// Drops the events before `revision`.
    pub(crate) fn compact_to(&mut self, revision: u64) {
        while self.events.front().is_some_and(|event| event.revision() < revision) {
            if let Some(event) = self.events.pop_front() {
                self.bytes = self.bytes.saturating_sub(event_bytes(&event));
            }
        }
    }

    /// The revision of the newest event.
    pub(crate) fn last_revision(&self) -> Option<u64> {
        self.events.back().map(Event::revision)
    }

    /// The events at `revision` and later, oldest first.
    pub(crate) fn since(&self, revision: u64) -> impl DoubleEndedIterator<Item = &Event> {
        let start = self.events.partition_point(|event| event.revision() < revision);
        self.events.range(start..)
    }

    /// The events after `revision`, oldest first.
    pub(crate) fn after(&self, revision: u64) -> impl DoubleEndedIterator<Item = &Event> {
        self.since(revision.saturating_add(1))
    }

    /// Every event, oldest first.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &Event> {
        self.events.iter()
    }

    /// How many events there are.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// The key and value bytes the events name.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// What an event costs in memory besides the key and values it names: the event, its
/// metadata and its slot, roughly.
pub(crate) const EVENT_OVERHEAD_BYTES: u64 = 200;

impl History {
    /// What the history weighs: the bytes its events name plus their overhead.
    pub(crate) fn weight(&self) -> u64 {
        self.bytes.saturating_add(EVENT_OVERHEAD_BYTES.saturating_mul(self.events.len() as u64))
    }

    /// The revision to compact to so that the history weighs at most `max`, dropping the
    /// oldest revisions first; `None` when it already does. Compaction keeps whole
    /// revisions, so what is kept may exceed `max` by the events of the revision returned.
    pub(crate) fn compaction_to_fit(&self, max: u64) -> Option<u64> {
        let mut weight = self.weight();
        if weight <= max {
            return None;
        }
        for event in &self.events {
            if weight <= max {
                return Some(event.revision());
            }
            weight = weight.saturating_sub(event_bytes(event) + EVENT_OVERHEAD_BYTES);
        }
        self.last_revision()
    }
}

fn event_bytes(event: &Event) -> u64 {
    let previous = event.prev_kv.as_ref().map_or(0, |previous| previous.value.len());
    (event.kv.key.len() + event.kv.value.len() + previous) as u64
}
