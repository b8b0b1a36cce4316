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
    data[8..12].copy_from_slice(&4_u32.to_le_bytes());
    reseal(&mut data);
    let error = restored(&Bytes::from(data)).unwrap_err();
    assert!(matches!(error, Error::UnsupportedSnapshotVersion { found: 4, supported: 3 }));
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
    let end = unparsable.len() - TRAILER_BYTES;
    unparsable[end - 1] = b'x';
    reseal(&mut unparsable);
    let error = restored(&Bytes::from(unparsable)).unwrap_err();
    assert!(
        matches!(&error, Error::CorruptSnapshot { reason, .. } if reason.contains("HOST:PORT")),
        "{error}"
    );
}

#[test]
fn a_version_1_snapshot_restores_with_an_empty_member_address_book() {
    let store = populated();
    let mut data = store.snapshot_bytes().unwrap().to_vec();
    // Version 1 had no member address count and no watermark: drop them, mark the
    // version, reseal.
    let count = HEADER_BYTES - 17..HEADER_BYTES;
    assert_eq!(data[count.clone()], [0_u8; 17]);
    data.drain(count);
    data[8..12].copy_from_slice(&1_u32.to_le_bytes());
    reseal(&mut data);
    let copy = restored(&Bytes::from(data)).unwrap();
    assert_eq!(copy, store);
    assert!(copy.member_addresses().is_empty());
}

#[test]
fn version_1_session_responses_decode_with_that_version_s_variant_order() {
    // Version 1's Response: Written, Deleted, Conflict, Value, Range, NoOp, Rejected.
    let rejected = decode_session_response(&[6, 1, 4, 3], SNAPSHOT_FORMAT_VERSION_V1).unwrap();
    assert_eq!(rejected, Response::Rejected(Rejection::KeyTooLarge { bytes: 4, max: 3 }));
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
fn a_version_2_snapshot_restores_without_a_watermark() {
    let store = with_an_evicted_session();
    let mut data = store.snapshot_bytes().unwrap().to_vec();
    data.drain(HEADER_BYTES - 9..HEADER_BYTES);
    data[8..12].copy_from_slice(&2_u32.to_le_bytes());
    reseal(&mut data);
    let mut copy = KvStore::new(store.config().clone()).unwrap();
    copy.restore_bytes(&Bytes::from(data), None).unwrap();
    assert_eq!(copy.sessions.evicted_client_id_max(), None);
    assert_eq!(copy.session_count(), 1);
}

#[test]
fn an_impossible_watermark_is_refused() {
    let store = with_an_evicted_session();
    let mut data = store.snapshot_bytes().unwrap().to_vec();
    data[HEADER_BYTES - 9] = 2;
    reseal(&mut data);
    let mut copy = KvStore::new(store.config().clone()).unwrap();
    let error = copy.restore_bytes(&Bytes::from(data), None).unwrap_err();
    assert!(
        matches!(&error, Error::CorruptSnapshot { reason, .. } if reason.contains("watermark")),
        "{error}"
    );
}
