//! The key-value state machine: the map, the sessions, and applying entries to them.
//!
//! Changes to user keys go through two functions, [`KvStore::put_key`] and
//! [`KvStore::remove_key`], which keep the map, the lease table, the history and the
//! size count in step. A write computes its [`Stamp`] (its log index and the revision it
//! would create) first, changes keys at that stamp, and [`KvStore::finish_write`] moves the
//! store's revision only if some key changed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::ops::Bound;

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, LogId, LogIndex, NodeId};
use tracing::{trace, warn};

use crate::command::{Command, Write};
use crate::config::{KvConfig, MEMBER_ADDRESSES_MAX};
use crate::error::Error;
use crate::history::History;
use crate::key_index::KeyIndex;
use crate::lease::Leases;
use crate::mvcc::{Event, EventKind};
use crate::response::{
    DeleteResult, KeyMeta, KeyValue, RangeResult, Rejection, Response, WriteResult,
};
use crate::session::{SessionCheck, Sessions};

/// The revision of an empty store, as etcd's: the first write makes revision 2.
pub(crate) const REVISION_INITIAL: u64 = 1;

/// Where a write applies: its log index and the revision its changes get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The entry's log index.
    pub(crate) index: LogIndex,
    /// The store's revision plus one: the revision every key the write changes gets.
    pub(crate) revision: u64,
}

/// A value in the map with its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) value: Bytes,
    pub(crate) meta: KeyMeta,
}

/// The replicated key-value state machine.
///
/// It applies committed writes ([`Command`]s in [`EntryPayload::Command`] entries) in log
/// order, answers each entry with a [`Response`], and serves reads ([`KvStore::get`],
/// [`KvStore::range`], [`KvStore::range_at`]) from its current state or its history.
/// Besides the user's keys it holds the cluster's member address book
/// ([`KvStore::member_addresses`]), changed only by [`Write::SetMemberAddress`] and
/// [`Write::RemoveMemberAddress`], so no key is reserved, and the leases keys may be
/// attached to.
///
/// Like etcd, the store counts revisions: an empty store is at revision 1, and every
/// applied write that changes user keys (a put, a delete that deleted something, a
/// transaction that wrote, a lease revoke that deleted keys) moves it up by exactly one;
/// every key records the revision that created it and the one that last changed it. The
/// history of changes since the [compact revision](KvStore::compact_revision) serves reads
/// at past revisions and watches ([`KvStore::events_since`]); it is bounded by
/// `history_revisions_max` (see the `history` module for its costs).
///
/// Applying is total and deterministic: every replica that applies the same entries from
/// the same state reaches the same state, byte for byte in its
/// [snapshot](KvStore::snapshot_bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvStore {
    pub(crate) config: KvConfig,
    pub(crate) map: KeyIndex,
    pub(crate) sessions: Sessions,
    /// Where each cluster member listens, as replicated through the log.
    pub(crate) member_addresses: BTreeMap<NodeId, SocketAddr>,
    /// The last entry applied (or restored from a snapshot).
    pub(crate) applied: LogId,
    /// The total length of every key and value, to size a snapshot in one allocation.
    pub(crate) data_bytes: u64,
    /// The store's revision: 1 when empty, one more for each write that changed keys.
    pub(crate) revision: u64,
    /// The revision the history starts at: reads at earlier revisions are refused. 0 until
    /// the first compaction.
    pub(crate) compact_revision: u64,
    /// Every change since the compact revision.
    pub(crate) history: History,
    /// The leases and their keys.
    pub(crate) leases: Leases,
}

impl KvStore {
    /// An empty store.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `config` is out of range.
    pub fn new(config: KvConfig) -> Result<KvStore, Error> {
        config.validate()?;
        Ok(KvStore {
            config,
            map: KeyIndex::default(),
            sessions: Sessions::default(),
            member_addresses: BTreeMap::new(),
            applied: LogId::ZERO,
            data_bytes: 0,
            revision: REVISION_INITIAL,
            compact_revision: 0,
            history: History::default(),
            leases: Leases::default(),
        })
    }

