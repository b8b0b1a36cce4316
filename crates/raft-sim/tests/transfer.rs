//! Leadership transfer under load: the target takes over within a bound, proposals made in
//! between are refused with `TransferInProgress` rather than silently lost, every proposal a
//! leader accepted commits where it was accepted, and a transfer to an unreachable target is
//! abandoned so the leader takes proposals again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use raft_core::{Error, LogId, NodeId, Role};
use raft_sim::{Cluster, SimConfig};
use rand::Rng;

/// How long a transfer to a connected target may take: the target needs at most a round
/// trip to catch up and one election round; the leader gives up after one minimum election
/// timeout (100 ms with the default 10 ms tick).
const TRANSFER_MS_MAX: u64 = 100;

/// How often the load proposes a command, in milliseconds.
const LOAD_INTERVAL_MS: u64 = 2;

/// What the load saw: the proposals accepted, and how many were refused because a transfer
/// was under way.
#[derive(Default)]
struct Load {
    next: u64,
    accepted: Vec<(LogId, Bytes)>,
    refused_for_transfer: u64,
}

impl Load {
    /// Proposes one command to `id`, recording how it fared.
    fn propose_to(&mut self, cluster: &mut Cluster, id: NodeId) {
        let command = Bytes::from(format!("load-{}", self.next));
        self.next += 1;
        match cluster.try_propose(id, command.clone()) {
            Ok(Some(log_id)) => self.accepted.push((log_id, command)),
            Ok(None) | Err(Error::NotLeader { .. }) => {}
            Err(Error::TransferInProgress { .. }) => self.refused_for_transfer += 1,
            Err(other) => panic!("unexpected refusal: {other}"),
        }
    }

    /// Proposes to whoever leads for `duration_ms`.
    fn run(&mut self, cluster: &mut Cluster, duration_ms: u64) {
        for _ in 0..duration_ms / LOAD_INTERVAL_MS {
            if let Some(leader) = cluster.leader() {
                self.propose_to(cluster, leader);
            }
            cluster.run_for(LOAD_INTERVAL_MS);
        }
    }
}

#[test]
fn leadership_transfer_under_load_hands_over_within_a_bound() {
    for seed in 0..10 {
        let mut cluster = Cluster::new(SimConfig::new(5, seed));
        cluster.replicate(Bytes::from_static(b"warm-up"), 5, 5_000).expect("agreement");
        let mut load = Load::default();
        for round in 0..5 {
            load.run(&mut cluster, 200);
            let leader = cluster.leader().unwrap();
            let others: Vec<NodeId> =
                cluster.node_ids().into_iter().filter(|&id| id != leader).collect();
            let target = others[cluster.rng().random_range(0..others.len())];
            cluster.transfer_leader(leader, target).expect("the leader accepts the transfer");
            let started_ms = cluster.now_ms();
            // Keep proposing to the old leader: it must refuse, not accept and lose.
            while cluster.now_ms() < started_ms + TRANSFER_MS_MAX
                && cluster.node(target).unwrap().role() != Role::Leader
            {
                load.propose_to(&mut cluster, leader);
                cluster.run_for(LOAD_INTERVAL_MS);
            }
            assert_eq!(
                cluster.node(target).unwrap().role(),
                Role::Leader,
                "seed {seed} round {round}: n{target} took over within {TRANSFER_MS_MAX} ms\n{}",
                cluster.describe()
            );
            assert_eq!(cluster.leaders().len(), 1, "seed {seed}: the old leader stepped down");
        }
        load.run(&mut cluster, 200);
        let last = load.accepted.last().unwrap().0.index;
        assert!(cluster.run_until(1_000, |cluster| cluster.committed_index() >= last));
        let committed: Vec<_> = cluster.committed_entries().cloned().collect();
        for (log_id, command) in &load.accepted {
            let entry = &committed[log_id.index.0 as usize - 1];
            assert_eq!(entry.log_id, *log_id, "seed {seed}: an accepted proposal was lost");
            assert_eq!(entry.payload, raft_core::EntryPayload::Command(command.clone()));
        }
        assert!(load.refused_for_transfer > 0, "seed {seed}: proposals met the transfers");
        cluster.check_durability();
    }
}

#[test]
fn a_transfer_to_an_unreachable_target_is_abandoned_and_proposals_resume() {
    let mut cluster = Cluster::new(SimConfig::new(3, 7));
    cluster.replicate(Bytes::from_static(b"warm-up"), 3, 5_000).expect("agreement");
    let leader = cluster.leader().unwrap();
    let term = cluster.node(leader).unwrap().term();
    let target = cluster.node_ids().into_iter().find(|&id| id != leader).unwrap();
    cluster.partition(&[&[target]]);
    cluster.transfer_leader(leader, target).expect("the leader accepts the transfer");
    let refused = cluster.try_propose(leader, Bytes::from_static(b"during"));
    assert_eq!(refused, Err(Error::TransferInProgress { target }));
    let resumed = cluster.run_until(2 * TRANSFER_MS_MAX, |cluster| {
        cluster.node(leader).unwrap().transfer_target().is_none()
    });
    assert!(resumed, "the transfer was abandoned after an election timeout");
    let index =
        cluster.replicate(Bytes::from_static(b"after"), 2, 1_000).expect("proposals resume");
    assert_eq!(cluster.leader(), Some(leader), "the same leader");
    assert_eq!(cluster.node(leader).unwrap().term(), term, "no election happened");
    assert!(cluster.applied_count(index, b"after") >= 2);
}
