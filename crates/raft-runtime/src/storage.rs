//! Durable state: the `LogStore` trait the driver writes through, and `MemLogStore`, an
//! in-memory implementation for tests, simulation and benchmarks.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::Error;
use raft_core::RestoredState;
use raft_core::Snapshot;
use raft_core::{Entry, HardState, LogId, LogIndex, Membership};

/// A node's durable state: its hard state, its log and its latest snapshot.
///
/// The driver owns the store on a persistence task and calls it from there only, one call
/// at a time, in the order the node handed the work out.
///
/// That task runs on a thread of its own, inside the runtime's context: `persist` and
/// `store_snapshot` may block it on the disk (a file engine does its writes and fsyncs
/// right there, with no `spawn_blocking`), and may still await timers and queues. `load` is
/// awaited on the runtime by [`crate::Raft::start`], so a store that blocks moves it to the
/// blocking pool. Every error is fatal: the node stops and the driver never retries (after
/// a failed fsync the disk's contents are unknown, and retrying can report lost data as
/// durable).
pub trait LogStore: Send + 'static {
    /// Reads back everything stored, for the node to restart from.
    ///
    /// The driver overwrites `applied_index` (it rebuilds the application from the snapshot
    /// and the log at every start), so a store may leave it `LogIndex::ZERO`.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the stored state cannot be read; the node does not start.
    ///
    /// # Correctness
    ///
    /// Returns exactly what earlier calls made durable: a store that forgets a vote lets
    /// its node vote twice in one term.
    fn load(&mut self) -> impl Future<Output = Result<RestoredState, Error>> + Send;

    /// Writes `hard_state` (when given) and `entries` as one durable write.
    ///
    /// `entries` are contiguous and overwrite the stored log from the first one's index:
    /// everything stored at or after that index is removed first. Entries at or before the
    /// stored snapshot's last index are already covered by it and may be skipped.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`]; the node stops.
    ///
    /// # Correctness
    ///
    /// - Durable on return: a crash after `persist` returns keeps the whole write.
    /// - In order: a crash never keeps a later write and loses an earlier one.
    /// - Atomic enough: a crash during the call keeps a prefix of `entries` at most (after
    ///   the old log's prefix before them), never a hole, and either the old hard state or
    ///   the new one.
    /// - Truncating: entries after the written ones (from a previous, longer log) are gone.
    fn persist(
        &mut self,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Makes `snapshot` the stored snapshot and compacts the log to it.
    ///
    /// Called when the application snapshotted itself (the log prefix it covers can go) and
    /// when a follower received a snapshot from its leader (its log may disagree with it).
    /// A snapshot not newer than the stored one is ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`]; the node stops.
    ///
    /// # Correctness
    ///
    /// - Durable on return, and in order with [`LogStore::persist`] calls.
    /// - Removes every stored entry up to the snapshot's last index; keeps later entries
    ///   only if the stored entry at the snapshot's last index has the snapshot's last log
    ///   id (the logs then agree up to there), and otherwise removes them all.
    /// - Crash-safe: a crash during the call leaves either the old snapshot and log, or
    ///   the new snapshot and the compacted log; never the compacted log without the new
    ///   snapshot.
    fn store_snapshot(
        &mut self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// A handle that writes the application's own snapshots ahead of their
    /// [`LogStore::store_snapshot`] call, or `None` (the default) for a store that writes
    /// everything in that call.
    ///
    /// Called once, when the node starts. The driver then gives each snapshot the
    /// application builds to the writer on the blocking pool, while the persistence task
    /// goes on writing the log, and asks for `store_snapshot` only when the writer is done:
    /// that call is then left with recording the switch, so a large snapshot no longer
    /// holds the log's writes up behind its file. Snapshots from the leader are not
    /// written ahead (the follower waits for them anyway).
    fn snapshot_writer(&self) -> Option<SnapshotWriter> {
        None
    }
}

/// Writes a snapshot's data durably without making it the stored snapshot: see
/// [`LogStore::snapshot_writer`]. A clone shares the writer.
///
/// # Correctness
///
/// - Durable on return, so the `store_snapshot` call that follows need only make it
///   current (in order with the log's writes).
/// - Invisible until then: a crash before that call leaves the old snapshot and log, and
///   the written data is at most garbage the store cleans up.
/// - An error is fatal, as for every store call: the driver stops the node.
#[derive(Clone)]
pub struct SnapshotWriter(Arc<WriteSnapshot>);

/// What a [`SnapshotWriter`] calls.
type WriteSnapshot = dyn Fn(&Snapshot) -> Result<(), Error> + Send + Sync;

impl SnapshotWriter {
    /// A writer calling `write`, which may block on the disk (the driver calls it on the
    /// blocking pool).
    pub fn new(
        write: impl Fn(&Snapshot) -> Result<(), Error> + Send + Sync + 'static,
    ) -> SnapshotWriter {
        SnapshotWriter(Arc::new(write))
    }

    /// Writes `snapshot` (see the type's correctness rules).
    ///
    /// # Errors
    ///
    /// The store's [`Error::Storage`].
    pub fn write(&self, snapshot: &Snapshot) -> Result<(), Error> {
        (self.0)(snapshot)
    }
}

impl fmt::Debug for SnapshotWriter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SnapshotWriter")
    }
}

