//! etcd's v3 gRPC API, so `etcdctl` and etcd's client libraries work against a node
//! unchanged.
//!
//! ```text
//!   etcdctl / etcd-client ──gRPC (HTTP/2, --etcd-listen)──> EtcdApi
//!      KV: Range ── ReadIndex ──> KvStore::range_at           (serializable: no ReadIndex)
//!          Put / DeleteRange / Txn / Compact ──> one kv-store Write ──propose──> Raft log
//!      Watch ──> per stream: a task that reads KvStore::events_since on every applied batch
//!      Lease ──> grant / revoke through the log; countdowns on the leader (LeaseClock)
//!      Cluster, Maintenance ──> member list, status, snapshot, alarms (none), move-leader
//! ```
//!
//! Every write becomes a kv-store [`Write`](kv_store::Write): `Put` and `DeleteRange` are
//! one-operation transactions, so the state machine has a single etcd write path. On the
//! leader a write is proposed without a client session (etcd has none); a follower
//! forwards it to the leader over the cluster's QUIC transport with the node's own
//! certificate, under a session, so a retried forward applies once. Reads are served by
//! whichever node is asked, after a ReadIndex unless `serializable`.
//!
//! Leases expire by the leader's clock alone: it counts each lease down and proposes a
//! revoke when one runs out. A new leader starts every countdown afresh, so a failover
//! extends leases and never expires a live one early. Keep-alives on a follower are
//! forwarded to the leader.
//!
//! What is not implemented answers `Unimplemented` with a message saying so:
//! authentication (the API has no users or roles), member add/remove/update/promote
//! (use `kvctl member`), defragment, hash, hash-kv and downgrade.

mod cluster;
mod convert;
mod kv;
mod lease;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use etcd_client::proto::{
    PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbResponseHeader,
    PbWatchServer,
};
use kv_client::protocol::{Consistency, ServerError};
use kv_client::{ClientConfig, KvClient};
use kv_store::{Command, Rejection, Session, Write};
use raft_core::NodeId;
use raft_net_quic::{Caller, certs};
use tokio::sync::watch as tokio_watch;
use tokio::task::JoinHandle;
use tonic::Status;
use tracing::{error, info};

use crate::config::ServerConfig;
use crate::service::Service;

pub use lease::LeaseClock;
pub(crate) use lease::run_lease_countdowns;

/// etcd's default gRPC port is the listen port plus this, unless `--etcd-listen` is given
/// (7001 → 7201), so nodes started with only `--listen` do not collide.
pub const ETCD_PORT_OFFSET: u16 = 200;

/// The version `Maintenance.Status` reports: the etcd API level served, which clients
/// use to decide what they may ask for.
pub const API_VERSION: &str = "3.5.0";

/// The most one forwarded write may take.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What every etcd service of a node shares.
#[derive(Clone)]
pub(crate) struct EtcdApi {
    inner: Arc<Inner>,
}

struct Inner {
    /// The node's client service: proposing, ReadIndex, the address book, status.
    service: Service,
    /// etcd's cluster id: a hash of the cluster's name, the same on every node.
    cluster_id: u64,
    /// The term last seen, for response headers (refreshed by the lease countdowns).
    term: Arc<AtomicU64>,
    /// The store's revision after every applied batch: wakes the watch streams.
    revisions: tokio_watch::Receiver<u64>,
    /// Forwards writes and keep-alives from a follower to the leader.
    forward: KvClient,
    /// This node's own etcd address, for the member list.
    listen: SocketAddr,
    /// Where the certificates are, for errors.
    certs_dir: std::path::PathBuf,
}

impl EtcdApi {
    /// The API of a node: `service` serves its client requests (its lease clock counts
    /// leases down); `term` is kept up to date by [`run_lease_countdowns`].
    pub(crate) fn new(
        config: &ServerConfig,
        listen: SocketAddr,
        service: Service,
        term: Arc<AtomicU64>,
    ) -> Result<EtcdApi, crate::Error> {
        let identity = certs::load_node(&config.certs_dir, config.id).map_err(|source| {
            crate::Error::Certificates {
                node: config.id.0,
                dir: config.certs_dir.clone(),
                source: Box::new(source),
            }
        })?;
        let mut client_config = ClientConfig::from_identity(
            config.peers.values().copied().collect(),
            config.cluster_id.clone(),
            Caller::Node(config.id),
            identity,
        );
        client_config.timeout = FORWARD_TIMEOUT;
        let forward =
            KvClient::new(client_config).map_err(|error| crate::Error::InvalidSetting {
                setting: "peers",
                value: format!("{:?}", config.peers),
                rule: format!("cannot forward etcd writes to the leader: {error}"),
            })?;
        let (revision_sender, revisions) = tokio_watch::channel(service.kv.revision());
        service.kv.set_apply_listener(Arc::new(move |revision| {
            revision_sender.send_replace(revision);
        }));
        let inner = Inner {
            cluster_id: cluster_id_of(&config.cluster_id),
            service,
            term,
            revisions,
            forward,
            listen,
            certs_dir: config.certs_dir.clone(),
        };
        Ok(EtcdApi { inner: Arc::new(inner) })
    }

