//! What both engines' [`LogStore`](raft_runtime::LogStore) impls share: each store
//! operation runs on tokio's blocking pool (it syncs files), and a failure becomes the
//! runtime's fatal error naming the operation.

use std::path::Path;
use std::sync::Arc;

use raft_core::{Entry, HardState, RestoredState, Snapshot};

use crate::error::Error;

/// An engine's state shared with the blocking pool: its operations, done on the calling
/// thread.
pub(crate) trait BlockingStore: Send + Sync + 'static {
    /// The file or directory errors name.
    fn path(&self) -> &Path;
    /// Reads back everything stored.
    fn load(&self) -> Result<RestoredState, Error>;
    /// Writes `hard_state` and `entries` durably.
    fn persist(&self, hard_state: Option<HardState>, entries: Vec<Entry>) -> Result<(), Error>;
    /// Stores `snapshot`; whether it replaced the stored one.
    fn store_snapshot(&self, snapshot: &Snapshot) -> Result<bool, Error>;
}

/// What persisting `entries` is called in errors.
pub(crate) fn persist_operation(entries: &[Entry]) -> String {
    match (entries.first(), entries.last()) {
        (Some(first), Some(last)) => {
            format!("persisting entries {}..={}", first.log_id.index, last.log_id.index)
        }
        _ => "persisting the hard state".to_string(),
    }
}

/// Runs `work` on tokio's blocking pool.
async fn run<S: BlockingStore, T: Send + 'static>(
    shared: &Arc<S>,
    work: impl FnOnce(&S) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let owned = Arc::clone(shared);
    match tokio::task::spawn_blocking(move || work(&owned)).await {
        Ok(outcome) => outcome,
        Err(source) => Err(Error::BlockingTask { path: shared.path().to_path_buf(), source }),
    }
}

/// [`BlockingStore::load`] on the blocking pool.
pub(crate) async fn load<S: BlockingStore>(
    shared: &Arc<S>,
) -> Result<RestoredState, raft_runtime::Error> {
    let operation = format!("loading {}", shared.path().display());
    run(shared, S::load).await.map_err(|error| error.into_runtime(operation))
}

/// [`BlockingStore::persist`] on the blocking pool.
pub(crate) async fn persist<S: BlockingStore>(
    shared: &Arc<S>,
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
) -> Result<(), raft_runtime::Error> {
    let operation = persist_operation(&entries);
    run(shared, move |shared| shared.persist(hard_state, entries))
        .await
        .map_err(|error| error.into_runtime(operation))
}

/// [`BlockingStore::store_snapshot`] on the blocking pool.
pub(crate) async fn store_snapshot<S: BlockingStore>(
    shared: &Arc<S>,
    snapshot: Snapshot,
) -> Result<(), raft_runtime::Error> {
    let operation = format!("storing the snapshot at {}", snapshot.meta.last_log_id);
    run(shared, move |shared| shared.store_snapshot(&snapshot).map(drop))
        .await
        .map_err(|error| error.into_runtime(operation))
}
