//! Leases: granted and revoked through the log; counted down by the leader alone.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::proto::{
    PbLeaseGrantRequest, PbLeaseGrantResponse, PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse,
    PbLeaseLeasesRequest, PbLeaseLeasesResponse, PbLeaseRevokeRequest, PbLeaseRevokeResponse,
    PbLeaseService, PbLeaseStatus, PbLeaseTimeToLiveRequest, PbLeaseTimeToLiveResponse,
};
use kv_client::protocol::LeaseTtl;
use kv_store::{Command, LeaseInfo, Session, SharedKvStore, Write};
use raft_core::{Role, Term};
use raft_runtime::RaftHandle;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use super::{EtcdApi, unexpected_answer};

/// The shortest time to live granted: shorter asks get this (as etcd raises them to its
/// minimum), so a lease outlives an election and a client's first keep-alive.
pub const LEASE_TTL_MIN_SECONDS: i64 = 2;

/// How often the countdowns are checked.
const COUNTDOWN_INTERVAL: Duration = Duration::from_millis(100);

/// The leader's countdown of every lease.
///
/// Only the leader counts: it proposes a revoke when a lease runs out. A node that becomes
/// leader (or leads in a new term) starts every countdown afresh from the lease's full
/// time to live, so a failover extends leases and never expires a live one early.
#[derive(Debug, Default)]
pub struct LeaseClock {
    state: Mutex<ClockState>,
}

#[derive(Debug, Default)]
struct ClockState {
    /// The term this node leads in; `None` when it does not lead.
    leading: Option<Term>,
    /// When each lease runs out.
    deadlines: HashMap<i64, Instant>,
}

impl LeaseClock {
    /// A clock that counts nothing yet.
    #[must_use]
    pub fn new() -> LeaseClock {
        LeaseClock::default()
    }

    /// Brings the countdowns up to date at `now`: `leading` is the term this node leads
    /// in (`None`: it follows, and counts nothing), `leases` every lease the store holds.
    /// Returns the leases that ran out.
    pub fn tick(&self, leading: Option<Term>, leases: &[LeaseInfo], now: Instant) -> Vec<i64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.leading != leading {
            state.deadlines.clear();
            state.leading = leading;
        }
        if leading.is_none() {
            return Vec::new();
        }
        let mut live = HashMap::with_capacity(leases.len());
        let mut expired = Vec::new();
        for lease in leases {
            let deadline = state
                .deadlines
                .get(&lease.id)
                .copied()
                .unwrap_or_else(|| now + ttl_duration(lease.ttl_seconds));
            if deadline <= now {
                expired.push(lease.id);
            }
            live.insert(lease.id, deadline);
        }
        state.deadlines = live;
        expired
    }

    /// Restarts `lease`'s countdown (a keep-alive) and answers with its time to live; an
    /// absent lease answers -1 remaining, as etcd does.
    pub fn keep_alive(&self, id: i64, lease: Option<&LeaseInfo>, now: Instant) -> LeaseTtl {
        let Some(lease) = lease else {
            return LeaseTtl { id, granted_seconds: 0, remaining_seconds: -1 };
        };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.deadlines.insert(id, now + ttl_duration(lease.ttl_seconds));
        LeaseTtl { id, granted_seconds: lease.ttl_seconds, remaining_seconds: lease.ttl_seconds }
    }

    /// How long `lease` has left at `now`, rounded up to whole seconds.
    pub fn time_to_live(&self, id: i64, lease: Option<&LeaseInfo>, now: Instant) -> LeaseTtl {
        let Some(lease) = lease else {
            return LeaseTtl { id, granted_seconds: 0, remaining_seconds: -1 };
        };
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let remaining = match state.deadlines.get(&id) {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(now);
                i64::try_from(left.as_millis().div_ceil(1000)).unwrap_or(i64::MAX)
            }
            // Not counted yet (granted since the last tick): all of it.
            None => lease.ttl_seconds,
        };
        LeaseTtl { id, granted_seconds: lease.ttl_seconds, remaining_seconds: remaining }
    }
}

fn ttl_duration(ttl_seconds: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl_seconds).unwrap_or(0))
}

