//! [`RedbLogStore`]: the durable [`LogStore`], and [`LogReader`], its read side.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use raft_core::{Entry, HardState, LogId, LogIndex, Membership, RestoredState, Snapshot, Term};
use raft_runtime::LogStore;
use redb::{Database, Durability, ReadableDatabase};
use tracing::{debug, info, warn};

use crate::blocking::{self, BlockingStore};
use crate::error::{Error, database_error, io_error};
use crate::file_system::{
    FileSystem, RealFileSystem, create_directory_all, lock_store, sync_directory,
};
use crate::log_view::LogView;
use crate::redb_backend::{self, EmptyFile};
use crate::snapshot_file::{self, SnapshotRecord};
use crate::stats::StoreStats;
use crate::tables::{
    self, ENTRIES, FIRST_INDEX_KEY, HARD_STATE, HARD_STATE_KEY, META, SNAPSHOT_KEY,
};

/// The database file's name inside the store's directory.
pub const DATABASE_FILE: &str = "raft-log.redb";
/// The database file's name while [`RedbLogStore::create_with`] builds it.
const TEMPORARY_DATABASE_FILE: &str = "raft-log.redb.tmp";

/// How a store keeps its log in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// The most bytes (as [`Entry::size_bytes`] counts them) of recent entries kept in
    /// memory for replication reads. The default, 32 MiB, holds the last few seconds of a
    /// busy leader's writes, which is what followers that keep up ask for.
    pub tail_cache_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig { tail_cache_bytes: 32 << 20 }
    }
}

/// A node's durable Raft state in one directory: a redb database (hard state, log entries,
/// metadata) and the current snapshot file.
///
/// Implements [`LogStore`] for the `raft_runtime` driver. Each `persist` is one
/// durable redb transaction however many entries it carries (the driver merges queued
/// writes: group commit). Work runs on tokio's blocking pool, so a fsync never stalls the
/// runtime's worker threads (see the crate documentation).
///
/// Only this value writes; [`RedbLogStore::reader`] hands out read handles for replication
/// reads and statistics. `F` is the file system (the real one unless a test injects
/// faults): the database file, the snapshot files and the directory all go through it, the
/// database by way of an adapter that implements redb's `StorageBackend` on a
/// [`StorageFile`](crate::StorageFile).
#[derive(Debug)]
pub struct RedbLogStore<F: FileSystem = RealFileSystem> {
    shared: Arc<Shared<F>>,
}

/// A read handle on a [`RedbLogStore`]: replication reads, terms and statistics. Cheap to
/// clone; it sees what the store has made durable.
#[derive(Clone, Debug)]
pub struct LogReader<F: FileSystem = RealFileSystem> {
    shared: Arc<Shared<F>>,
}

#[derive(Debug)]
struct Shared<F: FileSystem> {
    file_system: F,
    directory: PathBuf,
    path: PathBuf,
    database: Database,
    writer: Mutex<Writer>,
    view: Mutex<LogView>,
    /// The snapshot file written ahead of its switch, if any. Lock order: `writer` first,
    /// then this.
    written_ahead: snapshot_file::WrittenAhead,
    stats: StoreStats,
    /// The lock on the database file, held for the store's life. Declared after
    /// `database` so that it is released only once redb has closed the file.
    _lock: F::Lock,
}

/// The writer's state: touched by one call at a time.
#[derive(Debug)]
struct Writer {
    snapshot: Option<SnapshotRecord>,
    /// An earlier write failed: the durable state is unknown.
    failed: bool,
    /// Reused to encode entries.
    buffer: Vec<u8>,
    /// The lowest index of compacted entries still stored (`None`: none). Removing a
    /// snapshot's worth of entries in one transaction took 200–350 ms for 13,000 entries,
    /// stalling every write behind it; they go [`PURGE_BATCH`] at a time with later writes.
    garbage_from: Option<u64>,
}

