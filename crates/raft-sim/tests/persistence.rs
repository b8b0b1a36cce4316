//! Persistence: a crash loses only what was not yet durable, and committed entries survive
//! any crash, of all nodes at once included. Modelled on the classic Raft lab's 2C tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use raft_core::NodeId;
use raft_sim::{Cluster, SimConfig};

const ELECTION_MS_MAX: u64 = 1_000;
const AGREEMENT_MS_MAX: u64 = 5_000;

fn command(value: u64) -> Bytes {
    Bytes::from(value.to_string())
}

/// The node `offset` places after `id`, cycling through `1..=nodes`.
fn after(id: NodeId, offset: u64, nodes: u64) -> NodeId {
    NodeId((id.0 - 1 + offset) % nodes + 1)
}

#[test]
fn every_committed_entry_survives_when_all_nodes_crash_and_restart() {
    let mut cluster = Cluster::new(SimConfig::new(3, 1));
    cluster.replicate(command(11), 3, AGREEMENT_MS_MAX).expect("agreement");

    for id in cluster.node_ids() {
        cluster.crash(id);
    }
    for id in cluster.node_ids() {
        cluster.restart(id);
    }
    cluster.replicate(command(12), 3, AGREEMENT_MS_MAX).expect("agreement after a full crash");

    let leader1 = cluster.leader().unwrap();
    cluster.restart(leader1);
    cluster.replicate(command(13), 3, AGREEMENT_MS_MAX).expect("after the leader restarts");

    let leader2 = cluster.leader().unwrap();
    cluster.crash(leader2);
    cluster.replicate(command(14), 2, AGREEMENT_MS_MAX).expect("without the leader");
    cluster.restart(leader2);
    let committed = cluster.committed_index();
    let caught_up =
        cluster.run_until(AGREEMENT_MS_MAX, |c| c.applied(leader2).len() as u64 >= committed.0);
    assert!(caught_up, "the restarted leader applies everything again");

    let follower = after(cluster.leader().unwrap(), 1, 3);
    cluster.crash(follower);
    cluster.replicate(command(15), 2, AGREEMENT_MS_MAX).expect("without a follower");
    cluster.restart(follower);
    cluster.replicate(command(16), 3, AGREEMENT_MS_MAX).expect("everyone again");

    assert_eq!(cluster.committed_commands(), (11..=16).map(command).collect::<Vec<_>>());
    cluster.check_durability();
}

#[test]
fn committed_entries_survive_repeated_crashes_of_the_leader_and_a_minority() {
    let nodes = 5;
    let mut cluster = Cluster::new(SimConfig::new(nodes, 2));
    let mut value = 10;
    for _ in 0..5 {
        cluster.replicate(command(value), 5, AGREEMENT_MS_MAX).expect("all five");
        value += 1;
        let leader = cluster.leader().unwrap();
        let node = |offset| after(leader, offset, nodes);
        cluster.crash(node(1));
        cluster.crash(node(2));
        cluster.replicate(command(value), 3, AGREEMENT_MS_MAX).expect("the other three");
        value += 1;
        // Only the two nodes that missed the last entry are up; with one that has it, they
        // make a majority that must keep it.
        cluster.crash(node(0));
        cluster.crash(node(3));
        cluster.crash(node(4));
        cluster.restart(node(1));
        cluster.restart(node(2));
        cluster.run_for(200);
        cluster.restart(node(3));
        cluster.replicate(command(value), 3, AGREEMENT_MS_MAX).expect("the restarted three");
        value += 1;
        cluster.restart(node(4));
        cluster.restart(node(0));
    }
    cluster.replicate(command(1000), 5, AGREEMENT_MS_MAX).expect("everyone at the end");
    let expected: Vec<Bytes> = (10..value).chain([1000]).map(command).collect();
    assert_eq!(cluster.committed_commands(), expected);
    cluster.check_durability();
}

#[test]
fn a_crash_loses_writes_not_yet_durable_and_the_node_catches_up() {
    // Slow disks, so there is time to crash a follower between receiving and persisting.
    let config = SimConfig { disk_write_ms_min: 20, disk_write_ms_max: 20, ..SimConfig::new(3, 3) };
    let mut cluster = Cluster::new(config);
    let leader = cluster.wait_for_leader(ELECTION_MS_MAX).expect("a leader");
    cluster.run_for(100);
    let follower = after(leader, 1, 3);
    let log_id = cluster.propose_to(leader, command(1)).unwrap();
    let received =
        cluster.run_until(100, |c| c.node(follower).unwrap().last_log_id().index >= log_id.index);
    assert!(received, "the follower received the entry");
    assert!(cluster.store(follower).entry(log_id.index).is_none(), "not durable yet");

    cluster.crash(follower);
    assert!(cluster.store(follower).entry(log_id.index).is_none(), "the crash lost the write");
    cluster.restart(follower);
    assert!(cluster.node(follower).unwrap().last_log_id().index < log_id.index);

    cluster.replicate(command(2), 3, AGREEMENT_MS_MAX).expect("everyone agrees");
    assert_eq!(cluster.committed_commands(), vec![command(1), command(2)]);
    assert_eq!(cluster.store(follower).entry(log_id.index).map(|e| e.log_id), Some(log_id));
}

#[test]
fn a_restarted_node_applies_what_its_disk_says_is_committed_at_once() {
    let mut cluster = Cluster::new(SimConfig::new(3, 4));
    for value in 0..5 {
        cluster.replicate(command(value), 3, AGREEMENT_MS_MAX).expect("agreement");
    }
    cluster.run_for(100);
    let follower = after(cluster.leader().unwrap(), 1, 3);
    cluster.restart(follower);
    let durable_commit = cluster.store(follower).hard_state().commit_index;
    assert!(durable_commit.0 > 0, "the commit index was persisted along with entries");
    assert_eq!(
        cluster.applied(follower).len() as u64,
        durable_commit.0,
        "applied up to the durable commit index before hearing from anyone"
    );
    let committed = cluster.committed_index();
    assert!(cluster.run_until(1_000, |c| c.applied(follower).len() as u64 >= committed.0));
}
