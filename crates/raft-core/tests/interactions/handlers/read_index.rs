//! `read-index ID READ`: node ID asks for a linearizable read named READ (a number). The
//! answer comes as a `read state` line in a later `Ready` of the same node.

use raft_core::ReadId;

use crate::arguments::Arguments;
use crate::environment::Environment;

/// Runs `read-index`.
pub fn read_index(environment: &mut Environment, arguments: &Arguments) {
    let id = arguments.node(0);
    let read_id = ReadId(arguments.number(1));
    if let Err(error) = environment.with_node(id, |node| node.read_index(read_id)) {
        environment.error(&error.to_string());
    }
}