    /// The store's limits.
    #[must_use]
    pub fn config(&self) -> &KvConfig {
        &self.config
    }

    /// The last entry applied (or covered by the restored snapshot); [`LogId::ZERO`] when
    /// nothing was.
    #[must_use]
    pub fn applied_log_id(&self) -> LogId {
        self.applied
    }

    /// The index of the last entry applied. A read served after ReadIndex `r` is
    /// linearizable once this is at least `r`.
    #[must_use]
    pub fn applied_index(&self) -> LogIndex {
        self.applied.index
    }

    /// How many keys the store holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the store holds no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The total length of every key and value held (history and sessions not counted).
    #[must_use]
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// How many client sessions the store remembers.
    #[must_use]
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Checks a write against the size limits, as applying it will. The server calls
    /// this before proposing a write.
    ///
    /// # Errors
    ///
    /// [`Error::CommandRefused`] with the [`Rejection`] the state machine would answer.
    pub fn validate_write(&self, write: &Write) -> Result<(), Error> {
        self.config.validate_write(write)
    }

    /// Where each cluster member listens, as recorded by [`Write::SetMemberAddress`].
    #[must_use]
    pub fn member_addresses(&self) -> &BTreeMap<NodeId, SocketAddr> {
        &self.member_addresses
    }

