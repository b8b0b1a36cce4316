//! Reads of the MVCC state: ranges at the current or a past revision, the history of
//! changes for watchers, and leases.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;

use bytes::Bytes;

use crate::mvcc::{Event, LeaseInfo, RangeRequest, RangeResponse, SortOrder, SortTarget};
use crate::range::KeyRange;
use crate::response::{KeyMeta, KeyValue, Rejection};
use crate::store::{KvStore, Record};

impl KvStore {
    /// The store's revision: 1 when empty, one more for each applied write that changed
    /// keys.
    #[must_use]
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The revision the history starts at: reads at earlier revisions and watches from
    /// them are refused with [`Rejection::Compacted`]. 0 until the first compaction.
    #[must_use]
    pub fn compact_revision(&self) -> u64 {
        self.compact_revision
    }

    /// Reads a key range at the current revision or, with `request.revision`, at a past
    /// one, with etcd's limit, sorting and filters (see [`RangeRequest`]).
    ///
    /// A read at a past revision undoes the newer history for the keys it reads: it costs
    /// a scan of the events after that revision plus the keys read.
    ///
    /// # Errors
    ///
    /// [`Rejection::FutureRevision`] when `request.revision` is above the store's
    /// revision; [`Rejection::Compacted`] when it is below the compact revision (a read at
    /// the compact revision itself still works, as in etcd).
    pub fn range_at(&self, request: &RangeRequest) -> Result<RangeResponse, Rejection> {
        let revision = self.readable_revision(request.revision)?;
        Ok(self.range_view(request, revision))
    }

    /// The changes to keys in `range` at `start_revision` and later, in revision order
    /// (within a revision, in the order applied), with each key's previous state.
    ///
    /// At most `limit` events, except that a revision's events are never split between
    /// calls: the events of a revision that would pass the limit are left for the next
    /// call, and when the first revision found alone holds more than `limit`, all of its
    /// events are returned. So a caller resumes at the last event's revision plus one and
    /// never misses an event. An empty answer means no event touched `range` from
    /// `start_revision` to [`KvStore::revision`]: read both in one
    /// [`SharedKvStore::with_read`](crate::SharedKvStore::with_read) to know where to
    /// resume.
    ///
    /// # Errors
    ///
    /// [`Rejection::Compacted`] when `start_revision` is below the compact revision (etcd's
    /// watch rule: `start_revision < compact_revision`; the history keeps the events at
    /// the compact revision itself, so a watch from it misses nothing).
    pub fn events_since(
        &self,
        range: &KeyRange,
        start_revision: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Rejection> {
        if start_revision < self.compact_revision {
            return Err(Rejection::Compacted {
                requested: start_revision,
                compacted: self.compact_revision,
            });
        }
        let mut events = Vec::new();
        let mut revision_events = Vec::new();
        let mut current_revision = None;
        for event in self.history.since(start_revision) {
            if current_revision != Some(event.revision()) {
                if !take_revision(&mut events, &mut revision_events, limit) {
                    return Ok(events);
                }
                current_revision = Some(event.revision());
            }
            if range.contains(&event.kv.key) {
                revision_events.push(event.clone());
            }
        }
        take_revision(&mut events, &mut revision_events, limit);
        Ok(events)
    }

    /// Lease `id` with its keys, or `None` when it does not exist.
    #[must_use]
    pub fn lease(&self, id: i64) -> Option<LeaseInfo> {
        self.leases.info(id)
    }

    /// Every lease in id order. Their `keys` are left empty, so that listing stays cheap
    /// however many keys are attached; ask [`KvStore::lease`] for one lease's keys.
    #[must_use]
    pub fn leases(&self) -> Vec<LeaseInfo> {
        self.leases.list()
    }

    /// How many leases the store holds.
    #[must_use]
    pub fn lease_count(&self) -> usize {
        self.leases.len()
    }

    /// How many events the history holds.
    #[must_use]
    pub fn history_event_count(&self) -> usize {
        self.history.len()
    }

    /// The revision a read of `requested` sees (0: the current one), or why it cannot.
    pub(crate) fn readable_revision(&self, requested: u64) -> Result<u64, Rejection> {
        if requested == 0 {
            return Ok(self.revision);
        }
        if requested > self.revision {
            return Err(Rejection::FutureRevision { requested, current: self.revision });
        }
        if requested < self.compact_revision {
            return Err(Rejection::Compacted { requested, compacted: self.compact_revision });
        }
        Ok(requested)
    }

    /// Answers `request` with the keys as they stood at `revision` (every event after it
    /// undone); `request.revision` is ignored. Within a transaction, the revision being
    /// written is "now": its own writes are seen.
    pub(crate) fn range_view(&self, request: &RangeRequest, revision: u64) -> RangeResponse {
        let limit_max = self.config.range_entries_max;
        let limit = if request.limit == 0 { limit_max } else { request.limit.min(limit_max) };
        let order = effective_order(request.sort_order, request.sort_target);
        let mut kvs = Vec::new();
        let mut count = 0_u64;
        self.visit_at(&request.range, revision, |key, value, meta| {
            count += 1;
            if request.count_only || !passes_filters(request, meta) {
                return;
            }
            // Unsorted, one past the limit tells whether there are more.
            if order != SortOrder::None || (kvs.len() as u64) <= limit {
                kvs.push(KeyValue { key: key.clone(), value: value.clone(), meta: *meta });
            }
        });
        sort(&mut kvs, order, request.sort_target);
        let more = kvs.len() as u64 > limit;
        kvs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        if request.keys_only {
            for kv in &mut kvs {
                kv.value = Bytes::new();
            }
        }
        RangeResponse { kvs, more, count }
    }

    /// The map's records in `range`, in key order.
    pub(crate) fn map_range<'a>(
        &'a self,
        range: &'a KeyRange,
    ) -> impl Iterator<Item = (&'a Bytes, &'a Record)> + 'a {
        range.bounds().into_iter().flat_map(|bounds| self.map.range(bounds))
    }

    /// Calls `visit` with every key of `range` as it stood at `revision`, in key order.
    fn visit_at(
        &self,
        range: &KeyRange,
        revision: u64,
        mut visit: impl FnMut(&Bytes, &Bytes, &KeyMeta),
    ) {
        // What each key read held at `revision`, for the keys changed since: the previous
        // state of the oldest newer event. Walking newest first, the oldest writes last.
        let mut undone: BTreeMap<&Bytes, Option<&KeyValue>> = BTreeMap::new();
        for event in self.history.after(revision).rev() {
            if range.contains(&event.kv.key) {
                undone.insert(&event.kv.key, event.prev_kv.as_ref());
            }
        }
        let mut current = self.map_range(range).peekable();
        let mut undone = undone.into_iter().peekable();
        while let Some(next) = next_of_merge(&mut current, &mut undone) {
            match next {
                Merged::Current(key, record) => visit(key, &record.value, &record.meta),
                Merged::Undone(Some(kv)) => visit(&kv.key, &kv.value, &kv.meta),
                Merged::Undone(None) => {}
            }
        }
    }
}

