//! `kv-client`: the client library of the replicated key-value store.
//!
//! ```text
//!   KvClient::put/get/delete/range ──Request──> [QUIC stream, mutual TLS] ──> kv-server
//!      (a write is kv-store's Command, proposed by the server as it is)
//!        ^   │ leader discovery: "not leader" answers name the leader and its address
//!        │   └ retries (same session sequence: a write applies at most once)
//!        └───────────────────────────Response──────────────────────────────┘
//! ```
//!
//! The client authenticates with a client certificate signed by the cluster CA (written by
//! `kv-server certs`). It sends each request to the node it believes leads, follows "not
//! leader" redirects, and retries on timeouts and leader changes until the request's own
//! timeout; a write keeps its session sequence across retries, so the store applies it once.
//! Reads are linearizable by default ([`Consistency::Linearizable`], via ReadIndex on the
//! server); [`Consistency::Stale`] lets any node answer from what it has applied.
//!
//! The wire format is in [`protocol`]; the server side is `kv-server`.
//!
//! # Example
//!
//! ```no_run
//! use bytes::Bytes;
//! use kv_client::{ClientConfig, Consistency, KvClient};
//! use raft_net_quic::ClientId;
//!
//! # async fn example() -> Result<(), kv_client::Error> {
//! let endpoints = vec!["127.0.0.1:7001".parse().unwrap()];
//! let certs = std::path::Path::new("kv-data/certs");
//! let config = ClientConfig::from_certs_dir(endpoints, "kv", certs, ClientId(1))?;
//! let client = KvClient::new(config)?;
//! let written = client.put(Bytes::from("x"), Bytes::from("1")).await?;
//! println!("OK leader={} index={}", written.leader, written.index);
//! let value = client.get(Bytes::from("x"), Consistency::Linearizable).await?;
//! assert_eq!(value.map(|kv| kv.value), Some(Bytes::from("1")));
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
pub mod protocol;

pub use client::{ClientConfig, KvClient};
pub use error::Error;
pub use protocol::{Consistency, KeyValue, Member, NodeStatus, WriteOutcome};
pub use raft_core::{LogIndex, NodeId};
pub use raft_net_quic::{ClientId, TransportKind, UnknownTransport};
