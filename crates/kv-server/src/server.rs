//! Starting and stopping a node: storage, transport, Raft driver, client service, HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kv_store::{KvConfig, KvStore, SharedKvStore};
use raft_core::{Config, Membership, Node, NodeId, RestoredState};
use raft_net_quic::{ClientId, NetConfig, QuicNode, certs};
use raft_runtime::{Raft, RaftHandle, RuntimeConfig};
use raft_storage::AnyLogStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::config::ServerConfig;
use crate::error::Error;
use crate::etcd::{self, EtcdApi, LeaseClock};
use crate::in_flight::InFlightWrites;
use crate::metrics::ServerMetrics;
use crate::service::{AddressBook, Service};

/// The most user writes a node tracks in flight to attach retries to them (more propose
/// untracked): far above the writes a healthy node has pending, small enough (a few
/// hundred KiB) to keep.
const IN_FLIGHT_WRITES_MAX: usize = 4096;
/// How often the node's state is sampled into the gauges and the address book is synced.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

/// A running node.
pub struct Server {
    config: ServerConfig,
    raft: RaftHandle<kv_store::Response>,
    quic: Arc<QuicNode>,
    stopping: Arc<AtomicBool>,
    /// Set when the Raft node stopped by itself (a fatal storage error).
    failed: watch::Receiver<Option<String>>,
    background: Vec<JoinHandle<()>>,
    http_addr: SocketAddr,
    etcd_addr: Option<SocketAddr>,
}

