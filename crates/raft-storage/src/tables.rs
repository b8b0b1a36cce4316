//! The database's layout: its tables, the format record that identifies it, and the
//! encoding of every record, with the checks made when they are read back.

use std::path::Path;

use raft_core::{Entry, HardState, LogId, LogIndex, Membership};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::error::{Error, database_error};
use crate::log_view::LogView;
use crate::snapshot_file::SnapshotRecord;

/// Metadata: the format record, the bootstrap membership, the first log index and the
/// current snapshot's record.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
/// The hard state, under [`HARD_STATE_KEY`].
pub(crate) const HARD_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_hard_state");
/// Log entries by index, postcard-encoded.
pub(crate) const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_entries");

pub(crate) const FORMAT_KEY: &str = "format";
pub(crate) const BOOTSTRAP_KEY: &str = "bootstrap_membership";
pub(crate) const FIRST_INDEX_KEY: &str = "first_index";
pub(crate) const SNAPSHOT_KEY: &str = "snapshot";
pub(crate) const HARD_STATE_KEY: &str = "hard_state";

/// Identifies a raft-storage database, followed by [`FORMAT_VERSION`] (u32 LE).
const FORMAT_MAGIC: &[u8; 16] = b"raft-storage/log";
/// The database layout this build writes and reads. Bump it when a table or an encoding
/// changes: an old build then refuses the new file instead of misreading it.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// The format record's value.
pub(crate) fn format_record() -> Vec<u8> {
    let mut record = FORMAT_MAGIC.to_vec();
    record.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    record
}

