//! Snapshot files: one file per snapshot, written under a temporary name, synced, renamed
//! into place and the directory synced, so a crash leaves a complete file or none.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! magic "RAFTSNAP" (8) | version u32 | meta length u32 | meta (postcard SnapshotMeta)
//! | data length u64 | data | crc32 u32 of everything before it
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use raft_core::{LogId, Snapshot, SnapshotMeta};

use tracing::{debug, warn};

use crate::error::{Error, io_error};
use crate::file_system::{FileSystem, StorageFile};
use crate::stats::StoreStats;

/// The first bytes of every snapshot file.
const MAGIC: &[u8; 8] = b"RAFTSNAP";
/// The snapshot file format this build writes and reads.
pub(crate) const VERSION: u32 = 1;
/// Data moves through the checksum and the disk in pieces of this size: large enough that
/// the per-call overhead vanishes, small enough to stay in the CPU cache.
const CHUNK_BYTES: usize = 1 << 20;
/// Encoded metadata is a log id and a membership; anything larger is a damaged header.
const META_BYTES_MAX: u32 = 1 << 20;
/// The suffix of a snapshot file in place.
const SUFFIX: &str = ".snap";
/// The suffix of a snapshot file being written.
const TEMPORARY_SUFFIX: &str = ".snap.tmp";

/// What the database records about the current snapshot file, checked when it is read.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SnapshotRecord {
    /// The last entry the snapshot covers.
    pub(crate) meta: SnapshotMeta,
    /// The file's name inside the store's directory.
    pub(crate) file_name: String,
    /// The length of the application's data.
    pub(crate) data_bytes: u64,
    /// The file's checksum (its trailer).
    pub(crate) crc32: u32,
}

/// The name of the file holding the snapshot that ends at `last_log_id`.
pub(crate) fn file_name(last_log_id: LogId) -> String {
    format!("snapshot-{:020}-{:020}{SUFFIX}", last_log_id.index.0, last_log_id.term.0)
}

/// Whether `name` is a snapshot file or a temporary one this crate wrote.
pub(crate) fn is_snapshot_file(name: &str) -> bool {
    name.starts_with("snapshot-") && (name.ends_with(SUFFIX) || name.ends_with(TEMPORARY_SUFFIX))
}

use crate::file_system::WritePacer;
pub(crate) use crate::file_system::sync_directory;

/// Writes `snapshot` durably into `directory` and returns what the database records of it.
///
/// On return the file is complete, synced and visible under its final name. The data is
/// written from the caller's buffer in chunks: it is never copied.
pub(crate) fn write<F: FileSystem>(
    file_system: &F,
    directory: &Path,
    snapshot: &Snapshot,
) -> Result<SnapshotRecord, Error> {
    let name = file_name(snapshot.meta.last_log_id);
    let path = directory.join(&name);
    let temporary = directory.join(format!("{name}.tmp"));
    let meta = postcard::to_allocvec(&snapshot.meta).map_err(|error| Error::Encode {
        path: path.clone(),
        what: "snapshot metadata",
        reason: error.to_string(),
    })?;
    let meta_len =
        u32::try_from(meta.len()).ok().filter(|len| *len <= META_BYTES_MAX).ok_or_else(|| {
            Error::Encode {
                path: path.clone(),
                what: "snapshot metadata",
                reason: format!("{} bytes exceed the maximum of {META_BYTES_MAX}", meta.len()),
            }
        })?;
    let data_bytes = snapshot.data.len() as u64;

    let file = file_system
        .create_file(&temporary)
        .map_err(io_error("creating the snapshot file", &temporary))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut header = Vec::with_capacity(24 + meta.len());
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&meta_len.to_le_bytes());
    header.extend_from_slice(&meta);
    header.extend_from_slice(&data_bytes.to_le_bytes());
    let write_error = io_error("writing the snapshot file", &temporary);
    let mut offset = 0_u64;
    // Paced, so the log's appends never queue behind the whole file.
    let mut pacer = WritePacer::default();
    let mut put = |bytes: &[u8]| {
        hasher.update(bytes);
        file.write_all_at(bytes, offset)?;
        offset += bytes.len() as u64;
        pacer.wrote(&file, bytes.len())
    };
    let written =
        put(&header).and_then(|()| snapshot.data.chunks(CHUNK_BYTES).try_for_each(&mut put));
    written.map_err(write_error)?;
    let crc32 = hasher.finalize();
    file.write_all_at(&crc32.to_le_bytes(), offset)
        .map_err(io_error("writing the snapshot file", &temporary))?;
    file.sync_all().map_err(io_error("syncing the snapshot file", &temporary))?;
    drop(file);
    file_system
        .rename(&temporary, &path)
        .map_err(io_error("renaming the snapshot file into", &path))?;
    sync_directory(file_system, directory)?;
    Ok(SnapshotRecord { meta: snapshot.meta.clone(), file_name: name, data_bytes, crc32 })
}

