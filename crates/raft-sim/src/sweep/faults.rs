//! The faults the chaos phase strikes with.

use raft_core::NodeId;
use rand::Rng;
use rand::seq::SliceRandom;

use crate::cluster::Cluster;
use crate::config::NetworkFaults;

use super::profile::{Profile, random_network};

/// A leadership transfer a leader accepted: who hands over, and to whom.
#[derive(Clone, Copy, Debug)]
pub(super) struct Transfer {
    pub(super) from: NodeId,
    pub(super) to: NodeId,
}

/// Strikes the cluster with one random fault: a crash, a restart, a partition, a
/// disconnection, a heal, a change of network, or (when the profile allows) a leadership
/// transfer to a random voter. Returns the transfer, when the fault was one the leader
/// accepted.
pub(super) fn random_fault(cluster: &mut Cluster, profile: &Profile) -> Option<Transfer> {
    let ids = cluster.node_ids();
    let any = ids[cluster.rng().random_range(0..ids.len())];
    match cluster.rng().random_range(0..11) {
        0 => cluster.crash(any),
        8 => {
            if cluster.rng().random_bool(0.5) {
                cluster.reboot_after_next_vote();
            } else {
                reboot_a_voter(cluster, any);
            }
        }
        1 | 2 => {
            let down: Vec<NodeId> = ids
                .iter()
                .copied()
                .filter(|&id| !cluster.is_up(id) && !cluster.is_retired(id))
                .collect();
            if let Some(&id) = down.get(cluster.rng().random_range(0..down.len().max(1))) {
                cluster.restart(id);
            }
        }
        3 => random_partition(cluster, &ids),
        4 => cluster.heal(),
        5 => cluster.disconnect(any),
        6 => cluster.reconnect(any),
        7 => {
            if let Some(leader) = cluster.leader() {
                cluster.disconnect(leader);
            }
        }
        10 if profile.features.transfers => return random_transfer(cluster),
        _ => {
            let network = if profile.lossy && cluster.rng().random_bool(0.7) {
                random_network(cluster.rng())
            } else {
                NetworkFaults::reliable()
            };
            cluster.set_network(network);
        }
    }
    None
}

/// Asks the leader to hand leadership to a random other voter of its membership. Returns
/// the transfer, if the leader accepted it.
fn random_transfer(cluster: &mut Cluster) -> Option<Transfer> {
    let leader = cluster.leader()?;
    let voters: Vec<NodeId> = cluster
        .node(leader)
        .map(|node| node.membership().voters.iter().copied().filter(|&id| id != leader).collect())
        .unwrap_or_default();
    if voters.is_empty() {
        return None;
    }
    let target = voters[cluster.rng().random_range(0..voters.len())];
    let accepted = cluster.transfer_leader(leader, target).is_ok();
    accepted.then_some(Transfer { from: leader, to: target })
}

/// Crashes and at once restarts a node that voted in its current term (`fallback` if none
/// did): a node that forgot its vote across the restart could vote twice in one term, and
/// only a restart soon after voting gives it the chance.
fn reboot_a_voter(cluster: &mut Cluster, fallback: NodeId) {
    let voters: Vec<NodeId> = cluster
        .node_ids()
        .into_iter()
        .filter(|&id| cluster.node(id).is_some_and(|node| node.voted_for().is_some()))
        .collect();
    let id = if voters.is_empty() {
        fallback
    } else {
        voters[cluster.rng().random_range(0..voters.len())]
    };
    if !cluster.is_retired(id) {
        cluster.restart(id);
    }
}

/// Splits the nodes into two or three random groups.
fn random_partition(cluster: &mut Cluster, ids: &[NodeId]) {
    let mut shuffled = ids.to_vec();
    shuffled.shuffle(cluster.rng());
    let first_cut = cluster.rng().random_range(1..shuffled.len());
    let second_cut = if cluster.rng().random_bool(0.3) {
        cluster.rng().random_range(first_cut..=shuffled.len())
    } else {
        shuffled.len()
    };
    let groups =
        [&shuffled[..first_cut], &shuffled[first_cut..second_cut], &shuffled[second_cut..]];
    cluster.partition(&groups);
}
