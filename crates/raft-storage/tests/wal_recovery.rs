//! Opening `WalLogStore`s after damage: a torn last write is discarded, but a bad record
//! anywhere else, a missing segment or a foreign file is an error naming the file (and the
//! offset), never a silent loss. Also the segment life cycle: rotation and purging.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{TEST_SEGMENT_BYTES, block_on, chain, entries, membership, snapshot};
use raft_runtime::LogStore;
use raft_storage::{Error, WAL_DIRECTORY, WalConfig, WalLogStore};

fn config() -> WalConfig {
    WalConfig { segment_bytes: TEST_SEGMENT_BYTES, ..WalConfig::default() }
}

fn open(directory: &Path) -> Result<WalLogStore, Error> {
    WalLogStore::open(directory, config())
}

/// The segment files (not the next one being preallocated), oldest first.
fn segments(directory: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(directory.join(WAL_DIRECTORY))
        .unwrap()
        .map(|item| item.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "wal"))
        .collect();
    files.sort();
    files
}

/// A store holding `batches` writes of 10 entries each (1..=10*batches).
fn store_with_batches(directory: &Path, batches: u64) -> WalLogStore {
    let mut store = WalLogStore::create(directory, &membership(), config()).unwrap();
    for batch in 0..batches {
        block_on(store.persist(None, entries(1, batch * 10 + 1, batch * 10 + 10))).unwrap();
    }
    store
}

/// Where the last write landed: the byte range in which the newest segment changed.
fn last_write_range(directory: &Path, before: &[u8]) -> (PathBuf, usize, usize) {
    let newest = segments(directory).pop().unwrap();
    let after = fs::read(&newest).unwrap();
    assert_eq!(before.len(), after.len(), "the last write stayed in the same segment");
    let first = before.iter().zip(&after).position(|(a, b)| a != b).unwrap();
    let last = before.iter().zip(&after).rposition(|(a, b)| a != b).unwrap();
    (newest, first, last + 1)
}

fn restored_last_index(directory: &Path) -> u64 {
    let mut store = open(directory).unwrap();
    let restored = block_on(store.load()).unwrap();
    restored.entries.last().unwrap().log_id.index.0
}

#[test]
fn a_torn_last_write_is_discarded_and_the_store_takes_writes_again() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = store_with_batches(directory.path(), 3);
    let before = fs::read(segments(directory.path()).pop().unwrap()).unwrap();
    block_on(store.persist(None, entries(1, 31, 40))).unwrap();
    drop(store);
    let (segment, start, end) = last_write_range(directory.path(), &before);
    // The crash kept the frame's first bytes and lost the rest.
    let mut bytes = fs::read(&segment).unwrap();
    bytes[start + (end - start) / 2..end].fill(0);
    fs::write(&segment, &bytes).unwrap();

    assert_eq!(restored_last_index(directory.path()), 30);
    let mut store = open(directory.path()).unwrap();
    block_on(store.persist(None, entries(2, 31, 32))).unwrap();
    drop(store);
    let mut store = open(directory.path()).unwrap();
    let restored = block_on(store.load()).unwrap();
    assert_eq!(restored.entries.len(), 32);
    assert_eq!(restored.entries.last().unwrap(), &entries(2, 32, 32)[0]);
}

#[test]
fn a_write_that_lost_its_header_but_kept_later_bytes_is_a_torn_tail() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = store_with_batches(directory.path(), 2);
    let before = fs::read(segments(directory.path()).pop().unwrap()).unwrap();
    block_on(store.persist(None, entries(1, 21, 30))).unwrap();
    drop(store);
    let (segment, start, _) = last_write_range(directory.path(), &before);
    let mut bytes = fs::read(&segment).unwrap();
    bytes[start..start + 8].fill(0);
    fs::write(&segment, &bytes).unwrap();
    assert_eq!(restored_last_index(directory.path()), 20);
    // The torn bytes were zeroed: the file is clean after the new write.
    let mut store = open(directory.path()).unwrap();
    block_on(store.persist(None, entries(1, 21, 21))).unwrap();
    drop(store);
    assert_eq!(restored_last_index(directory.path()), 21);
}

