//! The batch of work a node hands to its driver.

use crate::message::{Message, ReadId};
use crate::snapshot::Snapshot;
use crate::types::{Entry, HardState, LogIndex, NodeId, Role, Term};

/// Everything the node needs done since the last [`crate::Node::ready`] call.
///
/// The driver handles the fields in this order:
///
/// 1. send `messages_now` (the leader's appends and heartbeats: they may go out while the
///    leader's own write is in progress, Raft dissertation §10.2.1);
/// 2. persist `snapshot_to_install` (if any: durably, replacing the stored snapshot and
///    every stored entry up to its last index, keeping later ones only if the entry at its
///    last index matches), then `hard_state` (if any) and `entries_to_persist` in one
///    durable write. The entries
///    overwrite the stored log from the first entry's index onward: anything stored at or
///    after that index is removed first;
/// 3. once that write is durable, send `messages_after_persist` (votes and acknowledgements
///    that promise the write happened) and report the last persisted entry with
///    [`crate::Node::on_persisted`];
/// 4. restore the application from `snapshot_to_install` (if any), then apply
///    `committed_entries` in order. They are committed, so they may be applied while
///    step 2 is in progress;
/// 5. serve each of `read_states` once the application has applied up to its index.
///
/// Writes from successive `Ready`s must become durable in the order they were handed out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "a Ready holds work that the driver must do"]
pub struct Ready {
    /// The hard state to persist, when it changed.
    pub hard_state: Option<HardState>,
    /// Entries to persist, overwriting the stored log from the first one's index.
    pub entries_to_persist: Vec<Entry>,
    /// Messages that may be sent at once.
    pub messages_now: Vec<Message>,
    /// Messages that may only be sent once `hard_state` and `entries_to_persist` are durable.
    pub messages_after_persist: Vec<Message>,
    /// Committed entries to apply, in log order, each exactly once.
    pub committed_entries: Vec<Entry>,
    /// The node's role, term and leader, when any of them changed.
    pub soft_state: Option<SoftState>,
    /// Reads confirmed linearizable: serve each once applied up to its index.
    pub read_states: Vec<ReadState>,
    /// A snapshot received from the leader: persist it and restore the application from it
    /// before applying `committed_entries`.
    pub snapshot_to_install: Option<Snapshot>,
}

/// A confirmed read: reading the application's state once it has applied `read_index` (or
/// more) is linearizable with respect to every write acknowledged before the read began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The id the caller gave [`crate::Node::read_index`].
    pub read_id: ReadId,
    /// Serve the read once the applied index reaches this.
    pub read_index: LogIndex,
}

impl Ready {
    /// Whether there is no work at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.entries_to_persist.is_empty()
            && self.messages_now.is_empty()
            && self.messages_after_persist.is_empty()
            && self.committed_entries.is_empty()
            && self.soft_state.is_none()
            && self.read_states.is_empty()
            && self.snapshot_to_install.is_none()
    }
}

/// Volatile state the driver may want to observe (metrics, routing clients to the leader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    /// The node's role.
    pub role: Role,
    /// The node's current term.
    pub term: Term,
    /// The leader the node knows of in `term`, if any.
    pub leader: Option<NodeId>,
}
