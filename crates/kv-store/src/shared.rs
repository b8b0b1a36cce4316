//! A store shared between the Raft driver (which applies) and the server (which reads).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use raft_core::{LogIndex, NodeId};

use crate::mvcc::{Event, LeaseInfo, RangeRequest, RangeResponse};
use crate::range::KeyRange;
use crate::response::{KeyValue, RangeResult, Rejection};
use crate::store::KvStore;

/// What [`SharedKvStore::set_apply_listener`] calls: with the store's revision after each
/// applied batch.
pub type ApplyListener = Arc<dyn Fn(u64) + Send + Sync>;

/// A [`KvStore`] behind a read-write lock, cloneable: hand one clone to
/// [`raft_runtime::Raft::new`] as the state machine and keep another to serve reads
/// after ReadIndex.
///
/// Reads take the lock shared, so they run alongside each other and alongside snapshot
/// building; applying takes it exclusively for one batch of entries at a time.
#[derive(Clone)]
pub struct SharedKvStore {
    inner: Arc<RwLock<KvStore>>,
    /// Shared by every clone, so a listener set on the server's clone hears the driver's
    /// applies.
    listener: Arc<Mutex<Option<ApplyListener>>>,
}

impl fmt::Debug for SharedKvStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listening = self.listener.lock().map_or(true, |listener| listener.is_some());
        formatter
            .debug_struct("SharedKvStore")
            .field("inner", &self.inner)
            .field("listening", &listening)
            .finish()
    }
}

impl SharedKvStore {
    /// Shares `store`.
    #[must_use]
    pub fn new(store: KvStore) -> SharedKvStore {
        SharedKvStore { inner: Arc::new(RwLock::new(store)), listener: Arc::default() }
    }

    /// Runs `read` with the store locked for reading, so that several reads see one
    /// state (for example [`KvStore::events_since`] and [`KvStore::revision`]).
    pub fn with_read<R>(&self, read: impl FnOnce(&KvStore) -> R) -> R {
        read(&self.read_guard())
    }

    /// [`KvStore::get`] under the lock.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<KeyValue> {
        self.read_guard().get(key)
    }

    /// [`KvStore::range`] under the lock.
    #[must_use]
    pub fn range(&self, prefix: &[u8], limit: Option<NonZeroU32>) -> RangeResult {
        self.read_guard().range(prefix, limit)
    }

    /// [`KvStore::range_at`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`KvStore::range_at`].
    pub fn range_at(&self, request: &RangeRequest) -> Result<RangeResponse, Rejection> {
        self.read_guard().range_at(request)
    }

    /// [`KvStore::events_since`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`KvStore::events_since`].
    pub fn events_since(
        &self,
        range: &KeyRange,
        start_revision: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Rejection> {
        self.read_guard().events_since(range, start_revision, limit)
    }

    /// [`KvStore::revision`] under the lock.
    #[must_use]
    pub fn revision(&self) -> u64 {
        self.read_guard().revision()
    }

    /// [`KvStore::compact_revision`] under the lock.
    #[must_use]
    pub fn compact_revision(&self) -> u64 {
        self.read_guard().compact_revision()
    }

    /// [`KvStore::lease`] under the lock.
    #[must_use]
    pub fn lease(&self, id: i64) -> Option<LeaseInfo> {
        self.read_guard().lease(id)
    }

    /// [`KvStore::leases`] under the lock.
    #[must_use]
    pub fn leases(&self) -> Vec<LeaseInfo> {
        self.read_guard().leases()
    }

    /// A copy of [`KvStore::member_addresses`], taken under the lock.
    #[must_use]
    pub fn member_addresses(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.read_guard().member_addresses().clone()
    }

    /// [`KvStore::applied_index`] under the lock.
    #[must_use]
    pub fn applied_index(&self) -> LogIndex {
        self.read_guard().applied_index()
    }

    /// Sets the function called with the store's revision after every batch of entries
    /// the Raft driver applies (even one that did not change the revision) and after every
    /// snapshot it restores, replacing any earlier one; the etcd watch hub uses it to wake
    /// its watchers. It runs on the driver's task, after the write lock is released, so it
    /// may read the store, but it must return quickly (signal a waiting task, do not
    /// serve watchers itself): the next batch waits for it.
    pub fn set_apply_listener(&self, listener: Arc<dyn Fn(u64) + Send + Sync>) {
        *self.listener.lock().unwrap_or_else(PoisonError::into_inner) = Some(listener);
    }

    /// Calls the apply listener, if one is set, with `revision`; outside every lock.
    #[cfg(feature = "runtime")]
    pub(crate) fn notify_applied(&self, revision: u64) {
        let listener = self.listener.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(listener) = listener {
            listener(revision);
        }
    }

    // Nothing panics while holding the lock (the store's code has no panics), so a
    // poisoned lock can only come from a bug elsewhere; the state is still whole, since
    // every mutation completes before the guard drops.
    pub(crate) fn read_guard(&self) -> RwLockReadGuard<'_, KvStore> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(feature = "runtime")]
    pub(crate) fn write_guard(&self) -> std::sync::RwLockWriteGuard<'_, KvStore> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}
