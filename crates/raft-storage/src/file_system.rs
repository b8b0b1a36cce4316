//! The file operations both engines (the write-ahead log, the redb database) and the
//! snapshot files go through, so that a test can stand in for the disk and cut the power.
//!
//! [`RealFileSystem`] is `std::fs`. A test implementation can keep, for every file, what
//! was synced apart from what was only written, and for every directory, which names were
//! synced into it, then drop everything unsynced at once: the state a machine finds after
//! a power loss. That is why directories are synced through the trait as well, and why
//! nothing here syncs on its own behind the caller's back.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Error, io_error};

/// Directory and file operations on the store's files.
///
/// # Correctness
///
/// Implementations must not make anything durable that the caller did not sync: a name
/// created, renamed or removed in a directory is durable once [`FileSystem::sync_directory`]
/// on that directory returns, and a file's bytes once [`StorageFile::sync_data`] or
/// [`StorageFile::sync_all`] on it returns.
pub trait FileSystem: Clone + Send + Sync + fmt::Debug + 'static {
    /// An open file.
    type File: StorageFile;
    /// An exclusive lock, held until dropped.
    type Lock: Send + Sync + fmt::Debug + 'static;

    /// Takes an exclusive lock on the file at `path` (created if missing), so that two
    /// processes never write one store.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when another holder has it; the operating system's error.
    fn lock(&self, path: &Path) -> io::Result<Self::Lock>;

    /// Creates one directory (its parent must exist).
    ///
    /// # Errors
    ///
    /// The operating system's error (`AlreadyExists` when it exists).
    fn create_directory(&self, path: &Path) -> io::Result<()>;

    /// Makes the names created, renamed or removed in `path` durable.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn sync_directory(&self, path: &Path) -> io::Result<()>;

    /// The names in a directory, in no particular order.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn list_directory(&self, path: &Path) -> io::Result<Vec<OsString>>;

    /// Whether anything exists at `path`.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// Creates an empty file for reading and writing, truncating one that exists.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn create_file(&self, path: &Path) -> io::Result<Self::File>;

    /// Opens an existing file for reading and writing.
    ///
    /// # Errors
    ///
    /// The operating system's error (`NotFound` when it does not exist).
    fn open_file(&self, path: &Path) -> io::Result<Self::File>;

    /// Renames a file, replacing `to` if it exists.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Opens the existing file `path` a second time for direct, durable writes: each write
    /// bypasses the page cache and is durable when it returns (`O_DIRECT | O_DSYNC`), one
    /// system call and one trip to the device instead of a write and an `fdatasync`.
    /// Writes through it must start and end on multiples of [`DIRECT_ALIGNMENT`], from
    /// memory aligned the same; reads go through the other handle.
    ///
    /// `Ok(None)` when the file system cannot (tmpfs, some FUSE file systems; the
    /// default): the caller then writes through the page cache and syncs.
    ///
    /// # Errors
    ///
    /// The operating system's error, other than "not supported".
    fn open_direct(&self, path: &Path) -> io::Result<Option<Self::File>> {
        let _ = path;
        Ok(None)
    }
}

/// The alignment of offsets, lengths and buffers of writes through
/// [`FileSystem::open_direct`]: a page, which covers 512-byte and 4 KiB sectors alike.
pub const DIRECT_ALIGNMENT: usize = 4096;

/// An open file: positioned reads and writes, its length and its syncs.
pub trait StorageFile: Send + Sync + fmt::Debug + 'static {
    /// Fills `buffer` from `offset`.
    ///
    /// # Errors
    ///
    /// The operating system's error; `UnexpectedEof` past the file's end.
    fn read_exact_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<()>;

    /// Writes all of `bytes` at `offset`, extending the file if needed.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()>;

    /// The file's length in bytes.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn length_bytes(&self) -> io::Result<u64>;

    /// Truncates or extends the file to `length` bytes; bytes added read as zeros.
    ///
    /// # Correctness
    ///
    /// Like a write, the new length is durable only once [`StorageFile::sync_data`] or
    /// [`StorageFile::sync_all`] returns.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn set_length_bytes(&self, length: u64) -> io::Result<()>;

    /// Makes the file's bytes durable (and its length, when it changed).
    ///
    /// # Errors
    ///
    /// The operating system's error. Never retry: the bytes' fate is then unknown.
    fn sync_data(&self) -> io::Result<()>;

    /// Makes the file's bytes and all its metadata durable.
    ///
    /// # Errors
    ///
    /// The operating system's error. Never retry.
    fn sync_all(&self) -> io::Result<()>;

    /// Tells the operating system that the file's cached pages, all clean and synced, will
    /// not be read soon, so it may drop them. A hint only: nothing about the file changes,
    /// and the default does nothing.
    ///
    /// The write-ahead log calls it on a segment it has just zero-filled and synced. The
    /// zeros would otherwise stay cached in large pages (folios), and each small append
    /// would then dirty, and be accounted as writing, a whole large page.
    fn drop_cached_pages(&self) {}
}

/// The real file system, through `std::fs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFileSystem;

impl FileSystem for RealFileSystem {
    type File = File;
    type Lock = File;

    fn lock(&self, path: &Path) -> io::Result<File> {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(io::Error::from)?;
        Ok(file)
    }

