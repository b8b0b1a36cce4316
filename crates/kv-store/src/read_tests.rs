//! etcd's read semantics: ranges at past revisions with their options, watch events, and
//! the bounded history.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;

use crate::command::Write;
use crate::config::KvConfig;
use crate::mvcc::{EventKind, RangeRequest, SortOrder, SortTarget};
use crate::range::KeyRange;
use crate::response::{KeyMeta, Rejection};
use crate::test_support::{Harness, bytes, delete_op, pairs, put, success};

fn all() -> KeyRange {
    KeyRange::all()
}

/// a=1 (rev 2), b=1 (rev 3), a=2 (rev 4), delete b (rev 5), c=1 and a=3 in one txn (rev 6).
fn sequence() -> Harness {
    let mut harness = Harness::new();
    harness.put("a", "1");
    harness.put("b", "1");
    harness.put("a", "2");
    harness.delete(KeyRange::single(bytes("b")));
    harness.txn(success(vec![put("c", "1"), put("a", "3")]));
    assert_eq!(harness.store.revision(), 6);
    harness
}

// ---------------------------------------------------------------------------------------
// Ranges at past revisions

#[test]
fn a_range_at_a_past_revision_sees_the_keys_as_they_were() {
    let harness = sequence();
    assert_eq!(harness.read_at(all(), 1), pairs(&[]));
    assert_eq!(harness.read_at(all(), 2), pairs(&[("a", "1")]));
    assert_eq!(harness.read_at(all(), 3), pairs(&[("a", "1"), ("b", "1")]));
    assert_eq!(harness.read_at(all(), 4), pairs(&[("a", "2"), ("b", "1")]));
    assert_eq!(harness.read_at(all(), 5), pairs(&[("a", "2")]));
    assert_eq!(harness.read_at(all(), 6), pairs(&[("a", "3"), ("c", "1")]));
    assert_eq!(harness.read_at(all(), 0), harness.read_at(all(), 6));
    assert_eq!(harness.read_at(KeyRange::single(bytes("b")), 4), pairs(&[("b", "1")]));
}

#[test]
fn a_past_read_answers_the_metadata_the_key_had_then() {
    let harness = sequence();
    let mut request = RangeRequest::new(KeyRange::single(bytes("a")));
    request.revision = 4;
    let kv = harness.store.range_at(&request).unwrap().kvs.remove(0);
    assert_eq!((kv.meta.version, kv.meta.create_revision, kv.meta.mod_revision), (2, 2, 4));
}

#[test]
fn a_range_at_a_future_or_compacted_revision_is_refused() {
    let mut harness = sequence();
    let at = |revision| {
        let mut request = RangeRequest::new(all());
        request.revision = revision;
        request
    };
    assert_eq!(
        harness.store.range_at(&at(7)),
        Err(Rejection::FutureRevision { requested: 7, current: 6 })
    );
    harness.apply(Write::Compact { revision: 4 });
    assert_eq!(
        harness.store.range_at(&at(3)),
        Err(Rejection::Compacted { requested: 3, compacted: 4 })
    );
    assert_eq!(harness.read_at(all(), 4), pairs(&[("a", "2"), ("b", "1")]));
}

#[test]
fn limit_count_and_more_follow_etcd() {
    let mut harness = Harness::new();
    for key in ["k1", "k2", "k3", "k4"] {
        harness.put(key, "v");
    }
    let mut request = RangeRequest::new(KeyRange::prefix(bytes("k")));
    request.limit = 2;
    let response = harness.store.range_at(&request).unwrap();
    assert_eq!((response.kvs.len(), response.more, response.count), (2, true, 4));
    request.limit = 4;
    let response = harness.store.range_at(&request).unwrap();
    assert_eq!((response.kvs.len(), response.more, response.count), (4, false, 4));
    request.count_only = true;
    let response = harness.store.range_at(&request).unwrap();
    assert_eq!((response.kvs.len(), response.more, response.count), (0, false, 4));
}

#[test]
fn the_configured_maximum_caps_a_range_without_a_limit() {
    let mut harness =
        Harness::with_config(KvConfig { range_entries_max: 2, ..KvConfig::default() });
    for key in ["a", "b", "c"] {
        harness.put(key, "v");
    }
    let response = harness.store.range_at(&RangeRequest::new(all())).unwrap();
    assert_eq!((response.kvs.len(), response.more, response.count), (2, true, 3));
}

