//! `status [ID...]`, `raft-log ID` and `membership [ID...]`: what nodes know now.

use std::fmt::Write as _;

use raft_core::NodeId;

use crate::arguments::Arguments;
use crate::environment::Environment;
use crate::text::{entry_text, membership_text, snapshot_text};

/// The nodes named, or every node.
fn chosen(environment: &Environment, arguments: &Arguments) -> Vec<NodeId> {
    let named = arguments.nodes();
    if named.is_empty() { environment.nodes.keys().copied().collect() } else { named }
}

/// `status [ID...]`: role, term, leader, last entry and commit index.
pub fn status(environment: &mut Environment, arguments: &Arguments) {
    let mut out = String::new();
    for id in chosen(environment, arguments) {
        let node = &environment.nodes[&id];
        let leader = node.leader().map_or("none".to_string(), |leader| leader.to_string());
        let (role, term) = (node.role(), node.term());
        let (last, commit) = (node.last_log_id(), node.commit_index());
        writeln!(out, "{id}: {role} term={term} leader={leader} last={last} commit={commit}")
            .expect("writing to a String");
    }
    environment.print(&out);
}

/// `raft-log ID`: the node's snapshot (if any) and the entries it holds in memory.
pub fn raft_log(environment: &mut Environment, arguments: &Arguments) {
    let node = &environment.nodes[&arguments.node(0)];
    let mut out = format!("first={} applied={}\n", node.first_index(), node.applied_index());
    if let Some(snapshot) = node.snapshot() {
        writeln!(out, "snapshot {}", snapshot_text(snapshot)).expect("writing to a String");
    }
    for entry in node.log_entries() {
        writeln!(out, "{}", entry_text(entry)).expect("writing to a String");
    }
    environment.print(&out);
}

/// `membership [ID...]`: the membership each node has in force, and the entry that set it.
pub fn membership(environment: &mut Environment, arguments: &Arguments) {
    let mut out = String::new();
    for id in chosen(environment, arguments) {
        let node = &environment.nodes[&id];
        let text = membership_text(node.membership());
        writeln!(out, "{id}: {text} set at index {}", node.membership_index())
            .expect("writing to a String");
    }
    environment.print(&out);
}