/// Runs forever: keeps `term` current for response headers and, while this node leads,
/// counts leases down and proposes a revoke for each that runs out. Runs whether or not
/// this node serves the etcd API, since any node may come to lead.
pub(crate) async fn run_lease_countdowns(
    raft: RaftHandle<kv_store::Response>,
    kv: SharedKvStore,
    clock: Arc<LeaseClock>,
    term: Arc<AtomicU64>,
) {
    let mut interval = tokio::time::interval(COUNTDOWN_INTERVAL);
    loop {
        interval.tick().await;
        let Ok(status) = raft.status().await else {
            // The node stopped; the server's sampler reports why.
            return;
        };
        term.store(status.term.0, Ordering::Relaxed);
        let leading = (status.role == Role::Leader).then_some(status.term);
        let leases = if leading.is_some() { kv.leases() } else { Vec::new() };
        for id in clock.tick(leading, &leases, Instant::now()) {
            info!(lease = id, "lease expired; revoking");
            let command =
                Command { session: Session::UNSESSIONED, write: Write::LeaseRevoke { id } };
            let Ok(payload) = command.encode() else { continue };
            // A failed revoke is retried on the next tick (the lease is still due).
            if let Err(error) = raft.propose(payload).await {
                debug!(lease = id, %error, "could not revoke an expired lease yet");
            }
        }
    }
}

