//! MVCC against a reference model: random puts, deletes, transactions and compactions
//! applied to a store and to a plain `BTreeMap` replayed revision by revision.
//!
//! After every sequence, a read at each past revision still in the history must equal the
//! model's state at that revision (values and metadata), reads below the compact revision
//! must be refused, and replaying the history's events from the compact revision must
//! rebuild the current state. A second replica, snapshotted and restored into a fresh store
//! part way, must answer every entry alike and end byte-identical. Small limits make the
//! history compact itself within short sequences.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use bytes::Bytes;
use kv_store::{
    Command, Compare, CompareResult, CompareTarget, DeleteRangeRequest, EventKind, KeyRange,
    KvConfig, KvStore, PutRequest, RangeRequest, Rejection, Response, Session, Txn, TxnOp, Write,
};
use proptest::prelude::*;
use raft_core::{Entry, EntryPayload, LogId, LogIndex, Term};

/// A key's value and the metadata etcd gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelKey {
    value: Bytes,
    version: u64,
    create_revision: u64,
    mod_revision: u64,
}

type State = BTreeMap<Bytes, ModelKey>;

/// The reference: the state at every revision, and the compact revision.
struct Model {
    /// `states[r - 1]` is the state at revision `r`.
    states: Vec<State>,
    compact_revision: u64,
    history_revisions_max: u64,
}

impl Model {
    fn new(history_revisions_max: u64) -> Model {
        Model { states: vec![State::new()], compact_revision: 0, history_revisions_max }
    }

    fn revision(&self) -> u64 {
        self.states.len() as u64
    }

    fn current(&self) -> &State {
        self.states.last().unwrap()
    }

    /// Applies key changes (`None`: delete) at the next revision, if any changes a key.
    fn write(&mut self, changes: &[(Bytes, Option<Bytes>)]) {
        let revision = self.revision() + 1;
        let mut next = self.current().clone();
        let mut changed = false;
        for (key, value) in changes {
            match value {
                Some(value) => {
                    let (version, create_revision) = match next.get(key) {
                        Some(old) => (old.version + 1, old.create_revision),
                        None => (1, revision),
                    };
                    let entry = ModelKey {
                        value: value.clone(),
                        version,
                        create_revision,
                        mod_revision: revision,
                    };
                    next.insert(key.clone(), entry);
                    changed = true;
                }
                None => changed |= next.remove(key).is_some(),
            }
        }
        if changed {
            self.states.push(next);
            let retained = self.revision() - self.compact_revision;
            if retained > self.history_revisions_max {
                self.compact_revision = self.revision() - self.history_revisions_max;
            }
        }
    }

    fn compact(&mut self, revision: u64) {
        if revision > self.compact_revision && revision <= self.revision() {
            self.compact_revision = revision;
        }
    }
}

/// One generated write: what the store applies and what the model does with it.
#[derive(Clone, Debug)]
enum Action {
    /// Keys to put or delete (distinct keys), in a transaction whose success branch runs
    /// when `key`'s version equals `version`; the failure branch writes `otherwise`.
    Txn {
        key: u8,
        version: u64,
        then: BTreeMap<u8, Option<u8>>,
        otherwise: BTreeMap<u8, Option<u8>>,
    },
    /// A plain put through the older write path.
    Put { key: u8, value: u8 },
    /// A delete of every key starting with `prefix`.
    DeletePrefix { prefix: u8 },
    /// A compaction `back` revisions behind the current one (possibly refused).
    Compact { back: u64 },
}

fn key(index: u8) -> Bytes {
    Bytes::from(format!("k{}{}", index / 3, index % 3))
}

fn value(byte: u8) -> Bytes {
    Bytes::from(vec![byte; usize::from(byte % 4)])
}

fn writes() -> impl Strategy<Value = BTreeMap<u8, Option<u8>>> {
    proptest::collection::btree_map(0_u8..9, proptest::option::of(any::<u8>()), 0..4)
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0_u8..9, 0_u64..3, writes(), writes()).prop_map(|(key, version, then, otherwise)| {
            Action::Txn { key, version, then, otherwise }
        }),
        3 => (0_u8..9, any::<u8>()).prop_map(|(key, value)| Action::Put { key, value }),
        1 => (0_u8..3).prop_map(|prefix| Action::DeletePrefix { prefix }),
        1 => (0_u64..6).prop_map(|back| Action::Compact { back }),
    ]
}

fn ops(writes: &BTreeMap<u8, Option<u8>>) -> Vec<TxnOp> {
    let mut ops = vec![TxnOp::Range(RangeRequest::new(KeyRange::all()))];
    for (&index, &written) in writes {
        ops.push(match written {
            Some(byte) => TxnOp::Put(PutRequest::new(key(index), value(byte))),
            None => TxnOp::DeleteRange(DeleteRangeRequest::new(KeyRange::single(key(index)))),
        });
    }
    ops
}

fn changes(writes: &BTreeMap<u8, Option<u8>>) -> Vec<(Bytes, Option<Bytes>)> {
    writes.iter().map(|(&index, written)| (key(index), written.map(value))).collect()
}