    /// Serves every etcd service on `listener` until the task is aborted, over `tls` when
    /// given.
    pub(crate) fn serve(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<tonic::transport::ServerTlsConfig>,
    ) -> Result<JoinHandle<()>, crate::Error> {
        // Replies are small and latency-bound: without TCP_NODELAY a reply queued behind
        // unacknowledged bytes waits for the client's delayed ACK (40 ms on Linux).
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).map_err(|error| crate::Error::EtcdTls {
                path: self.inner.certs_dir.clone(),
                reason: error.to_string(),
            })?;
        }
        let router = builder
            .add_service(PbKvServer::new(self.clone()))
            .add_service(PbWatchServer::new(self.clone()))
            .add_service(PbLeaseServer::new(self.clone()))
            .add_service(PbClusterServer::new(self.clone()))
            .add_service(PbMaintenanceServer::new(self));
        Ok(tokio::spawn(async move {
            if let Err(error) = router.serve_with_incoming(incoming).await {
                error!(%error, "the etcd API stopped");
            }
        }))
    }

    fn service(&self) -> &Service {
        &self.inner.service
    }

    fn id(&self) -> NodeId {
        self.inner.service.id
    }

    /// Runs one call of the etcd API and records it in the node's request metrics
    /// (`kv_requests_total` and the latency histogram) as `etcd_<method>`, with its gRPC
    /// status code as the outcome.
    async fn observed<T>(
        &self,
        method: &'static str,
        call: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let started = std::time::Instant::now();
        let result = call.await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(status) => status_outcome(status.code()),
        };
        self.service().metrics.observe_request(method, outcome, started.elapsed());
        result
    }

    /// A response header at `revision`.
    fn header(&self, revision: u64) -> Option<PbResponseHeader> {
        Some(PbResponseHeader {
            cluster_id: self.inner.cluster_id,
            member_id: self.id().0,
            revision: to_i64(revision),
            raft_term: self.inner.term.load(Ordering::Relaxed),
        })
    }

    /// A header at the store's current revision.
    fn current_header(&self) -> Option<PbResponseHeader> {
        self.header(self.service().kv.revision())
    }

    /// Refuses requests while the node shuts down.
    fn check_serving(&self) -> Result<(), Status> {
        if self.service().is_stopping() {
            return Err(Status::unavailable("etcdserver: server stopped"));
        }
        Ok(())
    }

    /// Waits until a read may be served: after a ReadIndex (linearizable) or at once
    /// (`serializable`: whatever this node has applied).
    async fn read_barrier(&self, serializable: bool) -> Result<(), Status> {
        self.check_serving()?;
        let consistency = if serializable { Consistency::Stale } else { Consistency::Linearizable };
        self.service().read_barrier(consistency).await.map(drop).map_err(server_status)
    }

    /// Proposes `write` and returns the state machine's answer: directly on the leader
    /// (without a session, as etcd has none), forwarded to the leader from a follower.
    async fn apply(&self, write: Write) -> Result<kv_store::Response, Status> {
        self.check_serving()?;
        let command = Command { session: Session::UNSESSIONED, write };
        match self.service().propose(&command).await {
            Ok(response) => Ok(response),
            Err(ServerError::NotLeader { .. }) => {
                self.inner.forward.apply(command.write).await.map_err(client_status)
            }
            Err(error) => Err(server_status(error)),
        }
    }
}

/// The etcd API's TLS: node `config.id`'s certificate and key, and only clients whose
/// certificate the cluster's CA signed (mutual TLS, as on the QUIC side).
///
/// # Errors
///
/// [`crate::Error::EtcdTls`] naming the file that cannot be read.
pub(crate) fn tls_config(
    config: &ServerConfig,
) -> Result<tonic::transport::ServerTlsConfig, crate::Error> {
    let read = |name: String| {
        let path = config.certs_dir.join(name);
        std::fs::read(&path)
            .map_err(|error| crate::Error::EtcdTls { path, reason: error.to_string() })
    };
    let certificate = read(format!("node-{}.pem", config.id.0))?;
    let key = read(format!("node-{}.key", config.id.0))?;
    let ca = read("ca.pem".to_owned())?;
    Ok(tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(certificate, key))
        .client_ca_root(tonic::transport::Certificate::from_pem(ca)))
}

