//! Log agreement: commands commit with a majority and only with one, survive leader changes,
//! and a diverged follower is repaired quickly. Modelled on the classic Raft lab's 2B tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use raft_core::{AppendResult, LogId, Message, MessageBody, NodeId, Role, Term};
use raft_sim::{Cluster, NetworkFaults, SimConfig};

const ELECTION_MS_MAX: u64 = 1_000;
/// How long one command may take to be applied everywhere, leader changes included.
const AGREEMENT_MS_MAX: u64 = 5_000;

fn command(name: &str) -> Bytes {
    Bytes::from(name.to_string())
}

fn cluster(nodes: u64, seed: u64) -> Cluster {
    Cluster::new(SimConfig::new(nodes, seed))
}

/// The ids of the other nodes than `excluded`.
fn others(cluster: &Cluster, excluded: &[NodeId]) -> Vec<NodeId> {
    cluster.node_ids().into_iter().filter(|id| !excluded.contains(id)).collect()
}

#[test]
fn basic_agreement_applies_each_command_on_every_node_in_order() {
    let mut cluster = cluster(3, 1);
    cluster.wait_for_leader(ELECTION_MS_MAX).expect("a leader");
    let mut previous = None;
    for name in ["a", "b", "c"] {
        let next = cluster.committed_index().next();
        assert_eq!(cluster.applied_count(next, name.as_bytes()), 0, "applied before proposed");
        let index = cluster.replicate(command(name), 3, AGREEMENT_MS_MAX).expect("agreement");
        if let Some(previous) = previous {
            assert_eq!(index, raft_core::LogIndex::next(previous), "commands are consecutive");
        }
        previous = Some(index);
    }
    assert_eq!(cluster.committed_commands(), vec![command("a"), command("b"), command("c")]);
}

#[test]
fn agreement_continues_with_one_follower_disconnected_and_it_catches_up() {
    let mut cluster = cluster(3, 2);
    cluster.replicate(command("101"), 3, AGREEMENT_MS_MAX).expect("all three agree");
    let leader = cluster.leader().unwrap();
    let follower = others(&cluster, &[leader])[0];
    cluster.disconnect(follower);
    for name in ["102", "103", "104", "105"] {
        cluster.replicate(command(name), 2, AGREEMENT_MS_MAX).expect("two of three agree");
    }
    cluster.reconnect(follower);
    for name in ["106", "107"] {
        cluster.replicate(command(name), 3, AGREEMENT_MS_MAX).expect("all three agree again");
    }
    let expected: Vec<Bytes> =
        ["101", "102", "103", "104", "105", "106", "107"].map(command).into();
    assert_eq!(cluster.committed_commands(), expected);
    assert_eq!(cluster.applied(follower).len(), cluster.applied(leader).len(), "caught up");
}

#[test]
fn nothing_commits_without_a_majority_and_agreement_resumes_after() {
    let mut cluster = cluster(5, 3);
    cluster.replicate(command("10"), 5, AGREEMENT_MS_MAX).expect("all five agree");
    let leader = cluster.leader().unwrap();
    let cut = &others(&cluster, &[leader])[..3];
    for &id in cut {
        cluster.disconnect(id);
    }
    let log_id = cluster.propose_to(leader, command("20")).expect("the leader accepts");
    let committed_before = cluster.committed_index();
    cluster.run_for(2_000);
    assert_eq!(cluster.committed_index(), committed_before, "committed without a majority");
    assert_eq!(cluster.applied_count(log_id.index, b"20"), 0);

    for &id in cut {
        cluster.reconnect(id);
    }
    cluster.replicate(command("30"), 5, AGREEMENT_MS_MAX).expect("agreement resumes");
    cluster.replicate(command("1000"), 5, AGREEMENT_MS_MAX).expect("and continues");
    let commands = cluster.committed_commands();
    let twenties = commands.iter().filter(|&c| c == &command("20")).count();
    assert!(twenties <= 1, "the uncommitted command is committed at most once");
}

#[test]
fn concurrent_proposals_are_all_committed_exactly_once() {
    let mut cluster = cluster(3, 4);
    let leader = cluster.wait_for_leader(ELECTION_MS_MAX).expect("a leader");
    let commands: Vec<Bytes> = (0..20).map(|i| command(&format!("c{i}"))).collect();
    let log_ids = cluster.propose_batch_to(leader, commands.clone());
    assert_eq!(log_ids.len(), commands.len());
    let last = log_ids.last().unwrap().index;
    let all_applied = cluster.run_until(AGREEMENT_MS_MAX, |cluster| {
        cluster.node_ids().iter().all(|&id| cluster.applied(id).len() as u64 >= last.0)
    });
    assert!(all_applied);
    assert_eq!(cluster.committed_commands(), commands, "each once, in proposal order");
}