/// The fewest compacted entries removed with each later write (at least twice the entries
/// the write appends): at about 20 µs each, 64 add about a millisecond to a write.
const PURGE_BATCH: u64 = 64;

impl RedbLogStore<RealFileSystem> {
    /// Opens the store in `directory`, checking and reading back everything it holds.
    ///
    /// # Errors
    ///
    /// As [`RedbLogStore::open_with`].
    pub fn open(directory: &Path, config: StoreConfig) -> Result<RedbLogStore, Error> {
        RedbLogStore::open_with(RealFileSystem, directory, config)
    }

    /// Creates an empty store in `directory` (created if missing) for a new node of a
    /// cluster whose voters are `membership` (`Membership::default()` for a node joining a
    /// running cluster), like `MemLogStore::new`.
    ///
    /// # Errors
    ///
    /// As [`RedbLogStore::create_with`].
    pub fn create(
        directory: &Path,
        membership: &Membership,
        config: StoreConfig,
    ) -> Result<RedbLogStore, Error> {
        RedbLogStore::create_with(RealFileSystem, directory, membership, config)
    }

    /// Opens the store in `directory`, or creates it with `membership` when there is none.
    ///
    /// # Errors
    ///
    /// As [`RedbLogStore::open`] and [`RedbLogStore::create`].
    pub fn open_or_create(
        directory: &Path,
        membership: &Membership,
        config: StoreConfig,
    ) -> Result<RedbLogStore, Error> {
        match RedbLogStore::open(directory, config.clone()) {
            Err(Error::NotFound { .. }) => RedbLogStore::create(directory, membership, config),
            opened => opened,
        }
    }
}

