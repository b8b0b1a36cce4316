//! `propose-conf-change ID add-learner=N | add-voter=N | remove=N`: the leader ID proposes
//! one membership change (one server at a time).

use raft_core::{MembershipChange, NodeId};

use crate::arguments::Arguments;
use crate::environment::Environment;

/// Runs `propose-conf-change`.
pub fn propose_conf_change(environment: &mut Environment, arguments: &Arguments) {
    let id = arguments.node(0);
    let change = change(arguments);
    let result = environment.with_node(id, |node| node.propose_membership_change(change));
    if let Err(error) = result {
        environment.error(&error.to_string());
    }
}

/// The one change the command names.
fn change(arguments: &Arguments) -> MembershipChange {
    let node = |key| arguments.named_number(key).map(NodeId);
    if let Some(learner) = node("add-learner") {
        MembershipChange::AddLearner(learner)
    } else if let Some(voter) = node("add-voter") {
        MembershipChange::AddVoter(voter)
    } else if let Some(removed) = node("remove") {
        MembershipChange::Remove(removed)
    } else {
        panic!("propose-conf-change needs add-learner=, add-voter= or remove=")
    }
}
