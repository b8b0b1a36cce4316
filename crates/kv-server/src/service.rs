//! Serving client requests: decode, route to the Raft node or the state machine, encode.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kv_client::protocol::{
    self, Command, Consistency, LeaseTtl, Member, NodeStatus, Request, Response, ServerError,
    Session, Write, WriteOutcome,
};
use kv_store::{KvConfig, SharedKvStore};
use raft_core::{Error as CoreError, LogIndex, MembershipChange, NodeId, Role};
use raft_net_quic::{Caller, QuicNode, RequestHandler};
use raft_runtime::Error as RaftError;
use raft_runtime::RaftHandle;
use tracing::{debug, info, warn};

use crate::etcd::LeaseClock;
use crate::in_flight::SharedInFlightWrites;
use crate::metrics::ServerMetrics;

/// How long an administrative request waits for its effect (a transfer to complete, a
/// snapshot to be durable).
const ADMIN_WAIT_MAX: Duration = Duration::from_secs(5);

/// How far ahead of this node's clock a new session's start time (in its client id) may
/// be. The store refuses every session at or below the highest client id it evicted, so
/// a session dated far ahead would, once evicted, refuse every new session until the
/// clocks caught up with it; a minute covers clocks that are merely unsynchronized.
const SESSION_START_AHEAD_MAX_SECONDS: u64 = 60;

/// Refuses a session's first write when its client id dates it more than
/// [`SESSION_START_AHEAD_MAX_SECONDS`] after `now_unix_seconds`.
fn check_session_start(session: Session, now_unix_seconds: u64) -> Result<(), ServerError> {
    let started = session.started_at_unix_seconds();
    let latest = now_unix_seconds.saturating_add(SESSION_START_AHEAD_MAX_SECONDS);
    if session.sequence == 1 && started > latest {
        let ahead = started - now_unix_seconds;
        let reason = format!(
            "client id {} dates its session {ahead} s after this node's clock (at most \
             {SESSION_START_AHEAD_MAX_SECONDS} s allowed); fix the client's clock",
            session.client_id
        );
        return Err(ServerError::Invalid { reason });
    }
    Ok(())
}

/// Whether `write` is a put or a delete, the writes [`Request::Write`] answers with a
/// [`WriteOutcome`]; etcd's transactions, compactions and leases go through
/// [`Request::Apply`].
fn is_put_or_delete(write: &Write) -> bool {
    matches!(write, Write::Put { .. } | Write::Delete { .. })
}

fn unix_seconds_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Where the node's peers listen, shared between the service and the address-book sync:
/// the `--peers` list, then what the replicated member address book (kv-store's
/// `SetMemberAddress` commands) adds.
pub type AddressBook = Arc<RwLock<BTreeMap<NodeId, SocketAddr>>>;

/// The request handler a node serves clients with.
#[derive(Clone)]
pub struct Service {
    pub(crate) id: NodeId,
    pub(crate) raft: RaftHandle<kv_store::Response>,
    pub(crate) kv: SharedKvStore,
    pub(crate) kv_config: KvConfig,
    pub(crate) addresses: AddressBook,
    pub(crate) quic: Arc<QuicNode>,
    pub(crate) metrics: Arc<ServerMetrics>,
    pub(crate) stopping: Arc<AtomicBool>,
    /// User writes being proposed, so a retry joins its original.
    pub(crate) in_flight: SharedInFlightWrites,
    /// The leader's lease countdowns (etcd's leases).
    pub(crate) leases: Arc<LeaseClock>,
}

impl RequestHandler for Service {
    async fn handle(&self, caller: Caller, request: Bytes) -> Bytes {
        let started = Instant::now();
        // A write's key and value stay slices of the request while it is served (the
        // proposal is a fresh encoding, so nothing keeps them afterwards).
        let decoded = kv_store::decode_sharing(&request, || protocol::decode::<Request>(&request));
        let (command, response) = match decoded {
            Ok(request) => {
                debug!(%caller, kind = request.kind(), "request");
                (request.kind(), self.serve(request, started).await)
            }
            Err(error) => {
                warn!(%caller, %error, bytes = request.len(), "undecodable request");
                let reason = format!("undecodable request of {} bytes: {error}", request.len());
                ("undecodable", Response::Error(ServerError::Invalid { reason }))
            }
        };
        let outcome = match &response {
            Response::Error(error) => error_kind(error),
            _ => "ok",
        };
        self.metrics.observe_request(command, outcome, started.elapsed());
        protocol::encode(&response).unwrap_or_default()
    }
}