impl<F: FileSystem> RedbLogStore<F> {
    /// Opens the store in `directory` on `file_system`, checking and reading back
    /// everything it holds.
    ///
    /// Snapshot files the database does not name (an older snapshot, or a newer one a
    /// crash left before the switch) are removed. An empty database file is refused, never
    /// initialized: a store's file always holds at least its first transaction.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the directory holds no store; [`Error::Locked`] when
    /// another process or handle has it open; [`Error::Open`], [`Error::Damaged`],
    /// [`Error::ForeignFile`], [`Error::UnsupportedVersion`], [`Error::CorruptRecord`] or
    /// [`Error::CorruptEntry`] for a file that is not a readable store, each naming the
    /// file and what is wrong; [`Error::Io`].
    pub fn open_with(
        file_system: F,
        directory: &Path,
        config: StoreConfig,
    ) -> Result<RedbLogStore<F>, Error> {
        let path = directory.join(DATABASE_FILE);
        let file = match file_system.open_file(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound { path });
            }
            Err(error) => return Err(io_error("opening the database", &path)(error)),
        };
        // The file exists, so taking the lock creates nothing.
        let lock = lock_store(&file_system, &path)?;
        let database = redb_backend::open(&path, file, EmptyFile::Refuse)?;
        let (records, view) = tables::read_all(&path, &database, config.tail_cache_bytes, None)?;
        let keep = records.snapshot.as_ref().map(|record| record.file_name.as_str());
        for removed in snapshot_file::remove_others(&file_system, directory, keep)? {
            info!(path = %removed.display(), "removed a snapshot file the store does not use");
        }
        info!(
            path = %path.display(),
            compacted = %view.compacted,
            last = %view.last,
            term = %records.hard_state.term,
            "opened the log store"
        );
        let writer = Writer {
            snapshot: records.snapshot,
            failed: false,
            buffer: Vec::new(),
            garbage_from: records.garbage_from,
        };
        let shared = Shared {
            file_system,
            directory: directory.to_path_buf(),
            path,
            database,
            writer: Mutex::new(writer),
            view: Mutex::new(view),
            written_ahead: snapshot_file::WrittenAhead::default(),
            stats: StoreStats::default(),
            _lock: lock,
        };
        Ok(RedbLogStore { shared: Arc::new(shared) })
    }

    /// Creates an empty store in `directory` on `file_system`, for a new node of a cluster
    /// whose voters are `membership`.
    ///
    /// Every directory made is synced into its parent. The database is built under a
    /// temporary name (its first transaction durable), renamed into place and the
    /// directory synced, so after a crash during creation the store is either complete or
    /// absent (and the next `create` starts over).
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`] when the directory already holds a store; [`Error::Locked`]
    /// when another process is creating it; [`Error::Io`], [`Error::Database`].
    pub fn create_with(
        file_system: F,
        directory: &Path,
        membership: &Membership,
        config: StoreConfig,
    ) -> Result<RedbLogStore<F>, Error> {
        // Each directory made is synced into its parent before the database inside counts.
        create_directory_all(&file_system, directory)?;
        let path = directory.join(DATABASE_FILE);
        if file_system.exists(&path).map_err(io_error("looking for the database", &path))? {
            return Err(Error::AlreadyExists { path });
        }
        let temporary = directory.join(TEMPORARY_DATABASE_FILE);
        build_database(&file_system, &temporary, membership)?;
        file_system
            .rename(&temporary, &path)
            .map_err(io_error("renaming the new database to", &path))?;
        sync_directory(&file_system, directory)?;
        info!(path = %path.display(), "created the log store");
        RedbLogStore::open_with(file_system, directory, config)
    }

    /// A read handle for replication reads and statistics.
    #[must_use]
    pub fn reader(&self) -> LogReader<F> {
        LogReader { shared: Arc::clone(&self.shared) }
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Reads back everything stored, as [`LogStore::load`] does, on the calling thread.
    ///
    /// # Errors
    ///
    /// [`Error::Database`], [`Error::CorruptEntry`], [`Error::CorruptRecord`], and for the
    /// snapshot file [`Error::Io`] and [`Error::CorruptSnapshot`].
    pub fn load_blocking(&mut self) -> Result<RestoredState, Error> {
        self.shared.load()
    }

    /// Writes `hard_state` and `entries` as one durable transaction, as
    /// [`LogStore::persist`] does, on the calling thread.
    ///
    /// # Errors
    ///
    /// [`Error::LogHole`] when the entries do not follow the log (nothing is written);
    /// [`Error::Unusable`] after an earlier failure; [`Error::Database`] or
    /// [`Error::Encode`], after which the store refuses work until reopened.
    pub fn persist_blocking(
        &mut self,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
    ) -> Result<(), Error> {
        self.shared.persist(hard_state, entries)
    }

    /// Makes `snapshot` the stored one and compacts the log, as [`LogStore::store_snapshot`]
    /// does, on the calling thread. Returns whether it replaced the stored snapshot (an
    /// older one is ignored).
    ///
    /// # Errors
    ///
    /// As [`RedbLogStore::persist_blocking`], and [`Error::Io`] for the snapshot file.
    pub fn store_snapshot_blocking(&mut self, snapshot: &Snapshot) -> Result<bool, Error> {
        self.shared.store_snapshot(snapshot)
    }

    /// Writes `snapshot`'s file durably ahead of the
    /// [`RedbLogStore::store_snapshot_blocking`] call that makes it current, as the store's
    /// `SnapshotWriter` does for the driver: without the writer's lock, so log writes go on
    /// meanwhile. The file stays a stray (removed at the next open, or by the next stored
    /// snapshot) until that call names it; a snapshot not newer than the stored one writes
    /// nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Unusable`] after an earlier failure; [`Error::Io`] or [`Error::Encode`]
    /// for the file (the log is untouched and keeps taking writes).
    pub fn write_snapshot_ahead_blocking(&self, snapshot: &Snapshot) -> Result<(), Error> {
        self.shared.write_ahead(snapshot)
    }
}

