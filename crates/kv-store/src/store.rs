//! The key-value state machine: the map, the sessions, and applying entries to them.

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
use crate::response::{
    DeleteResult, KeyMeta, KeyValue, RangeResult, Rejection, Response, WriteResult,
};
use crate::session::{SessionCheck, Sessions};

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
/// [`KvStore::range`]) from its current state. Besides the user's keys it holds the
/// cluster's member address book ([`KvStore::member_addresses`]), changed only by
/// [`Write::SetMemberAddress`] and [`Write::RemoveMemberAddress`], so no key is reserved.
/// Applying is total and deterministic: every replica that applies the same entries from
/// the same state reaches the same state, byte for byte in its
/// [snapshot](KvStore::snapshot_bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvStore {
    pub(crate) config: KvConfig,
    pub(crate) map: BTreeMap<Bytes, Record>,
    pub(crate) sessions: Sessions,
    /// Where each cluster member listens, as replicated through the log.
    pub(crate) member_addresses: BTreeMap<NodeId, SocketAddr>,
    /// The last entry applied (or restored from a snapshot).
    pub(crate) applied: LogId,
    /// The total length of every key and value, to size a snapshot in one allocation.
    pub(crate) data_bytes: u64,
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
            map: BTreeMap::new(),
            sessions: Sessions::default(),
            member_addresses: BTreeMap::new(),
            applied: LogId::ZERO,
            data_bytes: 0,
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
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
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

    fn apply_command(&mut self, index: LogIndex, payload: &[u8]) -> Response {
        let command = match Command::decode(payload) {
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
        match write {
            Write::Put { key, value, expect_version } => {
                self.put(index, key, value, expect_version)
            }
            Write::Delete { key, expect_version } => self.delete(index, &key, expect_version),
            Write::SetMemberAddress { node, addr } => self.set_member_address(index, node, addr),
            Write::RemoveMemberAddress { node } => {
                self.member_addresses.remove(&node);
                Response::MemberAddressUpdated { index }
            }
        }
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
        index: LogIndex,
        key: Bytes,
        value: Bytes,
        expect_version: Option<u64>,
    ) -> Response {
        let current = self.map.get(&key);
        let previous = current.map(|record| record.meta);
        if let Some(conflict) = Self::conflict(previous, expect_version) {
            return conflict;
        }
        let meta = match previous {
            Some(meta) => KeyMeta {
                version: meta.version.saturating_add(1),
                create_index: meta.create_index,
                mod_index: index,
            },
            None => KeyMeta { version: 1, create_index: index, mod_index: index },
        };
        let old_bytes = current.map_or(0, |record| key.len() + record.value.len());
        self.data_bytes = self.data_bytes.saturating_sub(old_bytes as u64);
        self.data_bytes = self.data_bytes.saturating_add((key.len() + value.len()) as u64);
        self.map.insert(key, Record { value, meta });
        Response::Written(WriteResult { index, version: meta.version, previous })
    }

    fn delete(&mut self, index: LogIndex, key: &[u8], expect_version: Option<u64>) -> Response {
        let previous = self.map.get(key).map(|record| record.meta);
        if let Some(conflict) = Self::conflict(previous, expect_version) {
            return conflict;
        }
        if let Some(record) = self.map.remove(key) {
            let bytes = (key.len() + record.value.len()) as u64;
            self.data_bytes = self.data_bytes.saturating_sub(bytes);
        }
        Response::Deleted(DeleteResult { index, previous })
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
