//! `isolate ID`, `cut FROM TO` and `heal`: links that drop every message.

use raft_core::NodeId;

use crate::arguments::Arguments;
use crate::environment::Environment;

/// `isolate ID`: cuts every link to and from ID.
pub fn isolate(environment: &mut Environment, arguments: &Arguments) {
    let id = arguments.node(0);
    let others: Vec<NodeId> = environment.nodes.keys().copied().collect();
    for other in others {
        environment.cut.insert((id, other));
        environment.cut.insert((other, id));
    }
}

/// `cut FROM TO`: cuts the link from FROM to TO, one way.
pub fn cut(environment: &mut Environment, arguments: &Arguments) {
    environment.cut.insert((arguments.node(0), arguments.node(1)));
}

/// `heal`: restores every link.
pub fn heal(environment: &mut Environment, _arguments: &Arguments) {
    environment.cut.clear();
}
