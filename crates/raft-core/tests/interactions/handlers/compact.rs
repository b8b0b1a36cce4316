//! `compact ID INDEX`: node ID snapshots its application at INDEX (which it must have
//! applied) and drops its log up to there. Prints the snapshot.

use raft_core::LogIndex;

use crate::arguments::Arguments;
use crate::environment::Environment;
use crate::text::snapshot_text;

/// Runs `compact`.
pub fn compact(environment: &mut Environment, arguments: &Arguments) {
    let id = arguments.node(0);
    let index = LogIndex(arguments.number(1));
    let data = environment.machines.entry(id).or_default().data_at(index);
    match environment.with_node(id, |node| node.compact(index, data)) {
        Ok(_) => {
            let node = &environment.nodes[&id];
            let snapshot = node.snapshot().map(snapshot_text).unwrap_or_default();
            environment.print(&format!("snapshot {snapshot}"));
        }
        Err(error) => environment.error(&error.to_string()),
    }
}
