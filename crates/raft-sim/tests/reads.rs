//! Linearizable reads, in ReadIndex and lease modes: a deposed leader cut off in a minority
//! never serves a read that misses a write the majority acknowledged, and reads invoked on
//! followers under faults are linearizable. The cluster checks every read as it is served:
//! its read index and the state it returns include every write acknowledged before it was
//! invoked, and that state is the committed prefix at its applied index.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU64;

use bytes::Bytes;
use raft_core::{Config, NodeId, ReadMode, Role};
use raft_sim::client::RetryingClient;
use raft_sim::{Cluster, NetworkFaults, SimConfig};
use rand::Rng;

const MODES: [ReadMode; 2] = [ReadMode::ReadIndex, ReadMode::Lease];

fn config(nodes: u64, seed: u64, read_mode: ReadMode) -> SimConfig {
    let node_config = Config { read_mode, ..Config::default() };
    SimConfig { node_config, ..SimConfig::new(nodes, seed) }
}

fn command(number: u64) -> Bytes {
    Bytes::from(format!("write-{number}"))
}

/// Cuts the leader off with one follower, keeps reading on both while the majority elects a
/// new leader and acknowledges writes, then heals.
fn deposed_leader_reads(read_mode: ReadMode, seed: u64) {
    let mut cluster = Cluster::new(config(5, seed, read_mode));
    cluster.replicate(command(0), 5, 5_000).expect("all five agree");
    cluster.run_for(50);
    let old_leader = cluster.leader().unwrap();
    let follower = cluster.node_ids().into_iter().find(|&id| id != old_leader).unwrap();
    let minority = [old_leader, follower];
    cluster.partition(&[&minority]);
    let partitioned_at_ms = cluster.now_ms();
    let acknowledged_before = cluster.acknowledged_index();
    let mut first_new_ack_ms = None;
    for round in 1..=300 {
        for id in minority {
            let _ = cluster.read(id);
        }
        if round % 4 == 0 {
            let majority_leader = cluster.leader().filter(|id| !minority.contains(id));
            if let Some(leader) = majority_leader {
                let _ = cluster.propose_to(leader, command(round));
            }
        }
        cluster.run_for(5);
        if first_new_ack_ms.is_none() && cluster.acknowledged_index() > acknowledged_before {
            first_new_ack_ms = Some(cluster.now_ms());
        }
    }
    let first_new_ack_ms = first_new_ack_ms.expect("the majority acknowledged new writes");
    let served_in_minority: Vec<_> = cluster
        .served_reads()
        .filter(|read| minority.contains(&read.node) && read.invoked_at_ms >= partitioned_at_ms)
        .copied()
        .collect();
    for read in &served_in_minority {
        // The cluster already checked the read against what was acknowledged when it was
        // invoked; a stale minority can only have served reads invoked before any new ack.
        assert!(read.invoked_at_ms < first_new_ack_ms, "{read_mode:?}: {read:?}");
        assert!(read.applied_index <= acknowledged_before, "{read_mode:?}: {read:?}");
    }
    if read_mode == ReadMode::ReadIndex {
        assert!(
            served_in_minority.is_empty(),
            "a minority leader confirms no read without a majority: {served_in_minority:?}"
        );
    }
    assert_ne!(cluster.node(old_leader).unwrap().role(), Role::Leader, "CheckQuorum");

    cluster.heal();
    let healed_ack = cluster.acknowledged_index();
    let served = cluster.run_until(2_000, |cluster| {
        cluster
            .served_reads()
            .any(|read| read.node == old_leader && read.applied_index >= healed_ack)
    }) || {
        // Reads invoked while it knew no leader were refused: invoke one now.
        let read_id = cluster.read(old_leader);
        cluster.run_until(2_000, |c| read_id.is_some_and(|id| c.served_read(id).is_some()))
    };
    assert!(served, "{read_mode:?}: the old leader serves reads again once healed");
}

#[test]
fn a_deposed_leader_in_a_minority_never_serves_a_stale_read() {
    for read_mode in MODES {
        for seed in 0..5 {
            deposed_leader_reads(read_mode, seed);
        }
    }
}

