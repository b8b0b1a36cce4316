//! The snapshot format: identical round trips, and every kind of damage refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, LogId, LogIndex, NodeId, Term};

use super::*;
use crate::command::{Command, Session, Write};
use crate::config::KvConfig;

/// A store with keys, a deletion, a conflict and a few sessions.
fn populated() -> KvStore {
    let mut store = KvStore::new(KvConfig::default()).unwrap();
    let requests = [
        (1, 1, Write::Put { key: "a".into(), value: "1".into(), expect_version: None }),
        (2, 1, Write::Put { key: "b".into(), value: "2".into(), expect_version: None }),
        (1, 2, Write::Put { key: "a".into(), value: "3".into(), expect_version: Some(1) }),
        (3, 1, Write::Delete { key: "b".into(), expect_version: None }),
        (2, 2, Write::Put { key: "c".into(), value: "".into(), expect_version: Some(7) }),
        (4, 1, Write::Put { key: "".into(), value: "empty key".into(), expect_version: None }),
    ];
    for (offset, (client_id, sequence, write)) in requests.into_iter().enumerate() {
        let command = Command { session: Session { client_id, sequence }, write };
        let entry = Entry {
            log_id: LogId::new(Term(2), LogIndex(offset as u64 + 1)),
            payload: EntryPayload::Command(command.encode().unwrap()),
        };
        store.apply_entry(&entry);
    }
    store
}

fn restored(data: &Bytes) -> Result<KvStore, Error> {
    let mut store = KvStore::new(KvConfig::default()).unwrap();
    store.restore_bytes(data, None)?;
    Ok(store)
}

/// Where the eviction watermark's presence byte lies in a version 3 or 4 header.
const WATERMARK_OFFSET: usize = 8 + 4 + 8 + 8 + 8 + 8 + 8;

/// Recomputes the checksum after tampering, so only the content checks can catch it.
fn reseal(data: &mut [u8]) {
    let end = data.len() - TRAILER_BYTES;
    let checksum = crc32fast::hash(&data[..end]);
    data[end..].copy_from_slice(&checksum.to_le_bytes());
}

#[test]
fn snapshot_restore_snapshot_gives_identical_bytes() {
    let store = populated();
    let first = store.snapshot_bytes().unwrap();
    let copy = restored(&first).unwrap();
    assert_eq!(copy, store);
    assert_eq!(copy.snapshot_bytes().unwrap(), first);
}

#[test]
fn empty_store_round_trips() {
    let store = KvStore::new(KvConfig::default()).unwrap();
    let data = store.snapshot_bytes().unwrap();
    assert_eq!(data.len(), HEADER_BYTES + TRAILER_BYTES);
    assert_eq!(restored(&data).unwrap(), store);
}

#[test]
fn restore_replaces_everything_that_was_there() {
    let data = KvStore::new(KvConfig::default()).unwrap().snapshot_bytes().unwrap();
    let mut store = populated();
    store.restore_bytes(&data, None).unwrap();
    assert!(store.is_empty());
    assert_eq!(store.session_count(), 0);
    assert_eq!(store.applied_index(), LogIndex::ZERO);
}

#[test]
fn restored_sessions_still_answer_retries() {
    let mut store = restored(&populated().snapshot_bytes().unwrap()).unwrap();
    let retry = Command {
        session: Session { client_id: 1, sequence: 2 },
        write: Write::Put { key: "a".into(), value: "3".into(), expect_version: Some(1) },
    };
    let entry = Entry {
        log_id: LogId::new(Term(2), LogIndex(7)),
        payload: EntryPayload::Command(retry.encode().unwrap()),
    };
    let response = store.apply_entry(&entry);
    assert!(matches!(response, Response::Written(crate::WriteResult { version: 2, .. })));
    assert_eq!(store.get(b"a").unwrap().meta.version, 2);
}

#[test]
fn every_flipped_bit_is_refused() {
    let data = populated().snapshot_bytes().unwrap().to_vec();
    let before = populated();
    for position in 0..data.len() {
        let mut damaged = data.clone();
        damaged[position] ^= 0x10;
        let mut store = populated();
        let result = store.restore_bytes(&Bytes::from(damaged), None);
        assert!(result.is_err(), "a flip at byte {position} was accepted");
        assert_eq!(store, before, "a refused restore changed the store");
    }
}

#[test]
fn every_truncation_is_refused() {
    let data = populated().snapshot_bytes().unwrap();
    for length in 0..data.len() {
        let error = restored(&data.slice(..length)).unwrap_err();
        assert!(matches!(error, Error::CorruptSnapshot { .. }), "length {length}: {error}");
    }
}