#[test]
fn a_partitioned_leader_rejoins_and_its_uncommitted_entries_are_discarded() {
    let mut cluster = cluster(3, 5);
    cluster.replicate(command("101"), 3, AGREEMENT_MS_MAX).expect("all three agree");
    let leader1 = cluster.leader().unwrap();
    cluster.disconnect(leader1);
    let stale: Vec<LogId> = ["stale-1", "stale-2", "stale-3"]
        .into_iter()
        .map(|name| cluster.propose_to(leader1, command(name)).expect("still believes it leads"))
        .collect();

    cluster.replicate(command("103"), 2, AGREEMENT_MS_MAX).expect("the majority agrees");
    let leader2 = cluster.leader().unwrap();
    assert_ne!(leader2, leader1);
    cluster.disconnect(leader2);
    cluster.reconnect(leader1);
    cluster.replicate(command("104"), 2, AGREEMENT_MS_MAX).expect("old leader and follower");
    cluster.reconnect(leader2);
    cluster.replicate(command("105"), 3, AGREEMENT_MS_MAX).expect("everyone");

    let expected: Vec<Bytes> = ["101", "103", "104", "105"].map(command).into();
    assert_eq!(cluster.committed_commands(), expected, "the stale entries never committed");
    let node1 = cluster.node(leader1).unwrap();
    for log_id in stale {
        assert_ne!(node1.term_at(log_id.index), Some(log_id.term), "{log_id} was overwritten");
    }
    let reference = cluster.applied(leader2).to_vec();
    for id in cluster.node_ids() {
        assert_eq!(cluster.applied(id), reference.as_slice(), "node {id} applied the same log");
    }
}

/// Waits until one of `candidates` leads in a term above `term`; returns it.
fn wait_for_leader_among(cluster: &mut Cluster, candidates: &[NodeId], term: Term) -> NodeId {
    let leading = |cluster: &Cluster| {
        candidates.iter().copied().find(|&id| {
            let node = cluster.node(id).unwrap();
            node.role() == Role::Leader && node.term() > term
        })
    };
    assert!(cluster.run_until(ELECTION_MS_MAX * 2, |cluster| leading(cluster).is_some()));
    leading(cluster).unwrap()
}

/// Proposes `count` commands to `leader`, cut off with one follower, that will never commit;
/// returns once the follower holds them and CheckQuorum made the leader step down.
fn propose_doomed(cluster: &mut Cluster, leader: NodeId, follower: NodeId, round: u32) {
    let commands = (0..10).map(|i| command(&format!("doomed-{round}-{i}")));
    let last = *cluster.propose_batch_to(leader, commands).last().unwrap();
    let stepped_down = cluster.run_until(ELECTION_MS_MAX, |cluster| {
        let leader = cluster.node(leader).unwrap();
        let follower = cluster.node(follower).unwrap();
        leader.role() != Role::Leader && follower.last_log_id() == last
    });
    assert!(stepped_down, "round {round}: the minority leader replicated and stepped down");
}

/// Gives two nodes (returned as `(pair_leader, lagging)`) a log suffix of `rounds` terms that
/// no other node holds. Each round, the pair (one leading, the other following) is cut off
/// and appends entries in a new term; a third node (`voter`) lends its vote to start each
/// new term, and is cut off before it can receive anything.
fn build_conflicting_pair(cluster: &mut Cluster, rounds: u32) -> (NodeId, NodeId) {
    let pair_leader = cluster.leader().unwrap();
    let rest = others(cluster, &[pair_leader]);
    let (lagging, voter, [a, b]) = (rest[0], rest[1], [rest[2], rest[3]]);
    let pair = [pair_leader, lagging];
    let pair_alone: &[&[NodeId]] = &[&pair, &[voter], &[a], &[b]];
    cluster.partition(pair_alone);
    propose_doomed(cluster, pair_leader, lagging, 1);
    for round in 2..=rounds {
        let term = cluster.node(lagging).unwrap().term();
        cluster.partition(&[&[pair_leader, lagging, voter], &[a], &[b]]);
        let leader = wait_for_leader_among(cluster, &pair, term);
        cluster.partition(pair_alone);
        let follower = if leader == lagging { pair_leader } else { lagging };
        propose_doomed(cluster, leader, follower, round);
    }
    (pair_leader, lagging)
}

