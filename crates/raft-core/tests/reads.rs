//! Linearizable reads: ReadIndex on the leader and from followers, and lease reads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::Cluster;
use raft_core::{Error, LogIndex, Message, MessageBody, NodeId, ReadId, ReadMode, ReadState, Role};

fn read_states(cluster: &mut Cluster, id: u64) -> Vec<ReadState> {
    let node = cluster.node_mut(id);
    let mut states = Vec::new();
    while node.has_ready() {
        states.extend(node.ready().read_states);
    }
    states
}

/// Collects node `id`'s read states while running the cluster's message loop by hand;
/// messages for which `hold` is true are set aside in `held` instead of delivered.
fn run_holding(
    cluster: &mut Cluster,
    id: u64,
    hold: impl Fn(&Message) -> bool,
    held: &mut Vec<Message>,
) -> Vec<ReadState> {
    let mut states = Vec::new();
    for _ in 0..1000 {
        let ready_ids: Vec<NodeId> =
            cluster.nodes.iter().filter(|(_, n)| n.has_ready()).map(|(&i, _)| i).collect();
        if ready_ids.is_empty() && cluster.in_flight.is_empty() {
            break;
        }
        for ready_id in ready_ids {
            let ready = cluster.nodes.get_mut(&ready_id).unwrap().ready();
            if ready_id == NodeId(id) {
                states.extend(ready.read_states.iter().copied());
            }
            cluster.in_flight.extend(ready.messages_now);
            cluster.in_flight.extend(ready.messages_after_persist);
            if let Some(last) = ready.entries_to_persist.last() {
                cluster.nodes.get_mut(&ready_id).unwrap().on_persisted(last.log_id);
            }
        }
        if let Some(message) = cluster.in_flight.pop_front() {
            if hold(&message) {
                held.push(message);
            } else if !cluster.cut.contains(&(message.from, message.to)) {
                cluster.nodes.get_mut(&message.to).unwrap().step(message).unwrap();
            }
        }
    }
    states
}

fn run_collecting_reads(cluster: &mut Cluster, id: u64) -> Vec<ReadState> {
    run_holding(cluster, id, |_| false, &mut Vec::new())
}

#[test]
fn leader_read_waits_for_a_heartbeat_round_from_a_majority() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    cluster.node_mut(1).propose(Bytes::from_static(b"w")).unwrap();
    cluster.stabilize();
    let commit_index = cluster.node(1).commit_index();
    cluster.node_mut(1).read_index(ReadId(7)).unwrap();
    let ready = cluster.node_mut(1).ready();
    assert!(ready.read_states.is_empty(), "not before the heartbeat round");
    let heartbeats =
        ready.messages_now.iter().filter(|m| matches!(m.body, MessageBody::Heartbeat { .. }));
    assert_eq!(heartbeats.count(), 2, "the read triggers a heartbeat round at once");
    cluster.in_flight.extend(ready.messages_now);
    let states = run_collecting_reads(&mut cluster, 1);
    assert_eq!(states, vec![ReadState { read_id: ReadId(7), read_index: commit_index }]);
}

#[test]
fn deposed_leader_in_a_minority_never_confirms_a_read() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    cluster.isolate(1);
    cluster.node_mut(1).read_index(ReadId(1)).unwrap();
    let states = run_collecting_reads(&mut cluster, 1);
    assert!(states.is_empty(), "a leader cut off from the majority must not serve reads");
}

#[test]
fn follower_read_is_forwarded_and_confirmed_by_the_leader() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    cluster.node_mut(1).propose(Bytes::from_static(b"w")).unwrap();
    cluster.stabilize();
    let commit_index = cluster.node(1).commit_index();
    cluster.node_mut(2).read_index(ReadId(9)).unwrap();
    let states = run_collecting_reads(&mut cluster, 2);
    assert_eq!(states, vec![ReadState { read_id: ReadId(9), read_index: commit_index }]);
}

