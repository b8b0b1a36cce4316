//! What both engines' [`LogStore`](raft_runtime::LogStore) impls share: `load` runs on
//! tokio's blocking pool (the node's start awaits it on the runtime); `persist` and
//! `store_snapshot` run on the calling thread, which the driver gives the store for that
//! (its persistence thread); a failure becomes the runtime's fatal error naming the
//! operation.

use std::path::Path;
use std::sync::Arc;

use raft_core::{Entry, HardState, LogIndex, RestoredState, Snapshot};
use raft_runtime::SnapshotWriter;

use crate::error::Error;

/// An engine's state, shared with the blocking pool for `load`: its operations, done on
/// the calling thread.
pub(crate) trait BlockingStore: Send + Sync + 'static {
    /// The file or directory errors name.
    fn path(&self) -> &Path;
    /// Reads back everything stored.
    fn load(&self) -> Result<RestoredState, Error>;
    /// Writes `hard_state` and `entries` durably.
    fn persist(&self, hard_state: Option<HardState>, entries: Vec<Entry>) -> Result<(), Error>;
    /// Stores `snapshot`; whether it replaced the stored one.
    fn store_snapshot(&self, snapshot: &Snapshot) -> Result<bool, Error>;
    /// Writes `snapshot`'s file ahead of its `store_snapshot` (the store's
    /// [`SnapshotWriter`]).
    fn write_snapshot_ahead(&self, snapshot: &Snapshot) -> Result<(), Error>;
}

/// What persisting some entries is called in errors: "persisting entries 5..=9", or
/// "persisting the hard state" for none. Holds two indexes, so the write path can keep it
/// and format it only on failure.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PersistOperation(Option<(LogIndex, LogIndex)>);

impl PersistOperation {
    /// The operation writing `entries`.
    pub(crate) fn of(entries: &[Entry]) -> PersistOperation {
        PersistOperation(
            entries
                .first()
                .zip(entries.last())
                .map(|(first, last)| (first.log_id.index, last.log_id.index)),
        )
    }
}

impl std::fmt::Display for PersistOperation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some((first, last)) => write!(formatter, "persisting entries {first}..={last}"),
            None => formatter.write_str("persisting the hard state"),
        }
    }
}

/// [`BlockingStore::load`] on the blocking pool.
pub(crate) async fn load<S: BlockingStore>(
    shared: &Arc<S>,
) -> Result<RestoredState, raft_runtime::Error> {
    let operation = || format!("loading {}", shared.path().display());
    let owned = Arc::clone(shared);
    match tokio::task::spawn_blocking(move || owned.load()).await {
        Ok(outcome) => outcome.map_err(|error| error.into_runtime(operation())),
        Err(source) => {
            let error = Error::BlockingTask { path: shared.path().to_path_buf(), source };
            Err(error.into_runtime(operation()))
        }
    }
}

/// [`BlockingStore::persist`] on the calling thread.
pub(crate) fn persist<S: BlockingStore>(
    shared: &S,
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
) -> Result<(), raft_runtime::Error> {
    let operation = PersistOperation::of(&entries);
    shared.persist(hard_state, entries).map_err(|error| error.into_runtime(operation.to_string()))
}

/// The store's [`SnapshotWriter`]: [`BlockingStore::write_snapshot_ahead`] on the thread
/// the driver calls it on (the blocking pool).
pub(crate) fn snapshot_writer<S: BlockingStore>(shared: &Arc<S>) -> SnapshotWriter {
    let shared = Arc::clone(shared);
    SnapshotWriter::new(move |snapshot| {
        shared.write_snapshot_ahead(snapshot).map_err(|error| {
            let at = snapshot.meta.last_log_id;
            error.into_runtime(format!("writing the snapshot at {at} ahead of its switch"))
        })
    })
}

/// [`BlockingStore::store_snapshot`] on the calling thread.
pub(crate) fn store_snapshot<S: BlockingStore>(
    shared: &S,
    snapshot: &Snapshot,
) -> Result<(), raft_runtime::Error> {
    shared.store_snapshot(snapshot).map(drop).map_err(|error| {
        error.into_runtime(format!("storing the snapshot at {}", snapshot.meta.last_log_id))
    })
}