/// Reads the snapshot `record` names from `directory`, checking its header, its length,
/// its checksum and that it is the snapshot the record describes.
pub(crate) fn read<F: FileSystem>(
    file_system: &F,
    directory: &Path,
    record: &SnapshotRecord,
) -> Result<Snapshot, Error> {
    // The name comes from the database: a damaged record must not point outside the store
    // (an absolute path or `..` would open any file, and a FIFO there would hang the load).
    let expected = file_name(record.meta.last_log_id);
    if record.file_name != expected {
        return Err(Error::CorruptSnapshot {
            path: directory.join(&expected),
            reason: format!(
                "the store's snapshot record names {:?}, not the file of its snapshot",
                record.file_name
            ),
        });
    }
    let path = directory.join(&record.file_name);
    let corrupt = |reason: String| Error::CorruptSnapshot { path: path.clone(), reason };
    let file =
        file_system.open_file(&path).map_err(io_error("opening the snapshot file", &path))?;
    let file_bytes = file
        .length_bytes()
        .map_err(io_error("reading the metadata of the snapshot file", &path))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut fixed = [0_u8; 16];
    read_exact_or_truncated(&file, &mut fixed, 0, &path, file_bytes)?;
    hasher.update(&fixed);
    let (magic, rest) = fixed.split_at(8);
    if magic != MAGIC {
        return Err(corrupt(format!("bad magic {magic:02x?}: not a raft-storage snapshot file")));
    }
    let (version, meta_len) = rest.split_at(4);
    let version = u32::from_le_bytes(version.try_into().unwrap_or_default());
    if version != VERSION {
        return Err(Error::UnsupportedVersion { path, found: version, supported: VERSION });
    }
    let meta_len = u32::from_le_bytes(meta_len.try_into().unwrap_or_default());
    if meta_len > META_BYTES_MAX {
        return Err(corrupt(format!("metadata length {meta_len} exceeds {META_BYTES_MAX}")));
    }
    let mut meta = vec![0_u8; meta_len as usize + 8];
    read_exact_or_truncated(&file, &mut meta, 16, &path, file_bytes)?;
    hasher.update(&meta);
    let (meta, data_len) = meta.split_at(meta_len as usize);
    let data_bytes = u64::from_le_bytes(data_len.try_into().unwrap_or_default());
    // A damaged length may be close to u64::MAX: the sum must not wrap around to the
    // file's own size and pass for a huge snapshot.
    let framing_bytes = 16 + u64::from(meta_len) + 8 + 4;
    let Some(expected_bytes) = framing_bytes.checked_add(data_bytes) else {
        return Err(corrupt(format!(
            "its header promises {data_bytes} bytes of data, more than any file holds"
        )));
    };
    if file_bytes != expected_bytes {
        return Err(corrupt(format!(
            "the file has {file_bytes} bytes but its header promises {expected_bytes} \
             (truncated or extended)"
        )));
    }
    let meta: SnapshotMeta = postcard::from_bytes(meta)
        .map_err(|error| corrupt(format!("undecodable metadata: {error}")))?;
    let data_len = usize::try_from(data_bytes)
        .map_err(|_| corrupt(format!("{data_bytes} bytes do not fit in memory")))?;
    let mut data = BytesMut::zeroed(data_len);
    let mut offset = framing_bytes - 4;
    for chunk in data.chunks_mut(CHUNK_BYTES) {
        file.read_exact_at(chunk, offset).map_err(io_error("reading the snapshot file", &path))?;
        hasher.update(chunk);
        offset += chunk.len() as u64;
    }
    let mut trailer = [0_u8; 4];
    file.read_exact_at(&mut trailer, offset)
        .map_err(io_error("reading the snapshot file", &path))?;
    let stored = u32::from_le_bytes(trailer);
    let computed = hasher.finalize();
    if stored != computed {
        return Err(corrupt(format!(
            "checksum mismatch: the file says {stored:#010x}, its contents give {computed:#010x}"
        )));
    }
    if meta != record.meta || stored != record.crc32 || data_bytes != record.data_bytes {
        return Err(corrupt(format!(
            "the file holds snapshot {} ({data_bytes} bytes, crc {stored:#010x}) but the \
             database names snapshot {} ({} bytes, crc {:#010x})",
            meta.last_log_id, record.meta.last_log_id, record.data_bytes, record.crc32
        )));
    }
    Ok(Snapshot { meta, data: Bytes::from(data) })
}