#[test]
fn foreign_bytes_are_refused_as_not_a_snapshot() {
    let error = restored(&Bytes::from(vec![0_u8; 100])).unwrap_err();
    assert!(
        matches!(&error, Error::CorruptSnapshot { reason, .. } if reason.contains("magic")),
        "{error}"
    );
}

#[test]
fn newer_format_version_is_refused_by_number() {
    let mut data = populated().snapshot_bytes().unwrap().to_vec();
    data[8..12].copy_from_slice(&5_u32.to_le_bytes());
    reseal(&mut data);
    let error = restored(&Bytes::from(data)).unwrap_err();
    assert!(matches!(error, Error::UnsupportedSnapshotVersion { found: 5, supported: 4 }));
}

#[test]
fn keys_out_of_order_are_refused_even_with_a_valid_checksum() {
    let mut store = KvStore::new(KvConfig::default()).unwrap();
    for (index, key) in ["a", "b"].into_iter().enumerate() {
        let command = Command {
            session: Session { client_id: 1, sequence: index as u64 + 1 },
            write: Write::Put { key: key.into(), value: "v".into(), expect_version: None },
        };
        store.apply_entry(&Entry {
            log_id: LogId::new(Term(1), LogIndex(index as u64 + 1)),
            payload: EntryPayload::Command(command.encode().unwrap()),
        });
    }
    let mut data = store.snapshot_bytes().unwrap().to_vec();
    // The first key's single byte sits right after the header and its length.
    let first_key = HEADER_BYTES + 4;
    assert_eq!(data[first_key], b'a');
    data[first_key] = b'c';
    reseal(&mut data);
    let error = restored(&Bytes::from(data)).unwrap_err();
    assert!(
        matches!(&error, Error::CorruptSnapshot { reason, .. } if reason.contains("ascending")),
        "{error}"
    );
}

#[test]
fn trailing_bytes_before_the_checksum_are_refused() {
    let mut data = populated().snapshot_bytes().unwrap().to_vec();
    let end = data.len() - TRAILER_BYTES;
    data.insert(end, 0);
    reseal(&mut data);
    let error = restored(&Bytes::from(data)).unwrap_err();
    assert!(matches!(error, Error::CorruptSnapshot { .. }), "{error}");
}

#[test]
fn snapshot_for_another_index_is_refused() {
    let data = populated().snapshot_bytes().unwrap();
    let mut store = KvStore::new(KvConfig::default()).unwrap();
    let error = store.restore_bytes(&data, Some(LogId::new(Term(2), LogIndex(99)))).unwrap_err();
    assert!(matches!(error, Error::SnapshotMismatch { expected: 99, found: 6 }), "{error}");
    store.restore_bytes(&data, Some(LogId::new(Term(2), LogIndex(6)))).unwrap();
}

#[test]
fn a_snapshot_beyond_this_stores_limits_is_refused_and_changes_nothing() {
    let data = populated().snapshot_bytes().unwrap();
    // Values of up to 9 bytes ("empty key") and 4 sessions: over limits of 4 and 2.
    let small_values = KvConfig { value_bytes_max: 4, ..KvConfig::default() };
    let mut store = KvStore::new(small_values).unwrap();
    let error = store.restore_bytes(&data, None).unwrap_err();
    assert!(error.to_string().contains("over this store's limits"), "{error}");
    assert!(store.is_empty(), "a refused restore changes nothing");
    let few_sessions = KvConfig { sessions_max: 2, ..KvConfig::default() };
    let mut store = KvStore::new(few_sessions).unwrap();
    let error = store.restore_bytes(&data, None).unwrap_err();
    assert!(error.to_string().contains("sessions_max"), "{error}");
    // The same snapshot restores under the limits it was made with.
    assert!(restored(&data).is_ok());
}

/// [`populated`] plus two member addresses.
fn with_member_addresses() -> KvStore {
    let mut store = populated();
    let addresses = [(2, "127.0.0.1:7002"), (3, "[::1]:7003")];
    for (offset, (node, addr)) in addresses.into_iter().enumerate() {
        let write = Write::SetMemberAddress { node: NodeId(node), addr: addr.parse().unwrap() };
        let command =
            Command { session: Session { client_id: 9, sequence: offset as u64 + 1 }, write };
        store.apply_entry(&Entry {
            log_id: LogId::new(Term(2), LogIndex(offset as u64 + 7)),
            payload: EntryPayload::Command(command.encode().unwrap()),
        });
    }
    assert_eq!(store.member_addresses().len(), 2);
    store
}