/// Encodes a record for `path`'s database.
pub(crate) fn encode<T: serde::Serialize>(
    path: &Path,
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, Error> {
    postcard::to_allocvec(value).map_err(|error| Error::Encode {
        path: path.to_path_buf(),
        what,
        reason: error.to_string(),
    })
}

/// Writes the records of a brand-new store.
pub(crate) fn initialize(
    path: &Path,
    transaction: &WriteTransaction,
    membership: &Membership,
) -> Result<(), Error> {
    let operation = "initializing a new store";
    let fail = |source: redb::Error| database_error(path, operation, source);
    let mut meta = transaction.open_table(META).map_err(|e| fail(e.into()))?;
    let mut put = |key: &str, value: &[u8]| meta.insert(key, value).map(drop);
    put(FORMAT_KEY, &format_record()).map_err(|e| fail(e.into()))?;
    put(BOOTSTRAP_KEY, &encode(path, "bootstrap membership", membership)?)
        .map_err(|e| fail(e.into()))?;
    put(FIRST_INDEX_KEY, &LogIndex(1).0.to_le_bytes()).map_err(|e| fail(e.into()))?;
    let hard_state = encode(path, "hard state", &HardState::default())?;
    let mut table = transaction.open_table(HARD_STATE).map_err(|e| fail(e.into()))?;
    table.insert(HARD_STATE_KEY, hard_state.as_slice()).map_err(|e| fail(e.into()))?;
    transaction.open_table(ENTRIES).map_err(|e| fail(e.into()))?;
    Ok(())
}

/// Everything but the entries, as read from the database.
#[derive(Debug)]
pub(crate) struct Records {
    pub(crate) hard_state: HardState,
    pub(crate) bootstrap: Membership,
    pub(crate) snapshot: Option<SnapshotRecord>,
    /// The lowest stored index below the first index, if any: compacted entries not yet
    /// purged (the store removes them a few at a time after a snapshot).
    pub(crate) garbage_from: Option<u64>,
}

fn corrupt(path: &Path, record: &'static str, reason: String) -> Error {
    Error::CorruptRecord { path: path.to_path_buf(), record, reason }
}

fn decode<T: serde::de::DeserializeOwned>(
    path: &Path,
    record: &'static str,
    bytes: &[u8],
) -> Result<T, Error> {
    postcard::from_bytes(bytes).map_err(|error| corrupt(path, record, error.to_string()))
}

/// Decodes the entry stored under `key`, checking that it is the entry for that index.
pub(crate) fn decode_entry(path: &Path, key: u64, bytes: &[u8]) -> Result<Entry, Error> {
    let entry: Entry = postcard::from_bytes(bytes).map_err(|error| Error::CorruptEntry {
        path: path.to_path_buf(),
        index: LogIndex(key),
        reason: format!("undecodable ({} bytes): {error}", bytes.len()),
    })?;
    if entry.log_id.index != LogIndex(key) {
        return Err(Error::CorruptEntry {
            path: path.to_path_buf(),
            index: LogIndex(key),
            reason: format!("the entry stored here is {}", entry.log_id),
        });
    }
    Ok(entry)
}

/// Reads and checks the records and the log's shape, in one read transaction. With
/// `collect`, decodes every entry into it; without, only each entry's log id.
pub(crate) fn read_all(
    path: &Path,
    database: &redb::Database,
    tail_bytes_max: u64,
    mut collect: Option<&mut Vec<Entry>>,
) -> Result<(Records, LogView), Error> {
    let fail = |operation: &str, source: redb::Error| database_error(path, operation, source);
    let transaction = database.begin_read().map_err(|e| fail("reading the store", e.into()))?;
    let meta = match transaction.open_table(META) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            return Err(Error::ForeignFile {
                path: path.to_path_buf(),
                reason: "it has no raft_meta table".to_string(),
            });
        }
        Err(error) => return Err(fail("opening the metadata table", error.into())),
    };
    let get = |key: &str| -> Result<Option<Vec<u8>>, Error> {
        let value = meta.get(key).map_err(|e| fail("reading the metadata", e.into()))?;
        Ok(value.map(|guard| guard.value().to_vec()))
    };
    check_format(path, get(FORMAT_KEY)?)?;
    let missing = |record: &'static str| corrupt(path, record, "the record is missing".to_string());
    let bootstrap: Membership = decode(
        path,
        "bootstrap membership",
        &get(BOOTSTRAP_KEY)?.ok_or_else(|| missing("bootstrap membership"))?,
    )?;
    let first_index = get(FIRST_INDEX_KEY)?.ok_or_else(|| missing("first index"))?;
    let first_index = <[u8; 8]>::try_from(first_index.as_slice())
        .map(|bytes| LogIndex(u64::from_le_bytes(bytes)))
        .map_err(|_| corrupt(path, "first index", format!("{} bytes, not 8", first_index.len())))?;
    let snapshot: Option<SnapshotRecord> =
        get(SNAPSHOT_KEY)?.map(|bytes| decode(path, "snapshot", &bytes)).transpose()?;
    let compacted = snapshot.as_ref().map_or(LogId::ZERO, |record| record.meta.last_log_id);
    // Every stored index must have a successor (the log's next index): u64::MAX is damage,
    // and refusing it here keeps `next()` from overflowing anywhere later.
    if compacted.index == LogIndex(u64::MAX) {
        return Err(corrupt(
            path,
            "snapshot",
            format!("the snapshot ends at {compacted}, the last possible index"),
        ));
    }
    if first_index != compacted.index.next() {
        return Err(corrupt(
            path,
            "first index",
            format!(
                "first index {first_index} does not follow the snapshot's last entry {compacted}"
            ),
        ));
    }
    let hard_state_table = transaction
        .open_table(HARD_STATE)
        .map_err(|e| fail("opening the hard state table", e.into()))?;
    let hard_state = hard_state_table
        .get(HARD_STATE_KEY)
        .map_err(|e| fail("reading the hard state", e.into()))?
        .ok_or_else(|| missing("hard state"))?;
    let hard_state: HardState = decode(path, "hard state", hard_state.value())?;

    let entries =
        transaction.open_table(ENTRIES).map_err(|e| fail("opening the entries table", e.into()))?;
    let mut view = LogView::new(compacted, tail_bytes_max);
    // Compacted entries are purged lazily after a snapshot: skip them, and report where
    // they start.
    let garbage_from = entries
        .first()
        .map_err(|e| fail("reading the log", e.into()))?
        .map(|(key, _)| key.value())
        .filter(|&key| key < first_index.0);
    let all =
        entries.range::<u64>(first_index.0..).map_err(|e| fail("reading the log", e.into()))?;
    for item in all {
        let (key, value) = item.map_err(|e| fail("reading the log", e.into()))?;
        let key = key.value();
        let expected = view.last.index.next();
        let bad = |reason: String| Error::CorruptEntry {
            path: path.to_path_buf(),
            index: LogIndex(key),
            reason,
        };
        if key == u64::MAX {
            return Err(bad("an entry at the last possible index".to_string()));
        }
        if key != expected.0 {
            return Err(bad(format!(
                "expected index {expected} after {} (a hole or a stale entry)",
                view.last
            )));
        }
        let log_id = if let Some(entries) = collect.as_deref_mut() {
            let entry = decode_entry(path, key, value.value())?;
            let log_id = entry.log_id;
            entries.push(entry);
            log_id
        } else {
            // Entries encode their log id first: decode it alone to learn the log's shape.
            postcard::take_from_bytes::<LogId>(value.value())
                .map_err(|error| bad(format!("undecodable log id: {error}")))?
                .0
        };
        if log_id.index != expected || log_id.term < view.last.term {
            return Err(bad(format!("the entry stored here is {log_id}, after {}", view.last)));
        }
        view.push_log_id(log_id);
    }
    let records = Records { hard_state, bootstrap, snapshot, garbage_from };
    Ok((records, view))
}

fn check_format(path: &Path, record: Option<Vec<u8>>) -> Result<(), Error> {
    let foreign = |reason: String| Error::ForeignFile { path: path.to_path_buf(), reason };
    let Some(record) = record else {
        return Err(foreign("it has no format record".to_string()));
    };
    let Some((magic, version)) = record.split_first_chunk::<16>() else {
        return Err(foreign(format!("its format record is {} bytes long", record.len())));
    };
    if magic != FORMAT_MAGIC {
        return Err(foreign(format!("its format record starts with {magic:02x?}")));
    }
    let version = <[u8; 4]>::try_from(version)
        .map(u32::from_le_bytes)
        .map_err(|_| foreign(format!("its format record is {} bytes long", record.len())))?;
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}