fn read_exact_or_truncated(
    file: &impl StorageFile,
    buffer: &mut [u8],
    offset: u64,
    path: &Path,
    file_bytes: u64,
) -> Result<(), Error> {
    file.read_exact_at(buffer, offset).map_err(|source| {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::CorruptSnapshot {
                path: path.to_path_buf(),
                reason: format!("truncated: the header does not fit in its {file_bytes} bytes"),
            }
        } else {
            Error::Io { operation: "reading the snapshot file", path: path.to_path_buf(), source }
        }
    })
}

/// Removes every snapshot file in `directory` but `keep` (older snapshots, and files a
/// crash left before the database named them). Returns the paths removed.
pub(crate) fn remove_others<F: FileSystem>(
    file_system: &F,
    directory: &Path,
    keep: Option<&str>,
) -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    let listing = file_system
        .list_directory(directory)
        .map_err(io_error("listing the store directory", directory))?;
    for name in listing {
        let Some(name) = name.to_str() else {
            continue;
        };
        if is_snapshot_file(name) && Some(name) != keep {
            let path = directory.join(name);
            file_system
                .remove_file(&path)
                .map_err(io_error("removing the old snapshot file", &path))?;
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        sync_directory(file_system, directory)?;
    }
    Ok(removed)
}

/// The snapshot file an engine wrote ahead of its switch, if any (the engines'
/// `SnapshotWriter`). Its lock is held while a snapshot file is written ahead and, by the
/// switch, until older files are removed, so a removal never takes a file being written
/// or written ahead. Lock order: the engine's writer lock first, then this one.
#[derive(Debug, Default)]
pub(crate) struct WrittenAhead(Mutex<Option<SnapshotRecord>>);

/// [`WrittenAhead`]'s lock, held by a switch.
pub(crate) struct HeldWrittenAhead<'a>(MutexGuard<'a, Option<SnapshotRecord>>);

impl WrittenAhead {
    /// Writes `snapshot`'s file durably into `directory` and keeps its record for the
    /// switch; nothing when the store has compacted past it (`compacted`, read by the
    /// caller without this lock held). A failure leaves at most a stray file.
    pub(crate) fn write<F: FileSystem>(
        &self,
        file_system: &F,
        directory: &Path,
        snapshot: &Snapshot,
        compacted: LogId,
        stats: &StoreStats,
    ) -> Result<(), Error> {
        let started = Instant::now();
        let last_log_id = snapshot.meta.last_log_id;
        if last_log_id.index <= compacted.index {
            debug!(%last_log_id, %compacted, "not writing an older snapshot ahead");
            return Ok(());
        }
        let mut slot = self.hold();
        let record = write(file_system, directory, snapshot).inspect_err(|error| {
            warn!(path = %directory.display(), %error, "writing a snapshot ahead failed");
        })?;
        *slot.0 = Some(record);
        drop(slot);
        let bytes = snapshot.data.len() as u64;
        debug!(%last_log_id, bytes, "wrote a snapshot ahead of its switch");
        stats.record_snapshot(bytes, started.elapsed());
        Ok(())
    }

    /// Takes the lock, for a switch to hold until it has removed the older files.
    pub(crate) fn hold(&self) -> HeldWrittenAhead<'_> {
        // Only a record is kept under it, set after the file is durable: a poisoned lock
        // still guards a consistent value.
        HeldWrittenAhead(self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl HeldWrittenAhead<'_> {
    /// The record of `snapshot`'s file for its switch: the file written ahead when it is
    /// this snapshot's (the same log id is the same state), else one written now; and
    /// whether it was written ahead. Any other file written ahead is older and is left for
    /// [`remove_others`].
    pub(crate) fn file_for<F: FileSystem>(
        &mut self,
        file_system: &F,
        directory: &Path,
        snapshot: &Snapshot,
    ) -> Result<(SnapshotRecord, bool), Error> {
        let ahead = self.0.take().filter(|record| {
            record.meta == snapshot.meta && record.data_bytes == snapshot.data.len() as u64
        });
        match ahead {
            Some(record) => Ok((record, true)),
            None => write(file_system, directory, snapshot).map(|record| (record, false)),
        }
    }
}