/// Writes a new database holding an empty store at `temporary`, its first transaction
/// durable. A file left there by an interrupted creation is overwritten: nothing in it was
/// ever used.
fn build_database<F: FileSystem>(
    file_system: &F,
    temporary: &Path,
    membership: &Membership,
) -> Result<(), Error> {
    // Locked before it is truncated, so a second process creating the same store fails
    // instead of destroying this one's file.
    let _lock = lock_store(file_system, temporary)?;
    let file =
        file_system.create_file(temporary).map_err(io_error("creating the database", temporary))?;
    let database = redb_backend::open(temporary, file, EmptyFile::Initialize)?;
    let operation = "initializing a new store";
    let mut transaction =
        database.begin_write().map_err(|e| database_error(temporary, operation, e))?;
    transaction
        .set_durability(Durability::Immediate)
        .map_err(|e| database_error(temporary, operation, e))?;
    tables::initialize(temporary, &transaction, membership)?;
    transaction.commit().map_err(|e| database_error(temporary, operation, e))?;
    // Closed (redb writes its allocator state and syncs) before the lock is released.
    drop(database);
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The view is updated only after a durable write, with no fallible step while held,
    // so a poisoned lock still guards a consistent value.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<F: FileSystem> Shared<F> {
    fn writer(&self) -> Result<MutexGuard<'_, Writer>, Error> {
        // A write that panicked left its outcome unknown: the store refuses further work.
        let writer = self.writer.lock().map_err(|_| Error::Unusable { path: self.path.clone() })?;
        if writer.failed {
            return Err(Error::Unusable { path: self.path.clone() });
        }
        Ok(writer)
    }

    fn load(&self) -> Result<RestoredState, Error> {
        let writer = self.writer()?;
        let mut entries = Vec::new();
        let (records, _) = tables::read_all(&self.path, &self.database, 0, Some(&mut entries))?;
        debug_assert_eq!(records.snapshot, writer.snapshot, "the writer's record is durable");
        drop(writer);
        let snapshot = records
            .snapshot
            .as_ref()
            .map(|record| snapshot_file::read(&self.file_system, &self.directory, record))
            .transpose()?;
        let membership = snapshot
            .as_ref()
            .map_or(records.bootstrap, |snapshot| snapshot.meta.membership.clone());
        Ok(RestoredState {
            hard_state: records.hard_state,
            membership,
            snapshot,
            entries,
            applied_index: LogIndex::ZERO,
        })
    }

    fn persist(&self, hard_state: Option<HardState>, mut entries: Vec<Entry>) -> Result<(), Error> {
        let started = Instant::now();
        let mut writer = self.writer()?;
        let (compacted, last) = {
            let view = lock(&self.view);
            (view.compacted, view.last)
        };
        let covered = entries.partition_point(|entry| entry.log_id.index <= compacted.index);
        entries.drain(..covered);
        let first_index = entries.first().map(|entry| entry.log_id.index);
        if let Some(first_index) = first_index
            && first_index > last.index.next()
        {
            return Err(Error::LogHole { first_index, last_log_id: last });
        }
        if hard_state.is_none() && entries.is_empty() {
            return Ok(());
        }
        let outcome = self.write_transaction(&mut writer, hard_state, &entries, last);
        let (bytes, commit) = match outcome {
            Ok(figures) => figures,
            Err(error) => {
                writer.failed = true;
                warn!(path = %self.path.display(), %error, "a durable write failed");
                return Err(error);
            }
        };
        let count = entries.len() as u64;
        if let Some(first_index) = first_index {
            let mut view = lock(&self.view);
            view.truncate_from(first_index);
            view.append(entries);
        }
        drop(writer);
        self.stats.record_persist(count, bytes, started.elapsed(), commit);
        Ok(())
    }

    /// One durable transaction: removes the stored entries the write overwrites, inserts
    /// the new ones and the hard state. Returns the bytes written and the commit's time.
    fn write_transaction(
        &self,
        writer: &mut Writer,
        hard_state: Option<HardState>,
        entries: &[Entry],
        last: LogId,
    ) -> Result<(u64, Duration), Error> {
        let path = &self.path;
        let operation = || blocking::PersistOperation::of(entries).to_string();
        let fail = |source: redb::Error| database_error(path, operation(), source);
        let mut transaction = self.database.begin_write().map_err(|e| fail(e.into()))?;
        transaction.set_durability(Durability::Immediate).map_err(|e| fail(e.into()))?;
        let mut bytes = 0_u64;
        if let Some(from) = writer.garbage_from {
            let first_index =
                writer.snapshot.as_ref().map_or(0, |record| record.meta.last_log_id.index.next().0);
            // At least twice what this write appends, so the garbage never grows.
            let batch = PURGE_BATCH.max(2 * entries.len() as u64);
            let until = from.saturating_add(batch).min(first_index);
            let mut table = transaction.open_table(ENTRIES).map_err(|e| fail(e.into()))?;
            table.retain_in(from..until, |_, _| false).map_err(|e| fail(e.into()))?;
            // Committed with this write; if it fails, the store is unusable anyway.
            writer.garbage_from = (until < first_index).then_some(until);
        }
        if let Some(first) = entries.first() {
            let mut table = transaction.open_table(ENTRIES).map_err(|e| fail(e.into()))?;
            if first.log_id.index <= last.index {
                debug!(from = %first.log_id.index, to = %last.index, "truncating a conflicting suffix");
                table
                    .retain_in(first.log_id.index.0.., |_, _| false)
                    .map_err(|e| fail(e.into()))?;
            }
            let mut buffer = std::mem::take(&mut writer.buffer);
            for entry in entries {
                buffer.clear();
                buffer = postcard::to_extend(entry, buffer).map_err(|error| Error::Encode {
                    path: path.clone(),
                    what: "log entry",
                    reason: error.to_string(),
                })?;
                bytes += buffer.len() as u64;
                table
                    .insert(entry.log_id.index.0, buffer.as_slice())
                    .map_err(|e| fail(e.into()))?;
            }
            writer.buffer = buffer;
        }
        if let Some(hard_state) = hard_state {
            let encoded = tables::encode(path, "hard state", &hard_state)?;
            bytes += encoded.len() as u64;
            let mut table = transaction.open_table(HARD_STATE).map_err(|e| fail(e.into()))?;
            table.insert(HARD_STATE_KEY, encoded.as_slice()).map_err(|e| fail(e.into()))?;
        }
        let commit_started = Instant::now();
        transaction.commit().map_err(|e| fail(e.into()))?;
        Ok((bytes, commit_started.elapsed()))
    }

    fn store_snapshot(&self, snapshot: &Snapshot) -> Result<bool, Error> {
        let started = Instant::now();
        let mut writer = self.writer()?;
        let last_log_id = snapshot.meta.last_log_id;
        let keep_suffix = {
            let view = lock(&self.view);
            if last_log_id.index <= view.compacted.index {
                debug!(%last_log_id, compacted = %view.compacted, "ignored an older snapshot");
                return Ok(false);
            }
            view.term_at(last_log_id.index) == Some(last_log_id.term)
        };
        let first_stored = {
            let view = lock(&self.view);
            view.compacted.index.next().0
        };
        let mut written_ahead = self.written_ahead.hold();
        let outcome = written_ahead
            .file_for(&self.file_system, &self.directory, snapshot)
            .and_then(|(record, ahead)| {
                self.switch_snapshot(&record, keep_suffix).map(|()| (record, ahead))
            });
        let (record, ahead) = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                writer.failed = true;
                warn!(path = %self.path.display(), %error, "storing a snapshot failed");
                return Err(error);
            }
        };
        lock(&self.view).compact_to(last_log_id, keep_suffix);
        if keep_suffix {
            // The entries up to the snapshot stay stored until later writes purge them.
            let from = writer.garbage_from.unwrap_or(first_stored).min(first_stored);
            writer.garbage_from = Some(from).filter(|&from| from <= last_log_id.index.0);
        } else {
            writer.garbage_from = None;
        }
        let current = record.file_name.clone();
        writer.snapshot = Some(record);
        drop(writer);
        // The new snapshot is durable and named: older files are garbage. Failing to remove
        // one loses nothing (the next open removes it), so it is not fatal.
        match snapshot_file::remove_others(&self.file_system, &self.directory, Some(&current)) {
            Ok(removed) => debug!(files = removed.len(), "removed older snapshot files"),
            Err(error) => warn!(%error, "could not remove an older snapshot file"),
        }
        drop(written_ahead);
        let bytes = snapshot.data.len() as u64;
        info!(%last_log_id, bytes, keep_suffix, written_ahead = ahead, "stored a snapshot");
        if !ahead {
            self.stats.record_snapshot(bytes, started.elapsed());
        }
        Ok(true)
    }

    /// Writes `snapshot`'s file durably ahead of its switch (the store's `SnapshotWriter`),
    /// without the writer's lock, so log writes go on meanwhile. Until the switch names it
    /// the file is a stray: a crash leaves it for the next open to remove.
    fn write_ahead(&self, snapshot: &Snapshot) -> Result<(), Error> {
        drop(self.writer()?);
        let compacted = lock(&self.view).compacted;
        let (file_system, directory) = (&self.file_system, &self.directory);
        self.written_ahead.write(file_system, directory, snapshot, compacted, &self.stats)
    }

    /// Names the new snapshot file in the metadata and moves the log's first index past
    /// it, in one durable transaction: after a crash, the database names either the old
    /// snapshot with the old log or the new one with the compacted log. With `keep_suffix`,
    /// the compacted entries stay stored (below the first index, where reads skip them)
    /// and later writes purge them; otherwise the whole stored log disagrees with the
    /// snapshot and goes now.
    fn switch_snapshot(&self, record: &SnapshotRecord, keep_suffix: bool) -> Result<(), Error> {
        let path = &self.path;
        let last_log_id = record.meta.last_log_id;
        let operation = || format!("switching to the snapshot at {last_log_id}");
        let fail = |source: redb::Error| database_error(path, operation(), source);
        let mut transaction = self.database.begin_write().map_err(|e| fail(e.into()))?;
        transaction.set_durability(Durability::Immediate).map_err(|e| fail(e.into()))?;
        {
            let mut entries = transaction.open_table(ENTRIES).map_err(|e| fail(e.into()))?;
            if !keep_suffix {
                entries.retain(|_, _| false).map_err(|e| fail(e.into()))?;
            }
            let mut meta = transaction.open_table(META).map_err(|e| fail(e.into()))?;
            let encoded = tables::encode(path, "snapshot record", record)?;
            meta.insert(SNAPSHOT_KEY, encoded.as_slice()).map_err(|e| fail(e.into()))?;
            let first_index = last_log_id.index.next().0.to_le_bytes();
            meta.insert(FIRST_INDEX_KEY, first_index.as_slice()).map_err(|e| fail(e.into()))?;
        }
        transaction.commit().map_err(|e| fail(e.into()))?;
        Ok(())
    }
}

