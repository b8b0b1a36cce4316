//! The key-value application nodes run when [`SimConfig::kv_store`] is on: a
//! [`kv_store::KvStore`] beside the digest application, fed the same committed entries,
//! carried in the same snapshots, and what it answers the KV workload's clients.
//!
//! A snapshot then holds the digest application's bytes followed by the store's own
//! snapshot ([`KvStore::snapshot_bytes`]), restored with [`KvStore::restore_bytes`] against
//! the snapshot's last log id, as a real driver restores it. The digest stays: the safety
//! checks compare it with the committed prefix after every step, and since the store is a
//! deterministic function of the same entries, a node whose digest is right and whose
//! store sits at the same applied entry holds the right store.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry as MapEntry;

use bytes::Bytes;
use kv_store::{Command, KeyValue, KvConfig, KvStore, Response};
use raft_core::{Entry, EntryPayload, NodeId, ReadId, Snapshot};

use crate::cluster::Cluster;
use crate::config::SimConfig;
use crate::state_machine::{SNAPSHOT_BYTES, StateMachine};

/// The store's limits in the simulation: the defaults, but a short history. The workload
/// never reads past revisions, and some seeds send snapshots in 1-byte chunks, so a
/// production-sized history (every write's event in each snapshot) would only slow
/// followers' catch-up past the recovery deadlines; a short one still puts events in every
/// snapshot and compacts them all the time.
fn kv_config() -> KvConfig {
    KvConfig { history_revisions_max: 4, ..KvConfig::default() }
}

/// A fresh store for a node of a cluster built from `config`, or `None` when the cluster
/// runs the digest application alone.
pub(crate) fn empty_store(config: &SimConfig) -> Option<KvStore> {
    config.kv_store.then(|| {
        KvStore::new(kv_config()).expect("the simulation's kv-store configuration is valid")
    })
}

/// A node's applications as snapshot bytes: the digest application's, then the store's.
pub(crate) fn encode_snapshot(machine: &StateMachine, kv: Option<&KvStore>) -> Bytes {
    let digest = machine.encode();
    let Some(kv) = kv else {
        return digest;
    };
    assert_eq!(
        kv.applied_index(),
        machine.applied_index,
        "the store and the digest application applied the same entries"
    );
    let store = kv.snapshot_bytes().expect("a simulated store's snapshot encodes");
    let mut bytes = Vec::with_capacity(digest.len() + store.len());
    bytes.extend_from_slice(&digest);
    bytes.extend_from_slice(&store);
    Bytes::from(bytes)
}

/// The store's answer to one write, as the first node that applied it gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteAnswer {
    /// What the store answered.
    pub response: Response,
    /// When the first node applied it, in simulated milliseconds: a server answers its
    /// client then.
    pub applied_at_ms: u64,
}

/// A read the KV workload invoked: its key, and once served what the node's store held.
#[derive(Clone, Debug, PartialEq, Eq)]
struct KvRead {
    key: Bytes,
    served: Option<(Option<KeyValue>, u64)>,
}

/// What the nodes' stores answered the KV workload: each write's first answer, by session,
/// and each read's value.
#[derive(Debug, Default)]
pub(crate) struct KvRecord {
    /// The first answer to each `(client id, sequence)`; a retry applied again gets the
    /// same answer from the store's session, and a late duplicate of a write its client
    /// gave up on a refusal, which no client waits for.
    writes: BTreeMap<(u64, u64), WriteAnswer>,
    /// The reads invoked with a key, by read id.
    reads: BTreeMap<ReadId, KvRead>,
}

