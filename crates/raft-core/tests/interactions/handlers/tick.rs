//! `tick ID [COUNT]`, `tick-election ID`, `tick-heartbeat ID` and `tick-all [COUNT]`.

use crate::arguments::Arguments;
use crate::environment::Environment;
use crate::handlers::stabilize::stabilize_nodes;

/// `tick ID [COUNT]`: ticks node ID COUNT times (once by default).
pub fn tick(environment: &mut Environment, arguments: &Arguments) {
    let id = arguments.node(0);
    let count = arguments.number_or(1, 1);
    environment.with_node(id, |node| (0..count).for_each(|_| node.tick()));
}

/// `tick-election ID`: ticks node ID `election_ticks` times, the shortest election timeout
/// (its randomized timeout may be longer: up to twice that).
pub fn tick_election(environment: &mut Environment, arguments: &Arguments) {
    let id = arguments.node(0);
    environment.with_node(id, |node| {
        let count = node.config().election_ticks;
        (0..count).for_each(|_| node.tick());
    });
}

/// `tick-heartbeat ID`: ticks node ID `heartbeat_ticks` times.
pub fn tick_heartbeat(environment: &mut Environment, arguments: &Arguments) {
    let id = arguments.node(0);
    environment.with_node(id, |node| {
        let count = node.config().heartbeat_ticks;
        (0..count).for_each(|_| node.tick());
    });
}

/// `tick-all [COUNT] [nodes=(1,3)]`: COUNT times (once by default), ticks every node (or
/// just those listed), then stabilizes the whole cluster.
pub fn tick_all(environment: &mut Environment, arguments: &Arguments) {
    let every_node = || environment.nodes.keys().copied().collect();
    let ids: Vec<_> = arguments.named_nodes("nodes").unwrap_or_else(every_node);
    for _ in 0..arguments.number_or(0, 1) {
        for &id in &ids {
            environment.with_node(id, raft_core::Node::tick);
        }
        stabilize_nodes(environment, &[]);
    }
}