#[test]
fn member_addresses_survive_a_snapshot_byte_for_byte() {
    let store = with_member_addresses();
    let data = store.snapshot_bytes().unwrap();
    let copy = restored(&data).unwrap();
    assert_eq!(copy.member_addresses(), store.member_addresses());
    assert_eq!(copy, store);
    assert_eq!(copy.snapshot_bytes().unwrap(), data);
}

#[test]
fn damage_to_the_member_addresses_is_refused() {
    let data = with_member_addresses().snapshot_bytes().unwrap().to_vec();
    let before = with_member_addresses();
    for position in 0..data.len() {
        let mut damaged = data.clone();
        damaged[position] ^= 0x10;
        let mut store = with_member_addresses();
        assert!(store.restore_bytes(&Bytes::from(damaged), None).is_err(), "flip at {position}");
        assert_eq!(store, before, "a refused restore changed the store");
    }
    // An address that is not HOST:PORT, behind a valid checksum.
    let mut unparsable = data.clone();
    let address = b"[::1]:7003";
    let at = unparsable.windows(address.len()).position(|window| window == address).unwrap();
    unparsable[at + address.len() - 1] = b'x';
    reseal(&mut unparsable);
    let error = restored(&Bytes::from(unparsable)).unwrap_err();
    assert!(
        matches!(&error, Error::CorruptSnapshot { reason, .. } if reason.contains("HOST:PORT")),
        "{error}"
    );
}

#[test]
fn version_1_session_responses_decode_with_that_version_s_variant_order() {
    // Version 1's Response: Written, Deleted, Conflict, Value, Range, NoOp, Rejected.
    let rejected = decode_session_response(&[6, 1, 4, 3], SNAPSHOT_FORMAT_VERSION_V1).unwrap();
    assert_eq!(rejected, Response::Rejected(crate::Rejection::KeyTooLarge { bytes: 4, max: 3 }));
    let no_op = decode_session_response(&[5], SNAPSHOT_FORMAT_VERSION_V1).unwrap();
    assert_eq!(no_op, Response::NoOp);
    let read = decode_session_response(&[3, 0], SNAPSHOT_FORMAT_VERSION_V1);
    assert!(read.is_err(), "a read's answer is no session response: {read:?}");
}

/// A store with sessions cap 1 that evicted client 5's session.
fn with_an_evicted_session() -> KvStore {
    let config = KvConfig { sessions_max: 1, ..KvConfig::default() };
    let mut store = KvStore::new(config).unwrap();
    for (index, client_id) in [(1, 5), (2, 9)] {
        let command = Command {
            session: Session { client_id, sequence: 1 },
            write: Write::Put { key: "k".into(), value: "v".into(), expect_version: None },
        };
        let log_id = LogId::new(Term(1), LogIndex(index));
        let payload = EntryPayload::Command(command.encode().unwrap());
        store.apply_entry(&Entry { log_id, payload });
    }
    store
}

#[test]
fn the_eviction_watermark_survives_a_snapshot() {
    let store = with_an_evicted_session();
    let data = store.snapshot_bytes().unwrap();
    let copy = KvStore::new(store.config().clone())
        .and_then(|mut copy| copy.restore_bytes(&data, None).map(|()| copy))
        .unwrap();
    assert_eq!(copy, store);
    assert_eq!(copy.sessions.evicted_client_id_max(), Some(5));
}

#[test]
fn an_impossible_watermark_is_refused() {
    let store = with_an_evicted_session();
    let mut data = store.snapshot_bytes().unwrap().to_vec();
    data[WATERMARK_OFFSET] = 2;
    reseal(&mut data);
    let mut copy = KvStore::new(store.config().clone()).unwrap();
    let error = copy.restore_bytes(&Bytes::from(data), None).unwrap_err();
    assert!(
        matches!(&error, Error::CorruptSnapshot { reason, .. } if reason.contains("watermark")),
        "{error}"
    );
}

/// Applies `write` without a session at the next index.
fn apply_unsessioned(store: &mut KvStore, write: Write) -> Response {
    let index = store.applied_index().0 + 1;
    let command = Command { session: Session::UNSESSIONED, write };
    store.apply_entry(&Entry {
        log_id: LogId::new(Term(3), LogIndex(index)),
        payload: EntryPayload::Command(command.encode().unwrap()),
    })
}

