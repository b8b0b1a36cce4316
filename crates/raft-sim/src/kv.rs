//! A key-value workload whose client history is checked for linearizability.
//!
//! A few simulated clients ([`KvWorkloadConfig::clients`]) each run one operation at a time
//! against the nodes' [`kv_store::KvStore`]s (the cluster must run with
//! [`crate::SimConfig::kv_store`]): random `Put`, compare-and-set by version, and `Delete`
//! writes, proposed as [`Command`]s of the client's session and retried under the same
//! sequence number until some node applies them (or the client gives up), and linearizable
//! reads confirmed by ReadIndex and served from a node's store once it applied the read
//! index. Every invocation and completion is recorded, on simulated time, in a
//! [`History`]; [`KvWorkload::check`] then runs the `kv-linearizability` checker on it.
//!
//! ```text
//!   client ──Command{Session, Write}──> random node ──> leader ──> log ──> KvStore
//!      │ retried with the same sequence until answered              first answer │
//!      │ read(key) ──> ReadIndex ──> served once applied ≥ read index ──> value   │
//!      └──────── invoke / complete (simulated ms) ──> History ──> check ◄────────┘
//! ```
//!
//! A write is answered when the first node applies it, as a server answers its client; a
//! write the client gave up on stays incomplete (it may or may not have happened), and so
//! does a read that was never served. Every written value is unique, so a read names the
//! write it saw.

use std::collections::BTreeMap;

use bytes::Bytes;
use kv_linearizability::{
    Budget, Call, CasResult, ClientId, Expect, History, OpId, Outcome, Report, check,
};
use kv_store::{Command, KeyValue, Rejection, Response, Session, Write};
use raft_core::{NodeId, ReadId};
use rand::Rng;

pub use crate::kv_application::WriteAnswer;

use crate::client::{READ_TIMEOUT_MS, Retry, propose_via_any_node};
use crate::cluster::Cluster;

/// How the workload's clients read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvReads {
    /// Linearizable reads: ReadIndex (or the lease, as the nodes are configured), served
    /// from a node's store once it applied the read index.
    ReadIndex,
    /// Broken on purpose: read a random running node's store at once, followers and
    /// deposed leaders included, without ReadIndex. Such reads can be stale; this exists so
    /// tests can prove the linearizability check notices.
    LocalWithoutReadIndex,
}

/// The shape of a KV workload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KvWorkloadConfig {
    /// Clients, each with its own session and one operation outstanding at a time.
    pub clients: u64,
    /// Distinct keys. Few keys make clients contend, so compare-and-sets conflict and
    /// reads race writes.
    pub keys: u64,
    /// The share of operations that are reads, in `[0, 1]`.
    pub read_ratio: f64,
    /// Proposals of one write before its client gives up on it (while the cluster is in
    /// chaos; [`KvWorkload::finish`] never gives up). With the client's backoff, 5 means
    /// giving up about 7 s after the first proposal.
    pub write_attempts_max: u32,
    /// How reads are served.
    pub reads: KvReads,
}

impl Default for KvWorkloadConfig {
    /// Three clients on four keys, half reads, giving up on a write after five proposals,
    /// linearizable reads.
    fn default() -> KvWorkloadConfig {
        KvWorkloadConfig {
            clients: 3,
            keys: 4,
            read_ratio: 0.5,
            write_attempts_max: 5,
            reads: KvReads::ReadIndex,
        }
    }
}

/// The operation a client is waiting on.
#[derive(Clone, Debug)]
enum Pending {
    Write { op: OpId, sequence: u64, key: u64, command: Bytes, retry: Retry, attempts: u32 },
    Read { op: OpId, read_id: ReadId, key: u64, give_up_ms: u64 },
}

/// One client: its session and what it last saw of each key's version.
#[derive(Clone, Debug)]
struct KvClient {
    /// The session's client id. Client `n` of `c` starts with id `n` and moves on to
    /// `n + c`, `n + 2c`, ... when the store has no session for it, so ids stay unique.
    id: u64,
    /// The sequence number of the session's next write.
    next_sequence: u64,
    /// The version each key had when the client last heard of it, for compare-and-sets.
    versions: BTreeMap<u64, u64>,
    pending: Option<Pending>,
}

