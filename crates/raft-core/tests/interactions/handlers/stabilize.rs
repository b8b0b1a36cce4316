//! `stabilize [ID...]`: processes `Ready`s and delivers messages until nothing moves.
//!
//! Each round takes one `Ready` from every node that has one (in id order), then delivers
//! every queued message in send order; a message over a cut link is printed as `dropped`.
//! With IDs, only those nodes process `Ready`s and receive messages; messages to other
//! nodes stay queued. Deliveries are not printed, except as the header of an event they
//! make `raft-core` log (`log-level info`).

use raft_core::{Message, NodeId};

use crate::arguments::Arguments;
use crate::environment::{Delivery, Environment};
use crate::text::message_text;

/// Rounds after which a cluster that never quiets down is a failure.
const ROUNDS_MAX: usize = 10_000;

/// Runs `stabilize`.
pub fn stabilize(environment: &mut Environment, arguments: &Arguments) {
    stabilize_nodes(environment, &arguments.nodes());
}

/// Stabilizes the nodes `ids` (every node when empty).
pub fn stabilize_nodes(environment: &mut Environment, ids: &[NodeId]) {
    let selected = |id: NodeId| ids.is_empty() || ids.contains(&id);
    environment.set_indent("  ");
    for _ in 0..ROUNDS_MAX {
        let mut progressed = false;
        let nodes: Vec<NodeId> =
            environment.nodes.keys().copied().filter(|&id| selected(id)).collect();
        for id in nodes {
            progressed |= environment.process_ready(id);
        }
        let (deliver, keep): (Vec<Message>, Vec<Message>) =
            environment.queue.drain(..).partition(|message| selected(message.to));
        environment.queue.extend(keep);
        for message in deliver {
            progressed = true;
            let text = message_text(&message);
            if let Delivery::Dropped = environment.deliver_with_header(message) {
                environment.print(&format!("  dropped {text}"));
            }
        }
        if !progressed {
            environment.set_indent("");
            return;
        }
    }
    panic!("the cluster did not quiet down within {ROUNDS_MAX} rounds");
}