#[test]
fn keys_only_leaves_out_values_but_not_metadata() {
    let harness = sequence();
    let mut request = RangeRequest::new(all());
    request.keys_only = true;
    let response = harness.store.range_at(&request).unwrap();
    assert!(response.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(response.kvs[0].meta.version, 3);
}

#[test]
fn revision_filters_drop_keys_but_not_from_the_count() {
    let harness = sequence(); // a: create 2, mod 6; c: create 6, mod 6
    let keys = |request: &RangeRequest| -> (Vec<Bytes>, u64) {
        let response = harness.store.range_at(request).unwrap();
        (response.kvs.into_iter().map(|kv| kv.key).collect(), response.count)
    };
    let mut request = RangeRequest::new(all());
    request.max_create_revision = 5;
    assert_eq!(keys(&request), (vec![bytes("a")], 2));
    let mut request = RangeRequest::new(all());
    request.min_create_revision = 3;
    assert_eq!(keys(&request), (vec![bytes("c")], 2));
    let mut request = RangeRequest::new(all());
    request.min_mod_revision = 7;
    assert_eq!(keys(&request), (vec![], 2));
    let mut request = RangeRequest::new(all());
    request.revision = 4;
    request.max_mod_revision = 3;
    assert_eq!(keys(&request), (vec![bytes("b")], 2), "at revision 4, a was modified at 4");
}

#[test]
fn sorting_follows_etcd_defaults_and_keeps_ties_in_key_order() {
    let mut harness = Harness::new();
    harness.put("b", "2");
    harness.put("a", "3");
    harness.put("c", "1");
    harness.put("b", "9"); // b: version 2, mod 5
    let sorted = |order, target| -> Vec<Bytes> {
        let mut request = RangeRequest::new(all());
        request.sort_order = order;
        request.sort_target = target;
        harness.store.range_at(&request).unwrap().kvs.into_iter().map(|kv| kv.key).collect()
    };
    let keys = |keys: &[&str]| keys.iter().map(|key| bytes(key)).collect::<Vec<_>>();
    assert_eq!(sorted(SortOrder::None, SortTarget::Key), keys(&["a", "b", "c"]));
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Key), keys(&["c", "b", "a"]));
    // A target other than the key with no order sorts ascending.
    assert_eq!(sorted(SortOrder::None, SortTarget::Value), keys(&["c", "a", "b"]));
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Mod), keys(&["b", "c", "a"]));
    assert_eq!(sorted(SortOrder::Ascend, SortTarget::Create), keys(&["b", "a", "c"]));
    // Versions tie for a and c: they stay in key order, whichever direction.
    assert_eq!(sorted(SortOrder::Ascend, SortTarget::Version), keys(&["a", "c", "b"]));
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Version), keys(&["b", "a", "c"]));
}

#[test]
fn a_sorted_range_sorts_everything_before_the_limit() {
    let mut harness = Harness::new();
    for (key, value) in [("a", "3"), ("b", "1"), ("c", "2")] {
        harness.put(key, value);
    }
    let mut request = RangeRequest::new(all());
    request.sort_target = SortTarget::Value;
    request.limit = 1;
    let response = harness.store.range_at(&request).unwrap();
    assert_eq!((response.kvs[0].key.clone(), response.more), (bytes("b"), true));
}

#[test]
fn the_old_prefix_range_and_get_carry_the_new_metadata() {
    let harness = sequence();
    let found = harness.store.get(b"c").unwrap();
    assert_eq!((found.meta.create_revision, found.meta.mod_revision), (6, 6));
    let range = harness.store.range(b"", None);
    assert_eq!(range.entries.len(), 2);
    assert_eq!(range.entries[0].meta.mod_revision, 6);
}

// ---------------------------------------------------------------------------------------
// Watch events

#[test]
fn events_come_in_revision_order_with_previous_states() {
    let harness = sequence();
    let events = harness.store.events_since(&all(), 0, 100).unwrap();
    let summary: Vec<(u64, EventKind, Bytes)> =
        events.iter().map(|event| (event.revision(), event.kind, event.kv.key.clone())).collect();
    assert_eq!(
        summary,
        vec![
            (2, EventKind::Put, bytes("a")),
            (3, EventKind::Put, bytes("b")),
            (4, EventKind::Put, bytes("a")),
            (5, EventKind::Delete, bytes("b")),
            (6, EventKind::Put, bytes("c")),
            (6, EventKind::Put, bytes("a")),
        ]
    );
    assert_eq!(events[0].prev_kv, None);
    assert_eq!(events[2].prev_kv.as_ref().unwrap().value, bytes("1"));
    // A delete's kv is etcd's tombstone; its previous state is the deleted key.
    let tombstone = KeyMeta { mod_revision: 5, ..KeyMeta::default() };
    assert_eq!((events[3].kv.value.clone(), events[3].kv.meta), (Bytes::new(), tombstone));
    assert_eq!(events[3].prev_kv.as_ref().unwrap().meta.mod_revision, 3);
}

