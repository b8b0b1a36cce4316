//! Elections: votes, their persistence, PreVote, CheckQuorum and leader leases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::{Cluster, state_with_log};
use raft_core::{Campaign, LogId, LogIndex, Message, MessageBody, NodeId, Role, Term};

fn vote_request(from: u64, to: u64, term: u64, last: (u64, u64), pre_vote: bool) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body: MessageBody::VoteRequest {
            campaign: if pre_vote { Campaign::PreVote } else { Campaign::Election },
            last_log_id: LogId::new(Term(last.0), LogIndex(last.1)),
        },
    }
}

fn granted(message: &Message) -> bool {
    match message.body {
        MessageBody::VoteResponse { granted, .. } => granted,
        ref other => panic!("expected a vote response, got {other:?}"),
    }
}

#[test]
fn first_election_elects_exactly_one_leader_and_all_agree_on_term() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    assert_eq!(cluster.leaders(), vec![NodeId(1)]);
    let terms: Vec<Term> = cluster.nodes.values().map(|n| n.term()).collect();
    assert!(terms.iter().all(|&t| t == Term(1)), "{terms:?}");
    assert!(cluster.nodes.values().all(|n| n.leader() == Some(NodeId(1))));
}

#[test]
fn vote_response_waits_for_the_vote_to_be_durable() {
    let mut cluster = Cluster::new(3);
    let node = cluster.node_mut(2);
    node.step(vote_request(1, 2, 1, (0, 0), false)).unwrap();
    let ready = node.ready();
    let hard_state = ready.hard_state.expect("the vote must be persisted");
    assert_eq!(hard_state.voted_for, Some(NodeId(1)));
    assert_eq!(hard_state.term, Term(1));
    assert!(ready.messages_now.is_empty(), "no vote may leave before it is durable");
    assert_eq!(ready.messages_after_persist.len(), 1);
    assert!(granted(&ready.messages_after_persist[0]));
}

#[test]
fn candidate_requests_votes_only_after_its_term_is_durable() {
    let mut cluster = Cluster::with_config(3, 1, |c| c.pre_vote = false);
    for _ in 0..100 {
        cluster.node_mut(1).tick();
        if cluster.node(1).role() == Role::Candidate {
            break;
        }
    }
    let ready = cluster.node_mut(1).ready();
    assert_eq!(ready.hard_state.map(|h| h.voted_for), Some(Some(NodeId(1))));
    assert!(ready.messages_now.is_empty());
    assert_eq!(ready.messages_after_persist.len(), 2);
}

#[test]
fn one_vote_per_term() {
    let mut cluster = Cluster::new(3);
    let node = cluster.node_mut(3);
    node.step(vote_request(1, 3, 1, (0, 0), false)).unwrap();
    node.step(vote_request(2, 3, 1, (0, 0), false)).unwrap();
    let ready = node.ready();
    let answers: Vec<bool> = ready.messages_after_persist.iter().map(granted).collect();
    assert_eq!(answers, vec![true, false]);
    // Asking again (a duplicate request) is granted again: the vote is the same.
    node.step(vote_request(1, 3, 1, (0, 0), false)).unwrap();
    assert!(granted(&node.ready().messages_after_persist[0]));
}

#[test]
fn vote_for_a_less_up_to_date_log_is_rejected() {
    let states = BTreeMap::from([(NodeId(1), state_with_log(3, 2, &[1, 2]))]);
    let mut cluster = Cluster::restored(states, 1, |_| {});
    let node = cluster.node_mut(1);
    // Same last term, shorter log.
    node.step(vote_request(2, 1, 3, (2, 1), false)).unwrap();
    // Longer log, older last term.
    node.step(vote_request(3, 1, 3, (1, 5), false)).unwrap();
    let ready = node.ready();
    assert!(ready.messages_after_persist.iter().all(|m| !granted(m)));
    assert_eq!(node.term(), Term(3), "a higher term is adopted even when the vote is refused");
    assert_eq!(node.voted_for(), None);
}

