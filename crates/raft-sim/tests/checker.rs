//! The checker's negative space: a cluster run on a driver that breaks Raft's rules must be
//! caught, or a green sweep would mean nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use raft_sim::{Cluster, SimConfig};

#[test]
#[should_panic(expected = "durable on only")]
fn a_disk_that_ignores_sync_is_caught_at_the_first_commit() {
    // Writes take 20 ms to reach the store, but the nodes are told at once: the leader
    // commits on acknowledgements that promise nothing.
    let config = SimConfig {
        disk_ignores_sync: true,
        disk_write_ms_min: 20,
        disk_write_ms_max: 20,
        ..SimConfig::new(3, 1)
    };
    let mut cluster = Cluster::new(config);
    let _ = cluster.replicate(Bytes::from_static(b"x"), 3, 5_000);
}

#[test]
fn the_same_slow_disk_that_honours_sync_passes() {
    let config = SimConfig { disk_write_ms_min: 20, disk_write_ms_max: 20, ..SimConfig::new(3, 1) };
    let mut cluster = Cluster::new(config);
    cluster.replicate(Bytes::from_static(b"x"), 3, 5_000).expect("agreement");
    cluster.check_durability();
}