/// etcd's cluster id for a cluster name: FNV-1a, so every node derives the same one.
fn cluster_id_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A revision, count or id as protobuf's signed integer (saturating: never above
/// `i64::MAX` in practice).
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A gRPC status code as a metrics label.
fn status_outcome(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::InvalidArgument => "invalid",
        tonic::Code::OutOfRange => "out_of_range",
        tonic::Code::NotFound => "not_found",
        tonic::Code::FailedPrecondition => "failed_precondition",
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::ResourceExhausted => "resource_exhausted",
        tonic::Code::Unimplemented => "unimplemented",
        _ => "internal",
    }
}

/// A wire error as gRPC status, with etcd's own messages where clients match on them.
fn server_status(error: ServerError) -> Status {
    match error {
        ServerError::NotLeader { .. } => Status::unavailable("etcdserver: leader changed"),
        ServerError::Unavailable { reason } => Status::unavailable(format!("etcdserver: {reason}")),
        ServerError::OutcomeUnknown { .. } => Status::unavailable("etcdserver: request timed out"),
        ServerError::TooLarge { what, bytes, max } => Status::invalid_argument(format!(
            "etcdserver: request is too large: a {what} of {bytes} bytes exceeds {max}"
        )),
        ServerError::Invalid { reason } => Status::invalid_argument(reason),
        ServerError::Conflict { .. } | ServerError::SessionExpired { .. } => {
            Status::internal(format!("etcdserver: unexpected answer: {error:?}"))
        }
        ServerError::Internal { reason } => Status::internal(reason),
    }
}

/// A forwarding failure as gRPC status.
fn client_status(error: kv_client::Error) -> Status {
    info!(%error, "forwarding to the leader failed");
    match error {
        kv_client::Error::Timeout { .. } => Status::unavailable("etcdserver: request timed out"),
        other => Status::unavailable(format!("etcdserver: cannot reach the leader: {other}")),
    }
}

/// A state machine refusal as gRPC status, with etcd's messages (its clients turn these
/// strings back into typed errors).
fn rejection_status(rejection: &Rejection) -> Status {
    match rejection {
        Rejection::Compacted { .. } => {
            Status::out_of_range("etcdserver: mvcc: required revision has been compacted")
        }
        Rejection::FutureRevision { .. } => {
            Status::out_of_range("etcdserver: mvcc: required revision is a future revision")
        }
        Rejection::LeaseNotFound { .. } => {
            Status::not_found("etcdserver: requested lease not found")
        }
        Rejection::LeaseExists { .. } => {
            Status::failed_precondition("etcdserver: lease already exists")
        }
        Rejection::KeyNotFound => Status::invalid_argument("etcdserver: key not found"),
        Rejection::DuplicateKey { .. } => {
            Status::invalid_argument("etcdserver: duplicate key given in txn request")
        }
        Rejection::TooManyOps { .. } => {
            Status::invalid_argument("etcdserver: too many operations in txn request")
        }
        Rejection::KeyTooLarge { .. } | Rejection::ValueTooLarge { .. } => {
            Status::invalid_argument(format!("etcdserver: request is too large: {rejection}"))
        }
        Rejection::TooManyLeases { .. } => {
            Status::resource_exhausted(format!("etcdserver: {rejection}"))
        }
        other => Status::invalid_argument(format!("etcdserver: {other}")),
    }
}

/// The answer a write expected, or the status its refusal amounts to.
fn unexpected_answer(response: &kv_store::Response) -> Status {
    match response {
        kv_store::Response::Rejected(rejection) => rejection_status(rejection),
        other => Status::internal(format!("etcdserver: unexpected answer to a write: {other:?}")),
    }
}

/// The etcd address a node serves on by default: its listen address's port plus
/// [`ETCD_PORT_OFFSET`].
#[must_use]
pub fn default_etcd_addr(quic: SocketAddr) -> Option<SocketAddr> {
    quic.port().checked_add(ETCD_PORT_OFFSET).map(|port| SocketAddr::new(quic.ip(), port))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn every_node_derives_the_same_cluster_id_and_names_differ() {
        assert_eq!(cluster_id_of("kv"), cluster_id_of("kv"));
        assert_ne!(cluster_id_of("kv"), cluster_id_of("kw"));
        assert_ne!(cluster_id_of(""), 0);
    }

    #[test]
    fn refusals_carry_the_messages_etcd_clients_match() {
        let status = rejection_status(&Rejection::Compacted { requested: 1, compacted: 5 });
        assert_eq!(status.code(), tonic::Code::OutOfRange);
        assert_eq!(status.message(), "etcdserver: mvcc: required revision has been compacted");
        let status = rejection_status(&Rejection::LeaseNotFound { id: 7 });
        assert_eq!(status.message(), "etcdserver: requested lease not found");
    }

    #[test]
    fn the_default_etcd_port_is_the_quic_port_plus_200() {
        let quic: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        assert_eq!(default_etcd_addr(quic), Some("127.0.0.1:7201".parse().unwrap()));
        assert_eq!(default_etcd_addr("127.0.0.1:65500".parse().unwrap()), None);
    }
}
