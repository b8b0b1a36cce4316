//! `kv-server`: one node of the replicated key-value store, and the `kvctl` CLI.
//!
//! ```text
//!   kvctl / kv-client ──QUIC (mutual TLS, ALPN raft-rpc)──> Service ──propose──> raft-core
//!                                                              │  ReadIndex        runtime
//!                                                              v                  │    │
//!                                                  SharedKvStore (kv-store) <─apply┘    │
//!   peers <──────────QUIC (ALPN raft-peer)──────── QuicNode <──────Transport───────────┘
//!                                   WalLogStore or RedbLogStore (raft-storage) <─persist─┘
//!   Prometheus ──HTTP GET /metrics, /health──> ServerMetrics (MetricsSink + sampled state)
//! ```
//!
//! [`Server::start`] assembles a node from a [`ServerConfig`]; the `kv-server` binary builds
//! that from flags and an optional TOML file ([`Settings`]), and with no flags at all runs a
//! single-node cluster on 127.0.0.1:7001 with its data in `./kv-data`.
//!
//! The cluster's address book (where each member listens) is replicated through the log
//! as kv-store's typed `SetMemberAddress` / `RemoveMemberAddress` commands and carried in
//! its snapshots, so members added at run time are reachable from every node, after
//! restarts and through snapshots, and no user key is reserved.

pub mod cli;
pub mod config;
mod error;
pub mod etcd;
#[cfg(feature = "fault-injection")]
mod faults;
mod in_flight;
pub mod metrics;
mod server;
mod service;

pub use config::{ServerConfig, Settings};
pub use error::Error;
pub use server::Server;
