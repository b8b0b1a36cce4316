//! Membership changes one server at a time: growing three voters to five and shrinking five
//! to three while nodes crash, restart and get cut off on a lossy network, and a learner that
//! catches up (by snapshot) before it is promoted. The cluster checks after every step that
//! no term has two leaders and that each commit is durable on a majority of the voters the
//! committing leader counted; these tests add that the changes complete, that every member
//! converges and that no committed entry is lost.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::num::NonZeroU64;

use bytes::Bytes;
use raft_core::{Config, NodeId, Role};
use raft_sim::client::RetryingClient;
use raft_sim::reconfiguration::Reconfiguration;
use raft_sim::{Cluster, NetworkFaults, SimConfig};
use rand::Rng;

/// How long a healed cluster may take to finish a plan and commit every command.
const RECOVERY_MS_MAX: u64 = 20_000;

fn ids(range: std::ops::RangeInclusive<u64>) -> BTreeSet<NodeId> {
    range.map(NodeId).collect()
}

/// Drives `plan` and a writing client for `chaos_ms` while random faults strike every
/// 100 ms, then heals and runs until the plan is done and every command committed; checks
/// that every member converges.
fn run_plan_under_faults(cluster: &mut Cluster, plan: &mut Reconfiguration, chaos_ms: u64) {
    let seed = cluster.config().seed;
    let mut client = RetryingClient::new(10, 8);
    let ids = cluster.node_ids();
    for round in 0..chaos_ms / 10 {
        client.act(cluster, 0.3);
        plan.act(cluster);
        if round % 10 == 0 {
            let id = ids[cluster.rng().random_range(0..ids.len())];
            match cluster.rng().random_range(0..4) {
                _ if cluster.is_retired(id) => {}
                0 => cluster.crash(id),
                1 => cluster.restart(id),
                2 => cluster.partition(&[&[id]]),
                _ => cluster.heal(),
            }
        }
        cluster.run_for(10);
    }
    cluster.heal();
    cluster.set_network(NetworkFaults::reliable());
    for &id in &ids {
        if !cluster.is_up(id) && !cluster.is_retired(id) {
            cluster.restart(id);
        }
    }
    let deadline_ms = cluster.now_ms() + RECOVERY_MS_MAX;
    while (!plan.act(cluster) || client.pending() > 0) && cluster.now_ms() < deadline_ms {
        client.act(cluster, 0.0);
        cluster.run_for(10);
    }
    assert!(plan.is_done(cluster), "seed {seed}: the plan finished\n{}", cluster.describe());
    assert_eq!(client.pending(), 0, "seed {seed}: every command committed");
    let committed = cluster.committed_index();
    let members: Vec<NodeId> = cluster.membership().members().collect();
    let converged = cluster.run_until(RECOVERY_MS_MAX, |cluster| {
        members.iter().all(|&id| cluster.applied_index(id) >= committed)
    });
    assert!(converged, "seed {seed}: every member applied the log\n{}", cluster.describe());
    let leader = cluster.leader().unwrap();
    assert!(cluster.membership().is_voter(leader), "seed {seed}: the leader is a voter");
    cluster.check_durability();
}

fn config(nodes: u64, spare_nodes: u64, seed: u64) -> SimConfig {
    let node_config = Config { snapshot_log_bytes: NonZeroU64::new(1_024), ..Config::default() };
    SimConfig {
        spare_nodes,
        node_config,
        network: NetworkFaults::unreliable(),
        ..SimConfig::new(nodes, seed)
    }
}

#[test]
fn three_voters_grow_to_five_through_crashes_and_partitions() {
    for seed in 0..5 {
        let mut cluster = Cluster::new(config(3, 2, seed));
        let mut plan = Reconfiguration::new(ids(1..=5));
        run_plan_under_faults(&mut cluster, &mut plan, 5_000);
        assert_eq!(cluster.membership().voters, ids(1..=5));
        assert!(plan.proposed() >= 4, "two learners added and promoted");
        for id in [NodeId(4), NodeId(5)] {
            assert_eq!(cluster.application(id), cluster.application(NodeId(1)), "seed {seed}");
        }
    }
}

#[test]
fn five_voters_shrink_to_three_removing_the_leader_through_crashes_and_partitions() {
    for seed in 0..5 {
        let mut cluster = Cluster::new(config(5, 0, seed));
        let leader = cluster.wait_for_leader(5_000).expect("a leader");
        cluster.run_for(200);
        let follower = cluster.node_ids().into_iter().find(|&id| id != leader).unwrap();
        let target: BTreeSet<NodeId> =
            ids(1..=5).into_iter().filter(|&id| id != leader && id != follower).collect();
        let mut plan = Reconfiguration::new(target.clone());
        run_plan_under_faults(&mut cluster, &mut plan, 5_000);
        assert_eq!(cluster.membership().voters, target);
        for removed in [leader, follower] {
            assert!(cluster.is_retired(removed), "seed {seed}: n{removed} was shut down");
        }
        let new_leader = cluster.leader().unwrap();
        assert!(target.contains(&new_leader), "seed {seed}: a remaining voter leads");
    }
}

#[test]
fn a_learner_catches_up_by_snapshot_then_is_promoted() {
    let config = SimConfig { network: NetworkFaults::reliable(), ..config(3, 1, 1) };
    let mut cluster = Cluster::new(config);
    for number in 0..300u64 {
        let command = Bytes::from(format!("before-{number}"));
        cluster.replicate(command, 3, 5_000).expect("agreement");
    }
    let learner = NodeId(4);
    let mut plan = Reconfiguration::new(ids(1..=4));
    let mut was_learner = false;
    let mut promoted_seen = false;
    let deadline_ms = cluster.now_ms() + 10_000;
    while !plan.act(&mut cluster) && cluster.now_ms() < deadline_ms {
        if cluster.membership().learners.contains(&learner) {
            was_learner = true;
            assert_eq!(cluster.membership().quorum(), 2, "a learner does not count");
        }
        let node = cluster.node(learner).unwrap();
        assert_eq!(node.role(), Role::Follower, "the learner never campaigns");
        let leader = cluster.leader().and_then(|id| cluster.node(id)).unwrap();
        if !promoted_seen && leader.membership().is_voter(learner) {
            promoted_seen = true;
            let caught_up = node.last_log_id().index >= leader.commit_index();
            assert!(caught_up, "promoted only once it holds everything committed");
        }
        cluster.run_for(5);
    }
    let done = plan.is_done(&cluster);
    assert!(done, "the learner was promoted\n{}", cluster.describe());
    assert!(was_learner, "node 4 was a learner before it became a voter");
    let (installed, _) = cluster.snapshot_counts(learner);
    assert!(installed >= 1, "the learner caught up by snapshot: the log was compacted");
    cluster.replicate(Bytes::from_static(b"after"), 4, 5_000).expect("four voters agree");
    assert_eq!(cluster.membership().quorum(), 3);
    assert_eq!(cluster.application(learner), cluster.application(NodeId(1)));
}
