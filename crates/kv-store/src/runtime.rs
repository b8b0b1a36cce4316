//! The Raft driver's view of the store: raft-runtime's [`StateMachine`] for [`KvStore`] and
//! [`SharedKvStore`] (the `runtime` feature; the pure state machine needs neither the driver
//! nor tokio).

use bytes::Bytes;
use raft_core::{Entry, Snapshot};
use raft_runtime::StateMachine;

use crate::response::Response;
use crate::shared::SharedKvStore;
use crate::store::KvStore;

impl StateMachine for KvStore {
    type Response = Response;

    fn apply(&mut self, entries: &[Entry]) -> Vec<Response> {
        entries.iter().map(|entry| self.apply_entry(entry)).collect()
    }

    async fn snapshot(&mut self) -> Result<Bytes, raft_runtime::Error> {
        self.snapshot_bytes().map_err(|error| {
            error.into_raft(format!("building a kv-store snapshot at {}", self.applied_log_id()))
        })
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
        let mut store = self.write_guard();
        entries.iter().map(|entry| store.apply_entry(entry)).collect()
    }

    async fn snapshot(&mut self) -> Result<Bytes, raft_runtime::Error> {
        let store = self.read_guard();
        store.snapshot_bytes().map_err(|error| {
            error.into_raft(format!("building a kv-store snapshot at {}", store.applied_log_id()))
        })
    }

    async fn restore(&mut self, snapshot: &Snapshot) -> Result<(), raft_runtime::Error> {
        let last_log_id = snapshot.meta.last_log_id;
        self.write_guard().restore_bytes(&snapshot.data, Some(last_log_id)).map_err(|error| {
            let bytes = snapshot.data.len();
            error.into_raft(format!(
                "restoring a kv-store snapshot of {bytes} bytes at {last_log_id}"
            ))
        })
    }
}
