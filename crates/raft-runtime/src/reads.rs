//! Linearizable reads on the node task: registering them with the node, matching the
//! confirmations it hands out, and failing the ones it will never confirm.

use std::collections::BTreeMap;

use tokio::sync::oneshot;

use crate::Error;
use raft_core::Node;
use raft_core::ReadId;
use raft_core::ReadState;
use raft_core::{LogIndex, NodeId};

/// Where the answer to a read goes: the read index once the application reached it.
pub(crate) type ReadResponder = oneshot::Sender<Result<LogIndex, Error>>;

/// A read waiting for the leader's confirmation.
struct PendingRead {
    responder: ReadResponder,
    /// The tick after which the read is given up.
    expiry_tick: u64,
}

/// The reads this node asked its `Node` to confirm.
pub(crate) struct PendingReads {
    next_id: u64,
    waiting: BTreeMap<ReadId, PendingRead>,
    waiting_max: usize,
}

impl PendingReads {
    pub(crate) fn new(waiting_max: usize) -> PendingReads {
        PendingReads { next_id: 0, waiting: BTreeMap::new(), waiting_max }
    }

    /// Asks `node` to confirm a new read, which expires at `expiry_tick`.
    pub(crate) fn register(&mut self, node: &mut Node, responder: ReadResponder, expiry_tick: u64) {
        if self.waiting.len() >= self.waiting_max {
            let pending = self.waiting.len();
            let _ = responder.send(Err(raft_core::Error::TooManyPendingReads { pending }.into()));
            return;
        }
        self.next_id += 1;
        let read_id = ReadId(self.next_id);
        match node.read_index(read_id) {
            Ok(()) => {
                self.waiting.insert(read_id, PendingRead { responder, expiry_tick });
            }
            Err(error) => {
                let _ = responder.send(Err(error.into()));
            }
        }
    }

    /// The waiting read a confirmation answers, if it is still waiting.
    pub(crate) fn confirmed(&mut self, read_state: ReadState) -> Option<ReadResponder> {
        self.waiting.remove(&read_state.read_id).map(|read| read.responder)
    }

    /// Fails every waiting read: the node forgets unconfirmed reads when its leadership or
    /// its leader changes, so no confirmation will come.
    pub(crate) fn fail_all(&mut self, leader_hint: Option<NodeId>) {
        for (_, read) in std::mem::take(&mut self.waiting) {
            let _ = read.responder.send(Err(raft_core::Error::NotLeader { leader_hint }.into()));
        }
    }

    /// Fails the reads past their expiry: a request forwarded to the leader, or its answer,
    /// may have been lost.
    pub(crate) fn expire(&mut self, now_tick: u64, leader_hint: Option<NodeId>) {
        if self.waiting.values().all(|read| read.expiry_tick > now_tick) {
            return;
        }
        let (expired, kept) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition::<BTreeMap<_, _>, _>(|(_, read)| read.expiry_tick <= now_tick);
        self.waiting = kept;
        for (_, read) in expired {
            let _ = read.responder.send(Err(raft_core::Error::NotLeader { leader_hint }.into()));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}
