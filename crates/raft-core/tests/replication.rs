//! Replication: batching, pipelining, back-tracking, and the commit rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use bytes::Bytes;
use common::{Cluster, state_with_log};
use raft_core::{AppendResult, LogIndex, MessageBody, NodeId, Role};

fn command(size: usize) -> Bytes {
    Bytes::from(vec![7u8; size])
}

fn is_append(body: &MessageBody) -> bool {
    matches!(body, MessageBody::AppendRequest { .. })
}

#[test]
fn leader_sends_appends_while_its_own_write_is_in_progress() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    let proposed = cluster.node_mut(1).propose(command(8)).unwrap();
    let ready = cluster.node_mut(1).ready();
    assert_eq!(ready.entries_to_persist.last().map(|e| e.log_id), Some(proposed));
    let appends = ready.messages_now.iter().filter(|m| is_append(&m.body)).count();
    assert_eq!(appends, 2, "appends go out in parallel with the leader's write");
}

#[test]
fn leader_counts_itself_only_after_its_write_is_durable() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    cluster.cut.insert((NodeId(1), NodeId(3)));
    cluster.hold_writes(1);
    let proposed = cluster.node_mut(1).propose(command(8)).unwrap();
    cluster.stabilize();
    assert_eq!(cluster.node(1).match_index(NodeId(2)), Some(proposed.index));
    assert!(
        cluster.node(1).commit_index() < proposed.index,
        "one follower plus an undurable leader is not a majority"
    );
    cluster.release_writes(1);
    assert_eq!(cluster.node(1).commit_index(), proposed.index);
}

#[test]
fn two_followers_commit_without_the_leaders_write() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    cluster.hold_writes(1);
    let proposed = cluster.node_mut(1).propose(command(8)).unwrap();
    cluster.stabilize();
    assert_eq!(cluster.node(1).commit_index(), proposed.index, "two durable followers suffice");
    assert_eq!(
        cluster.disks[&NodeId(1)].applied.last().map(|e| e.log_id),
        Some(proposed),
        "and the leader applies it (answering its proposer) while its own write is pending"
    );
    assert!(cluster.node(1).persisted_index() < proposed.index);
    cluster.release_writes(1);
    cluster.stabilize();
    assert_eq!(cluster.node(1).persisted_index(), proposed.index);
    let applied = cluster.disks[&NodeId(1)].applied.iter().filter(|e| e.log_id == proposed);
    assert_eq!(applied.count(), 1, "applied once");
}

#[test]
fn entries_of_an_earlier_term_are_not_committed_by_counting_replicas() {
    // Figure 8: node 1 holds an entry of term 2 that nobody else has. As leader of term 3 it
    // replicates that entry to node 2, a majority, but must not commit it until an entry of
    // term 3 is on a majority too.
    let states = BTreeMap::from([
        (NodeId(1), state_with_log(3, 2, &[1, 2])),
        (NodeId(2), state_with_log(3, 2, &[1])),
        (NodeId(3), state_with_log(3, 2, &[1])),
    ]);
    let mut cluster = Cluster::restored(states, 1, |c| c.pre_vote = false);
    cluster.cut.insert((NodeId(1), NodeId(3)));
    for _ in 0..100 {
        if cluster.node(1).role() == Role::Candidate {
            break;
        }
        cluster.node_mut(1).tick();
    }
    // Node 2 receives the term-2 entry but never the term-3 one.
    cluster.rewrite = Some(Box::new(|message| {
        if let MessageBody::AppendRequest { entries, .. } = &mut message.body {
            if message.to == NodeId(2) {
                entries.retain(|e| e.log_id.index <= LogIndex(2));
            }
        }
    }));
    cluster.stabilize();
    cluster.tick_all(3);
    assert_eq!(cluster.leaders(), vec![NodeId(1)]);
    assert_eq!(cluster.node(1).match_index(NodeId(2)), Some(LogIndex(2)));
    assert_eq!(cluster.node(1).commit_index(), LogIndex(0), "term-2 entry not committed directly");
    // The term-3 entry reaches node 2: now both commit.
    cluster.rewrite = None;
    cluster.tick_all(2);
    assert_eq!(cluster.node(1).commit_index(), LogIndex(3));
}

#[test]
fn diverged_follower_is_backtracked_one_term_per_round_trip() {
    // The follower holds 20 entries over terms 2..=5 that the leader never had.
    let follower_terms: Vec<u64> =
        [1, 1].into_iter().chain((2..=5).flat_map(|t| std::iter::repeat_n(t, 5))).collect();
    let states = BTreeMap::from([
        (NodeId(1), state_with_log(3, 6, &[1, 1, 6, 6, 6])),
        (NodeId(2), state_with_log(3, 5, &follower_terms)),
        (NodeId(3), state_with_log(3, 6, &[1, 1, 6])),
    ]);
    let mut cluster = Cluster::restored(states, 1, |_| {});
    cluster.campaign(1);
    assert_eq!(cluster.leaders(), vec![NodeId(1)]);
    let mut rejections = 0;
    for _ in 0..10 {
        cluster.node_mut(1).tick();
        cluster.process_readys();
        while let Some(message) = cluster.in_flight.pop_front() {
            if let MessageBody::AppendResponse { result: AppendResult::Reject { .. } } =
                message.body
            {
                rejections += 1;
            }
            cluster.deliver(message);
        }
    }
    let leader_log: Vec<_> = cluster.node(1).log_entries().to_vec();
    assert_eq!(cluster.node(2).log_entries(), leader_log.as_slice(), "follower caught up");
    assert!(rejections <= 2, "fast back-up: {rejections} rejections for 4 conflicting terms");
}

