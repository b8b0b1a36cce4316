//! The simulation's agenda: what happens next, in time order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use raft_core::{Message, NodeId};

/// Something that happens to the cluster at a simulated time.
#[derive(Debug)]
pub(crate) enum Event {
    /// A node's timer fires. `incarnation` names the run of the node that set the timer, so a
    /// crash silently cancels the timers of the node that crashed.
    Tick {
        /// The node.
        node: NodeId,
        /// The run of the node the timer belongs to.
        incarnation: u64,
    },
    /// A message arrives at `message.to`.
    Deliver {
        /// The message.
        message: Message,
    },
    /// The oldest pending disk write of a node becomes durable.
    WriteDone {
        /// The node.
        node: NodeId,
        /// The run of the node that issued the write; a crash discards pending writes.
        incarnation: u64,
    },
}

/// An event with its time and a sequence number that breaks ties in insertion order, so the
/// run does not depend on how the heap orders equal keys.
#[derive(Debug)]
struct Scheduled {
    time_ms: u64,
    sequence: u64,
    event: Event,
}

impl Scheduled {
    fn key(&self) -> (u64, u64) {
        (self.time_ms, self.sequence)
    }
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Scheduled) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Scheduled) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so the max-heap pops the earliest event first.
    fn cmp(&self, other: &Scheduled) -> Ordering {
        other.key().cmp(&self.key())
    }
}

/// A priority queue of events ordered by `(time, insertion order)`.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    heap: BinaryHeap<Scheduled>,
    sequence: u64,
}

impl EventQueue {
    /// Schedules `event` at `time_ms`.
    pub(crate) fn push(&mut self, time_ms: u64, event: Event) {
        self.sequence += 1;
        self.heap.push(Scheduled { time_ms, sequence: self.sequence, event });
    }

    /// The time of the next event, if any.
    pub(crate) fn next_time_ms(&self) -> Option<u64> {
        self.heap.peek().map(|scheduled| scheduled.time_ms)
    }

    /// How many events are waiting.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Removes and returns the next event with its time.
    pub(crate) fn pop(&mut self) -> Option<(u64, Event)> {
        self.heap.pop().map(|scheduled| (scheduled.time_ms, scheduled.event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(node: u64) -> Event {
        Event::Tick { node: NodeId(node), incarnation: 0 }
    }

    fn node_of(event: &Event) -> u64 {
        match event {
            Event::Tick { node, .. } | Event::WriteDone { node, .. } => node.0,
            Event::Deliver { message } => message.to.0,
        }
    }

    #[test]
    fn events_pop_in_time_then_insertion_order() {
        let mut queue = EventQueue::default();
        queue.push(20, tick(1));
        queue.push(10, tick(2));
        queue.push(20, tick(3));
        queue.push(10, tick(4));
        let order: Vec<(u64, u64)> = std::iter::from_fn(|| queue.pop())
            .map(|(time, event)| (time, node_of(&event)))
            .collect();
        assert_eq!(order, vec![(10, 2), (10, 4), (20, 1), (20, 3)]);
        assert_eq!(queue.next_time_ms(), None);
    }
}