/// [`populated`] plus leases, a transaction, a lease revoke and a compaction.
fn with_history_and_leases() -> KvStore {
    use crate::mvcc::{DeleteRangeRequest, PutRequest, Txn, TxnOp};
    use crate::range::KeyRange;
    let mut store = populated();
    for id in [7, 9] {
        apply_unsessioned(&mut store, Write::LeaseGrant { id, ttl_seconds: 30 });
    }
    let mut leased = PutRequest::new("l1", "x");
    leased.lease = 7;
    let mut other = PutRequest::new("l2", "y");
    other.lease = 9;
    let txn = Txn {
        compare: Vec::new(),
        success: vec![
            TxnOp::Put(leased),
            TxnOp::Put(other),
            TxnOp::DeleteRange(DeleteRangeRequest::new(KeyRange::single("a"))),
        ],
        failure: Vec::new(),
    };
    apply_unsessioned(&mut store, Write::Txn(txn));
    apply_unsessioned(&mut store, Write::LeaseRevoke { id: 7 });
    apply_unsessioned(&mut store, put_write("c", "again"));
    apply_unsessioned(&mut store, Write::Compact { revision: 3 });
    assert_eq!((store.revision(), store.compact_revision()), (9, 3));
    assert_eq!(store.lease_count(), 1);
    store
}

fn put_write(key: &str, value: &str) -> Write {
    Write::Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        expect_version: None,
    }
}

#[test]
fn history_leases_and_revisions_survive_a_snapshot_byte_for_byte() {
    let store = with_history_and_leases();
    let data = store.snapshot_bytes().unwrap();
    let copy = restored(&data).unwrap();
    assert_eq!(copy, store);
    assert_eq!(copy.snapshot_bytes().unwrap(), data);
    assert_eq!(copy.lease(9).unwrap().keys, vec![Bytes::from_static(b"l2")]);
    let everything = crate::range::KeyRange::all();
    assert_eq!(copy.events_since(&everything, 3, 100), store.events_since(&everything, 3, 100));
}

#[test]
fn every_flipped_bit_of_a_store_with_history_and_leases_is_refused() {
    let data = with_history_and_leases().snapshot_bytes().unwrap().to_vec();
    let before = with_history_and_leases();
    for position in 0..data.len() {
        let mut damaged = data.clone();
        damaged[position] ^= 0x01;
        let mut store = with_history_and_leases();
        assert!(store.restore_bytes(&Bytes::from(damaged), None).is_err(), "flip at {position}");
        assert_eq!(store, before, "a refused restore changed the store");
    }
}

#[test]
fn a_key_attached_to_a_missing_lease_is_refused() {
    let mut store = KvStore::new(KvConfig::default()).unwrap();
    apply_unsessioned(&mut store, Write::LeaseGrant { id: 5, ttl_seconds: 10 });
    let mut put = crate::mvcc::PutRequest::new("k", "v");
    put.lease = 5;
    let txn =
        crate::mvcc::Txn { success: vec![crate::mvcc::TxnOp::Put(put)], ..Default::default() };
    apply_unsessioned(&mut store, Write::Txn(txn));
    assert_eq!(store.get(b"k").unwrap().meta.lease, 5);
    let mut data = store.snapshot_bytes().unwrap().to_vec();
    // Drop the one lease record (right after the one key's record) and its count.
    let key_record = 4 + 1 + 4 + 1 + META_BYTES;
    let lease = HEADER_BYTES + key_record..HEADER_BYTES + key_record + LEASE_BYTES;
    assert_eq!(data[lease.start..lease.start + 8], 5_i64.to_le_bytes());
    data.drain(lease);
    let lease_count = HEADER_BYTES - 16..HEADER_BYTES - 8;
    data[lease_count].copy_from_slice(&0_u64.to_le_bytes());
    reseal(&mut data);
    let error = restored(&Bytes::from(data)).unwrap_err();
    assert!(
        matches!(&error, Error::CorruptSnapshot { reason, .. } if reason.contains("missing lease")),
        "{error}"
    );
}

#[test]
fn a_snapshot_with_more_history_than_this_store_keeps_is_refused() {
    let data = with_history_and_leases().snapshot_bytes().unwrap();
    // Revisions 3 to 9 are kept: 6 past the compact revision.
    let short = KvConfig { history_revisions_max: 5, ..KvConfig::default() };
    let mut store = KvStore::new(short).unwrap();
    let error = store.restore_bytes(&data, None).unwrap_err();
    assert!(error.to_string().contains("history_revisions_max"), "{error}");
    let enough = KvConfig { history_revisions_max: 6, ..KvConfig::default() };
    KvStore::new(enough).unwrap().restore_bytes(&data, None).unwrap();
}

