//! One peer's link: its address, its two outgoing queues and the connection they are sent
//! on.
//!
//! The link is state the endpoint keeps per peer (in [`crate::shared::Shared`]); the tasks
//! that dial, accept, write and read it live in [`crate::peer`].

use std::net::SocketAddr;

use raft_core::NodeId;
use tokio::sync::watch;

use crate::queue::OutboundQueue;

/// The close code of a connection superseded by a newer one with the same peer.
const REPLACED: quinn::VarInt = quinn::VarInt::from_u32(0x5250);

/// Which of a connection's two outgoing streams a message travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// Appends, heartbeats and votes, in order.
    Messages,
    /// `InstallSnapshot` chunks, behind the messages.
    Snapshots,
}

impl StreamKind {
    /// The stream's name in logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            StreamKind::Messages => "messages",
            StreamKind::Snapshots => "snapshots",
        }
    }

    /// Higher goes first: heartbeats and appends before snapshot chunks.
    pub(crate) fn priority(self) -> i32 {
        match self {
            StreamKind::Messages => 1,
            StreamKind::Snapshots => 0,
        }
    }
}

/// Everything about one peer: its address, its outgoing queues and the current connection.
#[derive(Debug)]
pub(crate) struct PeerLink {
    pub(crate) peer: NodeId,
    pub(crate) address: watch::Sender<Option<SocketAddr>>,
    messages: OutboundQueue,
    snapshots: OutboundQueue,
    pub(crate) connection: watch::Sender<Option<quinn::Connection>>,
}

impl PeerLink {
    /// A link to `peer` with no address or connection yet and queues of the given bounds.
    pub(crate) fn new(peer: NodeId, messages_max: usize, snapshots_max: usize) -> PeerLink {
        PeerLink {
            peer,
            address: watch::Sender::new(None),
            messages: OutboundQueue::new(messages_max),
            snapshots: OutboundQueue::new(snapshots_max),
            connection: watch::Sender::new(None),
        }
    }

    pub(crate) fn set_address(&self, addr: SocketAddr) {
        self.address.send_replace(Some(addr));
    }

    pub(crate) fn queue(&self, kind: StreamKind) -> &OutboundQueue {
        match kind {
            StreamKind::Messages => &self.messages,
            StreamKind::Snapshots => &self.snapshots,
        }
    }

    /// Makes `connection` the one to send on, closing the one it replaces.
    pub(crate) fn install(&self, connection: quinn::Connection) {
        let id = connection.stable_id();
        if let Some(old) = self.connection.send_replace(Some(connection)) {
            if old.stable_id() != id {
                old.close(REPLACED, b"replaced by a newer connection");
            }
        }
    }

    /// Forgets `connection` if it is still the current one.
    pub(crate) fn uninstall(&self, connection: &quinn::Connection) {
        self.connection.send_if_modified(|current| {
            let same = current.as_ref().is_some_and(|c| c.stable_id() == connection.stable_id());
            if same {
                *current = None;
            }
            same
        });
    }
}
