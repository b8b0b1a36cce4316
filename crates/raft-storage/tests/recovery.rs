//! Opening existing stores: recovery of what was stored, and clear errors for damaged,
//! truncated or foreign files (never a silent reset). Also the read side (`LogReader`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use common::{block_on, chain, entries, entry, membership, snapshot};
use raft_core::{LogIndex, Term};
use raft_runtime::LogStore;
use raft_storage::{DATABASE_FILE, Error, RedbLogStore, StoreConfig};
use redb::TableDefinition;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_entries");

fn create(directory: &Path) -> RedbLogStore {
    RedbLogStore::create(directory, &membership(), StoreConfig::default()).unwrap()
}

fn open(directory: &Path) -> Result<RedbLogStore, Error> {
    RedbLogStore::open(directory, StoreConfig::default())
}

fn snapshot_files(directory: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(directory)
        .unwrap()
        .map(|item| item.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_str().unwrap().starts_with("snapshot-"))
        .collect();
    files.sort();
    files
}

/// A store with entries 1..=6 and a snapshot at 4; returns the snapshot file.
fn store_with_snapshot(directory: &Path) -> PathBuf {
    let mut store = create(directory);
    block_on(store.persist(None, entries(1, 1, 6))).unwrap();
    block_on(store.store_snapshot(snapshot(1, 4, &[42; 10_000]))).unwrap();
    let files = snapshot_files(directory);
    assert_eq!(files.len(), 1);
    files.into_iter().next().unwrap()
}

#[test]
fn opening_a_directory_without_a_store_is_not_found() {
    let directory = tempfile::tempdir().unwrap();
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    assert!(error.to_string().contains(DATABASE_FILE), "{error}");
}

#[test]
fn create_refuses_to_overwrite_an_existing_store() {
    let directory = tempfile::tempdir().unwrap();
    drop(create(directory.path()));
    let error =
        RedbLogStore::create(directory.path(), &membership(), StoreConfig::default()).unwrap_err();
    assert!(matches!(error, Error::AlreadyExists { .. }), "{error}");
}

#[test]
fn open_or_create_creates_once_then_opens() {
    let directory = tempfile::tempdir().unwrap();
    let config = StoreConfig::default();
    let mut store =
        RedbLogStore::open_or_create(directory.path(), &membership(), config.clone()).unwrap();
    block_on(store.persist(None, entries(1, 1, 2))).unwrap();
    drop(store);
    let mut store = RedbLogStore::open_or_create(directory.path(), &membership(), config).unwrap();
    assert_eq!(block_on(store.load()).unwrap().entries, entries(1, 1, 2));
}

#[test]
fn a_store_is_used_by_one_process_at_a_time() {
    let directory = tempfile::tempdir().unwrap();
    let _store = create(directory.path());
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(error, Error::Locked { .. }), "{error}");
    let path = directory.path().join(DATABASE_FILE);
    assert!(error.to_string().contains(path.to_str().unwrap()), "{error}");
}

#[test]
fn empty_database_file_is_refused_not_initialized() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join(DATABASE_FILE);
    fs::write(&path, b"").unwrap();
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(error, Error::Open { .. }), "{error}");
    assert!(error.to_string().contains(path.to_str().unwrap()), "{error}");
    // Never reset: redb would happily write a new database into an empty file.
    assert_eq!(fs::metadata(&path).unwrap().len(), 0);
}

#[test]
fn garbage_database_file_is_refused_naming_the_file() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join(DATABASE_FILE);
    fs::write(&path, vec![0xA5; 64 * 1024]).unwrap();
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(error, Error::Open { .. }), "{error}");
    assert!(error.to_string().contains(path.to_str().unwrap()), "{error}");
    // Never reset: the file is untouched.
    assert_eq!(fs::read(&path).unwrap(), vec![0xA5; 64 * 1024]);
}

#[test]
fn truncated_database_file_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = create(directory.path());
    block_on(store.persist(None, entries(1, 1, 200))).unwrap();
    drop(store);
    let path = directory.path().join(DATABASE_FILE);
    let length = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(length / 3).unwrap();
    // redb asserts on this file; the store turns that into an error naming the file.
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(error, Error::Damaged { .. } | Error::Open { .. }), "{error}");
    let text = chain(&error);
    assert!(text.contains(path.to_str().unwrap()), "{text}");
}

