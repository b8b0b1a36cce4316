//! A probe of the disk while the workload runs: one 4 KiB write and `fdatasync` every
//! [`PROBE_INTERVAL`] into a preallocated file on the file system the servers write to, the
//! same write the latency floor ([`crate::floor`]) times before the run.
//!
//! The floor says what a sync cost before the run. On a shared machine the disk's speed
//! also changes during it: another tenant's writes can double a sync's time for seconds at
//! a time, and a cluster that waits for syncs then does less in those seconds whatever it
//! was doing. The host's steal (`/proc/stat`) does not show that. The probe's syncs, timed
//! second by second, do: a second in which the servers' syncs slowed and the probe's did
//! not was slowed by the servers; one in which both slowed, by the disk. The probe shares
//! the disk with the servers, so their own writes (a snapshot, say) slow it too; the seconds
//! in which nodes stored snapshots are counted beside it ([`crate::seconds`]).
//!
//! Fifty syncs a second are little beside a cluster's thousands, and both systems of a
//! comparison run with the same probe.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::floor::{SYNC_BYTES, prepared_file};
use crate::seconds::median;

/// Time between the starts of two probe syncs (a slower sync delays the next one).
pub const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// Pages of the probe's file, written in turn.
const PROBE_PAGES: usize = 64;

/// The probe's syncs in one second.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SyncSecond {
    /// Syncs timed.
    pub syncs: usize,
    /// Their median time (write + `fdatasync`), in ms.
    pub p50_ms: f64,
    /// Their longest, in ms.
    pub max_ms: f64,
}

impl SyncSecond {
    /// The figures of `times`; `None` for none.
    #[must_use]
    pub fn of(times: &[Duration]) -> Option<SyncSecond> {
        let ms: Vec<f64> = times.iter().map(|time| time.as_secs_f64() * 1000.0).collect();
        let max_ms = ms.iter().copied().reduce(f64::max)?;
        Some(SyncSecond { syncs: ms.len(), p50_ms: median(ms)?, max_ms })
    }
}

/// A running probe: a thread syncing until the probe is dropped.
pub struct DiskProbe {
    times: Arc<Mutex<Vec<Duration>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DiskProbe {
    /// Prepares the probe's file in `directory` (an unnamed temporary file, gone when the
    /// probe stops) and starts syncing.
    ///
    /// # Errors
    ///
    /// The error creating or preallocating the file, or starting the thread.
    pub fn start(directory: &Path) -> std::io::Result<DiskProbe> {
        let file = prepared_file(directory, PROBE_PAGES)?;
        let times = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (recorded, stopping) = (Arc::clone(&times), Arc::clone(&stop));
        let thread = std::thread::Builder::new().name("disk-probe".to_owned()).spawn(move || {
            let page = vec![0xA5_u8; SYNC_BYTES];
            let mut due = Instant::now();
            let mut index = 0;
            while !stopping.load(Ordering::Relaxed) {
                let started = Instant::now();
                let offset = (index % PROBE_PAGES * SYNC_BYTES) as u64;
                if let Err(error) = file.write_all_at(&page, offset).and_then(|()| file.sync_data())
                {
                    tracing::warn!(%error, "the disk probe stopped: its seconds have no sync time");
                    return;
                }
                recorded.lock().unwrap_or_else(PoisonError::into_inner).push(started.elapsed());
                index += 1;
                due += PROBE_INTERVAL;
                let now = Instant::now();
                match due.checked_duration_since(now) {
                    Some(wait) => std::thread::sleep(wait),
                    // Behind (a sync took longer than the interval): start again from now
                    // rather than syncing back to back to catch up.
                    None => due = now,
                }
            }
        })?;
        Ok(DiskProbe { times, stop, thread: Some(thread) })
    }

    /// The syncs timed since the last call; `None` when none finished (the probe stopped
    /// on an error, or one sync took the whole second).
    #[must_use]
    pub fn take_second(&self) -> Option<SyncSecond> {
        let times = std::mem::take(&mut *self.times.lock().unwrap_or_else(PoisonError::into_inner));
        SyncSecond::of(&times)
    }
}

impl Drop for DiskProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_gives_the_median_and_longest_sync() {
        let ms = Duration::from_millis;
        let second = SyncSecond::of(&[ms(3), ms(1), ms(2)]).unwrap();
        assert_eq!(second, SyncSecond { syncs: 3, p50_ms: 2.0, max_ms: 3.0 });
        let even = SyncSecond::of(&[ms(4), ms(1), ms(2), ms(9)]).unwrap();
        assert!((even.p50_ms - 3.0).abs() < 1e-9, "{even:?}");
        assert_eq!(SyncSecond::of(&[]), None);
    }

    #[test]
    fn the_probe_times_syncs_until_dropped() {
        let directory = tempfile::tempdir().unwrap();
        let probe = DiskProbe::start(directory.path()).unwrap();
        // Waits for a sync to finish, however slow this machine's disk is today.
        let deadline = Instant::now() + Duration::from_secs(30);
        let second = loop {
            if let Some(second) = probe.take_second() {
                break second;
            }
            assert!(Instant::now() < deadline, "no probe sync finished in 30 s");
            std::thread::sleep(PROBE_INTERVAL);
        };
        assert!(second.syncs >= 1 && second.p50_ms > 0.0 && second.max_ms >= second.p50_ms);
        drop(probe);
        // Nothing is left behind: the file was unnamed.
        assert_eq!(std::fs::read_dir(directory.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_directory_that_does_not_exist_is_an_error() {
        let directory = tempfile::tempdir().unwrap();
        let missing = directory.path().join("missing");
        assert!(DiskProbe::start(&missing).is_err());
    }
}