#[test]
fn events_start_at_the_revision_and_only_touch_the_range() {
    let harness = sequence();
    let events = harness.store.events_since(&KeyRange::single(bytes("a")), 4, 100).unwrap();
    let revisions: Vec<u64> = events.iter().map(|event| event.revision()).collect();
    assert_eq!(revisions, vec![4, 6]);
    assert!(harness.store.events_since(&all(), 7, 100).unwrap().is_empty());
}

#[test]
fn the_limit_never_splits_a_revisions_events() {
    let mut harness = Harness::new();
    harness.put("a", "1"); // 2
    harness.txn(success(vec![put("b", "1"), put("c", "1"), put("d", "1")])); // 3
    harness.put("e", "1"); // 4
    let revisions = |start, limit| -> Vec<u64> {
        let events = harness.store.events_since(&all(), start, limit).unwrap();
        events.iter().map(|event| event.revision()).collect()
    };
    // Revision 3's three events do not fit after revision 2's within 3.
    assert_eq!(revisions(2, 3), vec![2]);
    assert_eq!(revisions(2, 4), vec![2, 3, 3, 3]);
    assert_eq!(revisions(2, 5), vec![2, 3, 3, 3, 4]);
    // Alone, a revision larger than the limit comes whole, so a watcher always advances.
    assert_eq!(revisions(3, 1), vec![3, 3, 3]);
    assert_eq!(revisions(3, 0), vec![3, 3, 3]);
    assert_eq!(revisions(4, 1), vec![4]);
}

#[test]
fn events_from_before_the_compact_revision_are_refused_and_from_it_are_whole() {
    let mut harness = sequence();
    harness.apply(Write::Compact { revision: 5 });
    assert_eq!(
        harness.store.events_since(&all(), 4, 100),
        Err(Rejection::Compacted { requested: 4, compacted: 5 })
    );
    let events = harness.store.events_since(&all(), 5, 100).unwrap();
    let revisions: Vec<u64> = events.iter().map(|event| event.revision()).collect();
    assert_eq!(revisions, vec![5, 6, 6], "the events at the compact revision are kept");
}

// ---------------------------------------------------------------------------------------
// The bounded history

#[test]
fn the_history_compacts_itself_past_history_revisions_max() {
    let config = KvConfig { history_revisions_max: 3, ..KvConfig::default() };
    let mut harness = Harness::with_config(config);
    for value in 0..4 {
        harness.put("k", &value.to_string());
    }
    // Revision 5 is 4 past compact revision 0: compacted to 5 - 3.
    assert_eq!((harness.store.revision(), harness.store.compact_revision()), (5, 2));
    for value in 4..10 {
        harness.put("k", &value.to_string());
    }
    assert_eq!((harness.store.revision(), harness.store.compact_revision()), (11, 8));
    assert_eq!(harness.store.history_event_count(), 4, "revisions 8 to 11");
    assert_eq!(harness.read_at(all(), 8), pairs(&[("k", "6")]));
    let mut request = RangeRequest::new(all());
    request.revision = 7;
    assert!(matches!(harness.store.range_at(&request), Err(Rejection::Compacted { .. })));
    // Writes that change nothing compact nothing.
    harness.delete(KeyRange::single(bytes("missing")));
    assert_eq!(harness.store.compact_revision(), 8);
}

#[test]
fn the_history_compacts_itself_past_history_bytes_max() {
    // Each put of a 1,000-byte value to one key weighs about 2,000 bytes of values (its
    // own and the one it replaced) plus the event's overhead.
    let config = KvConfig { history_bytes_max: 10_000, ..KvConfig::default() };
    let mut harness = Harness::with_config(config);
    let value = "v".repeat(1000);
    for _ in 0..50 {
        harness.put("k", &value);
        let weight = harness.store.history.weight();
        assert!(weight <= 10_000 + 2_300, "one revision over the bound at most: {weight}");
    }
    assert_eq!(harness.store.revision(), 51);
    assert!(harness.store.compact_revision() > 40, "{}", harness.store.compact_revision());
    assert!(harness.store.history_event_count() >= 4, "recent revisions stay readable");
    assert_eq!(harness.read_at(all(), 51), pairs(&[("k", value.as_str())]));
    let mut request = RangeRequest::new(all());
    request.revision = 10;
    assert!(matches!(harness.store.range_at(&request), Err(Rejection::Compacted { .. })));
}

#[test]
fn history_values_share_the_maps_buffers() {
    let mut harness = Harness::new();
    harness.txn(success(vec![put("k", "a value"), delete_op(KeyRange::single(bytes("x")))]));
    let in_map = harness.store.map.get(b"k".as_slice()).unwrap().value.as_ptr();
    let events = harness.store.events_since(&all(), 0, 10).unwrap();
    assert_eq!(events[0].kv.value.as_ptr(), in_map, "the event shares the value, not a copy");
}
