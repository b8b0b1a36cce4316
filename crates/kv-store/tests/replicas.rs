//! Determinism: two replicas applying the same random entries end byte-identical, even
//! when one of them snapshots, restores into a fresh store and carries on in the middle.
//!
//! The entries mix puts, deletes, compare-and-sets and member address changes over a few
//! keys and nodes, writes from a few clients with random (retried, stale, skipped) sequence
//! numbers against a small session table, garbage payloads and empty entries, so every
//! branch of apply runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use bytes::Bytes;
use kv_store::{Command, KvConfig, KvStore, Response, Session, Write};
use proptest::prelude::*;
use raft_core::{Entry, EntryPayload, LogId, LogIndex, NodeId, Term};
use raft_runtime::StateMachine;

/// Small limits so that eviction and size refusals happen in short sequences.
fn config() -> KvConfig {
    KvConfig { sessions_max: 3, value_bytes_max: 6, ..KvConfig::default() }
}

fn write() -> impl Strategy<Value = Write> {
    let key = (0_u8..6).prop_map(|key| Bytes::from(format!("k{key}")));
    let value = proptest::collection::vec(any::<u8>(), 0..8).prop_map(Bytes::from);
    let expect = proptest::option::of(0_u64..4);
    prop_oneof![
        (key.clone(), value, expect.clone())
            .prop_map(|(key, value, expect_version)| { Write::Put { key, value, expect_version } }),
        (key.clone(), expect)
            .prop_map(|(key, expect_version)| Write::Delete { key, expect_version }),
        (1_u64..4, 7000_u16..7003).prop_map(|(node, port)| Write::SetMemberAddress {
            node: NodeId(node),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }),
        (1_u64..4).prop_map(|node| Write::RemoveMemberAddress { node: NodeId(node) }),
    ]
}

fn payload() -> impl Strategy<Value = EntryPayload> {
    prop_oneof![
        8 => (0_u64..5, 1_u64..6, write()).prop_map(|(client_id, sequence, write)| {
            let command = Command { session: Session { client_id, sequence }, write };
            EntryPayload::Command(command.encode().unwrap())
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..12)
            .prop_map(|garbage| EntryPayload::Command(Bytes::from(garbage))),
        1 => Just(EntryPayload::Empty),
    ]
}

fn entries(payloads: Vec<EntryPayload>) -> Vec<Entry> {
    payloads
        .into_iter()
        .enumerate()
        .map(|(offset, payload)| Entry {
            log_id: LogId::new(Term(1 + offset as u64 / 10), LogIndex(offset as u64 + 1)),
            payload,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn replicas_applying_the_same_entries_end_byte_identical(
        payloads in proptest::collection::vec(payload(), 0..80),
        split in any::<prop::sample::Index>(),
        batch in 1_usize..8,
    ) {
        let entries = entries(payloads);
        let split = if entries.is_empty() { 0 } else { split.index(entries.len() + 1) };

        let mut straight = KvStore::new(config()).unwrap();
        let straight_responses: Vec<Response> = entries
            .chunks(batch)
            .flat_map(|chunk| straight.apply(chunk))
            .collect();

        // The other replica applies the first part, is snapshotted and restored into a
        // fresh store (as a lagging follower would be), and applies the rest there.
        let mut before = KvStore::new(config()).unwrap();
        let mut responses = before.apply(&entries[..split]);
        let snapshot = before.snapshot_bytes().unwrap();
        let mut after = KvStore::new(config()).unwrap();
        after.restore_bytes(&snapshot, Some(before.applied_log_id())).unwrap();
        prop_assert_eq!(&after, &before);
        responses.extend(after.apply(&entries[split..]));

        prop_assert_eq!(&responses, &straight_responses);
        prop_assert_eq!(after.snapshot_bytes().unwrap(), straight.snapshot_bytes().unwrap());
        prop_assert_eq!(after, straight);
    }

    #[test]
    fn resealed_damage_inside_a_snapshot_is_refused_or_restores_a_consistent_store(
        payloads in proptest::collection::vec(payload(), 1..40),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut store = KvStore::new(config()).unwrap();
        store.apply(&entries(payloads));
        let mut data = store.snapshot_bytes().unwrap().to_vec();
        // Damage one byte of the contents and recompute the checksum, so that only the
        // structural checks stand between the damage and the store.
        let end = data.len() - 4;
        data[position.index(end)] = byte;
        let checksum = crc32fast::hash(&data[..end]);
        data[end..].copy_from_slice(&checksum.to_le_bytes());
        let mut restored = KvStore::new(config()).unwrap();
        if restored.restore_bytes(&Bytes::from(data), None).is_ok() {
            let again = restored.snapshot_bytes().unwrap();
            let mut twice = KvStore::new(config()).unwrap();
            twice.restore_bytes(&again, None).unwrap();
            prop_assert_eq!(twice, restored);
        }
    }

    #[test]
    fn restoring_arbitrary_bytes_never_panics(
        data in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut store = KvStore::new(config()).unwrap();
        let _ = store.restore_bytes(&Bytes::from(data), None);
    }
}
