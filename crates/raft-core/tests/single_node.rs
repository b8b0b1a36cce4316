//! A lone voter elects itself and commits its own proposals once they are durable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use raft_core::{Config, EntryPayload, Membership, Node, NodeId, RestoredState, Role};

#[test]
fn lone_voter_elects_itself_and_commits_after_persisting() {
    let id = NodeId(1);
    let membership = Membership::with_voters([id]);
    let mut node = Node::new(Config::new(id), RestoredState::bootstrap(membership), 7).unwrap();
    for _ in 0..100 {
        if node.role() == Role::Leader {
            break;
        }
        node.tick();
    }
    assert_eq!(node.role(), Role::Leader);
    let proposed = node.propose(Bytes::from_static(b"x=1")).unwrap();
    let first = node.ready();
    assert!(first.committed_entries.is_empty(), "nothing commits before the write is durable");
    let last = first.entries_to_persist.last().unwrap().log_id;
    assert_eq!(last, proposed);
    node.on_persisted(last);
    let second = node.ready();
    let applied: Vec<_> = second.committed_entries.iter().map(|e| e.log_id).collect();
    assert_eq!(applied.last(), Some(&proposed));
    assert_eq!(
        second.committed_entries.last().unwrap().payload,
        EntryPayload::Command(Bytes::from_static(b"x=1"))
    );
    assert!(!node.has_ready(), "{:?}", node.ready());
}
