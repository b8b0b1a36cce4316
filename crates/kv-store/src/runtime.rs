//! The Raft driver's view of the store: raft-runtime's [`StateMachine`] for [`KvStore`] and
//! [`SharedKvStore`] (the `runtime` feature; the pure state machine needs neither the driver
//! nor tokio).

use bytes::Bytes;
use raft_core::{Entry, Snapshot};
use raft_runtime::StateMachine;

use crate::response::Response;
use crate::shared::SharedKvStore;
use crate::store::KvStore;

/// Serializes `frozen`, a copy of the store taken when the driver asked for a snapshot, on
/// a blocking thread: a large store takes milliseconds to encode, and the copy shares its
/// keys and values with the live store, so taking it is cheap.
async fn serialize(frozen: KvStore) -> Result<Bytes, raft_runtime::Error> {
    let at = frozen.applied_log_id();
    let operation = || format!("building a kv-store snapshot at {at}");
    match tokio::task::spawn_blocking(move || frozen.snapshot_bytes()).await {
        Ok(encoded) => encoded.map_err(|error| error.into_raft(operation())),
        Err(failed) => Err(raft_runtime::Error::StateMachine {
            operation: operation(),
            source: raft_runtime::ErrorSource::new(failed),
        }),
    }
}

impl StateMachine for KvStore {
    type Response = Response;

    fn apply(&mut self, entries: &[Entry]) -> Vec<Response> {
        entries.iter().map(|entry| self.apply_entry(entry)).collect()
    }

    fn snapshot(
        &mut self,
    ) -> impl Future<Output = Result<Bytes, raft_runtime::Error>> + Send + 'static {
        serialize(self.clone())
    }

    async fn restore(&mut self, snapshot: &Snapshot) -> Result<(), raft_runtime::Error> {
        let last_log_id = snapshot.meta.last_log_id;
        self.restore_bytes(&snapshot.data, Some(last_log_id)).map_err(|error| {
            let bytes = snapshot.data.len();
            error.into_raft(format!(
                "restoring a kv-store snapshot of {bytes} bytes at {last_log_id}"
            ))
        })
    }
}

impl StateMachine for SharedKvStore {
    type Response = Response;

    fn apply(&mut self, entries: &[Entry]) -> Vec<Response> {
        let (responses, revision) = {
            let mut store = self.write_guard();
            let responses = entries.iter().map(|entry| store.apply_entry(entry)).collect();
            (responses, store.revision())
        };
        self.notify_applied(revision);
        responses
    }

    fn snapshot(
        &mut self,
    ) -> impl Future<Output = Result<Bytes, raft_runtime::Error>> + Send + 'static {
        serialize(self.read_guard().clone())
    }

    async fn restore(&mut self, snapshot: &Snapshot) -> Result<(), raft_runtime::Error> {
        let last_log_id = snapshot.meta.last_log_id;
        let restored = {
            let mut store = self.write_guard();
            store.restore_bytes(&snapshot.data, Some(last_log_id)).map(|()| store.revision())
        };
        let revision = restored.map_err(|error| {
            let bytes = snapshot.data.len();
            error.into_raft(format!(
                "restoring a kv-store snapshot of {bytes} bytes at {last_log_id}"
            ))
        })?;
        self.notify_applied(revision);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use raft_core::{EntryPayload, LogId, LogIndex, Membership, NodeId, SnapshotMeta, Term};

    use super::*;
    use crate::command::{Command, Session, Write};
    use crate::config::KvConfig;

    fn put(index: u64, key: &'static str) -> Entry {
        let write = Write::Put {
            key: Bytes::from_static(key.as_bytes()),
            value: Bytes::from_static(b"v"),
            expect_version: None,
        };
        let command = Command { session: Session::UNSESSIONED, write };
        Entry {
            log_id: LogId::new(Term(1), LogIndex(index)),
            payload: EntryPayload::Command(command.encode().unwrap()),
        }
    }

    /// A shared store whose listener records every revision it hears.
    fn listened() -> (SharedKvStore, Arc<Mutex<Vec<u64>>>) {
        let store = SharedKvStore::new(KvStore::new(KvConfig::default()).unwrap());
        let heard = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&heard);
        store.set_apply_listener(Arc::new(move |revision| record.lock().unwrap().push(revision)));
        (store, heard)
    }

    #[test]
    fn the_listener_hears_the_revision_after_each_batch_outside_the_lock() {
        let (store, heard) = listened();
        let mut driver = store.clone();
        // The listener may read the store: the write lock is released before it runs.
        let reader = store.clone();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        store.set_apply_listener(Arc::new(move |revision| {
            record.lock().unwrap().push((revision, reader.revision()));
        }));
        driver.apply(&[put(1, "a"), put(2, "b")]);
        let empty =
            Entry { log_id: LogId::new(Term(1), LogIndex(3)), payload: EntryPayload::Empty };
        driver.apply(&[empty]);
        assert_eq!(*seen.lock().unwrap(), vec![(3, 3), (3, 3)]);
        assert!(heard.lock().unwrap().is_empty(), "the later listener replaced the first");
    }

    #[tokio::test]
    async fn the_listener_hears_the_revision_of_a_restored_snapshot() {
        let mut source = KvStore::new(KvConfig::default()).unwrap();
        source.apply_entry(&put(1, "a"));
        let data = source.snapshot_bytes().unwrap();
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                last_log_id: source.applied_log_id(),
                membership: Membership::with_voters([NodeId(1)]),
            },
            data,
        };
        let (store, heard) = listened();
        let mut driver = store.clone();
        driver.restore(&snapshot).await.unwrap();
        assert_eq!(*heard.lock().unwrap(), vec![2]);
    }
}