#[test]
fn a_flipped_bit_before_valid_records_is_reported_with_segment_and_offset() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = store_with_batches(directory.path(), 1);
    let before = fs::read(segments(directory.path()).pop().unwrap()).unwrap();
    block_on(store.persist(None, entries(1, 11, 20))).unwrap();
    let (segment, start, end) = last_write_range(directory.path(), &before);
    block_on(store.persist(None, entries(1, 21, 30))).unwrap();
    drop(store);
    let mut bytes = fs::read(&segment).unwrap();
    bytes[(start + end) / 2] ^= 0x04;
    fs::write(&segment, &bytes).unwrap();

    let error = open(directory.path()).unwrap_err();
    let Error::CorruptFrame { path, offset, .. } = &error else {
        panic!("expected a corrupt frame, got {error}");
    };
    assert_eq!(path, &segment);
    assert_eq!(*offset, start as u64);
    let text = chain(&error);
    assert!(text.contains(&segment.display().to_string()), "{text}");
    assert!(text.contains(&format!("offset {start}")), "{text}");
}

#[test]
fn a_bad_last_record_of_a_sealed_segment_is_damage_not_a_torn_tail() {
    let directory = tempfile::tempdir().unwrap();
    drop(store_with_batches(directory.path(), 40));
    let files = segments(directory.path());
    assert!(files.len() >= 3, "{files:?}");
    // The last frame of the first segment: the last nonzero bytes.
    let mut bytes = fs::read(&files[0]).unwrap();
    let last = bytes.iter().rposition(|byte| *byte != 0).unwrap();
    bytes[last - 3] ^= 0xff;
    fs::write(&files[0], &bytes).unwrap();
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(&error, Error::CorruptFrame { path, .. } if path == &files[0]), "{error}");
}

#[test]
fn a_missing_segment_is_an_error_naming_it() {
    let directory = tempfile::tempdir().unwrap();
    drop(store_with_batches(directory.path(), 40));
    let files = segments(directory.path());
    fs::remove_file(&files[1]).unwrap();
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(&error, Error::MissingSegment { path, .. } if path == &files[1]), "{error}");
    assert!(error.to_string().contains(&files[1].display().to_string()), "{error}");
}

#[test]
fn a_missing_first_segment_whose_entries_no_snapshot_covers_is_an_error() {
    let directory = tempfile::tempdir().unwrap();
    drop(store_with_batches(directory.path(), 40));
    fs::remove_file(&segments(directory.path())[0]).unwrap();
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(error, Error::MissingSegment { .. }), "{error}");
    assert!(error.to_string().contains("entries 1.."), "{error}");
}

#[test]
fn a_foreign_file_in_the_log_directory_is_refused_by_name() {
    let directory = tempfile::tempdir().unwrap();
    drop(store_with_batches(directory.path(), 2));
    let stray = directory.path().join(WAL_DIRECTORY).join("notes.txt");
    fs::write(&stray, b"hello").unwrap();
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(&error, Error::ForeignFile { path, .. } if path == &stray), "{error}");
}

#[test]
fn a_segment_that_is_not_one_is_foreign_and_another_version_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    drop(store_with_batches(directory.path(), 2));
    let segment = segments(directory.path()).pop().unwrap();
    let original = fs::read(&segment).unwrap();
    fs::write(&segment, b"SQLite format 3\0 and more bytes").unwrap();
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(&error, Error::ForeignFile { path, .. } if path == &segment), "{error}");
    let mut bytes = original;
    bytes[8] = 99;
    fs::write(&segment, &bytes).unwrap();
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(error, Error::UnsupportedVersion { found: 99, .. }), "{error}");
}

#[test]
fn a_segment_renamed_out_of_place_is_detected_by_its_checkpoint() {
    let directory = tempfile::tempdir().unwrap();
    drop(store_with_batches(directory.path(), 40));
    let files = segments(directory.path());
    let newest = files.last().unwrap();
    let next = newest.with_file_name(format!("{:020}.wal", files.len() + 1));
    fs::copy(newest, &next).unwrap();
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(&error, Error::CorruptFrame { path, .. } if path == &next), "{error}");
}

#[test]
fn an_unfinished_segment_is_removed_at_open() {
    let directory = tempfile::tempdir().unwrap();
    drop(store_with_batches(directory.path(), 2));
    let unfinished = directory.path().join(WAL_DIRECTORY).join("00000000000000000002.wal.tmp");
    fs::write(&unfinished, vec![0_u8; 100]).unwrap();
    assert_eq!(restored_last_index(directory.path()), 20);
    assert!(!unfinished.exists());
}

