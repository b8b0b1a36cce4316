//! The crate's error type.

use std::path::PathBuf;

use raft_core::{LogId, LogIndex};

/// Everything `raft-storage` can fail with.
///
/// Every error is *fatal* for the node that owns the store: the store refuses further
/// writes after one ([`Error::Unusable`]) and must be reopened, because after a failed
/// fsync the disk's contents are unknown and a retry could report lost data as durable.
/// Errors found while opening name the file and what is wrong with it; nothing is ever
/// reset silently.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory operation failed.
    #[error("i/o error while {operation} {path}: {source}")]
    Io {
        /// What the store was doing ("creating the directory", "syncing the snapshot file").
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// redb refused to open the database file (empty, not a redb file, or corrupt).
    #[error(
        "cannot open the log database {path}: {source}; check that the file was written by \
             raft-storage"
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// redb's error (boxed: redb's errors are large and errors travel by value).
        #[source]
        source: Box<redb::DatabaseError>,
    },
    /// redb failed an internal check while opening the file (it panics, for one, on a file
    /// shorter than its header says): the file is damaged, typically truncated.
    #[error(
        "the log database {path} is damaged (truncated?): redb failed while opening it: \
             {reason}; restore it from a replica or a backup"
    )]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// redb's panic message.
        reason: String,
    },
    /// A redb read or write failed.
    #[error("database error while {operation} in {path}: {source}")]
    Database {
        /// What the store was doing, with the values involved.
        operation: String,
        /// The database file.
        path: PathBuf,
        /// redb's error (boxed: redb's errors are large and errors travel by value).
        #[source]
        source: Box<redb::Error>,
    },
    /// The directory holds no store yet (`open` does not create one).
    #[error("no log store at {path}; create one first (open_or_create does)")]
    NotFound {
        /// The database file that was looked for.
        path: PathBuf,
    },
    /// The directory already holds a store ([`crate::RedbLogStore::create`] never
    /// overwrites one).
    #[error("a log store already exists at {path}; open it instead of creating one")]
    AlreadyExists {
        /// The existing database file.
        path: PathBuf,
    },
    /// The file is a redb database, but not one written by this crate.
    #[error("{path} is not a raft-storage log database: {reason}")]
    ForeignFile {
        /// The database file.
        path: PathBuf,
        /// What is missing or unexpected.
        reason: String,
    },
    /// The file was written by an incompatible version of this crate.
    #[error(
        "{path} has format version {found}, this build reads version {supported}; \
             use a matching raft-storage release"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version the file carries.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// A stored log entry cannot be decoded or is out of place.
    #[error("corrupt log entry at index {index} in {path}: {reason}")]
    CorruptEntry {
        /// The database file.
        path: PathBuf,
        /// The entry's key.
        index: LogIndex,
        /// What is wrong.
        reason: String,
    },
    /// A stored record (hard state, metadata) cannot be decoded or contradicts another.
    #[error("corrupt {record} record in {path}: {reason}")]
    CorruptRecord {
        /// The database file.
        path: PathBuf,
        /// Which record.
        record: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A snapshot file is torn, damaged or does not match the metadata naming it.
    #[error("corrupt snapshot file {path}: {reason}")]
    CorruptSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A write would leave a hole in the log.
    #[error(
        "persisting entries from index {first_index} would leave a hole after the last \
             stored entry {last_log_id}"
    )]
    LogHole {
        /// The first entry of the write (after those the snapshot covers).
        first_index: LogIndex,
        /// The last stored entry.
        last_log_id: LogId,
    },
    /// The data directory was written by another engine than the one asked for.
    #[error(
        "{path} holds a {stored} log store but the {requested} engine was asked for; start \
             with --storage {stored}, or move the directory away to start afresh"
    )]
    EngineMismatch {
        /// The data directory.
        path: PathBuf,
        /// The engine that wrote it.
        stored: crate::Engine,
        /// The engine asked for.
        requested: crate::Engine,
    },
    /// An engine name that names none.
    #[error("unknown storage engine {name:?}; use wal or redb")]
    UnknownEngine {
        /// The name given.
        name: String,
    },
    /// Another process (or handle) has the store open.
    #[error("the log store is in use: {path} is locked by another process; stop it first")]
    Locked {
        /// The locked file: the write-ahead log's lock file, or the redb database file.
        path: PathBuf,
    },
    /// A write-ahead log segment holds a damaged record that is not a torn last write:
    /// acknowledged data may be lost, so the store refuses to open.
    #[error(
        "corrupt record at offset {offset} of the log segment {path}: {reason}; restore \
             the node from a replica or a backup"
    )]
    CorruptFrame {
        /// The segment file.
        path: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A write-ahead log segment the log needs is not there.
    #[error("missing log segment {path}: {reason}; restore the node from a replica or a backup")]
    MissingSegment {
        /// The missing segment (or the log directory).
        path: PathBuf,
        /// What shows it missing.
        reason: String,
    },
    /// A replication read asked for entries the snapshot already covers.
    #[error(
        "entries from index {requested} are compacted into the snapshot; the log starts at \
             index {first_index}: send the snapshot instead"
    )]
    Compacted {
        /// The first index asked for.
        requested: LogIndex,
        /// The first index the log still holds.
        first_index: LogIndex,
    },
    /// A value is too large to encode.
    #[error("cannot encode the {what} for {path}: {reason}")]
    Encode {
        /// The file it was meant for.
        path: PathBuf,
        /// What was being encoded.
        what: &'static str,
        /// The encoder's message.
        reason: String,
    },
    /// An earlier write failed, so the store's durable state is unknown; it refuses work.
    #[error("the log store at {path} refuses work after an earlier failed write; reopen it")]
    Unusable {
        /// The database file.
        path: PathBuf,
    },
    /// The blocking task that ran a storage operation did not finish (it panicked or its
    /// runtime shut down).
    #[error("the blocking storage task for {path} did not finish: {source}")]
    BlockingTask {
        /// The database file.
        path: PathBuf,
        /// tokio's error.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl Error {
    /// Wraps this error as the runtime's fatal [`raft_runtime::Error::Storage`], naming the
    /// `operation` that failed.
    #[must_use]
    pub fn into_runtime(self, operation: String) -> raft_runtime::Error {
        raft_runtime::Error::Storage { operation, source: raft_runtime::ErrorSource::new(self) }
    }
}

/// Builds a [`Error::Database`] from any redb error.
pub(crate) fn database_error(
    path: &std::path::Path,
    operation: impl Into<String>,
    source: impl Into<redb::Error>,
) -> Error {
    Error::Database {
        operation: operation.into(),
        path: path.to_path_buf(),
        source: Box::new(source.into()),
    }
}

/// Builds a [`Error::Io`] for `operation` on `path`.
pub(crate) fn io_error<'a>(
    operation: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { operation, path: path.to_path_buf(), source }
}