/// What the workload did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvCounts {
    /// Writes invoked.
    pub writes: u64,
    /// Writes answered.
    pub writes_answered: u64,
    /// Writes the client gave up on, or that found the client's session unknown to the
    /// store (its earlier writes were all given up on and never applied).
    pub writes_abandoned: u64,
    /// Reads a node accepted.
    pub reads: u64,
    /// Reads served.
    pub reads_served: u64,
}

/// Simulated KV clients and the history of what they did (see the module documentation).
#[derive(Debug)]
pub struct KvWorkload {
    config: KvWorkloadConfig,
    clients: Vec<KvClient>,
    history: History<u64, u64>,
    /// The next value to write; every write's value is unique.
    next_value: u64,
    counts: KvCounts,
}

impl KvWorkload {
    /// A workload with `config.clients` clients, numbered (and their sessions named) from 1.
    #[must_use]
    pub fn new(config: KvWorkloadConfig) -> KvWorkload {
        let clients = (1..=config.clients)
            .map(|id| KvClient { id, next_sequence: 1, versions: BTreeMap::new(), pending: None })
            .collect();
        KvWorkload {
            config,
            clients,
            history: History::new(),
            next_value: 1,
            counts: KvCounts::default(),
        }
    }

    /// The history recorded so far.
    #[must_use]
    pub fn history(&self) -> &History<u64, u64> {
        &self.history
    }

    /// What the workload did so far.
    #[must_use]
    pub fn counts(&self) -> KvCounts {
        self.counts
    }

    /// Writes still waiting for an answer.
    #[must_use]
    pub fn writes_pending(&self) -> usize {
        self.clients
            .iter()
            .filter(|client| matches!(client.pending, Some(Pending::Write { .. })))
            .count()
    }

    /// Checks the history for linearizability, deterministically (bounded by search steps,
    /// not wall time).
    #[must_use]
    pub fn check(&self) -> Report<u64, u64> {
        check(&self.history, Budget { duration_max_per_key: None, ..Budget::default() })
    }

    /// One round of every client's life: note answers and served reads, retry writes due
    /// (or give up on them), give up on reads not served in time, and, for each client with
    /// nothing outstanding, invoke a new operation with probability `issue_probability`.
    pub fn act(&mut self, cluster: &mut Cluster, issue_probability: f64) {
        self.round(cluster, issue_probability, true);
    }

    /// A round for a healed cluster: no new operations, and writes are retried until
    /// answered, never given up on.
    pub fn finish(&mut self, cluster: &mut Cluster) {
        self.round(cluster, 0.0, false);
    }

    fn round(&mut self, cluster: &mut Cluster, issue_probability: f64, may_give_up: bool) {
        for position in 0..self.clients.len() {
            self.poll(cluster, position, may_give_up);
            let idle = self.clients[position].pending.is_none();
            if idle
                && issue_probability > 0.0
                && cluster.rng().random_bool(issue_probability.min(1.0))
            {
                if cluster.rng().random_bool(self.config.read_ratio) {
                    self.invoke_read(cluster, position);
                } else {
                    self.invoke_write(cluster, position);
                }
            }
        }
    }