#[test]
fn more_leases_than_this_store_holds_are_refused() {
    let mut store = KvStore::new(KvConfig::default()).unwrap();
    for id in [1, 2] {
        apply_unsessioned(&mut store, Write::LeaseGrant { id, ttl_seconds: 10 });
    }
    let data = store.snapshot_bytes().unwrap();
    let mut small = KvStore::new(KvConfig { leases_max: 1, ..KvConfig::default() }).unwrap();
    let error = small.restore_bytes(&data, None).unwrap_err();
    assert!(error.to_string().contains("leases_max"), "{error}");
}

/// A version 2 snapshot written by an earlier build: the fuzz corpus's seed, made from
/// `fuzz/src/targets.rs`'s sample commands (keys a and c, three sessions, node 2's
/// address, applied index 9).
const SNAPSHOT_V2: &[u8] = include_bytes!("../testdata/snapshot-v2-keys-and-sessions.bin");
/// The same commands up to index 6, written by a version 1 build.
const SNAPSHOT_V1: &[u8] = include_bytes!("../testdata/snapshot-v1-keys-and-sessions.bin");

/// Checks what every pre-revision snapshot restores to: revision and compact revision 1,
/// no history or leases, keys a and c written at revision 1; and that the store then
/// writes version 4, which restores to itself, and carries on at revision 2.
fn check_legacy_restore(store: &KvStore) {
    assert_eq!((store.revision(), store.compact_revision()), (1, 1));
    assert_eq!((store.history_event_count(), store.lease_count()), (0, 0));
    let legacy = |version, create_index, mod_index| KeyMeta {
        version,
        create_index: LogIndex(create_index),
        mod_index: LogIndex(mod_index),
        create_revision: 1,
        mod_revision: 1,
        lease: 0,
    };
    assert_eq!(store.get(b"a").unwrap().meta, legacy(2, 1, 3));
    assert_eq!(store.get(b"c").unwrap().meta, legacy(1, 5, 5));
    assert_eq!(store.len(), 2);
    let data = store.snapshot_bytes().unwrap();
    assert_eq!(data[8..12], SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    let copy = KvStore::new(store.config().clone())
        .and_then(|mut copy| copy.restore_bytes(&data, None).map(|()| copy))
        .unwrap();
    assert_eq!(&copy, store);
    let mut next = copy;
    apply_unsessioned(&mut next, put_write("a", "new"));
    assert_eq!(next.revision(), 2);
    assert_eq!(next.get(b"a").unwrap().meta.create_revision, 1);
    assert_eq!(next.get(b"a").unwrap().meta.mod_revision, 2);
}

#[test]
fn a_version_2_snapshot_restores_at_revision_1_without_a_watermark() {
    let store = restored(&Bytes::from_static(SNAPSHOT_V2)).unwrap();
    check_legacy_restore(&store);
    assert_eq!(store.applied_index(), LogIndex(9));
    assert_eq!(store.sessions.evicted_client_id_max(), None);
    assert_eq!(store.session_count(), 3);
    let node_2: std::net::SocketAddr = "127.0.0.1:7002".parse().unwrap();
    assert_eq!(store.member_addresses().get(&NodeId(2)), Some(&node_2));
    // Client 3's last write deleted b (created at index 2): the remembered metadata gets
    // revision 1 too.
    let (_, session) = store.sessions.iter().find(|(id, _)| **id == 3).unwrap();
    let previous = KeyMeta {
        version: 1,
        create_index: LogIndex(2),
        mod_index: LogIndex(2),
        create_revision: 1,
        mod_revision: 1,
        lease: 0,
    };
    let deleted = crate::DeleteResult { index: LogIndex(4), previous: Some(previous) };
    assert_eq!(session.last_response, Response::Deleted(deleted));
}

#[test]
fn a_version_3_snapshot_restores_at_revision_1_with_its_watermark() {
    // Version 3 is version 2 with the watermark after the member address count.
    let mut data = SNAPSHOT_V2.to_vec();
    let watermark = [&[1_u8][..], &2_u64.to_le_bytes()].concat();
    data.splice(WATERMARK_OFFSET..WATERMARK_OFFSET, watermark);
    data[8..12].copy_from_slice(&3_u32.to_le_bytes());
    reseal(&mut data);
    let store = restored(&Bytes::from(data)).unwrap();
    check_legacy_restore(&store);
    assert_eq!(store.sessions.evicted_client_id_max(), Some(2));
}

#[test]
fn a_version_1_snapshot_restores_at_revision_1_with_an_empty_member_address_book() {
    let store = restored(&Bytes::from_static(SNAPSHOT_V1)).unwrap();
    check_legacy_restore(&store);
    assert_eq!(store.applied_index(), LogIndex(6));
    assert!(store.member_addresses().is_empty());
}
