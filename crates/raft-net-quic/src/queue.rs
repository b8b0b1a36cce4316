//! A bounded outgoing queue per peer that never blocks the sender.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use raft_core::{Message, MessageBody};
use raft_runtime::Delivery;
use tokio::sync::Notify;

/// Messages waiting for a peer's connection. When full, the oldest queued heartbeat (or
/// heartbeat response) makes room: a newer one supersedes it. With none queued, the new
/// message is dropped; Raft re-sends what matters.
#[derive(Debug)]
pub(crate) struct OutboundQueue {
    messages: Mutex<VecDeque<Message>>,
    capacity: usize,
    ready: Notify,
}

fn is_heartbeat(message: &Message) -> bool {
    matches!(message.body, MessageBody::Heartbeat { .. } | MessageBody::HeartbeatResponse { .. })
}

impl OutboundQueue {
    pub(crate) fn new(capacity: usize) -> OutboundQueue {
        OutboundQueue {
            messages: Mutex::new(VecDeque::with_capacity(capacity.min(64))),
            capacity,
            ready: Notify::new(),
        }
    }

    /// Queues `message` without waiting.
    pub(crate) fn push(&self, message: Message) -> Delivery {
        let mut messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        if messages.len() >= self.capacity {
            let Some(oldest) = messages.iter().position(is_heartbeat) else {
                return Delivery::Dropped;
            };
            messages.remove(oldest);
        }
        messages.push_back(message);
        drop(messages);
        self.ready.notify_one();
        Delivery::Queued
    }

    /// Takes the next message, waiting for one. Cancel safe: a message is only removed by
    /// the call that returns it.
    pub(crate) async fn pop(&self) -> Message {
        loop {
            let notified = self.ready.notified();
            if let Some(message) = self.try_pop() {
                return message;
            }
            notified.await;
        }
    }

    pub(crate) fn try_pop(&self) -> Option<Message> {
        self.messages.lock().unwrap_or_else(PoisonError::into_inner).pop_front()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.messages.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use raft_core::{Campaign, LogIndex, NodeId, Term};

    fn heartbeat(round: u64) -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(1),
            body: MessageBody::Heartbeat { commit_index: LogIndex(0), round },
        }
    }

    fn vote() -> Message {
        Message {
            body: MessageBody::VoteResponse { campaign: Campaign::Election, granted: true },
            ..heartbeat(0)
        }
    }

    #[test]
    fn full_queue_drops_the_oldest_heartbeat_first() {
        let queue = OutboundQueue::new(3);
        assert_eq!(queue.push(heartbeat(1)), Delivery::Queued);
        assert_eq!(queue.push(vote()), Delivery::Queued);
        assert_eq!(queue.push(heartbeat(2)), Delivery::Queued);
        assert_eq!(queue.push(heartbeat(3)), Delivery::Queued, "heartbeat 1 made room");
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.try_pop(), Some(vote()));
        assert_eq!(queue.try_pop(), Some(heartbeat(2)));
        assert_eq!(queue.try_pop(), Some(heartbeat(3)));
    }

    #[test]
    fn full_queue_without_heartbeats_drops_the_new_message() {
        let queue = OutboundQueue::new(1);
        assert_eq!(queue.push(vote()), Delivery::Queued);
        assert_eq!(queue.push(vote()), Delivery::Dropped);
        assert_eq!(queue.len(), 1);
    }
}