impl Server {
    /// Starts a node: opens (or creates) its data directory, checks the stored membership
    /// against `--peers`, binds QUIC and HTTP, and starts the Raft driver.
    ///
    /// In the single-node default (one peer, no certificates yet) it makes the cluster's
    /// certificates in the certificates directory first.
    ///
    /// # Errors
    ///
    /// Any [`Error`]: bad certificates, an unusable data directory, a membership mismatch,
    /// an address in use.
    pub async fn start(config: ServerConfig) -> Result<Server, Error> {
        prepare_certificates(&config)?;
        let identity = certs::load_node(&config.certs_dir, config.id).map_err(|source| {
            Error::Certificates {
                node: config.id.0,
                dir: config.certs_dir.clone(),
                source: Box::new(source),
            }
        })?;
        let store = open_store(&config)?;

        let mut net = NetConfig::new(config.cluster_id.clone(), config.id, config.listen);
        net.frame_bytes_max = net.frame_bytes_max.max(8 << 20);
        net.transport = config.transport;
        let (quic, transport) = QuicNode::bind(net, &identity)
            .map_err(|source| Error::Transport { addr: config.listen, source: Box::new(source) })?;
        let quic = Arc::new(quic);
        for (&peer, &addr) in &config.peers {
            if peer != config.id {
                quic.set_peer(peer, addr);
            }
        }

        let mut kv_config = KvConfig::default();
        if let Some(revisions) = config.history_revisions {
            kv_config.history_revisions_max = revisions;
        }
        let kv = SharedKvStore::new(
            KvStore::new(kv_config.clone()).map_err(|source| Error::Store { source })?,
        );
        let metrics = Arc::new(ServerMetrics::new());
        let mut raft_config = Config::new(config.id);
        raft_config.election_ticks = config.election_ticks();
        raft_config.heartbeat_ticks = config.heartbeat_ticks();
        raft_config.lease_ticks = raft_config.election_ticks.saturating_sub(1).max(1);
        if let Some(threshold) = config.snapshot_threshold {
            raft_config.snapshot_log_bytes = Some(jittered_threshold(threshold, config.id));
            // The other half of when a snapshot is due (the log outgrew the latest one),
            // spread the same way: nodes hold snapshots of about one size.
            raft_config.snapshot_log_percent_of_snapshot =
                jittered(config.snapshot_log_percent, config.id);
        } else {
            raft_config.snapshot_log_percent_of_snapshot = config.snapshot_log_percent;
        }
        let runtime = RuntimeConfig {
            tick: config.tick(),
            seed: rand::random(),
            follower_persist_inline: config.follower_persist_inline,
            ..RuntimeConfig::default()
        };
        let raft = Raft::new(raft_config, runtime, store, transport, kv.clone())
            .with_metrics(Arc::clone(&metrics))
            .start()
            .await
            .map_err(|source| Error::Raft { source: Box::new(source) })?;

        let addresses: AddressBook = Arc::new(RwLock::new(config.peers.clone()));
        let leases = Arc::new(LeaseClock::new());
        let stopping = Arc::new(AtomicBool::new(false));
        let service = Service {
            id: config.id,
            raft: raft.clone(),
            kv: kv.clone(),
            kv_config,
            addresses: Arc::clone(&addresses),
            quic: Arc::clone(&quic),
            metrics: Arc::clone(&metrics),
            stopping: Arc::clone(&stopping),
            in_flight: Arc::new(InFlightWrites::new(IN_FLIGHT_WRITES_MAX)),
            leases: Arc::clone(&leases),
        };
        quic.serve_requests(service.clone());
        let term = Arc::new(AtomicU64::new(0));
        let countdowns = tokio::spawn(etcd::run_lease_countdowns(
            raft.clone(),
            kv.clone(),
            Arc::clone(&leases),
            Arc::clone(&term),
        ));
        let mut background = vec![countdowns];
        let etcd_addr = match config.etcd_listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Etcd { addr, source })?;
                let bound = listener.local_addr().map_err(|source| Error::Etcd { addr, source })?;
                let tls = if config.etcd_tls { Some(etcd::tls_config(&config)?) } else { None };
                let api = EtcdApi::new(&config, bound, service, term)?;
                background.push(api.serve(listener, tls)?);
                info!(etcd = %bound, tls = config.etcd_tls, "serving etcd's v3 API");
                Some(bound)
            }
            None => None,
        };

        let listener = tokio::net::TcpListener::bind(config.http)
            .await
            .map_err(|source| Error::Http { addr: config.http, source })?;
        let http_addr =
            listener.local_addr().map_err(|source| Error::Http { addr: config.http, source })?;
        let (failed_sender, failed) = watch::channel(None);
        let health = Health { metrics: Arc::clone(&metrics), failed: failed.clone() };
        let router = Router::new()
            .route("/metrics", get(serve_metrics))
            .route("/health", get(serve_health))
            .with_state(health);
        #[cfg(feature = "fault-injection")]
        let router = router.merge(crate::faults::router(quic.faults()));
        let http = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                error!(%error, "http server stopped");
            }
        });
        let sampler = tokio::spawn(sample(
            raft.clone(),
            kv,
            metrics,
            addresses,
            Arc::clone(&quic),
            failed_sender,
        ));
        background.extend([http, sampler]);
        info!(node = %config.id, listen = %config.listen, transport = %config.transport, http = %http_addr, "serving");
        Ok(Server { config, raft, quic, stopping, failed, background, http_addr, etcd_addr })
    }

    /// The node's configuration.
    #[must_use]
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The HTTP address actually bound.
    #[must_use]
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The address etcd's v3 API is bound to, when it is on.
    #[must_use]
    pub fn etcd_addr(&self) -> Option<SocketAddr> {
        self.etcd_addr
    }

    /// The peer and client address actually bound.
    #[must_use]
    pub fn quic_addr(&self) -> Option<SocketAddr> {
        self.quic.local_addr()
    }

    /// Waits until the Raft node stops by itself, and returns why.
    pub async fn failure(&mut self) -> String {
        loop {
            if let Some(reason) = self.failed.borrow().clone() {
                return reason;
            }
            if self.failed.changed().await.is_err() {
                return "the node's monitor ended".to_owned();
            }
        }
    }

    /// Stops cleanly: new requests are refused, the Raft node finishes the writes it
    /// queued (so nothing it acknowledged is lost), then the endpoints close.
    ///
    /// # Errors
    ///
    /// [`Error::Raft`] with the fatal error that had stopped the node, if one had.
    pub async fn shutdown(self) -> Result<(), Error> {
        info!(node = %self.config.id, "shutting down");
        self.stopping.store(true, Ordering::Relaxed);
        // The sampler first: it would take the node's stopping for a failure.
        for task in self.background {
            task.abort();
        }
        let result =
            self.raft.shutdown().await.map_err(|source| Error::Raft { source: Box::new(source) });
        self.quic.shutdown().await;
        result
    }
}

