//! Elections: a leader appears, is replaced when it disappears, and is not replaced without a
//! majority; PreVote and CheckQuorum keep leadership stable across partitions. Modelled on the
//! classic Raft lab's 2A tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use raft_core::{Config, NodeId, Role, Term};
use raft_sim::{Cluster, SimConfig};
use rand::Rng;
use rand::seq::SliceRandom;

/// The longest time an election may take: the default election timeout is 100–200 ms, so this
/// allows for a few split votes and pre-vote rounds.
const ELECTION_MS_MAX: u64 = 1_000;

/// Long enough for many election timeouts to expire if anything were unstable.
const QUIET_MS: u64 = 2_000;

fn cluster(nodes: u64, seed: u64) -> Cluster {
    Cluster::new(SimConfig::new(nodes, seed))
}

/// Every running node's term.
fn terms(cluster: &Cluster) -> Vec<Term> {
    cluster.node_ids().iter().filter_map(|&id| cluster.node(id)).map(|node| node.term()).collect()
}

#[test]
fn initial_election_elects_one_leader_in_a_term_everyone_agrees_on() {
    for seed in 0..20 {
        let mut cluster = cluster(3, seed);
        let leader = cluster.wait_for_leader(ELECTION_MS_MAX);
        let leader = leader.unwrap_or_else(|| panic!("seed {seed}: no leader within bound"));
        assert!(cluster.now_ms() <= ELECTION_MS_MAX);
        // Let the leader's first heartbeats reach everyone.
        cluster.run_for(100);
        let term = cluster.node(leader).unwrap().term();
        assert_eq!(terms(&cluster), vec![term; 3], "seed {seed}: nodes disagree on the term");
        for id in cluster.node_ids() {
            assert_eq!(cluster.node(id).unwrap().leader(), Some(leader), "seed {seed}");
        }
        // With no failures, the leader stays and nobody starts an election.
        cluster.reset_message_counts();
        cluster.run_for(QUIET_MS);
        assert_eq!(cluster.leader(), Some(leader), "seed {seed}: leader changed");
        assert_eq!(terms(&cluster), vec![term; 3], "seed {seed}: term changed without failure");
        let counts = cluster.message_counts();
        let campaigns = counts.get("pre_vote_request") + counts.get("vote_request");
        assert_eq!(campaigns, 0, "seed {seed}: nobody campaigned under a healthy leader");
    }
}

#[test]
fn a_new_leader_is_elected_when_the_leader_is_disconnected_and_none_without_a_majority() {
    let mut cluster = cluster(3, 7);
    let leader1 = cluster.wait_for_leader(ELECTION_MS_MAX).expect("a first leader");

    cluster.disconnect(leader1);
    let leader2 = cluster.wait_for_leader(ELECTION_MS_MAX).expect("a second leader");
    assert_ne!(leader2, leader1);

    // The old leader rejoins: it must not disturb the new one, and must stop leading.
    cluster.reconnect(leader1);
    cluster.run_for(ELECTION_MS_MAX);
    assert_eq!(cluster.leader(), Some(leader2));
    assert_eq!(cluster.leaders().len(), 1, "the old leader stepped down: {:?}", cluster.leaders());

    // Without a majority, nobody may become leader.
    let other = cluster.node_ids().into_iter().find(|&id| id != leader2 && id != leader1).unwrap();
    cluster.disconnect(leader2);
    cluster.disconnect(other);
    cluster.run_for(QUIET_MS);
    assert_eq!(cluster.leader(), None, "a lone node must not lead");
    assert_ne!(cluster.node(leader1).unwrap().role(), Role::Leader);

    // A majority again: a leader appears.
    cluster.reconnect(other);
    let leader3 = cluster.wait_for_leader(ELECTION_MS_MAX).expect("a leader with a majority");
    assert_ne!(leader3, leader2);

    cluster.reconnect(leader2);
    cluster.run_for(ELECTION_MS_MAX);
    assert!(cluster.leader().is_some());
    assert_eq!(cluster.leaders().len(), 1, "{:?}", cluster.leaders());
}