#[test]
fn redb_file_written_by_another_program_is_foreign() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join(DATABASE_FILE);
    let database = redb::Database::create(&path).unwrap();
    let transaction = database.begin_write().unwrap();
    transaction
        .open_table(TableDefinition::<&str, u64>::new("users"))
        .unwrap()
        .insert("alice", &1)
        .unwrap();
    transaction.commit().unwrap();
    drop(database);
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(error, Error::ForeignFile { .. }), "{error}");
    assert!(error.to_string().contains("not a raft-storage log database"), "{error}");
}

#[test]
fn database_of_another_format_version_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    drop(create(directory.path()));
    let path = directory.path().join(DATABASE_FILE);
    let database = redb::Database::open(&path).unwrap();
    let transaction = database.begin_write().unwrap();
    {
        let mut meta = transaction.open_table(META).unwrap();
        let mut record = b"raft-storage/log".to_vec();
        record.extend_from_slice(&99_u32.to_le_bytes());
        meta.insert("format", record.as_slice()).unwrap();
    }
    transaction.commit().unwrap();
    drop(database);
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(error, Error::UnsupportedVersion { found: 99, supported: 1, .. }), "{error}");
}

#[test]
fn misplaced_or_undecodable_entry_is_reported_with_its_index() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = create(directory.path());
    block_on(store.persist(None, entries(1, 1, 3))).unwrap();
    drop(store);
    let path = directory.path().join(DATABASE_FILE);
    let rewrite = |key: u64, value: &[u8]| {
        let database = redb::Database::open(&path).unwrap();
        let transaction = database.begin_write().unwrap();
        transaction.open_table(ENTRIES).unwrap().insert(key, value).unwrap();
        transaction.commit().unwrap();
    };
    rewrite(2, &[0xff; 12]);
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(error, Error::CorruptEntry { index: LogIndex(2), .. }), "{error}");
    let entry_five = postcard::to_allocvec(&entry(1, 5)).unwrap();
    rewrite(2, &entry_five);
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(error, Error::CorruptEntry { index: LogIndex(2), .. }), "{error}");
    assert!(error.to_string().contains(path.to_str().unwrap()), "{error}");
}

#[test]
fn snapshot_with_a_flipped_byte_fails_its_checksum() {
    let directory = tempfile::tempdir().unwrap();
    let file = store_with_snapshot(directory.path());
    let mut bytes = fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&file, bytes).unwrap();
    let mut store = open(directory.path()).unwrap();
    let error = store.load_blocking().unwrap_err();
    assert!(matches!(error, Error::CorruptSnapshot { .. }), "{error}");
    assert!(error.to_string().contains("checksum"), "{error}");
    assert!(error.to_string().contains(file.to_str().unwrap()), "{error}");
    // Through the LogStore trait, the node gets a fatal storage error with the cause.
    let error = block_on(store.load()).unwrap_err();
    assert!(matches!(error, raft_runtime::Error::Storage { .. }), "{error}");
    assert!(chain(&error).contains("checksum"), "{}", chain(&error));
}

#[test]
fn truncated_snapshot_file_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let file = store_with_snapshot(directory.path());
    let length = fs::metadata(&file).unwrap().len();
    fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(length - 100).unwrap();
    let error = open(directory.path()).unwrap().load_blocking().unwrap_err();
    assert!(matches!(error, Error::CorruptSnapshot { .. }), "{error}");
    assert!(error.to_string().contains("truncated"), "{error}");
}

#[test]
fn snapshot_file_whose_data_length_wraps_around_its_size_is_refused() {
    // Found by fuzzing (fuzz/regressions/storage_files): a data length near u64::MAX made
    // the expected file size overflow (a panic in debug builds; in release it wrapped to
    // the file's own size and the reader tried to allocate the length).
    let directory = tempfile::tempdir().unwrap();
    let file = store_with_snapshot(directory.path());
    let bytes = fs::read(&file).unwrap();
    let meta_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut damaged = bytes[..16 + meta_len].to_vec();
    damaged.extend_from_slice(&(u64::MAX - 3).to_le_bytes());
    fs::write(&file, damaged).unwrap();
    let error = open(directory.path()).unwrap().load_blocking().unwrap_err();
    assert!(matches!(error, Error::CorruptSnapshot { .. }), "{error}");
    assert!(error.to_string().contains("bytes of data"), "{error}");
}