#[test]
fn vote_with_stale_term_is_dropped() {
    let states = BTreeMap::from([(NodeId(1), state_with_log(3, 5, &[]))]);
    let mut cluster = Cluster::restored(states, 1, |_| {});
    let node = cluster.node_mut(1);
    node.step(vote_request(2, 1, 4, (0, 0), false)).unwrap();
    assert!(!node.has_ready(), "a stale vote request gets no vote");
    assert_eq!(node.voted_for(), None);
}

#[test]
fn pre_vote_changes_no_term_and_records_no_vote() {
    let mut cluster = Cluster::new(3);
    let node = cluster.node_mut(2);
    node.step(vote_request(1, 2, 1, (0, 0), true)).unwrap();
    assert_eq!(node.term(), Term::ZERO);
    assert_eq!(node.voted_for(), None);
    let ready = node.ready();
    assert!(ready.hard_state.is_none());
    assert!(granted(&ready.messages_now[0]), "pre-vote answers need no persist");
}

#[test]
fn isolated_node_with_pre_vote_never_raises_its_term() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    let term = cluster.node(1).term();
    cluster.isolate(3);
    cluster.tick_all(200);
    assert_eq!(cluster.node(3).term(), term, "pre-votes failed, so the term stayed");
    assert_ne!(cluster.node(3).role(), Role::Leader);
    cluster.heal();
    cluster.tick_all(5);
    assert_eq!(cluster.leaders(), vec![NodeId(1)], "the rejoining node did not disrupt");
    assert_eq!(cluster.node(1).term(), term);
    assert_eq!(cluster.node(3).leader(), Some(NodeId(1)));
}

#[test]
fn isolated_leader_steps_down_with_check_quorum() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    cluster.isolate(1);
    let election_ticks = cluster.node(1).config().election_ticks as usize;
    for _ in 0..2 * election_ticks {
        cluster.node_mut(1).tick();
        cluster.stabilize();
    }
    assert_ne!(cluster.node(1).role(), Role::Leader, "no quorum heard: step down");
}

#[test]
fn leader_keeps_leading_without_check_quorum() {
    let mut cluster = Cluster::with_config(3, 1, |c| c.check_quorum = false);
    cluster.campaign(1);
    cluster.isolate(1);
    for _ in 0..100 {
        cluster.node_mut(1).tick();
        cluster.stabilize();
    }
    assert_eq!(cluster.node(1).role(), Role::Leader);
}

#[test]
fn follower_in_leader_lease_ignores_higher_term_vote_requests() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    let term = cluster.node(2).term();
    let node = cluster.node_mut(2);
    node.step(vote_request(3, 2, term.0 + 1, (9, 9), false)).unwrap();
    assert_eq!(node.term(), term, "a live leader's follower does not adopt the term");
    assert!(node.ready().messages_after_persist.is_empty());
}

#[test]
fn stale_leader_steps_down_on_hearing_a_higher_term() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    cluster.isolate(1);
    cluster.tick_all(50);
    let new_leaders: Vec<NodeId> =
        cluster.leaders().into_iter().filter(|&id| id != NodeId(1)).collect();
    assert_eq!(new_leaders.len(), 1, "the majority elected a new leader");
    cluster.heal();
    cluster.tick_all(3);
    assert_eq!(cluster.leaders(), new_leaders, "the old leader stepped down");
    assert_eq!(cluster.node(1).leader(), Some(new_leaders[0]));
}

#[test]
fn same_seed_and_inputs_give_the_same_readys() {
    let run = |seed| {
        let mut cluster = Cluster::with_config(5, seed, |_| {});
        cluster.tick_all(40);
        cluster.trace
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4), "the seed drives the election timeouts");
}

#[test]
fn election_timeouts_are_randomized_within_bounds() {
    // Each node campaigns after [election_ticks, 2 * election_ticks) ticks of silence.
    for seed in 0..20 {
        let mut cluster = Cluster::with_config(3, seed, |_| {});
        let election_ticks = cluster.node(1).config().election_ticks;
        let mut ticks = 0;
        while cluster.node(1).role() == Role::Follower {
            cluster.node_mut(1).tick();
            ticks += 1;
        }
        assert!((election_ticks..2 * election_ticks).contains(&ticks), "seed {seed}: {ticks}");
    }
}