/// Makes the certificates of a single-node cluster on its first start, so `kv-server` with
/// no flags works out of the box. A multi-node cluster's certificates must come from one
/// CA, made once with `kv-server certs`: each node making its own would not trust the
/// others, so they are never made here.
fn prepare_certificates(config: &ServerConfig) -> Result<(), Error> {
    let dir = &config.certs_dir;
    if dir.join("ca.pem").exists() || config.peers.len() != 1 {
        return Ok(());
    }
    info!(dir = %dir.display(), "no certificates yet: making a CA, a node and a client certificate");
    certs::generate(dir, &[config.id], &[ClientId(1)]).map_err(|source| Error::Certificates {
        node: config.id.0,
        dir: dir.clone(),
        source: Box::new(source),
    })
}

/// Opens the node's store with the configured engine (by default the one that wrote the
/// directory, else the write-ahead log), or creates it with `--peers` as the voters; an
/// existing store must hold the same members and have been written by the same engine.
fn open_store(config: &ServerConfig) -> Result<AnyLogStore, Error> {
    let dir = &config.data_dir;
    // Every directory made is synced into its parent before the store inside counts.
    raft_storage::create_data_directory(dir)
        .map_err(|error| Error::DataDir { path: dir.clone(), reason: error.to_string() })?;
    let storage_error = |source| Error::Storage { path: dir.clone(), source: Box::new(source) };
    let stored = raft_storage::stored_engine(dir).map_err(storage_error)?;
    let fresh = stored.is_none();
    // No --storage: the directory's engine, or the default for a new directory. A
    // --storage that disagrees with the directory is refused by open_or_create.
    let engine = config.storage.or(stored).unwrap_or_default();
    // A joining node knows no members: it neither votes nor campaigns until the leader's
    // log, with the entry that adds it, reaches it.
    let membership = if config.join {
        Membership::default()
    } else {
        Membership::with_voters(config.peers.keys().copied())
    };
    let mut store = AnyLogStore::open_or_create(dir, engine, &membership).map_err(storage_error)?;
    if fresh {
        return Ok(store);
    }
    let restored = store.load_blocking().map_err(storage_error)?;
    if !config.join {
        let stored = stored_membership(config.id, restored)?;
        check_membership(dir, &stored, &config.peers)?;
    }
    Ok(store)
}

/// The membership the node will start with: raft-core's own rule (the last membership
/// entry in the log, else the snapshot's or the bootstrap one), applied to what the store
/// restored, as the driver will apply it.
fn stored_membership(id: NodeId, mut restored: RestoredState) -> Result<Membership, Error> {
    restored.applied_index = restored.compacted().index;
    let node = Node::new(Config::new(id), restored, 0)
        .map_err(|source| Error::Raft { source: Box::new(source.into()) })?;
    Ok(node.membership().clone())
}

fn check_membership(
    dir: &Path,
    stored: &Membership,
    peers: &BTreeMap<NodeId, SocketAddr>,
) -> Result<(), Error> {
    let mut stored_ids: Vec<u64> = stored.members().map(|id| id.0).collect();
    stored_ids.sort_unstable();
    let given: Vec<u64> = peers.keys().map(|id| id.0).collect();
    // The peer list names the voters; learners may be listed too.
    let agrees = given.iter().all(|id| stored_ids.contains(id))
        && stored.voters.iter().all(|id| given.contains(&id.0));
    if agrees {
        return Ok(());
    }
    Err(Error::MembershipMismatch { path: dir.to_path_buf(), given, stored: stored_ids })
}

