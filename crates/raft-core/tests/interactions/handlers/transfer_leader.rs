//! `transfer-leader from=ID to=ID`: the leader `from` hands leadership to `to`.

use crate::arguments::Arguments;
use crate::environment::Environment;

/// Runs `transfer-leader`.
pub fn transfer_leader(environment: &mut Environment, arguments: &Arguments) {
    let from = arguments.named_node("from");
    let to = arguments.named_node("to");
    if let Err(error) = environment.with_node(from, |node| node.transfer_leader(to)) {
        environment.error(&error.to_string());
    }
}