/// The underlying error of an [`Error::Storage`] or [`Error::StateMachine`]: any error,
/// shared so that the crate's error stays comparable. Two are equal only when they are
/// the same error (not merely equal messages).
#[derive(Clone, Debug)]
pub struct ErrorSource(Arc<dyn std::error::Error + Send + Sync>);

impl ErrorSource {
    /// Wraps an error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> ErrorSource {
        ErrorSource(Arc::new(error))
    }
}

impl fmt::Display for ErrorSource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

impl std::error::Error for ErrorSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for ErrorSource {
    fn eq(&self, other: &ErrorSource) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ErrorSource {}

/// An in-memory [`LogStore`]: "durable" for as long as the value lives.
///
/// Clones share one store, so a test can stop a node and start it again from what it had
/// stored, look inside, or inject a failure. Optional artificial latency stands in for a
/// disk's.
#[derive(Clone, Debug)]
pub struct MemLogStore {
    state: Arc<Mutex<MemState>>,
    latency: Option<Duration>,
    /// Hands the driver a [`SnapshotWriter`] (see [`MemLogStore::with_snapshot_writer`]).
    writes_ahead: bool,
}

#[derive(Debug)]
struct MemState {
    membership: Membership,
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    /// The entries after the snapshot (from index 1 without one).
    entries: Vec<Entry>,
    fail_writes: bool,
    /// Writes wait until then (a stalled disk).
    stalled_until: Option<tokio::time::Instant>,
    writes: u64,
    /// The snapshots the writer wrote ahead and no `store_snapshot` has taken yet.
    written_ahead: Vec<LogId>,
    /// How many snapshots `store_snapshot` took that the writer had written ahead.
    stored_written_ahead: u64,
    fail_writes_ahead: bool,
    /// Each write ahead blocks this long first (a slow disk).
    write_ahead_latency: Duration,
    /// How many writes ahead started.
    writes_ahead_started: u64,
}

impl MemLogStore {
    /// An empty store for a new node of a cluster whose voters are `membership`.
    #[must_use]
    pub fn new(membership: Membership) -> MemLogStore {
        let state = MemState {
            membership,
            hard_state: HardState::default(),
            snapshot: None,
            entries: Vec::new(),
            fail_writes: false,
            stalled_until: None,
            writes: 0,
            written_ahead: Vec::new(),
            stored_written_ahead: 0,
            fail_writes_ahead: false,
            write_ahead_latency: Duration::ZERO,
            writes_ahead_started: 0,
        };
        MemLogStore { state: Arc::new(Mutex::new(state)), latency: None, writes_ahead: false }
    }

    /// The same store, handing the driver a [`SnapshotWriter`]: the node's own snapshots
    /// are then "written" ahead of their `store_snapshot` (recorded, for a test to see the
    /// driver's order), as a file engine writes the file before the switch.
    #[must_use]
    pub fn with_snapshot_writer(self) -> MemLogStore {
        MemLogStore { writes_ahead: true, ..self }
    }

    /// Makes every later write of the [`SnapshotWriter`] fail (fault injection for tests).
    pub fn fail_snapshot_writes_ahead(&self) {
        self.lock().fail_writes_ahead = true;
    }

    /// Makes every later write of the [`SnapshotWriter`] block its thread for `latency`
    /// first, as a slow disk would (for tests).
    pub fn slow_snapshot_writes_ahead(&self, latency: Duration) {
        self.lock().write_ahead_latency = latency;
    }