impl KvRecord {
    /// Applies `entry` to `kv` and notes the answer when it is a write's first.
    pub(crate) fn apply(&mut self, kv: &mut KvStore, entry: &Entry, now_ms: u64, seed: u64) {
        let response = kv.apply_entry(entry);
        assert_eq!(
            kv.applied_index(),
            entry.log_id.index,
            "the store applies every committed entry in order (seed {seed})"
        );
        let EntryPayload::Command(payload) = &entry.payload else {
            return;
        };
        let command = Command::decode(payload).unwrap_or_else(|error| {
            panic!("entry {} is not a kv-store command (seed {seed}): {error}", entry.log_id)
        });
        if let MapEntry::Vacant(vacant) =
            self.writes.entry((command.session.client_id, command.session.sequence))
        {
            vacant.insert(WriteAnswer { response, applied_at_ms: now_ms });
        }
    }

    /// Notes that `read_id` invoked for a key was registered.
    pub(crate) fn register_read(&mut self, read_id: ReadId, key: Bytes) {
        self.reads.insert(read_id, KvRead { key, served: None });
    }

    /// Forgets a read the node refused outright.
    pub(crate) fn cancel_read(&mut self, read_id: ReadId) {
        self.reads.remove(&read_id);
    }

    /// Serves `read_id`, if the KV workload invoked it, from `kv` now.
    pub(crate) fn on_read_served(&mut self, read_id: ReadId, kv: Option<&KvStore>, now_ms: u64) {
        let (Some(read), Some(kv)) = (self.reads.get_mut(&read_id), kv) else {
            return;
        };
        if read.served.is_none() {
            read.served = Some((kv.get(&read.key), now_ms));
        }
    }
}

impl Cluster {
    /// The applications a snapshot holds, checked against its last log id.
    ///
    /// # Panics
    ///
    /// If the bytes are not a snapshot the simulator wrote: the transfer damaged them.
    pub(crate) fn decode_snapshot(
        &self,
        id: NodeId,
        snapshot: &Snapshot,
    ) -> (StateMachine, Option<KvStore>) {
        let data = &snapshot.data;
        let damaged = |why: String| -> ! {
            panic!(
                "node {id} got {} bytes that are not a snapshot (seed {}): the transfer \
                 damaged it ({why})",
                data.len(),
                self.config.seed
            )
        };
        let digest = data.get(..SNAPSHOT_BYTES.min(data.len())).unwrap_or_default();
        let Some(machine) = StateMachine::decode(digest) else {
            damaged("no digest application".to_string());
        };
        let rest = data.slice(digest.len()..);
        let Some(mut kv) = empty_store(&self.config) else {
            if !rest.is_empty() {
                damaged(format!("{} bytes after the digest application", rest.len()));
            }
            return (machine, None);
        };
        if let Err(error) = kv.restore_bytes(&rest, Some(snapshot.meta.last_log_id)) {
            damaged(error.to_string());
        }
        (machine, Some(kv))
    }

    /// Invokes a linearizable read of `key` on node `id`: a [`Cluster::read`] whose node's
    /// store is read when it is served (see [`Cluster::kv_read_result`]).
    pub fn kv_read(&mut self, id: NodeId, key: Bytes) -> Option<ReadId> {
        self.invoke_read(id, Some(key))
    }

    /// What a read invoked with [`Cluster::kv_read`] returned and when it was served, once
    /// it was.
    #[must_use]
    pub fn kv_read_result(&self, read_id: ReadId) -> Option<(Option<KeyValue>, u64)> {
        self.kv_record.reads.get(&read_id).and_then(|read| read.served.clone())
    }

    /// The store's answer to client `client_id`'s write `sequence`, once some node applied
    /// it.
    #[must_use]
    pub fn kv_write_answer(&self, client_id: u64, sequence: u64) -> Option<&WriteAnswer> {
        self.kv_record.writes.get(&(client_id, sequence))
    }

    /// Node `id`'s store as it is now (`None` while down, or without
    /// [`SimConfig::kv_store`]). Reading it directly skips ReadIndex: only a test that wants
    /// stale reads does that.
    #[must_use]
    pub fn kv_store(&self, id: NodeId) -> Option<&KvStore> {
        let slot = &self.slots[self.position(id)];
        slot.node.as_ref().and(slot.kv.as_ref())
    }
}