/// A short name for an error, for metrics.
fn error_kind(error: &ServerError) -> &'static str {
    match error {
        ServerError::NotLeader { .. } => "not_leader",
        ServerError::Conflict { .. } => "conflict",
        ServerError::TooLarge { .. } => "too_large",
        ServerError::Invalid { .. } => "invalid",
        ServerError::Unavailable { .. } => "unavailable",
        ServerError::OutcomeUnknown { .. } => "outcome_unknown",
        ServerError::SessionExpired { .. } => "session_expired",
        ServerError::Internal { .. } => "internal",
    }
}

impl Service {
    async fn serve(&self, request: Request, received: Instant) -> Response {
        if self.stopping.load(Ordering::Relaxed) {
            let reason = "the node is shutting down".to_owned();
            return Response::Error(ServerError::Unavailable { reason });
        }
        let result = match request {
            Request::Write(command) if is_put_or_delete(&command.write) => {
                self.write_user(command, None).await
            }
            Request::WriteWithin { command, timeout_ms } if is_put_or_delete(&command.write) => {
                let deadline = received + Duration::from_millis(u64::from(timeout_ms));
                self.write_user(command, Some(deadline)).await
            }
            Request::Apply { command, timeout_ms } if command.write.is_user_write() => {
                let deadline = received + Duration::from_millis(u64::from(timeout_ms));
                let response = self.propose_once(command, Some(deadline)).await;
                response.map(|response| Response::Applied { response, leader: self.id })
            }
            Request::Lease { id, keep_alive } => {
                self.lease_ttl(id, keep_alive).await.map(Response::Lease)
            }
            Request::Write(command)
            | Request::WriteWithin { command, .. }
            | Request::Apply { command, .. } => {
                let reason = if command.write.is_user_write() {
                    format!("a {} is answered only through Request::Apply", command.write.kind())
                } else {
                    format!(
                        "a {} changes the cluster's address book; use member add or remove",
                        command.write.kind()
                    )
                };
                Err(ServerError::Invalid { reason })
            }
            Request::Get { key, consistency } => self.get(key, consistency).await,
            Request::Range { prefix, limit, consistency } => {
                self.range(prefix, limit, consistency).await
            }
            Request::Status => self.status().await,
            Request::MemberList => self.members().await,
            Request::MemberAdd { id, addr, learner } => self.add_member(id, &addr, learner).await,
            Request::MemberRemove { id } => self.remove_member(id).await,
            Request::LeaderTransfer { target } => self.transfer(target).await,
            Request::Snapshot => self.snapshot().await,
        };
        result.unwrap_or_else(Response::Error)
    }

    /// Proposes a client's put or delete, exactly as the client built it, and waits for it
    /// to apply. A retry of a write still in flight here waits for the original instead of
    /// proposing it again. Past `deadline` (the client gave up) the write is not proposed.
    async fn write_user(
        &self,
        command: Command,
        deadline: Option<Instant>,
    ) -> Result<Response, ServerError> {
        let applied = self.propose_once(command, deadline).await?;
        WriteOutcome::from_applied(applied, self.id).map(Response::Written)
    }

    /// Proposes a client's user write under its session, once however often it is retried
    /// while in flight, and returns the state machine's answer: the shared path of
    /// [`Request::Write`], [`Request::WriteWithin`] and [`Request::Apply`] (a follower's
    /// etcd API forwarding).
    async fn propose_once(
        &self,
        command: Command,
        deadline: Option<Instant>,
    ) -> Result<kv_store::Response, ServerError> {
        self.kv_config.validate_write(&command.write)?;
        check_session_start(command.session, unix_seconds_now())?;
        let proposal = self.propose_before(&command, deadline);
        self.in_flight.run_once(command.session, proposal).await
    }

