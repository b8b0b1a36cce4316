//! Determinism: a seed replays exactly, which is what makes a failing seed worth printing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use raft_sim::{Cluster, NetworkFaults, SimConfig, sweep};
use rand::Rng;

/// A scenario exercising every source of randomness: a lossy network, crashes at random
/// times, and random choices drawn from the run's PRNG.
fn scenario(seed: u64) -> (u64, u64, Vec<Bytes>) {
    let config = SimConfig { network: NetworkFaults::unreliable(), ..SimConfig::new(5, seed) };
    let mut cluster = Cluster::new(config);
    for round in 0..30u32 {
        let _ = cluster.propose(Bytes::from(round.to_string()));
        let pause_ms = cluster.rng().random_range(0..200);
        cluster.run_for(pause_ms);
        let id = raft_core::NodeId(cluster.rng().random_range(1..=5));
        if cluster.is_up(id) {
            cluster.crash(id);
        } else {
            cluster.restart(id);
        }
    }
    (cluster.trace_hash(), cluster.steps(), cluster.committed_commands())
}

#[test]
fn the_same_seed_replays_the_same_run() {
    for seed in 0..3 {
        let first = scenario(seed);
        let second = scenario(seed);
        assert_eq!(first, second, "seed {seed} replayed differently");
        assert!(first.1 > 1_000, "the scenario did something");
    }
}

#[test]
fn different_seeds_take_different_runs() {
    assert_ne!(scenario(1).0, scenario(2).0);
}

#[test]
fn a_sweep_seed_replays_the_same_report() {
    for seed in [0, 17, 123] {
        assert_eq!(sweep::run_seed(seed, false), sweep::run_seed(seed, false));
    }
}