#[test]
fn follower_without_a_leader_refuses_reads() {
    let mut cluster = Cluster::new(3);
    let error = cluster.node_mut(2).read_index(ReadId(1)).unwrap_err();
    assert_eq!(error, Error::NotLeader { leader_hint: None });
}

#[test]
fn new_leader_serves_reads_only_after_committing_in_its_term() {
    // The leader's appends (its no-op entry) are held back while heartbeats flow, so a
    // majority confirms its leadership but nothing of its term is committed: a read index
    // taken now could miss entries committed by the previous leader (§6.4 step 1).
    let mut cluster = Cluster::new(3);
    let is_append = |m: &Message| matches!(m.body, MessageBody::AppendRequest { .. });
    let mut held = Vec::new();
    while cluster.node(1).role() != Role::PreCandidate {
        cluster.node_mut(1).tick();
    }
    run_holding(&mut cluster, 1, is_append, &mut held);
    assert_eq!(cluster.node(1).role(), Role::Leader);
    cluster.node_mut(1).read_index(ReadId(3)).unwrap();
    for _ in 0..3 {
        cluster.node_mut(1).tick();
        let states = run_holding(&mut cluster, 1, is_append, &mut held);
        assert!(states.is_empty(), "no read before the leader commits in its term");
    }
    cluster.in_flight.extend(held.drain(..));
    let states = run_collecting_reads(&mut cluster, 1);
    assert_eq!(states.len(), 1);
    let read_index = states[0].read_index;
    assert_eq!(cluster.node(1).term_at(read_index), Some(cluster.node(1).term()));
}

#[test]
fn lease_reads_are_served_without_a_round_trip_while_the_lease_holds() {
    let mut cluster = Cluster::with_config(3, 1, |c| c.read_mode = ReadMode::Lease);
    cluster.campaign(1);
    cluster.tick_all(2);
    cluster.node_mut(1).read_index(ReadId(5)).unwrap();
    let ready = cluster.node_mut(1).ready();
    assert_eq!(ready.read_states.len(), 1, "served from the lease");
    assert!(ready.read_states[0].read_index >= LogIndex(1));
    // Cut off, the lease runs out within lease_ticks and reads wait again (forever here).
    cluster.isolate(1);
    let lease_ticks = cluster.node(1).config().lease_ticks;
    for _ in 0..lease_ticks {
        cluster.node_mut(1).tick();
        cluster.stabilize();
    }
    cluster.node_mut(1).read_index(ReadId(6)).unwrap();
    assert!(read_states(&mut cluster, 1).is_empty(), "an expired lease serves nothing");
}

#[test]
fn a_leader_that_sent_timeout_now_serves_no_lease_read_after_the_transfer_times_out() {
    let mut cluster = Cluster::with_config(3, 1, |c| c.read_mode = ReadMode::Lease);
    cluster.campaign(1);
    cluster.tick_all(2);
    // The target is caught up, so TimeoutNow goes out at once; cut off, it never arrives
    // (it could arrive at any later moment and make node 2 campaign inside the lease).
    cluster.isolate(2);
    cluster.node_mut(1).transfer_leader(NodeId(2)).unwrap();
    cluster.stabilize();
    let election_ticks = cluster.node(1).config().election_ticks;
    for _ in 0..election_ticks {
        cluster.node_mut(1).tick();
        cluster.node_mut(3).tick();
        cluster.stabilize();
    }
    assert_eq!(cluster.node(1).transfer_target(), None, "the transfer timed out");
    assert_eq!(cluster.node(1).role(), Role::Leader);
    // Node 3 answered the last heartbeat round a tick ago, so a lease would hold; but the
    // TimeoutNow still in flight makes it untrustworthy, and a cut-off leader serves nothing.
    cluster.isolate(1);
    cluster.node_mut(1).read_index(ReadId(7)).unwrap();
    assert!(read_states(&mut cluster, 1).is_empty(), "no lease read after TimeoutNow");
}
