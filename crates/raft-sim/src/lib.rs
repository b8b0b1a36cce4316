//! `raft-sim`: deterministic simulation of whole `raft-core` clusters.
//!
//! A [`Cluster`] runs N real [`raft_core::Node`]s in one thread on simulated time. Everything
//! that could vary between runs — message delays, losses and duplicates, disk latencies, timer
//! phases, the nodes' own seeds — is drawn from one PRNG seeded from [`SimConfig::seed`], so a
//! seed replays exactly. The cluster plays each node's driver, following the `Ready` contract,
//! and after every step checks the Raft safety properties, panicking at the first violation:
//!
//! - at most one leader per term (Election Safety);
//! - one payload and one predecessor per entry id (Log Matching);
//! - a leader holds every entry committed in its term or before (Leader Completeness);
//! - no two nodes apply different entries at one index (State Machine Safety);
//! - a committed entry is on a majority of durable stores when its commit is first seen and
//!   is never overwritten there, so crashing a minority never loses it;
//! - leaders only append, terms and commit indices never fall.
//!
//! ```text
//!            ┌───────────── event queue (time, sequence) ─────────────┐
//!            │ tick every tick_ms │ message delivery │ write completes │
//!            └─────────┬──────────┴────────┬─────────┴────────┬────────┘
//!                 tick()             step(message)      on_persisted()
//!                      └──────────> raft_core::Node <────────┘
//!                                  ready() │ after every input
//!      messages_now ──> network (drop, delay, duplicate, partitions) ──> event queue
//!      hard_state + entries ──> disk queue (1–5 ms, in order) ──> DurableStore
//!      messages_after_persist ──> network, once their write is durable
//!      committed_entries ──> the node's state machine ──> safety checks
//! ```
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
mod events;
mod network;
mod stats;
mod storage;
pub mod sweep;

pub use cluster::Cluster;
pub use config::{NetworkFaults, SimConfig};
pub use stats::MessageCounts;
pub use storage::DurableStore;