/// The store's write for `action`, and the model's update.
fn translate(action: &Action, model: &mut Model) -> Write {
    match action {
        Action::Txn { key: compared, version, then, otherwise } => {
            let current = model.current().get(&key(*compared)).map_or(0, |found| found.version);
            let branch = if current == *version { then } else { otherwise };
            model.write(&changes(branch));
            Write::Txn(Txn {
                compare: vec![Compare {
                    range: KeyRange::single(key(*compared)),
                    target: CompareTarget::Version(*version),
                    result: CompareResult::Equal,
                }],
                success: ops(then),
                failure: ops(otherwise),
            })
        }
        Action::Put { key: index, value: byte } => {
            model.write(&[(key(*index), Some(value(*byte)))]);
            Write::Put { key: key(*index), value: value(*byte), expect_version: None }
        }
        Action::DeletePrefix { prefix } => {
            let prefix = Bytes::from(format!("k{prefix}"));
            let doomed: Vec<(Bytes, Option<Bytes>)> = model
                .current()
                .keys()
                .filter(|key| key.starts_with(&prefix))
                .map(|key| (key.clone(), None))
                .collect();
            model.write(&doomed);
            let request = DeleteRangeRequest::new(KeyRange::prefix(prefix));
            Write::Txn(Txn { success: vec![TxnOp::DeleteRange(request)], ..Txn::default() })
        }
        Action::Compact { back } => {
            let revision = model.revision().saturating_sub(*back);
            model.compact(revision);
            Write::Compact { revision }
        }
    }
}

/// The entry at `index` carrying `write`: every third without a session, the others from
/// two clients numbering their writes in `sequences`.
fn entry(index: u64, write: Write, sequences: &mut BTreeMap<u64, u64>) -> Entry {
    let session = if index % 3 == 0 {
        Session::UNSESSIONED
    } else {
        let client_id = 1 + index % 2;
        let sequence = sequences.entry(client_id).or_insert(0);
        *sequence += 1;
        Session { client_id, sequence: *sequence }
    };
    let payload = EntryPayload::Command(Command { session, write }.encode().unwrap());
    Entry { log_id: LogId::new(Term(1), LogIndex(index)), payload }
}

fn read_at(store: &KvStore, range: KeyRange, revision: u64) -> Result<State, Rejection> {
    let mut request = RangeRequest::new(range);
    request.revision = revision;
    let response = store.range_at(&request)?;
    Ok(response
        .kvs
        .into_iter()
        .map(|kv| {
            let found = ModelKey {
                value: kv.value,
                version: kv.meta.version,
                create_revision: kv.meta.create_revision,
                mod_revision: kv.meta.mod_revision,
            };
            (kv.key, found)
        })
        .collect())
}

/// Replays the history's events onto the state at the compact revision.
fn replayed(store: &KvStore, model: &Model) -> State {
    let start = model.compact_revision.max(1);
    let mut state = model.states[(start - 1) as usize].clone();
    let events = store.events_since(&KeyRange::all(), start + 1, usize::MAX).unwrap();
    for event in events {
        match event.kind {
            EventKind::Put => {
                let meta = event.kv.meta;
                let found = ModelKey {
                    value: event.kv.value,
                    version: meta.version,
                    create_revision: meta.create_revision,
                    mod_revision: meta.mod_revision,
                };
                state.insert(event.kv.key, found);
            }
            EventKind::Delete => {
                state.remove(&event.kv.key);
            }
        }
    }
    state
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn past_reads_match_a_replayed_model_and_replicas_stay_identical(
        actions in proptest::collection::vec(action(), 0..60),
        history_revisions_max in 4_u64..30,
        split in any::<prop::sample::Index>(),
    ) {
        let config = KvConfig { history_revisions_max, sessions_max: 4, ..KvConfig::default() };
        let mut model = Model::new(history_revisions_max);
        let mut sequences = BTreeMap::new();
        let entries: Vec<Entry> = actions
            .iter()
            .enumerate()
            .map(|(offset, action)| {
                entry(offset as u64 + 1, translate(action, &mut model), &mut sequences)
            })
            .collect();

        let mut store = KvStore::new(config.clone()).unwrap();
        let responses: Vec<Response> = entries.iter().map(|entry| store.apply_entry(entry)).collect();
        prop_assert_eq!(store.revision(), model.revision());
        prop_assert_eq!(store.compact_revision(), model.compact_revision);

        for revision in 1..=model.revision() {
            let read = read_at(&store, KeyRange::all(), revision);
            if revision < model.compact_revision {
                let compacted = Rejection::Compacted {
                    requested: revision,
                    compacted: model.compact_revision,
                };
                prop_assert_eq!(read, Err(compacted));
            } else {
                let expected = &model.states[(revision - 1) as usize];
                prop_assert_eq!(&read.unwrap(), expected, "revision {}", revision);
                let prefix: State = expected
                    .iter()
                    .filter(|(key, _)| key.starts_with(b"k1"))
                    .map(|(key, found)| (key.clone(), found.clone()))
                    .collect();
                prop_assert_eq!(read_at(&store, KeyRange::prefix("k1"), revision).unwrap(), prefix);
            }
        }
        prop_assert_eq!(&replayed(&store, &model), model.current());

        // The other replica: snapshotted and restored into a fresh store part way.
        let split = if entries.is_empty() { 0 } else { split.index(entries.len() + 1) };
        let mut before = KvStore::new(config.clone()).unwrap();
        let mut replica_responses: Vec<Response> =
            entries[..split].iter().map(|entry| before.apply_entry(entry)).collect();
        let snapshot = before.snapshot_bytes().unwrap();
        let mut after = KvStore::new(config).unwrap();
        after.restore_bytes(&snapshot, Some(before.applied_log_id())).unwrap();
        prop_assert_eq!(&after, &before);
        replica_responses.extend(entries[split..].iter().map(|entry| after.apply_entry(entry)));
        prop_assert_eq!(replica_responses, responses);
        prop_assert_eq!(after.snapshot_bytes().unwrap(), store.snapshot_bytes().unwrap());
        prop_assert_eq!(after, store);
    }
}
