//! [`KvClient`]: leader discovery, redirects, retries and sessions over [`RpcClient`]s.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};

use bytes::Bytes;
use raft_net_quic::{Caller, ClientId, Identity, RpcClient, RpcClientConfig, TransportKind, certs};
use tokio::time::Instant;
use tracing::debug;

use crate::error::Error;
use crate::protocol::{
    Command, Consistency, KeyValue, LeaseTtl, Member, NodeStatus, Request, Response, ServerError,
    Session, Write, WriteOutcome, decode, encode, new_session_client_id,
};
use raft_core::{LogIndex, NodeId};

/// The longest one attempt waits before the client tries again (possibly elsewhere): a
/// commit takes milliseconds, so a second of silence means the node is stopped, paused or
/// cut off, and waiting longer only delays the failover to the new leader (a SIGKILLed
/// node's QUIC connection does not close; only this limit notices it).
const ATTEMPT_TIMEOUT_MAX: Duration = Duration::from_secs(1);

/// The first pause after a failed attempt; doubled per failure up to
/// [`BACKOFF_MAX`], so a cluster electing a leader is not flooded.
const BACKOFF_MIN: Duration = Duration::from_millis(10);

/// The longest pause between attempts on one node: a few heartbeats, so a client notices a
/// newly elected leader well within an election timeout (attempts on loopback or a LAN
/// cost the cluster next to nothing).
const BACKOFF_MAX: Duration = Duration::from_millis(100);

/// How long the known leader may take before the request goes to every endpoint:
/// far above a commit's latency under load (milliseconds), far below an election timeout,
/// so a dead or cut-off leader costs this much rather than a whole attempt's limit.
const HEDGE_DELAY: Duration = Duration::from_millis(150);

/// The default limit on one TLS handshake: a live node on a LAN answers in a few
/// milliseconds, so half a second means it is down, and the client tries the next one.
const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_millis(500);

/// The most a status query waits for one node: `kvctl status` asks every node, and a
/// stopped one must not hold up the report of the others.
const STATUS_TIMEOUT_MAX: Duration = Duration::from_secs(1);

/// Wraps a put or delete into the request for it.
fn write_within(command: Command, timeout_ms: u32) -> Request {
    Request::WriteWithin { command, timeout_ms }
}

/// Sessions kept for reuse; more concurrent writers than this get fresh sessions.
const SESSIONS_KEPT_MAX: usize = 1024;

/// How a [`KvClient`] reaches the cluster.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Nodes to try first; the client learns the leader's address from their answers.
    pub endpoints: Vec<SocketAddr>,
    /// The cluster's name; must match the nodes'.
    pub cluster_id: String,
    /// Who this client is: `Caller::Client(id)` for a client certificate, or
    /// `Caller::Node(id)` when a node calls another with its own certificate (a follower's
    /// etcd API forwarding writes to the leader). It must match the certificate's name.
    pub caller: Caller,
    /// The client's certificate, key and the cluster CA.
    pub identity: Identity,
    /// The most one request may take, retries included.
    pub timeout: Duration,
    /// Follow "not leader" answers to the named leader (`false`: report them as
    /// [`Error::NotLeader`]).
    pub follow_leader: bool,
    /// The most a connection's TLS handshake may take before the client moves on to the
    /// next endpoint: a stopped node never answers, and QUIC gets no "connection refused".
    pub connect_timeout: Duration,
    /// The wire to the nodes: QUIC (default) or TCP; it must be the one the nodes speak
    /// (`kv-server --transport`).
    pub transport: TransportKind,
}

impl ClientConfig {
    /// A configuration with the certificate of client `client_id` from `certs_dir` (as
    /// written by `kv-server certs`), a 5 s timeout, following the leader.
    ///
    /// # Errors
    ///
    /// [`Error::Identity`] if the certificate files cannot be loaded.
    pub fn from_certs_dir(
        endpoints: Vec<SocketAddr>,
        cluster_id: impl Into<String>,
        certs_dir: &Path,
        client_id: ClientId,
    ) -> Result<ClientConfig, Error> {
        let identity = certs::load_client(certs_dir, client_id)
            .map_err(|source| Error::Identity { dir: certs_dir.to_path_buf(), source })?;
        Ok(ClientConfig::from_identity(endpoints, cluster_id, Caller::Client(client_id), identity))
    }