    /// Lease `id`'s time to live as this node, the leader, counts it; with `keep_alive`,
    /// its countdown restarts first.
    pub(crate) async fn lease_ttl(
        &self,
        id: i64,
        keep_alive: bool,
    ) -> Result<LeaseTtl, ServerError> {
        self.require_leader().await?;
        let lease = self.kv.lease(id);
        let now = tokio::time::Instant::now();
        Ok(if keep_alive {
            self.leases.keep_alive(id, lease.as_ref(), now)
        } else {
            self.leases.time_to_live(id, lease.as_ref(), now)
        })
    }

    /// Whether the node is shutting down (requests are refused).
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Proposes a command (checked by the caller) unless `deadline` passed, and waits for
    /// it to apply, at most until `deadline`.
    async fn propose_before(
        &self,
        command: &Command,
        deadline: Option<Instant>,
    ) -> Result<kv_store::Response, ServerError> {
        let Some(deadline) = deadline else {
            return self.propose_valid(command).await;
        };
        if Instant::now() >= deadline {
            debug!(client_id = command.session.client_id, "dropped a write past its deadline");
            let reason = "the client's deadline passed before the write was proposed".to_owned();
            return Err(ServerError::Unavailable { reason });
        }
        // Dropping the proposal while it waits to reach the Raft task drops it unproposed.
        let deadline = tokio::time::Instant::from_std(deadline);
        tokio::time::timeout_at(deadline, self.propose_valid(command)).await.unwrap_or_else(|_| {
            let reason = "the client's deadline passed with the write in flight".to_owned();
            Err(ServerError::OutcomeUnknown { reason })
        })
    }

    /// Checks a command against the store's limits, proposes it and waits for it to apply.
    pub(crate) async fn propose(
        &self,
        command: &Command,
    ) -> Result<kv_store::Response, ServerError> {
        self.kv_config.validate_write(&command.write)?;
        self.propose_valid(command).await
    }

    /// Proposes a command already checked against the store's limits and waits for it to
    /// apply.
    async fn propose_valid(&self, command: &Command) -> Result<kv_store::Response, ServerError> {
        let payload = command.encode()?;
        self.raft.propose(payload).await.map_err(|error| self.raft_error(error))
    }

    /// Proposes a change to the member address book under a session of its own, and
    /// waits for it to apply.
    async fn update_member_address(&self, write: Write) -> Result<(), ServerError> {
        let session = Session { client_id: protocol::new_session_client_id(), sequence: 1 };
        match self.propose(&Command { session, write }).await? {
            kv_store::Response::MemberAddressUpdated { .. } => Ok(()),
            kv_store::Response::Rejected(rejection) => Err(rejection.into()),
            other => Err(ServerError::Internal {
                reason: format!("a member address change was answered with {other:?}"),
            }),
        }
    }

    /// Waits until this node may serve a read of the given consistency.
    pub(crate) async fn read_barrier(
        &self,
        consistency: Consistency,
    ) -> Result<LogIndex, ServerError> {
        match consistency {
            Consistency::Linearizable => {
                self.raft.read_index().await.map_err(|error| self.raft_error(error))
            }
            Consistency::Stale => Ok(self.kv.applied_index()),
        }
    }

    async fn get(&self, key: Bytes, consistency: Consistency) -> Result<Response, ServerError> {
        self.kv_config.validate_key(&key)?;
        let index = self.read_barrier(consistency).await?;
        Ok(Response::Value { found: self.kv.get(&key), index })
    }

    async fn range(
        &self,
        prefix: Bytes,
        limit: u32,
        consistency: Consistency,
    ) -> Result<Response, ServerError> {
        self.kv_config.validate_key(&prefix)?;
        let index = self.read_barrier(consistency).await?;
        let range = self.kv.range(&prefix, NonZeroU32::new(limit));
        Ok(Response::Range { entries: range.entries, more: range.more, index })
    }

