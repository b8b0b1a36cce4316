//! Applying commands: one test per behaviour of each command, sessions and limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::num::NonZeroU32;

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, LogId, LogIndex, Membership, NodeId, Term};

use super::*;
use crate::command::Session;

/// A store and the next log index to apply at.
struct Harness {
    store: KvStore,
    next_index: u64,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(KvConfig::default())
    }

    fn with_config(config: KvConfig) -> Harness {
        Harness { store: KvStore::new(config).unwrap(), next_index: 1 }
    }

    fn apply_payload(&mut self, payload: EntryPayload) -> Response {
        let log_id = LogId::new(Term(1), LogIndex(self.next_index));
        self.next_index += 1;
        self.store.apply_entry(&Entry { log_id, payload })
    }

    fn apply(&mut self, client_id: u64, sequence: u64, write: Write) -> Response {
        let command = Command { session: Session { client_id, sequence }, write };
        self.apply_payload(EntryPayload::Command(command.encode().unwrap()))
    }

    /// Applies a write from a fresh single-use session.
    fn write(&mut self, write: Write) -> Response {
        let client_id = 1_000_000 + self.next_index;
        self.apply(client_id, 1, write)
    }
}

fn bytes(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn put(key: &str, value: &str, expect_version: Option<u64>) -> Write {
    Write::Put { key: bytes(key), value: bytes(value), expect_version }
}

fn delete(key: &str, expect_version: Option<u64>) -> Write {
    Write::Delete { key: bytes(key), expect_version }
}

/// Metadata: the version, the create and mod indexes, the create and mod revisions.
fn meta(
    version: u64,
    create_index: u64,
    mod_index: u64,
    create_revision: u64,
    mod_revision: u64,
) -> KeyMeta {
    KeyMeta {
        version,
        create_index: LogIndex(create_index),
        mod_index: LogIndex(mod_index),
        create_revision,
        mod_revision,
        lease: 0,
    }
}

#[test]
fn put_creates_a_key_at_version_one() {
    let mut harness = Harness::new();
    let response = harness.write(put("a", "1", None));
    assert_eq!(
        response,
        Response::Written(WriteResult { index: LogIndex(1), version: 1, previous: None })
    );
    let found = harness.store.get(b"a").unwrap();
    assert_eq!(found.value, bytes("1"));
    assert_eq!(found.meta, meta(1, 1, 1, 2, 2));
    assert_eq!(harness.store.revision(), 2);
}

#[test]
fn put_over_a_key_bumps_version_and_mod_index_but_keeps_create_index() {
    let mut harness = Harness::new();
    harness.write(put("a", "1", None));
    harness.write(put("other", "x", None));
    let response = harness.write(put("a", "2", None));
    assert_eq!(
        response,
        Response::Written(WriteResult {
            index: LogIndex(3),
            version: 2,
            previous: Some(meta(1, 1, 1, 2, 2)),
        })
    );
    assert_eq!(harness.store.get(b"a").unwrap().meta, meta(2, 1, 3, 2, 4));
}

#[test]
fn compare_and_set_with_the_current_version_succeeds() {
    let mut harness = Harness::new();
    harness.write(put("a", "1", None));
    let response = harness.write(put("a", "2", Some(1)));
    assert!(matches!(response, Response::Written(WriteResult { version: 2, .. })));
    assert_eq!(harness.store.get(b"a").unwrap().value, bytes("2"));
}

#[test]
fn compare_and_set_with_a_stale_version_conflicts_and_changes_nothing() {
    let mut harness = Harness::new();
    harness.write(put("a", "1", None));
    harness.write(put("a", "2", None));
    let response = harness.write(put("a", "3", Some(1)));
    assert_eq!(response, Response::Conflict { current_version: Some(2) });
    let found = harness.store.get(b"a").unwrap();
    assert_eq!((found.value, found.meta), (bytes("2"), meta(2, 1, 2, 2, 3)));
    assert_eq!(harness.store.revision(), 3, "a conflict moves no revision");
}

#[test]
fn create_only_put_conflicts_when_the_key_exists() {
    let mut harness = Harness::new();
    assert!(matches!(harness.write(put("a", "1", Some(0))), Response::Written(_)));
    let response = harness.write(put("a", "2", Some(0)));
    assert_eq!(response, Response::Conflict { current_version: Some(1) });
}

#[test]
fn compare_and_set_on_a_missing_key_conflicts_with_no_version() {
    let mut harness = Harness::new();
    let response = harness.write(put("a", "1", Some(3)));
    assert_eq!(response, Response::Conflict { current_version: None });
    assert!(harness.store.is_empty());
}

#[test]
fn delete_removes_the_key_and_reports_its_metadata() {
    let mut harness = Harness::new();
    harness.write(put("a", "1", None));
    let response = harness.write(delete("a", None));
    assert_eq!(
        response,
        Response::Deleted(DeleteResult { index: LogIndex(2), previous: Some(meta(1, 1, 1, 2, 2)) })
    );
    assert_eq!(harness.store.get(b"a"), None);
}

#[test]
fn delete_of_a_missing_key_succeeds_with_no_previous() {
    let mut harness = Harness::new();
    let response = harness.write(delete("missing", None));
    assert_eq!(response, Response::Deleted(DeleteResult { index: LogIndex(1), previous: None }));
    assert_eq!(harness.store.revision(), 1, "deleting nothing moves no revision");
}

#[test]
fn conditional_delete_with_a_stale_version_conflicts() {
    let mut harness = Harness::new();
    harness.write(put("a", "1", None));
    harness.write(put("a", "2", None));
    assert_eq!(
        harness.write(delete("a", Some(1))),
        Response::Conflict { current_version: Some(2) }
    );
    assert!(matches!(harness.write(delete("a", Some(2))), Response::Deleted(_)));
    assert_eq!(harness.store.get(b"a"), None);
}

#[test]
fn recreated_key_starts_again_at_version_one() {
    let mut harness = Harness::new();
    harness.write(put("a", "1", None));
    harness.write(put("a", "2", None));
    harness.write(delete("a", None));
    let response = harness.write(put("a", "3", Some(0)));
    assert_eq!(
        response,
        Response::Written(WriteResult { index: LogIndex(4), version: 1, previous: None })
    );
    assert_eq!(harness.store.get(b"a").unwrap().meta, meta(1, 4, 4, 5, 5));
}

#[test]
fn range_returns_only_keys_with_the_prefix_in_order() {
    let mut harness = Harness::new();
    for key in ["b/2", "a/1", "b/1", "b", "c/1", "b/3"] {
        harness.write(put(key, "v", None));
    }
    let result = harness.store.range(b"b/", None);
    let keys: Vec<Bytes> = result.entries.iter().map(|entry| entry.key.clone()).collect();
    assert_eq!(keys, vec![bytes("b/1"), bytes("b/2"), bytes("b/3")]);
    assert!(!result.more);
}

#[test]
fn range_stops_at_the_limit_and_says_more_remain() {
    let mut harness = Harness::new();
    for key in ["p/1", "p/2", "p/3", "q"] {
        harness.write(put(key, "v", None));
    }
    let result = harness.store.range(b"p/", NonZeroU32::new(2));
    let keys: Vec<Bytes> = result.entries.iter().map(|entry| entry.key.clone()).collect();
    assert_eq!(keys, vec![bytes("p/1"), bytes("p/2")]);
    assert!(result.more);
    let exact = harness.store.range(b"p/", NonZeroU32::new(3));
    assert_eq!((exact.entries.len(), exact.more), (3, false));
}

#[test]
fn range_never_returns_more_than_the_configured_maximum() {
    let config = KvConfig { range_entries_max: 2, ..KvConfig::default() };
    let mut harness = Harness::with_config(config);
    for key in ["1", "2", "3"] {
        harness.write(put(key, "v", None));
    }
    let result = harness.store.range(b"", NonZeroU32::new(100));
    assert_eq!((result.entries.len(), result.more), (2, true));
}

#[test]
fn retried_write_applies_once_and_gets_the_original_response() {
    let mut harness = Harness::new();
    let first = harness.apply(7, 1, put("counter", "1", None));
    let retry = harness.apply(7, 1, put("counter", "1", None));
    assert_eq!(retry, first);
    assert_eq!(harness.store.get(b"counter").unwrap().meta.version, 1);
}

#[test]
fn retried_conflict_returns_the_original_conflict() {
    let mut harness = Harness::new();
    harness.write(put("a", "1", None));
    let first = harness.apply(7, 1, put("a", "2", Some(5)));
    // The key changes in between; the retry must still see the original answer.
    harness.write(put("a", "3", None));
    let retry = harness.apply(7, 1, put("a", "2", Some(5)));
    assert_eq!(first, Response::Conflict { current_version: Some(1) });
    assert_eq!(retry, first);
}

#[test]
fn write_older_than_the_last_sequence_is_refused_as_stale() {
    let mut harness = Harness::new();
    harness.apply(7, 1, put("a", "1", None));
    harness.apply(7, 2, put("a", "2", None));
    let response = harness.apply(7, 1, put("a", "1", None));
    assert_eq!(
        response,
        Response::Rejected(Rejection::StaleSequence {
            client_id: 7,
            sequence: 1,
            last_sequence: 2
        })
    );
    assert_eq!(harness.store.get(b"a").unwrap().value, bytes("2"));
}

#[test]
fn write_from_an_evicted_session_is_refused_as_expired() {
    let config = KvConfig { sessions_max: 2, ..KvConfig::default() };
    let mut harness = Harness::with_config(config);
    harness.apply(1, 1, put("a", "1", None));
    harness.apply(2, 1, put("a", "2", None));
    harness.apply(3, 1, put("a", "3", None));
    assert_eq!(harness.store.session_count(), 2);
    let response = harness.apply(1, 2, put("a", "4", None));
    assert_eq!(
        response,
        Response::Rejected(Rejection::SessionExpired { client_id: 1, sequence: 2 })
    );
    assert_eq!(harness.store.get(b"a").unwrap().value, bytes("3"));
}

#[test]
fn session_eviction_is_identical_on_replicas_applying_the_same_entries() {
    let config = KvConfig { sessions_max: 3, ..KvConfig::default() };
    let mut left = Harness::with_config(config.clone());
    let mut right = Harness::with_config(config);
    // Client ids grow with each new session, as `Session::client_id_at` makes them.
    let clients = [1_u64, 3, 1, 4, 5, 3, 6, 1, 7];
    let mut sequences = std::collections::BTreeMap::new();
    let mut expired = Vec::new();
    for client in clients {
        let sequence = sequences.entry(client).or_insert(0_u64);
        *sequence += 1;
        let request = put(&format!("k{client}"), "v", None);
        let a = left.apply(client, *sequence, request.clone());
        let b = right.apply(client, *sequence, request);
        assert_eq!(a, b);
        if matches!(a, Response::Rejected(Rejection::SessionExpired { .. })) {
            expired.push(client);
        }
    }
    // Index 5 (client 5) evicts 3, so 3's second write at 6 finds no session; index 7
    // (client 6) evicts 1, so 1's third write at 8 finds none; index 9 (client 7) evicts 4.
    assert_eq!(expired, vec![3, 1]);
    let remaining: Vec<u64> = left.store.sessions.iter().map(|(&id, _)| id).collect();
    assert_eq!(remaining, vec![5, 6, 7]);
    assert_eq!(left.store.snapshot_bytes().unwrap(), right.store.snapshot_bytes().unwrap());
}

#[test]
fn oversized_key_applies_as_a_refusal() {
    let config = KvConfig { key_bytes_max: 3, ..KvConfig::default() };
    let mut harness = Harness::with_config(config);
    let response = harness.write(put("long", "v", None));
    assert_eq!(response, Response::Rejected(Rejection::KeyTooLarge { bytes: 4, max: 3 }));
    assert!(harness.store.is_empty());
}

#[test]
fn oversized_value_applies_as_a_refusal() {
    let config = KvConfig { value_bytes_max: 3, ..KvConfig::default() };
    let mut harness = Harness::with_config(config);
    let response = harness.write(put("k", "long", None));
    assert_eq!(response, Response::Rejected(Rejection::ValueTooLarge { bytes: 4, max: 3 }));
    assert!(harness.store.is_empty());
    assert!(harness.store.validate_write(&put("k", "long", None)).is_err());
}

#[test]
fn garbage_payload_applies_as_an_undecodable_refusal() {
    let mut harness = Harness::new();
    let payload = EntryPayload::Command(Bytes::from_static(&[0xff, 0xfe, 0x00, 0x13]));
    let response = harness.apply_payload(payload);
    assert!(
        matches!(response, Response::Rejected(Rejection::Undecodable { index: LogIndex(1), .. })),
        "{response:?}"
    );
    assert_eq!(harness.store.applied_index(), LogIndex(1));
    assert_eq!(harness.store.session_count(), 0);
}

#[test]
fn empty_payload_applies_as_an_undecodable_refusal() {
    let mut harness = Harness::new();
    let response = harness.apply_payload(EntryPayload::Command(Bytes::new()));
    assert!(matches!(response, Response::Rejected(Rejection::Undecodable { .. })));
}

#[test]
fn member_addresses_are_set_replaced_and_removed_without_touching_user_keys() {
    let mut harness = Harness::new();
    let first: SocketAddr = "127.0.0.1:7004".parse().unwrap();
    let moved: SocketAddr = "127.0.0.1:7104".parse().unwrap();
    let set = |addr| Write::SetMemberAddress { node: NodeId(4), addr };
    let response = harness.write(set(first));
    assert_eq!(response, Response::MemberAddressUpdated { index: LogIndex(1) });
    harness.write(set(moved));
    assert_eq!(harness.store.member_addresses().get(&NodeId(4)), Some(&moved));
    assert!(harness.store.is_empty(), "the address book holds no user keys");
    let response = harness.write(Write::RemoveMemberAddress { node: NodeId(4) });
    assert_eq!(response, Response::MemberAddressUpdated { index: LogIndex(3) });
    assert!(harness.store.member_addresses().is_empty());
}

#[test]
fn a_full_member_address_book_refuses_new_nodes_but_updates_known_ones() {
    let mut harness = Harness::new();
    let addr: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    for node in 0..MEMBER_ADDRESSES_MAX {
        harness.store.member_addresses.insert(NodeId(node), addr);
    }
    let response = harness.write(Write::SetMemberAddress { node: NodeId(u64::MAX), addr });
    let refusal = Rejection::TooManyMemberAddresses { max: MEMBER_ADDRESSES_MAX };
    assert_eq!(response, Response::Rejected(refusal));
    let response = harness.write(Write::SetMemberAddress { node: NodeId(0), addr });
    assert!(matches!(response, Response::MemberAddressUpdated { .. }), "{response:?}");
}

#[test]
fn empty_and_membership_entries_are_no_ops_that_advance_the_applied_index() {
    let mut harness = Harness::new();
    assert_eq!(harness.apply_payload(EntryPayload::Empty), Response::NoOp);
    let membership = Membership::with_voters([NodeId(1), NodeId(2)]);
    assert_eq!(harness.apply_payload(EntryPayload::Membership(membership)), Response::NoOp);
    assert_eq!(harness.store.applied_index(), LogIndex(2));
    assert!(harness.store.is_empty());
}

#[test]
fn entry_at_or_below_the_applied_index_is_not_applied_again() {
    let mut harness = Harness::new();
    harness.write(put("a", "1", None));
    let session = Session { client_id: 99, sequence: 1 };
    let command = Command { session, write: put("a", "2", None) };
    let entry = Entry {
        log_id: LogId::new(Term(1), LogIndex(1)),
        payload: EntryPayload::Command(command.encode().unwrap()),
    };
    let response = harness.store.apply_entry(&entry);
    assert!(matches!(response, Response::Rejected(Rejection::AlreadyApplied { .. })));
    assert_eq!(harness.store.get(b"a").unwrap().value, bytes("1"));
}

#[cfg(feature = "runtime")]
#[test]
fn apply_answers_every_entry_in_order() {
    let mut store = KvStore::new(KvConfig::default()).unwrap();
    let session = Session { client_id: 1, sequence: 1 };
    let command = Command { session, write: put("a", "1", None) };
    let entries = vec![
        Entry { log_id: LogId::new(Term(1), LogIndex(1)), payload: EntryPayload::Empty },
        Entry {
            log_id: LogId::new(Term(1), LogIndex(2)),
            payload: EntryPayload::Command(command.encode().unwrap()),
        },
        Entry {
            log_id: LogId::new(Term(1), LogIndex(3)),
            payload: EntryPayload::Command(Bytes::from_static(b"junk")),
        },
    ];
    let responses = raft_runtime::StateMachine::apply(&mut store, &entries);
    assert_eq!(responses.len(), 3);
    assert_eq!(responses[0], Response::NoOp);
    assert!(matches!(responses[1], Response::Written(_)));
    assert!(matches!(responses[2], Response::Rejected(Rejection::Undecodable { .. })));
}

#[test]
fn a_late_retry_of_an_evicted_sessions_first_write_is_refused_as_expired() {
    // Client 1's first write applies, other clients push its session out, and then a
    // duplicate of that first write (a retry delayed in the network) commits: it must not
    // apply a second time.
    let config = KvConfig { sessions_max: 2, ..KvConfig::default() };
    let mut harness = Harness::with_config(config);
    harness.apply(1, 1, put("counter", "1", None));
    harness.apply(2, 1, put("other", "x", None));
    harness.apply(3, 1, put("other", "y", None));
    assert_eq!(harness.store.session_count(), 2);
    let retry = harness.apply(1, 1, put("counter", "1", None));
    assert_eq!(retry, Response::Rejected(Rejection::SessionExpired { client_id: 1, sequence: 1 }));
    assert_eq!(harness.store.get(b"counter").unwrap().meta.version, 1);
    // A session that starts after the eviction (a newer client id) still opens.
    let fresh = harness.apply(4, 1, put("other", "z", None));
    assert!(matches!(fresh, Response::Written(_)), "{fresh:?}");
}
