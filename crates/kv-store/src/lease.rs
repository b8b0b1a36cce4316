//! Leases: ids with a time to live, and the keys attached to each.
//!
//! The store keeps no clock, so a lease never expires here: the server's leader counts
//! the time to live down and proposes [`Write::LeaseRevoke`](crate::Write::LeaseRevoke)
//! when it runs out. Which lease a key is attached to is in its [`KeyMeta::lease`]; the
//! table holds the reverse index, so a revoke finds its keys without a scan. Snapshots
//! store only the ids and times to live, and rebuild the keys from the map.
//!
//! [`KeyMeta::lease`]: crate::KeyMeta::lease

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::mvcc::LeaseInfo;

/// The longest time to live a lease may be granted, in seconds: etcd's `MaxLeaseTTL`
/// (9,000,000,000 s, about 285 years), so that a deadline in nanoseconds cannot overflow.
pub const LEASE_TTL_SECONDS_MAX: i64 = 9_000_000_000;

/// One lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaseRecord {
    /// The time to live it was granted with, in seconds.
    pub(crate) ttl_seconds: i64,
    /// The keys attached to it.
    pub(crate) keys: BTreeSet<Bytes>,
}

/// The lease table, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Leases {
    by_id: BTreeMap<i64, LeaseRecord>,
}

impl Leases {
    /// How many leases there are.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether lease `id` exists.
    pub(crate) fn contains(&self, id: i64) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Adds lease `id` with no keys; the caller checked that it is new.
    pub(crate) fn grant(&mut self, id: i64, ttl_seconds: i64) {
        self.by_id.insert(id, LeaseRecord { ttl_seconds, keys: BTreeSet::new() });
    }

    /// Removes lease `id`, returning it.
    pub(crate) fn remove(&mut self, id: i64) -> Option<LeaseRecord> {
        self.by_id.remove(&id)
    }

    /// Attaches `key` to lease `id`; returns false (and changes nothing) when there is no
    /// such lease.
    pub(crate) fn attach(&mut self, id: i64, key: Bytes) -> bool {
        match self.by_id.get_mut(&id) {
            Some(lease) => {
                lease.keys.insert(key);
                true
            }
            None => false,
        }
    }

    /// Detaches `key` from lease `id`, if both are there.
    pub(crate) fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(lease) = self.by_id.get_mut(&id) {
            lease.keys.remove(key);
        }
    }

    /// Lease `id` with its keys.
    pub(crate) fn info(&self, id: i64) -> Option<LeaseInfo> {
        self.by_id.get(&id).map(|lease| LeaseInfo {
            id,
            ttl_seconds: lease.ttl_seconds,
            keys: lease.keys.iter().cloned().collect(),
        })
    }

    /// Every lease in id order, without keys.
    pub(crate) fn list(&self) -> Vec<LeaseInfo> {
        self.by_id
            .iter()
            .map(|(&id, lease)| LeaseInfo { id, ttl_seconds: lease.ttl_seconds, keys: Vec::new() })
            .collect()
    }

    /// Every lease's id and time to live, in id order (for the snapshot).
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = (i64, &LeaseRecord)> {
        self.by_id.iter().map(|(&id, lease)| (id, lease))
    }
}