    /// How many writes of the [`SnapshotWriter`] have started.
    #[must_use]
    pub fn snapshot_writes_ahead_started(&self) -> u64 {
        self.lock().writes_ahead_started
    }

    /// How many snapshots `store_snapshot` stored after the writer had written them ahead.
    #[must_use]
    pub fn snapshots_stored_after_writing_ahead(&self) -> u64 {
        self.lock().stored_written_ahead
    }

    /// The same store, taking `latency` for every write (a stand-in for a disk sync).
    #[must_use]
    pub fn with_latency(self, latency: Duration) -> MemLogStore {
        MemLogStore { latency: Some(latency), ..self }
    }

    /// Makes every later write fail, as a dying disk would (fault injection for tests).
    pub fn fail_writes(&self) {
        self.lock().fail_writes = true;
    }

    /// Makes every write that starts in the next `duration` wait until it is over, as a
    /// disk that stops answering for a while would (fault injection for tests).
    pub fn stall_writes_for(&self, duration: Duration) {
        self.lock().stalled_until = Some(tokio::time::Instant::now() + duration);
    }

    /// The stored hard state.
    #[must_use]
    pub fn hard_state(&self) -> HardState {
        self.lock().hard_state
    }

    /// The stored entries (those after the snapshot).
    #[must_use]
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().entries.clone()
    }

    /// The stored snapshot.
    #[must_use]
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.lock().snapshot.clone()
    }

    /// How many writes (`persist` and `store_snapshot` calls) succeeded: fewer than the
    /// node's `Ready`s when group commit merged some.
    #[must_use]
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        // Nothing panics while holding the lock, so a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn wait_latency(&self) {
        let stalled_until = self.lock().stalled_until;
        if let Some(until) = stalled_until {
            tokio::time::sleep_until(until).await;
        }
        if let Some(latency) = self.latency {
            tokio::time::sleep(latency).await;
        }
    }
}

fn storage_error(operation: String, reason: &str) -> Error {
    Error::Storage {
        operation,
        source: ErrorSource::new(std::io::Error::other(reason.to_string())),
    }
}

impl MemState {
    fn snapshot_index(&self) -> LogIndex {
        self.snapshot.as_ref().map_or(LogIndex::ZERO, |snapshot| snapshot.meta.last_log_id.index)
    }

    fn last_index(&self) -> LogIndex {
        self.entries.last().map_or(self.snapshot_index(), |entry| entry.log_id.index)
    }

    fn write_entries(&mut self, mut entries: Vec<Entry>) -> Result<(), Error> {
        let snapshot_index = self.snapshot_index();
        let covered = entries.partition_point(|entry| entry.log_id.index <= snapshot_index);
        let Some(first) = entries.get(covered) else {
            return Ok(());
        };
        let first_index = first.log_id.index;
        if first_index > self.last_index().next() {
            return Err(storage_error(
                format!("persisting entries from index {first_index}"),
                &format!(
                    "the write leaves a hole after the last stored index {}",
                    self.last_index()
                ),
            ));
        }
        let keep = first_index.distance_from(snapshot_index.next());
        self.entries.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        // Moving the vector's tail in one piece: this is the benchmarks' hot path.
        entries.drain(..covered);
        self.entries.append(&mut entries);
        Ok(())
    }
}

impl LogStore for MemLogStore {
    async fn load(&mut self) -> Result<RestoredState, Error> {
        let state = self.lock();
        let membership = state
            .snapshot
            .as_ref()
            .map_or_else(|| state.membership.clone(), |snapshot| snapshot.meta.membership.clone());
        Ok(RestoredState {
            hard_state: state.hard_state,
            membership,
            snapshot: state.snapshot.clone(),
            entries: state.entries.clone(),
            applied_index: LogIndex::ZERO,
        })
    }

    async fn persist(
        &mut self,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
    ) -> Result<(), Error> {
        self.wait_latency().await;
        let mut state = self.lock();
        if state.fail_writes {
            return Err(storage_error("persisting a write".to_string(), "injected write failure"));
        }
        state.write_entries(entries)?;
        if let Some(hard_state) = hard_state {
            state.hard_state = hard_state;
        }
        state.writes += 1;
        Ok(())
    }