#[test]
fn writes_fill_segments_and_a_snapshot_deletes_those_it_covers() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = store_with_batches(directory.path(), 40);
    let before = segments(directory.path());
    assert!(before.len() >= 3, "{before:?}");
    block_on(store.store_snapshot(snapshot(1, 395, b"state at 395"))).unwrap();
    let after = segments(directory.path());
    assert!(after.len() < before.len(), "before {before:?}, after {after:?}");
    assert_eq!(after.last(), before.last(), "the current segment stays");
    drop(store);
    let mut store = open(directory.path()).unwrap();
    let restored = block_on(store.load()).unwrap();
    assert_eq!(restored.compacted().index.0, 395);
    assert_eq!(restored.entries, entries(1, 396, 400));
    assert_eq!(restored.snapshot.unwrap().data.as_ref(), b"state at 395");
}

#[test]
fn create_refuses_an_existing_store_and_open_refuses_a_second_handle() {
    let directory = tempfile::tempdir().unwrap();
    let store = store_with_batches(directory.path(), 1);
    let error = open(directory.path()).unwrap_err();
    assert!(matches!(error, Error::Locked { .. }), "{error}");
    drop(store);
    let error = WalLogStore::create(directory.path(), &membership(), config()).unwrap_err();
    assert!(matches!(error, Error::AlreadyExists { .. }), "{error}");
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(open(empty.path()), Err(Error::NotFound { .. })));
}

/// Asserts `entries` are exactly indexes `first..=last`.
fn assert_indexes(entries: &[raft_core::Entry], first: u64, last: u64) {
    let indexes: Vec<u64> = entries.iter().map(|entry| entry.log_id.index.0).collect();
    assert_eq!(indexes, (first..=last).collect::<Vec<_>>());
}

fn snapshot_file_names(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(directory)
        .unwrap()
        .map(|item| item.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("snapshot-"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_snapshot_written_ahead_becomes_current_only_at_its_switch() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = store_with_batches(directory.path(), 2);
    let written = snapshot(1, 12, &[7; 5_000]);
    store.write_snapshot_ahead_blocking(&written).unwrap();
    assert_eq!(snapshot_file_names(directory.path()).len(), 1, "written, synced, in place");
    // Appends go on before the switch.
    block_on(store.persist(None, entries(1, 21, 25))).unwrap();
    assert!(store.store_snapshot_blocking(&written).unwrap());
    assert_eq!(snapshot_file_names(directory.path()).len(), 1, "the switch wrote no other");
    drop(store);
    let restored = block_on(open(directory.path()).unwrap().load()).unwrap();
    assert_eq!(restored.snapshot, Some(written));
    assert_indexes(&restored.entries, 13, 25);
}

#[test]
fn a_snapshot_written_ahead_without_its_switch_is_removed_at_open() {
    let directory = tempfile::tempdir().unwrap();
    let store = store_with_batches(directory.path(), 2);
    store.write_snapshot_ahead_blocking(&snapshot(1, 12, &[7; 5_000])).unwrap();
    drop(store);
    let mut store = open(directory.path()).unwrap();
    assert!(snapshot_file_names(directory.path()).is_empty(), "the stray file is gone");
    let restored = block_on(store.load()).unwrap();
    assert_eq!(restored.snapshot, None);
    assert_indexes(&restored.entries, 1, 20);
}

#[test]
fn a_newer_snapshot_stored_meanwhile_supersedes_one_written_ahead() {
    // A snapshot from the leader is stored while the node's own, older one was written
    // ahead: the older file goes with the switch to the newer one, and its own switch is
    // then ignored.
    let directory = tempfile::tempdir().unwrap();
    let mut store = store_with_batches(directory.path(), 2);
    let own = snapshot(1, 12, &[7; 5_000]);
    let leaders = snapshot(1, 18, b"the leader's");
    store.write_snapshot_ahead_blocking(&own).unwrap();
    assert!(store.store_snapshot_blocking(&leaders).unwrap());
    assert_eq!(snapshot_file_names(directory.path()).len(), 1);
    assert!(!store.store_snapshot_blocking(&own).unwrap(), "older: ignored");
    // Too old to write ahead now: nothing is written.
    store.write_snapshot_ahead_blocking(&own).unwrap();
    assert_eq!(snapshot_file_names(directory.path()).len(), 1);
    drop(store);
    let restored = block_on(open(directory.path()).unwrap().load()).unwrap();
    assert_eq!(restored.snapshot, Some(leaders));
    assert_indexes(&restored.entries, 19, 20);
}