/// Samples the node's state into the gauges, keeps the transport's peer addresses in step
/// with the replicated address book, and reports when the node stopped by itself.
async fn sample(
    raft: RaftHandle<kv_store::Response>,
    kv: SharedKvStore,
    metrics: Arc<ServerMetrics>,
    addresses: AddressBook,
    quic: Arc<QuicNode>,
    failed: watch::Sender<Option<String>>,
) {
    let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
    loop {
        interval.tick().await;
        let status = match raft.status().await {
            Ok(status) => status,
            Err(error) => {
                // The node task ended without a shutdown request: a fatal error.
                let reason = match raft.shutdown().await {
                    Err(fatal) => with_sources(&fatal),
                    Ok(()) => with_sources(&error),
                };
                error!(%reason, "raft node stopped; this node no longer votes or serves");
                let _ = failed.send(Some(reason));
                return;
            }
        };
        let (keys, member_addresses) =
            kv.with_read(|store| (store.len() as u64, store.member_addresses().clone()));
        metrics.observe_status(&status, keys);
        metrics.observe_rpc(quic.rpc_bytes_in_flight(), quic.rpc_connections());
        for (&node, &addr) in &member_addresses {
            let mut book = addresses.write().unwrap_or_else(PoisonError::into_inner);
            if node != status.node && book.get(&node) != Some(&addr) {
                info!(peer = %node, %addr, "learned peer address");
                book.insert(node, addr);
                quic.set_peer(node, addr);
            }
        }
        if let Some(allowed) = allowed_peers(&status, &member_addresses) {
            if allowed != quic.allowed_peers() {
                info!(peers = ?allowed, "accepting peer connections from these nodes");
                quic.set_allowed_peers(allowed);
            }
        }
    }
}

/// The nodes whose peer connections this node accepts: every voter and learner, and every
/// node in the replicated address book (the leader records a node's address before adding
/// it, so a joining node the leader knows is in it). `None` while this node knows no
/// membership yet (a node started with `--join`): it keeps accepting its `--peers`.
fn allowed_peers(
    status: &raft_runtime::Status,
    member_addresses: &BTreeMap<NodeId, SocketAddr>,
) -> Option<BTreeSet<NodeId>> {
    let membership = &status.membership;
    if membership.voters.is_empty() && membership.learners.is_empty() {
        return None;
    }
    let members = membership.voters.iter().chain(&membership.learners);
    let allowed = members.chain(member_addresses.keys()).copied();
    Some(allowed.filter(|&node| node != status.node).collect())
}

/// An error's message followed by its sources' (`a: b: c`), so the file and the OS error
/// behind a storage failure reach the log.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Clone)]
struct Health {
    metrics: Arc<ServerMetrics>,
    failed: watch::Receiver<Option<String>>,
}

async fn serve_metrics(State(health): State<Health>) -> impl IntoResponse {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], health.metrics.render())
}

async fn serve_health(State(health): State<Health>) -> impl IntoResponse {
    match health.failed.borrow().clone() {
        None => (StatusCode::OK, "ok\n".to_owned()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("failed: {reason}\n")),
    }
}

/// The log size at which node `id` snapshots: the configured threshold plus up to a quarter
/// more, spread by node id. Nodes that share a threshold and receive the same log would
/// otherwise all snapshot at the same instant, and the cluster's throughput would dip at
/// once on every node rather than on one at a time.
fn jittered_threshold(threshold: NonZeroU64, id: NodeId) -> NonZeroU64 {
    // Never below the threshold, so never zero.
    NonZeroU64::new(jittered(threshold.get(), id)).unwrap_or(threshold)
}

/// `value` plus up to a quarter more, spread by node `id` (rounded down).
fn jittered(value: u64, id: NodeId) -> u64 {
    // The 64-bit golden ratio spreads consecutive ids over the whole range.
    let spread = id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56; // 0..=255
    let extra = u64::try_from(u128::from(value) * u128::from(spread) / 1024).unwrap_or(u64::MAX);
    value.saturating_add(extra)
}

#[cfg(test)]
mod jitter_tests {
    use super::*;

    #[test]
    fn nodes_snapshot_at_different_sizes_within_a_quarter_above_the_threshold() {
        let threshold = NonZeroU64::new(4 << 20).unwrap();
        let sizes: Vec<u64> =
            (1..=5).map(|id| jittered_threshold(threshold, NodeId(id)).get()).collect();
        for &size in &sizes {
            assert!(size >= threshold.get() && size < threshold.get() + threshold.get() / 4);
        }
        let mut distinct = sizes.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), sizes.len(), "{sizes:?}");
        let one = NonZeroU64::new(1).unwrap();
        assert_eq!(jittered_threshold(one, NodeId(3)), one, "rounding never goes below");
        // The snapshot share moves with the threshold: node 2's is as far above 100%.
        let percent = jittered(100, NodeId(2));
        let threshold_two = jittered_threshold(threshold, NodeId(2)).get();
        assert!((100..125).contains(&percent), "{percent}");
        assert_eq!(percent, 100 + (threshold_two - threshold.get()) * 100 / threshold.get());
    }
}