impl<F: FileSystem> LogReader<F> {
    /// The stored entries from `start` up to before `end`, at most `bytes_max` bytes (as
    /// [`Entry::size_bytes`] counts them) but at least one entry when any is in range.
    ///
    /// Entries in the in-memory tail (the recent ones) are served without touching the
    /// disk; older ones come from one read transaction.
    ///
    /// # Errors
    ///
    /// [`Error::Compacted`] when `start` is before the first stored index;
    /// [`Error::Database`] or [`Error::CorruptEntry`] for a read from disk.
    pub fn entries(
        &self,
        start: LogIndex,
        end: LogIndex,
        bytes_max: Option<NonZeroU64>,
    ) -> Result<Vec<Entry>, Error> {
        let bytes_max = bytes_max.map_or(u64::MAX, NonZeroU64::get);
        let end = {
            let view = lock(&self.shared.view);
            let first_index = view.first_index();
            if start < first_index {
                return Err(Error::Compacted { requested: start, first_index });
            }
            let end = end.min(view.last.index.next());
            if start >= end {
                return Ok(Vec::new());
            }
            if view.tail_first_index().is_some_and(|first| first <= start) {
                self.shared.stats.record_read(true);
                return Ok(view.tail_range(start, end, bytes_max));
            }
            end
        };
        self.shared.stats.record_read(false);
        self.read_from_disk(start, end, bytes_max)
    }

