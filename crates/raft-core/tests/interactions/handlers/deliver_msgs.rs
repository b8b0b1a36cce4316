//! `deliver-msgs [ID...] [type=KIND] [drop=(ID,...)]`: delivers queued messages, in send
//! order, and prints each.
//!
//! IDs pick the recipients (every node when neither IDs nor `drop=` is given); `type=`
//! keeps only one message kind (`heartbeat`, `append_request`, ...); `drop=` removes the
//! messages to those nodes instead of delivering them. Messages not picked stay queued.

use raft_core::{Message, NodeId};

use crate::arguments::Arguments;
use crate::environment::{Delivery, Environment};
use crate::text::message_text;

/// What the command does with one queued message.
enum Choice {
    Deliver,
    Drop,
    Keep,
}

/// Runs `deliver-msgs`.
pub fn deliver_msgs(environment: &mut Environment, arguments: &Arguments) {
    let recipients = arguments.nodes();
    let dropped = arguments.named_nodes("drop").unwrap_or_default();
    let kind = arguments.named("type");
    let choose = |message: &Message| -> Choice {
        if kind.is_some_and(|kind| kind != message.body.kind()) {
            return Choice::Keep;
        }
        let everyone = recipients.is_empty() && dropped.is_empty();
        if dropped.contains(&message.to) {
            Choice::Drop
        } else if everyone || recipients.contains(&message.to) {
            Choice::Deliver
        } else {
            Choice::Keep
        }
    };
    let mut picked = Vec::new();
    let mut kept = Vec::new();
    for message in environment.queue.drain(..) {
        match choose(&message) {
            Choice::Keep => kept.push(message),
            choice => picked.push((message, choice)),
        }
    }
    environment.queue.extend(kept);
    for (message, choice) in picked {
        deliver_one(environment, message, &choice);
    }
}

/// Prints one message, then delivers or drops it.
fn deliver_one(environment: &mut Environment, message: Message, choice: &Choice) {
    let text = message_text(&message);
    if let Choice::Drop = choice {
        environment.print(&format!("dropped {text}"));
        return;
    }
    let recipient: NodeId = message.to;
    if environment.cut.contains(&(message.from, recipient)) {
        environment.print(&format!("dropped {text}"));
        return;
    }
    environment.print(&text);
    if let Delivery::Lost = environment.deliver(message) {
        environment.print(&format!("  lost: there is no node {recipient}"));
    }
}