/// Replaces the snapshot record and the first index with ones for a snapshot at `index`.
fn rewrite_snapshot_record(path: &Path, index: u64) {
    let meta = raft_core::SnapshotMeta {
        last_log_id: raft_core::LogId::new(Term(1), LogIndex(index)),
        membership: membership(),
    };
    let record = postcard::to_allocvec(&(meta, "snapshot-x.snap", 0_u64, 0_u32)).unwrap();
    let database = redb::Database::open(path).unwrap();
    let transaction = database.begin_write().unwrap();
    {
        let mut table = transaction.open_table(META).unwrap();
        table.insert("snapshot", record.as_slice()).unwrap();
        let first_index = index.wrapping_add(1).to_le_bytes();
        table.insert("first_index", first_index.as_slice()).unwrap();
    }
    transaction.commit().unwrap();
}

#[test]
fn snapshot_record_at_the_last_possible_index_is_refused() {
    // Found by fuzzing (fuzz/regressions/storage_files): the log's first index after it
    // overflowed.
    let directory = tempfile::tempdir().unwrap();
    drop(create(directory.path()));
    rewrite_snapshot_record(&directory.path().join(DATABASE_FILE), u64::MAX);
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(error, Error::CorruptRecord { record: "snapshot", .. }), "{error}");
}

#[test]
fn entry_at_the_last_possible_index_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    drop(create(directory.path()));
    let path = directory.path().join(DATABASE_FILE);
    rewrite_snapshot_record(&path, u64::MAX - 1);
    let database = redb::Database::open(&path).unwrap();
    let transaction = database.begin_write().unwrap();
    let last = postcard::to_allocvec(&entry(1, u64::MAX)).unwrap();
    transaction.open_table(ENTRIES).unwrap().insert(u64::MAX, last.as_slice()).unwrap();
    transaction.commit().unwrap();
    drop(database);
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(error, Error::CorruptEntry { index: LogIndex(u64::MAX), .. }), "{error}");
}

#[test]
fn missing_snapshot_file_is_an_error_naming_it() {
    let directory = tempfile::tempdir().unwrap();
    let file = store_with_snapshot(directory.path());
    fs::remove_file(&file).unwrap();
    let error = open(directory.path()).unwrap().load_blocking().unwrap_err();
    assert!(matches!(error, Error::Io { .. }), "{error}");
    assert!(error.to_string().contains(file.to_str().unwrap()), "{error}");
}

#[test]
fn snapshot_file_swapped_for_another_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let file = store_with_snapshot(directory.path());
    let other = tempfile::tempdir().unwrap();
    let mut store = create(other.path());
    block_on(store.persist(None, entries(1, 1, 6))).unwrap();
    block_on(store.store_snapshot(snapshot(1, 4, b"something else"))).unwrap();
    fs::copy(snapshot_files(other.path()).pop().unwrap(), &file).unwrap();
    let error = open(directory.path()).unwrap().load_blocking().unwrap_err();
    assert!(matches!(error, Error::CorruptSnapshot { .. }), "{error}");
}

#[test]
fn leftover_snapshot_files_are_removed_on_open_and_the_named_one_kept() {
    let directory = tempfile::tempdir().unwrap();
    let file = store_with_snapshot(directory.path());
    // What a crash leaves: a half-written file, and a complete one never switched to.
    let half = directory.path().join("snapshot-00000000000000000009-00000000000000000001.snap.tmp");
    let unswitched =
        directory.path().join("snapshot-00000000000000000009-00000000000000000001.snap");
    fs::write(&half, b"half").unwrap();
    fs::write(&unswitched, b"whole but unnamed").unwrap();
    let mut store = open(directory.path()).unwrap();
    assert_eq!(snapshot_files(directory.path()), vec![file]);
    let restored = store.load_blocking().unwrap();
    assert_eq!(restored.compacted().index, LogIndex(4));
}