    async fn status(&self) -> Result<Response, ServerError> {
        let status = self.raft.status().await.map_err(|error| self.raft_error(error))?;
        let learner = status.membership.learners.contains(&status.node);
        let keys = self.kv.with_read(|store| store.len() as u64);
        Ok(Response::Status(NodeStatus {
            id: status.node,
            role: status.role,
            learner,
            term: status.term,
            leader: status.leader,
            commit_index: status.commit_index,
            applied_index: status.applied_index,
            log_first_index: status.first_index,
            log_last_index: status.last_log_id.index,
            snapshot_index: status.snapshot_last_log_id.index,
            snapshot_bytes: status.snapshot_bytes,
            keys,
        }))
    }

    /// The members as the leader sees them (a follower may not have the latest change yet).
    async fn members(&self) -> Result<Response, ServerError> {
        let status = self.require_leader().await?;
        let addresses = self.addresses.read().unwrap_or_else(PoisonError::into_inner).clone();
        let address = |id: &NodeId| addresses.get(id).copied();
        let voters = status.membership.voters.iter().map(|&id| Member {
            id,
            addr: address(&id),
            voter: true,
        });
        let learners = status.membership.learners.iter().map(|&id| Member {
            id,
            addr: address(&id),
            voter: false,
        });
        let members = voters.chain(learners).collect();
        Ok(Response::Members { members, leader: status.leader })
    }

    /// Adds a member: records its address in the replicated address book, adds it as a
    /// learner (it catches up without voting), then promotes it to voter.
    async fn add_member(
        &self,
        node: NodeId,
        addr: &str,
        learner: bool,
    ) -> Result<Response, ServerError> {
        if node == NodeId(0) {
            return Err(ServerError::Invalid { reason: "node ids start at 1".to_owned() });
        }
        let parsed: SocketAddr = addr.parse().map_err(|_| ServerError::Invalid {
            reason: format!("{addr:?} is not HOST:PORT with an IP address"),
        })?;
        self.require_leader().await?;
        self.update_member_address(Write::SetMemberAddress { node, addr: parsed }).await?;
        self.quic.set_peer(node, parsed);
        self.addresses.write().unwrap_or_else(PoisonError::into_inner).insert(node, parsed);
        let status = self.raft.status().await.map_err(|error| self.raft_error(error))?;
        let mut index = LogIndex::ZERO;
        if !status.membership.contains(node) {
            info!(%node, %parsed, "adding learner");
            self.raft
                .change_membership(MembershipChange::AddLearner(node))
                .await
                .map_err(|error| self.raft_error(error))?;
            index = self.raft.status().await.map_err(|error| self.raft_error(error))?.commit_index;
        }
        if !learner {
            info!(%node, "promoting to voter");
            self.raft
                .change_membership(MembershipChange::AddVoter(node))
                .await
                .map_err(|error| self.raft_error(error))?;
            index = self.raft.status().await.map_err(|error| self.raft_error(error))?.commit_index;
        }
        Ok(Response::Done { leader: Some(self.id), index })
    }

    /// Removes a member, then (best effort) its address from the replicated address book,
    /// so the book holds only members and stays within its bound.
    async fn remove_member(&self, node: NodeId) -> Result<Response, ServerError> {
        self.require_leader().await?;
        info!(%node, "removing member");
        self.raft
            .change_membership(MembershipChange::Remove(node))
            .await
            .map_err(|error| self.raft_error(error))?;
        let status = self.raft.status().await.map_err(|error| self.raft_error(error))?;
        // A leader that removed itself no longer leads, and the next leader keeps the
        // stale address harmlessly; the removal itself has succeeded either way.
        if let Err(error) = self.update_member_address(Write::RemoveMemberAddress { node }).await {
            debug!(%node, ?error, "kept a removed member's address");
        }
        Ok(Response::Done { leader: status.leader, index: status.commit_index })
    }

