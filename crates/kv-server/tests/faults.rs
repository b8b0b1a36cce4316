//! Process-level fault tests: three real `kv-server` processes on 127.0.0.1, concurrent
//! clients recording every invocation and completion, and a nemesis that kills, pauses and
//! partitions nodes for a bounded time. The clients speak kv-client's QUIC protocol, or
//! etcd's v3 API through the `etcd-client` crate. At the end every history is checked for
//! linearizability (`kv-linearizability`), final reads included, so an acknowledged write
//! that went missing fails the check.
//!
//! Each run lasts `KV_FAULTS_SECONDS` seconds of faults (default 12); `cargo xtask faults
//! --time 600` runs longer. Needs the `fault-injection` feature (partitions go through the
//! transport's switch, over each node's HTTP endpoint).
#![cfg(feature = "fault-injection")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Cluster;
use kv_client::{Consistency, Error as ClientError, KvClient};
use kv_linearizability::{Budget, Call, CasResult, ClientId, Expect, History, Outcome, check};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Keys the clients share: few, so operations collide.
const KEYS: u64 = 3;
/// Concurrent clients.
const CLIENTS: u64 = 4;
/// How long a client waits after an operation failed before its next one.
const FAILURE_PAUSE: Duration = Duration::from_millis(20);
/// How long one client operation may take before it counts as "maybe happened".
const OPERATION_TIMEOUT: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nemesis {
    /// SIGKILL a random node (often the leader), restart it a moment later.
    Crash,
    /// SIGSTOP a node for longer than the election timeout, then SIGCONT.
    Pause,
    /// Isolate the leader, split majority/minority, or cut one link (a bridge).
    Partition,
}

fn seconds_of_faults() -> u64 {
    std::env::var("KV_FAULTS_SECONDS").ok().and_then(|text| text.parse().ok()).unwrap_or(12)
}

/// The shared, timestamped history.
#[derive(Clone)]
struct Recorder {
    history: Arc<Mutex<History<u64, u64>>>,
    started: Instant,
}

impl Recorder {
    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap()
    }
}

/// How long a node's HTTP endpoint may take to answer: a node restarted a moment ago
/// loads its store and restores its snapshot first, and CI runs these tests' five debug
/// clusters at once on two cores.
const HTTP_WAIT_MAX: Duration = Duration::from_secs(20);

