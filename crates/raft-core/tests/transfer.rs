//! Leadership transfer with TimeoutNow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::Cluster;
use raft_core::{Error, NodeId, Role};

#[test]
fn transfer_hands_leadership_to_an_up_to_date_follower() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    let term = cluster.node(1).term();
    cluster.node_mut(1).transfer_leader(NodeId(2)).unwrap();
    cluster.stabilize();
    assert_eq!(cluster.leaders(), vec![NodeId(2)]);
    assert_eq!(cluster.node(2).term(), term.next(), "one election, no pre-vote");
    assert_eq!(cluster.node(1).leader(), Some(NodeId(2)));
}

#[test]
fn transfer_first_catches_the_target_up() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    cluster.cut.insert((NodeId(1), NodeId(3)));
    for _ in 0..5 {
        cluster.node_mut(1).propose(Bytes::from_static(b"x")).unwrap();
    }
    cluster.stabilize();
    assert!(cluster.node(3).last_log_id() < cluster.node(1).last_log_id());
    cluster.heal();
    cluster.node_mut(1).transfer_leader(NodeId(3)).unwrap();
    cluster.tick_all(3);
    assert_eq!(cluster.leaders(), vec![NodeId(3)]);
    let committed = cluster.node(3).commit_index();
    assert!(committed >= cluster.node(1).last_log_id().index, "no committed entry lost");
}

#[test]
fn leader_refuses_proposals_while_transferring_and_resumes_after_timeout() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    cluster.isolate(2);
    cluster.node_mut(1).transfer_leader(NodeId(2)).unwrap();
    let error = cluster.node_mut(1).propose(Bytes::from_static(b"x")).unwrap_err();
    assert_eq!(error, Error::TransferInProgress { target: NodeId(2) });
    let election_ticks = cluster.node(1).config().election_ticks;
    for _ in 0..election_ticks {
        cluster.node_mut(1).tick();
        cluster.node_mut(3).tick();
        cluster.stabilize();
    }
    assert_eq!(cluster.node(1).role(), Role::Leader, "the transfer was abandoned");
    assert_eq!(cluster.node(1).transfer_target(), None);
    cluster.node_mut(1).propose(Bytes::from_static(b"x")).unwrap();
}

#[test]
fn transfer_to_self_or_a_non_voter_is_refused() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    let to_self = cluster.node_mut(1).transfer_leader(NodeId(1)).unwrap_err();
    assert!(matches!(to_self, Error::InvalidTransferTarget { .. }), "{to_self}");
    let stranger = cluster.node_mut(1).transfer_leader(NodeId(9)).unwrap_err();
    assert!(stranger.to_string().contains("not a voter"), "{stranger}");
    let follower = cluster.node_mut(2).transfer_leader(NodeId(3)).unwrap_err();
    assert_eq!(follower, Error::NotLeader { leader_hint: Some(NodeId(1)) });
}
