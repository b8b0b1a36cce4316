//! The writer's side of [`super::WalLogStore`]: appends, segment rotation, snapshots and
//! purging, and the [`LogStore`] implementation.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use raft_core::{Entry, HardState, LogIndex, RestoredState, Snapshot};
use raft_runtime::LogStore;
use tracing::{debug, info, warn};

use super::format::{self, push_frame};
use super::record::Record;
use super::{
    FileSystem, NextSegment, Preallocation, SegmentInfo, Shared, Wal, WalLogStore, encode, lock,
    segment_name,
};
use crate::blocking::{self, BlockingStore};
use crate::error::{Error, io_error};
use crate::file_system::{StorageFile, sync_directory};
use crate::snapshot_file;

impl<F: FileSystem> Shared<F> {
    fn writer(&self) -> Result<std::sync::MutexGuard<'_, Wal<F>>, Error> {
        let wal = lock(&self.wal);
        if wal.failed {
            return Err(Error::Unusable { path: self.wal_directory.clone() });
        }
        Ok(wal)
    }

    pub(super) fn load(&self) -> Result<RestoredState, Error> {
        let wal = lock(&self.wal);
        let state = &wal.state;
        let snapshot = state
            .snapshot
            .as_ref()
            .map(|record| snapshot_file::read(&self.file_system, &self.directory, record))
            .transpose()?;
        let membership = snapshot
            .as_ref()
            .map_or_else(|| state.bootstrap.clone(), |snapshot| snapshot.meta.membership.clone());
        Ok(RestoredState {
            hard_state: state.hard_state,
            membership,
            snapshot,
            entries: state.entries.clone(),
            applied_index: LogIndex::ZERO,
        })
    }

    pub(super) fn persist(
        &self,
        hard_state: Option<HardState>,
        mut entries: Vec<Entry>,
    ) -> Result<(), Error> {
        let started = Instant::now();
        let mut wal = self.writer()?;
        let covered = wal.state.covered(&entries);
        entries.drain(..covered);
        wal.state.check_follows(&entries)?;
        if hard_state.is_none() && entries.is_empty() {
            return Ok(());
        }
        let last = wal.state.last;
        if entries.first().is_some_and(|first| first.log_id.index <= last.index) {
            debug!(to = %last.index, "truncating a conflicting suffix");
        }
        let record = Record::Write { hard_state, entries: Cow::Borrowed(&entries) };
        let (bytes, sync) = match self.append(&mut wal, &record) {
            Ok(outcome) => outcome,
            Err(error) => {
                wal.failed = true;
                warn!(path = %self.wal_directory.display(), %error, "a log write failed");
                return Err(error);
            }
        };
        let count = entries.len() as u64;
        wal.state.apply_write(hard_state, entries);
        drop(wal);
        self.stats.record_persist(count, bytes, started.elapsed(), sync);
        Ok(())
    }

    /// Appends one frame and syncs it: in place in the current segment, or as the first
    /// frame after the checkpoint of a new one. Returns the bytes written and the time the
    /// sync took.
    fn append(&self, wal: &mut Wal<F>, record: &Record<'_>) -> Result<(u64, Duration), Error> {
        let body = encode(&self.wal_directory, record, std::mem::take(&mut wal.body))?;
        let mut frame = std::mem::take(&mut wal.frame);
        frame.clear();
        push_frame(&self.wal_directory, &mut frame, &body)?;
        wal.body = body;
        let length = frame.len() as u64;
        let fits = wal.position.checked_add(length).is_some_and(|end| end <= wal.file_bytes);
        let outcome =
            if fits { self.write_in_place(wal, &frame) } else { self.rotate(wal, &frame) };
        wal.frame = frame;
        outcome.map(|sync| (length, sync))
    }

    fn write_in_place(&self, wal: &mut Wal<F>, frame: &[u8]) -> Result<Duration, Error> {
        let path = self.segment_path(wal);
        let sync_started = Instant::now();
        if let Some(direct) = wal.direct.as_mut() {
            // One direct, durable write: no page cache copy, no separate sync.
            direct
                .write(frame, wal.position)
                .map_err(io_error("writing to the segment (direct)", &path))?;
        } else {
            wal.file
                .write_all_at(frame, wal.position)
                .map_err(io_error("writing to the segment", &path))?;
            wal.file.sync_data().map_err(io_error("syncing the segment", &path))?;
        }
        wal.position += frame.len() as u64;
        let synced = sync_started.elapsed();
        if wal.config.preallocation == Preallocation::Background
            && wal.next_segment.is_none()
            && wal.position.saturating_mul(2) >= wal.file_bytes
        {
            self.start_preallocation(wal);
        }
        Ok(synced)
    }

    /// Starts making the next segment on a helper thread. If the thread cannot start, the
    /// write that fills the segment makes it instead.
    fn start_preallocation(&self, wal: &mut Wal<F>) {
        let sequence = wal.segments.last().map_or(1, |segment| segment.sequence + 1);
        let file_system = self.file_system.clone();
        let directory = self.wal_directory.clone();
        let bytes = wal.config.segment_bytes;
        let spawned = std::thread::Builder::new()
            .name("wal-preallocate".to_string())
            .spawn(move || super::preallocate_segment(&file_system, &directory, sequence, bytes));
        match spawned {
            Ok(thread) => wal.next_segment = Some(NextSegment { sequence, thread }),
            Err(error) => warn!(%error, "could not start preallocating the next segment"),
        }
    }

    /// The preallocated segment `sequence`, once its helper thread is done.
    fn take_preallocated(
        &self,
        wal: &mut Wal<F>,
        sequence: u64,
    ) -> Result<Option<(F::File, u64)>, Error> {
        let Some(next) = wal.next_segment.take() else {
            return Ok(None);
        };
        let prepared = next.thread.join().map_err(|_| Error::Io {
            operation: "preallocating the next segment in",
            path: self.wal_directory.clone(),
            source: std::io::Error::other("the preallocation thread panicked"),
        })??;
        Ok((next.sequence == sequence).then_some(prepared))
    }

    /// Starts the next segment with a checkpoint of the state so far, then `frame`.
    fn rotate(&self, wal: &mut Wal<F>, frame: &[u8]) -> Result<Duration, Error> {
        let sequence = wal.segments.last().map_or(1, |segment| segment.sequence + 1);
        let checkpoint = Record::Checkpoint(wal.state.checkpoint(sequence));
        let body = encode(&self.wal_directory, &checkpoint, Vec::new())?;
        let mut content = format::header().to_vec();
        push_frame(&self.wal_directory, &mut content, &body)?;
        content.extend_from_slice(frame);
        let started = Instant::now();
        let prepared = self.take_preallocated(wal, sequence)?;
        let (file, file_bytes) = super::write_segment(
            &self.file_system,
            &self.wal_directory,
            sequence,
            &content,
            prepared,
            wal.config.segment_bytes,
        )?;
        let path = self.wal_directory.join(super::segment_name(sequence));
        let position = content.len() as u64;
        wal.direct =
            super::DirectTail::open(&self.file_system, &path, file_bytes, &content, position)?;
        wal.file = file;
        wal.file_bytes = file_bytes;
        wal.position = position;
        wal.segments.push(SegmentInfo { sequence, last_at_start: wal.state.last.index });
        debug!(sequence, last = %wal.state.last, "started a new log segment");
        Ok(started.elapsed())
    }

    fn segment_path(&self, wal: &Wal<F>) -> std::path::PathBuf {
        let sequence = wal.segments.last().map_or(0, |segment| segment.sequence);
        self.wal_directory.join(segment_name(sequence))
    }

    /// Writes `snapshot`'s file durably ahead of its switch frame (the store's
    /// [`raft_runtime::SnapshotWriter`]), on the caller's thread and without the log's lock,
    /// so the log's appends go on meanwhile. Until [`Shared::store_snapshot`] names it the
    /// file is a stray: a crash leaves it for the next open to remove.
    pub(super) fn write_ahead(&self, snapshot: &Snapshot) -> Result<(), Error> {
        let compacted = self.writer()?.state.compacted();
        let (file_system, directory) = (&self.file_system, &self.directory);
        self.written_ahead.write(file_system, directory, snapshot, compacted, &self.stats)
    }

    pub(super) fn store_snapshot(&self, snapshot: &Snapshot) -> Result<bool, Error> {
        let started = Instant::now();
        let mut wal = self.writer()?;
        let last_log_id = snapshot.meta.last_log_id;
        if last_log_id.index <= wal.state.compacted().index {
            debug!(%last_log_id, compacted = %wal.state.compacted(), "ignored an older snapshot");
            return Ok(false);
        }
        let keep_suffix = wal.state.term_at(last_log_id.index) == Some(last_log_id.term);
        let mut written_ahead = self.written_ahead.hold();
        // The file first: the frame naming it is the switch, so a crash before the frame
        // leaves the old snapshot and log, and the stray file is removed at open.
        let outcome = written_ahead
            .file_for(&self.file_system, &self.directory, snapshot)
            .and_then(|(record, ahead)| {
                let frame = Record::Snapshot { record: record.clone(), keep_suffix };
                self.append(&mut wal, &frame).map(|_| (record, ahead))
            });
        let (record, ahead) = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                wal.failed = true;
                warn!(path = %self.wal_directory.display(), %error, "storing a snapshot failed");
                return Err(error);
            }
        };
        let current = record.file_name.clone();
        wal.state.apply_snapshot(record, keep_suffix);
        self.purge_segments(&mut wal);
        drop(wal);
        // Failing to remove an older file loses nothing (the next open removes it).
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

    /// Deletes, oldest first, the segments before the newest one whose start the snapshot
    /// covers: replaying from that one restores everything. Oldest first, so a crash
    /// leaves consecutive segments. A failed removal is only logged (the next snapshot
    /// tries again); a failed directory sync makes the store refuse work until reopened.
    fn purge_segments(&self, wal: &mut Wal<F>) {
        let compacted = wal.state.compacted().index;
        let keep_from = wal.segments.iter().rposition(|segment| segment.last_at_start <= compacted);
        let Some(keep_from) = keep_from.filter(|&keep_from| keep_from > 0) else {
            return;
        };
        let mut removed = 0;
        for segment in wal.segments.iter().take(keep_from) {
            let path = self.wal_directory.join(segment_name(segment.sequence));
            if let Err(error) = self.file_system.remove_file(&path) {
                warn!(path = %path.display(), %error, "could not remove a compacted segment");
                break;
            }
            removed += 1;
        }
        wal.segments.drain(..removed);
        if removed > 0 {
            // A failed directory sync is never retried (after it the directory's contents on
            // disk are unknown): like any failed write, it leaves the store refusing work
            // until it is reopened, and the reopen replays whatever segments survived.
            if let Err(error) = sync_directory(&self.file_system, &self.wal_directory) {
                wal.failed = true;
                warn!(%error, "could not sync the log directory after removing segments");
            }
            debug!(segments = removed, %compacted, "removed compacted segments");
        }
    }
}

impl<F: FileSystem> BlockingStore for Shared<F> {
    fn path(&self) -> &std::path::Path {
        &self.wal_directory
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

impl<F: FileSystem> LogStore for WalLogStore<F> {
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
