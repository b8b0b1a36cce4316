//! Membership changes one server at a time, and learners.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::Cluster;
use raft_core::{
    Config, Error, Membership, MembershipChange, MessageBody, Node, NodeId, RestoredState, Role,
    Term,
};

/// Starts a node that joins a running cluster: it knows no membership yet.
fn add_joining_node(cluster: &mut Cluster, id: u64) {
    let state = RestoredState::bootstrap(Membership::default());
    let node = Node::new(Config::new(NodeId(id)), state, id).unwrap();
    cluster.nodes.insert(NodeId(id), node);
    cluster.disks.insert(NodeId(id), common::Disk::default());
}

fn commit_all(cluster: &mut Cluster) {
    cluster.stabilize();
    cluster.tick_all(2);
}

#[test]
fn learner_catches_up_without_voting_then_is_promoted() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    for _ in 0..10 {
        cluster.node_mut(1).propose(Bytes::from_static(b"x")).unwrap();
    }
    commit_all(&mut cluster);
    add_joining_node(&mut cluster, 4);
    cluster.node_mut(1).propose_membership_change(MembershipChange::AddLearner(NodeId(4))).unwrap();
    commit_all(&mut cluster);
    assert_eq!(cluster.node(4).last_log_id(), cluster.node(1).last_log_id(), "caught up");
    assert!(cluster.node(4).membership().learners.contains(&NodeId(4)));
    assert_eq!(cluster.node(1).membership().quorum(), 2, "a learner does not change the quorum");
    // A learner never campaigns, however long it waits.
    cluster.isolate(4);
    for _ in 0..100 {
        cluster.node_mut(4).tick();
    }
    assert_eq!(cluster.node(4).role(), Role::Follower);
    cluster.heal();
    cluster.node_mut(1).propose_membership_change(MembershipChange::AddVoter(NodeId(4))).unwrap();
    commit_all(&mut cluster);
    for id in 1..=4 {
        let membership = cluster.node(id).membership();
        assert_eq!(membership.voters.len(), 4, "node {id}: {membership:?}");
        assert!(membership.learners.is_empty());
    }
    assert_eq!(cluster.node(1).membership().quorum(), 3);
}

#[test]
fn a_change_waits_for_the_previous_one_to_commit() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    cluster.isolate(1);
    cluster.node_mut(1).propose_membership_change(MembershipChange::AddLearner(NodeId(4))).unwrap();
    let error = cluster
        .node_mut(1)
        .propose_membership_change(MembershipChange::AddLearner(NodeId(5)))
        .unwrap_err();
    assert!(matches!(error, Error::MembershipChangeNotReady { .. }), "{error}");
    assert!(error.to_string().contains("not committed yet"), "{error}");
}

#[test]
fn a_new_leader_changes_membership_only_after_committing_in_its_term() {
    // The followers vote, but the leader's no-op never reaches them.
    let mut cluster = Cluster::new(3);
    cluster.rewrite = Some(Box::new(|message| {
        if let MessageBody::AppendRequest { entries, .. } = &mut message.body {
            entries.clear();
        }
    }));
    cluster.campaign(1);
    assert_eq!(cluster.node(1).role(), Role::Leader);
    let error = cluster
        .node_mut(1)
        .propose_membership_change(MembershipChange::AddLearner(NodeId(4)))
        .unwrap_err();
    assert!(error.to_string().contains("not committed an entry of term"), "{error}");
}

#[test]
fn removed_leader_steps_down_once_its_removal_commits() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    commit_all(&mut cluster);
    cluster.node_mut(1).propose_membership_change(MembershipChange::Remove(NodeId(1))).unwrap();
    cluster.stabilize();
    assert_ne!(cluster.node(1).role(), Role::Leader, "stepped down after the commit");
    cluster.tick_all(40);
    let leaders = cluster.leaders();
    assert_eq!(leaders.len(), 1);
    assert_ne!(leaders[0], NodeId(1), "the removed node never leads again");
    let leader = leaders[0].0;
    cluster.node_mut(leader).propose(Bytes::from_static(b"after")).unwrap();
    commit_all(&mut cluster);
    let other = if leader == 2 { 3 } else { 2 };
    assert_eq!(cluster.node(other).commit_index(), cluster.node(leader).commit_index());
}

#[test]
fn removed_follower_does_not_disrupt_the_cluster() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    commit_all(&mut cluster);
    cluster.node_mut(1).propose_membership_change(MembershipChange::Remove(NodeId(3))).unwrap();
    commit_all(&mut cluster);
    let term = cluster.node(1).term();
    cluster.tick_all(100);
    assert_eq!(cluster.leaders(), vec![NodeId(1)]);
    assert_eq!(cluster.node(1).term(), term, "the removed node raised no term");
}

#[test]
fn an_overwritten_membership_entry_is_undone() {
    // Leader 1 of five sends a membership entry only to node 2; nodes 3-5 elect a new
    // leader without it, and node 2's copy is overwritten: node 2 must drop the change.
    let mut cluster = Cluster::new(5);
    cluster.campaign(1);
    commit_all(&mut cluster);
    for other in 3..=5 {
        cluster.cut.insert((NodeId(1), NodeId(other)));
    }
    cluster.node_mut(1).propose_membership_change(MembershipChange::AddLearner(NodeId(9))).unwrap();
    cluster.stabilize();
    assert!(cluster.node(2).membership().learners.contains(&NodeId(9)));
    cluster.isolate(1);
    cluster.isolate(2);
    cluster.tick_all(40);
    let leader = *cluster.leaders().iter().find(|id| id.0 >= 3).unwrap();
    cluster.node_mut(leader.0).propose(Bytes::from_static(b"y")).unwrap();
    commit_all(&mut cluster);
    cluster.heal();
    cluster.tick_all(40);
    assert!(cluster.node(2).term() > Term(1));
    for id in 1..=5 {
        assert!(
            cluster.node(id).membership().learners.is_empty(),
            "node {id} still has the overwritten change"
        );
    }
}

/// A voter whose configuration is stale (the entry adding the candidate has not reached it
/// yet) still votes for an up-to-date candidate: the candidate's configuration decides
/// whose votes count. Refusing such candidates left a sweep seed (27166) with no electable
/// node: the most up-to-date voter was unknown to the voters it needed.
#[test]
fn a_voter_with_a_stale_configuration_votes_for_a_candidate_it_does_not_know() {
    let state = RestoredState::bootstrap(Membership::with_voters([NodeId(1), NodeId(2)]));
    let mut voter = Node::new(Config::new(NodeId(2)), state, 2).unwrap();
    let request = raft_core::Message {
        from: NodeId(5),
        to: NodeId(2),
        term: Term(3),
        body: MessageBody::VoteRequest {
            campaign: raft_core::Campaign::Election,
            last_log_id: raft_core::LogId::new(Term(2), raft_core::LogIndex(9)),
        },
    };
    voter.step(request).unwrap();
    let ready = voter.ready();
    assert_eq!(ready.hard_state.map(|hard_state| hard_state.voted_for), Some(Some(NodeId(5))));
    let granted = ready.messages_after_persist.iter().any(|message| {
        message.to == NodeId(5)
            && matches!(message.body, MessageBody::VoteResponse { granted: true, .. })
    });
    assert!(granted, "the vote is granted once durable: {:?}", ready.messages_after_persist);
}