    /// Completes, retries or abandons what client `position` waits on.
    fn poll(&mut self, cluster: &mut Cluster, position: usize, may_give_up: bool) {
        let now_ms = cluster.now_ms();
        let seed = cluster.config().seed;
        let client_id = self.clients[position].id;
        match self.clients[position].pending.clone() {
            None => {}
            Some(Pending::Read { op, read_id, key, give_up_ms }) => {
                if let Some((found, served_at_ms)) = cluster.kv_read_result(read_id) {
                    let value = found.as_ref().map(|found| decode_value(found, seed));
                    let version = found.as_ref().map_or(0, |found| found.meta.version);
                    self.clients[position].versions.insert(key, version);
                    self.complete(op, Outcome::Read { value }, served_at_ms, seed);
                    self.counts.reads_served += 1;
                    self.clients[position].pending = None;
                } else if now_ms >= give_up_ms {
                    // Left incomplete: a read that was never answered changed nothing.
                    self.clients[position].pending = None;
                }
            }
            Some(Pending::Write { op, sequence, key, command, retry, attempts }) => {
                if let Some(answer) = cluster.kv_write_answer(client_id, sequence).cloned() {
                    self.clients[position].pending = None;
                    if let Response::Rejected(Rejection::SessionExpired { .. }) = answer.response {
                        // Every earlier write of the session was given up on and none
                        // applied, so the store never opened it: this write did not apply
                        // (it stays incomplete, which allows that) and the client starts a
                        // new session, as kv-store asks.
                        self.counts.writes_abandoned += 1;
                        let client = &mut self.clients[position];
                        client.id += self.config.clients;
                        client.next_sequence = 1;
                        return;
                    }
                    let call = &self.history.operations()[op.0].call;
                    let (outcome, version) = outcome_of(call, &answer.response, seed);
                    self.clients[position].versions.insert(key, version);
                    self.complete(op, outcome, answer.applied_at_ms, seed);
                    self.counts.writes_answered += 1;
                } else if now_ms >= retry.next_ms {
                    if may_give_up && attempts >= self.config.write_attempts_max {
                        // Left incomplete: it may still apply, or never.
                        self.counts.writes_abandoned += 1;
                        self.clients[position].pending = None;
                        return;
                    }
                    let retry = retry.after(now_ms);
                    let attempts = attempts + 1;
                    let again = command.clone();
                    self.clients[position].pending =
                        Some(Pending::Write { op, sequence, key, command, retry, attempts });
                    propose_via_any_node(cluster, |_| again);
                }
            }
        }
    }

    fn complete(&mut self, op: OpId, outcome: Outcome<u64>, at_ms: u64, seed: u64) {
        if let Err(error) = self.history.complete(op, outcome, at_ms) {
            panic!("the KV workload recorded an impossible completion (seed {seed}): {error}");
        }
    }

    /// Invokes a random write for client `position`: a put, a compare-and-set put, a
    /// delete or a compare-and-set delete of a random key, with a value never written
    /// before.
    fn invoke_write(&mut self, cluster: &mut Cluster, position: usize) {
        let key = cluster.rng().random_range(0..self.config.keys);
        let value = self.next_value;
        self.next_value += 1;
        let known_version = self.clients[position].versions.get(&key).copied().unwrap_or(0);
        // Mostly the version last seen, sometimes the next one, so some sets are stale.
        let expect_version = known_version + u64::from(cluster.rng().random_bool(0.2));
        let (call, write) = match cluster.rng().random_range(0..20) {
            0..8 => (
                Call::Write { value },
                Write::Put { key: key_bytes(key), value: value_bytes(value), expect_version: None },
            ),
            8..14 => (
                Call::Cas { expect: Expect::Version(expect_version), new: Some(value) },
                Write::Put {
                    key: key_bytes(key),
                    value: value_bytes(value),
                    expect_version: Some(expect_version),
                },
            ),
            14..17 => (Call::Delete, Write::Delete { key: key_bytes(key), expect_version: None }),
            _ => (
                Call::Cas { expect: Expect::Version(expect_version), new: None },
                Write::Delete { key: key_bytes(key), expect_version: Some(expect_version) },
            ),
        };
        let client = &mut self.clients[position];
        let sequence = client.next_sequence;
        client.next_sequence += 1;
        let command = Command { session: Session { client_id: client.id, sequence }, write }
            .encode()
            .expect("a simulated command encodes");
        let now_ms = cluster.now_ms();
        let op = self.history.invoke(ClientId(client.id), key, call, now_ms);
        client.pending = Some(Pending::Write {
            op,
            sequence,
            key,
            command: command.clone(),
            retry: Retry::first(now_ms),
            attempts: 1,
        });
        self.counts.writes += 1;
        propose_via_any_node(cluster, |_| command);
    }

