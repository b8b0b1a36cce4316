//! The server's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range or malformed.
    #[error("invalid --{setting} {value:?}: {rule}")]
    InvalidSetting {
        /// The setting (its flag name).
        setting: &'static str,
        /// The value given.
        value: String,
        /// The rule it breaks.
        rule: String,
    },
    /// The configuration file cannot be read or parsed.
    #[error("configuration file {path}: {reason}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The certificates are missing or unreadable.
    #[error(
        "cannot load the certificates of node {node} from {dir}: {source}; create them with \
         `kv-server certs --out {dir} --nodes <ids> --clients 1`"
    )]
    Certificates {
        /// The node.
        node: u64,
        /// The certificates directory.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<raft_net_quic::Error>,
    },
    /// The data directory cannot be created or used.
    #[error("data directory {path}: {reason}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The stored log could not be opened or read.
    #[error("cannot open the stored state in {path}: {source}")]
    Storage {
        /// The data directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<raft_storage::Error>,
    },
    /// The stored membership disagrees with `--peers`.
    #[error(
        "--peers lists nodes {given:?} but the data directory {path} holds a cluster of {stored:?}; \
         start with the stored members or use a fresh data directory"
    )]
    MembershipMismatch {
        /// The data directory.
        path: PathBuf,
        /// The ids `--peers` gives.
        given: Vec<u64>,
        /// The ids the stored membership has.
        stored: Vec<u64>,
    },
    /// The transport could not start.
    #[error("cannot start the QUIC endpoint on {addr}: {source}")]
    Transport {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: Box<raft_net_quic::Error>,
    },
    /// The HTTP endpoint could not bind.
    #[error("cannot serve HTTP on {addr}: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// etcd's API could not bind.
    #[error(
        "cannot serve etcd's v3 API on {addr}: {source}; set --etcd-listen to a free loopback address or `off`"
    )]
    Etcd {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The etcd API's TLS could not be set up.
    #[error(
        "cannot serve etcd's v3 API over TLS with {path}: {reason}; make the certificates with `kv-server certs`"
    )]
    EtcdTls {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The Raft node failed to start or stopped on a fatal error.
    #[error("raft node failed: {source}")]
    Raft {
        /// The underlying error.
        #[source]
        source: Box<raft_runtime::Error>,
    },
    /// The state machine could not be set up.
    #[error("state machine: {source}")]
    Store {
        /// The underlying error.
        #[source]
        source: kv_store::Error,
    },
}