    fn create_directory(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn sync_directory(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn list_directory(&self, path: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(path)?.map(|item| item.map(|item| item.file_name())).collect()
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn create_file(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)
    }

    fn open_file(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn open_direct(&self, path: &Path) -> io::Result<Option<File>> {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::DIRECT | rustix::fs::OFlags::DSYNC;
        let opened = OpenOptions::new().write(true).custom_flags(flags.bits() as i32).open(path);
        match opened {
            Ok(file) => Ok(Some(file)),
            // EINVAL: the file system has no direct I/O (tmpfs, some FUSE file systems).
            Err(error) if error.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }
}

/// A buffer for writes through [`FileSystem::open_direct`]: its start is aligned to
/// [`DIRECT_ALIGNMENT`] (a `Vec` a block longer than needed, used from its first aligned
/// byte, so no unsafe code is needed).
#[derive(Debug, Default)]
pub(crate) struct AlignedBuffer {
    storage: Vec<u8>,
    start: usize,
    capacity: usize,
}

impl AlignedBuffer {
    /// The first `length` bytes, growing (and keeping what it holds) if needed.
    pub(crate) fn prefix_mut(&mut self, length: usize) -> &mut [u8] {
        if length > self.capacity {
            let capacity = length.next_multiple_of(DIRECT_ALIGNMENT).max(2 * self.capacity);
            let mut storage = vec![0_u8; capacity + DIRECT_ALIGNMENT];
            let start = storage.as_ptr().align_offset(DIRECT_ALIGNMENT);
            let kept = self.capacity;
            storage[start..start + kept]
                .copy_from_slice(&self.storage[self.start..self.start + kept]);
            *self = AlignedBuffer { storage, start, capacity };
        }
        &mut self.storage[self.start..self.start + length]
    }
}

impl StorageFile for File {
    fn read_exact_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buffer, offset)
    }

    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, bytes, offset)
    }

    fn length_bytes(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn set_length_bytes(&self, length: u64) -> io::Result<()> {
        File::set_len(self, length)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn drop_cached_pages(&self) {
        // A hint: when it fails the pages merely stay cached.
        let _ = rustix::fs::fadvise(self, 0, None, rustix::fs::Advice::DontNeed);
    }
}

/// Large writes (a segment's zeros, a snapshot file) sync after every this many bytes.
///
/// The device then never holds more than this much of them queued ahead of the log's
/// small appends, whose `fdatasync` would otherwise wait behind the whole large write:
/// zero-filling a 16 MiB segment in one go held a concurrent append's sync for 5 ms here,
/// against 1.3 ms when paced at 1 MiB.
const WRITE_PACE_BYTES: u64 = 1 << 20;

/// Paces one large write: counts the bytes written to the file since its last sync and
/// syncs its data each time they reach [`WRITE_PACE_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct WritePacer {
    unsynced: u64,
}

impl WritePacer {
    /// Records that `bytes` more were written to `file`, syncing it when they are due.
    ///
    /// # Errors
    ///
    /// The sync's error.
    pub(crate) fn wrote(&mut self, file: &impl StorageFile, bytes: usize) -> io::Result<()> {
        self.unsynced += bytes as u64;
        if self.unsynced >= WRITE_PACE_BYTES {
            self.unsynced = 0;
            file.sync_data()?;
        }
        Ok(())
    }
}

/// Syncs `directory` so the names created, renamed or removed in it are durable.
pub(crate) fn sync_directory<F: FileSystem>(
    file_system: &F,
    directory: &Path,
) -> Result<(), Error> {
    file_system.sync_directory(directory).map_err(io_error("syncing the directory", directory))
}

/// Takes `file_system`'s exclusive lock on `path` for a store.
///
/// # Errors
///
/// [`Error::Locked`] when another process or handle holds it; [`Error::Io`].
pub(crate) fn lock_store<F: FileSystem>(file_system: &F, path: &Path) -> Result<F::Lock, Error> {
    file_system.lock(path).map_err(|source| {
        if source.kind() == io::ErrorKind::WouldBlock {
            Error::Locked { path: path.to_path_buf() }
        } else {
            io_error("locking the store", path)(source)
        }
    })
}

/// Creates `directory` and every missing parent, syncing each parent after a directory
/// was created in it, so the whole path is durable before anything is written inside.
///
/// # Errors
///
/// [`Error::Io`] naming the directory that could not be created or synced.
pub fn create_directory_all<F: FileSystem>(file_system: &F, directory: &Path) -> Result<(), Error> {
    let mut missing = Vec::new();
    let mut current = Some(directory);
    while let Some(path) = current {
        if path.as_os_str().is_empty()
            || file_system.exists(path).map_err(io_error("looking for the directory", path))?
        {
            break;
        }
        missing.push(path);
        current = path.parent();
    }
    for path in missing.into_iter().rev() {
        match file_system.create_directory(path) {
            Ok(()) => {}
            // Another process made it in between: it still needs syncing into its parent.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io_error("creating the directory", path)(error)),
        }
        let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty());
        sync_directory(file_system, parent.unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

/// Creates `directory` and its missing parents on the real file system, durably (see
/// [`create_directory_all`]): for binaries making their data directories.
///
/// # Errors
///
/// [`Error::Io`] naming the directory that could not be created or synced.
pub fn create_data_directory(directory: &Path) -> Result<(), Error> {
    create_directory_all(&RealFileSystem, directory)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_aligned_buffer_stays_aligned_and_keeps_its_bytes_as_it_grows() {
        let mut buffer = AlignedBuffer::default();
        buffer.prefix_mut(10).copy_from_slice(b"0123456789");
        for length in [100, DIRECT_ALIGNMENT, 3 * DIRECT_ALIGNMENT + 1, 1 << 20] {
            let prefix = buffer.prefix_mut(length);
            assert_eq!(prefix.len(), length);
            assert_eq!(prefix.as_ptr().align_offset(DIRECT_ALIGNMENT), 0, "{length}");
            assert_eq!(&prefix[..10], b"0123456789", "{length}");
        }
    }
}
