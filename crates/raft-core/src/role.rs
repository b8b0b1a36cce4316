//! A node's role together with the state that exists only in that role.
//!
//! Leader-only state (each follower's progress, waiting reads, a leadership transfer, the
//! heartbeat timer) lives in [`LeaderState`] and a campaign's votes in [`Votes`], so they
//! cannot outlive the role: stepping down drops them, and no code path can read a stale
//! leader's progress on a follower.

use std::collections::BTreeMap;

use crate::progress::Progress;
use crate::quorum::Votes;
use crate::reads::ReadTracker;
use crate::types::{NodeId, Role};

/// A node's role and its role-only state.
#[derive(Debug)]
pub(crate) enum RoleState {
    /// Follows `leader`, or waits for one when `None`.
    Follower {
        /// The leader of the current term this node knows of.
        leader: Option<NodeId>,
    },
    /// Asks for pre-votes; holds the answers so far.
    PreCandidate(Votes),
    /// Asks for votes in its own term; holds the answers so far.
    Candidate(Votes),
    /// Leads the current term.
    Leader(LeaderState),
}

impl RoleState {
    /// The role without its state.
    pub(crate) fn role(&self) -> Role {
        match self {
            RoleState::Follower { .. } => Role::Follower,
            RoleState::PreCandidate(_) => Role::PreCandidate,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }
}

/// What only a leader knows and does.
#[derive(Debug)]
pub(crate) struct LeaderState {
    /// The leader's view of each other member.
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// The leader has entries or a commit index to send at the next `ready()`.
    pub(crate) replication_pending: bool,
    /// Reads waiting for confirmation, and the send ticks of heartbeat rounds.
    pub(crate) reads: ReadTracker,
    /// The leadership transfer under way, if any.
    pub(crate) transfer: Option<Transfer>,
    /// Ticks since the last heartbeat.
    pub(crate) heartbeat_elapsed_ticks: u64,
}

impl LeaderState {
    /// The state of a leader that just won, with the given view of its followers.
    pub(crate) fn new(progress: BTreeMap<NodeId, Progress>) -> LeaderState {
        LeaderState {
            progress,
            replication_pending: false,
            reads: ReadTracker::default(),
            transfer: None,
            heartbeat_elapsed_ticks: 0,
        }
    }
}

/// A leadership transfer under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transfer {
    pub(crate) target: NodeId,
    /// Leader ticks since the transfer began.
    pub(crate) elapsed_ticks: u64,
    /// TimeoutNow was sent.
    pub(crate) timeout_now_sent: bool,
}