    fn read_from_disk(
        &self,
        start: LogIndex,
        end: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, Error> {
        let path = &self.shared.path;
        let operation = || format!("reading entries {start}..{end}");
        let fail = |source: redb::Error| database_error(path, operation(), source);
        let transaction = self.shared.database.begin_read().map_err(|e| fail(e.into()))?;
        let table = transaction.open_table(ENTRIES).map_err(|e| fail(e.into()))?;
        let mut entries = Vec::new();
        let mut bytes = 0_u64;
        for item in table.range(start.0..end.0).map_err(|e| fail(e.into()))? {
            let (key, value) = item.map_err(|e| fail(e.into()))?;
            let entry = tables::decode_entry(path, key.value(), value.value())?;
            bytes += entry.size_bytes();
            if bytes > bytes_max && !entries.is_empty() {
                break;
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    /// The term of the entry at `index` (the snapshot's last entry or a stored one), from
    /// memory; `None` outside the log.
    #[must_use]
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        lock(&self.shared.view).term_at(index)
    }

    /// The first index the log holds (one past the snapshot's last entry).
    #[must_use]
    pub fn first_index(&self) -> LogIndex {
        lock(&self.shared.view).first_index()
    }

    /// The last stored entry's id (the snapshot's last entry when the log is empty).
    #[must_use]
    pub fn last_log_id(&self) -> LogId {
        lock(&self.shared.view).last
    }

    /// The last entry the snapshot covers (`LogId::ZERO` without one).
    #[must_use]
    pub fn compacted(&self) -> LogId {
        lock(&self.shared.view).compacted
    }

    /// The store's counters: durable-write latency (fsync included), bytes, read sources.
    #[must_use]
    pub fn stats(&self) -> &StoreStats {
        &self.shared.stats
    }
}

impl<F: FileSystem> BlockingStore for Shared<F> {
    fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<RestoredState, Error> {
        Shared::load(self)
    }

    fn persist(&self, hard_state: Option<HardState>, entries: Vec<Entry>) -> Result<(), Error> {
        Shared::persist(self, hard_state, entries)
    }

    fn store_snapshot(&self, snapshot: &Snapshot) -> Result<bool, Error> {
        Shared::store_snapshot(self, snapshot)
    }
    fn write_snapshot_ahead(&self, snapshot: &Snapshot) -> Result<(), Error> {
        self.write_ahead(snapshot)
    }
}

impl<F: FileSystem> LogStore for RedbLogStore<F> {
    async fn load(&mut self) -> Result<RestoredState, raft_runtime::Error> {
        blocking::load(&self.shared).await
    }

    async fn persist(
        &mut self,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
    ) -> Result<(), raft_runtime::Error> {
        blocking::persist(&*self.shared, hard_state, entries)
    }

    async fn store_snapshot(&mut self, snapshot: Snapshot) -> Result<(), raft_runtime::Error> {
        blocking::store_snapshot(&*self.shared, &snapshot)
    }

    fn snapshot_writer(&self) -> Option<raft_runtime::SnapshotWriter> {
        Some(blocking::snapshot_writer(&self.shared))
    }
}