    /// A configuration calling as `caller` with `identity` (whose certificate must name
    /// `caller`), a 5 s timeout, following the leader.
    #[must_use]
    pub fn from_identity(
        endpoints: Vec<SocketAddr>,
        cluster_id: impl Into<String>,
        caller: Caller,
        identity: Identity,
    ) -> ClientConfig {
        ClientConfig {
            endpoints,
            cluster_id: cluster_id.into(),
            caller,
            identity,
            timeout: Duration::from_secs(5),
            follow_leader: true,
            connect_timeout: CONNECT_TIMEOUT_DEFAULT,
            transport: TransportKind::default(),
        }
    }
}

/// A client of the replicated key-value store. Cheap to clone; clones share connections,
/// and calls from many tasks run concurrently (one QUIC stream each).
///
/// Every write carries a session (client id and sequence number), and a retry after a
/// timeout or a leader change resends the same one, so the store applies it at most once.
#[derive(Clone, Debug)]
pub struct KvClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    /// One connection per node, each multiplexing every request to it.
    connections: Mutex<HashMap<SocketAddr, RpcClient>>,
    /// Held while connecting, so concurrent requests to a new node share one connection.
    connecting: tokio::sync::Mutex<()>,
    /// The address that last answered as leader, tried first.
    leader: Mutex<Option<SocketAddr>>,
    /// Sessions not in use by a write; each is used by one write at a time.
    sessions: Mutex<Vec<Session>>,
}