/// The `rejected_index` of every append rejection `from` sent.
fn rejections_from(messages: Vec<Message>, from: NodeId) -> Vec<u64> {
    messages
        .into_iter()
        .filter(|message| message.from == from)
        .filter_map(|message| match message.body {
            MessageBody::AppendResponse { result: AppendResult::Reject { rejected_index, .. } } => {
                Some(rejected_index.0)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_follower_far_behind_with_conflicting_terms_backs_up_one_round_trip_per_term() {
    const CONFLICTING_TERMS: u32 = 5;
    let mut cluster = cluster(5, 6);
    cluster.replicate(command("base"), 5, AGREEMENT_MS_MAX).expect("all five agree");
    let base = cluster.committed_index();
    let (pair_leader, lagging) = build_conflicting_pair(&mut cluster, CONFLICTING_TERMS);
    let lagging_node = cluster.node(lagging).unwrap();
    let lagging_last = lagging_node.last_log_id();
    let entries = lagging_node.log_entries().iter().filter(|entry| entry.log_id.index > base);
    let terms: BTreeSet<Term> = entries.map(|entry| entry.log_id.term).collect();
    assert_eq!(terms.len(), CONFLICTING_TERMS as usize, "one uncommitted suffix per round");

    // Meanwhile the majority commits far more, in terms of its own.
    let majority = others(&cluster, &[pair_leader, lagging]);
    cluster.partition(&[&majority, &[pair_leader], &[lagging]]);
    let first_majority_leader = cluster.wait_for_leader(ELECTION_MS_MAX).unwrap();
    let commands = (0..100).map(|i| command(&format!("kept-{i}")));
    let last = cluster.propose_batch_to(first_majority_leader, commands).last().unwrap().index;
    assert!(cluster.run_until(AGREEMENT_MS_MAX, |c| c.committed_index() >= last));

    // A new leader, elected with the lagging node connected, must repair it.
    let term = cluster.node(first_majority_leader).unwrap().term();
    let survivors = others(&cluster, &[first_majority_leader, pair_leader, lagging]);
    cluster.record_messages(true);
    cluster.partition(&[&[first_majority_leader]]);
    let repairing_leader = wait_for_leader_among(&mut cluster, &survivors, term);
    let repaired = cluster.run_until(AGREEMENT_MS_MAX, |cluster| {
        let leader_last = cluster.node(repairing_leader).unwrap().last_log_id();
        cluster.node(lagging).unwrap().last_log_id() == leader_last
    });
    assert!(repaired, "the lagging node caught up");

    let rejections = rejections_from(cluster.take_recorded_messages(), lagging);
    // Each probe the node rejects is one round trip; fast back-up skips a whole conflicting
    // term per round trip, plus the first probe past its log's end and the last at the
    // common prefix. A heartbeat response crossing a probe resends it (that is how a
    // leader recovers from a lost probe), so a probe may be rejected twice.
    let round_trips = rejections.iter().collect::<BTreeSet<_>>().len() as u64;
    let bound = u64::from(CONFLICTING_TERMS) + 3;
    assert!(
        round_trips <= bound && rejections.len() as u64 <= 2 * bound,
        "{round_trips} round trips, {} rejected appends (at indices {rejections:?}) to repair \
         {lagging_last}; bound {bound}",
        rejections.len()
    );
    assert!(round_trips >= 2, "the node did have to back up: {rejections:?}");
}

#[test]
fn unreliable_agreement_commits_every_proposal() {
    let config = SimConfig { network: NetworkFaults::unreliable(), ..SimConfig::new(5, 8) };
    let mut cluster = Cluster::new(config);
    // Four clients each issue a command every 20 ms, and re-propose what they have not seen
    // committed, as retrying clients do.
    let mut pending: BTreeMap<Bytes, Option<u64>> = BTreeMap::new();
    let mut issued = Vec::new();
    for i in 0..50 {
        for client in 0..4 {
            let name = command(&format!("{i}-{client}"));
            pending.insert(name.clone(), None);
            issued.push(name);
        }
        retry_pending(&mut cluster, &mut pending);
        cluster.run_for(20);
    }
    let deadline_ms = cluster.now_ms() + 20_000;
    while !pending.is_empty() && cluster.now_ms() < deadline_ms {
        cluster.run_for(10);
        retry_pending(&mut cluster, &mut pending);
    }
    assert!(pending.is_empty(), "{} commands never committed", pending.len());
    let committed = cluster.committed_commands();
    for name in &issued {
        assert!(committed.contains(name), "{name:?} committed");
    }
}

/// Drops what committed from `pending` and proposes what was not proposed in the last
/// 300 ms.
fn retry_pending(cluster: &mut Cluster, pending: &mut BTreeMap<Bytes, Option<u64>>) {
    let committed = cluster.committed_commands();
    pending.retain(|name, _| !committed.contains(name));
    let now_ms = cluster.now_ms();
    for (name, proposed_ms) in pending.iter_mut() {
        if proposed_ms.is_none_or(|proposed_ms| now_ms >= proposed_ms + 300) {
            *proposed_ms = Some(now_ms);
            let _ = cluster.propose(name.clone());
        }
    }
}