/// Reads on random followers while a client writes and nodes crash, restart and get cut
/// off on a lossy network.
fn follower_reads_under_faults(read_mode: ReadMode, seed: u64) -> usize {
    let config = SimConfig { network: NetworkFaults::unreliable(), ..config(5, seed, read_mode) };
    let mut cluster = Cluster::new(config);
    let mut client = RetryingClient::new(20, 16);
    for round in 0..1_000 {
        client.act(&mut cluster, 0.5);
        let followers: Vec<NodeId> = cluster
            .node_ids()
            .into_iter()
            .filter(|&id| cluster.node(id).is_some_and(|node| node.role() != Role::Leader))
            .collect();
        if !followers.is_empty() {
            let id = followers[cluster.rng().random_range(0..followers.len())];
            let _ = cluster.read(id);
        }
        if round % 50 == 0 {
            let id = NodeId(cluster.rng().random_range(1..=5));
            match cluster.rng().random_range(0..3) {
                0 => cluster.restart(id),
                1 => cluster.partition(&[&[id]]),
                _ => cluster.heal(),
            }
        }
        cluster.run_for(10);
    }
    let leaders: Vec<NodeId> = cluster.leaders().into_iter().map(|(id, _)| id).collect();
    cluster
        .served_reads()
        .filter(|read| !leaders.contains(&read.node) && read.applied_index.0 > 0)
        .count()
}

#[test]
fn reads_from_followers_are_linearizable_under_faults() {
    for read_mode in MODES {
        for seed in 0..3 {
            let served = follower_reads_under_faults(read_mode, seed);
            assert!(served >= 100, "{read_mode:?} seed {seed}: only {served} follower reads");
        }
    }
}

#[test]
#[should_panic(expected = "linearizability violation")]
fn a_driver_that_serves_reads_before_applying_them_is_caught() {
    // The follower catches up one entry per round trip, so its read index arrives long
    // before its application reaches it; serving at once returns a state missing writes
    // acknowledged before the read.
    let node_config = Config {
        append_bytes_max: NonZeroU64::new(1).unwrap(),
        inflight_appends_max: NonZeroU64::new(1).unwrap(),
        ..Config::default()
    };
    let config =
        SimConfig { node_config, serve_reads_before_applied: true, ..SimConfig::new(3, 1) };
    let mut cluster = Cluster::new(config);
    cluster.replicate(command(0), 3, 5_000).expect("agreement");
    let leader = cluster.leader().unwrap();
    let follower = cluster.node_ids().into_iter().find(|&id| id != leader).unwrap();
    cluster.disconnect(follower);
    for number in 1..=50 {
        cluster.replicate(command(number), 2, 5_000).expect("the majority agrees");
    }
    cluster.reconnect(follower);
    for _ in 0..100 {
        let _ = cluster.read(follower);
        cluster.run_for(5);
    }
}

/// A leader whose leadership transfer timed out must not go back to serving lease reads
/// while the target may still win: the target campaigns on TimeoutNow and the voters
/// ignore their lease for it, so a new leader can exist inside the old leader's lease.
///
/// Here the target lags, so TimeoutNow goes out late in the transfer; the target wins just
/// before the old leader gives up on the transfer, and the old leader is cut off at that
/// moment, so it never hears of the new term. Once its transfer times out, its lease (held
/// up by the other follower's answers from before the vote) is valid again, and it serves a
/// read from its stale state while the new leader has acknowledged a newer write.
#[test]
fn a_leader_whose_transfer_timed_out_serves_no_stale_lease_read() {
    let mut cluster = Cluster::new(config(3, 10, ReadMode::Lease));
    cluster.replicate(command(0), 3, 5_000).expect("agreement");
    cluster.run_for(50);
    let old_leader = cluster.leader().unwrap();
    let target = cluster.node_ids().into_iter().find(|&id| id != old_leader).unwrap();
    cluster.partition(&[&[target]]);
    cluster.replicate(command(1), 2, 5_000).expect("the target lags");
    cluster.transfer_leader(old_leader, target).expect("the leader starts the transfer");
    cluster.run_for(45);
    cluster.heal();
    let won = cluster.run_until(300, |c| c.node(target).unwrap().role() == Role::Leader);
    assert!(won, "the target caught up and won");
    cluster.partition(&[&[old_leader]]);
    cluster.replicate(command(2), 2, 1_000).expect("the new leader acknowledges a write");
    for _ in 0..20 {
        let _ = cluster.read(old_leader);
        cluster.run_for(5);
    }
}
