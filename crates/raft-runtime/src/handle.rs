//! The caller's side of a running node: `RaftHandle`, and the requests it sends the node
//! task.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::Error;
use crate::reads::ReadResponder;
use raft_core::MembershipChange;
use raft_core::{LogId, LogIndex, Membership, NodeId, Role, Term};

/// Where the answer to a proposal goes: the response of the application, or why there is
/// none.
pub(crate) type Responder<R> = oneshot::Sender<Result<R, Error>>;

/// The node task, which ends with how the node stopped.
pub(crate) type NodeTask = JoinHandle<Result<(), Error>>;

/// A request from a handle to its node task.
pub(crate) enum Command<R> {
    /// Append a command and answer with the application's response once applied.
    Propose { payload: Bytes, responder: Responder<R> },
    /// Append a membership change and answer once applied.
    ChangeMembership { change: MembershipChange, responder: Responder<R> },
    /// Hand leadership to `target`.
    TransferLeader { target: NodeId, responder: oneshot::Sender<Result<(), Error>> },
    /// Confirm a linearizable read and answer once the application reached its index.
    ReadIndex { responder: ReadResponder },
    /// Report the node's state.
    Status { responder: oneshot::Sender<Status> },
    /// Snapshot the application and compact the log now.
    Snapshot,
    /// Stop the node.
    Shutdown,
}

/// A node's state as its task last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The node.
    pub node: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// The leader it knows of in `term`.
    pub leader: Option<NodeId>,
    /// Its last log entry.
    pub last_log_id: LogId,
    /// The highest index it knows is committed.
    pub commit_index: LogIndex,
    /// The highest index handed to the application (which may still be applying it).
    pub applied_index: LogIndex,
    /// The first index still in the log (everything before it is in the snapshot).
    pub first_index: LogIndex,
    /// The last entry the latest snapshot covers (`LogId::ZERO` without a snapshot).
    pub snapshot_last_log_id: LogId,
    /// The size of the latest snapshot's data in bytes (0 without a snapshot).
    pub snapshot_bytes: u64,
    /// The voters and learners in force on this node.
    pub membership: Membership,
}

/// A cloneable handle to a running node: propose commands, ask for its status, stop it.
///
/// Every call waits for the node task, through a bounded queue: when the node falls
/// behind, callers wait instead of queueing unbounded memory.
pub struct RaftHandle<R> {
    node: NodeId,
    commands: mpsc::Sender<Command<R>>,
    /// The node task, taken by the first `shutdown` to collect how it ended.
    task: Arc<Mutex<Option<NodeTask>>>,
}

impl<R> Clone for RaftHandle<R> {
    fn clone(&self) -> RaftHandle<R> {
        RaftHandle {
            node: self.node,
            commands: self.commands.clone(),
            task: Arc::clone(&self.task),
        }
    }
}

impl<R> std::fmt::Debug for RaftHandle<R> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("RaftHandle").field("node", &self.node).finish_non_exhaustive()
    }
}