    async fn transfer(&self, target: Option<NodeId>) -> Result<Response, ServerError> {
        let status = self.require_leader().await?;
        let target = match target {
            Some(target) => target,
            None => status
                .membership
                .voters
                .iter()
                .copied()
                .find(|&voter| voter != self.id)
                .ok_or_else(|| ServerError::Invalid {
                    reason: "there is no other voter to hand leadership to".to_owned(),
                })?,
        };
        self.raft.transfer_leader(target).await.map_err(|error| self.raft_error(error))?;
        let deadline = Instant::now() + ADMIN_WAIT_MAX;
        while Instant::now() < deadline {
            let status = self.raft.status().await.map_err(|error| self.raft_error(error))?;
            if status.leader == Some(target) {
                return Ok(Response::Done { leader: Some(target), index: status.commit_index });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let reason = format!("node {target} did not take over within {ADMIN_WAIT_MAX:?}");
        Err(ServerError::Unavailable { reason })
    }

    async fn snapshot(&self) -> Result<Response, ServerError> {
        let before = self.raft.status().await.map_err(|error| self.raft_error(error))?;
        self.raft.snapshot().await.map_err(|error| self.raft_error(error))?;
        let deadline = Instant::now() + ADMIN_WAIT_MAX;
        while Instant::now() < deadline {
            let status = self.raft.status().await.map_err(|error| self.raft_error(error))?;
            let index = status.snapshot_last_log_id.index;
            if index > before.snapshot_last_log_id.index || index >= before.applied_index {
                return Ok(Response::Done { leader: status.leader, index });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let reason = format!("no snapshot was durable within {ADMIN_WAIT_MAX:?}");
        Err(ServerError::Unavailable { reason })
    }

    async fn require_leader(&self) -> Result<raft_runtime::Status, ServerError> {
        let status = self.raft.status().await.map_err(|error| self.raft_error(error))?;
        if status.role != Role::Leader {
            return Err(self.not_leader(status.leader));
        }
        Ok(status)
    }

    fn not_leader(&self, leader: Option<NodeId>) -> ServerError {
        let addresses = self.addresses.read().unwrap_or_else(PoisonError::into_inner);
        let addr = leader.and_then(|leader| addresses.get(&leader)).copied();
        ServerError::NotLeader { leader, addr }
    }

    /// The one place a Raft error becomes a wire error (the store's refusals convert with
    /// `From`, in kv-client's protocol module); a "not leader" names the leader's address
    /// from this node's address book.
    pub(crate) fn raft_error(&self, error: RaftError) -> ServerError {
        match error {
            RaftError::Core(CoreError::NotLeader { leader_hint }) => self.not_leader(leader_hint),
            RaftError::ProposalOutcomeUnknown { .. } => {
                ServerError::OutcomeUnknown { reason: error.to_string() }
            }
            RaftError::Core(
                CoreError::TransferInProgress { .. }
                | CoreError::TooManyPendingReads { .. }
                | CoreError::MembershipChangeNotReady { .. },
            )
            | RaftError::TooManyPendingProposals { .. }
            | RaftError::NodeStopped { .. } => {
                ServerError::Unavailable { reason: error.to_string() }
            }
            RaftError::Core(
                CoreError::InvalidMembershipChange { .. } | CoreError::InvalidTransferTarget { .. },
            ) => ServerError::Invalid { reason: error.to_string() },
            other => ServerError::Internal { reason: other.to_string() },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_session_dated_far_after_this_nodes_clock_is_refused() {
        let now = 1_800_000_000;
        let session =
            |seconds, sequence| Session { client_id: Session::client_id_at(seconds, 5), sequence };
        assert!(check_session_start(session(now + 30, 1), now).is_ok(), "unsynchronized");
        assert!(check_session_start(session(now - 3600, 1), now).is_ok(), "an old session");
        let refused = check_session_start(session(now + 3600, 1), now).unwrap_err();
        assert!(matches!(&refused, ServerError::Invalid { reason } if reason.contains("3600 s")));
        // Later writes of a session the store holds are its business.
        assert!(check_session_start(session(now + 3600, 2), now).is_ok());
    }
}
