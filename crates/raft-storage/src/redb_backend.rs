//! [`FileBackend`]: redb's [`StorageBackend`] on a [`StorageFile`], so the redb engine's
//! database goes through the [`FileSystem`](crate::FileSystem) seam like every other file
//! the crate writes, and the power-loss test can cut the power under it.
//!
//! Each method is the file operation of the same meaning, and redb decides when to sync
//! (once per durable commit, after the commit's pages and header are written), with one
//! addition: a length change is synced at once (see [`FileBackend`]'s `set_len`).
//! Whatever else redb leaves unsynced the simulated disk is free to lose.

use std::io;
use std::path::Path;

use redb::{Database, StorageBackend};

use crate::error::{Error, io_error};
use crate::file_system::StorageFile;

/// A redb storage backend on one open file.
#[derive(Debug)]
pub(crate) struct FileBackend<File: StorageFile> {
    file: File,
}

impl<File: StorageFile> FileBackend<File> {
    /// A backend on `file`, which redb then owns for the database's life.
    pub(crate) fn new(file: File) -> FileBackend<File> {
        FileBackend { file }
    }
}

impl<File: StorageFile> StorageBackend for FileBackend<File> {
    fn len(&self) -> io::Result<u64> {
        self.file.length_bytes()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        // Past the end this is `UnexpectedEof`, the error redb's trait asks for.
        self.file.read_exact_at(out, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_length_bytes(len)?;
        // Synced now, not with the commit. redb grows the file, writes a header naming the
        // larger layout, then syncs both; a crash inside that sync can keep the header (an
        // overwrite in place, written back first) without the new length (metadata, in the
        // file system's journal), and redb 3.1 then asserts on open (the header's layout is
        // longer than the file): the node could not restart. A lost length change also lets
        // surviving writes past the old end leave a length no layout has, which redb's
        // repair asserts on as well. The power-loss test finds both without this sync. It
        // costs one fsync per growth (redb doubles the file, or adds a region) or shrink.
        self.file.sync_data()
    }

    fn sync_data(&self) -> io::Result<()> {
        // redb's durable commit: once per transaction, after its pages and header.
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }
}

/// How [`open`] treats an empty file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EmptyFile {
    /// Writes a new database into it (creating a store).
    Initialize,
    /// Refuses it, as redb's own `open` does: an existing store's file is never empty, and
    /// writing a fresh database into it would silently reset the node.
    Refuse,
}

/// Opens the database in `file` (at `path`, for errors), turning a panic inside redb into
/// an error: redb asserts rather than fails on some damaged files (a truncated one, for
/// example), and a damaged file must never take the process down.
pub(crate) fn open<File: StorageFile>(
    path: &Path,
    file: File,
    empty_file: EmptyFile,
) -> Result<Database, Error> {
    let open_error = |source: redb::DatabaseError| Error::Open {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    if empty_file == EmptyFile::Refuse {
        let length =
            file.length_bytes().map_err(io_error("reading the length of the database", path))?;
        if length == 0 {
            let source = io::Error::new(io::ErrorKind::InvalidData, "the file is empty");
            return Err(open_error(source.into()));
        }
    }
    let backend = FileBackend::new(file);
    // Unwind safety: on a panic the half-opened database and the backend are dropped and
    // only the message is kept, so no broken state is seen afterwards.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        Database::builder().create_with_backend(backend)
    }));
    match opened {
        Ok(Ok(database)) => Ok(database),
        Ok(Err(source)) => Err(open_error(source)),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "an internal check failed".to_string());
            Err(Error::Damaged { path: path.to_path_buf(), reason })
        }
    }
}
