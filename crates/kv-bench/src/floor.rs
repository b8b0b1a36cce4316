//! The floor under one write's latency on this machine, measured in the same invocation as
//! the run it is compared with: a bare 4 KiB `fdatasync` on the file system the servers
//! write to, and a loopback TCP round trip.
//!
//! A replicated write needs at least one durable write and one network round trip (the
//! client's request and reply; the leader's own write overlaps its followers' in a good
//! implementation), so `fdatasync + round trip` is what a single client's p50 is judged
//! against. Both are measured again for each run because these machines are shared and
//! their speed drifts; a figure from another run says little.
//!
//! A cluster launched on one machine has a second, higher floor, also measured: its nodes
//! share one disk, so the syncs a write needs run at once and slow each other, and the
//! write needs two round trips in a row (client to leader, leader to follower). The
//! cluster floor is `p50 of one sync among as many concurrent ones as there are nodes + 2
//! round trips`: what a write costs here with no software at all.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Syncs timed for the `fdatasync` figure (after one untimed).
const SYNCS: usize = 200;
/// Bytes per timed write: one page.
pub(crate) const SYNC_BYTES: usize = 4096;
/// Round trips timed for the loopback figure (after a few untimed).
const ROUND_TRIPS: usize = 2000;
/// Bytes each way per round trip: about a small request.
const ROUND_TRIP_BYTES: usize = 64;

/// The parts of the floor, as medians.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Floor {
    /// Median time of writing 4 KiB into a preallocated file and `fdatasync`ing it, in ms.
    pub fdatasync_p50_ms: f64,
    /// Median time of sending 64 bytes over loopback TCP (no Nagle) and reading 64 back,
    /// in ms.
    pub loopback_round_trip_p50_ms: f64,
    /// The same write and sync while `concurrent_syncs` threads do it at once, each on a
    /// file of its own in the same directory (as the nodes of a cluster on this machine
    /// do): the median over all of them, in ms.
    pub concurrent_fdatasync_p50_ms: f64,
    /// How many syncs ran at once for `concurrent_fdatasync_p50_ms`: the cluster's nodes.
    pub concurrent_syncs: usize,
}

impl Floor {
    /// `fdatasync + round trip`, in ms: the bare floor.
    #[must_use]
    pub fn total_ms(&self) -> f64 {
        self.fdatasync_p50_ms + self.loopback_round_trip_p50_ms
    }

    /// `concurrent fdatasync + 2 round trips`, in ms: the floor of a cluster whose nodes
    /// share this machine's disk (see the module docs).
    #[must_use]
    pub fn cluster_ms(&self) -> f64 {
        self.concurrent_fdatasync_p50_ms + 2.0 * self.loopback_round_trip_p50_ms
    }

    /// Measures every part, syncing temporary files in `directory`, `nodes` at once for
    /// the cluster floor (at least one).
    ///
    /// # Errors
    ///
    /// The file or socket error that stopped a measurement.
    pub fn measure(directory: &Path, nodes: usize) -> std::io::Result<Floor> {
        let concurrent_syncs = nodes.max(1);
        Ok(Floor {
            fdatasync_p50_ms: fdatasync_p50_ms(directory, 1)?,
            loopback_round_trip_p50_ms: round_trip_p50_ms()?,
            concurrent_fdatasync_p50_ms: fdatasync_p50_ms(directory, concurrent_syncs)?,
            concurrent_syncs,
        })
    }
}

/// The median of `writers` threads' timed syncs, all started together.
fn fdatasync_p50_ms(directory: &Path, writers: usize) -> std::io::Result<f64> {
    let start = std::sync::Barrier::new(writers);
    let mut times = std::thread::scope(|scope| {
        let threads: Vec<_> =
            (0..writers).map(|_| scope.spawn(|| timed_syncs(directory, &start))).collect();
        let mut times = Vec::with_capacity(writers * SYNCS);
        for thread in threads {
            let timed = thread.join().unwrap_or_else(|_| {
                Err(std::io::Error::other("a floor measurement thread panicked"))
            });
            times.extend(timed?);
        }
        Ok::<_, std::io::Error>(times)
    })?;
    Ok(median_ms(&mut times))
}