#[test]
fn appends_are_batched_by_bytes_and_pipelined_up_to_the_window() {
    let mut cluster = Cluster::with_config(3, 1, |c| {
        c.append_bytes_max = NonZeroU64::new(1000).unwrap();
        c.inflight_appends_max = NonZeroU64::new(3).unwrap();
    });
    cluster.campaign(1);
    for _ in 0..100 {
        cluster.node_mut(1).propose(command(400)).unwrap();
    }
    let ready = cluster.node_mut(1).ready();
    let to_two: Vec<usize> = ready
        .messages_now
        .iter()
        .filter(|m| m.to == NodeId(2))
        .filter_map(|m| match &m.body {
            MessageBody::AppendRequest { entries, .. } => Some(entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(to_two, vec![2, 2, 2], "three appends in flight, two 400-byte entries each");
    for message in ready.messages_now {
        cluster.in_flight.push_back(message);
    }
    cluster.release_writes(1);
    cluster.stabilize();
    assert_eq!(cluster.node(1).commit_index(), cluster.node(1).last_log_id().index);
    assert_eq!(cluster.node(2).last_log_id(), cluster.node(1).last_log_id());
}

#[test]
fn follower_that_lost_appends_recovers_through_heartbeats() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    cluster.cut.insert((NodeId(1), NodeId(3)));
    cluster.node_mut(1).propose(command(8)).unwrap();
    cluster.stabilize();
    assert!(cluster.node(3).last_log_id() < cluster.node(1).last_log_id());
    cluster.heal();
    cluster.tick_all(3);
    assert_eq!(cluster.node(3).last_log_id(), cluster.node(1).last_log_id());
    assert_eq!(cluster.node(3).commit_index(), cluster.node(1).commit_index());
}

#[test]
fn follower_refuses_proposals_and_names_the_leader() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    let error = cluster.node_mut(2).propose(command(1)).unwrap_err();
    assert_eq!(error, raft_core::Error::NotLeader { leader_hint: Some(NodeId(1)) });
    assert!(error.to_string().contains("try node 1"), "{error}");
}

#[test]
fn follower_recovers_when_a_whole_pipeline_of_appends_is_lost() {
    let mut cluster = Cluster::with_config(3, 1, |c| {
        c.inflight_appends_max = NonZeroU64::new(2).unwrap();
        c.append_bytes_max = NonZeroU64::new(100).unwrap();
    });
    cluster.campaign(1);
    cluster.cut.insert((NodeId(1), NodeId(3)));
    for _ in 0..10 {
        cluster.node_mut(1).propose(command(90)).unwrap();
        cluster.stabilize();
    }
    cluster.heal();
    cluster.tick_all(10);
    assert_eq!(cluster.node(3).last_log_id(), cluster.node(1).last_log_id());
}

/// The answers node 2 gives to an append from leader 1 that carries no entries, with `prev`
/// and `answer_wanted` as given.
fn answers_to_empty_append(prev: raft_core::LogId, answer_wanted: bool) -> Vec<AppendResult> {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    cluster.stabilize();
    let term = cluster.node(1).term();
    let commit = cluster.node(1).commit_index();
    let append = raft_core::Message {
        from: NodeId(1),
        to: NodeId(2),
        term,
        body: MessageBody::AppendRequest {
            prev_log_id: prev,
            entries: Vec::new(),
            leader_commit: commit,
            answer_wanted,
        },
    };
    let follower = cluster.node_mut(2);
    follower.step(append).unwrap();
    let ready = follower.ready();
    ready
        .messages_now
        .iter()
        .chain(&ready.messages_after_persist)
        .filter_map(|message| match &message.body {
            MessageBody::AppendResponse { result } => Some(*result),
            _ => None,
        })
        .collect()
}

#[test]
fn a_follower_leaves_a_commit_only_append_unanswered_but_answers_probes_and_rejects() {
    let cluster = {
        let mut cluster = Cluster::new(3);
        cluster.campaign(1);
        cluster.stabilize();
        cluster
    };
    let last = cluster.node(2).last_log_id();
    // Nothing new and no answer wanted (the leader only brings a commit index): silence.
    assert_eq!(answers_to_empty_append(last, false), vec![]);
    // A probe wants its answer even when it carries nothing.
    assert_eq!(
        answers_to_empty_append(last, true),
        vec![AppendResult::Success { match_index: last.index }]
    );
    // A mismatch is always answered, so the leader can back up.
    let beyond = raft_core::LogId::new(last.term, last.index.plus(5));
    let answers = answers_to_empty_append(beyond, false);
    assert!(matches!(answers.as_slice(), [AppendResult::Reject { .. }]), "{answers:?}");
}
