//! Votes survive restarts: a voter rebooted right after granting a vote must not grant
//! another in the same term. PreVote and CheckQuorum are off here because they make two
//! candidates of one term rare (and with them the window this test aims at); the cluster
//! checks one leader per term after every step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use raft_core::{Campaign, MessageBody};
use raft_sim::{Cluster, NetworkFaults, SimConfig};

/// Crashes the leader over and over; every node that grants a vote is rebooted within a
/// millisecond of sending it, before a rival candidate's request of the same term lands.
fn reboot_voters_during_elections(seed: u64) {
    // Fast disks and widely spread delays: a rival's request often lands after the voter's
    // vote is durable and the voter has rebooted.
    let mut config = SimConfig::new(5, seed);
    config.node_config.pre_vote = false;
    config.node_config.check_quorum = false;
    config.disk_write_ms_min = 0;
    config.disk_write_ms_max = 1;
    config.network =
        NetworkFaults { delay_ms_min: 1, delay_ms_max: 60, ..NetworkFaults::reliable() };
    let mut cluster = Cluster::new(config);
    cluster.record_messages(true);
    let mut elections = 0;
    for _ in 0..30 {
        let Some(leader) = cluster.wait_for_leader(5_000) else {
            panic!("seed {seed}: no leader within 5 s");
        };
        elections += 1;
        cluster.crash(leader);
        for _ in 0..400 {
            cluster.run_for(1);
            for message in cluster.take_recorded_messages() {
                let granted = matches!(
                    message.body,
                    MessageBody::VoteResponse {
                        campaign: Campaign::Election | Campaign::Transfer,
                        granted: true,
                    }
                );
                if granted && cluster.is_up(message.from) {
                    cluster.restart(message.from);
                }
            }
        }
        cluster.restart(leader);
    }
    assert_eq!(elections, 30, "seed {seed}");
}

#[test]
fn a_voter_rebooted_right_after_voting_never_votes_twice_in_a_term() {
    for seed in 0..40 {
        reboot_voters_during_elections(seed);
    }
}
