//! The client's error type.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use raft_core::NodeId;

use crate::protocol::ServerError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No answer within the request's timeout; a write may or may not have happened (a
    /// retry with a new request is a new write).
    #[error("request timed out after {after:?} (last problem: {last_problem})")]
    Timeout {
        /// The request's time limit.
        after: Duration,
        /// What went wrong on the last attempt.
        last_problem: String,
    },
    /// The node asked is not the leader, and the client was told not to follow redirects.
    #[error(
        "node {node} is not the leader (leader: {:?} at {:?})",
        leader.map(|leader| leader.0),
        addr.map(|addr| addr.to_string())
    )]
    NotLeader {
        /// The node that answered.
        node: String,
        /// The leader it named, if any.
        leader: Option<NodeId>,
        /// The leader's address, if known.
        addr: Option<SocketAddr>,
    },
    /// A versioned write found another version.
    #[error("version conflict: the key's current version is {}", describe_version(*current_version))]
    Conflict {
        /// The key's current version (`None`: the key does not exist).
        current_version: Option<u64>,
    },
    /// A key or value over the server's limit.
    #[error("{what} of {bytes} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// `key` or `value`.
        what: String,
        /// Its size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The server refused the request as malformed or not allowed.
    #[error("invalid request: {reason}")]
    Invalid {
        /// The server's reason.
        reason: String,
    },
    /// The session forgot this write (it was evicted): the write's outcome is unknown, it
    /// may or may not have applied once, and retrying it could apply it twice. Read to
    /// find out.
    #[error("outcome unknown, the session expired: {reason}")]
    SessionExpired {
        /// The server's reason.
        reason: String,
    },
    /// The server failed.
    #[error("server error: {reason}")]
    Server {
        /// The server's reason.
        reason: String,
    },
    /// The server answered something this client does not understand.
    #[error("unexpected answer from {addr}: {reason}")]
    Protocol {
        /// The server.
        addr: SocketAddr,
        /// What was wrong.
        reason: String,
    },
    /// The client's certificate could not be loaded.
    #[error("cannot load the client certificate from {dir}: {source}")]
    Identity {
        /// The certificates directory.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: raft_net_quic::Error,
    },
    /// The configuration is unusable.
    #[error("invalid client configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

fn describe_version(version: Option<u64>) -> String {
    version.map_or_else(|| "none (the key does not exist)".to_owned(), |v| v.to_string())
}

impl Error {
    /// The client's error for a refusal from the node at `node`: the one place where wire
    /// errors become client errors. Unavailable, outcome unknown and internal failures all
    /// become [`Error::Server`]; the others keep their kind.
    #[must_use]
    pub fn from_server(node: SocketAddr, error: ServerError) -> Error {
        match error {
            ServerError::NotLeader { leader, addr } => {
                Error::NotLeader { node: node.to_string(), leader, addr }
            }
            ServerError::Conflict { current_version } => Error::Conflict { current_version },
            ServerError::TooLarge { what, bytes, max } => Error::TooLarge { what, bytes, max },
            ServerError::Invalid { reason } => Error::Invalid { reason },
            ServerError::SessionExpired { reason } => Error::SessionExpired { reason },
            ServerError::Unavailable { reason }
            | ServerError::OutcomeUnknown { reason }
            | ServerError::Internal { reason } => Error::Server { reason },
        }
    }

    /// Whether a write may or may not have applied, and the client cannot tell: its
    /// session expired.
    #[must_use]
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::SessionExpired { .. })
    }

    /// Whether the failure says nothing about the cluster's data (the request never got an
    /// answer): a timeout.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }
}