/// GET `path` on node `id`'s HTTP endpoint, retrying while it starts. On failure the panic
/// says whether the process is still running, and gives the end of its log.
fn http_get(cluster: &mut Cluster, id: u64, path: &str) {
    let addr = cluster.http_addr(id);
    let deadline = Instant::now() + HTTP_WAIT_MAX;
    loop {
        match try_http_get(addr, path) {
            Ok(response) => {
                assert!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
                return;
            }
            Err(error) if Instant::now() >= deadline => {
                let state = match cluster.processes.get_mut(&id).map(Child::try_wait) {
                    Some(Ok(None)) => "still running".to_owned(),
                    Some(Ok(Some(status))) => format!("exited: {status}"),
                    Some(Err(error)) => format!("unknown: {error}"),
                    None => "not started".to_owned(),
                };
                let log = std::fs::read_to_string(cluster.log_path(id)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "GET node {id} {addr}{path}: {error}; the process is {state}; the end of \
                     its log:\n{}",
                    tail.join("\n")
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn try_http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// Cuts (or restores) traffic between `a` and `b`, on both sides.
fn cut(cluster: &mut Cluster, a: u64, b: u64) {
    http_get(cluster, a, &format!("/fault?peer={b}&partitioned=true"));
    http_get(cluster, b, &format!("/fault?peer={a}&partitioned=true"));
}

fn heal(cluster: &mut Cluster) {
    let ids: Vec<u64> = cluster.processes.keys().copied().collect();
    for id in ids {
        http_get(cluster, id, "/fault/clear");
    }
}

fn signal(cluster: &Cluster, id: u64, name: &str) {
    let pid = cluster.processes[&id].id().to_string();
    assert!(Command::new("kill").args([name, &pid]).status().unwrap().success());
}

/// The current leader's id, if the nodes that answer agree on one.
fn current_leader(cluster: &Cluster) -> Option<u64> {
    cluster.statuses().into_iter().find(|(_, status)| status["role"] == "leader").map(|(id, _)| id)
}

/// Runs the nemesis until `stop`; returns how many faults it injected.
fn run_nemesis(cluster: &mut Cluster, nemesis: Nemesis, seconds: u64, seed: u64) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let ids: Vec<u64> = cluster.addrs.keys().copied().collect();
    let mut faults = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(rng.random_range(300..900)));
        let leader = current_leader(cluster);
        let victim = match leader {
            Some(leader) if rng.random_bool(0.5) => leader,
            _ => ids[rng.random_range(0..ids.len())],
        };
        faults += 1;
        match nemesis {
            Nemesis::Crash => {
                cluster.kill(victim);
                std::thread::sleep(Duration::from_millis(rng.random_range(200..1200)));
                cluster.start_node(victim);
            }
            Nemesis::Pause => {
                signal(cluster, victim, "-STOP");
                std::thread::sleep(Duration::from_millis(rng.random_range(300..1500)));
                signal(cluster, victim, "-CONT");
            }
            Nemesis::Partition => {
                let others: Vec<u64> = ids.iter().copied().filter(|&id| id != victim).collect();
                match rng.random_range(0..3) {
                    // Isolate the victim (often the leader): a minority of one.
                    0 | 1 => {
                        for &other in &others {
                            cut(cluster, victim, other);
                        }
                    }
                    // A bridge: the victim still hears both others, who cannot hear each
                    // other.
                    _ => cut(cluster, others[0], others[1]),
                }
                std::thread::sleep(Duration::from_millis(rng.random_range(300..1500)));
                heal(cluster);
            }
        }
    }
    faults
}

/// How the clients reach the cluster: kv-client over QUIC, or etcd's v3 API through the
/// `etcd-client` crate (writes to a follower are forwarded to the leader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    Quic,
    Etcd,
}

/// One client connection, of either API.
#[derive(Clone)]
enum Connection {
    Quic(KvClient),
    Etcd(Box<etcd_client::Client>),
}

/// What a CAS found: applied (with the new version) or a conflict (with the current one).
enum CasAnswer {
    Applied(u64),
    Conflict(u64),
}

fn parse_value(bytes: &[u8]) -> u64 {
    String::from_utf8_lossy(bytes).parse().unwrap()
}

impl Connection {
    async fn open(cluster: &Cluster, api: Api) -> Connection {
        match api {
            Api::Quic => Connection::Quic(client_for(cluster)),
            Api::Etcd => {
                let endpoints: Vec<String> = cluster
                    .addrs
                    .keys()
                    .map(|&id| format!("http://{}", cluster.etcd_addr(id)))
                    .collect();
                let options = etcd_client::ConnectOptions::new()
                    .with_timeout(OPERATION_TIMEOUT)
                    .with_connect_timeout(Duration::from_millis(300));
                Connection::Etcd(Box::new(
                    etcd_client::Client::connect(endpoints, Some(options)).await.unwrap(),
                ))
            }
        }
    }

    /// A linearizable read: the value and the key's version (0: absent); `None` when it
    /// failed.
    async fn read(&mut self, key: Bytes) -> Option<(Option<u64>, u64)> {
        match self {
            Connection::Quic(client) => {
                let found = client.get(key, Consistency::Linearizable).await.ok()?;
                let version = found.as_ref().map_or(0, |kv| kv.meta.version);
                Some((found.map(|kv| parse_value(&kv.value)), version))
            }
            Connection::Etcd(client) => {
                let response = client.get(key.to_vec(), None).await.ok()?;
                let found = response.kvs().first();
                let version = found.map_or(0, |kv| u64::try_from(kv.version()).unwrap());
                Some((found.map(|kv| parse_value(kv.value())), version))
            }
        }
    }

    /// A put; the key's new version.
    async fn write(&mut self, key: Bytes, value: Bytes) -> Option<u64> {
        match self {
            Connection::Quic(client) => client.put(key, value).await.ok().map(|w| w.version),
            Connection::Etcd(client) => {
                let options = etcd_client::PutOptions::new().with_prev_key();
                let response =
                    client.put(key.to_vec(), value.to_vec(), Some(options)).await.ok()?;
                let previous = response.prev_key().map_or(0, |kv| kv.version());
                Some(u64::try_from(previous).unwrap() + 1)
            }
        }
    }

    /// A put only at version `expected` (0: only if absent).
    async fn cas(&mut self, key: Bytes, expected: u64, value: Bytes) -> Option<CasAnswer> {
        match self {
            Connection::Quic(client) => {
                match client.put_versioned(key, value, Some(expected)).await {
                    Ok(written) => Some(CasAnswer::Applied(written.version)),
                    Err(ClientError::Conflict { current_version }) => {
                        Some(CasAnswer::Conflict(current_version.unwrap_or(0)))
                    }
                    Err(_) => None,
                }
            }
            Connection::Etcd(client) => {
                use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
                let version = i64::try_from(expected).unwrap();
                let txn = Txn::new()
                    .when([Compare::version(key.to_vec(), CompareOp::Equal, version)])
                    .and_then([TxnOp::put(key.to_vec(), value.to_vec(), None)])
                    .or_else([TxnOp::get(key.to_vec(), None)]);
                let response = client.txn(txn).await.ok()?;
                if response.succeeded() {
                    return Some(CasAnswer::Applied(expected + 1));
                }
                let current = match response.op_responses().first() {
                    Some(TxnOpResponse::Get(get)) => get.kvs().first().map_or(0, |kv| kv.version()),
                    _ => panic!("the failure branch is a get"),
                };
                Some(CasAnswer::Conflict(u64::try_from(current).unwrap()))
            }
        }
    }

    async fn delete(&mut self, key: Bytes) -> Option<()> {
        match self {
            Connection::Quic(client) => client.delete(key, None).await.ok().map(drop),
            Connection::Etcd(client) => client.delete(key.to_vec(), None).await.ok().map(drop),
        }
    }
}

/// One client: random reads, writes, version CASes and deletes on the shared keys, each
/// recorded with its invocation and completion times.
async fn run_client(
    mut connection: Connection,
    number: u64,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) {
    let mut rng = StdRng::seed_from_u64(number);
    let mut counter = 0_u64;
    let mut versions: BTreeMap<u64, u64> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        let key = rng.random_range(0..KEYS);
        let key_bytes = Bytes::from(format!("key-{key}"));
        let choice = rng.random_range(0..100);
        counter += 1;
        let value = (number << 32) | counter;
        let value_bytes = Bytes::from(value.to_string());
        let call = match choice {
            0..40 => Call::Read,
            40..70 => Call::Write { value },
            70..90 => {
                let expected = versions.get(&key).copied().unwrap_or(0);
                Call::Cas { expect: Expect::Version(expected), new: Some(value) }
            }
            _ => Call::Delete,
        };
        let invoked = recorder.now();
        let outcome = match &call {
            Call::Read => connection.read(key_bytes).await.map(|(value, version)| {
                versions.insert(key, version);
                Outcome::Read { value }
            }),
            Call::Write { .. } => connection.write(key_bytes, value_bytes).await.map(|version| {
                versions.insert(key, version);
                Outcome::Written
            }),
            Call::Cas { expect: Expect::Version(expected), .. } => {
                match connection.cas(key_bytes, *expected, value_bytes).await {
                    Some(CasAnswer::Applied(version)) => {
                        versions.insert(key, version);
                        Some(Outcome::Cas(CasResult::Applied))
                    }
                    Some(CasAnswer::Conflict(version)) => {
                        versions.insert(key, version);
                        Some(Outcome::Cas(CasResult::Conflict))
                    }
                    None => None,
                }
            }
            Call::Delete => connection.delete(key_bytes).await.map(|()| {
                versions.insert(key, 0);
                Outcome::Deleted
            }),
            Call::Cas { .. } => unreachable!("the clients only compare versions"),
        };
        let completion = outcome.map(|outcome| (outcome, recorder.now()));
        let failed = completion.is_none();
        // A write without an answer may or may not have happened: it stays open. A read
        // without one changed nothing, so it is left out: an open read only widens the
        // checker's search.
        if !(failed && call == Call::Read) {
            let mut history = recorder.history.lock().unwrap();
            history.record(ClientId(number), key, call, invoked, completion).unwrap();
        }
        if failed {
            // The cluster is failing over: a short pause keeps a client from piling up
            // hundreds of open operations against a node that is down.
            tokio::time::sleep(FAILURE_PAUSE).await;
        }
    }
}

