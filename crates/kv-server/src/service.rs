//! Serving client requests: decode, route to the Raft node or the state machine, encode.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kv_client::protocol::{
    self, Consistency, KeyValue, Member, NodeStatus, Request, Response, ServerError, Session,
    WriteOutcome,
};
use kv_store::{Command, KvConfig, Rejection, SharedKvStore};
use raft_core::{Error as CoreError, LogIndex, MembershipChange, NodeId, Role};
use raft_net_quic::{Caller, QuicNode, RequestHandler};
use raft_runtime::Error as RaftError;
use raft_runtime::RaftHandle;
use tracing::{debug, info, warn};

use crate::metrics::ServerMetrics;

/// Keys under this prefix hold the cluster's address book (`<prefix><id>` → `HOST:PORT`),
/// replicated through the log like any write so every node, and every snapshot, knows
/// where members added at run time listen. Clients may not write them.
pub const PEER_ADDRESS_PREFIX: &[u8] = b"\0raft/peer/";

/// How long an administrative request waits for its effect (a transfer to complete, a
/// snapshot to be durable).
const ADMIN_WAIT_MAX: Duration = Duration::from_secs(5);

/// Where the node's peers listen, shared between the service and the address-book sync.
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
}

impl RequestHandler for Service {
    async fn handle(&self, caller: Caller, request: Bytes) -> Bytes {
        let started = Instant::now();
        let (command, response) = match protocol::decode::<Request>(&request) {
            Ok(request) => {
                debug!(%caller, kind = request.kind(), "request");
                (request.kind(), self.serve(request).await)
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
    async fn serve(&self, request: Request) -> Response {
        if self.stopping.load(Ordering::Relaxed) {
            let reason = "the node is shutting down".to_owned();
            return Response::Error(ServerError::Unavailable { reason });
        }
        let result = match request {
            Request::Put { key, value, expect_version, session } => {
                let write = kv_store::Request::Put { key, value, expect_version };
                self.write(write, session, false).await
            }
            Request::Delete { key, expect_version, session } => {
                let write = kv_store::Request::Delete { key, expect_version };
                self.write(write, session, false).await
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

    /// Proposes a write and waits for it to apply. `internal` writes may use the reserved
    /// prefix.
    async fn write(
        &self,
        request: kv_store::Request,
        session: Session,
        internal: bool,
    ) -> Result<Response, ServerError> {
        if !internal && request.key().starts_with(PEER_ADDRESS_PREFIX) {
            let reason = "keys starting with \\0raft/ are reserved for the cluster".to_owned();
            return Err(ServerError::Invalid { reason });
        }
        self.kv_config.validate_request(&request).map_err(refusal)?;
        let command = Command { client_id: session.client_id, sequence: session.sequence, request };
        let payload = command.encode().map_err(|error| internal_error(&error))?;
        let applied = self.raft.propose(payload).await.map_err(|error| self.raft_error(error))?;
        let leader = self.id.0;
        match applied {
            kv_store::Response::Written(written) => Ok(Response::Written(WriteOutcome {
                index: written.index.0,
                version: written.version,
                existed: written.previous.is_some(),
                leader,
            })),
            kv_store::Response::Deleted(deleted) => Ok(Response::Written(WriteOutcome {
                index: deleted.index.0,
                version: 0,
                existed: deleted.previous.is_some(),
                leader,
            })),
            kv_store::Response::Conflict { current_version } => {
                Err(ServerError::Conflict { current_version })
            }
            kv_store::Response::Rejected(rejection) => Err(rejected(rejection)),
            other => {
                Err(ServerError::Internal { reason: format!("unexpected apply result {other:?}") })
            }
        }
    }

    /// Waits until this node may serve a read of the given consistency.
    async fn read_barrier(&self, consistency: Consistency) -> Result<u64, ServerError> {
        match consistency {
            Consistency::Linearizable => {
                let index = self.raft.read_index().await.map_err(|error| self.raft_error(error))?;
                Ok(index.0)
            }
            Consistency::Stale => Ok(self.kv.applied_index().0),
        }
    }

    async fn get(&self, key: Bytes, consistency: Consistency) -> Result<Response, ServerError> {
        let request = kv_store::Request::Get { key };
        self.kv_config.validate_request(&request).map_err(refusal)?;
        let index = self.read_barrier(consistency).await?;
        match self.kv.read(&request) {
            kv_store::Response::Value(found) => {
                Ok(Response::Value { found: found.map(key_value), index })
            }
            kv_store::Response::Rejected(rejection) => Err(rejected(rejection)),
            other => {
                Err(ServerError::Internal { reason: format!("unexpected read result {other:?}") })
            }
        }
    }

    async fn range(
        &self,
        prefix: Bytes,
        limit: u32,
        consistency: Consistency,
    ) -> Result<Response, ServerError> {
        let request = kv_store::Request::Range { prefix, limit: NonZeroU32::new(limit) };
        self.kv_config.validate_request(&request).map_err(refusal)?;
        let index = self.read_barrier(consistency).await?;
        match self.kv.read(&request) {
            kv_store::Response::Range(range) => {
                let entries = range
                    .entries
                    .into_iter()
                    .filter(|entry| !entry.key.starts_with(PEER_ADDRESS_PREFIX))
                    .map(key_value)
                    .collect();
                Ok(Response::Range { entries, more: range.more, index })
            }
            kv_store::Response::Rejected(rejection) => Err(rejected(rejection)),
            other => {
                Err(ServerError::Internal { reason: format!("unexpected read result {other:?}") })
            }
        }
    }

    async fn status(&self) -> Result<Response, ServerError> {
        let status = self.raft.status().await.map_err(|error| self.raft_error(error))?;
        let learner = status.membership.learners.contains(&status.node);
        let role = if learner { "learner".to_owned() } else { role_name(status.role).to_owned() };
        let keys = self.kv.with_read(|store| store.len() as u64);
        Ok(Response::Status(NodeStatus {
            id: status.node.0,
            role,
            term: status.term.0,
            leader: status.leader.map(|leader| leader.0),
            commit_index: status.commit_index.0,
            applied_index: status.applied_index.0,
            log_first_index: status.first_index.0,
            log_last_index: status.last_log_id.index.0,
            snapshot_index: status.snapshot_last_log_id.index.0,
            snapshot_bytes: status.snapshot_bytes,
            keys,
        }))
    }

    /// The members as the leader sees them (a follower may not have the latest change yet).
    async fn members(&self) -> Result<Response, ServerError> {
        let status = self.require_leader().await?;
        let addresses = self.addresses.read().unwrap_or_else(PoisonError::into_inner).clone();
        let address = |id: &NodeId| addresses.get(id).map(ToString::to_string);
        let voters = status.membership.voters.iter().map(|id| Member {
            id: id.0,
            addr: address(id),
            voter: true,
        });
        let learners = status.membership.learners.iter().map(|id| Member {
            id: id.0,
            addr: address(id),
            voter: false,
        });
        let members = voters.chain(learners).collect();
        Ok(Response::Members { members, leader: status.leader.map(|leader| leader.0) })
    }

    /// Adds a member: records its address in the replicated address book, adds it as a
    /// learner (it catches up without voting), then promotes it to voter.
    async fn add_member(
        &self,
        id: u64,
        addr: &str,
        learner: bool,
    ) -> Result<Response, ServerError> {
        let node = NodeId(id);
        if id == 0 {
            return Err(ServerError::Invalid { reason: "node ids start at 1".to_owned() });
        }
        let parsed: SocketAddr = addr.parse().map_err(|_| ServerError::Invalid {
            reason: format!("{addr:?} is not HOST:PORT with an IP address"),
        })?;
        self.require_leader().await?;
        let mut key = PEER_ADDRESS_PREFIX.to_vec();
        key.extend_from_slice(id.to_string().as_bytes());
        let record = kv_store::Request::Put {
            key: Bytes::from(key),
            value: Bytes::from(parsed.to_string()),
            expect_version: None,
        };
        let session = Session { client_id: rand::random(), sequence: 1 };
        self.write(record, session, true).await?;
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
        Ok(Response::Done { leader: Some(self.id.0), index: index.0 })
    }

    async fn remove_member(&self, id: u64) -> Result<Response, ServerError> {
        self.require_leader().await?;
        info!(node = id, "removing member");
        self.raft
            .change_membership(MembershipChange::Remove(NodeId(id)))
            .await
            .map_err(|error| self.raft_error(error))?;
        let status = self.raft.status().await.map_err(|error| self.raft_error(error))?;
        Ok(Response::Done {
            leader: status.leader.map(|leader| leader.0),
            index: status.commit_index.0,
        })
    }

    async fn transfer(&self, target: Option<u64>) -> Result<Response, ServerError> {
        let status = self.require_leader().await?;
        let target = match target {
            Some(target) => NodeId(target),
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
                return Ok(Response::Done { leader: Some(target.0), index: status.commit_index.0 });
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
                return Ok(Response::Done { leader: status.leader.map(|l| l.0), index: index.0 });
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
        let addr = leader.and_then(|leader| addresses.get(&leader)).map(ToString::to_string);
        ServerError::NotLeader { leader: leader.map(|leader| leader.0), addr }
    }

    fn raft_error(&self, error: RaftError) -> ServerError {
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

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre_candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

fn key_value(entry: kv_store::KeyValue) -> KeyValue {
    KeyValue {
        key: entry.key,
        value: entry.value,
        version: entry.meta.version,
        create_index: entry.meta.create_index.0,
        mod_index: entry.meta.mod_index.0,
    }
}

fn internal_error(error: &dyn std::error::Error) -> ServerError {
    ServerError::Internal { reason: error.to_string() }
}

/// A request the state machine's limits refuse before it is proposed.
fn refusal(error: kv_store::Error) -> ServerError {
    match error {
        kv_store::Error::CommandRefused { source } => rejected(source),
        other => ServerError::Invalid { reason: other.to_string() },
    }
}

fn rejected(rejection: Rejection) -> ServerError {
    match rejection {
        Rejection::KeyTooLarge { bytes, max } => {
            ServerError::TooLarge { what: "key".to_owned(), bytes, max }
        }
        Rejection::ValueTooLarge { bytes, max } => {
            ServerError::TooLarge { what: "value".to_owned(), bytes, max }
        }
        Rejection::StaleSequence { .. } | Rejection::SessionExpired { .. } => {
            ServerError::SessionExpired { reason: rejection.to_string() }
        }
        other => ServerError::Invalid { reason: other.to_string() },
    }
}
