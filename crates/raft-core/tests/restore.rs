//! Restarting from storage: bad restored state is refused with a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{entry, state_with_log};
use raft_core::{Config, Error, LogIndex, Message, MessageBody, Node, NodeId, Term};

#[test]
fn restored_log_with_a_hole_is_refused() {
    let mut state = state_with_log(3, 2, &[1, 1]);
    state.entries.push(entry(2, 4));
    let error = Node::new(Config::new(NodeId(1)), state, 1).unwrap_err();
    assert!(matches!(error, Error::LogNotContiguous { .. }), "{error}");
    assert!(error.to_string().contains("4@2"), "{error}");
}

#[test]
fn restored_commit_past_the_log_is_refused() {
    let mut state = state_with_log(3, 2, &[1, 1]);
    state.hard_state.commit_index = LogIndex(5);
    let error = Node::new(Config::new(NodeId(1)), state, 1).unwrap_err();
    assert!(error.to_string().contains("commit index 5"), "{error}");
}

#[test]
fn restored_entry_newer_than_the_term_is_refused() {
    let state = state_with_log(3, 1, &[1, 2]);
    let error = Node::new(Config::new(NodeId(1)), state, 1).unwrap_err();
    assert!(error.to_string().contains("above the persisted term"), "{error}");
}

#[test]
fn restart_resumes_term_vote_and_commits_what_it_knew() {
    let mut state = state_with_log(3, 4, &[1, 2, 4]);
    state.hard_state.voted_for = Some(NodeId(2));
    state.hard_state.commit_index = LogIndex(2);
    let mut node = Node::new(Config::new(NodeId(1)), state, 1).unwrap();
    assert_eq!(node.term(), Term(4));
    assert_eq!(node.voted_for(), Some(NodeId(2)));
    let ready = node.ready();
    let applied: Vec<u64> = ready.committed_entries.iter().map(|e| e.log_id.index.0).collect();
    assert_eq!(applied, vec![1, 2], "entries known committed are applied again");
}

#[test]
fn misaddressed_message_is_an_error_and_changes_nothing() {
    let mut node = Node::new(Config::new(NodeId(1)), state_with_log(3, 1, &[]), 1).unwrap();
    let message = Message {
        from: NodeId(2),
        to: NodeId(3),
        term: Term(9),
        body: MessageBody::HeartbeatResponse { round: 0 },
    };
    let error = node.step(message).unwrap_err();
    assert_eq!(error, Error::MisaddressedMessage { to: NodeId(3), this: NodeId(1) });
    assert_eq!(node.term(), Term(1));
}