#[test]
fn a_new_snapshot_replaces_the_old_file() {
    let directory = tempfile::tempdir().unwrap();
    let old = store_with_snapshot(directory.path());
    let mut store = open(directory.path()).unwrap();
    store.store_snapshot_blocking(&snapshot(1, 6, b"six")).unwrap();
    let files = snapshot_files(directory.path());
    assert_eq!(files.len(), 1);
    assert_ne!(files[0], old);
}

#[test]
fn recent_entries_are_read_from_memory_within_a_byte_budget() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = create(directory.path());
    let reader = store.reader();
    block_on(store.persist(None, entries(1, 1, 10))).unwrap();
    block_on(store.persist(None, entries(2, 11, 20))).unwrap();
    let all = reader.entries(LogIndex(1), LogIndex(100), None).unwrap();
    assert_eq!(all.len(), 20);
    let one_size = entry(1, 1).size_bytes();
    let budget = NonZeroU64::new(3 * one_size);
    assert_eq!(reader.entries(LogIndex(5), LogIndex(100), budget).unwrap(), entries(1, 5, 7));
    // A budget smaller than one entry still returns one, so replication progresses.
    let tiny = NonZeroU64::new(1);
    assert_eq!(reader.entries(LogIndex(11), LogIndex(100), tiny).unwrap(), entries(2, 11, 11));
    assert_eq!(reader.entries(LogIndex(21), LogIndex(100), None).unwrap(), Vec::new());
    let stats = reader.stats().report();
    assert_eq!((stats.tail_reads, stats.disk_reads), (3, 0));
    assert_eq!(reader.term_at(LogIndex(10)), Some(Term(1)));
    assert_eq!(reader.term_at(LogIndex(11)), Some(Term(2)));
    assert_eq!(reader.term_at(LogIndex(21)), None);
    assert_eq!(reader.last_log_id().index, LogIndex(20));
}

#[test]
fn older_entries_come_from_disk_and_compacted_ones_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let config = StoreConfig { tail_cache_bytes: 4 * entry(1, 1).size_bytes() };
    let mut store = RedbLogStore::create(directory.path(), &membership(), config).unwrap();
    let reader = store.reader();
    block_on(store.persist(None, entries(1, 1, 10))).unwrap();
    assert_eq!(reader.entries(LogIndex(2), LogIndex(5), None).unwrap(), entries(1, 2, 4));
    assert_eq!(reader.stats().report().disk_reads, 1);
    block_on(store.store_snapshot(snapshot(1, 5, b"five"))).unwrap();
    let error = reader.entries(LogIndex(5), LogIndex(8), None).unwrap_err();
    assert!(matches!(error, Error::Compacted { first_index: LogIndex(6), .. }), "{error}");
    assert_eq!(reader.term_at(LogIndex(5)), Some(Term(1)));
    assert_eq!(reader.first_index(), LogIndex(6));
}

#[test]
fn stats_count_each_durable_write_once() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = create(directory.path());
    block_on(store.persist(None, entries(1, 1, 16))).unwrap();
    block_on(store.persist(None, entries(1, 17, 32))).unwrap();
    let stats = store.reader().stats().report();
    assert_eq!(stats.persists, 2);
    assert_eq!(stats.persisted_entries, 32);
    assert!(stats.persisted_bytes >= 32 * 16, "{stats:?}");
    assert!(stats.commit_latency_total <= stats.persist_latency_total);
    assert_eq!(stats.persist_latency_buckets.iter().sum::<u64>(), 2);
}

/// The stored keys of the entries table, read with redb directly (the store closed).
fn stored_indexes(directory: &Path) -> Vec<u64> {
    let database = redb::Database::open(directory.join(DATABASE_FILE)).unwrap();
    let transaction = redb::ReadableDatabase::begin_read(&database).unwrap();
    let table = transaction.open_table(ENTRIES).unwrap();
    redb::ReadableTable::iter(&table).unwrap().map(|item| item.unwrap().0.value()).collect()
}