impl EtcdApi {
    /// Asks the leader about a lease: answered here when this node leads, else forwarded.
    async fn lease_ttl(&self, id: i64, keep_alive: bool) -> Result<LeaseTtl, Status> {
        self.check_serving()?;
        match self.service().lease_ttl(id, keep_alive).await {
            Ok(ttl) => Ok(ttl),
            Err(kv_client::protocol::ServerError::NotLeader { .. }) => {
                self.inner.forward.lease(id, keep_alive).await.map_err(super::client_status)
            }
            Err(error) => Err(super::server_status(error)),
        }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<PbLeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PbLeaseService for EtcdApi {
    async fn lease_grant(
        &self,
        request: Request<PbLeaseGrantRequest>,
    ) -> Result<Response<PbLeaseGrantResponse>, Status> {
        self.observed("etcd_lease_grant", async {
            let request = request.into_inner();
            if request.ttl > kv_store::LEASE_TTL_SECONDS_MAX {
                return Err(Status::out_of_range("etcdserver: too large lease TTL"));
            }
            let ttl_seconds = request.ttl.max(LEASE_TTL_MIN_SECONDS);
            let id = match request.id {
                0 => rand::random::<i64>().checked_abs().unwrap_or(1).max(1),
                id if id < 0 => {
                    return Err(Status::invalid_argument("etcdserver: lease ids must be positive"));
                }
                id => id,
            };
            match self.apply(Write::LeaseGrant { id, ttl_seconds }).await? {
                kv_store::Response::LeaseGranted { id, ttl_seconds, revision } => {
                    Ok(Response::new(PbLeaseGrantResponse {
                        header: self.header(revision),
                        id,
                        ttl: ttl_seconds,
                        error: String::new(),
                    }))
                }
                other => Err(unexpected_answer(&other)),
            }
        })
        .await
    }

    async fn lease_revoke(
        &self,
        request: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        self.observed("etcd_lease_revoke", async {
            let id = request.into_inner().id;
            match self.apply(Write::LeaseRevoke { id }).await? {
                kv_store::Response::LeaseRevoked { revision } => {
                    Ok(Response::new(PbLeaseRevokeResponse { header: self.header(revision) }))
                }
                other => Err(unexpected_answer(&other)),
            }
        })
        .await
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    /// Answers each keep-alive on the stream in order, until the client closes it.
    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let mut requests = request.into_inner();
        let (sender, receiver) = mpsc::channel(16);
        let api = self.clone();
        tokio::spawn(async move {
            loop {
                let request = match requests.message().await {
                    Ok(Some(request)) => request,
                    Ok(None) => return,
                    Err(error) => {
                        debug!(%error, "a keep-alive stream ended");
                        return;
                    }
                };
                let answer = api.lease_ttl(request.id, true).await.map(|ttl| {
                    PbLeaseKeepAliveResponse {
                        header: api.current_header(),
                        id: ttl.id,
                        // etcd answers 0 for a lease that is gone.
                        ttl: ttl.remaining_seconds.max(0),
                    }
                });
                if sender.send(answer).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        self.observed("etcd_lease_time_to_live", async {
            let request = request.into_inner();
            let ttl = self.lease_ttl(request.id, false).await?;
            let keys = if request.keys {
                // The attached keys are this node's own state: on a follower it may not yet
                // have applied a write the leader acknowledged, so a linearizable barrier
                // (it returns once this node has applied up to the leader's commit) first.
                self.read_barrier(false).await?;
                let lease = self.service().kv.lease(request.id);
                lease.map(|lease| lease.keys.iter().map(|key| key.to_vec()).collect())
            } else {
                None
            };
            Ok(Response::new(PbLeaseTimeToLiveResponse {
                header: self.current_header(),
                id: ttl.id,
                ttl: ttl.remaining_seconds,
                granted_ttl: ttl.granted_seconds,
                keys: keys.unwrap_or_default(),
            }))
        })
        .await
    }

    async fn lease_leases(
        &self,
        _request: Request<PbLeaseLeasesRequest>,
    ) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        self.read_barrier(false).await?;
        let leases = self.service().kv.leases();
        let leases = leases.iter().map(|lease| PbLeaseStatus { id: lease.id }).collect();
        Ok(Response::new(PbLeaseLeasesResponse { header: self.current_header(), leases }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn lease(id: i64, ttl_seconds: i64) -> LeaseInfo {
        LeaseInfo { id, ttl_seconds, keys: Vec::new() }
    }

    #[test]
    fn a_follower_counts_nothing() {
        let clock = LeaseClock::new();
        let now = Instant::now();
        assert!(clock.tick(None, &[lease(1, 2)], now).is_empty());
        assert!(clock.tick(None, &[lease(1, 2)], now + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn a_lease_expires_its_ttl_after_the_leader_first_counts_it() {
        let clock = LeaseClock::new();
        let start = Instant::now();
        let leases = [lease(1, 2), lease(2, 5)];
        assert!(clock.tick(Some(Term(3)), &leases, start).is_empty());
        let later = start + Duration::from_millis(1999);
        assert!(clock.tick(Some(Term(3)), &leases, later).is_empty());
        assert_eq!(clock.tick(Some(Term(3)), &leases, start + Duration::from_secs(2)), vec![1]);
    }

    #[test]
    fn a_keep_alive_restarts_the_countdown() {
        let clock = LeaseClock::new();
        let start = Instant::now();
        let leases = [lease(1, 2)];
        clock.tick(Some(Term(1)), &leases, start);
        let ttl = clock.keep_alive(1, leases.first(), start + Duration::from_millis(1500));
        assert_eq!((ttl.granted_seconds, ttl.remaining_seconds), (2, 2));
        assert!(clock.tick(Some(Term(1)), &leases, start + Duration::from_millis(3000)).is_empty());
        let left = clock.time_to_live(1, leases.first(), start + Duration::from_millis(3000));
        assert_eq!(left.remaining_seconds, 1);
        assert_eq!(
            clock.tick(Some(Term(1)), &leases, start + Duration::from_millis(3500)),
            vec![1]
        );
    }

    #[test]
    fn a_new_term_starts_every_countdown_afresh() {
        let clock = LeaseClock::new();
        let start = Instant::now();
        let leases = [lease(1, 2)];
        clock.tick(Some(Term(1)), &leases, start);
        // Leadership lost and regained in a later term, just before the old deadline.
        clock.tick(None, &leases, start + Duration::from_millis(1000));
        let regained = start + Duration::from_millis(1900);
        assert!(clock.tick(Some(Term(2)), &leases, regained).is_empty());
        assert!(clock.tick(Some(Term(2)), &leases, start + Duration::from_millis(3800)).is_empty());
        assert_eq!(clock.tick(Some(Term(2)), &leases, regained + Duration::from_secs(2)), vec![1]);
    }

    #[test]
    fn an_unknown_lease_has_minus_one_seconds_left() {
        let clock = LeaseClock::new();
        let ttl = clock.time_to_live(9, None, Instant::now());
        assert_eq!(ttl.remaining_seconds, -1);
        assert_eq!(clock.keep_alive(9, None, Instant::now()).remaining_seconds, -1);
    }
}
