//! Linearizable reads as a client sees them: when each was invoked, what had been
//! acknowledged by then, and what state it was served from, checked at the moment it is
//! served.
//!
//! The application's state is log-shaped (the commands applied, in order), so a read is
//! linearizable exactly when the state it returns is a committed prefix that contains every
//! write acknowledged before the read was invoked. A write counts as acknowledged once any
//! node applied it: that is when a server would answer its client.

use std::collections::BTreeMap;

use raft_core::{LogIndex, NodeId, ReadId, ReadState};

use crate::checker::Checker;
use crate::state_machine::{StateDigest, StateMachine};

/// A read as it was invoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Invocation {
    node: NodeId,
    invoked_at_ms: u64,
    acknowledged_index: LogIndex,
}

/// A read that was served, with what it returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServedRead {
    /// The read's id.
    pub read_id: ReadId,
    /// The node it was invoked on and served by.
    pub node: NodeId,
    /// When it was invoked, in simulated milliseconds.
    pub invoked_at_ms: u64,
    /// The highest index any node had applied (so acknowledged to some client) when it was
    /// invoked: the state it returns must include this index.
    pub acknowledged_index: LogIndex,
    /// The read index the leader confirmed for it.
    pub read_index: LogIndex,
    /// When it was served, in simulated milliseconds.
    pub served_at_ms: u64,
    /// The applied index of the state it returned.
    pub applied_index: LogIndex,
    /// The state it returned.
    pub digest: StateDigest,
}

/// Every read invoked in a run, and the ones served.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    /// The next read id to hand out; ids are never reused, even across restarts.
    next_id: u64,
    /// Reads invoked and not yet served. A read whose node crashed, or whose request was
    /// lost, stays here: if its answer still turns up, it is checked like any other.
    invoked: BTreeMap<ReadId, Invocation>,
    served: BTreeMap<ReadId, ServedRead>,
    /// The highest index any node ever applied.
    acknowledged_index: LogIndex,
}

impl Reads {
    /// Notes that some node applied up to `index`.
    pub(crate) fn on_applied(&mut self, index: LogIndex) {
        self.acknowledged_index = self.acknowledged_index.max(index);
    }

    /// The highest index any node ever applied.
    pub(crate) fn acknowledged_index(&self) -> LogIndex {
        self.acknowledged_index
    }

    /// Records a read invoked on `node` now, and returns its id.
    pub(crate) fn invoke(&mut self, node: NodeId, now_ms: u64) -> ReadId {
        let read_id = ReadId(self.next_id);
        self.next_id += 1;
        let invocation =
            Invocation { node, invoked_at_ms: now_ms, acknowledged_index: self.acknowledged_index };
        self.invoked.insert(read_id, invocation);
        read_id
    }

    /// Forgets a read that the node refused outright (it will never be answered).
    pub(crate) fn cancel(&mut self, read_id: ReadId) {
        self.invoked.remove(&read_id);
    }

    /// Whether `read_state`, handed out by `node`, answers a read still waiting to be served
    /// there. A duplicate answer (the network duplicated the response) is not.
    ///
    /// # Panics
    ///
    /// If it answers a read never invoked, or one invoked on another node.
    pub(crate) fn is_awaited(&self, node: NodeId, read_state: &ReadState, seed: u64) -> bool {
        let read_id = read_state.read_id;
        assert!(
            read_id.0 < self.next_id,
            "node {node} confirmed read {read_id:?}, which was never invoked (seed {seed})"
        );
        let Some(invocation) = self.invoked.get(&read_id) else {
            return false;
        };
        assert_eq!(
            invocation.node, node,
            "read {read_id:?} was invoked on node {} but confirmed on node {node} (seed {seed})",
            invocation.node
        );
        true
    }

    /// Serves `read_state` on `node` from `machine`, checking that the read is linearizable:
    /// its read index and the state it returns include every write acknowledged before it
    /// was invoked, and that state is the committed prefix at its applied index.
    ///
    /// # Panics
    ///
    /// On a linearizability violation, with the seed.
    pub(crate) fn serve(
        &mut self,
        node: NodeId,
        read_state: ReadState,
        machine: &StateMachine,
        now_ms: u64,
        checker: &Checker,
        seed: u64,
    ) -> Option<ServedRead> {
        let invocation = self.invoked.remove(&read_state.read_id)?;
        let served = ServedRead {
            read_id: read_state.read_id,
            node,
            invoked_at_ms: invocation.invoked_at_ms,
            acknowledged_index: invocation.acknowledged_index,
            read_index: read_state.read_index,
            served_at_ms: now_ms,
            applied_index: machine.applied_index,
            digest: machine.digest,
        };
        assert!(
            served.read_index >= served.acknowledged_index,
            "linearizability violation (seed {seed}): read {:?} invoked on node {node} at {} ms, \
             when index {} was already acknowledged, got read index {}",
            served.read_id,
            served.invoked_at_ms,
            served.acknowledged_index,
            served.read_index
        );
        assert!(
            served.applied_index >= served.acknowledged_index,
            "linearizability violation (seed {seed}): read {:?} invoked on node {node} at {} ms, \
             when index {} was already acknowledged, was served at {now_ms} ms from the state at \
             index {}, which misses acknowledged writes",
            served.read_id,
            served.invoked_at_ms,
            served.acknowledged_index,
            served.applied_index
        );
        checker.check_state(node, machine, "served a read");
        self.served.insert(served.read_id, served);
        Some(served)
    }

    /// The read `read_id`, if it was served.
    pub(crate) fn served(&self, read_id: ReadId) -> Option<&ServedRead> {
        self.served.get(&read_id)
    }

    /// Every read served so far, in id order.
    pub(crate) fn all_served(&self) -> impl Iterator<Item = &ServedRead> {
        self.served.values()
    }
}
