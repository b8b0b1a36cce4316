//! Measures durable-write latency of both engines against a bare `fdatasync` of the same
//! bytes, interleaved round by round so that other load on a shared disk hits all three
//! alike (sequential benchmarks on a shared disk drift by 2x between runs). Ignored by
//! default:
//!
//! `cargo test -p raft-storage --test engine_latency -- --ignored --nocapture`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, LogId, LogIndex, Membership, NodeId, Term};
use raft_storage::{RedbLogStore, StoreConfig, WalConfig, WalLogStore};

const ROUNDS: usize = 150;
const PAYLOAD_BYTES: usize = 256;

fn batch(first: u64, count: u64, payload: &Bytes) -> Vec<Entry> {
    (first..first + count)
        .map(|index| Entry {
            log_id: LogId::new(Term(1), LogIndex(index)),
            payload: EntryPayload::Command(payload.clone()),
        })
        .collect()
}

fn percentile(samples: &mut [Duration], permille: usize) -> Duration {
    samples.sort_unstable();
    samples[(samples.len() - 1) * permille / 1000]
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn durable_writes_of_both_engines_next_to_a_bare_fdatasync() {
    let directory = tempfile::tempdir().unwrap();
    let membership = Membership::with_voters([NodeId(1)]);
    let payload = Bytes::from(vec![0x5a; PAYLOAD_BYTES]);
    for count in [1_u64, 16, 256] {
        let wal_directory = directory.path().join(format!("wal-{count}"));
        let redb_directory = directory.path().join(format!("redb-{count}"));
        let mut wal =
            WalLogStore::create(&wal_directory, &membership, WalConfig::default()).unwrap();
        let mut redb =
            RedbLogStore::create(&redb_directory, &membership, StoreConfig::default()).unwrap();
        let bare = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(directory.path().join(format!("bare-{count}")))
            .unwrap();
        let block = vec![0xa5_u8; count as usize * PAYLOAD_BYTES];
        bare.write_all_at(&block, 0).unwrap();
        bare.sync_all().unwrap();
        let mut samples = [Vec::new(), Vec::new(), Vec::new()];
        for round in 0..ROUNDS {
            let first = round as u64 * count + 1;
            for turn in 0..3 {
                let kind = (round + turn) % 3;
                let started = Instant::now();
                match kind {
                    0 => {
                        bare.write_all_at(&block, 0).unwrap();
                        bare.sync_data().unwrap();
                    }
                    1 => wal.persist_blocking(None, batch(first, count, &payload)).unwrap(),
                    _ => redb.persist_blocking(None, batch(first, count, &payload)).unwrap(),
                }
                samples[kind].push(started.elapsed());
            }
        }
        let [mut bare_samples, mut wal_samples, mut redb_samples] = samples;
        let median = |samples: &mut Vec<Duration>| percentile(samples, 500);
        let (bare_median, wal_median, redb_median) =
            (median(&mut bare_samples), median(&mut wal_samples), median(&mut redb_samples));
        let per_second = |median: Duration| count as f64 / median.as_secs_f64();
        eprintln!(
            "batch {count:>3} x 256 B, median of {ROUNDS}: bare fdatasync {bare_median:?}, \
             wal {wal_median:?} ({:.2}x bare, {:.0} entries/s), redb {redb_median:?} \
             ({:.2}x bare, {:.0} entries/s); wal/redb entries/s {:.2}; p90 bare {:?} wal {:?} \
             redb {:?}",
            wal_median.as_secs_f64() / bare_median.as_secs_f64(),
            per_second(wal_median),
            redb_median.as_secs_f64() / bare_median.as_secs_f64(),
            per_second(redb_median),
            per_second(wal_median) / per_second(redb_median),
            percentile(&mut bare_samples, 900),
            percentile(&mut wal_samples, 900),
            percentile(&mut redb_samples, 900),
        );
    }
}