impl KvClient {
    /// A client for the cluster; it connects on first use.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] without endpoints or with a zero timeout.
    pub fn new(config: ClientConfig) -> Result<KvClient, Error> {
        if config.endpoints.is_empty() {
            return Err(Error::Config { reason: "no endpoints given".to_owned() });
        }
        if config.timeout.is_zero() {
            return Err(Error::Config { reason: "the timeout must be above zero".to_owned() });
        }
        Ok(KvClient {
            inner: Arc::new(Inner {
                config,
                connections: Mutex::new(HashMap::new()),
                connecting: tokio::sync::Mutex::new(()),
                leader: Mutex::new(None),
                sessions: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The configuration this client runs with.
    #[must_use]
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Writes `value` at `key`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], [`Error::TooLarge`], [`Error::NotLeader`] (not following), and
    /// the other server refusals.
    pub async fn put(&self, key: Bytes, value: Bytes) -> Result<WriteOutcome, Error> {
        self.put_versioned(key, value, None).await
    }

    /// Writes `value` at `key` only if the key's version is `expect_version` (0: only if
    /// it does not exist): compare-and-set.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] with the key's current version; as [`KvClient::put`].
    pub async fn put_versioned(
        &self,
        key: Bytes,
        value: Bytes,
        expect_version: Option<u64>,
    ) -> Result<WriteOutcome, Error> {
        let write = Write::Put { key, value, expect_version };
        let response = self.write(write, write_within).await?;
        self.expect_written(response)
    }

    /// Deletes `key` (with `expect_version`: only at that version). Deleting a missing key
    /// succeeds with `existed: false`.
    ///
    /// # Errors
    ///
    /// As [`KvClient::put_versioned`].
    pub async fn delete(
        &self,
        key: Bytes,
        expect_version: Option<u64>,
    ) -> Result<WriteOutcome, Error> {
        let response = self.write(Write::Delete { key, expect_version }, write_within).await?;
        self.expect_written(response)
    }

    /// Proposes any user write (a put, a delete, an etcd-style transaction, a compaction,
    /// a lease grant or revoke) and returns the state machine's own answer, refusals
    /// included ([`kv_store::Response::Rejected`] is an answer here, not an error). The
    /// write carries a session, so a retry applies it at most once.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], [`Error::NotLeader`] (not following), and the server refusals
    /// that come before the state machine (sizes, an unavailable cluster).
    pub async fn apply(&self, write: Write) -> Result<kv_store::Response, Error> {
        match self
            .write(write, |command, timeout_ms| Request::Apply { command, timeout_ms })
            .await?
        {
            Response::Applied { response, .. } => Ok(response),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Asks the leader how long lease `id` has left; with `keep_alive`, the leader first
    /// restarts the lease's countdown from its full time to live.
    ///
    /// # Errors
    ///
    /// As [`KvClient::get`].
    pub async fn lease(&self, id: i64, keep_alive: bool) -> Result<LeaseTtl, Error> {
        match self.send(&Request::Lease { id, keep_alive }).await? {
            Response::Lease(ttl) => Ok(ttl),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Reads `key`: `None` when it does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] and the server refusals.
    pub async fn get(
        &self,
        key: Bytes,
        consistency: Consistency,
    ) -> Result<Option<KeyValue>, Error> {
        match self.send(&Request::Get { key, consistency }).await? {
            Response::Value { found, .. } => Ok(found),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Reads up to `limit` keys starting with `prefix`, in key order; the flag says more
    /// matched.
    ///
    /// # Errors
    ///
    /// As [`KvClient::get`].
    pub async fn range(
        &self,
        prefix: Bytes,
        limit: u32,
        consistency: Consistency,
    ) -> Result<(Vec<KeyValue>, bool), Error> {
        let request = Request::Range { prefix, limit, consistency };
        match self.send(&request).await? {
            Response::Range { entries, more, .. } => Ok((entries, more)),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Asks the node at `addr` for its own state (no redirect).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it does not answer in time.
    pub async fn status_of(&self, addr: SocketAddr) -> Result<NodeStatus, Error> {
        let timeout = self.inner.config.timeout.min(STATUS_TIMEOUT_MAX);
        match self.send_to(addr, &Request::Status, timeout).await? {
            Response::Status(status) => Ok(status),
            other => Err(self.unexpected(&other)),
        }
    }

    /// The cluster's members and leader, as the leader knows them.
    ///
    /// # Errors
    ///
    /// As [`KvClient::get`].
    pub async fn members(&self) -> Result<(Vec<Member>, Option<NodeId>), Error> {
        match self.send(&Request::MemberList).await? {
            Response::Members { members, leader } => Ok((members, leader)),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Sends an administrative request (member add/remove, leader transfer, snapshot) to
    /// the leader; returns the leader and the log index it reached.
    ///
    /// # Errors
    ///
    /// As [`KvClient::get`].
    pub async fn admin(&self, request: Request) -> Result<(Option<NodeId>, LogIndex), Error> {
        match self.send(&request).await? {
            Response::Done { leader, index } => Ok((leader, index)),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Sends an administrative request to the node at `addr` only (no redirect).
    ///
    /// # Errors
    ///
    /// As [`KvClient::get`].
    pub async fn admin_at(
        &self,
        addr: SocketAddr,
        request: &Request,
    ) -> Result<(Option<NodeId>, LogIndex), Error> {
        match self.send_to(addr, request, self.inner.config.timeout).await? {
            Response::Done { leader, index } => Ok((leader, index)),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        let connections: Vec<RpcClient> = {
            let mut connections =
                self.inner.connections.lock().unwrap_or_else(PoisonError::into_inner);
            connections.drain().map(|(_, connection)| connection).collect()
        };
        for connection in connections {
            connection.close();
        }
    }

    fn expect_written(&self, response: Response) -> Result<WriteOutcome, Error> {
        match response {
            Response::Written(outcome) => Ok(outcome),
            other => Err(self.unexpected(&other)),
        }
    }

    fn unexpected(&self, response: &Response) -> Error {
        let addr = self.inner.config.endpoints.first().copied().unwrap_or(unspecified());
        Error::Protocol { addr, reason: format!("unexpected response {response:?}") }
    }

    /// Sends one request to `addr` only, retrying on that node until `timeout`.
    async fn send_to(
        &self,
        addr: SocketAddr,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, Error> {
        let payload =
            encode(request).map_err(|error| Error::Protocol { addr, reason: error.to_string() })?;
        let deadline = Instant::now() + timeout;
        let mut problem = String::from("no attempt made");
        let mut backoff = BACKOFF_MIN;
        while Instant::now() < deadline {
            match self.attempt(addr, payload.clone(), deadline).await {
                Ok(Response::Error(ServerError::Unavailable { reason })) => problem = reason,
                Ok(response) => return into_result(addr, response),
                Err(error) => problem = error,
            }
            pause(&mut backoff, deadline).await;
        }
        Err(Error::Timeout { after: timeout, last_problem: problem })
    }

    /// Sends a write under a session of its own, so that its retries apply at most once;
    /// `request` wraps the command and the client's timeout into the request to send.
    async fn write(
        &self,
        write: Write,
        request: fn(Command, u32) -> Request,
    ) -> Result<Response, Error> {
        let session = self.take_session();
        // Retries resend the same bytes, so each carries the whole timeout: the node's
        // deadline for a retry may pass after this client gave up, never before.
        let timeout_ms = u32::try_from(self.inner.config.timeout.as_millis()).unwrap_or(u32::MAX);
        let command = Command { session, write };
        let result = self.send(&request(command, timeout_ms)).await;
        // An expired session refuses every later write too: start a new one instead.
        if !matches!(result, Err(Error::SessionExpired { .. })) {
            self.return_session(session);
        }
        result
    }

    /// Sends a request to the leader, following redirects and retrying until the timeout.
    ///
    /// The known leader is asked first. When there is none, or it has not answered within
    /// [`HEDGE_DELAY`], every endpoint is asked at once, each retrying on its own, and the
    /// first answer wins: a dead endpoint then costs nothing but its own attempts, and the
    /// request lands as soon as a new leader is elected. A write carries its session, so
    /// copies on several nodes apply once.
    async fn send(&self, request: &Request) -> Result<Response, Error> {
        let config = &self.inner.config;
        let first = config.endpoints.first().copied().unwrap_or(unspecified());
        let payload = encode(request)
            .map_err(|error| Error::Protocol { addr: first, reason: error.to_string() })?;
        let deadline = Instant::now() + config.timeout;
        if !config.follow_leader {
            return self
                .send_without_following(self.leader().unwrap_or(first), payload, deadline)
                .await;
        }
        let mut problem = String::from("no attempt made");
        let leader = self.leader();
        if let Some(leader) = leader {
            // The common case, one exchange: no racers, and no timer of its own (the
            // connection sweeps the call's deadline). The connection is kept when the
            // leader is merely slow: other calls share it.
            let hedge_at = (Instant::now() + HEDGE_DELAY).min(deadline);
            match self.attempt(leader, payload.clone(), hedge_at).await {
                Ok(Response::Error(
                    ServerError::NotLeader { .. }
                    | ServerError::Unavailable { .. }
                    | ServerError::OutcomeUnknown { .. },
                )) => {}
                Ok(response) => return into_result(leader, response),
                Err(error) => problem = error,
            }
        }
        // No leader known, or it did not answer in time: every endpoint at once (and the
        // known leader again, if it is not one of them).
        let mut racers = FuturesUnordered::new();
        let outside = leader.filter(|leader| !config.endpoints.contains(leader));
        for &endpoint in config.endpoints.iter().chain(outside.iter()) {
            racers.push(self.keep_trying(endpoint, payload.clone(), deadline));
        }
        while let Some(outcome) = racers.next().await {
            match outcome {
                Ok((target, response)) => {
                    self.set_leader(target);
                    return into_result(target, response);
                }
                Err(last_problem) => problem = last_problem,
            }
        }
        Err(Error::Timeout { after: config.timeout, last_problem: problem })
    }

    /// Asks `target` until it answers or the deadline passes: the answer
    /// with the node that gave it, or the last problem. A "not leader" naming a node outside
    /// the endpoint list moves the attempts there (the endpoints' own racers cover the rest).
    async fn keep_trying(
        &self,
        mut target: SocketAddr,
        payload: Bytes,
        deadline: Instant,
    ) -> Result<(SocketAddr, Response), String> {
        let endpoints = &self.inner.config.endpoints;
        let mut backoff = BACKOFF_MIN;
        let mut problem = String::from("no attempt made");
        while Instant::now() < deadline {
            match self.attempt(target, payload.clone(), deadline).await {
                Ok(Response::Error(ServerError::NotLeader { leader, addr })) => {
                    let leader_id = leader.map(|leader| leader.0);
                    problem = format!("{target} is not the leader (leader {leader_id:?})");
                    if let Some(named) = addr.filter(|named| !endpoints.contains(named)) {
                        debug!(from = %target, to = %named, "following the leader");
                        target = named;
                        continue;
                    }
                }
                Ok(Response::Error(
                    ServerError::Unavailable { reason } | ServerError::OutcomeUnknown { reason },
                )) => problem = format!("{target}: {reason}"),
                Ok(response) => return Ok((target, response)),
                Err(error) => {
                    self.forget(target).await;
                    problem = error;
                }
            }
            self.clear_leader(target);
            pause(&mut backoff, deadline).await;
        }
        Err(problem)
    }

    /// `--no-follow`: one node only; a "not leader" answer is the result, naming the leader.
    async fn send_without_following(
        &self,
        target: SocketAddr,
        payload: Bytes,
        deadline: Instant,
    ) -> Result<Response, Error> {
        let timeout = self.inner.config.timeout;
        let mut backoff = BACKOFF_MIN;
        let mut problem = String::from("no attempt made");
        while Instant::now() < deadline {
            match self.attempt(target, payload.clone(), deadline).await {
                Ok(Response::Error(ServerError::NotLeader { leader, addr })) => {
                    return Err(Error::NotLeader { node: target.to_string(), leader, addr });
                }
                Ok(Response::Error(
                    ServerError::Unavailable { reason } | ServerError::OutcomeUnknown { reason },
                )) => problem = format!("{target}: {reason}"),
                Ok(response) => return into_result(target, response),
                Err(error) => {
                    self.forget(target).await;
                    problem = error;
                }
            }
            pause(&mut backoff, deadline).await;
        }
        Err(Error::Timeout { after: timeout, last_problem: problem })
    }

    /// One exchange with `addr`, bounded by the deadline and [`ATTEMPT_TIMEOUT_MAX`]; a
    /// transport failure comes back as a description.
    async fn attempt(
        &self,
        addr: SocketAddr,
        payload: Bytes,
        deadline: Instant,
    ) -> Result<Response, String> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let limit = remaining.min(ATTEMPT_TIMEOUT_MAX);
        let attempt_deadline = Instant::now() + limit;
        let connection = match self.cached_connection(addr) {
            Some(connection) => connection,
            // Connecting has its own limits (the handshake timeout); the call below has its
            // deadline swept by the connection's reader, so a request costs no timer.
            None => tokio::time::timeout(limit, self.connect(addr))
                .await
                .unwrap_or_else(|_| Err(format!("{addr} did not answer within {limit:?}")))?,
        };
        let left = attempt_deadline.saturating_duration_since(Instant::now());
        let bytes = connection.call(payload, left).await.map_err(|error| match error {
            raft_net_quic::Error::Timeout { .. } => {
                format!("{addr} did not answer within {limit:?}")
            }
            other => other.to_string(),
        })?;
        decode::<Response>(&bytes).map_err(|error| format!("undecodable answer: {error}"))
    }

    fn cached_connection(&self, addr: SocketAddr) -> Option<RpcClient> {
        let connections = self.inner.connections.lock().unwrap_or_else(PoisonError::into_inner);
        connections.get(&addr).cloned()
    }

    async fn connect(&self, addr: SocketAddr) -> Result<RpcClient, String> {
        let _connecting = self.inner.connecting.lock().await;
        if let Some(connection) = self.cached_connection(addr) {
            return Ok(connection);
        }
        let config = &self.inner.config;
        let mut rpc_config = RpcClientConfig::new(config.cluster_id.clone(), config.caller);
        rpc_config.bind_addr = bind_addr_for(addr);
        rpc_config.handshake_timeout = config.connect_timeout;
        rpc_config.transport = config.transport;
        let connection = RpcClient::connect(&rpc_config, &config.identity, addr, None)
            .await
            .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
        let mut connections = self.inner.connections.lock().unwrap_or_else(PoisonError::into_inner);
        connections.insert(addr, connection.clone());
        Ok(connection)
    }

    async fn forget(&self, addr: SocketAddr) {
        let removed = {
            let mut connections =
                self.inner.connections.lock().unwrap_or_else(PoisonError::into_inner);
            connections.remove(&addr)
        };
        if let Some(connection) = removed {
            connection.close();
        }
    }

    fn leader(&self) -> Option<SocketAddr> {
        *self.inner.leader.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_leader(&self, addr: SocketAddr) {
        *self.inner.leader.lock().unwrap_or_else(PoisonError::into_inner) = Some(addr);
    }

    fn clear_leader(&self, addr: SocketAddr) {
        let mut leader = self.inner.leader.lock().unwrap_or_else(PoisonError::into_inner);
        if *leader == Some(addr) {
            *leader = None;
        }
    }

    /// A session for one write, with its sequence advanced.
    fn take_session(&self) -> Session {
        let mut sessions = self.inner.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let mut session = sessions
            .pop()
            .unwrap_or_else(|| Session { client_id: new_session_client_id(), sequence: 0 });
        session.sequence += 1;
        session
    }

    fn return_session(&self, session: Session) {
        let mut sessions = self.inner.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() < SESSIONS_KEPT_MAX {
            sessions.push(session);
        }
    }
}

/// Turns a final answer into the caller's result.
fn into_result(addr: SocketAddr, response: Response) -> Result<Response, Error> {
    match response {
        Response::Error(error) => Err(Error::from_server(addr, error)),
        response => Ok(response),
    }
}

/// Sleeps for the backoff (not past the deadline) and doubles it.
async fn pause(backoff: &mut Duration, deadline: Instant) {
    let wake = (Instant::now() + *backoff).min(deadline);
    tokio::time::sleep_until(wake).await;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}

/// Binds the client's UDP socket to the loopback interface when the server is on it, so a
/// client on loopback listens nowhere else.
fn bind_addr_for(server: SocketAddr) -> SocketAddr {
    let ip = match server.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_server_gets_a_loopback_client_socket() {
        let server = SocketAddr::from(([127, 0, 0, 1], 7000));
        assert_eq!(bind_addr_for(server), SocketAddr::from(([127, 0, 0, 1], 0)));
        let remote = SocketAddr::from(([10, 0, 0, 1], 7000));
        assert_eq!(bind_addr_for(remote), SocketAddr::from(([0, 0, 0, 0], 0)));
    }

    #[test]
    fn server_refusals_become_typed_errors() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let conflict = Response::Error(ServerError::Conflict { current_version: Some(4) });
        assert!(matches!(
            into_result(addr, conflict),
            Err(Error::Conflict { current_version: Some(4) })
        ));
        let expired = Response::Error(ServerError::SessionExpired { reason: "gone".into() });
        assert!(into_result(addr, expired).unwrap_err().is_outcome_unknown());
        let value = Response::Value { found: None, index: LogIndex(3) };
        assert_eq!(into_result(addr, value.clone()).unwrap(), value);
    }
}