#[test]
fn compacted_entries_are_purged_by_later_writes_and_skipped_until_then() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = create(directory.path());
    block_on(store.persist(None, entries(1, 1, 1000))).unwrap();
    block_on(store.store_snapshot(snapshot(1, 900, b"state at 900"))).unwrap();
    drop(store);
    // The snapshot switch left the compacted entries for later: a reopen skips them.
    assert_eq!(stored_indexes(directory.path()).first(), Some(&1));
    let mut store = open(directory.path()).unwrap();
    let restored = block_on(store.load()).unwrap();
    assert_eq!(restored.entries.first().map(|e| e.log_id.index), Some(LogIndex(901)));
    assert_eq!(restored.entries.len(), 100);
    // Each write purges a batch (at least 64), until none is left.
    for index in 1001..1020 {
        block_on(store.persist(None, entries(1, index, index))).unwrap();
    }
    drop(store);
    let stored = stored_indexes(directory.path());
    assert_eq!(stored.first(), Some(&901), "purged up to the snapshot, no further");
    assert_eq!(stored.len(), 119);
    let mut store = open(directory.path()).unwrap();
    let restored = block_on(store.load()).unwrap();
    assert_eq!(restored.entries.len(), 119);
}

#[test]
fn a_snapshot_record_naming_a_file_outside_the_store_is_refused() {
    // Found while writing the storage fuzz target: the record's file name was joined to
    // the directory unchecked, so `../` or an absolute path opened any file.
    let directory = tempfile::tempdir().unwrap();
    let mut store = create(directory.path());
    block_on(store.persist(None, entries(1, 1, 6))).unwrap();
    drop(store);
    let outside = directory.path().join("outside.snap");
    fs::write(&outside, b"not ours").unwrap();
    let meta = raft_core::SnapshotMeta {
        last_log_id: raft_core::LogId::new(Term(1), LogIndex(4)),
        membership: membership(),
    };
    let name = outside.to_str().unwrap();
    let record = postcard::to_allocvec(&(meta, name, 8_u64, 0_u32)).unwrap();
    let database = redb::Database::open(directory.path().join(DATABASE_FILE)).unwrap();
    let transaction = database.begin_write().unwrap();
    {
        let mut table = transaction.open_table(META).unwrap();
        table.insert("snapshot", record.as_slice()).unwrap();
        table.insert("first_index", 5_u64.to_le_bytes().as_slice()).unwrap();
    }
    transaction.commit().unwrap();
    drop(database);
    let error = open(directory.path()).unwrap().load_blocking().unwrap_err();
    assert!(matches!(error, Error::CorruptSnapshot { .. }), "{error}");
    assert!(error.to_string().contains("outside.snap"), "{error}");
    assert!(error.to_string().contains("not the file of its snapshot"), "never opened: {error}");
}

#[test]
fn a_snapshot_written_ahead_is_current_only_at_its_switch_and_a_stray_goes_at_open() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = create(directory.path());
    block_on(store.persist(None, entries(1, 1, 10))).unwrap();
    let written = snapshot(1, 6, &[9; 5_000]);
    store.write_snapshot_ahead_blocking(&written).unwrap();
    assert_eq!(snapshot_files(directory.path()).len(), 1, "written, synced, in place");
    block_on(store.persist(None, entries(1, 11, 12))).unwrap();
    assert!(store.store_snapshot_blocking(&written).unwrap());
    assert_eq!(snapshot_files(directory.path()).len(), 1, "the switch wrote no other");
    // A newer one written ahead but never switched to is a stray at the next open.
    store.write_snapshot_ahead_blocking(&snapshot(1, 9, b"nine")).unwrap();
    assert_eq!(snapshot_files(directory.path()).len(), 2);
    drop(store);
    let mut store = open(directory.path()).unwrap();
    assert_eq!(snapshot_files(directory.path()).len(), 1, "the stray is gone");
    let restored = block_on(store.load()).unwrap();
    assert_eq!(restored.snapshot, Some(written));
    let indexes: Vec<u64> = restored.entries.iter().map(|entry| entry.log_id.index.0).collect();
    assert_eq!(indexes, (7..=12).collect::<Vec<_>>());
}
