//! `raft-core`: the Raft consensus algorithm as a deterministic state machine.
//!
//! A [`Node`] does no I/O, reads no clock and draws no OS randomness. Time arrives as
//! [`Node::tick`] calls, messages as [`Node::step`] calls, commands as [`Node::propose`]
//! calls; the node answers with a [`Ready`] batch of work for its driver: state to persist,
//! messages to send (some only after the persist), and committed entries to apply. The driver
//! reports durable writes back with [`Node::on_persisted`]. That is what lets `raft-sim` run
//! whole clusters in one thread from a seed and replay any run exactly.
//!
//! ```text
//!   tick() ─┐                     ┌─> hard_state, entries_to_persist ──> disk ──┐
//!   step() ─┼──> Node ── ready() ─┼─> messages_now ───────────────────> network │
//! propose() ┘     ^               ├─> messages_after_persist ──(after disk)──>  │
//!                 │               └─> committed_entries ──> application         │
//!                 └───────────── on_persisted(last log id) <────────────────────┘
//! ```
//!
//! Protocol features: elections with randomized timeouts, PreVote and CheckQuorum; batched,
//! pipelined replication with per-follower flow control and fast conflict back-tracking;
//! commit by majority counting the leader only once its own write is durable, and only of
//! current-term entries (Raft paper, Figure 8); snapshots with chunked, resumable
//! InstallSnapshot ([`Node::compact`]); linearizable reads without log writes
//! ([`Node::read_index`], ReadIndex or leader lease); leadership transfer
//! ([`Node::transfer_leader`]); membership changes one server at a time, with learners
//! ([`Node::propose_membership_change`]).
//!
//! The crate has no async runtime and no tokio dependency. The `raft-runtime` crate is the
//! driver (tokio): one task per node that owns a `Node` and does its I/O through its
//! `LogStore`, `Transport` and `StateMachine` traits.
//!
//! # Example
//!
//! A single-node cluster elects itself and commits a command once its write is durable:
//!
//! ```
//! use bytes::Bytes;
//! use raft_core::{Config, EntryPayload, Membership, Node, NodeId, RestoredState, Role};
//!
//! let id = NodeId(1);
//! let membership = Membership::with_voters([id]);
//! let mut node = Node::new(Config::new(id), RestoredState::bootstrap(membership), 7)?;
//! while node.role() != Role::Leader {
//!     node.tick();
//! }
//! let proposed = node.propose(Bytes::from_static(b"x=1"))?;
//! let mut applied = Vec::new();
//! while node.has_ready() {
//!     let ready = node.ready();
//!     // A real driver writes ready.hard_state and ready.entries_to_persist durably here.
//!     if let Some(last) = ready.entries_to_persist.last() {
//!         node.on_persisted(last.log_id);
//!     }
//!     applied.extend(ready.committed_entries);
//! }
//! let last = applied.last().expect("the command was applied");
//! assert_eq!(last.log_id, proposed);
//! assert_eq!(last.payload, EntryPayload::Command(Bytes::from_static(b"x=1")));
//! # Ok::<(), raft_core::Error>(())
//! ```

mod config;
mod error;
mod log;
mod membership;
mod message;
mod node;
mod progress;
mod quorum;
mod reads;
mod ready;
mod role;
mod snapshot;
mod types;

pub use config::{Config, ReadMode};
pub use error::{
    Error, MembershipChangeProblem, MembershipChangeWait, RestoredStateProblem, SnapshotProblem,
    TransferTargetProblem,
};
pub use message::{AppendResult, Campaign, ConflictHint, Message, MessageBody, ReadId};
pub use node::{Node, RestoredState};
pub use ready::{ReadState, Ready, SoftState};
pub use snapshot::{Snapshot, SnapshotMeta};
pub use types::{
    Entry, EntryPayload, HardState, LogId, LogIndex, Membership, MembershipChange, NodeId, Role,
    Term,
};
