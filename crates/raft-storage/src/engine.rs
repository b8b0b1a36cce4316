//! Choosing a log engine: [`Engine`] names one, [`AnyLogStore`] is a store of either, and
//! the data directory records which engine wrote it (the [`ENGINE_FILE`]), so a node is
//! never started on another engine's files.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use raft_core::{Entry, HardState, Membership, RestoredState, Snapshot};
use raft_runtime::LogStore;
use tracing::info;

use crate::error::{Error, io_error};
use crate::file_system::{
    FileSystem, RealFileSystem, StorageFile, create_directory_all, sync_directory,
};
use crate::store::{DATABASE_FILE, RedbLogStore, StoreConfig};
use crate::wal::{WAL_DIRECTORY, WalConfig, WalLogStore};

/// The file in a data directory naming the engine that wrote it (`wal` or `redb`).
pub const ENGINE_FILE: &str = "engine";

/// A log engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Engine {
    /// [`RedbLogStore`]: a redb database.
    Redb,
    /// [`WalLogStore`]: a segmented write-ahead log; the default, as it measured faster
    /// than redb at every batch size and at recovery (see the crate's benchmarks).
    #[default]
    Wal,
}

impl Engine {
    /// Every engine, in the order benchmarks sweep them.
    pub const ALL: [Engine; 2] = [Engine::Wal, Engine::Redb];

    /// The engine's name, as flags and the engine file spell it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Engine::Redb => "redb",
            Engine::Wal => "wal",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for Engine {
    type Err = Error;

    fn from_str(name: &str) -> Result<Engine, Error> {
        Engine::ALL
            .into_iter()
            .find(|engine| engine.name() == name)
            .ok_or_else(|| Error::UnknownEngine { name: name.to_string() })
    }
}

/// A store of any engine, for binaries that choose one at run time.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyLogStore {
    /// A redb store.
    Redb(RedbLogStore),
    /// A write-ahead log store.
    Wal(WalLogStore),
}

impl AnyLogStore {
    /// Opens the store in `directory` with `engine`, or creates one (with `membership`)
    /// when the directory holds none, recording the engine in [`ENGINE_FILE`] first.
    ///
    /// A directory without the file but with a redb database (written before engines
    /// were recorded) is a redb store.
    ///
    /// # Errors
    ///
    /// [`Error::EngineMismatch`] when the directory was written by another engine;
    /// [`Error::CorruptRecord`] for an unreadable engine file; the engine's own errors.
    pub fn open_or_create(
        directory: &Path,
        engine: Engine,
        membership: &Membership,
    ) -> Result<AnyLogStore, Error> {
        create_directory_all(&RealFileSystem, directory)?;
        match stored_engine(directory)? {
            Some(stored) if stored != engine => {
                return Err(Error::EngineMismatch {
                    path: directory.to_path_buf(),
                    stored,
                    requested: engine,
                });
            }
            Some(_) => {}
            None => {
                record_engine(&RealFileSystem, directory, engine)?;
                info!(path = %directory.display(), %engine, "recorded the log engine");
            }
        }
        Ok(match engine {
            Engine::Redb => AnyLogStore::Redb(RedbLogStore::open_or_create(
                directory,
                membership,
                StoreConfig::default(),
            )?),
            Engine::Wal => AnyLogStore::Wal(WalLogStore::open_or_create(
                directory,
                membership,
                WalConfig::default(),
            )?),
        })
    }

    /// The store's engine.
    #[must_use]
    pub fn engine(&self) -> Engine {
        match self {
            AnyLogStore::Redb(_) => Engine::Redb,
            AnyLogStore::Wal(_) => Engine::Wal,
        }
    }

    /// Reads back everything stored, on the calling thread.
    ///
    /// # Errors
    ///
    /// As the engine's `load_blocking`.
    pub fn load_blocking(&mut self) -> Result<RestoredState, Error> {
        match self {
            AnyLogStore::Redb(store) => store.load_blocking(),
            AnyLogStore::Wal(store) => store.load_blocking(),
        }
    }
}

