//! What the protocol costs in messages: elections and agreement on a healthy cluster are cheap,
//! and an idle cluster only exchanges heartbeats. Modelled on the classic Raft lab's
//! TestCount2B.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use raft_sim::{Cluster, MessageCounts, SimConfig};

const ELECTION_MS_MAX: u64 = 1_000;
const FOLLOWERS: u64 = 2;

/// Messages of an election, pre-votes included.
fn election_messages(counts: &MessageCounts) -> u64 {
    ["pre_vote_request", "pre_vote_response", "vote_request", "vote_response"]
        .iter()
        .map(|kind| counts.get(kind))
        .sum()
}

/// A three-node cluster with a leader whose first entry is committed and known everywhere.
fn settled_cluster(seed: u64) -> Cluster {
    let mut cluster = Cluster::new(SimConfig::new(3, seed));
    cluster.replicate(Bytes::from_static(b"warm-up"), 3, 5_000).expect("agreement");
    cluster.run_for(100);
    cluster
}

/// Runs until every node applied `index`.
fn wait_applied_everywhere(cluster: &mut Cluster, index: u64) {
    let applied = cluster.run_until(1_000, |cluster| {
        cluster.node_ids().iter().all(|&id| cluster.applied(id).len() as u64 >= index)
    });
    assert!(applied, "index {index} applied everywhere");
    // Let the commit index reach the followers.
    cluster.run_for(50);
}

#[test]
fn an_election_costs_a_bounded_number_of_messages() {
    let seeds = 20;
    let mut total = 0;
    for seed in 0..seeds {
        let mut cluster = Cluster::new(SimConfig::new(3, seed));
        cluster.wait_for_leader(ELECTION_MS_MAX).expect("a leader");
        let messages = election_messages(cluster.message_counts());
        // The lab's bound for a three-node election is 30 messages; doubled for PreVote.
        assert!(messages <= 60, "seed {seed}: {messages} election messages");
        total += messages;
    }
    // A clean election is one pre-vote and one vote round: a request and a response per
    // follower each, 4 * 2 = 8 messages. Split votes (all nodes timing out within the same
    // tick) cost more, but must stay the exception.
    let mean = total as f64 / seeds as f64;
    assert!(mean <= 16.0, "{mean} election messages on average");
}

#[test]
fn agreeing_on_one_entry_costs_a_bounded_number_of_messages() {
    for seed in 0..10 {
        let mut cluster = settled_cluster(seed);
        let leader = cluster.leader().unwrap();
        cluster.reset_message_counts();
        let log_id = cluster.propose_to(leader, Bytes::from_static(b"one")).unwrap();
        wait_applied_everywhere(&mut cluster, log_id.index.0);
        let counts = cluster.message_counts();
        // Per follower: one append with the entry, one telling it the new commit index, and
        // at most two empty appends prompted by heartbeat responses that arrive while the
        // entry is in flight (it is how a leader recovers a follower whose appends were
        // all lost). Each is answered once, except the one bringing only the commit index:
        // its answer would tell the leader nothing, so there are fewer answers than appends.
        let (appends, answers) = (counts.get("append_request"), counts.get("append_response"));
        assert!(appends <= 4 * FOLLOWERS, "seed {seed}: {counts:?}");
        assert!(answers <= 3 * FOLLOWERS, "seed {seed}: {counts:?}");
        assert!(answers < appends, "seed {seed}: commit-only appends answered: {counts:?}");
        assert_eq!(election_messages(counts), 0, "seed {seed}: no election");
    }
}

#[test]
fn a_burst_of_proposals_is_replicated_in_one_batch() {
    let mut cluster = settled_cluster(3);
    let leader = cluster.leader().unwrap();
    cluster.reset_message_counts();
    let commands = (0..10).map(|i| Bytes::from(format!("burst-{i}")));
    let last = cluster.propose_batch_to(leader, commands).last().unwrap().index;
    wait_applied_everywhere(&mut cluster, last.0);
    let counts = cluster.message_counts();
    // The same bound as for one entry (see above): the ten entries travel in one append.
    let appends = counts.get("append_request");
    assert!(appends <= 3 * FOLLOWERS, "ten entries, one batch: {counts:?}");
}

#[test]
fn an_idle_cluster_sends_only_heartbeats_and_their_responses() {
    let mut cluster = settled_cluster(4);
    cluster.reset_message_counts();
    cluster.run_for(1_000);
    let counts = cluster.message_counts();
    let kinds: Vec<&str> = counts.iter().map(|(kind, _)| kind).collect();
    assert_eq!(kinds, vec!["heartbeat", "heartbeat_response"], "{counts:?}");
    // A heartbeat per follower per tick (10 ms): 200 in a second, give or take the ticks
    // at the window's edges.
    let heartbeats = counts.get("heartbeat");
    assert!((195..=205).contains(&heartbeats), "{heartbeats} heartbeats in one second");
    assert!(counts.get("heartbeat_response").abs_diff(heartbeats) <= 4, "{counts:?}");
}