/// One writer's timed syncs, started when every writer is ready. Its setup's error still
/// waits at the barrier, so the other writers never wait for it forever.
fn timed_syncs(directory: &Path, start: &std::sync::Barrier) -> std::io::Result<Vec<Duration>> {
    let prepared = prepared_file(directory, SYNCS + 1);
    start.wait();
    let file = prepared?;
    let page = vec![0x5A_u8; SYNC_BYTES];
    let mut times = Vec::with_capacity(SYNCS);
    for write in 0..=SYNCS {
        let started = Instant::now();
        file.write_all_at(&page, (write * SYNC_BYTES) as u64)?;
        file.sync_data()?;
        if write > 0 {
            times.push(started.elapsed());
        }
    }
    Ok(times)
}

/// An unnamed temporary file in `directory` of `pages` pages of [`SYNC_BYTES`], written and
/// synced: preallocated, as a log segment is, so timed syncs of writes into it carry data,
/// not a growing file's metadata.
pub(crate) fn prepared_file(directory: &Path, pages: usize) -> std::io::Result<File> {
    let file: File = tempfile::tempfile_in(directory)?;
    let zeros = vec![0_u8; SYNC_BYTES * pages];
    file.write_all_at(&zeros, 0)?;
    file.sync_all()?;
    Ok(file)
}

fn round_trip_p50_ms() -> std::io::Result<f64> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let address = listener.local_addr()?;
    let echo = std::thread::Builder::new().name("floor-echo".to_owned()).spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let mut buffer = [0_u8; ROUND_TRIP_BYTES];
        while stream.read_exact(&mut buffer).is_ok() {
            if stream.write_all(&buffer).is_err() {
                return;
            }
        }
    })?;
    let mut stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    // Bounded: a wedged echo fails the measurement instead of hanging the run.
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let message = [0xA5_u8; ROUND_TRIP_BYTES];
    let mut reply = [0_u8; ROUND_TRIP_BYTES];
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for trip in 0..ROUND_TRIPS + 10 {
        let started = Instant::now();
        stream.write_all(&message)?;
        stream.read_exact(&mut reply)?;
        if trip >= 10 {
            times.push(started.elapsed());
        }
    }
    drop(stream);
    let _ = echo.join();
    Ok(median_ms(&mut times))
}

fn median_ms(times: &mut [Duration]) -> f64 {
    times.sort_unstable();
    times.get(times.len() / 2).map_or(0.0, |median| median.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_part_is_measured_and_positive() {
        let directory = tempfile::tempdir().unwrap();
        let floor = Floor::measure(directory.path(), 3).unwrap();
        assert!(floor.fdatasync_p50_ms > 0.0, "{floor:?}");
        assert!(floor.loopback_round_trip_p50_ms > 0.0, "{floor:?}");
        assert!(floor.concurrent_fdatasync_p50_ms > 0.0, "{floor:?}");
        assert_eq!(floor.concurrent_syncs, 3);
        assert!(
            (floor.total_ms() - floor.fdatasync_p50_ms - floor.loopback_round_trip_p50_ms).abs()
                < 1e-12
        );
        let cluster = floor.concurrent_fdatasync_p50_ms + 2.0 * floor.loopback_round_trip_p50_ms;
        assert!((floor.cluster_ms() - cluster).abs() < 1e-12);
        assert_eq!(Floor::measure(directory.path(), 0).unwrap().concurrent_syncs, 1);
        assert!(std::fs::read_dir(directory.path()).unwrap().next().is_none(), "no files left");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_zero() {
        let directory = tempfile::tempdir().unwrap();
        let gone = directory.path().join("absent");
        assert!(Floor::measure(&gone, 1).is_err());
        assert!(Floor::measure(&gone, 3).is_err(), "and no writer waits forever");
    }

    #[test]
    fn the_median_is_the_middle_sample() {
        let mut times: Vec<Duration> = [5, 1, 3].into_iter().map(Duration::from_millis).collect();
        assert!((median_ms(&mut times) - 3.0).abs() < 1e-9);
        assert!((median_ms(&mut []) - 0.0).abs() < 1e-12);
    }
}