    async fn store_snapshot(&mut self, snapshot: Snapshot) -> Result<(), Error> {
        self.wait_latency().await;
        let mut state = self.lock();
        if state.fail_writes {
            return Err(storage_error(
                format!("storing the snapshot at {}", snapshot.meta.last_log_id),
                "injected write failure",
            ));
        }
        let last = snapshot.meta.last_log_id;
        let ahead = state.written_ahead.len();
        state.written_ahead.retain(|&written| written != last);
        if state.written_ahead.len() < ahead {
            state.stored_written_ahead += 1;
        }
        if last.index <= state.snapshot_index() {
            return Ok(());
        }
        let keeps_suffix = state.entries.iter().any(|entry| entry.log_id == last);
        if keeps_suffix {
            state.entries.retain(|entry| entry.log_id.index > last.index);
        } else {
            state.entries.clear();
        }
        state.snapshot = Some(snapshot);
        state.writes += 1;
        Ok(())
    }

    fn snapshot_writer(&self) -> Option<SnapshotWriter> {
        if !self.writes_ahead {
            return None;
        }
        let state = Arc::clone(&self.state);
        Some(SnapshotWriter::new(move |snapshot| {
            let latency = {
                let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
                state.writes_ahead_started += 1;
                state.write_ahead_latency
            };
            // On the blocking pool, where a disk write blocks too.
            std::thread::sleep(latency);
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            let last = snapshot.meta.last_log_id;
            if state.fail_writes_ahead {
                let operation = format!("writing the snapshot at {last} ahead of its switch");
                return Err(storage_error(operation, "injected write failure"));
            }
            state.written_ahead.push(last);
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use raft_core::SnapshotMeta;
    use raft_core::{EntryPayload, LogId, NodeId, Term};

    fn entry(term: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(Term(term), LogIndex(index)), payload: EntryPayload::Empty }
    }

    fn store() -> MemLogStore {
        MemLogStore::new(Membership::with_voters([NodeId(1)]))
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn persist_overwrites_the_log_from_the_first_entry() {
        let mut store = store();
        block_on(async {
            store.persist(None, vec![entry(1, 1), entry(1, 2), entry(1, 3)]).await.unwrap();
            let hard_state =
                HardState { term: Term(2), voted_for: None, commit_index: LogIndex(1) };
            store.persist(Some(hard_state), vec![entry(2, 2)]).await.unwrap();
            let restored = store.load().await.unwrap();
            assert_eq!(restored.entries, vec![entry(1, 1), entry(2, 2)]);
            assert_eq!(restored.hard_state, hard_state);
        });
    }

    #[test]
    fn persist_refuses_a_hole() {
        let mut store = store();
        let error = block_on(store.persist(None, vec![entry(1, 2)])).unwrap_err();
        assert!(matches!(error, Error::Storage { .. }), "{error}");
        assert!(error.to_string().contains("index 2"), "{error}");
    }

    #[test]
    fn snapshot_keeps_a_matching_suffix_and_drops_a_diverging_log() {
        let mut store = store();
        let membership = Membership::with_voters([NodeId(1)]);
        let snapshot = |term, index| Snapshot {
            meta: SnapshotMeta {
                last_log_id: LogId::new(Term(term), LogIndex(index)),
                membership: membership.clone(),
            },
            data: Bytes::from_static(b"state"),
        };
        block_on(async {
            store.persist(None, vec![entry(1, 1), entry(1, 2), entry(1, 3)]).await.unwrap();
            store.store_snapshot(snapshot(1, 2)).await.unwrap();
            assert_eq!(store.entries(), vec![entry(1, 3)]);
            // A leader's snapshot whose last entry we do not hold replaces the whole log.
            store.store_snapshot(snapshot(2, 3)).await.unwrap();
            assert!(store.entries().is_empty());
            // An older snapshot changes nothing.
            store.store_snapshot(snapshot(1, 2)).await.unwrap();
            let restored = store.load().await.unwrap();
            assert_eq!(restored.compacted(), LogId::new(Term(2), LogIndex(3)));
            // Entries the snapshot covers are skipped; later ones follow it.
            store.persist(None, vec![entry(2, 3), entry(2, 4)]).await.unwrap();
            assert_eq!(store.entries(), vec![entry(2, 4)]);
        });
    }

    #[test]
    fn injected_failure_fails_every_later_write() {
        let mut store = store();
        store.fail_writes();
        let error = block_on(store.persist(None, vec![entry(1, 1)])).unwrap_err();
        assert!(
            error.to_string().contains("injected write failure") || {
                use std::error::Error as _;
                error.source().is_some_and(|s| s.to_string().contains("injected"))
            }
        );
        assert_eq!(store.writes(), 0);
    }
}
