//! `campaign ID`: node ID starts campaigning now.
//!
//! The public API has no "campaign" call, so the node is ticked, silently, until its
//! election timeout fires: it becomes a pre-candidate (or a candidate without PreVote) and
//! queues its requests for the next `process-ready`. Other nodes are not ticked.

use raft_core::{Node, Role};

use crate::arguments::Arguments;
use crate::environment::Environment;

/// Runs `campaign`.
pub fn campaign(environment: &mut Environment, arguments: &Arguments) {
    let id = arguments.node(0);
    let outcome = environment.with_node(id, tick_until_campaigning);
    if let Err(problem) = outcome {
        environment.error(&format!("node {id} {problem}"));
    }
}

/// Ticks a follower until it leaves the follower role: within two election timeouts, the
/// longest randomized timeout.
fn tick_until_campaigning(node: &mut Node) -> Result<(), String> {
    if node.role() == Role::Leader {
        return Err("is already the leader".to_string());
    }
    let limit = 2 * node.config().election_ticks;
    for _ in 0..limit {
        if node.role() != Role::Follower {
            return Ok(());
        }
        node.tick();
    }
    if node.role() == Role::Follower {
        return Err(format!("did not campaign within {limit} ticks"));
    }
    Ok(())
}