    /// Invokes a read of a random key for client `position`, as [`KvWorkloadConfig::reads`]
    /// says.
    fn invoke_read(&mut self, cluster: &mut Cluster, position: usize) {
        let key = cluster.rng().random_range(0..self.config.keys);
        let client_id = ClientId(self.clients[position].id);
        let now_ms = cluster.now_ms();
        let up: Vec<NodeId> =
            cluster.node_ids().into_iter().filter(|&node| cluster.is_up(node)).collect();
        if self.config.reads == KvReads::LocalWithoutReadIndex {
            let Some(&target) = up.get(cluster.rng().random_range(0..up.len().max(1))) else {
                return;
            };
            let Some(store) = cluster.kv_store(target) else {
                return;
            };
            let seed = cluster.config().seed;
            let value = store.get(&key_bytes(key)).map(|found| decode_value(&found, seed));
            let outcome = Some((Outcome::Read { value }, now_ms));
            self.history
                .record(client_id, key, Call::Read, now_ms, outcome)
                .expect("a read answered at once is a valid record");
            self.counts.reads += 1;
            self.counts.reads_served += 1;
            return;
        }
        // Mostly where the client believes the leader is (stale leaders included), and
        // otherwise any node, followers forwarding to the leader.
        let leaders: Vec<NodeId> = cluster.leaders().into_iter().map(|(id, _)| id).collect();
        let candidates =
            if !leaders.is_empty() && cluster.rng().random_bool(0.5) { leaders } else { up };
        let Some(&target) = candidates.get(cluster.rng().random_range(0..candidates.len().max(1)))
        else {
            return;
        };
        let Some(read_id) = cluster.kv_read(target, key_bytes(key)) else {
            return;
        };
        let op = self.history.invoke(client_id, key, Call::Read, now_ms);
        self.clients[position].pending =
            Some(Pending::Read { op, read_id, key, give_up_ms: now_ms + READ_TIMEOUT_MS });
        self.counts.reads += 1;
    }
}

/// The key `key` as the store holds it.
fn key_bytes(key: u64) -> Bytes {
    Bytes::from(format!("k{key}"))
}

/// The value `value` as the store holds it.
fn value_bytes(value: u64) -> Bytes {
    Bytes::copy_from_slice(&value.to_le_bytes())
}

fn decode_value(found: &KeyValue, seed: u64) -> u64 {
    let bytes: [u8; 8] = found.value.as_ref().try_into().unwrap_or_else(|_| {
        panic!("key {:?} holds a value the workload never wrote (seed {seed})", found.key)
    });
    u64::from_le_bytes(bytes)
}

/// What the client was told, for the history, and the key's version it learned.
///
/// # Panics
///
/// If the store answered `call` with a response of another kind (a refusal included: the
/// workload's writes are well-formed and answered within their session).
fn outcome_of(call: &Call<u64>, response: &Response, seed: u64) -> (Outcome<u64>, u64) {
    match (call, response) {
        (Call::Write { .. }, Response::Written(written)) => (Outcome::Written, written.version),
        (Call::Delete, Response::Deleted(_)) => (Outcome::Deleted, 0),
        (Call::Cas { .. }, Response::Written(written)) => {
            (Outcome::Cas(CasResult::Applied), written.version)
        }
        (Call::Cas { .. }, Response::Deleted(_)) => (Outcome::Cas(CasResult::Applied), 0),
        (Call::Cas { .. }, Response::Conflict { current_version }) => {
            (Outcome::Cas(CasResult::Conflict), current_version.unwrap_or(0))
        }
        (call, response) => {
            panic!("the store answered a {} with {response:?} (seed {seed})", call.kind())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv_store::{DeleteResult, WriteResult};
    use raft_core::LogIndex;

    #[test]
    fn answers_map_to_outcomes_and_versions() {
        let written =
            Response::Written(WriteResult { index: LogIndex(3), version: 2, previous: None });
        assert_eq!(outcome_of(&Call::Write { value: 1 }, &written, 0), (Outcome::Written, 2));
        let cas = Call::Cas { expect: Expect::Version(1), new: Some(1) };
        assert_eq!(outcome_of(&cas, &written, 0), (Outcome::Cas(CasResult::Applied), 2));
        let conflict = Response::Conflict { current_version: Some(4) };
        assert_eq!(outcome_of(&cas, &conflict, 0), (Outcome::Cas(CasResult::Conflict), 4));
        let deleted = Response::Deleted(DeleteResult { index: LogIndex(4), previous: None });
        assert_eq!(outcome_of(&Call::Delete, &deleted, 0), (Outcome::Deleted, 0));
    }

    #[test]
    #[should_panic(expected = "answered a write")]
    fn a_refused_write_is_a_failure() {
        let _ = outcome_of(&Call::Write { value: 1 }, &Response::NoOp, 0);
    }
}