    /// The key's value and metadata, or `None` when absent.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<KeyValue> {
        self.map.get_key_value(key).map(|(key, record)| KeyValue {
            key: key.clone(),
            value: record.value.clone(),
            meta: record.meta,
        })
    }

    /// The keys that start with `prefix`, in key order: at most `limit` of them, and never
    /// more than the configured `range_entries_max` (`None` means that maximum).
    #[must_use]
    pub fn range(&self, prefix: &[u8], limit: Option<NonZeroU32>) -> RangeResult {
        let limit_max = self.config.range_entries_max;
        let limit = limit.map_or(limit_max, |limit| u64::from(limit.get()).min(limit_max));
        let mut matching = self
            .map
            .range((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix));
        let mut entries = Vec::new();
        for (key, record) in matching.by_ref() {
            entries.push(KeyValue {
                key: key.clone(),
                value: record.value.clone(),
                meta: record.meta,
            });
            if entries.len() as u64 >= limit {
                break;
            }
        }
        RangeResult { entries, more: matching.next().is_some() }
    }

    /// Applies one committed entry and returns its response. Total: every entry yields a
    /// response and no input makes it panic.
    pub fn apply_entry(&mut self, entry: &Entry) -> Response {
        let index = entry.log_id.index;
        if index <= self.applied.index {
            warn!(%index, applied_index = %self.applied.index, "skipped an already applied entry");
            return Response::Rejected(Rejection::AlreadyApplied {
                index,
                applied_index: self.applied.index,
            });
        }
        self.applied = entry.log_id;
        match &entry.payload {
            EntryPayload::Empty | EntryPayload::Membership(_) => Response::NoOp,
            EntryPayload::Command(payload) => self.apply_command(index, payload),
        }
    }

    fn apply_command(&mut self, index: LogIndex, payload: &Bytes) -> Response {
        // The key and value stay slices of the payload (every payload is an allocation of
        // its own: the proposer's encoding, or a decoded message or log record).
        let command = match Command::decode_shared(payload) {
            Ok(command) => command,
            Err(error) => {
                warn!(%index, %error, "a committed entry is not a kv-store command");
                return Response::Rejected(Rejection::Undecodable {
                    index,
                    reason: error.to_string(),
                });
            }
        };
        let Command { session, write } = command;
        if session.is_unsessioned() {
            trace!(%index, "applied a write without a session");
            return self.execute(index, write);
        }
        let (client_id, sequence) = (session.client_id, session.sequence);
        if let SessionCheck::Answer(response) = self.sessions.check(client_id, sequence) {
            trace!(%index, client_id, sequence, "answered a repeated or stale write");
            self.sessions.touch(client_id, index);
            return response;
        }
        let response = self.execute(index, write);
        trace!(%index, client_id, sequence, "applied a write");
        let sessions_max = self.config.sessions_max;
        self.sessions.record(client_id, sequence, index, response.clone(), sessions_max);
        response
    }

    /// Carries out a write whose session allows it.
    fn execute(&mut self, index: LogIndex, write: Write) -> Response {
        if let Some(rejection) = self.config.check_limits(&write) {
            return Response::Rejected(rejection);
        }
        let stamp = Stamp { index, revision: self.revision.saturating_add(1) };
        let response = match write {
            Write::Put { key, value, expect_version } => {
                self.put(stamp, key, value, expect_version)
            }
            Write::Delete { key, expect_version } => self.delete(stamp, &key, expect_version),
            Write::SetMemberAddress { node, addr } => self.set_member_address(index, node, addr),
            Write::RemoveMemberAddress { node } => {
                self.member_addresses.remove(&node);
                Response::MemberAddressUpdated { index }
            }
            Write::Txn(txn) => self.apply_txn(stamp, &txn),
            Write::Compact { revision } => self.compact(revision),
            Write::LeaseGrant { id, ttl_seconds } => self.grant_lease(id, ttl_seconds),
            Write::LeaseRevoke { id } => self.revoke_lease(stamp, id),
        };
        self.finish_write(stamp);
        response
    }

    fn set_member_address(&mut self, index: LogIndex, node: NodeId, addr: SocketAddr) -> Response {
        let known = self.member_addresses.contains_key(&node);
        if !known && self.member_addresses.len() as u64 >= MEMBER_ADDRESSES_MAX {
            return Response::Rejected(Rejection::TooManyMemberAddresses {
                max: MEMBER_ADDRESSES_MAX,
            });
        }
        self.member_addresses.insert(node, addr);
        Response::MemberAddressUpdated { index }
    }

    /// The conflict a conditional write meets, if any.
    fn conflict(current: Option<KeyMeta>, expect_version: Option<u64>) -> Option<Response> {
        let expected = expect_version?;
        let current_version = current.map(|meta| meta.version);
        (current_version.unwrap_or(0) != expected).then_some(Response::Conflict { current_version })
    }

    fn put(
        &mut self,
        stamp: Stamp,
        key: Bytes,
        value: Bytes,
        expect_version: Option<u64>,
    ) -> Response {
        if expect_version.is_some() {
            let current = self.map.get(&key).map(|record| record.meta);
            if let Some(conflict) = Self::conflict(current, expect_version) {
                return conflict;
            }
        }
        // A put without a lease detaches the key from its lease, as etcd's.
        let (meta, previous) = self.put_key(stamp, key, value, 0);
        Response::Written(WriteResult { index: stamp.index, version: meta.version, previous })
    }

    fn delete(&mut self, stamp: Stamp, key: &[u8], expect_version: Option<u64>) -> Response {
        let previous = self.map.get(key).map(|record| record.meta);
        if let Some(conflict) = Self::conflict(previous, expect_version) {
            return conflict;
        }
        self.remove_key(stamp, key);
        Response::Deleted(DeleteResult { index: stamp.index, previous })
    }

    /// Sets `key` to `value` attached to `lease` (0: none) at `stamp`, records the event,
    /// and returns the key's new metadata and its previous metadata. (The previous key and
    /// value move into the history's event: a caller that answers with them reads them
    /// before the put.) The caller checked that `lease` exists.
    pub(crate) fn put_key(
        &mut self,
        stamp: Stamp,
        key: Bytes,
        value: Bytes,
        lease: i64,
    ) -> (KeyMeta, Option<KeyMeta>) {
        // One lookup: the common write replaces a key's value in place.
        let (meta, previous) = match self.map.get_mut(&key) {
            Some(record) => {
                let meta = KeyMeta {
                    version: record.meta.version.saturating_add(1),
                    mod_index: stamp.index,
                    mod_revision: stamp.revision,
                    lease,
                    ..record.meta
                };
                let previous = KeyValue {
                    key: key.clone(),
                    value: std::mem::replace(&mut record.value, value.clone()),
                    meta: std::mem::replace(&mut record.meta, meta),
                };
                (meta, Some(previous))
            }
            None => {
                let meta = KeyMeta {
                    version: 1,
                    create_index: stamp.index,
                    mod_index: stamp.index,
                    create_revision: stamp.revision,
                    mod_revision: stamp.revision,
                    lease,
                };
                // A new key is copied out of its payload: the map keeps it for as long as
                // the key lives, and a slice would pin the first payload's value with it.
                let key = Bytes::copy_from_slice(&key);
                self.map.insert_new(key.clone(), Record { value: value.clone(), meta });
                (meta, None)
            }
        };
        if let Some(previous) = &previous {
            let old_bytes = previous.key.len() + previous.value.len();
            self.data_bytes = self.data_bytes.saturating_sub(old_bytes as u64);
            self.leases.detach(previous.meta.lease, &key);
        }
        if lease != 0 {
            let attached = self.leases.attach(lease, key.clone());
            debug_assert!(attached, "a put attached key to missing lease {lease}");
        }
        self.data_bytes = self.data_bytes.saturating_add((key.len() + value.len()) as u64);
        let previous_meta = previous.as_ref().map(|previous| previous.meta);
        let kv = KeyValue { key, value, meta };
        self.history.push(Event { kind: EventKind::Put, kv, prev_kv: previous });
        (meta, previous_meta)
    }

    /// Deletes `key` at `stamp`, records the event, and returns what it held; `None` (and
    /// no change) when it did not exist.
    pub(crate) fn remove_key(&mut self, stamp: Stamp, key: &[u8]) -> Option<KeyValue> {
        let (key, record) = self.map.remove_entry(key)?;
        let bytes = (key.len() + record.value.len()) as u64;
        self.data_bytes = self.data_bytes.saturating_sub(bytes);
        self.leases.detach(record.meta.lease, &key);
        let previous = KeyValue { key: key.clone(), value: record.value, meta: record.meta };
        // etcd's tombstone: the key, no value, and only the delete's revision.
        let meta = KeyMeta { mod_revision: stamp.revision, ..KeyMeta::default() };
        let kv = KeyValue { key, value: Bytes::new(), meta };
        self.history.push(Event { kind: EventKind::Delete, kv, prev_kv: Some(previous.clone()) });
        Some(previous)
    }

    /// Ends the write made at `stamp`: if it changed a key (recorded an event at its
    /// revision), the store moves to that revision and compacts the history to keep
    /// within `history_revisions_max`. Returns the store's revision; calling it again for
    /// the same write changes nothing.
    pub(crate) fn finish_write(&mut self, stamp: Stamp) -> u64 {
        let changed = self.history.last_revision() == Some(stamp.revision);
        if changed && self.revision < stamp.revision {
            self.revision = stamp.revision;
            let retained = self.revision - self.compact_revision;
            if retained > self.config.history_revisions_max {
                self.compact_history(self.revision - self.config.history_revisions_max);
            }
            let fit = self.history.compaction_to_fit(self.config.history_bytes_max);
            if let Some(revision) = fit.filter(|&revision| revision > self.compact_revision) {
                self.compact_history(revision);
            }
        }
        self.revision
    }

    /// Drops the history before `revision`, which lies above the compact revision and at
    /// or below the store's revision.
    pub(crate) fn compact_history(&mut self, revision: u64) {
        debug_assert!(revision > self.compact_revision && revision <= self.revision);
        self.history.compact_to(revision);
        self.compact_revision = revision;
        tracing::debug!(revision, "compacted the history");
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