fn client_for(cluster: &Cluster) -> KvClient {
    let mut config = kv_client::ClientConfig::from_certs_dir(
        cluster.addrs.values().copied().collect(),
        "kv",
        &cluster.certs_dir(),
        kv_client::ClientId(1),
    )
    .unwrap();
    config.timeout = OPERATION_TIMEOUT;
    config.connect_timeout = Duration::from_millis(300);
    KvClient::new(config).unwrap()
}

fn run(nemesis: Nemesis, api: Api, seed: u64) {
    let seconds = seconds_of_faults();
    let mut cluster = Cluster::start(3, &["--snapshot-threshold", "16KB"]);
    cluster.leader();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let recorder =
        Recorder { history: Arc::new(Mutex::new(History::new())), started: Instant::now() };
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (1..=CLIENTS)
        .map(|number| {
            let connection = runtime.block_on(Connection::open(&cluster, api));
            let task = run_client(connection, number, recorder.clone(), Arc::clone(&stop));
            runtime.spawn(task)
        })
        .collect();
    let faults = run_nemesis(&mut cluster, nemesis, seconds, seed);
    // Heal: every node up, unpaused, connected; let the clients work a little longer.
    for id in cluster.addrs.keys().copied().collect::<Vec<_>>() {
        if !cluster.processes.contains_key(&id) {
            cluster.start_node(id);
        }
    }
    heal(&mut cluster);
    cluster.leader();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async {
        for client in clients {
            client.await.unwrap();
        }
    });
    // Final reads: every acknowledged write must still be visible (or overwritten by a
    // later one), which the checker decides with the rest of the history.
    let reader = client_for(&cluster);
    runtime.block_on(async {
        for key in 0..KEYS {
            let invoked = recorder.now();
            let found =
                reader.get(Bytes::from(format!("key-{key}")), Consistency::Linearizable).await;
            let found = found.expect("the healed cluster answers reads");
            let value = found.map(|kv| String::from_utf8_lossy(&kv.value).parse().unwrap());
            let completed = recorder.now();
            let outcome = Some((Outcome::Read { value }, completed));
            recorder
                .history
                .lock()
                .unwrap()
                .record(ClientId(0), key, Call::Read, invoked, outcome)
                .unwrap();
        }
    });
    let history = recorder.history.lock().unwrap().clone();
    let operations = history.len();
    let completed = history.operations().iter().filter(|op| op.completion.is_some()).count();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for operation in history.operations() {
        *kinds.entry(operation.call.kind()).or_default() += 1;
    }
    let report = check(&history, Budget::default());
    eprintln!(
        "faults {nemesis:?} through {api:?}: {faults} faults in {seconds} s, {operations} operations ({completed} \
         completed; {kinds:?}), checked in {:.2} s: {}",
        report.stats.duration.as_secs_f64(),
        if report.verdict.is_linearizable() { "linearizable" } else { "NOT linearizable" }
    );
    assert!(completed >= 50, "the clients made progress: {completed} operations completed");
    assert!(faults >= 3, "the nemesis injected faults: {faults}");
    if let Some(violation) = report.verdict.violation() {
        panic!("{nemesis:?} (seed {seed}): not linearizable:\n{violation}");
    }
    assert!(report.verdict.is_linearizable(), "{nemesis:?} (seed {seed}): {:?}", report.verdict);
}

#[test]
fn crashes_and_restarts_keep_the_history_linearizable() {
    run(Nemesis::Crash, Api::Quic, 1);
}

#[test]
fn crashes_and_restarts_keep_an_etcd_api_history_linearizable() {
    run(Nemesis::Crash, Api::Etcd, 4);
}

#[test]
fn partitions_keep_an_etcd_api_history_linearizable() {
    run(Nemesis::Partition, Api::Etcd, 5);
}

#[test]
fn pauses_longer_than_the_election_timeout_keep_the_history_linearizable() {
    run(Nemesis::Pause, Api::Quic, 2);
}

#[test]
fn partitions_keep_the_history_linearizable() {
    run(Nemesis::Partition, Api::Quic, 3);
}