/// The engine `directory` records, or infers for a store made before engines were
/// recorded; `None` for a directory without a store.
///
/// # Errors
///
/// [`Error::CorruptRecord`] for an engine file naming no engine; [`Error::Io`].
pub fn stored_engine(directory: &Path) -> Result<Option<Engine>, Error> {
    let path = directory.join(ENGINE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| Error::CorruptRecord {
            path,
            record: "engine",
            reason: format!("{:?} names no engine (expected wal or redb)", text.trim()),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let redb = directory.join(DATABASE_FILE);
            let wal = directory.join(WAL_DIRECTORY);
            if redb.try_exists().map_err(io_error("looking for the database", &redb))? {
                Ok(Some(Engine::Redb))
            } else if wal.try_exists().map_err(io_error("looking for the log", &wal))? {
                Ok(Some(Engine::Wal))
            } else {
                Ok(None)
            }
        }
        Err(error) => Err(io_error("reading the engine file", &path)(error)),
    }
}

/// Writes the engine file atomically: a temporary file, synced, renamed, directory synced.
fn record_engine<F: FileSystem>(
    file_system: &F,
    directory: &Path,
    engine: Engine,
) -> Result<(), Error> {
    let path = directory.join(ENGINE_FILE);
    let temporary = directory.join(format!("{ENGINE_FILE}.tmp"));
    let file = file_system
        .create_file(&temporary)
        .map_err(io_error("creating the engine file", &temporary))?;
    file.write_all_at(format!("{engine}\n").as_bytes(), 0)
        .map_err(io_error("writing the engine file", &temporary))?;
    file.sync_all().map_err(io_error("syncing the engine file", &temporary))?;
    drop(file);
    file_system
        .rename(&temporary, &path)
        .map_err(io_error("renaming the engine file to", &path))?;
    sync_directory(file_system, directory)
}

impl LogStore for AnyLogStore {
    async fn load(&mut self) -> Result<RestoredState, raft_runtime::Error> {
        match self {
            AnyLogStore::Redb(store) => store.load().await,
            AnyLogStore::Wal(store) => store.load().await,
        }
    }

    async fn persist(
        &mut self,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
    ) -> Result<(), raft_runtime::Error> {
        match self {
            AnyLogStore::Redb(store) => store.persist(hard_state, entries).await,
            AnyLogStore::Wal(store) => store.persist(hard_state, entries).await,
        }
    }

    async fn store_snapshot(&mut self, snapshot: Snapshot) -> Result<(), raft_runtime::Error> {
        match self {
            AnyLogStore::Redb(store) => store.store_snapshot(snapshot).await,
            AnyLogStore::Wal(store) => store.store_snapshot(snapshot).await,
        }
    }

    fn snapshot_writer(&self) -> Option<raft_runtime::SnapshotWriter> {
        match self {
            AnyLogStore::Redb(store) => store.snapshot_writer(),
            AnyLogStore::Wal(store) => store.snapshot_writer(),
        }
    }
}

#[cfg(test)]
mod tests {
    use raft_core::NodeId;

    use super::*;

    #[test]
    fn engine_names_round_trip_and_unknown_ones_are_refused() {
        for engine in Engine::ALL {
            assert_eq!(engine.name().parse::<Engine>().unwrap(), engine);
        }
        let error = "rocksdb".parse::<Engine>().unwrap_err();
        assert!(error.to_string().contains("rocksdb"), "{error}");
    }

    #[test]
    fn a_directory_is_reopened_only_with_the_engine_that_wrote_it() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("node-1");
        let membership = Membership::with_voters([NodeId(1)]);
        let store = AnyLogStore::open_or_create(&path, Engine::Wal, &membership).unwrap();
        assert_eq!(store.engine(), Engine::Wal);
        drop(store);
        assert_eq!(stored_engine(&path).unwrap(), Some(Engine::Wal));
        let error = AnyLogStore::open_or_create(&path, Engine::Redb, &membership).unwrap_err();
        assert!(matches!(error, Error::EngineMismatch { .. }), "{error}");
        assert!(error.to_string().contains("--storage wal"), "{error}");
        let mut store = AnyLogStore::open_or_create(&path, Engine::Wal, &membership).unwrap();
        assert_eq!(store.load_blocking().unwrap().membership, membership);
    }

    #[test]
    fn a_redb_store_from_before_the_engine_file_is_recognised() {
        let directory = tempfile::tempdir().unwrap();
        let membership = Membership::with_voters([NodeId(1)]);
        drop(RedbLogStore::create(directory.path(), &membership, StoreConfig::default()));
        assert_eq!(stored_engine(directory.path()).unwrap(), Some(Engine::Redb));
        let error =
            AnyLogStore::open_or_create(directory.path(), Engine::Wal, &membership).unwrap_err();
        assert!(matches!(error, Error::EngineMismatch { stored: Engine::Redb, .. }), "{error}");
    }
}