#[test]
fn many_elections_under_repeated_random_disconnections() {
    let mut cluster = cluster(7, 11);
    cluster.wait_for_leader(ELECTION_MS_MAX).expect("a first leader");
    for iteration in 0..20 {
        // Cut three of seven: the other four are still a majority.
        let mut cut = cluster.node_ids();
        cut.shuffle(cluster.rng());
        cut.truncate(3);
        for &id in &cut {
            cluster.disconnect(id);
        }
        let leader = cluster.wait_for_leader(ELECTION_MS_MAX);
        assert!(leader.is_some(), "iteration {iteration}: no leader with {cut:?} cut");
        assert!(!cut.contains(&leader.unwrap()));
        for &id in &cut {
            cluster.reconnect(id);
        }
        let pause_ms = cluster.rng().random_range(0..300);
        cluster.run_for(pause_ms);
    }
    assert!(cluster.wait_for_leader(ELECTION_MS_MAX).is_some());
}

/// Isolates a follower of a stable leader for a long time, then lets it back, and returns
/// (the leader and its term before, the cluster).
fn isolate_and_rejoin_a_follower(node_config: Config) -> (NodeId, Term, NodeId, Cluster) {
    let config = SimConfig { node_config, ..SimConfig::new(3, 23) };
    let mut cluster = Cluster::new(config);
    let leader = cluster.wait_for_leader(ELECTION_MS_MAX).expect("a leader");
    cluster.run_for(100);
    let term = cluster.node(leader).unwrap().term();
    let follower = cluster.node_ids().into_iter().find(|&id| id != leader).unwrap();
    cluster.partition(&[&[follower]]);
    cluster.run_for(QUIET_MS);
    cluster.heal();
    cluster.run_for(QUIET_MS);
    (leader, term, follower, cluster)
}

#[test]
fn pre_vote_stops_a_node_rejoining_from_a_partition_from_disrupting_the_leader() {
    let (leader, term, follower, cluster) = isolate_and_rejoin_a_follower(Config::default());
    assert_eq!(cluster.leader(), Some(leader), "the leader kept its place");
    assert_eq!(cluster.node(leader).unwrap().term(), term, "the term did not move");
    let rejoined = cluster.node(follower).unwrap();
    assert_eq!(rejoined.term(), term, "pre-votes never raised the isolated node's term");
    assert_eq!(rejoined.leader(), Some(leader), "the rejoined node follows the leader");
    assert!(cluster.message_counts().get("pre_vote_request") > 0, "it did try to campaign");
}

#[test]
fn without_pre_vote_a_node_rejoining_from_a_partition_disrupts_the_leader() {
    // The negative space of the test above: the same schedule without PreVote or
    // CheckQuorum forces a new election when the isolated node returns with a higher term.
    let node_config = Config { pre_vote: false, check_quorum: false, ..Config::default() };
    let (leader, term, follower, cluster) = isolate_and_rejoin_a_follower(node_config);
    let new_term = cluster.node(follower).unwrap().term();
    assert!(new_term > term, "the isolated node's term rose: {new_term} vs {term}");
    let leader_now = cluster.leader().expect("a leader after the disruption");
    assert!(cluster.node(leader_now).unwrap().term() > term, "the old leader {leader} was deposed");
}

#[test]
fn check_quorum_makes_an_isolated_leader_step_down() {
    let mut cluster = cluster(5, 31);
    let leader = cluster.wait_for_leader(ELECTION_MS_MAX).expect("a leader");
    cluster.partition(&[&[leader]]);
    // One CheckQuorum round takes election_ticks (100 ms); allow two rounds and delivery.
    let stepped_down =
        cluster.run_until(300, |cluster| cluster.node(leader).unwrap().role() != Role::Leader);
    assert!(stepped_down, "the isolated leader still leads after 300 ms");
    let others: Vec<NodeId> = cluster.node_ids().into_iter().filter(|&id| id != leader).collect();
    cluster.partition(&[&others]);
    let leader2 = cluster.wait_for_leader(ELECTION_MS_MAX).expect("the majority elects a leader");
    assert_ne!(leader2, leader);
}

#[test]
fn without_check_quorum_an_isolated_leader_keeps_leading() {
    let node_config = Config { check_quorum: false, ..Config::default() };
    let mut cluster = Cluster::new(SimConfig { node_config, ..SimConfig::new(5, 31) });
    let leader = cluster.wait_for_leader(ELECTION_MS_MAX).expect("a leader");
    cluster.partition(&[&[leader]]);
    cluster.run_for(QUIET_MS);
    assert_eq!(cluster.node(leader).unwrap().role(), Role::Leader, "nothing told it to stop");
}