/// The next key of a merge of the current map and the undone changes, which win.
enum Merged<'a> {
    /// A key unchanged since the revision read.
    Current(&'a Bytes, &'a Record),
    /// A key changed since: what it held then (`None`: it did not exist).
    Undone(Option<&'a KeyValue>),
}

fn next_of_merge<'a>(
    current: &mut Peekable<impl Iterator<Item = (&'a Bytes, &'a Record)>>,
    undone: &mut Peekable<impl Iterator<Item = (&'a Bytes, Option<&'a KeyValue>)>>,
) -> Option<Merged<'a>> {
    let order = match (current.peek(), undone.peek()) {
        (None, None) => return None,
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some((current_key, _)), Some((undone_key, _))) => current_key.cmp(undone_key),
    };
    if order == Ordering::Less {
        return current.next().map(|(key, record)| Merged::Current(key, record));
    }
    if order == Ordering::Equal {
        current.next();
    }
    undone.next().map(|(_, then)| Merged::Undone(then))
}

/// Moves one revision's events into the answer if they fit; returns whether to go on.
fn take_revision(events: &mut Vec<Event>, revision_events: &mut Vec<Event>, limit: usize) -> bool {
    if revision_events.is_empty() {
        return true;
    }
    if !events.is_empty() && events.len() + revision_events.len() > limit {
        return false;
    }
    events.append(revision_events);
    events.len() < limit
}

/// etcd's sorting defaults: a target other than the key sorts ascending when no order is
/// given, and the key ascending is the order keys come in already.
fn effective_order(order: SortOrder, target: SortTarget) -> SortOrder {
    match (target, order) {
        (SortTarget::Key, SortOrder::Ascend) => SortOrder::None,
        (SortTarget::Key, order) => order,
        (_, SortOrder::None) => SortOrder::Ascend,
        (_, order) => order,
    }
}

/// Sorts by `target` in `order`; stable, so keys that tie stay in key order (etcd's sort
/// leaves ties unspecified).
fn sort(kvs: &mut [KeyValue], order: SortOrder, target: SortTarget) {
    let by_target = |left: &KeyValue, right: &KeyValue| match target {
        SortTarget::Key => left.key.cmp(&right.key),
        SortTarget::Version => left.meta.version.cmp(&right.meta.version),
        SortTarget::Create => left.meta.create_revision.cmp(&right.meta.create_revision),
        SortTarget::Mod => left.meta.mod_revision.cmp(&right.meta.mod_revision),
        SortTarget::Value => left.value.cmp(&right.value),
    };
    match order {
        SortOrder::None => {}
        SortOrder::Ascend => kvs.sort_by(by_target),
        SortOrder::Descend => kvs.sort_by(|left, right| by_target(right, left)),
    }
}

/// Whether a key passes the request's mod and create revision bounds (0: no bound).
fn passes_filters(request: &RangeRequest, meta: &KeyMeta) -> bool {
    let above = |value: u64, bound: u64| bound != 0 && value > bound;
    let below = |value: u64, bound: u64| bound != 0 && value < bound;
    !(above(meta.mod_revision, request.max_mod_revision)
        || below(meta.mod_revision, request.min_mod_revision)
        || above(meta.create_revision, request.max_create_revision)
        || below(meta.create_revision, request.min_create_revision))
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
