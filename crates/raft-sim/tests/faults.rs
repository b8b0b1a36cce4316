//! Sustained faults: the Figure 8 schedule (leaders crash right after accepting commands, so
//! entries of old terms are left half-replicated) and churn (nodes crash, restart and lose
//! connectivity constantly while clients keep proposing). Modelled on the classic Raft lab's
//! TestFigure8, TestFigure8Unreliable, TestReliableChurn and TestUnreliableChurn. Safety is
//! checked by the cluster after every step; these tests add liveness once the faults stop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use raft_core::NodeId;
use raft_sim::client::RetryingClient;
use raft_sim::{Cluster, NetworkFaults, SimConfig};
use rand::Rng;

/// How long a healed cluster may take to agree on a last command: 6.824 allows ten seconds
/// with election timeouts five times ours.
const RECOVERY_MS_MAX: u64 = 10_000;

fn random_command(cluster: &mut Cluster) -> Bytes {
    Bytes::from(cluster.rng().random::<u64>().to_le_bytes().to_vec())
}

/// A pause: usually under two ticks, sometimes up to half a second, so that some leaders
/// crash before replicating and others after.
fn random_pause_ms(cluster: &mut Cluster) -> u64 {
    if cluster.rng().random_bool(0.1) {
        cluster.rng().random_range(0..500)
    } else {
        cluster.rng().random_range(0..13)
    }
}

fn up_count(cluster: &Cluster) -> usize {
    cluster.node_ids().into_iter().filter(|&id| cluster.is_up(id)).count()
}

/// Proposes a command to every running node that believes it leads; returns the last one.
fn propose_everywhere(cluster: &mut Cluster) -> Option<NodeId> {
    let mut leader = None;
    for id in cluster.node_ids() {
        let command = random_command(cluster);
        if cluster.propose_to(id, command).is_some() {
            leader = Some(id);
        }
    }
    leader
}

#[test]
fn figure_8_crashing_leaders_never_commit_old_terms_unsafely() {
    for seed in 0..10 {
        let mut cluster = Cluster::new(SimConfig::new(5, seed));
        let first = random_command(&mut cluster);
        cluster.replicate(first, 1, RECOVERY_MS_MAX).expect("a first command");
        for _ in 0..1_000 {
            let leader = propose_everywhere(&mut cluster);
            let pause_ms = random_pause_ms(&mut cluster);
            cluster.run_for(pause_ms);
            if let Some(leader) = leader {
                cluster.crash(leader);
            }
            if up_count(&cluster) < 3 {
                let ids = cluster.node_ids();
                let id = ids[cluster.rng().random_range(0..ids.len())];
                if !cluster.is_up(id) {
                    cluster.restart(id);
                }
            }
        }
        for id in cluster.node_ids() {
            if !cluster.is_up(id) {
                cluster.restart(id);
            }
        }
        let last = random_command(&mut cluster);
        let index = cluster.replicate(last, 5, RECOVERY_MS_MAX);
        assert!(index.is_some(), "seed {seed}: no agreement after the crashes stopped");
        cluster.check_durability();
    }
}

#[test]
fn figure_8_on_an_unreliable_network_never_commits_old_terms_unsafely() {
    for seed in 0..10 {
        let config = SimConfig { network: NetworkFaults::unreliable(), ..SimConfig::new(5, seed) };
        let mut cluster = Cluster::new(config);
        let first = random_command(&mut cluster);
        cluster.replicate(first, 1, RECOVERY_MS_MAX).expect("a first command");
        for iteration in 0..1_000 {
            if iteration == 200 {
                // Long reordering: a message may arrive after an election timeout has passed
                // (the timeout is 100–200 ms). Every message, not only some, is delayed, so
                // going much further would leave no round trip short enough to elect anyone.
                let network = NetworkFaults { delay_ms_max: 150, ..NetworkFaults::unreliable() };
                cluster.set_network(network);
            }
            let leader =
                propose_everywhere(&mut cluster).filter(|&leader| !cluster.is_disconnected(leader));
            let pause_ms = random_pause_ms(&mut cluster);
            cluster.run_for(pause_ms);
            if let Some(leader) = leader
                && cluster.rng().random_bool(0.5)
            {
                cluster.disconnect(leader);
            }
            let connected =
                cluster.node_ids().into_iter().filter(|&id| !cluster.is_disconnected(id)).count();
            if connected < 3 {
                let ids = cluster.node_ids();
                let id = ids[cluster.rng().random_range(0..ids.len())];
                cluster.reconnect(id);
            }
        }
        cluster.heal();
        let last = random_command(&mut cluster);
        let index = cluster.replicate(last, 5, RECOVERY_MS_MAX);
        assert!(index.is_some(), "seed {seed}: no agreement after the network healed");
        cluster.check_durability();
    }
}

/// Crashes, restarts and disconnects nodes at random while a retrying client keeps
/// proposing; then heals everything and checks that every command committed.
fn churn(seed: u64, network: NetworkFaults) {
    let mut cluster = Cluster::new(SimConfig { network, ..SimConfig::new(5, seed) });
    let mut client = RetryingClient::new(20, 32);
    for _ in 0..60 {
        let ids = cluster.node_ids();
        let pick = |cluster: &mut Cluster| ids[cluster.rng().random_range(0..ids.len())];
        if cluster.rng().random_bool(0.2) {
            let id = pick(&mut cluster);
            cluster.disconnect(id);
        }
        if cluster.rng().random_bool(0.5) {
            let id = pick(&mut cluster);
            if !cluster.is_up(id) {
                cluster.restart(id);
            }
            cluster.reconnect(id);
        }
        if cluster.rng().random_bool(0.2) {
            let id = pick(&mut cluster);
            cluster.crash(id);
        }
        // Seven tenths of the longest election timeout, as in the lab test.
        for _ in 0..14 {
            client.act(&mut cluster, 0.5);
            cluster.run_for(10);
        }
    }
    cluster.heal();
    cluster.set_network(NetworkFaults::reliable());
    for id in cluster.node_ids() {
        if !cluster.is_up(id) {
            cluster.restart(id);
        }
    }
    let deadline_ms = cluster.now_ms() + RECOVERY_MS_MAX;
    while client.pending() > 0 && cluster.now_ms() < deadline_ms {
        client.act(&mut cluster, 0.0);
        cluster.run_for(10);
    }
    assert_eq!(client.pending(), 0, "seed {seed}: commands lost after the churn stopped");
    // The client is closed-loop (20 outstanding at most), so it only gets far if commands
    // kept committing through the churn.
    let issued = client.issued();
    assert!(issued > 40, "seed {seed}: only {issued} commands issued: progress stalled");
    cluster.check_durability();
}

#[test]
fn churn_on_a_reliable_network_loses_no_command() {
    for seed in 0..10 {
        churn(seed, NetworkFaults::reliable());
    }
}

#[test]
fn churn_on_an_unreliable_network_loses_no_command() {
    for seed in 0..10 {
        churn(seed, NetworkFaults::unreliable());
    }
}
