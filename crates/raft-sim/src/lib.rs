//! `raft-sim`: deterministic simulation of whole `raft-core` clusters.
//!
//! A [`Cluster`] runs N real [`raft_core::Node`]s in one thread on simulated time. Everything
//! that could vary between runs — message delays, losses and duplicates, disk latencies, timer
//! phases, the nodes' own seeds — is drawn from one PRNG seeded from [`SimConfig::seed`], so a
//! seed replays exactly. The cluster plays each node's driver, following the `Ready` contract
//! (snapshots to install, reads to serve and log compaction included), and after every step
//! checks the Raft safety properties, panicking at the first violation:
//!
//! - at most one leader per term (Election Safety);
//! - one payload and one predecessor per entry id (Log Matching);
//! - a leader holds every entry committed in its term or before (Leader Completeness);
//! - every node applies, at each index, the committed entry, and its application's state is
//!   always that of the committed prefix at its applied index, snapshots included: each
//!   snapshot taken, installed or restarted from names a committed entry, carries the
//!   membership in force there and holds the state of the committed prefix (State Machine
//!   Safety);
//! - a committed entry is, when its commit is first seen, in the durable stores (as an entry
//!   or under a snapshot) of a majority of the voters the committing leader counted, and is
//!   never lost from a store after; an acknowledged append or granted vote is durable when it
//!   leaves, so crashing a minority never loses it;
//! - a linearizable read returns a committed prefix that includes every write acknowledged
//!   (applied by any node) before the read was invoked, and so does its read index;
//! - leaders only append, nodes hand out entries for persisting without gaps, terms and
//!   commit indices never fall.
//!
//! ```text
//!            ┌───────────── event queue (time, sequence) ─────────────┐
//!            │ tick every tick_ms │ message delivery │ write completes │
//!            └─────────┬──────────┴────────┬─────────┴────────┬────────┘
//!                 tick()             step(message)      on_persisted()
//!                      └──────────> raft_core::Node <────────┘
//!                                  ready() │ after every input
//!      messages_now ──> network (drop, delay, duplicate, partitions) ──> event queue
//!      snapshot + hard_state + entries ──> disk queue (1–5 ms, in order) ──> DurableStore
//!      messages_after_persist ──> network, once their write is durable
//!      snapshot_to_install, committed_entries ──> the node's application ──> safety checks
//!      read_states ──> served once applied up to their index ──> linearizability check
//!      snapshot_due() ──> compact() + snapshot stored, log prefix dropped ──> DurableStore
//! ```
//!
//! Clients act through the cluster as they would through a server: commands
//! ([`Cluster::propose_to`]), reads ([`Cluster::read`]), leadership transfers
//! ([`Cluster::transfer_leader`]) and membership changes
//! ([`Cluster::propose_membership_change`], or a whole plan with
//! [`reconfiguration::Reconfiguration`]); spare nodes ([`SimConfig::spare_nodes`]) start as
//! nodes joining a running cluster.
//!
//! [`sweep`] runs randomized fault schedules over many seeds (the `raft-sim` binary and
//! `cargo xtask sim` drive it); the named scenarios live in `tests/`.
//!
//! # Example
//!
//! ```
//! use raft_sim::{Cluster, SimConfig};
//!
//! let mut cluster = Cluster::new(SimConfig::new(3, 42));
//! let leader = cluster.wait_for_leader(1_000).expect("a leader within a second");
//! cluster.disconnect(leader);
//! let index = cluster.replicate(&b"x=1"[..], 2, 5_000).expect("two nodes apply it");
//! assert_eq!(cluster.applied_count(index, b"x=1"), 2);
//! assert_ne!(cluster.leader(), Some(leader));
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod checker;
pub mod client;
mod cluster;
mod config;
mod control;
mod driver;
mod events;
pub mod kv;
mod kv_application;
mod network;
mod operations;
mod reads;
pub mod reconfiguration;
mod state_machine;
mod stats;
mod storage;
pub mod sweep;

pub use cluster::Cluster;
pub use config::{NetworkFaults, SimConfig};
pub use reads::ServedRead;
pub use state_machine::{StateDigest, StateMachine};
pub use stats::MessageCounts;
pub use storage::DurableStore;
