//! Moving messages between nodes: the `Transport` and `MessageSender` traits, and an
//! in-process network of bounded channels for tests and benchmarks.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::mpsc;

use raft_core::Message;
use raft_core::NodeId;

/// One node's connection to its peers: it receives the messages addressed to the node and
/// hands out [`MessageSender`]s that send to peers.
///
/// The driver receives on its node task, and sends from both the node task and the
/// persistence task (acknowledgements leave as soon as the write they promise is durable).
pub trait Transport: Send + 'static {
    /// Sends messages to peers; cloned into each task that sends.
    type Sender: MessageSender;

    /// A sender for this node's outgoing messages.
    fn sender(&self) -> Self::Sender;

    /// Waits for the next message addressed to this node. `None` means the transport is
    /// closed for good; the node then stops.
    ///
    /// # Correctness
    ///
    /// Cancel safe: the driver drops the future when another input arrives first, and no
    /// message may be lost when it does.
    fn recv(&mut self) -> impl Future<Output = Option<Message>> + Send;

    /// The next message if one is already queued, without waiting; lets the driver take a
    /// whole burst before it asks the node for work.
    fn try_recv(&mut self) -> Option<Message>;
}

/// Sends messages to peers without ever waiting.
///
/// Raft tolerates lost, duplicated and reordered messages, so a sender that cannot queue a
/// message (its peer is slow, gone or unknown) drops it rather than blocking the node.
pub trait MessageSender: Clone + Send + Sync + 'static {
    /// Queues `message` for `message.to`, or drops it.
    fn send(&self, message: Message) -> Delivery;
}

/// What became of a message handed to a [`MessageSender`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queued for sending.
    Queued,
    /// Dropped: the peer's queue is full, or the peer is unknown, stopped or cut off.
    Dropped,
}

/// An in-process network of bounded channels: each node's inbox is a queue, and a message
/// to a full, closed or cut-off inbox is dropped.
///
/// Clones share one network. Tests cut nodes off with [`ChannelNetwork::isolate`].
#[derive(Clone, Debug)]
pub struct ChannelNetwork {
    shared: Arc<NetworkState>,
    inbox_max: NonZeroUsize,
}

#[derive(Debug, Default)]
struct NetworkState {
    inboxes: RwLock<HashMap<NodeId, mpsc::Sender<Message>>>,
    isolated: RwLock<HashSet<NodeId>>,
}

/// The default inbox bound: a few pipelining windows' worth of appends from each peer.
const INBOX_MAX_DEFAULT: NonZeroUsize = NonZeroUsize::new(4096).expect("non-zero");

impl Default for ChannelNetwork {
    fn default() -> ChannelNetwork {
        ChannelNetwork::new()
    }
}

impl ChannelNetwork {
    /// An empty network whose inboxes hold 4096 messages each.
    #[must_use]
    pub fn new() -> ChannelNetwork {
        ChannelNetwork::with_inbox_max(INBOX_MAX_DEFAULT)
    }

    /// An empty network whose inboxes hold `inbox_max` messages each.
    #[must_use]
    pub fn with_inbox_max(inbox_max: NonZeroUsize) -> ChannelNetwork {
        ChannelNetwork { shared: Arc::new(NetworkState::default()), inbox_max }
    }

    /// Creates node `id`'s inbox and returns its transport. A node created again (a restart)
    /// gets a new inbox; messages queued for its previous life are gone.
    #[must_use]
    pub fn transport(&self, id: NodeId) -> ChannelTransport {
        let (sender, inbox) = mpsc::channel(self.inbox_max.get());
        let mut inboxes = self.shared.inboxes.write().unwrap_or_else(PoisonError::into_inner);
        inboxes.insert(id, sender);
        ChannelTransport { id, inbox, sender: ChannelSender { shared: Arc::clone(&self.shared) } }
    }

    /// Cuts node `id` off (`true`) or reconnects it (`false`): messages from and to it are
    /// dropped while it is cut off.
    pub fn isolate(&self, id: NodeId, isolated: bool) {
        let mut set = self.shared.isolated.write().unwrap_or_else(PoisonError::into_inner);
        if isolated {
            set.insert(id);
        } else {
            set.remove(&id);
        }
    }
}

/// One node's end of a [`ChannelNetwork`].
#[derive(Debug)]
pub struct ChannelTransport {
    id: NodeId,
    inbox: mpsc::Receiver<Message>,
    sender: ChannelSender,
}

impl ChannelTransport {
    /// The node this transport belongs to.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.id
    }
}

/// Sends into a [`ChannelNetwork`].
#[derive(Clone, Debug)]
pub struct ChannelSender {
    shared: Arc<NetworkState>,
}

impl MessageSender for ChannelSender {
    fn send(&self, message: Message) -> Delivery {
        {
            let isolated = self.shared.isolated.read().unwrap_or_else(PoisonError::into_inner);
            if !isolated.is_empty()
                && (isolated.contains(&message.from) || isolated.contains(&message.to))
            {
                return Delivery::Dropped;
            }
        }
        let inboxes = self.shared.inboxes.read().unwrap_or_else(PoisonError::into_inner);
        let Some(inbox) = inboxes.get(&message.to) else {
            return Delivery::Dropped;
        };
        match inbox.try_send(message) {
            Ok(()) => Delivery::Queued,
            Err(_) => Delivery::Dropped,
        }
    }
}

impl Transport for ChannelTransport {
    type Sender = ChannelSender;

    fn sender(&self) -> ChannelSender {
        self.sender.clone()
    }

    async fn recv(&mut self) -> Option<Message> {
        self.inbox.recv().await
    }

    fn try_recv(&mut self) -> Option<Message> {
        self.inbox.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::MessageBody;
    use raft_core::Term;

    fn message(from: u64, to: u64) -> Message {
        Message {
            from: NodeId(from),
            to: NodeId(to),
            term: Term(1),
            body: MessageBody::HeartbeatResponse { round: 1 },
        }
    }

    #[test]
    fn full_inbox_drops_instead_of_blocking() {
        let network = ChannelNetwork::with_inbox_max(NonZeroUsize::new(1).unwrap());
        let mut two = network.transport(NodeId(2));
        let one = network.transport(NodeId(1));
        assert_eq!(one.sender().send(message(1, 2)), Delivery::Queued);
        assert_eq!(one.sender().send(message(1, 2)), Delivery::Dropped);
        assert_eq!(two.try_recv(), Some(message(1, 2)));
        assert_eq!(two.try_recv(), None);
    }

    #[test]
    fn isolated_node_neither_sends_nor_receives() {
        let network = ChannelNetwork::new();
        let two = network.transport(NodeId(2));
        let mut one = network.transport(NodeId(1));
        network.isolate(NodeId(1), true);
        assert_eq!(one.sender().send(message(1, 2)), Delivery::Dropped);
        assert_eq!(two.sender().send(message(2, 1)), Delivery::Dropped);
        network.isolate(NodeId(1), false);
        assert_eq!(two.sender().send(message(2, 1)), Delivery::Queued);
        assert_eq!(one.try_recv(), Some(message(2, 1)));
        assert_eq!(two.sender().send(message(2, 3)), Delivery::Dropped, "unknown node");
    }
}