impl<R: Send + 'static> RaftHandle<R> {
    pub(crate) fn new(
        node: NodeId,
        commands: mpsc::Sender<Command<R>>,
        task: NodeTask,
    ) -> RaftHandle<R> {
        RaftHandle { node, commands, task: Arc::new(Mutex::new(Some(task))) }
    }

    /// The node this handle drives.
    #[must_use]
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Proposes a command and waits until it is committed and applied here, returning the
    /// application's response.
    ///
    /// # Errors
    ///
    /// The core's refusals arrive as [`Error::Core`]:
    /// - [`raft_core::Error::NotLeader`] (with the leader this node knows of): retry there.
    ///   Also when the entry was overwritten by a newer leader's, so it certainly did not
    ///   commit.
    /// - [`raft_core::Error::TransferInProgress`]: retry shortly.
    /// - [`Error::ProposalOutcomeUnknown`]: leadership was lost with the entry in flight.
    /// - [`Error::NodeStopped`]: the node stopped; an in-flight proposal's outcome is
    ///   unknown.
    pub async fn propose(&self, payload: Bytes) -> Result<R, Error> {
        let (responder, response) = oneshot::channel();
        self.send(Command::Propose { payload, responder }).await?;
        response.await.map_err(|_| self.stopped())?
    }

    /// Proposes a membership change (one voter at a time) and waits until it is applied
    /// here, returning the application's response to the membership entry.
    ///
    /// # Errors
    ///
    /// As [`RaftHandle::propose`], and [`Error::Core`] with
    /// [`raft_core::Error::MembershipChangeNotReady`] or
    /// [`raft_core::Error::InvalidMembershipChange`] when the change is refused.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<R, Error> {
        let (responder, response) = oneshot::channel();
        self.send(Command::ChangeMembership { change, responder }).await?;
        response.await.map_err(|_| self.stopped())?
    }

    /// Starts handing leadership to `target`. Returns once the transfer started; watch
    /// [`RaftHandle::status`] for the new leader.
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with [`raft_core::Error::NotLeader`] or
    /// [`raft_core::Error::InvalidTransferTarget`]; [`Error::NodeStopped`].
    pub async fn transfer_leader(&self, target: NodeId) -> Result<(), Error> {
        let (responder, response) = oneshot::channel();
        self.send(Command::TransferLeader { target, responder }).await?;
        response.await.map_err(|_| self.stopped())?
    }

    /// Waits until a linearizable read may be served from this node's application: the
    /// leader confirmed it was still the leader after the call began (ReadIndex, or its
    /// lease with [`raft_core::ReadMode::Lease`]), and this node's application has applied
    /// everything committed before that. Returns the read index; read the application's
    /// state (through whatever shared access it offers) after this returns.
    ///
    /// Works on followers too: the read is confirmed by the leader and served locally.
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with [`raft_core::Error::NotLeader`] when no leader is known, or
    /// leadership changed before the read was confirmed, or no confirmation came within two
    /// election timeouts: retry (at the hinted leader if any); with
    /// [`raft_core::Error::TooManyPendingReads`]. [`Error::NodeStopped`].
    pub async fn read_index(&self) -> Result<LogIndex, Error> {
        let (responder, response) = oneshot::channel();
        self.send(Command::ReadIndex { responder }).await?;
        response.await.map_err(|_| self.stopped())?
    }

    /// The node's role, term, leader and log position.
    ///
    /// # Errors
    ///
    /// [`Error::NodeStopped`].
    pub async fn status(&self) -> Result<Status, Error> {
        let (responder, response) = oneshot::channel();
        self.send(Command::Status { responder }).await?;
        response.await.map_err(|_| self.stopped())
    }

    /// Asks the node to snapshot the application and compact its log now, whatever the
    /// log's size; returns once asked. The snapshot shows in [`RaftHandle::status`] when
    /// it is durable. A snapshot already being built (or nothing applied since the last
    /// one) makes this a no-op.
    ///
    /// # Errors
    ///
    /// [`Error::NodeStopped`].
    pub async fn snapshot(&self) -> Result<(), Error> {
        self.send(Command::Snapshot).await
    }

    /// Stops the node: it takes no more input, finishes the writes it queued (so nothing
    /// it acknowledged is lost) and the entries it handed to the application, then ends.
    ///
    /// Returns how the node ended: `Ok` for a clean stop, or the fatal error that stopped
    /// it earlier (the first caller gets it; later callers get `Ok`).
    ///
    /// # Errors
    ///
    /// The fatal error ([`Error::Storage`], [`Error::StateMachine`],
    /// [`Error::TransportClosed`]) that stopped the node, if one did.
    pub async fn shutdown(&self) -> Result<(), Error> {
        // A full queue or a stopped node both end up below: the node task ends either way.
        let _ = self.commands.send(Command::Shutdown).await;
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        match task {
            Some(task) => task.await.unwrap_or_else(|_| Err(self.stopped())),
            None => Ok(()),
        }
    }

    async fn send(&self, command: Command<R>) -> Result<(), Error> {
        self.commands.send(command).await.map_err(|_| self.stopped())
    }

    fn stopped(&self) -> Error {
        Error::NodeStopped { node: self.node }
    }
}
